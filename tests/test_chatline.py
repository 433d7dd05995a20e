# ruff: noqa: RUF001 - fullwidth letters on purpose
"""
Tests for :mod:`chatservice.doors.native`, the chat's line front end: clients on
in-memory transports, a fake clock, and a fake authenticator for ``/oper``.

Most tests compare every line a client received with the full expected
transcript, so an extra line (a notice sent twice, a message leaking to
someone outside a room) fails them as surely as a missing one.
"""

from __future__ import annotations

import time
from itertools import count
from typing import Any

from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone, ConnectionLost
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from chatservice.backends.local import LocalBackend
from chatservice.chat import events
from chatservice.chat.errors import ChatError
from chatservice.chat.hub import Hub
from chatservice.chat.model import ChatConfig
from chatservice.conn.limits import Limits
from chatservice.conn.turns import end_of_turn
from chatservice.doors.native.protocol import ChatFactory, ChatProtocol, ChatSettings
from chatservice.doors.native.render import private_line, render, render_history
from chatservice.doors.operations import Operations
from chatservice.testing import FakeAuthenticator as FakeAuthenticator  # test_admin
from tests.support import end_turn

_ports = count(50000)

GREETING = (
    "-!- Welcome to chatservice! Choose a nickname: type it, or /nick NAME. "
    "/help lists commands."
)
NOT_OPERATOR = "!!! /{} needs operator rights (/oper NAME PASSWORD)"
#: The wall-clock time operators' ``/list`` shows connections against.
WALL_CLOCK = 1_800_000_000.0


def authenticator_of(fake: FakeAuthenticator) -> Any:
    """The fake, typed as whatever the factory wants."""
    return fake


class Client:
    """One client on an in-memory transport."""

    def __init__(self, factory: ChatFactory, host: str = "10.0.0.1") -> None:
        self.transport = StringTransport(
            peerAddress=IPv4Address("TCP", host, next(_ports))
        )
        protocol = factory.buildProtocol(self.transport.getPeer())
        assert isinstance(protocol, ChatProtocol)
        self.protocol: ChatProtocol = protocol
        protocol.makeConnection(self.transport)

    def send(self, *lines: str) -> None:
        """Send lines, in one read."""
        self.protocol.dataReceived(
            b"".join(line.encode("utf-8") + b"\r\n" for line in lines)
        )

    def take(self) -> list[str]:
        """Every line received since the last call (at the end of the turn)."""
        end_turn(self.protocol.factory)
        data: bytes = self.transport.value()
        self.transport.clear()
        text = data.decode("utf-8")
        assert text == "" or text.endswith("\r\n"), text
        return text.split("\r\n")[:-1]

    @property
    def closed(self) -> bool:
        """Whether the server closed (or is closing) the connection."""
        return bool(self.transport.disconnecting)

    def lose(self, reason: type[Exception] = ConnectionDone) -> None:
        """The transport reports the connection gone."""
        self.protocol.connectionLost(Failure(reason()))


class ChatTestCase(SynchronousTestCase):
    """A hub and a chat factory on a fake clock."""

    config = ChatConfig()
    settings = ChatSettings()
    limits = Limits()

    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(1000)
        self.hub = Hub(
            self.config,
            clock=self.clock.seconds,
            backend=LocalBackend(call_soon=end_of_turn(self.clock).soon),
        )
        self.authenticator = FakeAuthenticator()
        self.factory = ChatFactory(
            self.hub,
            self.limits,
            self.clock,
            settings=self.settings,
            authenticator=authenticator_of(self.authenticator),
            operations=Operations(self.hub, wall_clock=lambda: WALL_CLOCK),
        )
        self.clients: list[Client] = []

    def connect(self, host: str = "10.0.0.1") -> Client:
        client = Client(self.factory, host)
        self.clients.append(client)
        return client

    def register(self, nick: str, host: str = "10.0.0.1") -> Client:
        """A client that has chosen ``nick``; what everyone got so far is dropped."""
        client = self.connect(host)
        client.send(nick)
        self.assertEqual(client.take()[-1], f"--- you are {nick}; you are in #lobby")
        self.clear()
        return client

    def operator(self, nick: str, host: str = "10.0.0.1") -> Client:
        """A registered client logged in as an operator."""
        client = self.register(nick, host)
        client.send("/oper root s3cret")
        self.assertEqual(
            client.take(),
            ["--- you are now an operator (as root); /help lists your commands"],
        )
        return client

    def clear(self) -> None:
        for client in self.clients:
            client.take()


class GreetingTests(ChatTestCase):
    """What a new connection is told."""

    settings = ChatSettings(motd=("Be nice.", "", "evil\x1b[2J\u202e"))

    def test_greetingAndMotd(self) -> None:
        """
        A new client gets the greeting, then every line of the message of the
        day as a notice, control characters made visible.
        """
        client = self.connect()
        self.assertEqual(
            client.take(),
            [GREETING, "-!- Be nice.", "-!- ", "-!- evil^[[2J<U+202E>"],
        )
        self.assertFalse(client.closed)

    def test_noMotd(self) -> None:
        """Without a message of the day, the greeting is the only line."""
        self.factory.settings = ChatSettings()
        self.assertEqual(self.connect().take(), [GREETING])


class RegistrationTests(ChatTestCase):
    """Choosing a nickname."""

    def test_firstLineIsNick(self) -> None:
        """The first plain line is the nickname: the client joins the lobby."""
        client = self.connect()
        client.take()
        client.send("alice")
        self.assertEqual(
            client.take(),
            ["-!- alice has joined #lobby", "--- you are alice; you are in #lobby"],
        )
        self.assertEqual(self.hub.find("alice").member, client.protocol)

    def test_invalidNickTriedAgain(self) -> None:
        """
        An invalid nickname gets an error, and the next plain line is tried
        as the nickname again.
        """
        client = self.connect()
        client.take()
        client.send("al ice", "9lives", "alice")
        self.assertEqual(
            client.take(),
            [
                "!!! a nickname has letters, digits, _ and - only (not ' ')",
                "!!! a nickname starts with a letter or _",
                "-!- alice has joined #lobby",
                "--- you are alice; you are in #lobby",
            ],
        )

    def test_takenNickTriedAgain(self) -> None:
        """A nickname in use (in any case) is refused; the next line is tried."""
        alice = self.register("alice")
        bob = self.connect()
        bob.take()
        bob.send("ALICE", "ａｌｉｃｅ", "bob")
        self.assertEqual(
            bob.take(),
            [
                "!!! the nickname ALICE is taken",
                "!!! the nickname ａｌｉｃｅ is taken",
                "-!- bob has joined #lobby",
                "--- you are bob; you are in #lobby",
            ],
        )
        self.assertEqual(alice.take(), ["-!- bob has joined #lobby"])

    def test_anyScript(self) -> None:
        """Nicknames in any script work end to end."""
        zhang = self.register("张三")
        ivan = self.register("Иван")
        zhang.send("你好")
        self.assertEqual(ivan.take(), ["#lobby <张三> 你好"])

    def test_nickCommandRegisters(self) -> None:
        """``/nick NAME`` registers as well as a plain line."""
        client = self.connect()
        client.take()
        client.send("/nick alice")
        self.assertEqual(
            client.take(),
            ["-!- alice has joined #lobby", "--- you are alice; you are in #lobby"],
        )

    def test_laterLinesAreMessages(self) -> None:
        """Once registered, a plain line is said, even one that looks like a nick."""
        client = self.register("alice")
        client.send("bob")
        self.assertEqual(client.take(), ["#lobby <alice> bob"])
        self.assertEqual(self.hub.find("alice").member, client.protocol)

    def test_unregisteredCannotSpeakOrJoin(self) -> None:
        """
        Before choosing a nickname, a client cannot join, part, send actions,
        private messages or set topics; nobody else hears anything.
        """
        bob = self.register("bob")
        client = self.connect()
        client.take()
        client.send("/join games", "/part", "/me waves", "/msg bob hi", "/topic hi")
        self.assertEqual(client.take(), ["!!! choose a nickname first: /nick NAME"] * 5)
        self.assertEqual(bob.take(), [])
        self.assertNotIn("games", self.hub.rooms)

    def test_emptyLinesIgnored(self) -> None:
        """
        Empty and blank lines are ignored, before and after registration:
        no error, no message.
        """
        bob = self.register("bob")
        client = self.connect()
        client.take()
        client.send("", "   ")
        self.assertEqual(client.take(), [])
        client.send("alice", "", " \t ")
        self.assertEqual(
            client.take(),
            ["-!- alice has joined #lobby", "--- you are alice; you are in #lobby"],
        )
        self.assertEqual(bob.take(), ["-!- alice has joined #lobby"])
        self.assertEqual(self.hub.stats.room_messages, 0)


