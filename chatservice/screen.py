"""
The full-screen ``chatservice-client``, used when standard input and output
are a terminal: the conversation above, a status line, the input line at
the bottom (``docs/client.rst``).

Built on ``prompt_toolkit`` running on Twisted's asyncio reactor.  The
pieces, each testable without a terminal:

- :class:`ChatView` (the screen model): reads every server line, keeps one
  scrollback per room, private conversation and the server itself, the
  unread counts, topics, members, one's own nickname, and renders what the
  screen shows;
- :class:`InputHistory` and :class:`ChatCompleter`: the input line's history
  (kept in the state directory, secrets left out) and Tab completion;
- :class:`Screen`: the ``prompt_toolkit`` application (layout and keys);
- :class:`Connection`: the connection through Twisted's ``ClientService``
  (reconnects with backoff, takes back the nickname and the rooms).
"""

from __future__ import annotations

import calendar
import os
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prompt_toolkit.application import Application
from prompt_toolkit.buffer import Buffer
from prompt_toolkit.completion import CompleteEvent, Completer, Completion
from prompt_toolkit.data_structures import Point
from prompt_toolkit.document import Document
from prompt_toolkit.formatted_text import ANSI, StyleAndTextTuples, to_formatted_text
from prompt_toolkit.history import FileHistory, History, InMemoryHistory
from prompt_toolkit.input import Input
from prompt_toolkit.key_binding import KeyBindings, KeyPressEvent
from prompt_toolkit.layout import HSplit, Layout, Window
from prompt_toolkit.layout.controls import BufferControl, FormattedTextControl
from prompt_toolkit.output import Output
from prompt_toolkit.styles import Style
from twisted.application.internet import ClientService, backoffPolicy
from twisted.internet import error as neterror
from twisted.internet.interfaces import IStreamClientEndpoint
from twisted.internet.protocol import Factory
from twisted.python.failure import Failure

from chatservice.chat.text import visible
from chatservice.client import (
    EXIT_FAILURE,
    EXIT_INTERRUPTED,
    EXIT_OK,
    NetworkProtocol,
    colorize,
    describe_connect_error,
    is_quit_line,
)

#: The chat's commands, for Tab completion (``docs/protocol.rst``).
COMMANDS = [
    "/nick",
    "/join",
    "/part",
    "/rooms",
    "/list",
    "/who",
    "/names",
    "/topic",
    "/me",
    "/msg",
    "/m",
    "/query",
    "/whois",
    "/quit",
    "/exit",
    "/help",
    "/oper",
    "/history",
    "/broadcast",
    "/kick",
    "/ban",
    "/unban",
    "/bans",
    "/limit",
    "/stats",
]

#: The longest nickname the chat accepts (``docs/protocol.rst``).
MAX_NICK_LENGTH = 24

#: The server's last words to a client it kicks or bans (``docs/protocol.rst``).
_SENT_AWAY = (b"!!! disconnected: ", b"!!! you are banned")

#: Lines kept per view.
SCROLLBACK = 5000

#: The view of what belongs to no room (the greeting, replies, errors).
SERVER_VIEW = ""

#: Typed lines never saved in the history file: they hold a password.
_SECRET = re.compile(r"\s*(/oper\s|login\s)", re.IGNORECASE)

#: The server's time at the start of an event line (``/timestamps on``).
_TIME_TAG = re.compile(r"@time=(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?Z ")
#: What the server answers ``/timestamps on`` with (or, before it had the
#: command, refuses it with): not shown.
_TIMESTAMPS_ANSWERS = (
    b"--- timestamps on",
    b"!!! unknown command /timestamps; /help lists commands",
)
#: A room's line: a message (<nick>), an action (* nick) or a notice (-nick-).
_ROOM_LINE = re.compile(r"#(\S+) (?:<([^\s>]+)>|\* (\S+)|-(\S+)-)( .*)?")
_HISTORY_LINE = re.compile(
    r"#(\S+) \[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)\] (<[^\s>]+>|\* \S+|-\S+-)( .*)?"
)
#: A private message (*nick*) or notice (-nick-), received or sent (->).
_PRIVATE = re.compile(r"(-> )?(?:\*([^\s*]+)\*|-([^!\s-]\S*)-)( .*)?")
_JOINED = re.compile(r"-!- (\S+) has joined #(\S+)")
_LEFT = re.compile(r"-!- (\S+) has left #(\S+)")
_QUIT = re.compile(r"-!- (\S+) has quit")
_KICKED = re.compile(r"-!- (\S+) was kicked by ")
_RENAMED = re.compile(r"-!- (\S+) is now known as (\S+)")
_TOPIC_SET = re.compile(r"-!- \S+ changed the topic of #(\S+) to: (.*)")
_TOPIC_CLEARED = re.compile(r"-!- \S+ cleared the topic of #(\S+)")
_TOPIC_REPLY = re.compile(r"--- topic of #(\S+): (.*)")
_YOU_ARE = re.compile(r"--- you are (\S+)(?:; you are in #(\S+)| already)")
_NOW_TALKING = re.compile(r"--- now talking in #(\S+)")
_WHO_REPLY = re.compile(r"--- #(\S+) \(\d+\): ?(.*)")


