"""
Unit tests of the IRC door (:mod:`chatservice.doors.irc`): registration,
CAP, every command and the numerics, on in-memory connections
(:class:`chatservice.testing.Network`) and a test clock.
"""

from __future__ import annotations

import socket
from dataclasses import replace

from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactorClock
from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase

from chatservice import tap
from chatservice.chat import errors, events
from chatservice.chat.hub import Hub
from chatservice.chat.text import visible
from chatservice.conn.limits import Limits
from chatservice.doors.irc.message import (
    BadMessageError,
    Message,
    format_message,
    format_time,
    parse,
)
from chatservice.doors.irc.protocol import CAPABILITIES, IRCFactory, IRCSettings
from chatservice.doors.irc.render import Style, numeric_for
from chatservice.doors.native.protocol import ChatFactory
from chatservice.testing import (
    Connection,
    FakeAuthenticator,
    LineClient,
    Network,
    turn_hub,
)
from tests.support import temp_dir
from tests.test_tap import parse as parse_options

SERVER = "irc.test"


class Client:
    """One IRC client on the in-memory network, with what it received."""

    def __init__(self, case: IRCCase, connection: Connection[LineClient]) -> None:
        self.case = case
        self.connection = connection

    def send(self, *lines: str) -> None:
        for line in lines:
            self.connection.client.sendLine(line.encode("utf-8"))
        self.connection.push()

    def send_bytes(self, data: bytes) -> None:
        transport = self.connection.client.transport
        assert transport is not None
        transport.write(data)
        self.connection.push()

    def take(self) -> list[Message]:
        self.case.network.settle()
        return [parse(line) for line in self.connection.client.take()]

    def commands(self) -> list[str]:
        return [message.command for message in self.take()]

    @property
    def closed(self) -> bool:
        return self.connection.closed


class IRCCase(SynchronousTestCase):
    """An IRC door and a native door on one hub, on a test clock."""

    settings = IRCSettings(server_name=SERVER)
    limits = Limits(flood_rate=0)

    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(1000)
        self.hub: Hub = turn_hub(self.clock)
        self.network = Network(self.clock)
        self.authenticator = FakeAuthenticator()
        self.factory = IRCFactory(
            self.hub,
            self.limits,
            self.clock,
            settings=self.settings,
            authenticator=self.authenticator,
        )
        self.native = ChatFactory(
            self.hub, self.limits, self.clock, authenticator=self.authenticator
        )

    def connect(self) -> Client:
        return Client(self, self.network.connect(self.factory, LineClient()))

    def registered(self, nick: str, *caps: str) -> Client:
        """A client registered as ``nick`` (with ``caps``); its welcome dropped."""
        client = self.connect()
        if caps:
            client.send(f"CAP REQ :{' '.join(caps)}")
        client.send(f"NICK {nick}", f"USER {nick} 0 * :{nick}", "CAP END")
        self.assertIn("001", client.commands())
        return client

    def native_client(self, nick: str) -> Connection[LineClient]:
        connection = self.network.connect(self.native, LineClient())
        connection.client.sendLine(f"/nick {nick}".encode())
        connection.push()
        self.network.settle()
        connection.client.take()
        return connection

    def numerics(self, messages: list[Message]) -> list[tuple[str, list[str]]]:
        return [(m.command, m.params) for m in messages if m.command.isdigit()]

    def only(self, messages: list[Message], command: str) -> Message:
        found = [m for m in messages if m.command == command]
        self.assertEqual(len(found), 1, f"{command} not once in {messages!r}")
        return found[0]


class MessageTests(SynchronousTestCase):
    """The parser and the formatter."""

    def test_parse(self) -> None:
        """Tags, a prefix, middle parameters and a trailing one are read apart."""
        message = parse("@time=x;a=b\\sc :nick!u@h PRIVMSG #a,#b :hello there")
        self.assertEqual(message.command, "PRIVMSG")
        self.assertEqual(message.params, ["#a,#b", "hello there"])
        self.assertEqual(message.tags, {"time": "x", "a": "b c"})
        self.assertEqual(message.prefix, "nick!u@h")

    def test_parseRunsOfSpaces(self) -> None:
        """Runs of spaces between parameters make no empty parameters."""
        self.assertEqual(parse("user  a   0 * :x y").params, ["a", "0", "*", "x y"])
        self.assertEqual(parse("nick").command, "NICK")

    def test_parseRefuses(self) -> None:
        """A NUL or CR inside a line, or no command at all, is not a message."""
        for line in ("PRIVMSG a :b\x00c", "PRIVMSG a :b\rc", "", "   ", "@a=b"):
            self.assertRaises(BadMessageError, parse, line)

    def test_format(self) -> None:
        """The last parameter is trailing when it must be, or when asked."""
        self.assertEqual(format_message("s", "001", "n", "hi you"), ":s 001 n :hi you")
        self.assertEqual(format_message("s", "PONG", "s", "tok"), ":s PONG s tok")
        self.assertEqual(format_message("", "X", ""), "X :")
        self.assertEqual(format_message("", "X", ":a"), "X ::a")
        self.assertEqual(format_message("", "X", "a", trailing=True), "X :a")
        self.assertEqual(format_message("", "X", tags="a=b"), "@a=b X")

    def test_formatTime(self) -> None:
        """Server times are UTC with milliseconds, as the server-time tag says."""
        self.assertEqual(format_time(0), "1970-01-01T00:00:00.000Z")
        self.assertEqual(format_time(1.9996), "1970-01-01T00:00:02.000Z")

    def test_styleWire(self) -> None:
        """Each style of rendering keeps its own encoded bytes on an event."""
        names = {Style(SERVER, t, m).wire for t in (False, True) for m in (False, True)}
        self.assertEqual(len(names), 4)

    def test_eventLines(self) -> None:
        """
        Each event's line: text as a trailing parameter, a lone channel or
        nick not; a kick as a QUIT naming the operator.
        """
        style = Style(SERVER)
        mask = f"a!a@{SERVER}"
        cases: list[tuple[events.Event, str]] = [
            (events.RoomMessage("r", "a", "hi"), f":{mask} PRIVMSG #r :hi"),
            (
                events.RoomMessage("r", "a", "x", True),
                f":{mask} PRIVMSG #r :\x01ACTION x\x01",
            ),
            (events.PrivateMessage("a", "b", "yo"), f":{mask} PRIVMSG b :yo"),
            (events.Joined("r", "a"), f":{mask} JOIN #r"),
            (events.Parted("r", "a"), f":{mask} PART #r"),
            (events.Parted("r", "a", "bye"), f":{mask} PART #r :bye"),
            (events.Quit("a"), f":{mask} QUIT :Quit"),
            (events.Quit("a", "off"), f":{mask} QUIT :Quit: off"),
            (events.NickChanged("a", "b"), f":{mask} NICK b"),
            (events.TopicChanged("r", "a", ""), f":{mask} TOPIC #r :"),
            (events.Kicked("a", "op", "x"), f":{mask} QUIT :Kicked by op (x)"),
            (
                events.Announcement("up", "op"),
                f":{SERVER} NOTICE * :*** Global notice from op: up",
            ),
        ]
        for event, line in cases:
            self.assertEqual(style.render(event), line + "\r\n")
        both = events.RoomMessages("r", (events.RoomMessage("r", "a", "1"),) * 2)
        self.assertEqual(style.render(both), f":{mask} PRIVMSG #r :1\r\n" * 2)

    def test_numericsFromTypes(self) -> None:
        """Each typed error has its numeric, whatever its text says."""
        cases: list[tuple[errors.ChatError, str]] = [
            (errors.NoSuchNick("x"), "401"),
            (errors.NoSuchRoom("x"), "403"),
            (errors.TooManyRooms(1, 1), "405"),
            (errors.InvalidNick("x", "bad"), "432"),
            (errors.NickInUse("x"), "433"),
            (errors.NickLookalike("x", "y"), "433"),
            (errors.NotInRoom("x"), "442"),
            (errors.NickRequired(), "451"),
            (errors.UsageError("x"), "461"),
            (errors.Banned(None, ""), "465"),
            (errors.NotOperator("KILL"), "481"),
        ]
        for error, code in cases:
            self.assertEqual(numeric_for(error).code, code, repr(error))