class NickTimeoutTests(ChatTestCase):
    """Connections that never choose a nickname are closed."""

    settings = ChatSettings(nick_timeout=30)

    def test_unregisteredClosed(self) -> None:
        """
        A client without a nickname after ``nick_timeout`` seconds gets an
        error line and is closed; not a moment before.
        """
        client = self.connect()
        client.take()
        client.send("bad nick")
        client.take()
        self.clock.advance(29.9)
        self.assertFalse(client.closed)
        self.clock.advance(0.1)
        self.assertEqual(client.take(), ["!!! no nickname chosen within 30 s; closing"])
        self.assertTrue(client.closed)
        client.lose()
        self.assertEqual(self.hub.connections(), [])

    def test_registeredStays(self) -> None:
        """A client that chose a nickname in time is not closed."""
        client = self.register("alice")
        self.clock.advance(300)
        self.assertEqual(client.take(), [])
        self.assertFalse(client.closed)

    def test_closedBeforeTimeout(self) -> None:
        """A client gone before the timeout leaves no timer behind."""
        client = self.connect()
        before = len(self.clock.getDelayedCalls())
        client.lose()
        self.assertEqual(len(self.clock.getDelayedCalls()), before - 2)
        self.clock.advance(60)

    def test_noTimeout(self) -> None:
        """A timeout of 0 lets a client stay without a nickname."""
        self.factory = ChatFactory(
            self.hub, self.limits, self.clock, settings=ChatSettings(nick_timeout=0)
        )
        client = self.connect()
        self.clock.advance(599)
        self.assertFalse(client.closed)


