"""
The full screen itself: :class:`Screen`, the ``prompt_toolkit``
application (layout and keys), and :func:`run_screen`, which joins it to a
:class:`~chatservice.client.screen.view.ChatView` and a
:class:`~chatservice.client.screen.reconnect.Connection` and runs it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from prompt_toolkit.application import Application
from prompt_toolkit.buffer import Buffer
from prompt_toolkit.data_structures import Point
from prompt_toolkit.formatted_text import StyleAndTextTuples
from prompt_toolkit.history import History, InMemoryHistory
from prompt_toolkit.input import Input
from prompt_toolkit.key_binding import KeyBindings, KeyPressEvent
from prompt_toolkit.layout import HSplit, Layout, Window
from prompt_toolkit.layout.controls import BufferControl, FormattedTextControl
from prompt_toolkit.output import Output
from prompt_toolkit.styles import Style
from twisted.internet.interfaces import IStreamClientEndpoint

from chatservice.client.exits import EXIT_INTERRUPTED, EXIT_OK, PROG
from chatservice.client.protocols import TLS_HANDSHAKE_TIMEOUT
from chatservice.client.screen.inputline import (
    ChatCompleter,
    InputHistory,
    history_path,
)
from chatservice.client.screen.reconnect import Connection
from chatservice.client.screen.view import ChatView

STYLE = Style.from_dict(
    {
        "title": "reverse",
        "status": "reverse",
        "status.state": "reverse bold",
        "status.current": "reverse bold",
        "status.unread": "reverse ansiyellow",
        "status.highlight": "reverse bold ansired",
        "time": "ansibrightblack",
        "history-time": "ansibrightblack italic",
        "highlight": "bold underline",
    }
)


class Screen:
    """
    The ``prompt_toolkit`` application: the title line (view and topic),
    the conversation, the status line and the input line.  Lines typed go
    to ``send`` (after :meth:`ChatView.outgoing`); ``quit`` ends the client
    with a status.
    """

    def __init__(
        self,
        chat: ChatView,
        send: Callable[[str], None],
        quit: Callable[[int], None],
        *,
        history: History | None = None,
        bell: bool = True,
        input: Input | None = None,
        output: Output | None = None,
    ) -> None:
        self.chat = chat
        self.send = send
        self.quit = quit
        self.bell = bell
        self.buffer = Buffer(
            multiline=False,
            history=history if history is not None else InMemoryHistory(),
            completer=ChatCompleter(chat),
            accept_handler=self._accept,
        )
        self.messages = Window(
            FormattedTextControl(self._messages, get_cursor_position=self._bottom),
            wrap_lines=True,
        )
        layout = Layout(
            HSplit(
                [
                    Window(
                        FormattedTextControl(chat.title_line), height=1, style="reverse"
                    ),
                    self.messages,
                    Window(
                        FormattedTextControl(chat.status_line),
                        height=1,
                        style="class:status",
                    ),
                    Window(BufferControl(self.buffer), height=1),
                ]
            ),
            focused_element=self.buffer,
        )
        self.app: Application[int] = Application(
            layout=layout,
            key_bindings=self._keys(),
            style=STYLE,
            full_screen=True,
            mouse_support=False,
            input=input,
            output=output,
        )

    def _rows(self) -> int:
        return max(1, self.app.output.get_size().rows - 3)

    def _messages(self) -> StyleAndTextTuples:
        lines = self.chat.visible_lines(self._rows())
        shown: StyleAndTextTuples = []
        for index, line in enumerate(lines):
            if index:
                shown.append(("", "\n"))
            shown.extend(line)
        return shown

    def _bottom(self) -> Point:
        return Point(0, max(0, len(self.chat.visible_lines(self._rows())) - 1))

    def _accept(self, buffer: Buffer) -> bool:
        line = buffer.text
        outgoing = self.chat.outgoing(line)
        if outgoing is not None and line.strip():
            self.send(outgoing)
        self.refresh()
        return False  # clear the line (it is kept in the history)

    def _keys(self) -> KeyBindings:
        keys = KeyBindings()

        @keys.add("pageup")
        def _(event: KeyPressEvent) -> None:
            self.chat.scroll(self._rows() - 1)

        @keys.add("pagedown")
        def _(event: KeyPressEvent) -> None:
            self.chat.scroll(-(self._rows() - 1))

        @keys.add("c-n")
        @keys.add("escape", "right")
        def _(event: KeyPressEvent) -> None:
            self.chat.cycle(1)
            self._tell_room()

        @keys.add("c-p")
        @keys.add("escape", "left")
        def _(event: KeyPressEvent) -> None:
            self.chat.cycle(-1)
            self._tell_room()

        for digit in "123456789":

            @keys.add("escape", digit)
            def _(event: KeyPressEvent, digit: str = digit) -> None:
                index = int(digit) - 1
                if index < len(self.chat.order):
                    self.chat.switch(self.chat.order[index])
                    self._tell_room()

        @keys.add("c-c")
        def _(event: KeyPressEvent) -> None:
            self.quit(EXIT_INTERRUPTED)

        @keys.add("c-d")
        def _(event: KeyPressEvent) -> None:
            if self.buffer.text:
                self.buffer.delete()
            else:
                self.quit(EXIT_OK)

        return keys

    def _tell_room(self) -> None:
        """After switching to a room one is in, make it the server's current."""
        room = self.chat.current_room()
        if room is not None:
            self.send(f"/join {room}")

    def refresh(self) -> None:
        """Redraw (after a server line, a state change)."""
        if self.bell and self.chat.alert:
            self.app.output.bell()
            self.chat.alert = False
        self.app.invalidate()


async def run_screen(
    reactor: Any,
    name: str,
    endpoint: IStreamClientEndpoint,
    *,
    color: bool,
    login: bytes | None,
    reconnect: bool,
    bell: bool,
    report: Callable[[str], None],
    environ: Mapping[str, str],
    tls_timeout: float = TLS_HANDSHAKE_TIMEOUT,
) -> int:
    """
    Run the full-screen client until it ends; its exit status.  Messages
    (why the connection ended) are reported once the screen is gone.
    """
    import asyncio

    from twisted.internet.defer import Deferred

    chat = ChatView(name, color=color)
    messages: list[str] = []
    try:
        history: History = InputHistory(history_path(environ))
    except OSError:
        history = InMemoryHistory()

    def finish(code: int, message: str | None) -> None:
        if message is not None:
            messages.append(f"{PROG}: {message}")
        if screen.app.is_running and not screen.app.future.done():  # type: ignore[union-attr]
            screen.app.exit(result=code)

    connection = Connection(
        chat,
        endpoint,
        name,
        finish,
        login=login,
        reconnect=reconnect,
        reactor=reactor,
        tls_timeout=tls_timeout,
    )
    screen = Screen(
        chat,
        connection.send,
        lambda code: connection.finish(code, None),
        history=history,
        bell=bell,
    )
    connection.refresh = screen.refresh
    running = asyncio.ensure_future(
        screen.app.run_async(pre_run=connection.start, handle_sigint=False)
    )
    code: int = await Deferred.fromFuture(running)
    connection.finish(code, None)
    for message in messages:
        report(message)
    return code
