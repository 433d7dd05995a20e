"""
Tests for :mod:`chatservice.client.screen` without a terminal: the screen model
(:class:`ChatView`) line by line, the input line through
``prompt_toolkit``'s own test input and output (``create_pipe_input``,
``DummyOutput``), and the reconnection over in-memory transports.
"""

from __future__ import annotations

import asyncio
import calendar
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from prompt_toolkit.input import PipeInput, create_pipe_input
from prompt_toolkit.output import DummyOutput
from twisted.internet import error as neterror
from twisted.internet.defer import succeed
from twisted.internet.interfaces import IStreamClientEndpoint
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer

from chatservice.client import NetworkProtocol, nick_color, screen
from chatservice.client.screen import (
    ChatView,
    Connection,
    InputHistory,
    Screen,
)

NOW = 1_700_000_000.0

#: The SGR colours of the nicknames, as prompt_toolkit names them.
ANSI_NAMES = {
    "31": "ansired",
    "32": "ansigreen",
    "33": "ansiyellow",
    "34": "ansiblue",
    "35": "ansimagenta",
    "36": "ansicyan",
    "91": "ansibrightred",
    "92": "ansibrightgreen",
    "93": "ansibrightyellow",
    "94": "ansibrightblue",
    "95": "ansibrightmagenta",
    "96": "ansibrightcyan",
}


def text_of(line) -> str:
    """The characters of one rendered line."""
    return "".join(part[1] for part in line)


def chat_view(nick: str | None = "alice") -> ChatView:
    """A model registered as ``nick`` in #lobby, on a fixed clock."""
    view = ChatView("server:6666", clock=lambda: NOW)
    if nick is not None:
        view.server_line(f"--- you are {nick}; you are in #lobby".encode())
    return view


def shown(view: ChatView) -> list[str]:
    """The text of every line of the current view."""
    return [text_of(line) for line in view.views[view.current].lines]