class CommandTests(ChatTestCase):
    """Every command: success, failure and usage."""

    def setUp(self) -> None:
        super().setUp()
        self.alice = self.register("alice")
        self.bob = self.register("bob")

    def test_nick(self) -> None:
        """
        ``/nick`` renames: the member and its rooms see it once; without an
        argument it gives its usage; a taken or invalid name is refused.
        """
        self.alice.send("/nick alicia")
        self.assertEqual(self.alice.take(), ["-!- alice is now known as alicia"])
        self.assertEqual(self.bob.take(), ["-!- alice is now known as alicia"])
        self.alice.send("/nick", "/nick BOB", "/nick no way")
        self.assertEqual(
            self.alice.take(),
            [
                "!!! usage: /nick NAME (at most 24 characters)",
                "!!! the nickname BOB is taken",
                "!!! a nickname has letters, digits, _ and - only (not ' ')",
            ],
        )
        self.assertEqual(self.bob.take(), [])

    def test_join(self) -> None:
        """
        ``/join`` joins (only members of the room see it), switches to a room
        already joined, shows the topic, and refuses bad names and no name.
        """
        self.alice.send("/join #games")
        self.assertEqual(self.alice.take(), ["-!- alice has joined #games"])
        self.assertEqual(self.bob.take(), [])
        self.alice.send("/topic board games", "/join lobby", "/join GAMES")
        self.assertEqual(
            self.alice.take(),
            [
                "-!- alice changed the topic of #games to: board games",
                "--- now talking in #lobby",
                "--- now talking in #games",
                "--- topic of #games: board games",
            ],
        )
        self.bob.send("/join games")
        self.assertEqual(
            self.bob.take(),
            ["-!- bob has joined #games", "--- topic of #games: board games"],
        )
        self.assertEqual(self.alice.take(), ["-!- bob has joined #games"])
        self.alice.send("/join", "/join a>b")
        self.assertEqual(
            self.alice.take(),
            [
                "!!! usage: /join ROOM",
                "!!! a room name has letters, digits, _ - and . only (not '>')",
            ],
        )

    def test_joinLimit(self) -> None:
        """Joining past the per-member room limit is refused with the limit."""
        self.hub.config = ChatConfig(max_rooms_per_member=2)
        self.alice.send("/join a", "/join b")
        self.assertEqual(
            self.alice.take(),
            [
                "-!- alice has joined #a",
                "!!! you are in 2 rooms already (limit 2); /part one first",
            ],
        )

    def test_part(self) -> None:
        """
        ``/part`` leaves the current or a named room with an optional reason,
        says which room is now current, and refuses rooms not joined.
        """
        self.alice.send("/join games")
        self.bob.send("/join games")
        self.clear()
        self.alice.send("/part games see you later")
        self.assertEqual(
            self.alice.take(),
            ["-!- alice has left #games (see you later)", "--- now talking in #lobby"],
        )
        self.assertEqual(self.bob.take(), ["-!- alice has left #games (see you later)"])
        self.alice.send("/part", "/part", "/part nowhere")
        self.assertEqual(
            self.alice.take(),
            [
                "-!- alice has left #lobby",
                "--- you are in no room; /join ROOM to talk",
                "!!! you are in no room; /join ROOM",
                "!!! you are not in #nowhere",
            ],
        )
        self.assertEqual(self.bob.take(), ["-!- alice has left #lobby"])
        self.alice.send("anyone?")
        self.assertEqual(self.alice.take(), ["!!! you are in no room; /join ROOM"])

    def test_rooms(self) -> None:
        """``/rooms`` and ``/list`` list every room with its count and topic."""
        self.alice.send("/join games", "/topic board games")
        self.clear()
        for command in ("/rooms", "/list", "/ROOMS extra words"):
            self.bob.send(command)
            self.assertEqual(
                self.bob.take(),
                ["--- 2 rooms", "--- #games (1): board games", "--- #lobby (2)"],
            )

    def test_roomsOne(self) -> None:
        """One room is "1 room"."""
        self.bob.send("/rooms")
        self.assertEqual(self.bob.take(), ["--- 1 room", "--- #lobby (2)"])

    def test_who(self) -> None:
        """
        ``/who`` and ``/names`` list the current or a named room's members;
        an unknown room is an error.
        """
        self.alice.send("/join games")
        self.alice.send("/who", "/names lobby", "/who #nowhere")
        self.assertEqual(
            self.alice.take(),
            [
                "-!- alice has joined #games",
                "--- #games (1): alice",
                "--- #lobby (2): alice bob",
                "!!! no such room: #nowhere",
            ],
        )

    def test_topic(self) -> None:
        """
        ``/topic TEXT`` sets the topic (the room sees it), ``/topic`` shows
        it, and a topic too long is refused.
        """
        self.alice.send("/topic")
        self.assertEqual(self.alice.take(), ["--- topic of #lobby: (none)"])
        self.alice.send("/topic  welcome all ")
        shown = "-!- alice changed the topic of #lobby to: welcome all"
        self.assertEqual(self.alice.take(), [shown])
        self.assertEqual(self.bob.take(), [shown])
        self.bob.send("/topic", "/topic " + "x" * 301)
        self.assertEqual(
            self.bob.take(),
            [
                "--- topic of #lobby: welcome all",
                "!!! a topic has at most 300 characters",
            ],
        )
        self.bob.send("/part", "/topic", "/topic x")
        self.assertEqual(
            self.bob.take(),
            [
                "-!- bob has left #lobby",
                "--- you are in no room; /join ROOM to talk",
                "!!! you are in no room; /join ROOM",
                "!!! you are in no room; /join ROOM",
            ],
        )

    def test_me(self) -> None:
        """``/me`` sends an action to the room; without text, its usage."""
        self.alice.send("/me waves at everyone")
        self.assertEqual(self.alice.take(), ["#lobby * alice waves at everyone"])
        self.assertEqual(self.bob.take(), ["#lobby * alice waves at everyone"])
        self.alice.send("/me", "/me   ")
        self.assertEqual(self.alice.take(), ["!!! usage: /me ACTION"] * 2)
        self.assertEqual(self.bob.take(), [])

    def test_notice(self) -> None:
        """
        ``/notice #ROOM TEXT`` sends a notice to a room the sender is in
        (its current room stays), ``/notice NICK TEXT`` to a member; each
        shows as a notice to both sides and to nobody else; usage, a room
        not joined and an unknown nickname are errors, and send nothing.
        """
        carol = self.register("carol")
        for client in (self.alice, carol):
            client.send("/join games")
        self.alice.send("/join lobby")
        for client in (self.alice, self.bob, carol):
            client.take()
        self.alice.send("/notice #games build is green", "/notice BOB your turn")
        self.assertEqual(
            self.alice.take(), ["#games -alice- build is green", "-> -bob- your turn"]
        )
        self.assertEqual(self.bob.take(), ["-alice- your turn"])
        self.assertEqual(carol.take(), ["#games -alice- build is green"])
        self.alice.send("still in the lobby")
        self.assertEqual(self.bob.take(), ["#lobby <alice> still in the lobby"])
        self.alice.take()
        carol.take()
        self.alice.send("/notice", "/notice bob", "/notice #nowhere x", "/notice zed x")
        self.assertEqual(
            self.alice.take(),
            [
                "!!! usage: /notice #ROOM TEXT or /notice NICK TEXT",
                "!!! usage: /notice #ROOM TEXT or /notice NICK TEXT",
                "!!! you are not in #nowhere",
                "!!! no such nickname: zed",
            ],
        )
        self.assertEqual((self.bob.take(), carol.take()), ([], []))

    def test_msg(self) -> None:
        """
        ``/msg`` (and ``/m``, ``/query``) reaches the recipient and confirms
        to the sender, nobody else; usage and unknown nicknames are errors.
        """
        carol = self.register("carol")
        self.alice.send("/msg BOB hi there", "/m bob two", "/query bob three")
        self.assertEqual(
            self.alice.take(),
            ["-> *bob* hi there", "-> *bob* two", "-> *bob* three"],
        )
        self.assertEqual(
            self.bob.take(), ["*alice* hi there", "*alice* two", "*alice* three"]
        )
        self.assertEqual(carol.take(), [])
        self.alice.send("/msg", "/msg bob", "/msg bob   ", "/msg nobody hi")
        self.assertEqual(
            self.alice.take(),
            [
                "!!! usage: /msg NICK TEXT",
                "!!! usage: /msg NICK TEXT",
                "!!! usage: /msg NICK TEXT",
                "!!! no such nickname: nobody",
            ],
        )
        self.assertEqual(self.bob.take(), [])

    def test_msgSelf(self) -> None:
        """A private message to oneself arrives once, as received."""
        self.alice.send("/msg alice note to self")
        self.assertEqual(self.alice.take(), ["*alice* note to self"])

    def test_whois(self) -> None:
        """
        ``/whois`` shows a member's rooms, idle time and connection age; not
        its address to a non-operator; errors for usage and unknown nicks.
        """
        self.bob.send("/join games")
        self.clock.advance(90)
        self.bob.send("hello")
        self.clock.advance(30)
        self.alice.take()
        self.alice.send("/whois BOB", "/whois", "/whois ghost")
        self.assertEqual(
            self.alice.take(),
            [
                "--- bob: in #lobby #games, idle 30s, connected 2m ago",
                "!!! usage: /whois NICK",
                "!!! no such nickname: ghost",
            ],
        )

    def test_whoisByOperator(self) -> None:
        """An operator also sees the address; everyone sees who is an operator."""
        carol = self.operator("carol", "10.0.0.3")
        carol.send("/whois bob")
        self.assertEqual(
            carol.take(),
            ["--- bob: in #lobby, idle 0s, connected 0s ago, from 10.0.0.1"],
        )
        self.bob.send("/whois carol")
        self.assertEqual(
            self.bob.take(),
            ["--- carol: in #lobby, idle 0s, connected 0s ago, operator"],
        )

    def test_quit(self) -> None:
        """
        ``/quit MESSAGE`` says goodbye, closes the connection, and the rooms
        see the message once.
        """
        carol = self.register("carol")
        self.alice.send("/join games")
        self.bob.send("/join games")
        self.clear()
        self.alice.send("/quit see you tomorrow", "ignored")
        self.assertEqual(self.alice.take(), ["-!- Goodbye."])
        self.assertTrue(self.alice.closed)
        self.assertEqual(self.bob.take(), ["-!- alice has quit (see you tomorrow)"])
        self.assertEqual(carol.take(), ["-!- alice has quit (see you tomorrow)"])
        self.alice.lose()
        self.assertEqual(self.bob.take(), [])
        self.assertEqual(self.hub.room("lobby").nicks(), ["bob", "carol"])

    def test_quitWithoutMessage(self) -> None:
        """``/quit`` and ``/exit`` without a message quit with reason "quit"."""
        self.alice.send("/exit")
        self.assertEqual(self.alice.take(), ["-!- Goodbye."])
        self.assertEqual(self.bob.take(), ["-!- alice has quit"])

    def test_help(self) -> None:
        """``/help`` lists every command, then the operators' ones."""
        self.alice.send("/help")
        self.assertEqual(
            self.alice.take(),
            [
                "--- A line not starting with / is said to your current room.",
                "--- Start it with // to say a line that starts with /.",
                "--- /nick NAME: choose or change your nickname",
                "--- /join ROOM: join a room (created if new) and talk there",
                "--- /part [ROOM [REASON]]: leave a room (default: current)",
                "--- /rooms: list rooms with member counts and topics",
                "--- /who [ROOM]: list the members of a room",
                "--- /topic [TEXT|-]: show, set, or (with -) clear the current "
                "room's topic",
                "--- /me ACTION: say an action: /me waves",
                "--- /msg NICK TEXT: send a private message",
                "--- /notice #ROOM|NICK TEXT: send a notice to a room you are in, "
                "or to a nick (never answered)",
                "--- /whois NICK: show a user's rooms and idle time",
                "--- /quit [MESSAGE]: leave the chat",
                "--- /help [COMMAND]: list commands, or explain one",
                "--- /oper NAME PASSWORD: log in as an operator",
                "--- /timestamps [on|off]: start each line of what happens with "
                "its time: @time=... (UTC)",
                "--- Operators (after /oper) also have:",
                "--- /broadcast TEXT: send a notice to every connected client",
                "--- /kick NICK [REASON]: disconnect a client; it and its rooms "
                "see why",
                "--- /ban NICK|ADDRESS[/BITS] [DURATION] [REASON]: ban a nickname or "
                "address for DURATION (30s, 10m, 2h, 1d, forever; default 1h) and "
                "kick who it matches",
                "--- /unban NICK|ADDRESS: lift a ban",
                "--- /bans: list the bans in force",
                "--- /limit [N]: show or set the maximum number of clients (0: none)",
                "--- /list: list connections: nick, address, rooms, idle, "
                "connected since",
                "--- /stats: show statistics",
            ],
        )

    def test_helpCommand(self) -> None:
        """
        ``/help CMD`` explains one command (with or without ``/``, aliases
        too); an unknown one is an error.
        """
        self.alice.send("/help msg", "/help /JOIN", "/help names", "/help kick")
        self.assertEqual(
            self.alice.take(),
            [
                "--- /msg NICK TEXT: send a private message",
                "--- /join ROOM: join a room (created if new) and talk there",
                "--- /names [ROOM]: list the members of a room",
                "--- /kick NICK [REASON]: disconnect a client; it and its rooms "
                "see why",
            ],
        )
        self.alice.send("/help dance")
        self.assertEqual(
            self.alice.take(), ["!!! no command /dance; /help lists commands"]
        )

    def test_helpBeforeRegistration(self) -> None:
        """Help works before a nickname is chosen."""
        client = self.connect()
        client.take()
        client.send("/help quit")
        self.assertEqual(client.take(), ["--- /quit [MESSAGE]: leave the chat"])

    def test_unknownCommand(self) -> None:
        """An unknown command is an error naming it; nothing is said."""
        self.alice.send("/dance wildly", "/")
        self.assertEqual(
            self.alice.take(),
            [
                "!!! unknown command /dance; /help lists commands",
                "!!! unknown command /; /help lists commands",
            ],
        )
        self.assertEqual(self.bob.take(), [])

    def test_commandCase(self) -> None:
        """Command names are case-insensitive."""
        self.alice.send("/JOIN games", "/Who")
        self.assertEqual(
            self.alice.take(), ["-!- alice has joined #games", "--- #games (1): alice"]
        )

    def test_slashEscape(self) -> None:
        """A line starting with ``//`` says the line with one ``/`` less."""
        self.alice.send("//shrug", "//", "///x")
        said = ["#lobby <alice> /shrug", "#lobby <alice> /", "#lobby <alice> //x"]
        self.assertEqual(self.alice.take(), said)
        self.assertEqual(self.bob.take(), said)