class RegistrationTests(IRCCase):
    """NICK, USER, PASS, CAP and what the client hears on registration."""

    def test_welcome(self) -> None:
        """
        NICK and USER register: 001 to 005, LUSERS and 422 (no MOTD), with
        an ISUPPORT that says what the chat's limits are; only NOTICE before
        001, and no channel joined.
        """
        client = self.connect()
        client.send("NICK alice", "USER a 0 * :Alice")
        seen = client.take()
        commands = [m.command for m in seen]
        first = commands.index("001")
        self.assertEqual(set(commands[:first]), {"NOTICE"})
        self.assertEqual(
            commands[first : first + 5], ["001", "002", "003", "004", "005"]
        )
        self.assertIn("422", commands)
        self.assertNotIn("JOIN", commands)
        tokens = self.only(seen, "005").params[1:-1]
        for token in (
            "CHANTYPES=#",
            "PREFIX=(o)@",
            "NICKLEN=24",
            "CHANNELLEN=33",
            "TOPICLEN=300",
            "CASEMAPPING=rfc8265",
            "CHANLIMIT=#:20",
            "NETWORK=chatservice",
            "WHOX",
        ):
            self.assertIn(token, tokens)
        self.assertEqual(self.only(seen, "001").prefix, SERVER)
        self.assertEqual(self.hub.find("alice").rooms, ())

    def test_userThenNick(self) -> None:
        """USER before NICK registers as well, once NICK comes."""
        client = self.connect()
        client.send("USER a 0 * :Alice")
        self.assertNotIn("001", client.commands())
        client.send("NICK alice")
        self.assertIn("001", client.commands())

    def test_motd(self) -> None:
        """With a message of the day: 375, a 372 per line, 376."""
        self.factory.settings = IRCSettings(server_name=SERVER, motd=("one", "two"))
        client = self.connect()
        client.send("NICK alice", "USER a 0 * :Alice")
        seen = client.take()
        motd = [(m.command, m.params[-1]) for m in seen if m.command in "375 372 376"]
        self.assertEqual([c for c, _ in motd], ["375", "372", "372", "376"])
        self.assertEqual([t for c, t in motd if c == "372"], ["- one", "- two"])

    def test_autoJoin(self) -> None:
        """With auto-join set, a client joins those channels once registered."""
        self.factory.settings = IRCSettings(server_name=SERVER, auto_join=("lobby",))
        client = self.connect()
        client.send("NICK alice", "USER a 0 * :Alice")
        seen = client.take()
        self.assertEqual(self.only(seen, "JOIN").params, ["#lobby"])
        self.assertEqual(self.only(seen, "353").params[-1], "alice")

    def test_nickErrors(self) -> None:
        """431 for no nickname, 432 for an invalid one, 433 for a taken one."""
        self.registered("alice")
        client = self.connect()
        client.take()
        client.send("NICK", "NICK 9lives", "NICK ALICE")
        self.assertEqual(
            [(c, p[1]) for c, p in self.numerics(client.take())],
            [("431", "No nickname given"), ("432", "9lives"), ("433", "ALICE")],
        )
        client.send("USER b 0 * :B")
        self.assertNotIn("001", client.commands())
        client.send("NICK bob")
        self.assertIn("001", client.commands())

    def test_notRegistered(self) -> None:
        """Commands that need registration get 451 before it; unknown ones 421."""
        client = self.connect()
        client.take()
        client.send("JOIN #lobby", "PRIVMSG bob :hi", "FROB")
        self.assertEqual(
            [c for c, _ in self.numerics(client.take())], ["451", "451", "421"]
        )

    def test_userErrors(self) -> None:
        """USER with too few parameters gets 461; USER again gets 462."""
        client = self.connect()
        client.take()
        client.send("USER a 0 *")
        self.assertEqual(self.numerics(client.take())[0][0], "461")
        client.send("USER a 0 * :A", "NICK alice")
        client.take()
        client.send("USER a 0 * :A", "PASS x")
        self.assertEqual([c for c, _ in self.numerics(client.take())], ["462", "462"])

    def test_quitBeforeRegistration(self) -> None:
        """QUIT before registering answers ERROR and closes."""
        client = self.connect()
        client.send("QUIT :bye")
        self.assertEqual(client.commands()[-1], "ERROR")
        self.assertTrue(client.closed)

    def test_registrationDeadline(self) -> None:
        """A client that does not register in time gets ERROR and is closed."""
        self.factory.limits = replace(self.factory.limits, registration_timeout=30)
        client = self.connect()
        client.send("NICK alice")
        client.take()
        self.clock.advance(31)
        self.assertEqual(client.commands(), ["ERROR"])
        self.assertTrue(client.closed)