class ChatViewTests(SynchronousTestCase):
    """What each kind of server line does to the views."""

    def test_roomMessageWithTime(self):
        """A room message goes to its room, after the time it arrived."""
        view = chat_view()
        view.server_line(b"#lobby <bob> hello")
        stamp = time.strftime("%H:%M", time.localtime(NOW))
        self.assertEqual(shown(view)[-1], f"{stamp} #lobby <bob> hello")

    def test_nickColour(self):
        """A nickname has its own colour, the same as in the line client."""
        view = chat_view()
        view.server_line(b"#lobby <bob> hello <carol>")
        chars = [
            (style, char)
            for style, part, *_ in view.views["#lobby"].lines[-1]
            for char in part
        ]
        text = "".join(char for _, char in chars)
        where = text.index("bob")
        styles = {chars[where + offset][0] for offset in range(3)}
        self.assertEqual(styles, {f"{ANSI_NAMES[nick_color('bob')]} bold"})
        plain = text.index("carol")  # in the text: not coloured
        self.assertEqual(chars[plain][0], "")

    def test_historyTime(self):
        """A history line shows the time it was said, not when it arrived."""
        view = chat_view()
        view.server_line(b"#lobby [2026-12-01 22:55:58] <bob> earlier")
        said = calendar.timegm((2026, 12, 1, 22, 55, 58, 0, 0, 0))
        stamp = time.strftime("%H:%M", time.localtime(said))
        self.assertEqual(shown(view)[-1], f"{stamp} #lobby <bob> earlier")

    def test_escapesMadeVisible(self):
        """Nothing from the server reaches the terminal as a control."""
        view = chat_view()
        view.server_line(b"#lobby <bob> \x1b[2J\x1b]0;title\x07\x9b1m")
        line = shown(view)[-1]
        self.assertNotIn("\x1b", line)
        self.assertNotIn("\x07", line)
        self.assertIn("^[[2J^[]0;title^G", line)

    def test_roomlessLinesWhereOneLooks(self):
        """
        Replies, errors and announcements (no room) go to the view one looks
        at, coloured as in the line client (errors red).
        """
        view = chat_view()
        view.server_line(b"-!- alice has joined #dev")
        for line in (b"--- 2 rooms", b"!!! no such room: #x", b"*** op: tea"):
            view.server_line(line)
        self.assertEqual(
            [text[6:] for text in shown(view)[-3:]],
            ["--- 2 rooms", "!!! no such room: #x", "*** op: tea"],
        )
        error = view.views["#dev"].lines[-2]
        self.assertEqual({style for style, *_ in error[1:]}, {"ansired"})
        self.assertEqual(view.views["#lobby"].unread, 0)

    def test_otherRoomsUnread(self):
        """
        Lines of another room or of a private conversation are counted
        unread (a private one highlighted) until one switches to it.
        """
        view = chat_view()
        view.server_line(b"-!- alice has joined #dev")
        view.switch("#lobby")
        view.server_line(b"#dev <bob> one")
        view.server_line(b"#dev <bob> two")
        view.server_line(b"*carol* psst")
        self.assertEqual(view.views["#dev"].unread, 2)
        self.assertFalse(view.views["#dev"].highlighted)
        self.assertEqual(view.views["*carol"].unread, 1)
        self.assertTrue(view.views["*carol"].highlighted)
        status = text_of(view.status_line())
        self.assertIn("#dev(2)", status)
        self.assertIn("*carol(1)!", status)
        view.switch("#dev")
        self.assertEqual(view.views["#dev"].unread, 0)
        self.assertTrue(shown(view)[-2].endswith("#dev <bob> one"))

    def test_notices(self) -> None:
        """
        A room notice goes to its room's view (its sender a member, a
        mention alerting), a private notice to the conversation with its
        sender; a reply line is never taken for a private notice.
        """
        view = chat_view()
        view.server_line(b"-!- alice has joined #dev")
        view.switch("#lobby")
        view.server_line(b"#dev -bob- deploy at five, alice")
        self.assertEqual(view.views["#dev"].unread, 1)
        self.assertIn("bob", view.views["#dev"].members.values())
        self.assertTrue(view.alert)
        view.server_line(b"#dev [2023-11-14 22:13:20] -bob- said before")
        self.assertEqual(view.views["#dev"].unread, 2)
        view.server_line(b"-carol- build done")
        self.assertEqual(view.views["*carol"].unread, 1)
        view.server_line(b"-> -carol- thanks")
        self.assertEqual(len(view.views["*carol"].lines), 2)
        view.server_line(b"--- 2 rooms")
        self.assertNotIn("*-", view.views)
        self.assertEqual(shown(view)[-1][6:], "--- 2 rooms")

    def test_statusLine(self):
        """The status line has the server, the nickname, the view, the state."""
        view = chat_view()
        view.state = "connected"
        status = text_of(view.status_line())
        for part in ("server:6666", "alice", "#lobby", "connected"):
            self.assertIn(part, status)

    def test_topic(self):
        """The topic, from a reply or a notice, is on the title line."""
        view = chat_view()
        view.server_line(b"--- topic of #lobby: tea at five")
        self.assertEqual(text_of(view.title_line()), " #lobby: tea at five")
        view.server_line(b"-!- bob changed the topic of #lobby to: no tea")
        self.assertEqual(text_of(view.title_line()), " #lobby: no tea")
        view.server_line(b"-!- bob cleared the topic of #lobby")
        self.assertEqual(text_of(view.title_line()), " #lobby")

    def test_mention(self):
        """
        A line of someone else naming one's nickname is highlighted and
        alerts (the bell); one's own lines and other words do not.
        """
        view = chat_view()
        view.server_line(b"#lobby <bob> hi Alice, tea?")
        self.assertTrue(view.alert)
        self.assertTrue(
            all(
                "class:highlight" in part[0]
                for part in view.views["#lobby"].lines[-1][1:]
            )
        )
        view.server_line(b"#lobby <alice> I am alice")
        self.assertFalse(view.alert)
        view.server_line(b"#lobby <bob> malice aforethought")
        self.assertFalse(view.alert)

    def test_privateAlerts(self):
        """A private message received alerts; one sent does not."""
        view = chat_view()
        view.server_line(b"*bob* hi")
        self.assertTrue(view.alert)
        view.server_line(b"-> *bob* hi yourself")
        self.assertFalse(view.alert)
        self.assertEqual(len(view.views["*bob"].lines), 2)

    def test_nickChange(self):
        """A rename of oneself changes the nickname shown and mentioned."""
        view = chat_view()
        view.server_line(b"-!- alice is now known as alicia")
        self.assertEqual(view.nick, "alicia")
        self.assertIn("alicia", text_of(view.status_line()))

    def test_members(self):
        """Joins, /who, renames and quits keep the room's nicknames."""
        view = chat_view()
        view.server_line(b"--- #lobby (3): alice bob carol")
        view.server_line(b"-!- dave has joined #lobby")
        view.server_line(b"-!- bob is now known as robert")
        view.server_line(b"-!- carol has quit (bye)")
        self.assertEqual(view.nicks(), ["alice", "dave", "robert"])

    def test_joinSwitches(self):
        """/join of a room one is in switches to it at once (and is still sent)."""
        view = chat_view()
        view.server_line(b"-!- alice has joined #dev")
        self.assertEqual(view.current, "#dev")
        self.assertEqual(view.outgoing("/join #lobby"), "/join #lobby")
        self.assertEqual(view.current, "#lobby")

    def test_privateView(self):
        """A plain line typed in a private conversation is a /msg."""
        view = chat_view()
        view.server_line(b"*bob* hi")
        view.switch("*bob")
        self.assertEqual(view.outgoing("hello"), "/msg bob hello")
        self.assertEqual(view.outgoing("//slash"), "/msg bob /slash")
        self.assertEqual(view.outgoing("/who"), "/who")

    def test_scrollback(self):
        """Page Up shows older lines; new lines do not move a scrolled view."""
        view = chat_view()
        for number in range(30):
            view.server_line(f"#lobby <bob> line {number}".encode())
        self.assertTrue(text_of(view.visible_lines(5)[-1]).endswith("line 29"))
        view.scroll(10)
        self.assertTrue(text_of(view.visible_lines(5)[-1]).endswith("line 19"))
        view.server_line(b"#lobby <bob> line 30")
        self.assertTrue(text_of(view.visible_lines(5)[-1]).endswith("line 19"))
        view.scroll(-100)
        self.assertTrue(text_of(view.visible_lines(5)[-1]).endswith("line 30"))

    def test_adminConsole(self):
        """The admin console's lines (no rooms) are shown in the server view."""
        view = ChatView("unix:admin.sock", clock=lambda: NOW)
        view.server_line(
            b"*** chatservice admin console. Log in with: login NAME PASSWORD"
        )
        view.server_line(b"--- logged in as root; help lists commands")
        self.assertEqual(view.current, screen.SERVER_VIEW)
        self.assertEqual(len(shown(view)), 2)
        self.assertEqual(view.outgoing("list"), "list")