class OperTests(ChatTestCase):
    """``/oper`` with a fake authenticator."""

    def setUp(self) -> None:
        super().setUp()
        self.alice = self.register("alice", "10.0.0.5")

    def test_success(self) -> None:
        """
        Good credentials make the client an operator; the authenticator is
        asked with the client's address.
        """
        self.alice.send("/oper root s3cret")
        self.assertEqual(
            self.alice.take(),
            ["--- you are now an operator (as root); /help lists your commands"],
        )
        self.assertEqual(self.hub.find("alice").operator, "root")
        self.assertEqual(self.authenticator.calls, [("root", "s3cret", "10.0.0.5")])

    def test_passwordWithSpaces(self) -> None:
        """Everything after the name is the password, spaces included."""
        self.alice.send("/oper root my pass word")
        self.assertEqual(self.alice.take(), ["!!! login failed"])
        self.assertEqual(
            self.authenticator.calls, [("root", "my pass word", "10.0.0.5")]
        )

    def test_failure(self) -> None:
        """Bad credentials give the authenticator's message; no rights."""
        self.alice.send("/oper root wrong", "/oper nobody s3cret")
        self.assertEqual(self.alice.take(), ["!!! login failed"] * 2)
        self.assertIsNone(self.hub.find("alice").operator)

    def test_usage(self) -> None:
        """Without a name and a password, ``/oper`` gives its usage."""
        self.alice.send("/oper", "/oper root")
        self.assertEqual(self.alice.take(), ["!!! usage: /oper NAME PASSWORD"] * 2)
        self.assertEqual(self.authenticator.calls, [])

    def test_noAuthenticator(self) -> None:
        """Without credentials configured, ``/oper`` says there are no operators."""
        self.factory.authenticator = None
        self.alice.send("/oper root s3cret")
        self.assertEqual(
            self.alice.take(),
            ["!!! this server has no operators (started without --credentials)"],
        )

    def test_linesWaitForLogin(self) -> None:
        """
        While a login is being checked, the lines sent after it wait; once
        it is answered they are handled in order, with the rights it gave.
        """
        bob = self.register("bob")
        self.authenticator.hold = True
        self.alice.send("/oper root s3cret", "/limit", "after")
        self.assertEqual(self.alice.take(), [])
        self.assertEqual(bob.take(), [])
        self.authenticator.answer()
        self.assertEqual(
            self.alice.take(),
            [
                "--- you are now an operator (as root); /help lists your commands",
                "--- clients: 2 connected, limit 1000",
                "#lobby <alice> after",
            ],
        )
        self.assertEqual(bob.take(), ["#lobby <alice> after"])
        self.assertEqual(len(self.authenticator.calls), 1)

    def test_linesWaitForFailedLogin(self) -> None:
        """After a failed login, the waiting lines run without operator rights."""
        self.authenticator.hold = True
        self.alice.send("/oper root wrong", "/limit")
        self.assertEqual(self.alice.take(), [])
        self.authenticator.answer()
        self.assertEqual(
            self.alice.take(), ["!!! login failed", NOT_OPERATOR.format("limit")]
        )

    def test_answerAfterQuit(self) -> None:
        """A login answered after the client left grants nothing, writes nothing."""
        self.authenticator.hold = True
        self.alice.send("/oper root s3cret", "/quit")
        self.alice.take()
        self.alice.lose()
        self.authenticator.answer()
        self.assertEqual(self.alice.take(), [])

    def test_beforeRegistration(self) -> None:
        """A client may log in before choosing a nickname."""
        client = self.connect()
        client.take()
        client.send("/oper root s3cret", "/limit")
        self.assertEqual(
            client.take(),
            [
                "--- you are now an operator (as root); /help lists your commands",
                "--- clients: 2 connected, limit 1000",
            ],
        )