class PasswordTests(IRCCase):
    """PASS, when the server has a password."""

    settings = IRCSettings(server_name=SERVER, password="sesame")

    def test_right(self) -> None:
        """The right password before NICK and USER registers."""
        client = self.connect()
        client.send("PASS sesame", "NICK alice", "USER a 0 * :A")
        self.assertIn("001", client.commands())

    def test_wrongOrMissing(self) -> None:
        """A wrong or missing password gets 464, then ERROR and the close."""
        for lines in (["PASS nope"], []):
            client = self.connect()
            client.send(*lines, "NICK alice", "USER a 0 * :A")
            commands = client.commands()
            self.assertNotIn("001", commands)
            self.assertEqual(commands[-2:], ["464", "ERROR"])
            self.assertTrue(client.closed)
            self.assertRaises(errors.NoSuchNick, self.hub.find, "alice")


class CapTests(IRCCase):
    """CAP negotiation as clients do it."""

    def test_lsHoldsRegistration(self) -> None:
        """After CAP LS, NICK and USER register only once CAP END comes."""
        client = self.connect()
        client.send("CAP LS 302", "NICK alice", "USER a 0 * :A")
        seen = client.take()
        ls = self.only(seen, "CAP")
        self.assertEqual(ls.params[:2], ["*", "LS"])
        # Chat history is offered only by a chat that keeps it (not here).
        offered = sorted(c for c in CAPABILITIES if c != "draft/chathistory")
        self.assertEqual(sorted(ls.params[2].split()), offered)
        self.assertNotIn("001", [m.command for m in seen])
        client.send("CAP END")
        self.assertIn("001", client.commands())

    def test_reqAckNak(self) -> None:
        """REQ is answered ACK or NAK with the exact list; LIST lists what is on."""
        client = self.connect()
        client.send(
            "CAP REQ :server-time  echo-message",
            "CAP REQ :echo-message frobnicate",
            "CAP LIST",
        )
        caps = [m.params[1:] for m in client.take() if m.command == "CAP"]
        self.assertEqual(
            caps,
            [
                ["ACK", "server-time  echo-message"],
                ["NAK", "echo-message frobnicate"],
                ["LIST", "echo-message server-time"],
            ],
        )

    def test_reqAfterRegistration(self) -> None:
        """CAP REQ works after registration too, and -cap turns one off."""
        client = self.registered("alice")
        client.send("CAP REQ :server-time", "CAP REQ :-server-time", "CAP LIST")
        caps = [m.params[1:] for m in client.take() if m.command == "CAP"]
        self.assertEqual(caps[-1], ["LIST", ""])
        self.assertEqual(caps[0], ["ACK", "server-time"])
        self.assertEqual(caps[0][0] + caps[1][0], "ACKACK")

    def test_unknownSubcommand(self) -> None:
        """An unknown CAP subcommand gets 410."""
        client = self.connect()
        client.take()
        client.send("CAP FROB")
        self.assertEqual(
            self.numerics(client.take()),
            [("410", ["*", "FROB", "Invalid CAP command"])],
        )

    def test_tags(self) -> None:
        """
        server-time adds the event's time, message-tags its id; without
        them a message carries no tags.
        """
        tagged = self.registered("alice", "server-time", "message-tags")
        plain = self.registered("bob")
        for client in (tagged, plain):
            client.send("JOIN #room")
        self.clear(tagged, plain)
        plain.send("PRIVMSG #room :hi")
        message = self.only(tagged.take(), "PRIVMSG")
        self.assertEqual(message.tags["time"], format_time(1000))
        self.assertTrue(message.tags["msgid"])
        tagged.send("PRIVMSG #room :there")
        self.assertEqual(self.only(plain.take(), "PRIVMSG").tags, {})

    def test_echoMessage(self) -> None:
        """Without echo-message a sender gets no copy of its messages; with it, one."""
        echoed = self.registered("alice", "echo-message")
        quiet = self.registered("bob")
        for client in (echoed, quiet):
            client.send("JOIN #room")
        self.clear(echoed, quiet)
        echoed.send("PRIVMSG #room :one", "PRIVMSG bob :two")
        quiet.send("PRIVMSG #room :three", "PRIVMSG alice :four")
        said = [m.params[1] for m in echoed.take() if m.command == "PRIVMSG"]
        self.assertEqual(said, ["one", "two", "three", "four"])
        said = [m.params[1] for m in quiet.take() if m.command == "PRIVMSG"]
        self.assertEqual(said, ["one", "two"])

    def test_ownMessagesLeftOutOfABatch(self) -> None:
        """
        Messages said in one turn reach each member as one batch: without
        echo-message, each speaker gets the others' messages but not its
        own; a member who said nothing, or asked for echo-message, gets
        them all; the next batch, said by others, is judged afresh.
        """
        alice = self.registered("alice")
        bob = self.registered("bob")
        carol = self.registered("carol")
        echoed = self.registered("dave", "echo-message")
        everyone = (alice, bob, carol, echoed)
        for client in everyone:
            client.send("JOIN #room")
        self.clear(*everyone)

        def said(client: Client) -> list[str]:
            return [m.params[1] for m in client.take() if m.command == "PRIVMSG"]

        alice.send("PRIVMSG #room :one")
        bob.send("PRIVMSG #room :two")
        echoed.send("PRIVMSG #room :three")
        self.assertEqual(said(alice), ["two", "three"])
        self.assertEqual(said(bob), ["one", "three"])
        self.assertEqual(said(carol), ["one", "two", "three"])
        self.assertEqual(said(echoed), ["one", "two", "three"])
        carol.send("PRIVMSG #room :four")
        bob.send("PRIVMSG #room :five")
        self.assertEqual(said(alice), ["four", "five"])
        self.assertEqual(said(carol), ["five"])

    def clear(self, *clients: Client) -> None:
        for client in clients:
            client.take()