class HistoryTests(SynchronousTestCase):
    """The input history file."""

    def test_stateDirectory(self):
        """The history is in $XDG_STATE_HOME/chatservice, else ~/.local/state."""
        self.assertEqual(
            screen.history_path({"XDG_STATE_HOME": "/state"}),
            Path("/state/chatservice/history"),
        )
        self.assertEqual(
            screen.history_path({}),
            Path.home() / ".local" / "state" / "chatservice" / "history",
        )
        # A relative XDG_STATE_HOME is invalid (XDG): the default is used.
        self.assertEqual(
            screen.history_path({"XDG_STATE_HOME": "rel"}), screen.history_path({})
        )

    def test_secretsNotKept(self):
        """Lines with a password (/oper, login) never reach the history file."""
        path = Path(self.mktemp()) / "chatservice" / "history"
        history = InputHistory(path)
        for line in ("hello", "/oper root s3cret", "login root s3cret", "/who"):
            history.append_string(line)
        text = path.read_text()
        self.assertIn("hello", text)
        self.assertIn("/who", text)
        self.assertNotIn("s3cret", text)
        self.assertEqual(
            list(InputHistory(path).load_history_strings()), ["/who", "hello"]
        )


class Typed:
    """A :class:`Screen` on prompt_toolkit's pipe input and dummy output."""

    def __init__(self, pipe: PipeInput, chat: ChatView, history=None) -> None:
        self.pipe = pipe
        self.chat = chat
        self.sent: list[str] = []
        self.ended: list[int] = []
        self.screen = Screen(
            chat,
            self.sent.append,
            self._quit,
            history=history,
            input=pipe,
            output=DummyOutput(),
        )

    def _quit(self, code: int) -> None:
        self.ended.append(code)
        self.screen.app.exit(result=code)

    def run(self, *steps: tuple[str, Callable[[], bool]]) -> None:
        """
        Type each step's keys, waiting (bounded) until its condition holds;
        then Ctrl-D on the empty line ends the application.
        """

        async def drive() -> None:
            running = asyncio.ensure_future(self.screen.app.run_async())
            for keys, condition in steps:
                self.pipe.send_text(keys)
                await until(condition, keys)
            self.pipe.send_text("\x15\x04")  # Ctrl-U, Ctrl-D
            await asyncio.wait_for(running, 30)

        asyncio.run(drive())


async def until(condition: Callable[[], bool], what: str) -> None:
    """Wait for ``condition``; fail after a deadline that only catches hangs."""
    deadline = time.monotonic() + 30
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not after typing {what!r}")
        await asyncio.sleep(0.01)