def state_dir(environ: Mapping[str, str]) -> Path:
    """``$XDG_STATE_HOME/chatservice`` (default ``~/.local/state/chatservice``)."""
    base = environ.get("XDG_STATE_HOME") or ""
    root = Path(base) if os.path.isabs(base) else Path.home() / ".local" / "state"
    return root / "chatservice"


def history_path(environ: Mapping[str, str]) -> Path:
    """Where the input history is kept across runs."""
    return state_dir(environ) / "history"


class InputHistory(FileHistory):
    """
    The input history in a file (``prompt_toolkit``'s format), without the
    lines that carry a password (``/oper NAME PASSWORD``, ``login ...``).
    """

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        super().__init__(str(path))

    def store_string(self, string: str) -> None:
        if _SECRET.match(string) is None:
            super().store_string(string)


def _key(name: str) -> str:
    return name.casefold()


def room_view(room: str) -> str:
    """The view key of a room (``#lobby``)."""
    return "#" + _key(room)


def private_view(nick: str) -> str:
    """The view key of a private conversation (``*bob``)."""
    return "*" + _key(nick)


@dataclass
class View:
    """One scrollback: a room, a private conversation, or the server's."""

    title: str
    lines: list[StyleAndTextTuples] = field(default_factory=list)
    unread: int = 0
    highlighted: bool = False
    topic: str = ""
    members: dict[str, str] = field(default_factory=dict)
    joined: bool = False

    def add(self, line: StyleAndTextTuples) -> None:
        self.lines.append(line)
        del self.lines[:-SCROLLBACK]


def _clock_text(at: float) -> str:
    return time.strftime("%H:%M", time.localtime(at))