class OperatorCommandTests(ChatTestCase):
    """The server powers, from operators and from everyone else."""

    def setUp(self) -> None:
        super().setUp()
        self.alice = self.register("alice", "10.0.0.1")
        self.bob = self.register("bob", "10.0.0.2")
        self.carol = self.register("carol", "10.0.0.3")

    def test_notOperator(self) -> None:
        """
        Every operator command from a non-operator is refused with one error
        line, and has no effect.
        """
        for command in (
            "/kick bob",
            "/ban bob",
            "/unban bob",
            "/bans",
            "/broadcast hi",
            "/limit 1",
            "/stats",
        ):
            self.alice.send(command)
            name = command.split()[0][1:]
            self.assertEqual(self.alice.take(), [NOT_OPERATOR.format(name)])
        self.assertEqual(self.bob.take(), [])
        self.assertFalse(self.bob.closed)
        self.assertEqual(self.hub.bans(), [])
        self.assertEqual(self.hub.max_clients, 1000)

    def test_listNotOperator(self) -> None:
        """For everyone else, ``/list`` is ``/rooms``: no connection listing."""
        self.alice.send("/list")
        self.assertEqual(self.alice.take(), ["--- 1 room", "--- #lobby (3)"])

    def test_broadcast(self) -> None:
        """
        ``/broadcast`` reaches every client, registered or not, as an
        announcement by the operator; the operator hears how many.
        """
        op = self.operator("op", "10.0.0.9")
        stranger = self.connect()
        stranger.take()
        op.send("/broadcast restart at \x1b[5m6")
        announced = "*** op: restart at ^[[5m6"
        self.assertEqual(op.take(), [announced, "--- announced to 5 clients"])
        for client in (self.alice, self.bob, self.carol, stranger):
            self.assertEqual(client.take(), [announced])
        op.send("/broadcast")
        self.assertEqual(op.take(), ["!!! usage: broadcast TEXT"])

    def test_kick(self) -> None:
        """
        ``/kick`` disconnects the victim, who sees why; its rooms see it once;
        others nothing; the operator gets a confirmation.
        """
        op = self.operator("op", "10.0.0.9")
        self.carol.send("/part")
        self.clear()
        op.send("/kick BOB flooding the room")
        notice = "-!- bob was kicked by op (flooding the room)"
        self.assertEqual(op.take(), [notice, "--- kicked bob"])
        self.assertEqual(self.alice.take(), [notice])
        self.assertEqual(
            self.bob.take(),
            [notice, "!!! disconnected: kicked by op: flooding the room"],
        )
        self.assertTrue(self.bob.closed)
        self.assertEqual(self.carol.take(), [])
        self.bob.send("still here?")
        self.bob.lose()
        self.assertEqual(self.alice.take(), [])
        self.assertEqual(self.hub.room("lobby").nicks(), ["alice", "op"])

    def test_kickErrors(self) -> None:
        """``/kick`` without a nickname, or an unknown one, is an error."""
        op = self.operator("op", "10.0.0.9")
        op.send("/kick", "/kick ghost")
        self.assertEqual(
            op.take(),
            ["!!! usage: kick NICK [REASON]", "!!! no such nickname: ghost"],
        )

    def test_banNick(self) -> None:
        """
        ``/ban NICK DURATION REASON`` kicks the holder, and the nickname
        cannot be taken until the ban ends.
        """
        op = self.operator("op", "10.0.0.9")
        op.send("/ban bob 10m spamming")
        notice = "-!- bob was kicked by op (banned for 10m: spamming)"
        self.assertEqual(
            op.take(), [notice, "--- banned bob for 10m and disconnected bob"]
        )
        self.assertEqual(
            self.bob.take(),
            [notice, "!!! disconnected: kicked by op: banned for 10m: spamming"],
        )
        self.bob.lose()
        again = self.connect("10.0.0.2")
        again.take()
        again.send("bob", "Bob")
        self.assertEqual(
            again.take(),
            [
                "!!! the nickname bob is banned for 10m: spamming",
                "!!! the nickname Bob is banned for 10m: spamming",
            ],
        )
        again.lose()
        self.clock.advance(600)
        self.register("bob", "10.0.0.2")

    def test_banAddress(self) -> None:
        """
        ``/ban ADDRESS`` disconnects every client from it and refuses new
        ones with the terms of the ban; ``/unban`` lets them in again.
        """
        op = self.operator("op", "10.0.0.9")
        lurker = self.connect("10.0.0.2")
        lurker.take()
        op.send("/ban 10.0.0.2")
        self.assertEqual(
            op.take(),
            [
                "-!- bob was kicked by op (banned for 1h)",
                "--- banned 10.0.0.2/32 for 1h and disconnected bob, 10.0.0.2",
            ],
        )
        self.assertEqual(
            self.bob.take(),
            [
                "-!- bob was kicked by op (banned for 1h)",
                "!!! disconnected: kicked by op: banned for 1h",
            ],
        )
        self.assertEqual(lurker.take(), ["!!! disconnected: banned for 1h"])
        self.assertTrue(self.bob.closed and lurker.closed)
        refused = self.connect("10.0.0.2")
        self.assertEqual(refused.take(), ["!!! you are banned for 1h"])
        self.assertTrue(refused.closed)
        op.send("/bans", "/unban 10.0.0.2", "/bans")
        self.assertEqual(
            op.take(),
            [
                "--- 10.0.0.2/32 for 1h by op",
                "--- unbanned 10.0.0.2/32",
                "--- no bans",
            ],
        )
        self.assertEqual(self.connect("10.0.0.2").take(), [GREETING])

    def test_banNetwork(self) -> None:
        """A CIDR ban disconnects every client in the network."""
        op = self.operator("op", "192.0.2.1")
        op.send("/ban 10.0.0.0/24 forever raid")
        lines = op.take()
        self.assertEqual(
            lines[-1],
            "--- banned 10.0.0.0/24 until unbanned and disconnected alice, bob, carol",
        )
        for client in (self.alice, self.bob, self.carol):
            self.assertTrue(client.closed)
        refused = self.connect("10.0.0.200")
        self.assertEqual(refused.take(), ["!!! you are banned until unbanned: raid"])

    def test_unbanAndBansErrors(self) -> None:
        """``/unban`` needs a target that is banned; ``/bans`` may be empty."""
        op = self.operator("op", "10.0.0.9")
        op.send("/unban", "/unban nobody", "/bans", "/ban", "/ban bad!nick")
        self.assertEqual(
            op.take(),
            [
                "!!! usage: unban NICK|ADDRESS",
                "!!! no ban on nobody",
                "--- no bans",
                "!!! usage: ban NICK|ADDRESS[/BITS] [DURATION] [REASON]",
                "!!! a nickname has letters, digits, _ and - only (not '!')",
            ],
        )

    def test_limit(self) -> None:
        """
        ``/limit`` shows the client limit; ``/limit N`` sets it: connected
        clients stay, the next one gets "server full" and is closed.
        """
        op = self.operator("op", "10.0.0.9")
        op.send("/limit", "/limit 4", "/limit lots", "/limit -1")
        self.assertEqual(
            op.take(),
            [
                "--- clients: 4 connected, limit 1000",
                "--- clients: 4 connected, limit 4",
                "!!! usage: limit [N]",
                "!!! the client limit is 0 (none) or more",
            ],
        )
        refused = self.connect("10.0.0.50")
        self.assertEqual(
            refused.take(), ["!!! server full (4 clients); please try again later"]
        )
        self.assertTrue(refused.closed)
        refused.lose()
        self.assertEqual(len(self.hub.sessions), 4)
        op.send("/limit 0")
        self.assertEqual(op.take(), ["--- clients: 4 connected, limit no limit"])
        self.assertEqual(self.connect("10.0.0.50").take(), [GREETING])

    def test_list(self) -> None:
        """
        An operator's ``/list`` lists every connection: nickname, operator
        mark, address, rooms, idle time and when it connected.
        """
        stranger = self.connect("10.0.0.4")
        self.clock.advance(65)
        op = self.operator("op", "10.0.0.9")
        self.alice.send("/join games")
        self.clock.advance(5)
        op.send("/list")

        def since(age: float) -> str:
            return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(WALL_CLOCK - age))

        self.assertEqual(
            op.take(),
            [
                "--- 5 connections",
                f"--- alice 10.0.0.1 rooms #lobby #games idle 1m10s since {since(70)}",
                f"--- bob 10.0.0.2 rooms #lobby idle 1m10s since {since(70)}",
                f"--- carol 10.0.0.3 rooms #lobby idle 1m10s since {since(70)}",
                f"--- (no nick) 10.0.0.4 rooms - idle 1m10s since {since(70)}",
                f"--- op (operator) 10.0.0.9 rooms #lobby idle 5s since {since(5)}",
            ],
        )
        stranger.take()

    def test_stats(self) -> None:
        """``/stats`` shows uptime, clients, rooms and the counters."""
        op = self.operator("op", "10.0.0.9")
        self.alice.send("hello")
        self.alice.send("/msg bob hi")
        self.clock.advance(125)
        op.send("/stats")
        self.assertEqual(
            op.take(),
            [
                "#lobby <alice> hello",
                "--- uptime 2m5s",
                "--- clients 4 (peak 4, limit 1000, total 4, "
                "refused 0: 0 banned, 0 full)",
                "--- registered 4, rooms 1",
                # joins: 1 + 2 + 3 + 4; "hello" to 4; the private message to 2
                "--- messages 1 to rooms, 1 private, 16 deliveries",
                "--- kicks 0, bans 0 (0 in force), announcements 0",
            ],
        )