class CommandTests(IRCCase):
    """The commands after registration, and their numerics."""

    def test_joinSeveralAndZero(self) -> None:
        """JOIN takes several channels at once; JOIN 0 leaves every one."""
        alice = self.registered("alice")
        alice.send("JOIN #a,#b")
        seen = alice.take()
        self.assertEqual(
            [m.params for m in seen if m.command == "JOIN"], [["#a"], ["#b"]]
        )
        self.assertEqual(
            [m.params[1] for m in seen if m.command == "366"], ["#a", "#b"]
        )
        alice.send("JOIN 0")
        self.assertEqual(
            [m.params[0] for m in alice.take() if m.command == "PART"], ["#a", "#b"]
        )
        self.assertEqual(self.hub.find("alice").rooms, ())

    def test_joinErrors(self) -> None:
        """A name that is not a channel gets 403; past the room limit, 405."""
        alice = self.registered("alice")
        alice.send("JOIN lobby", "JOIN #bad!name")
        self.assertEqual([c for c, _ in self.numerics(alice.take())], ["403", "403"])
        alice.send("JOIN " + ",".join(f"#r{i}" for i in range(21)))
        self.assertEqual(
            [c for c, _ in self.numerics(alice.take()) if c == "405"], ["405"]
        )

    def test_part(self) -> None:
        """PART leaves with a reason; a channel not joined gets 442."""
        alice, bob = self.registered("alice"), self.registered("bob")
        alice.send("JOIN #a")
        bob.send("JOIN #a")
        alice.take()
        bob.take()
        bob.send("PART #a :bye", "PART #a")
        self.assertEqual(self.only(alice.take(), "PART").params, ["#a", "bye"])
        self.assertEqual(self.numerics(bob.take())[0][:1], ("442",))

    def test_privmsgErrors(self) -> None:
        """411 without a target, 412 without text, 401 to nobody, 404 to a
        channel not joined, 403 to no channel; NOTICE gets no error at all."""
        alice = self.registered("alice")
        self.registered("bob").send("JOIN #b")
        alice.send(
            "PRIVMSG",
            "PRIVMSG bob",
            "PRIVMSG nobody :hi",
            "PRIVMSG #b :hi",
            "PRIVMSG #none :hi",
        )
        self.assertEqual(
            [c for c, _ in self.numerics(alice.take())],
            ["411", "412", "401", "404", "403"],
        )
        alice.send("NOTICE nobody :hi", "NOTICE #b :hi", "NOTICE", "NOTICE bob")
        self.assertEqual(alice.take(), [])

    def test_privateAndNotice(self) -> None:
        """
        PRIVMSG and NOTICE to a nick reach it, each as what it was sent as;
        a CTCP ACTION is a /me.
        """
        alice, bob = self.registered("alice"), self.registered("bob")
        alice.send("PRIVMSG bob :hi", "NOTICE BOB :there")
        self.assertEqual(
            [(m.command, m.params) for m in bob.take()],
            [("PRIVMSG", ["bob", "hi"]), ("NOTICE", ["bob", "there"])],
        )
        alice.send("JOIN #a")
        bob.send("JOIN #a")
        alice.take()
        bob.send("PRIVMSG #a :\x01ACTION waves\x01")
        self.assertEqual(
            self.only(alice.take(), "PRIVMSG").params, ["#a", "\x01ACTION waves\x01"]
        )

    def test_noticeToChannel(self) -> None:
        """
        A NOTICE to a channel reaches its other members as a NOTICE (never
        a PRIVMSG), the sender's copy with echo-message as a NOTICE too; a
        CTCP in a notice is its text, not an action; nothing answers it.
        """
        alice = self.registered("alice", "echo-message")
        bob, carol = self.registered("bob"), self.registered("carol")
        for client in (alice, bob):
            client.send("JOIN #a")
        for client in (alice, bob, carol):
            client.take()
        alice.send("NOTICE #a :heads up", "NOTICE #A :\x01ACTION waves\x01")
        expected = [
            ("NOTICE", "alice!alice@irc.test", ["#a", "heads up"]),
            # Shown as text, made safe as any text is.
            ("NOTICE", "alice!alice@irc.test", ["#a", visible("\x01ACTION waves\x01")]),
        ]
        for client in (bob, alice):
            self.assertEqual(
                [(m.command, m.prefix, m.params) for m in client.take()], expected
            )
        self.assertEqual(carol.take(), [])

    def test_noticeReachesNativeAsNotice(self) -> None:
        """
        A NOTICE from IRC to a channel and to a nick reaches a native user
        as the native door's notice lines, not as messages.
        """
        alice = self.registered("alice")
        alice.send("JOIN #lobby")
        bob = self.native_client("bob")
        alice.take()
        alice.send("NOTICE #lobby :deploy at 5", "NOTICE bob :yours too")
        self.network.settle()
        self.assertEqual(
            bob.client.take(), ["#lobby -alice- deploy at 5", "-alice- yours too"]
        )

    def test_topic(self) -> None:
        """TOPIC sets (everyone sees it) and asks (332, or 331 without one)."""
        alice, bob = self.registered("alice"), self.registered("bob")
        for client in (alice, bob):
            client.send("JOIN #a")
        alice.take()
        alice.send("TOPIC #a")
        self.assertEqual(self.numerics(alice.take())[0][0], "331")
        bob.send("TOPIC #a :news here")
        self.assertEqual(self.only(alice.take(), "TOPIC").params, ["#a", "news here"])
        alice.send("TOPIC #a")
        self.assertEqual(
            self.numerics(alice.take()), [("332", ["alice", "#a", "news here"])]
        )
        carol = self.registered("carol")
        carol.send("JOIN #a")
        self.assertEqual(self.only(carol.take(), "332").params[-1], "news here")
        alice.send("JOIN #other")
        carol.send("TOPIC #x :y", "TOPIC #other :y")
        self.assertEqual([c for c, _ in self.numerics(carol.take())], ["403", "442"])

    def test_namesShowsOperators(self) -> None:
        """NAMES lists a channel's members, operators prefixed with @."""
        alice, bob = self.registered("alice"), self.registered("bob")
        bob.send("OPER root s3cret")
        for client in (alice, bob):
            client.send("JOIN #a")
        alice.take()
        alice.send("NAMES #a", "NAMES #none")
        seen = self.numerics(alice.take())
        self.assertEqual(seen[0], ("353", ["alice", "=", "#a", "alice @bob"]))
        self.assertEqual([c for c, _ in seen], ["353", "366", "366"])

    def test_namesOfALargeChannel(self) -> None:
        """
        The names of a large channel come in several 353 lines, each cut
        once its names pass 400 bytes (a 512-byte line has room for them
        and the prefix), every member named once, in the order they came.
        """
        members = [self.registered(f"member{i:03d}") for i in range(120)]
        for client in members:
            client.send("JOIN #big")
        first = members[0]
        first.take()
        first.send("NAMES #big")
        seen = self.numerics(first.take())
        lines = [params[-1] for code, params in seen if code == "353"]
        self.assertEqual([code for code, _ in seen][-1], "366")
        self.assertEqual(
            " ".join(lines).split(), [f"member{i:03d}" for i in range(120)]
        )
        # 10 bytes a name with its space: cut at the 41st, 41 names a line.
        self.assertEqual([len(line.split()) for line in lines], [41, 41, 38])

    def test_list(self) -> None:
        """LIST shows every channel with its members count and topic."""
        alice = self.registered("alice")
        alice.send("JOIN #a", "TOPIC #a :hello")
        alice.take()
        alice.send("LIST")
        self.assertEqual(
            self.numerics(alice.take()),
            [
                ("321", ["alice", "Channel", "Users  Name"]),
                ("322", ["alice", "#a", "1", "hello"]),
                ("323", ["alice", "End of /LIST"]),
            ],
        )

    def test_who(self) -> None:
        """WHO lists a channel's members or nicks matching a mask, any case."""
        alice, bob = self.registered("alice"), self.registered("bob")
        bob.send("OPER root s3cret", "JOIN #a")
        alice.send("JOIN #a")
        alice.take()
        alice.send("WHO #a", "WHO BO*")
        seen = self.numerics(alice.take())
        self.assertEqual(
            [(c, p[5], p[6]) for c, p in seen if c == "352"],
            [
                ("352", "bob", "H*@"),
                ("352", "alice", "H"),
                ("352", "bob", "H*@"),
            ],
        )
        self.assertEqual([p[1] for c, p in seen if c == "315"], ["#a", "BO*"])

    def test_userAndRealName(self) -> None:
        """
        WHOIS, WHO and WHOX show the user name and real name the client gave
        in USER: the user name kept to letters, digits and ``._-``, the real
        name with its control characters made visible; a member of another
        door has its nickname for both.
        """
        alice = self.connect()
        alice.send("NICK alice", "USER a@l!i~c.e_1 0 * :Alice \x1b[31mLiddell")
        self.assertIn("001", alice.commands())
        self.native_client("bob")
        alice.send("WHOIS alice", "WHOIS bob", "WHO alice", "WHO bob %nur")
        seen = self.numerics(alice.take())
        self.assertEqual(
            [p[1:] for c, p in seen if c == "311"],
            [
                ["alice", "alic.e_1", SERVER, "*", "Alice ^[[31mLiddell"],
                ["bob", "bob", SERVER, "*", "bob"],
            ],
        )
        (who,) = [p for c, p in seen if c == "352"]
        self.assertEqual((who[2], who[-1]), ("alic.e_1", "0 Alice ^[[31mLiddell"))
        self.assertEqual(
            [p[1:] for c, p in seen if c == "354"], [["bob", "bob", "bob"]]
        )

    def test_userNameOfNothingSafe(self) -> None:
        """A user name with nothing safe in it is shown as ``~``."""
        alice = self.connect()
        alice.send("NICK alice", "USER @@@ 0 * :Alice")
        self.assertIn("001", alice.commands())
        alice.send("WHOIS alice")
        (whois,) = [p for c, p in self.numerics(alice.take()) if c == "311"]
        self.assertEqual(whois[2], "~")

    def test_whoOperatorsOnly(self) -> None:
        """``WHO mask o`` lists only operators."""
        alice, bob = self.registered("alice"), self.registered("bob")
        bob.send("OPER root s3cret", "JOIN #a")
        alice.send("JOIN #a")
        alice.take()
        alice.send("WHO #a o")
        seen = self.numerics(alice.take())
        self.assertEqual([p[5] for c, p in seen if c == "352"], ["bob"])

    def test_whox(self) -> None:
        """
        WHOX (``WHO #a %fields,token``), advertised in ISUPPORT: one ``354``
        per user with the fields asked for, in WHOX's order whatever the
        order asked, the token first; addresses hidden, no accounts, the
        idle seconds from the hub's clock; then ``315`` with the mask.
        """
        alice, bob = self.registered("alice"), self.registered("bob")
        bob.send("OPER root s3cret", "JOIN #a")
        alice.send("JOIN #a")
        alice.take()
        self.clock.advance(7)
        alice.send("WHO #a %nafcuhitslrdo,42")
        seen = self.numerics(alice.take())
        replies = [p[1:] for c, p in seen if c == "354"]
        hidden = "255.255.255.255"

        def tail(nick: str) -> list[str]:
            # hop count, idle seconds, account, op level, real name
            return ["0", "7", "0", "n/a", nick]

        self.assertEqual(
            replies,
            [
                ["42", "#a", "bob", hidden, SERVER, SERVER, "bob", "H*@", *tail("bob")],
                [
                    "42",
                    "#a",
                    "alice",
                    hidden,
                    SERVER,
                    SERVER,
                    "alice",
                    "H",
                    *tail("alice"),
                ],
            ],
        )
        self.assertEqual([p[1] for c, p in seen if c == "315"], ["#a"])

    def test_whoxFieldsAndToken(self) -> None:
        """
        WHOX gives just the fields asked for; a token that is not 1-3 digits
        is left out (never echoed); ``o`` before ``%`` keeps operators only;
        a mask of nicks works as in the classic form.
        """
        alice, bob = self.registered("alice"), self.registered("bob")
        bob.send("OPER root s3cret")
        alice.take()
        alice.send("WHO bo* %nf", "WHO * %tn,evil text", "WHO * o%n")
        seen = self.numerics(alice.take())
        self.assertEqual(
            [p[1:] for c, p in seen if c == "354"],
            [["bob", "H*@"], ["alice"], ["bob"], ["bob"]],
        )
        self.assertEqual([p[1] for c, p in seen if c == "315"], ["bo*", "*", "*"])

    def test_whois(self) -> None:
        """WHOIS: 311, 319, 312, 313 for an operator, 317, 318; 401 for nobody."""
        alice, bob = self.registered("alice"), self.registered("bob")
        bob.send("OPER root s3cret", "JOIN #a")
        alice.take()
        alice.send("WHOIS Bob", "WHOIS nobody")
        seen = [c for c, _ in self.numerics(alice.take())]
        self.assertEqual(seen, ["311", "319", "312", "313", "317", "318", "401", "318"])

    def test_mode(self) -> None:
        """
        MODE: a channel's modes (324) and creation time (329); its ban list
        is empty; +o is for OPER (482), other letters are unknown (472);
        one's own modes (221, +o for an operator), unknown ones 501, another
        user's 502.
        """
        alice = self.registered("alice")
        self.registered("bob")
        alice.send("JOIN #a")
        alice.take()
        alice.send("MODE #a", "MODE #a b", "MODE #a +o bob", "MODE #a +k key")
        self.assertEqual(
            [c for c, _ in self.numerics(alice.take())],
            ["324", "329", "368", "482", "472"],
        )
        alice.send("MODE alice", "MODE alice +i", "MODE alice +x", "MODE bob")
        self.assertEqual(
            self.numerics(alice.take()),
            [
                ("221", ["alice", "+"]),
                ("501", ["alice", "Unknown MODE flag"]),
                ("502", ["alice", "Cant change mode for other users"]),
            ],
        )
        alice.send("OPER root s3cret")
        alice.take()
        alice.send("MODE alice", "MODE #none")
        self.assertEqual(
            self.numerics(alice.take()),
            [
                ("221", ["alice", "+o"]),
                ("403", ["alice", "#none", "No such channel"]),
            ],
        )

    def test_oper(self) -> None:
        """OPER with the right credentials gives 381 and +o; wrong ones 464."""
        alice = self.registered("alice")
        alice.send("OPER root wrong")
        self.assertEqual(self.numerics(alice.take())[0][0], "464")
        alice.send("OPER root s3cret")
        seen = alice.take()
        self.assertEqual(self.numerics(seen)[0][0], "381")
        self.assertEqual(self.only(seen, "MODE").params, ["alice", "+o"])
        self.assertEqual(self.hub.find("alice").operator, "root")

    def test_kickAndKill(self) -> None:
        """
        KICK needs an operator (482), a target in the channel (441); an
        operator's KICK or KILL removes the target from the chat, which the
        room sees as a QUIT saying who kicked it; KILL from others gets 481.
        """
        op, bob, carol = (self.registered(n) for n in ("op", "bob", "carol"))
        for client in (op, bob, carol):
            client.send("JOIN #a")
        carol.send("JOIN #c")
        for client in (op, bob, carol):
            client.take()
        bob.send("KICK #a carol", "KILL carol")
        self.assertEqual([c for c, _ in self.numerics(bob.take())], ["482", "481"])
        op.send("OPER root s3cret")
        op.take()
        op.send("KICK #c bob :no")
        self.assertEqual(self.numerics(op.take())[0][0], "441")
        op.send("KICK #a bob :enough")
        self.assertEqual(
            self.only(carol.take(), "QUIT").params, ["Kicked by op (enough)"]
        )
        self.assertEqual(bob.commands()[-1], "ERROR")
        self.assertTrue(bob.closed)
        op.send("KILL carol :bye")
        self.assertIn("bye", carol.take()[-1].params[-1])
        self.assertTrue(carol.closed)
        self.assertRaises(errors.NoSuchNick, self.hub.find, "carol")

    def test_wallops(self) -> None:
        """
        An operator's WALLOPS or message to ``$*`` is a notice to everyone,
        on every door, unregistered clients too (as a NOTICE to ``*``);
        from others it gets 481 (a NOTICE gets no error at all).
        """
        op, bob = self.registered("op"), self.registered("bob")
        native = self.native_client("nat")
        op.send("OPER root s3cret", "WALLOPS :maintenance")
        notice = self.only(bob.take(), "NOTICE")
        self.assertIn("maintenance", notice.params[-1])
        self.network.settle()
        self.assertTrue(any("maintenance" in line for line in native.client.take()))
        bob.send("WALLOPS :mine", "PRIVMSG $* :mine", "NOTICE $* :mine")
        self.assertEqual([c for c, _ in self.numerics(bob.take())], ["481", "481"])
        op.send("NOTICE $* :global")
        self.assertIn("global", self.only(bob.take(), "NOTICE").params[-1])
        unregistered = self.connect()
        unregistered.take()
        op.send("WALLOPS :early")
        notice = self.only(unregistered.take(), "NOTICE")
        self.assertEqual(notice.params, ["*", "*** op: early"])

    def test_nickChange(self) -> None:
        """NICK after registration renames: the client and its rooms see it."""
        alice, bob = self.registered("alice"), self.registered("bob")
        for client in (alice, bob):
            client.send("JOIN #a")
        bob.take()
        alice.send("NICK alicia")
        nick = self.only(alice.take(), "NICK")
        self.assertEqual(
            (nick.prefix.split("!")[0], nick.params), ("alice", ["alicia"])
        )
        self.assertEqual(self.only(bob.take(), "NICK").params, ["alicia"])
        alice.send("NICK bob")
        self.assertEqual(self.numerics(alice.take())[0][:1], ("433",))

    def test_pingPong(self) -> None:
        """PING is answered PONG with the token, after what came before it."""
        alice, bob = self.registered("alice"), self.registered("bob")
        for client in (alice, bob):
            client.send("JOIN #a")
        alice.take()
        bob.send("PRIVMSG #a :first")
        alice.send("PING :tok")
        seen = alice.take()
        self.assertEqual([m.command for m in seen], ["PRIVMSG", "PONG"])
        self.assertEqual(seen[1].params, [SERVER, "tok"])

    def test_idlePing(self) -> None:
        """
        A silent client is pinged after the interval; one that answers
        stays, one that stays silent as long again gets ERROR and is closed.
        """
        alice, bob = self.registered("alice"), self.registered("bob")
        self.clock.advance(self.settings.ping_interval + 1)
        for client in (alice, bob):
            ping = self.only(client.take(), "PING")
            self.assertEqual(ping.params, [SERVER])
        alice.send(f"PONG :{SERVER}")
        self.clock.advance(self.settings.ping_interval)
        seen = []
        for _ in range(3):  # the sweep comes on whole seconds
            self.clock.advance(1)
            seen += bob.commands()
        self.assertEqual(seen, ["ERROR"])
        self.assertTrue(bob.closed)
        self.assertFalse(alice.closed)

    def test_quit(self) -> None:
        """QUIT answers ERROR and closes; the rooms see the QUIT with its reason."""
        alice, bob = self.registered("alice"), self.registered("bob")
        for client in (alice, bob):
            client.send("JOIN #a")
        bob.take()
        alice.send("QUIT :gone fishing")
        self.assertEqual(alice.commands()[-1], "ERROR")
        self.assertTrue(alice.closed)
        self.assertEqual(self.only(bob.take(), "QUIT").params, ["Quit: gone fishing"])

    def test_smallOnes(self) -> None:
        """ISON, USERHOST, LUSERS, MOTD and AWAY answer as clients expect."""
        alice = self.registered("alice")
        self.registered("bob")
        alice.send("ISON bob nobody ALICE", "USERHOST bob", "AWAY :lunch", "AWAY")
        self.assertEqual(
            [(c, p[1:]) for c, p in self.numerics(alice.take())],
            [
                ("303", ["bob ALICE"]),
                ("302", [f"bob=+bob@{SERVER}"]),
                ("306", ["You have been marked as being away"]),
                ("305", ["You are no longer marked as being away"]),
            ],
        )
        alice.send("LUSERS", "MOTD")
        self.assertEqual(
            [c for c, _ in self.numerics(alice.take())],
            ["251", "252", "254", "255", "265", "266", "422"],
        )

    def test_lusersCounts(self) -> None:
        """
        LUSERS's 265 and 266 give the members now and the most at once:
        three registered (one of them at the native door), one gone, two
        now and three at most.
        """
        alice = self.registered("alice")
        bob = self.registered("bob")
        self.native_client("nat")
        bob.send("QUIT :bye")
        self.network.settle()
        alice.take()
        alice.send("LUSERS")
        counts = {c: p[1:] for c, p in self.numerics(alice.take())}
        self.assertEqual(counts["265"], ["2", "3", "Current local users 2, max 3"])
        self.assertEqual(counts["266"], ["2", "3", "Current global users 2, max 3"])