@contextmanager
def typed(chat: ChatView, history=None) -> Iterator[Typed]:
    with create_pipe_input() as pipe:
        yield Typed(pipe, chat, history)


class InputLineTests(SynchronousTestCase):
    """The input line, through prompt_toolkit's own test input."""

    def test_enterSends(self):
        """Enter sends the line as typed and clears the input line."""
        with typed(chat_view()) as screen_:
            screen_.run(("hello world\r", lambda: screen_.sent == ["hello world"]))
            self.assertEqual(screen_.screen.buffer.text, "")
            self.assertEqual(screen_.ended, [0])

    def test_editing(self):
        """The usual keys edit the line: Left, Backspace, Home, Ctrl-E."""
        with typed(chat_view()) as screen_:
            buffer = screen_.screen.buffer
            screen_.run(
                ("helo", lambda: buffer.text == "helo"),
                ("\x1b[D" + "l", lambda: buffer.text == "hello"),
                ("\x01" + "X", lambda: buffer.text == "Xhello"),
                ("\x05\x7f\x7f", lambda: buffer.text == "Xhel"),
                ("\r", lambda: screen_.sent == ["Xhel"]),
            )

    def test_history(self):
        """Up recalls earlier lines, Down comes back."""
        with typed(chat_view()) as screen_:
            buffer = screen_.screen.buffer
            screen_.run(
                ("first\r", lambda: screen_.sent == ["first"]),
                ("second\r", lambda: screen_.sent == ["first", "second"]),
                ("\x1b[A", lambda: buffer.text == "second"),
                ("\x1b[A", lambda: buffer.text == "first"),
                ("\x1b[B", lambda: buffer.text == "second"),
                ("\r", lambda: screen_.sent == ["first", "second", "second"]),
            )

    def test_completeCommand(self):
        """Tab at the start of the line completes a command."""
        with typed(chat_view()) as screen_:
            buffer = screen_.screen.buffer
            screen_.run(("/jo\t", lambda: buffer.text == "/join "))

    def test_completeNick(self):
        """Tab completes a nickname of the current room."""
        chat = chat_view()
        chat.server_line(b"--- #lobby (3): alice bob carol")
        with typed(chat) as screen_:
            buffer = screen_.screen.buffer
            screen_.run(
                ("ca\t", lambda: buffer.text == "carol: "),
                ("hi b\t", lambda: buffer.text == "carol: hi bob "),
            )

    def test_pageUp(self):
        """Page Up and Page Down scroll through the view."""
        chat = chat_view()
        for number in range(100):
            chat.server_line(f"#lobby <bob> line {number}".encode())
        with typed(chat) as screen_:
            screen_.run(
                ("\x1b[5~", lambda: chat.scrolled > 0),
                ("\x1b[6~", lambda: chat.scrolled == 0),
            )

    def test_switchViews(self):
        """Ctrl-N shows the next view and tells the server its room."""
        chat = chat_view()
        chat.server_line(b"-!- alice has joined #dev")
        chat.switch("#lobby")
        with typed(chat) as screen_:
            screen_.run(("\x0e", lambda: chat.current == "#dev"))
            self.assertEqual(screen_.sent, ["/join #dev"])


@implementer(IStreamClientEndpoint)
class MemoryEndpoint:
    """Connects every time to a fresh ``StringTransport``."""

    def __init__(self) -> None:
        self.protocols: list[NetworkProtocol] = []
        self.transports: list[StringTransport] = []

    def connect(self, factory):
        protocol = factory.buildProtocol(None)
        transport = StringTransport()
        protocol.makeConnection(transport)
        self.protocols.append(protocol)
        self.transports.append(transport)
        return succeed(protocol)