class TranscriptTests(ChatTestCase):
    """Several clients, and everything each of them sees."""

    def test_twoUsers(self) -> None:
        """
        Two users: registration, talk, an action, a private message, a
        rename and a quit.
        """
        alice = self.connect()
        alice.send("alice")
        bob = self.connect("10.0.0.2")
        bob.send("bob")
        alice.send("hello bob")
        bob.send("/me waves")
        alice.send("/msg bob psst")
        bob.send("/nick robert")
        bob.send("hi alice")
        alice.send("/quit bye now")
        self.assertEqual(
            alice.take(),
            [
                GREETING,
                "-!- alice has joined #lobby",
                "--- you are alice; you are in #lobby",
                "-!- bob has joined #lobby",
                "#lobby <alice> hello bob",
                "#lobby * bob waves",
                "-> *bob* psst",
                "-!- bob is now known as robert",
                "#lobby <robert> hi alice",
                "-!- Goodbye.",
            ],
        )
        self.assertEqual(
            bob.take(),
            [
                GREETING,
                "-!- bob has joined #lobby",
                "--- you are bob; you are in #lobby",
                "#lobby <alice> hello bob",
                "#lobby * bob waves",
                "*alice* psst",
                "-!- bob is now known as robert",
                "#lobby <robert> hi alice",
                "-!- alice has quit (bye now)",
            ],
        )

    def test_threeUsersRooms(self) -> None:
        """
        Three users in overlapping rooms: each sees exactly the messages of
        its rooms, private messages reach only their two ends, and a quit is
        seen once by each neighbour.
        """
        alice = self.register("alice")
        bob = self.register("bob")
        carol = self.register("carol")
        alice.send("/join games")
        bob.send("/join games")
        alice.send("who wants to play?")
        carol.send("anyone in the lobby?")
        bob.send("/join lobby", "me!")
        bob.send("/msg carol between us")
        carol.send("/topic quiet evening")
        bob.send("/quit")
        self.assertEqual(
            alice.take(),
            [
                "-!- alice has joined #games",
                "-!- bob has joined #games",
                "#games <alice> who wants to play?",
                "#lobby <carol> anyone in the lobby?",
                "#lobby <bob> me!",
                "-!- carol changed the topic of #lobby to: quiet evening",
                "-!- bob has quit",
            ],
        )
        self.assertEqual(
            bob.take(),
            [
                "-!- bob has joined #games",
                "#games <alice> who wants to play?",
                "#lobby <carol> anyone in the lobby?",
                "--- now talking in #lobby",
                "#lobby <bob> me!",
                "-> *carol* between us",
                "-!- carol changed the topic of #lobby to: quiet evening",
                "-!- Goodbye.",
            ],
        )
        self.assertEqual(
            carol.take(),
            [
                "#lobby <carol> anyone in the lobby?",
                "#lobby <bob> me!",
                "*bob* between us",
                "-!- carol changed the topic of #lobby to: quiet evening",
                "-!- bob has quit",
            ],
        )

    def test_privateReachesNobodyElse(self) -> None:
        """A private message reaches no third client, whatever its rooms."""
        alice = self.register("alice")
        bob = self.register("bob")
        others = [self.register(f"user{i}") for i in range(3)]
        others[0].send("/msg alice hi")
        self.assertEqual(alice.take(), ["*user0* hi"])
        self.assertEqual(others[0].take(), ["-> *alice* hi"])
        for client in [bob, *others[1:]]:
            self.assertEqual(client.take(), [])

    def test_escapeSequencesStripped(self) -> None:
        """
        An escape sequence, tab, bell and bidi override from alice reach bob
        in visible form, in messages, actions, private messages and topics;
        no control byte reaches bob's transport.
        """
        alice = self.register("alice")
        bob = self.register("bob")
        alice.send(
            "\x1b[2J\x1b[31mred\tbell\x07",
            "/me \x1b]0;pwned\x07",
            "/msg bob \u202eevil",
            "/topic \x1b[5mblink",
            "/part lobby \x1b[Kbye",
        )
        data = bob.transport.value()
        self.assertNotIn(b"\x1b", data)
        self.assertNotIn(b"\x07", data)
        self.assertNotIn("\u202e".encode(), data)
        self.assertEqual(
            bob.take(),
            [
                "#lobby <alice> ^[[2J^[[31mred^Ibell^G",
                "#lobby * alice ^[]0;pwned^G",
                "*alice* <U+202E>evil",
                "-!- alice changed the topic of #lobby to: ^[[5mblink",
                "-!- alice has left #lobby (^[[Kbye)",
            ],
        )

    def test_kickReasonStripped(self) -> None:
        """An operator's kick reason reaches the victim in visible form."""
        op = self.operator("op")
        bob = self.register("bob")
        op.send("/kick bob \x1b[31mgo")
        self.assertEqual(
            bob.take(),
            [
                "-!- bob was kicked by op (^[[31mgo)",
                "!!! disconnected: kicked by op: ^[[31mgo",
            ],
        )

    def test_halfClose(self) -> None:
        """
        When a client's input ends, its last line (even without a terminator)
        is handled, its rooms see it quit with "end of input", and it is
        closed.
        """
        alice = self.register("alice")
        bob = self.register("bob")
        alice.protocol.dataReceived(b"last words")
        alice.protocol.readConnectionLost()
        self.assertEqual(alice.take(), ["#lobby <alice> last words"])
        self.assertTrue(alice.closed)
        self.assertEqual(
            bob.take(),
            ["#lobby <alice> last words", "-!- alice has quit (end of input)"],
        )
        alice.lose()
        self.assertEqual(bob.take(), [])
        self.assertEqual(self.hub.room("lobby").nicks(), ["bob"])

    def test_disconnectMidLine(self) -> None:
        """
        A client that disconnects in the middle of a line quits: the partial
        line is not said, and its rooms see the quit once.
        """
        alice = self.register("alice")
        bob = self.register("bob")
        alice.protocol.dataReceived(b"half a li")
        alice.lose(ConnectionLost)
        self.assertEqual(bob.take(), ["-!- alice has quit (connection closed)"])
        self.assertRaises(ChatError, self.hub.find, "alice")
        self.assertEqual(self.hub.stats.room_messages, 0)

    def test_shutdown(self) -> None:
        """
        ``closeAll`` tells every client, registered or not, that the server
        is shutting down: that is the last line each gets, even while the
        others' connections end; the result fires when all are gone.
        """
        alice = self.register("alice")
        bob = self.register("bob")
        stranger = self.connect()
        stranger.take()
        done = self.factory.closeAll()
        self.assertNoResult(done)
        goodbye = ["*** Server shutting down. Goodbye."]
        for client in (alice, bob, stranger):
            self.assertTrue(client.closed)
        alice.lose()
        stranger.lose()
        self.assertNoResult(done)
        bob.lose()
        self.successResultOf(done)
        for client in (alice, bob, stranger):
            self.assertEqual(client.take(), goodbye)
        self.assertEqual(self.hub.connections(), [])

    def test_deliveriesAfterCloseDropped(self) -> None:
        """
        A client being closed (here for a line too long) gets nothing after
        its last line, though it is still in its rooms until the connection
        ends.
        """
        alice = self.register("alice")
        bob = self.register("bob")
        bob.protocol.dataReceived(b"x" * 5000 + b"\n")
        self.assertEqual(
            bob.take(), ["!!! line too long (limit 4096 bytes); closing connection"]
        )
        alice.send("are you there?")
        self.assertEqual(bob.take(), [])
        bob.lose()
        self.assertEqual(
            alice.take(),
            ["#lobby <alice> are you there?", "-!- bob has quit (line too long)"],
        )