class LineTests(IRCCase):
    """The IRC line rules."""

    def test_tooLong(self) -> None:
        """
        A message over 512 bytes with its CRLF gets 417 and is dropped; 510
        bytes pass, with tags in front of them too, and come back whole
        (in two pieces: with the sender's prefix they no longer fit in
        one); the client stays.
        """
        alice = self.registered("alice", "echo-message")
        alice.send("JOIN #a")
        alice.take()
        head = "PRIVMSG #a :"
        alice.send(head + "x" * (511 - len(head)))
        self.assertEqual(self.numerics(alice.take())[0][0], "417")
        text = "y" * (510 - len(head))
        alice.send(head + text, "@+draft/x=" + "z" * 2000 + " " + head + text)
        said = [m.params[1] for m in alice.take() if m.command == "PRIVMSG"]
        self.assertEqual(len(said), 4)
        self.assertEqual("".join(said), text + text)
        self.assertFalse(alice.closed)

    def test_nulAndInvalidUtf8(self) -> None:
        """A NUL inside a line or invalid UTF-8 gets a NOTICE; nothing is said."""
        alice = self.registered("alice", "echo-message")
        alice.send("JOIN #a")
        alice.take()
        alice.send_bytes(b"PRIVMSG #a :a\x00b\r\nPRIVMSG #a :\xff\xfe\r\n")
        self.assertEqual(alice.commands(), ["NOTICE", "NOTICE"])
        alice.send("PRIVMSG #a :é ok")
        self.assertEqual(self.only(alice.take(), "PRIVMSG").params, ["#a", "é ok"])

    def test_banned(self) -> None:
        """A banned address gets 465, then ERROR, and is closed."""
        self.hub.ban("10.0.0.2", None, "op", "spam")
        self.registered("alice")
        client = self.connect()
        self.assertEqual(client.commands(), ["465", "ERROR"])
        self.assertTrue(client.closed)