class ChatView:
    """
    The screen model: what each server line does to the views, and what the
    screen shows.  ``clock`` gives the time a live line arrived (the server
    sends a time on history lines only).
    """

    def __init__(
        self,
        server: str,
        *,
        clock: Callable[[], float] = time.time,
        color: bool = True,
    ) -> None:
        self.server = server
        self.clock = clock
        self.color = color
        self.views: dict[str, View] = {SERVER_VIEW: View(server)}
        self.order: list[str] = [SERVER_VIEW]
        self.current = SERVER_VIEW
        self.nick: str | None = None
        self.state = "connecting"
        #: Lines scrolled back from the end in the current view.
        self.scrolled = 0
        #: Whether the last line read mentioned one's nickname (for the bell).
        self.alert = False
        #: The room the last line said one has joined, if it did.
        self.just_joined: str | None = None

    # The views

    def view(self, key: str, title: str) -> View:
        """The view of that key, made on first use."""
        found = self.views.get(key)
        if found is None:
            found = self.views[key] = View(title)
            self.order.append(key)
        return found

    def switch(self, key: str) -> None:
        """Show another view; its unread count and highlight are cleared."""
        if key not in self.views:
            return
        self.current = key
        self.scrolled = 0
        shown = self.views[key]
        shown.unread = 0
        shown.highlighted = False

    def cycle(self, step: int) -> None:
        """Show the next (``1``) or previous (``-1``) view."""
        index = self.order.index(self.current)
        self.switch(self.order[(index + step) % len(self.order)])

    def joined_rooms(self) -> list[str]:
        """The rooms one is in, in the order they were joined."""
        return [
            self.views[key].title
            for key in self.order
            if key.startswith("#") and self.views[key].joined
        ]

    def current_room(self) -> str | None:
        """The room of the current view, if it is a room one is in."""
        shown = self.views[self.current]
        if self.current.startswith("#") and shown.joined:
            return shown.title
        return None

    def disconnected(self) -> None:
        """The connection is gone: one is in no room until rejoined."""
        for shown in self.views.values():
            shown.joined = False
            shown.members.clear()

    def note(self, text: str) -> None:
        """A line of the client itself, in the current view."""
        self.views[self.current].add(self._fragments(text, self.clock(), False, False))

    def is_me(self, nick: str) -> bool:
        return self.nick is not None and _key(nick) == _key(self.nick)

    # Server lines

    def server_line(self, raw: bytes) -> None:
        """Read one line from the server (without its terminator)."""
        text = visible(raw.decode("utf-8", errors="replace"))
        at = self.clock()
        stamp = _TIME_TAG.match(text)
        if stamp is not None:
            # The server's time of the event, not the time it arrived.
            whole, fraction = stamp.groups()
            at = calendar.timegm(time.strptime(whole, "%Y-%m-%dT%H:%M:%S"))
            at += float(fraction or 0)
            text = text[stamp.end() :]
        self.alert = False
        self.just_joined = None
        key = self._track(text)
        shown_text = text
        history = _HISTORY_LINE.fullmatch(text)
        if history is not None:
            room, when, who, rest = history.groups()
            shown_text = f"#{room} {who}{rest or ''}"
            at = calendar.timegm(time.strptime(when, "%Y-%m-%d %H:%M:%S"))
        mention = self._mentions(text)
        line = self._fragments(shown_text, at, mention, history is not None)
        if key is None:
            key = self.current
        target = self.views[key]
        target.add(line)
        if key != self.current:
            target.unread += 1
            if mention or key.startswith("*"):
                target.highlighted = True
        elif self.scrolled:
            self.scrolled += 1
        self.alert = mention or (key.startswith("*") and not text.startswith("->"))

    def _mentions(self, text: str) -> bool:
        if self.nick is None:
            return False
        match = _ROOM_LINE.fullmatch(text) or _HISTORY_LINE.fullmatch(text)
        if match is None or match.re is _HISTORY_LINE:
            return False
        speaker = match.group(2) or match.group(3) or match.group(4)
        body = match.group(5) or ""
        if self.is_me(speaker):
            return False
        pattern = r"(?<![\w-])" + re.escape(self.nick) + r"(?![\w-])"
        return re.search(pattern, body, re.IGNORECASE) is not None

    def _fragments(
        self, text: str, at: float, mention: bool, history: bool
    ) -> StyleAndTextTuples:
        body: StyleAndTextTuples = list(
            to_formatted_text(ANSI(colorize(text) if self.color else text))
        )
        stamp = "class:history-time" if history else "class:time"
        line: StyleAndTextTuples = [(stamp, _clock_text(at) + " ")]
        if mention:
            body = [("class:highlight " + style, part) for style, part, *_ in body]
        line.extend(body)
        return line

    def _track(self, text: str) -> str | None:
        """Follow what the line changes; the key of the view it belongs to."""
        for pattern in (_HISTORY_LINE, _ROOM_LINE):
            match = pattern.fullmatch(text)
            if match is not None:
                room = match.group(1)
                view = self.view(room_view(room), "#" + room)
                nick = match.group(2) or match.group(3) or match.group(4)
                if pattern is _ROOM_LINE and nick:
                    view.members.setdefault(_key(nick), nick)
                return room_view(room)
        match = _PRIVATE.fullmatch(text)
        if match is not None:
            nick = match.group(2) or match.group(3)
            self.view(private_view(nick), "*" + nick)
            return private_view(nick)
        return self._track_notice(text) or self._track_reply(text)

    def _track_notice(self, text: str) -> str | None:
        match = _JOINED.fullmatch(text)
        if match is not None:
            nick, room = match.groups()
            view = self.view(room_view(room), "#" + room)
            view.members[_key(nick)] = nick
            if self.is_me(nick):
                view.joined = True
                self.just_joined = "#" + room
                self.switch(room_view(room))
            return room_view(room)
        match = _LEFT.fullmatch(text)
        if match is not None:
            nick, room = match.groups()
            view = self.view(room_view(room), "#" + room)
            view.members.pop(_key(nick), None)
            if self.is_me(nick):
                view.joined = False
            return room_view(room)
        match = _QUIT.match(text) or _KICKED.match(text)
        if match is not None:
            return self._gone(match.group(1))
        match = _RENAMED.fullmatch(text)
        if match is not None:
            old, new = match.groups()
            if self.is_me(old):
                self.nick = new
            where = None
            for key, view in self.views.items():
                if view.members.pop(_key(old), None) is not None:
                    view.members[_key(new)] = new
                    where = key if where is None else where
            return None if where is None or len(self._rooms_of(new)) > 1 else where
        match = _TOPIC_SET.fullmatch(text) or _TOPIC_CLEARED.fullmatch(text)
        if match is not None:
            room = match.group(1)
            view = self.view(room_view(room), "#" + room)
            view.topic = match.group(2) if match.lastindex == 2 else ""
            return room_view(room)
        return None

    def _rooms_of(self, nick: str) -> list[str]:
        return [key for key, view in self.views.items() if _key(nick) in view.members]

    def _gone(self, nick: str) -> str | None:
        rooms = self._rooms_of(nick)
        for key in rooms:
            self.views[key].members.pop(_key(nick), None)
        # Shown in its room when it was in one only, else where one looks.
        return rooms[0] if len(rooms) == 1 else None

    def _track_reply(self, text: str) -> str | None:
        match = _YOU_ARE.fullmatch(text)
        if match is not None:
            self.nick = match.group(1)
            room = match.group(2)
            if room is not None:
                view = self.view(room_view(room), "#" + room)
                view.members[_key(self.nick)] = self.nick
                view.joined = True
                self.just_joined = "#" + room
                self.switch(room_view(room))
            return None
        match = _NOW_TALKING.fullmatch(text)
        if match is not None:
            room = match.group(1)
            self.view(room_view(room), "#" + room)
            self.switch(room_view(room))
            return room_view(room)
        match = _TOPIC_REPLY.fullmatch(text)
        if match is not None:
            room, topic = match.groups()
            view = self.view(room_view(room), "#" + room)
            view.topic = "" if topic == "(none)" else topic
            return room_view(room)
        match = _WHO_REPLY.fullmatch(text)
        if match is not None:
            room, nicks = match.groups()
            view = self.view(room_view(room), "#" + room)
            view.members = {_key(nick): nick for nick in nicks.split()}
            return room_view(room)
        return None

    # What is typed

    def outgoing(self, line: str) -> str | None:
        """
        The line to send for what was typed in the current view (a plain
        line in a private conversation is a ``/msg``), or ``None`` when it is
        handled here (``/join`` of a room one is in switches to it at once,
        and still tells the server).
        """
        stripped = line.strip()
        words = stripped.split()
        if words and words[0].lower() == "/join" and len(words) > 1:
            key = room_view(words[1].lstrip("#"))
            if key in self.views and self.views[key].joined:
                self.switch(key)
        if self.current.startswith("*") and stripped and not stripped.startswith("/"):
            return f"/msg {self.views[self.current].title[1:]} {line}"
        if self.current.startswith("*") and stripped.startswith("//"):
            return f"/msg {self.views[self.current].title[1:]} {line[1:]}"
        return line

    def nicks(self) -> list[str]:
        """The nicknames known in the current view, for completion."""
        shown = self.views[self.current]
        if self.current.startswith("*"):
            return [shown.title[1:]]
        return sorted(shown.members.values(), key=_key)

    # What is shown

    def scroll(self, lines: int) -> None:
        """Scroll back (positive) or forward (negative) through the view."""
        total = len(self.views[self.current].lines)
        self.scrolled = max(0, min(total - 1, self.scrolled + lines))

    def visible_lines(self, height: int) -> list[StyleAndTextTuples]:
        """The lines of the current view that fit (at most ``height``)."""
        lines = self.views[self.current].lines
        end = len(lines) - self.scrolled
        return lines[max(0, end - max(height, 1)) : end]

    def title_line(self) -> StyleAndTextTuples:
        """The top line: the view's name and topic."""
        shown = self.views[self.current]
        title = shown.title or self.server
        text = f" {title}: {shown.topic}" if shown.topic else f" {title}"
        if self.current.startswith("#") and not shown.joined:
            text += " (not joined)"
        return [("class:title", text)]

    def status_line(self) -> StyleAndTextTuples:
        """
        The status line: server, nickname, current view, connection state,
        then every view with its number, unread count and marker.
        """
        nick = self.nick or "(no nickname)"
        parts: StyleAndTextTuples = [
            ("class:status", f" {self.server} | {nick} | "),
            ("class:status.state", self.state),
        ]
        if self.scrolled:
            parts.append(("class:status", f" | scrolled back {self.scrolled}"))
        parts.append(("class:status", " |"))
        for number, key in enumerate(self.order, start=1):
            shown = self.views[key]
            label = f" {number}:{'server' if key == SERVER_VIEW else shown.title}"
            if key == self.current:
                parts.append(("class:status.current", label))
            elif shown.highlighted:
                parts.append(("class:status.highlight", f"{label}({shown.unread})!"))
            elif shown.unread:
                parts.append(("class:status.unread", f"{label}({shown.unread})"))
            else:
                parts.append(("class:status", label))
        return parts


