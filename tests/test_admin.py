"""
Tests for :mod:`chatservice.admin`, the admin console: a console and chat
clients on in-memory transports, sharing one hub, with a fake authenticator.
"""

from __future__ import annotations

import time
from itertools import count

from twisted.internet.address import IPv4Address, UNIXAddress
from twisted.internet.error import ConnectionDone
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from chatservice.backends.local import LocalBackend
from chatservice.chat.hub import Hub
from chatservice.conn.limits import Limits
from chatservice.conn.turns import end_of_turn
from chatservice.doors.admin import AdminFactory, AdminProtocol
from chatservice.doors.native.protocol import ChatFactory
from chatservice.doors.operations import Operations
from tests.test_chatline import (
    GREETING,
    WALL_CLOCK,
    Client,
    FakeAuthenticator,
    authenticator_of,
)

_ports = count(52000)

BANNER = "*** chatservice admin console. Log in with: login NAME PASSWORD"
LOG_IN_FIRST = "!!! log in first: login NAME PASSWORD"
HELP = [
    "--- login NAME PASSWORD: log in",
    "--- broadcast TEXT: send a notice to every connected client",
    "--- kick NICK [REASON]: disconnect a client; it and its rooms see why",
    "--- ban NICK|ADDRESS[/BITS] [DURATION] [REASON]: ban a nickname or address "
    "for DURATION (30s, 10m, 2h, 1d, forever; default 1h) and kick who it matches",
    "--- unban NICK|ADDRESS: lift a ban",
    "--- bans: list the bans in force",
    "--- limit [N]: show or set the maximum number of clients (0: none)",
    "--- list: list connections: nick, address, rooms, idle, connected since",
    "--- stats: show statistics",
    "--- quit: close the console",
]


class Console:
    """One admin console connection on an in-memory transport."""

    def __init__(self, factory: AdminFactory, peer: object) -> None:
        self.transport = StringTransport(peerAddress=peer)
        protocol = factory.buildProtocol(self.transport.getPeer())
        assert isinstance(protocol, AdminProtocol)
        self.protocol: AdminProtocol = protocol
        protocol.makeConnection(self.transport)

    def send(self, *lines: str) -> None:
        self.protocol.dataReceived(
            b"".join(line.encode("utf-8") + b"\n" for line in lines)
        )

    def take(self) -> list[str]:
        data: str = self.transport.value().decode("utf-8")
        self.transport.clear()
        assert data == "" or data.endswith("\r\n"), data
        return data.split("\r\n")[:-1]