class ConnectionTests(SynchronousTestCase):
    """Reconnection through ClientService, on a fake clock."""

    def setUp(self):
        self.clock = Clock()
        self.chat = chat_view(None)
        self.endpoint = MemoryEndpoint()
        self.ended: list[tuple[int, str | None]] = []

    def connection(self, **options) -> Connection:
        connection = Connection(
            self.chat,
            self.endpoint,
            "server:6666",
            lambda code, message: self.ended.append((code, message)),
            reactor=self.clock,
            **options,
        )
        connection.start()
        self.addCleanup(connection.finish, 0)
        return connection

    def drop(self, index: int = -1) -> None:
        protocol = self.endpoint.protocols[index]
        protocol.connectionLost(Failure(neterror.ConnectionDone()))

    def test_reconnectRejoins(self):
        """
        After the connection drops, the state says so; the client reconnects
        and takes back its nickname and rooms, the current room last.
        """
        self.connection()
        first = self.endpoint.protocols[0]
        for line in (
            b"--- you are alice; you are in #lobby",
            b"-!- alice has joined #dev",
            b"--- now talking in #lobby",
        ):
            first.dataReceived(line + b"\r\n")
        self.drop()
        self.assertIn("reconnecting", self.chat.state)
        self.assertEqual(len(self.endpoint.protocols), 1)
        self.clock.advance(60)
        self.assertEqual(len(self.endpoint.protocols), 2)
        self.assertEqual(self.chat.state, "connected")
        second = self.endpoint.transports[1]
        self.assertEqual(second.value(), b"/timestamps on\r\n/nick alice\r\n")
        self.endpoint.protocols[1].dataReceived(
            b"--- you are alice; you are in #lobby\r\n"
        )
        self.assertEqual(
            second.value(),
            b"/timestamps on\r\n/nick alice\r\n/join #dev\r\n/join #lobby\r\n"
            b"/who #lobby\r\n",
        )
        self.assertEqual(self.ended, [])

    def test_nickStillTaken(self):
        """
        A nickname still held by the old connection is taken back with ``_``
        added, then the rooms are rejoined.
        """
        self.connection()
        self.endpoint.protocols[0].dataReceived(
            b"--- you are alice; you are in #lobby\r\n"
        )
        self.drop()
        self.clock.advance(60)
        second = self.endpoint.protocols[1]
        second.dataReceived(b"!!! the nickname alice is taken\r\n")
        second.dataReceived(b"--- you are alice_; you are in #lobby\r\n")
        self.assertEqual(
            self.endpoint.transports[1].value(),
            b"/timestamps on\r\n/nick alice\r\n/nick alice_\r\n/join #lobby\r\n"
            b"/who #lobby\r\n",
        )
        self.assertEqual(self.chat.nick, "alice_")

    def test_noReconnect(self):
        """With --no-reconnect a dropped connection ends the client (1)."""
        self.connection(reconnect=False)
        self.drop()
        self.clock.advance(60)
        self.assertEqual(len(self.endpoint.protocols), 1)
        self.assertEqual(self.ended, [(1, "connection closed by server")])

    def test_kickedEnds(self):
        """Kicked (or banned) by an operator, the client does not come back."""
        self.connection()
        self.endpoint.protocols[0].dataReceived(
            b"!!! disconnected: kicked by op: calm down\r\n"
        )
        self.drop()
        self.clock.advance(60)
        self.assertEqual(len(self.endpoint.protocols), 1)
        self.assertEqual(
            self.ended, [(1, "closed by server: disconnected: kicked by op: calm down")]
        )

    def test_quitEnds(self):
        """After a quit word, the server closing ends the client with 0."""
        connection = self.connection()
        connection.send("/quit bye")
        self.drop()
        self.clock.advance(60)
        self.assertEqual(self.ended, [(0, None)])
        self.assertEqual(len(self.endpoint.protocols), 1)

    def test_adminLoginAgain(self):
        """The admin login line is sent on every connection."""
        self.connection(login=b"login root pw")
        self.drop()
        self.clock.advance(60)
        for transport in self.endpoint.transports:
            self.assertEqual(transport.value(), b"login root pw\r\n")
        self.assertEqual(len(self.endpoint.protocols), 2)


class ServerTimeTests(SynchronousTestCase):
    """Lines that carry the server's time (``/timestamps on``)."""

    def test_timeFromTheServer(self) -> None:
        """
        A line starting with ``@time=`` is shown with that time (local), not
        the time it arrived, and without the tag.
        """
        chat = ChatView("localhost:6666", clock=lambda: 0.0)
        chat.server_line(b"@time=2025-12-01T23:47:00.250Z #lobby <alice> hi")
        shown = "".join(text for _, text, *_ in chat.views["#lobby"].lines[-1])
        clock = time.strftime("%H:%M", time.localtime(1_764_632_820))
        self.assertIn(clock, shown)
        self.assertIn("<alice> hi", shown)
        self.assertNotIn("@time", shown)

    def test_answerNotShown(self) -> None:
        """The client asks for times on connecting; the answer is not shown."""
        shown: list[bytes] = []
        connection = Connection.__new__(Connection)
        connection.asked_timestamps = True

        class Chat:
            def server_line(self, line: bytes) -> None:
                shown.append(line)

            just_joined = None

        connection.chat = Chat()  # type: ignore[assignment]
        connection.protocol = None
        connection.reclaiming = None
        connection.serverLine(b"--- timestamps on")
        self.assertEqual(shown, [])
        self.assertFalse(connection.asked_timestamps)