class LimitTests(ChatTestCase):
    """Refusing connections: the hub's client limit and the per-address limit."""

    config = ChatConfig(max_clients=2)
    limits = Limits(max_per_address=2)

    def test_serverFull(self) -> None:
        """
        Past the hub's client limit (registered clients), a connection gets
        one ``!!!`` line and is closed without a greeting; when a client
        leaves, a new one gets in.
        """
        first = self.register("alice", "10.0.0.1")
        self.register("bob", "10.0.0.2")
        refused = self.connect("10.0.0.3")
        self.assertEqual(
            refused.take(), ["!!! server full (2 clients); please try again later"]
        )
        self.assertTrue(refused.closed)
        refused.send("alice")
        self.assertEqual(refused.take(), [])
        refused.lose()
        self.assertEqual(self.hub.stats.refused, 1)
        first.lose()
        self.assertEqual(self.connect("10.0.0.3").take(), [GREETING])

    def test_fullAtRegistration(self) -> None:
        """
        Connections still choosing a nickname take no place: when every
        place is taken by the time one registers, it gets the refusal and is
        closed, holding no nickname.
        """
        first = self.register("alice", "10.0.0.1")
        waiting = self.connect("10.0.0.2")
        self.register("bob", "10.0.0.3")
        waiting.send("carol")
        self.assertEqual(
            waiting.take(), ["!!! server full (2 clients); please try again later"]
        )
        self.assertTrue(waiting.closed)
        self.assertRaises(ChatError, self.hub.find, "carol")
        self.assertEqual(self.hub.registered, 2)
        first.lose()
        self.assertEqual(self.hub.registered, 1)

    def test_perAddress(self) -> None:
        """
        Past the per-address limit, a connection from that address gets one
        ``!!!`` line and is closed, and the hub never sees it; other addresses
        are unaffected.
        """
        self.hub.set_max_clients(0)
        self.connect("10.0.0.1")
        self.connect("10.0.0.1")
        refused = self.connect("10.0.0.1")
        self.assertEqual(
            refused.take(), ["!!! too many connections from 10.0.0.1 (limit 2)"]
        )
        self.assertTrue(refused.closed)
        self.assertEqual(len(self.hub.sessions), 2)
        refused.lose()
        self.assertEqual(self.connect("10.0.0.2").take(), [GREETING])


class BufferingTransport(StringTransport):
    """
    Like Twisted's TCP transport with a client that reads nothing: it pauses
    its streaming producer once it holds more than ``bufferSize`` bytes, on
    every write from then on, and records an abort.
    """

    bufferSize = 1000
    aborted = False

    def write(self, data: bytes) -> None:
        super().write(data)
        if self.producer is not None and len(self.value()) > self.bufferSize:
            self.producer.pauseProducing()

    def abortConnection(self) -> None:
        self.aborted = True
        super().abortConnection()


class SendQueueTests(ChatTestCase):
    """Clients that do not read what the room sends them."""

    limits = Limits(max_send_queue=1000, flood_burst=100)

    def test_roomMessagesCount(self) -> None:
        """
        Room messages waiting for a client whose transport is full count
        towards the send queue: past it, the client is cut off, gets nothing
        more, and its rooms see it quit for that reason.
        """
        alice = self.register("alice")
        bob = self.register("bob")
        bob.protocol.pauseProducing()  # what a full transport buffer does
        alice.send(*["x" * 100] * 8)
        end_turn(self.factory)
        self.assertFalse(bob.transport.disconnected)
        alice.send(*["y" * 100] * 2)
        end_turn(self.factory)
        self.assertTrue(bob.transport.disconnected)
        self.assertEqual(len(bob.take()), 8)
        alice.send("more")
        self.assertEqual(bob.take(), [])
        bob.lose(ConnectionLost)
        self.assertEqual(alice.take()[-1], "-!- bob has quit (send queue exceeded)")

    def lazy_member(self) -> tuple[ChatProtocol, BufferingTransport]:
        """A registered member whose client reads nothing."""
        transport = BufferingTransport(peerAddress=IPv4Address("TCP", "10.0.0.9", 1))
        lazy = self.factory.buildProtocol(transport.getPeer())
        assert isinstance(lazy, ChatProtocol)
        lazy.makeConnection(transport)
        lazy.dataReceived(b"lazy\r\n")
        end_turn(self.factory)
        transport.clear()
        return lazy, transport

    def test_oneTurnOverLimit(self) -> None:
        """
        A member that reads nothing and is sent more in one turn than its
        transport buffers plus the send queue is cut off at the end of that
        turn: the turn's deliveries, written at once, count too.
        """
        alice = self.register("alice")
        lazy, transport = self.lazy_member()
        alice.send(*["y" * 100] * 30)  # about 3.5 KB for lazy in one turn
        end_turn(self.factory)
        self.assertTrue(transport.aborted)
        self.assertEqual(lazy.lost_reason, "send queue exceeded")

    def test_oneTurnWithinLimit(self) -> None:
        """Within the transport's buffer plus the send queue, nobody is cut."""
        alice = self.register("alice")
        _, transport = self.lazy_member()
        alice.send(*["y" * 100] * 15)  # about 1.8 KB for lazy in one turn
        end_turn(self.factory)
        self.assertFalse(transport.aborted)
        self.assertEqual(
            len(transport.value()), 15 * len("#lobby <alice> " + "y" * 102)
        )