class AdminTestCase(SynchronousTestCase):
    """A hub with a chat factory and an admin factory on a fake clock."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(1000)
        self.hub = Hub(
            clock=self.clock.seconds,
            backend=LocalBackend(call_soon=end_of_turn(self.clock).soon),
        )
        self.authenticator = FakeAuthenticator()
        operations = Operations(self.hub, wall_clock=lambda: WALL_CLOCK)
        self.chat = ChatFactory(self.hub, Limits(), self.clock, operations=operations)
        self.admin = AdminFactory(
            operations, authenticator_of(self.authenticator), Limits(), self.clock
        )

    def console(self, host: str = "127.0.0.1") -> Console:
        """A new console connection over TCP, its banner read."""
        console = Console(self.admin, IPv4Address("TCP", host, next(_ports)))
        self.assertEqual(console.take(), [BANNER])
        return console

    def logged_in(self) -> Console:
        console = self.console()
        console.send("login root s3cret")
        self.assertEqual(console.take(), ["--- logged in as root; help lists commands"])
        return console

    def chatter(self, nick: str, host: str = "10.0.0.1") -> Client:
        """A chat client registered as ``nick``, its lines so far read."""
        client = Client(self.chat, host)
        client.send(nick)
        self.assertEqual(client.take()[0], GREETING)
        return client


class LoginTests(AdminTestCase):
    """The banner, logging in, and what is allowed before."""

    def test_banner(self) -> None:
        """A new console gets the banner saying how to log in, and stays open."""
        console = Console(self.admin, IPv4Address("TCP", "127.0.0.1", 4000))
        self.assertEqual(console.take(), [BANNER])
        self.assertFalse(console.transport.disconnecting)

    def test_commandsRefusedBeforeLogin(self) -> None:
        """
        Before a login, every operation (and an unknown command) is refused
        with the same error and has no effect.
        """
        alice = self.chatter("alice")
        alice.take()
        console = self.console()
        for line in (
            "broadcast hi",
            "kick alice",
            "ban alice",
            "unban alice",
            "bans",
            "limit 1",
            "list",
            "stats",
            "dance",
        ):
            console.send(line)
            self.assertEqual(console.take(), [LOG_IN_FIRST], line)
        self.assertEqual(alice.take(), [])
        self.assertFalse(alice.closed)
        self.assertEqual(self.hub.bans(), [])
        self.assertEqual(self.hub.max_clients, 1000)

    def test_helpAndQuitBeforeLogin(self) -> None:
        """``help`` and ``quit`` work before a login."""
        console = self.console()
        console.send("help")
        self.assertEqual(console.take(), HELP)
        console.send("quit")
        self.assertEqual(console.take(), ["--- Goodbye."])
        self.assertTrue(console.transport.disconnecting)

    def test_loginSuccess(self) -> None:
        """
        Good credentials log the console in; the authenticator gets the
        name, password and the console's address.
        """
        console = self.console("127.0.0.1")
        console.send("login root s3cret")
        self.assertEqual(console.take(), ["--- logged in as root; help lists commands"])
        self.assertEqual(console.protocol.account, "root")
        self.assertEqual(self.authenticator.calls, [("root", "s3cret", "127.0.0.1")])

    def test_loginFailure(self) -> None:
        """Bad credentials give "login failed"; the console stays logged out."""
        console = self.console()
        console.send("login root wrong", "login someone s3cret", "stats")
        self.assertEqual(
            console.take(), ["!!! login failed", "!!! login failed", LOG_IN_FIRST]
        )
        self.assertIsNone(console.protocol.account)
        self.assertFalse(console.transport.disconnecting)

    def test_loginUsage(self) -> None:
        """``login`` needs a name and a password."""
        console = self.console()
        console.send("login", "login root")
        self.assertEqual(console.take(), ["!!! usage: login NAME PASSWORD"] * 2)
        self.assertEqual(self.authenticator.calls, [])

    def test_unixSocketAddress(self) -> None:
        """On a UNIX socket the authenticator is told the address is "local"."""
        console = Console(self.admin, UNIXAddress(b"admin.sock"))
        console.take()
        console.send("login root s3cret")
        self.assertEqual(self.authenticator.calls, [("root", "s3cret", "local")])

    def test_linesWaitForLogin(self) -> None:
        """Lines sent after ``login`` wait for its answer, then run in order."""
        self.authenticator.hold = True
        console = self.console()
        console.send("login root s3cret", "limit")
        self.assertEqual(console.take(), [])
        self.authenticator.answer()
        self.assertEqual(
            console.take(),
            [
                "--- logged in as root; help lists commands",
                "--- clients: 0 connected, limit 1000",
            ],
        )

    def test_answerAfterClose(self) -> None:
        """
        A login answered after the console was closed (the server shutting
        down) writes nothing after the last line, and logs nobody in.
        """
        self.authenticator.hold = True
        console = self.console()
        console.send("login root s3cret")
        self.admin.closeAll()
        self.authenticator.answer()
        self.assertEqual(console.take(), ["*** Server shutting down. Goodbye."])
        self.assertIsNone(console.protocol.account)


class CommandTests(AdminTestCase):
    """Every command, once logged in."""

    def setUp(self) -> None:
        super().setUp()
        self.console_ = self.logged_in()

    def run_(self, *lines: str) -> list[str]:
        self.console_.send(*lines)
        return self.console_.take()

    def test_help(self) -> None:
        """``help`` lists login, every operation and quit."""
        self.assertEqual(self.run_("help"), HELP)

    def test_quit(self) -> None:
        """``quit``, ``exit`` and ``q`` (any case) say goodbye and close."""
        for word in ("quit", "EXIT", "q"):
            console = self.logged_in()
            console.send(word)
            self.assertEqual(console.take(), ["--- Goodbye."])
            self.assertTrue(console.transport.disconnecting)

    def test_unknownCommand(self) -> None:
        """An unknown command is an error; the console stays open."""
        self.assertEqual(self.run_("dance"), ["!!! unknown command dance; try help"])
        self.assertFalse(self.console_.transport.disconnecting)

    def test_blankLinesAndSlash(self) -> None:
        """Blank lines are ignored; a leading ``/`` and any case are accepted."""
        self.assertEqual(
            self.run_("", "   ", "/LIMIT"), ["--- clients: 0 connected, limit 1000"]
        )

    def test_broadcast(self) -> None:
        """``broadcast`` reaches every chat client as from ``admin NAME``."""
        alice = self.chatter("alice")
        stranger = Client(self.chat, "10.0.0.2")
        alice.take()
        stranger.take()
        self.assertEqual(
            self.run_("broadcast restart at 6 \x1b[31m"), ["--- announced to 2 clients"]
        )
        announced = ["*** admin root: restart at 6 ^[[31m"]
        self.assertEqual(alice.take(), announced)
        self.assertEqual(stranger.take(), announced)
        self.assertEqual(self.run_("broadcast"), ["!!! usage: broadcast TEXT"])

    def test_broadcastOne(self) -> None:
        """One client is "1 client"."""
        self.chatter("alice")
        self.assertEqual(self.run_("broadcast hi"), ["--- announced to 1 client"])

    def test_kick(self) -> None:
        """``kick`` disconnects the client; its rooms see who did it and why."""
        alice = self.chatter("alice")
        bob = self.chatter("bob")
        alice.take()
        bob.take()
        self.assertEqual(self.run_("kick alice be nice"), ["--- kicked alice"])
        notice = "-!- alice was kicked by admin root (be nice)"
        self.assertEqual(
            alice.take(), [notice, "!!! disconnected: kicked by admin root: be nice"]
        )
        self.assertTrue(alice.closed)
        self.assertEqual(bob.take(), [notice])
        self.assertEqual(
            self.run_("kick", "kick alice"),
            ["!!! usage: kick NICK [REASON]", "!!! no such nickname: alice"],
        )

    def test_banUnbanBans(self) -> None:
        """
        ``ban`` kicks and blocks, ``bans`` lists the bans with time left,
        ``unban`` lifts them.
        """
        alice = self.chatter("alice", "10.0.0.7")
        self.assertEqual(
            self.run_("ban alice 2h flooding"),
            ["--- banned alice for 2h and disconnected alice"],
        )
        self.assertTrue(alice.closed)
        self.assertEqual(
            self.run_("ban 10.0.0.0/8 forever"),
            ["--- banned 10.0.0.0/8 until unbanned"],
        )
        self.clock.advance(60)
        self.assertEqual(
            self.run_("bans"),
            [
                "--- alice for 1h59m by admin root: flooding",
                "--- 10.0.0.0/8 until unbanned by admin root",
            ],
        )
        refused = Client(self.chat, "10.1.2.3")
        self.assertEqual(refused.take(), ["!!! you are banned until unbanned"])
        self.assertEqual(
            self.run_("unban ALICE", "unban 10.0.0.0/8", "bans", "unban alice"),
            [
                "--- unbanned alice",
                "--- unbanned 10.0.0.0/8",
                "--- no bans",
                "!!! no ban on alice",
            ],
        )
        self.assertEqual(Client(self.chat, "10.1.2.3").take(), [GREETING])

    def test_limit(self) -> None:
        """``limit`` shows and sets the chat's client limit."""
        self.chatter("alice")
        self.assertEqual(
            self.run_("limit", "limit 1", "limit x"),
            [
                "--- clients: 1 connected, limit 1000",
                "--- clients: 1 connected, limit 1",
                "!!! usage: limit [N]",
            ],
        )
        refused = Client(self.chat, "10.0.0.2")
        self.assertEqual(
            refused.take(), ["!!! server full (1 client); please try again later"]
        )

    def test_list(self) -> None:
        """``list`` shows every chat connection."""
        self.chatter("alice", "10.0.0.1")
        self.clock.advance(61)
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(WALL_CLOCK - 61))
        self.assertEqual(
            self.run_("list"),
            [
                "--- 1 connection",
                f"--- alice 10.0.0.1 rooms #lobby idle 1m1s since {since}",
            ],
        )

    def test_stats(self) -> None:
        """``stats`` shows the hub's statistics."""
        self.chatter("alice")
        self.clock.advance(90)
        self.assertEqual(
            self.run_("stats"),
            [
                "--- uptime 1m30s",
                "--- clients 1 (peak 1, limit 1000, total 1, "
                "refused 0: 0 banned, 0 full)",
                "--- registered 1, rooms 1",
                "--- messages 0 to rooms, 0 private, 1 deliveries",
                "--- kicks 0, bans 0 (0 in force), announcements 0",
            ],
        )

    def test_shutdown(self) -> None:
        """When the server stops, the console gets the shutdown line."""
        done = self.admin.closeAll()
        self.assertEqual(self.console_.take(), ["*** Server shutting down. Goodbye."])
        self.console_.protocol.connectionLost(Failure(ConnectionDone()))
        self.successResultOf(done)