class CrossDoorTests(IRCCase):
    """An IRC client and a native client in one chat."""

    def native_lines(self, connection: Connection[LineClient]) -> list[str]:
        self.network.settle()
        return connection.client.take()

    def test_oneChat(self) -> None:
        """
        A native and an IRC user in one room see each other's joins,
        messages, topics, nick changes, parts and private messages, each
        in their own protocol; nicknames are unique across doors.
        """
        native = self.native_client("nat")  # in #lobby: the native door joins
        irc = self.registered("ircy")
        irc.send("NICK nat")
        self.assertEqual(self.numerics(irc.take())[0][0], "433")
        irc.send("JOIN #lobby")
        self.assertIn("nat", self.only(irc.take(), "353").params[-1])
        self.assertIn("-!- ircy has joined #lobby", self.native_lines(native))
        self.send_native(native, "hello irc")
        self.assertEqual(
            self.only(irc.take(), "PRIVMSG").params, ["#lobby", "hello irc"]
        )
        irc.send("PRIVMSG #lobby :hello native", "PRIVMSG nat :psst", "TOPIC #lobby :t")
        lines = self.native_lines(native)
        for line in (
            "#lobby <ircy> hello native",
            "*ircy* psst",
            "-!- ircy changed the topic of #lobby to: t",
        ):
            self.assertIn(line, lines)
        self.send_native(native, "/msg ircy back", "/nick natalie")
        seen = irc.take()
        self.assertIn(
            ["ircy", "back"], [m.params for m in seen if m.command == "PRIVMSG"]
        )
        self.assertEqual(self.only(seen, "NICK").prefix.split("!")[0], "nat")
        irc.send("PART #lobby :later")
        self.assertIn("-!- ircy has left #lobby (later)", self.native_lines(native))
        irc.send("JOIN #lobby")
        irc.take()
        self.send_native(native, "/quit off")
        self.assertEqual(self.only(irc.take(), "QUIT").params, ["Quit: off"])

    def test_quitsBothWays(self) -> None:
        """An IRC user's QUIT reaches a native user, and a native /quit an IRC user."""
        native = self.native_client("nat")
        irc, other = self.registered("ircy"), self.registered("other")
        for client in (irc, other):
            client.send("JOIN #lobby")
        other.take()
        self.native_lines(native)
        irc.send("QUIT :gone")
        self.assertIn("-!- ircy has quit (gone)", self.native_lines(native))
        self.assertEqual(self.only(other.take(), "QUIT").params, ["Quit: gone"])
        self.send_native(native, "/quit later")
        quit_ = self.only(other.take(), "QUIT")
        self.assertEqual(
            (quit_.prefix.split("!")[0], quit_.params), ("nat", ["Quit: later"])
        )

    def test_nativeOperatorKicksIrcUser(self) -> None:
        """A native operator's /kick closes an IRC user; the room's IRC users see it."""
        native = self.native_client("op")
        self.send_native(native, "/oper root s3cret")
        victim, watcher = self.registered("victim"), self.registered("watcher")
        for client in (victim, watcher):
            client.send("JOIN #lobby")
        watcher.take()
        self.send_native(native, "/kick victim enough")
        seen = victim.take()
        self.assertEqual(seen[-1].command, "ERROR")
        self.assertIn("enough", seen[-1].params[-1])
        self.assertTrue(victim.closed)
        self.assertEqual(
            self.only(watcher.take(), "QUIT").params, ["Kicked by op (enough)"]
        )
        self.assertIn("-!- victim was kicked by op (enough)", self.native_lines(native))

    def test_ircOperatorKicksNativeUser(self) -> None:
        """An IRC operator's KILL closes a native user, told why."""
        native = self.native_client("nat")
        op = self.registered("op")
        op.send("OPER root s3cret", "JOIN #lobby")
        op.take()
        op.send("KILL nat :enough")
        lines = self.native_lines(native)
        self.assertTrue(any("enough" in line for line in lines), lines)
        self.assertTrue(native.closed)

    def send_native(self, connection: Connection[LineClient], *lines: str) -> None:
        for line in lines:
            connection.client.sendLine(line.encode("utf-8"))
        connection.push()