class WriteBatchingTests(ChatTestCase):
    """
    Everything a reactor turn delivers to a client leaves in one write at
    the end of the turn; a client's replies to its own read leave at once.
    """

    limits = Limits(flood_burst=100)

    def count_writes(self, client: Client) -> list[bytes]:
        writes: list[bytes] = []
        original = client.transport.write

        def write(data: bytes) -> None:
            writes.append(data)
            original(data)

        client.transport.write = write  # type: ignore[method-assign]
        return writes

    def test_oneWritePerRecipientPerTurn(self) -> None:
        """
        Five lines in one read from alice and two in a read from carol, in
        the same reactor turn, reach bob as one write at the end of the turn,
        in the order they were said, and so do alice's and carol's own
        copies.  The hub delivers the seven messages to each member as one
        event.
        """
        alice, bob, carol = (self.register(n) for n in ("alice", "bob", "carol"))
        writes = {c: self.count_writes(c) for c in (alice, bob, carol)}
        delivered: list[events.Event] = []
        deliver = bob.protocol.deliver

        def recording(event: events.Event) -> None:
            delivered.append(event)
            deliver(event)

        bob.protocol.deliver = recording  # type: ignore[method-assign]
        alice.send(*(f"line {n}" for n in range(5)))
        carol.send("one", "two")
        self.assertEqual(writes, {alice: [], bob: [], carol: []})  # not yet
        from_alice = [f"#lobby <alice> line {n}" for n in range(5)]
        from_carol = ["#lobby <carol> one", "#lobby <carol> two"]
        for client in (alice, bob, carol):
            self.assertEqual(client.take(), from_alice + from_carol)
            self.assertEqual(len(writes[client]), 1)
        self.assertEqual(len(delivered), 1)
        self.assertIsInstance(delivered[0], events.RoomMessages)

    def test_repliesAfterDeliveriesKeepOrder(self) -> None:
        """
        A reply to bob's own command, made while a message to bob waits for
        the end of the turn, reaches bob after that message, not before.
        """
        alice, bob = self.register("alice"), self.register("bob")
        alice.send("first")
        bob.send("/topic")
        self.assertEqual(
            bob.take(), ["#lobby <alice> first", "--- topic of #lobby: (none)"]
        )

    def test_ownMessageBeforeOwnReply(self) -> None:
        """
        A client that says something and then asks something, in one read,
        sees its message before the answer, and the others see the message.
        """
        alice, bob = self.register("alice"), self.register("bob")
        alice.send("hi", "/topic", "bye")
        self.assertEqual(
            alice.take(),
            ["#lobby <alice> hi", "--- topic of #lobby: (none)", "#lobby <alice> bye"],
        )
        self.assertEqual(bob.take(), ["#lobby <alice> hi", "#lobby <alice> bye"])

    def test_closedMemberGetsWhatWasSaidBefore(self) -> None:
        """
        A member closed in the turn in which something was said to its room
        (here for a line too long) gets that message before its last line.
        """
        alice, bob = self.register("alice"), self.register("bob")
        alice.send("hi")
        bob.send("x" * 5000)
        self.assertEqual(
            bob.take(),
            [
                "#lobby <alice> hi",
                "!!! line too long (limit 4096 bytes); closing connection",
            ],
        )

    def test_ownMessageBeforeOwnCut(self) -> None:
        """A client cut for a long line sees what it said just before."""
        alice, bob = self.register("alice"), self.register("bob")
        alice.send("hi", "x" * 5000)
        self.assertEqual(
            alice.take(),
            [
                "#lobby <alice> hi",
                "!!! line too long (limit 4096 bytes); closing connection",
            ],
        )
        self.assertEqual(bob.take(), ["#lobby <alice> hi"])

    def test_lastWordsBeforeShutdown(self) -> None:
        """
        What was said in the turn the service stops reaches every member
        before the shutdown line.
        """
        clients = [self.register(nick) for nick in ("alice", "bob", "carol")]
        clients[0].send("last words")
        self.factory.closeAll()
        for client in clients:
            self.assertEqual(
                client.take(),
                ["#lobby <alice> last words", "*** Server shutting down. Goodbye."],
            )

    def test_failedWriteDoesNotStopOthers(self) -> None:
        """
        If writing one member's deliveries fails, the failure is logged and
        the other members still get theirs.
        """
        alice, bob, carol = (self.register(n) for n in ("alice", "bob", "carol"))

        def broken(data: bytes) -> None:
            raise RuntimeError("broken transport")

        bob.transport.write = broken  # type: ignore[method-assign]
        alice.send("hi")
        self.assertEqual(carol.take(), ["#lobby <alice> hi"])
        self.assertEqual(alice.take(), ["#lobby <alice> hi"])
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)

    def test_outsideAReadDeliveriesLeaveAtTurnEnd(self) -> None:
        """
        An event that no read caused (a client vanishing) is written at the
        end of the turn too.
        """
        alice, bob = self.register("alice"), self.register("bob")
        alice.lose()
        self.assertEqual(bob.transport.value(), b"")
        self.assertEqual(bob.take(), ["-!- alice has quit (connection closed)"])

    def test_lostBeforeTurnEnd(self) -> None:
        """
        A client whose connection is lost with deliveries still queued is
        written nothing more, and the others still get theirs.
        """
        alice, bob, carol = (self.register(n) for n in ("alice", "bob", "carol"))
        alice.send("hello")
        bob.lose()
        self.assertEqual(bob.take(), [])
        self.assertEqual(
            carol.take(),
            ["#lobby <alice> hello", "-!- bob has quit (connection closed)"],
        )

    def test_queuedThenClosedKeepsOrder(self) -> None:
        """
        A client kicked in the same read that sent it messages gets those
        messages first, then its disconnection line, then nothing.
        """
        op = self.operator("op")
        bob = self.register("bob")
        op.send("before the kick", "/kick bob enough", "after the kick")
        self.assertEqual(
            bob.take(),
            [
                "#lobby <op> before the kick",
                "-!- bob was kicked by op (enough)",
                "!!! disconnected: kicked by op: enough",
            ],
        )


class RenderTests(SynchronousTestCase):
    """render(): the line of each event."""

    def test_everyEvent(self) -> None:
        """Each event has its documented line."""
        for event, line in [
            (events.RoomMessage("r", "a", "hi"), "#r <a> hi"),
            (events.RoomMessage("r", "a", "waves", True), "#r * a waves"),
            (events.RoomMessage("r", "a", "note", notice=True), "#r -a- note"),
            (events.Joined("r", "a"), "-!- a has joined #r"),
            (events.Parted("r", "a"), "-!- a has left #r"),
            (events.Parted("r", "a", "bye"), "-!- a has left #r (bye)"),
            (events.Quit("a"), "-!- a has quit"),
            (events.Quit("a", "bye"), "-!- a has quit (bye)"),
            (events.NickChanged("a", "b"), "-!- a is now known as b"),
            (events.TopicChanged("r", "a", "t"), "-!- a changed the topic of #r to: t"),
            (events.TopicChanged("r", "a", ""), "-!- a cleared the topic of #r"),
            (events.Kicked("a", "op"), "-!- a was kicked by op"),
            (events.Kicked("a", "op", "why"), "-!- a was kicked by op (why)"),
            (events.Announcement("note", "op"), "*** op: note"),
        ]:
            self.assertEqual(render(event), line)

    def test_privateLines(self) -> None:
        """A private message and a private notice, received and as the copy."""
        message = events.PrivateMessage("a", "b", "hi")
        notice = events.PrivateMessage("a", "b", "note", notice=True)
        self.assertEqual(private_line(message, received=True), "*a* hi")
        self.assertEqual(private_line(message, received=False), "-> *b* hi")
        self.assertEqual(private_line(notice, received=True), "-a- note")
        self.assertEqual(private_line(notice, received=False), "-> -b- note")

    def test_historyLines(self) -> None:
        """A message, an action and a notice replayed: time, then as live."""
        at = 1_700_000_000.0
        for said, line in [
            (
                events.RoomMessage("r", "a", "hi", at=at),
                "#r [2023-11-14 22:13:20] <a> hi",
            ),
            (
                events.RoomMessage("r", "a", "waves", True, at=at),
                "#r [2023-11-14 22:13:20] * a waves",
            ),
            (
                events.RoomMessage("r", "a", "note", notice=True, at=at),
                "#r [2023-11-14 22:13:20] -a- note",
            ),
        ]:
            self.assertEqual(render_history(said), line)

    def test_unknownEvent(self) -> None:
        """An event without a line format is a TypeError, not a silent drop."""
        self.assertRaises(TypeError, render, events.PrivateMessage("a", "b", "private"))


class TimestampTests(ChatTestCase):
    """``/timestamps``: event lines that carry the server's time."""

    def test_offByDefault(self) -> None:
        """Without ``/timestamps on`` no line carries a time (the transcripts)."""
        alice, bob = self.register("alice"), self.register("bob")
        alice.send("hi")
        self.assertEqual(bob.take(), ["#lobby <alice> hi"])

    def test_onStampsEventLines(self) -> None:
        """
        With it on, every line of what happens (messages, several in one
        turn each with its own time, notices, private messages) starts with
        ``@time=`` and the event's server time in UTC; replies and errors do
        not; ``off`` stops it.
        """
        self.clock.advance(1_764_632_820.25 - self.clock.seconds())
        alice, bob = self.register("alice"), self.register("bob")
        bob.send("/timestamps on")
        self.assertEqual(bob.take(), ["--- timestamps on"])
        alice.send("hi", "again")
        stamp = "@time=2025-12-01T23:47:00.250Z "
        self.assertEqual(
            bob.take(), [stamp + "#lobby <alice> hi", stamp + "#lobby <alice> again"]
        )
        alice.send("/msg bob psst", "/join side")
        self.assertEqual(bob.take(), [stamp + "*alice* psst"])
        bob.send("/whois nobody")
        self.assertEqual(bob.take(), ["!!! no such nickname: nobody"])
        bob.send("/timestamps off", "/timestamps")
        self.assertEqual(bob.take(), ["--- timestamps off", "--- timestamps off"])
        alice.send("/join lobby", "plain")
        self.assertEqual(bob.take(), ["#lobby <alice> plain"])

    def test_usage(self) -> None:
        """Anything but on or off is a usage error."""
        client = self.register("alice")
        client.send("/timestamps maybe")
        self.assertEqual(client.take(), ["!!! usage: /timestamps [on|off]"])