class ChatCompleter(Completer):
    """Tab completion: commands at the start of the line, else nicknames."""

    def __init__(self, view: ChatView) -> None:
        self.chat = view

    def get_completions(
        self, document: Document, complete_event: CompleteEvent
    ) -> Iterable[Completion]:
        before = document.text_before_cursor
        word = before.split(" ")[-1]
        at_start = " " not in before.lstrip()
        if at_start and word.startswith("/"):
            for command in COMMANDS:
                if command.startswith(word.lower()):
                    yield Completion(command + " ", -len(word))
            return
        if word.startswith("#"):
            for room in self.chat.joined_rooms():
                if _key(room).startswith(_key(word)):
                    yield Completion(room + " ", -len(word))
            return
        if not word:
            return
        suffix = ": " if at_start else " "
        for nick in self.chat.nicks():
            if _key(nick).startswith(_key(word)):
                yield Completion(nick + suffix, -len(word))


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


class Connection:
    """
    The connection behind the screen.  With ``reconnect``, a
    ``ClientService`` reconnects with backoff once a connection was made,
    then takes back the nickname and rejoins the rooms (the current one
    last, so it stays current); without, the first loss ends the client.
    ``finish`` is told the exit status and a message, once.
    """

    def __init__(
        self,
        chat: ChatView,
        endpoint: IStreamClientEndpoint,
        name: str,
        finish: Callable[[int, str | None], None],
        *,
        refresh: Callable[[], None] = lambda: None,
        login: bytes | None = None,
        reconnect: bool = True,
        reactor: Any = None,
        max_delay: float = 30.0,
    ) -> None:
        self.chat = chat
        self.endpoint = endpoint
        self.name = name
        self._finish = finish
        self.refresh = refresh
        self.login = login
        self.reconnect = reconnect
        self.protocol: NetworkProtocol | None = None
        self.quit_sent = False
        self.ended = False
        self.ever_connected = False
        #: The rooms to rejoin after a reconnection, and the one to end in.
        self.rejoin: list[str] = []
        self.rejoin_current: str | None = None
        #: The nickname asked for after a reconnection, until it is granted.
        self.reclaiming: str | None = None
        #: Why the server sent one away (a kick, a ban): then no reconnection.
        self.sent_away: str | None = None
        self.service = ClientService(
            endpoint,
            Factory.forProtocol(lambda: NetworkProtocol(self)),
            retryPolicy=backoffPolicy(initialDelay=0.5, maxDelay=max_delay),
            clock=reactor,
        )

    def start(self) -> None:
        """Connect; a first connection that fails ends the client."""
        self.service.startService()
        first = self.service.whenConnected(failAfterFailures=1)
        first.addErrback(self._first_failed)

    def _first_failed(self, failure: Failure) -> None:
        if not self.ended and not self.ever_connected:
            problem = failure.value or neterror.ConnectError()
            self.finish(
                EXIT_FAILURE,
                f"cannot connect to {self.name}: {describe_connect_error(problem)}",
            )

    def networkConnected(self, protocol: NetworkProtocol) -> None:
        """A connection is made: log in, or take back nickname and rooms."""
        if self.ended:
            protocol.transport.loseConnection()
            return
        again = self.ever_connected
        self.ever_connected = True
        self.protocol = protocol
        self.chat.state = "connected"
        if self.login is not None:
            protocol.sendLine(self.login)
        else:
            # Every event line with the server's time (its reply not shown).
            self.asked_timestamps = True
            protocol.sendLine(b"/timestamps on")
            if again and self.chat.nick is not None:
                self._take_back(protocol)
        self.refresh()

    def _take_back(self, protocol: NetworkProtocol) -> None:
        """After a reconnection: the nickname first (the rooms once it is ours)."""
        self.reclaiming = self.chat.nick
        protocol.sendLine(f"/nick {self.reclaiming}".encode())

    def _rejoin(self, protocol: NetworkProtocol) -> None:
        """Rejoin the rooms, the current one last so that it stays current."""
        current = self.rejoin_current
        rooms = [room for room in self.rejoin if room != current]
        for room in rooms + ([current] if current else []):
            protocol.sendLine(f"/join {room}".encode())

    def _reclaim(self, protocol: NetworkProtocol, line: bytes) -> None:
        """
        While taking the nickname back: once it is ours, rejoin; if it is
        still taken (the server has not yet seen the old connection go), try
        it with ``_`` added, as IRC clients do.
        """
        if line.startswith(b"--- you are "):
            self.reclaiming = None
            self._rejoin(protocol)
        elif line.startswith(b"!!! the nickname ") and line.endswith(b" is taken"):
            wanted = f"{self.reclaiming}_"
            if len(wanted) > MAX_NICK_LENGTH:
                self.reclaiming = None
                self.chat.note("-!- choose a nickname: /nick NAME")
                return
            self.reclaiming = wanted
            protocol.sendLine(f"/nick {wanted}".encode())

    #: Whether the answer to ``/timestamps on`` is still to come.
    asked_timestamps = False

    def serverLine(self, line: bytes) -> None:
        """A line from the server: to the screen model."""
        if self.asked_timestamps and line in _TIMESTAMPS_ANSWERS:
            self.asked_timestamps = False
            return
        self.chat.server_line(line)
        if line.startswith(_SENT_AWAY):
            self.sent_away = line[4:].decode("utf-8", errors="replace")
        protocol = self.protocol
        if protocol is not None and self.reclaiming is not None:
            self._reclaim(protocol, line)
        room = self.chat.just_joined
        if room is not None and protocol is not None:
            # Who is there, for the completion of nicknames.
            protocol.sendLine(f"/who {room}".encode())
        self.refresh()

    def send(self, line: str) -> None:
        """Send a typed line (a quit word ends the client when the server closes)."""
        if self.protocol is None:
            self.chat.note("!!! not connected; the line was not sent")
            self.refresh()
            return
        if is_quit_line(line.encode("utf-8")):
            self.quit_sent = True
        self.protocol.sendLine(line.encode("utf-8"))

    def networkLost(self, reason: Failure) -> None:
        """The connection is gone: reconnect (ClientService does), or end."""
        self.protocol = None
        if self.ended:
            return
        if self.quit_sent:
            self.finish(EXIT_OK)
            return
        if self.sent_away is not None:
            # Kicked or banned: coming straight back would fight the operator.
            self.finish(EXIT_FAILURE, f"closed by server: {self.sent_away}")
            return
        if reason.check(neterror.ConnectionDone) is not None:
            why = "connection closed by server"
        else:
            problem = reason.value or neterror.ConnectionLost()
            why = f"connection lost: {describe_connect_error(problem)}"
        self.rejoin = self.chat.joined_rooms()
        self.rejoin_current = self.chat.current_room() or (
            self.rejoin[-1] if self.rejoin else None
        )
        self.chat.disconnected()
        if not self.reconnect:
            self.finish(EXIT_FAILURE, why)
            return
        self.chat.state = f"disconnected ({why}); reconnecting"
        self.chat.note(f"-!- {why}; reconnecting")
        self.refresh()

    def finish(self, code: int, message: str | None = None) -> None:
        """End the client (the first call wins): stop reconnecting, close."""
        if self.ended:
            return
        self.ended = True
        self.chat.state = "closed"
        self.service.stopService()
        self._finish(code, message)


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
) -> int:
    """
    Run the full-screen client until it ends; its exit status.  Messages
    (why the connection ended) are reported once the screen is gone.
    """
    import asyncio

    from twisted.internet.defer import Deferred

    from chatservice.client import PROG

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