class OptionTests(SynchronousTestCase):
    """The IRC door's options on the command line."""

    def test_offByDefault(self) -> None:
        """Without ``--irc`` the door does not listen; ``--irc`` repeats."""
        self.assertEqual(parse_options().endpoints["irc"], [])
        given = parse_options("--irc", "tcp:6667", "--irc", "tcp:6668").endpoints["irc"]
        self.assertEqual(given, ["tcp:6667", "tcp:6668"])

    def test_serverName(self) -> None:
        """The server name defaults to the host name; a name with a space is refused."""
        self.assertEqual(parse_options()["irc-server-name"], socket.gethostname())
        self.assertEqual(
            parse_options("--irc-server-name", "x.y")["irc-server-name"], "x.y"
        )
        self.assertRaises(usage.UsageError, parse_options, "--irc-server-name", "a b")

    def test_password(self) -> None:
        """The password comes from its file's first line, or the option; not both."""
        path = temp_dir(self) / "pw"
        path.write_text("sesame\nignored\n", encoding="utf-8")
        self.assertEqual(
            parse_options("--irc-password-file", str(path)).irc_password, "sesame"
        )
        self.assertEqual(parse_options("--irc-password", "x").irc_password, "x")
        self.assertRaises(
            usage.UsageError,
            parse_options,
            "--irc-password",
            "x",
            "--irc-password-file",
            str(path),
        )
        self.assertRaises(
            usage.UsageError,
            parse_options,
            "--irc-password-file",
            str(path) + ".missing",
        )

    def test_built(self) -> None:
        """``makeService`` builds the door with its settings when ``--irc`` is given."""
        options = parse_options(
            "--irc",
            "tcp:0:interface=127.0.0.1",
            "--irc-password",
            "pw",
            "--irc-auto-join",
            "lobby,games",
            "--irc-ping-interval",
            "30",
        )
        service = tap.makeService(options, MemoryReactorClock())
        factories = [
            child.factory
            for child in service  # type: ignore[attr-defined]
            if isinstance(getattr(child, "factory", None), IRCFactory)
        ]
        self.assertEqual(len(factories), 1)
        settings = factories[0].settings
        self.assertEqual(settings.password, "pw")
        self.assertEqual(settings.auto_join, ("lobby", "games"))
        self.assertEqual(factories[0].limits.idle_timeout, 30)
