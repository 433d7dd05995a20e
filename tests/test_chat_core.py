# ruff: noqa: RUF001, RUF002 - look-alike and fullwidth letters on purpose
"""
Tests for :mod:`chatservice.chat.hub`: the hub's rules, on plain objects.

Every member is a :class:`FakeMember` that records the events the hub
delivers to it and the reasons it was disconnected for; time is a
:class:`~twisted.internet.task.Clock`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from chatservice.backends.local import LocalBackend
from chatservice.chat import events
from chatservice.chat.durations import format_duration, parse_duration
from chatservice.chat.errors import (
    ChatError,
    InvalidNick,
    NickLookalike,
    NoSuchNick,
    NotInRoom,
    NotOperator,
    Refused,
    ServerFull,
    UsageError,
)
from chatservice.chat.hub import Hub
from chatservice.chat.model import ChatConfig, Session
from chatservice.doors.native.render import render_error
from chatservice.testing import FakeMember as FakeMember  # test_operations uses it

#: Text with every kind of character a user must not be able to send raw:
#: an escape sequence, a bell, a tab, a carriage return, DEL, a C1 control
#: (CSI) and a right-to-left override.
HOSTILE = "a\x1b[31mb\x07c\td\re\x7ff\x9bg\u202eh"
#: How :data:`HOSTILE` must reach every other member.
SHOWN = "a^[[31mb^Gc^Id^Me^?f<U+009B>g<U+202E>h"


class HubTestCase(SynchronousTestCase):
    """A hub on a fake clock, and helpers to connect members to it."""

    config = ChatConfig()

    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(1000)
        self.hub = Hub(self.config, clock=self.clock.seconds)
        self.members: dict[str, FakeMember] = {}

    def connect(self, address: str | None = "10.0.0.1") -> tuple[FakeMember, Session]:
        """A new unregistered connection."""
        member = FakeMember()
        return member, self.hub.connect(member, address)

    def register(
        self, nick: str, address: str | None = "10.0.0.1"
    ) -> tuple[FakeMember, Session]:
        """A new connection, registered as ``nick``; its events so far dropped."""
        member, session = self.connect(address)
        member.label = nick
        self.successResultOf(self.hub.set_nick(session, nick))
        self.members[nick] = member
        return member, session

    def nickRefused(self, session: Session, wanted: str) -> ChatError:
        """The error the hub refuses a nickname with (the claim has fired)."""
        failure = self.failureResultOf(self.hub.set_nick(session, wanted), ChatError)
        assert isinstance(failure.value, ChatError)
        return failure.value

    def clear(self) -> None:
        """Forget every event delivered so far."""
        for member in self.members.values():
            member.take()


class ConnectionTests(HubTestCase):
    """Connecting, disconnecting and the client limit."""

    def test_connect(self) -> None:
        """
        A connection gets an unregistered session in no room, with its address
        and the connection time, and is counted.
        """
        member, session = self.connect("10.0.0.3")
        self.assertIsNone(session.nick)
        self.assertEqual(session.address, "10.0.0.3")
        self.assertEqual(session.rooms, ())
        self.assertIsNone(session.current)
        self.assertEqual(session.connected_at, 1000)
        self.assertIs(session.member, member)
        self.assertEqual(self.hub.connections(), [session])
        self.assertEqual(self.hub.stats.connections_total, 1)
        self.assertEqual(member.events, [])

    def test_disconnectUnregistered(self) -> None:
        """
        An unregistered connection leaves silently: nobody is told, and it is
        no longer counted.
        """
        alice, _ = self.register("alice")
        alice.take()
        _, session = self.connect()
        self.hub.disconnect(session, "bye")
        self.assertEqual(alice.events, [])
        self.assertEqual(len(self.hub.sessions), 1)

    def test_disconnectTwice(self) -> None:
        """A second disconnect of the same session does nothing."""
        alice, _ = self.register("alice")
        _, session = self.register("bob")
        self.clear()
        self.hub.disconnect(session, "one")
        self.hub.disconnect(session, "two")
        self.assertEqual(alice.events, [events.Quit("bob", "one")])

    def test_serverFull(self) -> None:
        """
        Once ``max_clients`` clients are registered, the next connection is
        refused with a message saying so, and the refusal is counted.
        """
        self.hub = Hub(ChatConfig(max_clients=2), clock=self.clock.seconds)
        self.register("alice")
        self.register("bob")
        error = self.assertRaises(Refused, self.connect)
        self.assertEqual(
            render_error(error), "server full (2 clients); please try again later"
        )
        self.assertEqual(len(self.hub.sessions), 2)
        self.assertEqual(self.hub.stats.refused, 1)

    def test_freedSlotTaken(self) -> None:
        """When a client leaves a full server, the next one gets in."""
        self.hub = Hub(ChatConfig(max_clients=1), clock=self.clock.seconds)
        _, first = self.register("alice")
        self.assertRaises(Refused, self.connect)
        self.hub.disconnect(first)
        self.register("bob")
        self.assertEqual(len(self.hub.sessions), 1)

    def test_strangersTakeNoPlace(self) -> None:
        """
        Connections still choosing a nickname take no registered place (the
        doors limit them): with one place, many may connect; the first to
        register gets the place, the next is refused, and keeps no nickname.
        """
        self.hub = Hub(ChatConfig(max_clients=1), clock=self.clock.seconds)
        strangers = [self.connect()[1] for _ in range(5)]
        self.assertEqual(
            self.successResultOf(self.hub.set_nick(strangers[0], "a")), "a"
        )
        error = self.nickRefused(strangers[1], "b")
        self.assertIsInstance(error, ServerFull)
        self.assertEqual(
            render_error(error), "server full (1 client); please try again later"
        )
        # What the IRC door's ERROR says: the error's own text.
        self.assertEqual(str(error), "server full (1 client)")
        self.assertIsNone(strangers[1].nick)
        self.assertRaises(NoSuchNick, self.hub.find, "b")
        self.assertEqual(self.hub.registered, 1)
        self.hub.disconnect(strangers[0])
        self.assertEqual(
            self.successResultOf(self.hub.set_nick(strangers[1], "b")), "b"
        )

    def test_setMaxClientsAtRunTime(self) -> None:
        """
        Lowering the limit below the number connected keeps every connected
        client and refuses new ones; 0 lifts the limit.
        """
        sessions = [self.register(f"user{n}")[1] for n in range(3)]
        self.hub.set_max_clients(2)
        self.assertEqual(self.hub.max_clients, 2)
        self.assertEqual(self.hub.connections(), sessions)
        error = self.assertRaises(Refused, self.connect)
        self.assertEqual(
            render_error(error), "server full (2 clients); please try again later"
        )
        self.hub.disconnect(sessions[0])
        self.assertRaises(Refused, self.connect)
        self.hub.disconnect(sessions[1])
        self.register("other")
        self.hub.set_max_clients(0)
        for n in range(5):
            self.register(f"more{n}")
        self.assertEqual(len(self.hub.sessions), 7)

    def test_negativeLimitRefused(self) -> None:
        """A negative client limit is refused and the limit is unchanged."""
        error = self.assertRaises(ChatError, self.hub.set_max_clients, -1)
        self.assertEqual(render_error(error), "the client limit is 0 (none) or more")
        self.assertEqual(self.hub.max_clients, 1000)

    def test_peak(self) -> None:
        """The peak counts the most clients connected at once."""
        sessions = [self.connect()[1] for _ in range(3)]
        for session in sessions:
            self.hub.disconnect(session)
        self.connect()
        self.assertEqual(self.hub.stats.connections_peak, 3)
        self.assertEqual(self.hub.stats.connections_total, 4)


class RegistrationTests(HubTestCase):
    """Choosing a nickname the first time."""

    def test_joinsDefaultRoom(self) -> None:
        """
        Registering gives the session its nickname and joins the default
        room, which becomes current; the member sees its own join.
        """
        member, session = self.connect()
        self.assertEqual(
            self.successResultOf(self.hub.set_nick(session, "alice")), "alice"
        )
        self.assertEqual(session.nick, "alice")
        self.assertEqual(member.events, [events.Joined("lobby", "alice")])
        lobby = self.hub.room("lobby")
        self.assertEqual(list(lobby.members), [session])
        self.assertIs(session.current, lobby)
        self.assertIs(self.hub.find("alice"), session)

    def test_configuredDefaultRoom(self) -> None:
        """The default room is the configured one, given with or without ``#``."""
        self.hub = Hub(ChatConfig(default_room="#main"), clock=self.clock.seconds)
        member, _ = self.register("alice")
        self.assertEqual(member.events, [events.Joined("main", "alice")])

    def test_othersSeeJoin(self) -> None:
        """Members of the default room see a newcomer join, once."""
        alice, _ = self.register("alice")
        alice.take()
        bob, _ = self.register("bob")
        self.assertEqual(alice.events, [events.Joined("lobby", "bob")])
        self.assertEqual(bob.events, [events.Joined("lobby", "bob")])

    def test_unregisteredCannotAct(self) -> None:
        """
        Before choosing a nickname a client cannot speak, join, part, set a
        topic or send a private message.
        """
        self.register("bob")
        _, session = self.connect()
        calls = [
            lambda: self.hub.say(session, "hi"),
            lambda: self.hub.say(session, "waves", action=True),
            lambda: self.hub.join(session, "games"),
            lambda: self.hub.part(session),
            lambda: self.hub.set_topic(session, "x"),
            lambda: self.hub.whisper(session, "bob", "psst"),
        ]
        for call in calls:
            error = self.assertRaises(ChatError, call)
            self.assertEqual(render_error(error), "choose a nickname first: /nick NAME")
        self.assertEqual(self.members["bob"].events, [events.Joined("lobby", "bob")])
        self.assertEqual(self.hub.stats.room_messages, 0)


class NicknameTests(HubTestCase):
    """Nickname rules, uniqueness and renames."""

    def test_takenCaseInsensitively(self) -> None:
        """``Alice`` and ``alice`` are the same nickname: the second is refused."""
        self.register("Alice")
        _, session = self.connect()
        error = self.nickRefused(session, "alice")
        self.assertEqual(render_error(error), "the nickname alice is taken")
        self.assertIsNone(session.nick)
        self.assertEqual(session.rooms, ())

    def test_takenFullwidth(self) -> None:
        """A fullwidth ``ａｌｉｃｅ`` is the same nickname as ``alice``."""
        self.register("alice")
        _, session = self.connect()
        error = self.nickRefused(session, "ａｌｉｃｅ")
        self.assertEqual(render_error(error), "the nickname ａｌｉｃｅ is taken")

    def test_anyScript(self) -> None:
        """
        Nicknames in Chinese, Cyrillic and Greek are accepted, shown as
        typed, and unique regardless of case in their script.
        """
        for nick in ("张三", "Иван", "Ελένη"):
            self.register(nick)
        self.assertEqual(self.hub.room("lobby").nicks(), ["Ελένη", "Иван", "张三"])
        for other in ("ИВАН", "ΕΛΈΝΗ", "ελένη"):
            _, session = self.connect()
            self.nickRefused(session, other)

    def test_mixedScriptsRefused(self) -> None:
        """A nickname mixing scripts (Latin ``paypal`` with a Cyrillic а) is refused."""
        _, session = self.connect()
        error = self.nickRefused(session, "p\u0430ypal")
        self.assertEqual(
            render_error(error),
            "a nickname uses one script, not a mix (Cyrillic and Latin)",
        )
        self.assertIsNone(session.nick)
        self.assertEqual(self.hub.nicks, {})

    def test_lookalikesRefused(self) -> None:
        """
        A nickname that looks like one in use is refused (``NickLookalike``,
        naming the holder) and the session stays unregistered: Cyrillic
        ``аӏісе`` and Greek-and-Latin twins by script (``ορα`` next to
        ``opa``), a full-width name next to a Cyrillic one (``ｃａｐｅ``
        next to ``саре``), and either way round.
        """
        for held, wanted in (
            ("alice", "аӏісе"),
            ("opa", "ορα"),
            ("ορα", "OPA"),
            ("саре", "ｃａｐｅ"),
            ("ｃａｐｅ", "САРЕ"),
        ):
            _, holder = self.register(held)
            _, session = self.connect()
            error = self.nickRefused(session, wanted)
            self.assertIsInstance(error, NickLookalike, wanted)
            assert isinstance(error, NickLookalike)
            self.assertEqual((error.nick, error.other), (wanted, held))
            self.assertIsNone(session.nick)
            self.hub.disconnect(holder)
            self.hub.disconnect(session)
        self.assertEqual(self.hub.nicks, {})

    def test_invisibleSuffixRefused(self) -> None:
        """
        ``alice`` with an invisible suffix (combining grapheme joiner,
        variation selector, zero-width space, word joiner) or a blank
        filler nickname is refused as invalid, whether ``alice`` is in use
        or not: nobody holds a name that looks like another or like nothing.
        """
        self.register("alice")
        _, session = self.connect()
        for wanted in ("alice\u034f", "alice\ufe00", "alice\u200b", "alice\u2060"):
            error = self.nickRefused(session, wanted)
            self.assertIsInstance(error, InvalidNick, ascii(wanted))
        for wanted in ("\u3164", "\u115f\u1160", "\uffa0", "bob\U000e0100"):
            self.assertIsInstance(self.nickRefused(session, wanted), InvalidNick)
        self.assertIsNone(session.nick)
        self.assertEqual(list(self.hub.nicks), ["alice"])

    def test_invalidRefused(self) -> None:
        """
        Empty nicknames, ones too long, ones with spaces, markup or control
        characters, and ones starting with a digit or ``-`` are refused, and
        the session stays unregistered.
        """
        _, session = self.connect()
        for wanted, message in [
            ("", "a nickname cannot be empty"),
            ("   ", "a nickname cannot be empty"),
            ("a" * 25, "a nickname has at most 24 characters"),
            ("9lives", "a nickname starts with a letter or _"),
            ("-dash", "a nickname starts with a letter or _"),
            ("al ice", "a nickname has letters, digits, _ and - only (not ' ')"),
            ("<bob>", "a nickname starts with a letter or _"),
            ("bob>", "a nickname has letters, digits, _ and - only (not '>')"),
            ("b*b", "a nickname has letters, digits, _ and - only (not '*')"),
            ("esc\x1b", "a nickname has letters, digits, _ and - only (not '\\x1b')"),
            (
                "rtl\u202e",
                "a nickname has letters, digits, _ and - only (not '\\u202e')",
            ),
        ]:
            error = self.nickRefused(session, wanted)
            self.assertEqual(render_error(error), message, wanted)
        self.assertIsNone(session.nick)
        self.assertEqual(self.hub.nicks, {})

    def test_validForms(self) -> None:
        """
        24 characters, a leading ``_``, digits and ``-`` are fine, and
        surrounding blanks are dropped.
        """
        for nick in ("a" * 24, "_x", "bob-2_b"):
            _, session = self.connect()
            self.assertEqual(
                self.successResultOf(self.hub.set_nick(session, f"  {nick} ")), nick
            )

    def test_renameSeenOnceByEveryNeighbour(self) -> None:
        """
        A rename is delivered once to the member and once to every member
        sharing one or more rooms with it, and to nobody else.
        """
        alice, alice_session = self.register("alice")
        bob, bob_session = self.register("bob")
        carol, _ = self.register("carol")
        dave, dave_session = self.register("dave")
        self.hub.join(alice_session, "games")
        self.hub.join(bob_session, "games")
        self.hub.part(dave_session, "lobby")
        self.hub.join(dave_session, "elsewhere")
        self.clear()
        self.assertEqual(
            self.successResultOf(self.hub.set_nick(alice_session, "alicia")), "alicia"
        )
        renamed = [events.NickChanged("alice", "alicia")]
        self.assertEqual(alice.events, renamed)
        self.assertEqual(bob.events, renamed)
        self.assertEqual(carol.events, renamed)
        self.assertEqual(dave.events, [])

    def test_renameFreesOldNickname(self) -> None:
        """After a rename the old nickname is free and the new one is taken."""
        _, alice_session = self.register("alice")
        self.hub.set_nick(alice_session, "alicia")
        self.assertIs(self.hub.find("ALICIA"), alice_session)
        self.assertRaises(ChatError, self.hub.find, "alice")
        _, other = self.register("alice")
        self.assertIs(self.hub.find("alice"), other)
        _, third = self.connect()
        self.nickRefused(third, "Alicia")

    def test_renameToTakenRefused(self) -> None:
        """Renaming to a nickname someone else holds fails and changes nothing."""
        alice, alice_session = self.register("alice")
        self.register("bob")
        self.clear()
        error = self.nickRefused(alice_session, "BOB")
        self.assertEqual(render_error(error), "the nickname BOB is taken")
        self.assertEqual(alice_session.nick, "alice")
        self.assertIs(self.hub.find("alice"), alice_session)
        self.assertEqual(alice.events, [])

    def test_renameCaseOnly(self) -> None:
        """A member may change the case of its own nickname."""
        alice, session = self.register("alice")
        alice.take()
        self.assertEqual(
            self.successResultOf(self.hub.set_nick(session, "Alice")), "Alice"
        )
        self.assertEqual(alice.events, [events.NickChanged("alice", "Alice")])
        self.assertEqual(self.hub.room("lobby").nicks(), ["Alice"])
        self.assertIs(self.hub.find("ALICE"), session)

    def test_renameToSameNothing(self) -> None:
        """Choosing the nickname one already has delivers nothing."""
        alice, session = self.register("alice")
        alice.take()
        self.assertEqual(
            self.successResultOf(self.hub.set_nick(session, "alice")), "alice"
        )
        self.assertEqual(alice.events, [])

    def test_renameInNoRoom(self) -> None:
        """A member in no room still sees its own rename."""
        alice, session = self.register("alice")
        self.hub.part(session)
        alice.take()
        self.hub.set_nick(session, "alicia")
        self.assertEqual(alice.events, [events.NickChanged("alice", "alicia")])

    def test_findUnknown(self) -> None:
        """Looking up a nickname nobody has gives an error naming it."""
        error = self.assertRaises(ChatError, self.hub.find, " nobody ")
        self.assertEqual(render_error(error), "no such nickname: nobody")


class RoomTests(HubTestCase):
    """Joining, parting, the current room, and room limits."""

    def test_joinCreates(self) -> None:
        """
        Joining a room that does not exist creates it with the name as typed
        (without ``#``), makes it current, and only its members see the join.
        """
        alice, alice_session = self.register("alice")
        bob, _ = self.register("bob")
        self.clear()
        room = self.hub.join(alice_session, "#Games")
        self.assertEqual(room.name, "Games")
        self.assertIs(alice_session.current, room)
        self.assertEqual(alice.events, [events.Joined("Games", "alice")])
        self.assertEqual(bob.events, [])
        self.assertEqual([r.name for r in self.hub.all_rooms()], ["Games", "lobby"])

    def test_joinExisting(self) -> None:
        """
        Joining an existing room, in any case, adds the member to it; every
        member including the newcomer sees the join once.
        """
        alice, alice_session = self.register("alice")
        bob, bob_session = self.register("bob")
        carol, _ = self.register("carol")
        self.hub.join(alice_session, "Games")
        self.clear()
        room = self.hub.join(bob_session, "gAMES")
        self.assertEqual(room.name, "Games")
        self.assertEqual(alice.events, [events.Joined("Games", "bob")])
        self.assertEqual(bob.events, [events.Joined("Games", "bob")])
        self.assertEqual(carol.events, [])
        self.assertEqual(room.nicks(), ["alice", "bob"])

    def test_joinAgainSwitches(self) -> None:
        """Joining a room one is in only makes it current; nobody is told."""
        alice, session = self.register("alice")
        self.hub.join(session, "games")
        alice.take()
        lobby = self.hub.join(session, "LOBBY")
        self.assertIs(session.current, lobby)
        self.assertEqual(alice.events, [])
        self.assertEqual([r.key for r in session.rooms], ["lobby", "games"])

    def test_partCurrentFallsBack(self) -> None:
        """
        Parting the current room makes the most recently joined remaining
        room current; parting the last one leaves no current room.
        """
        _, session = self.register("alice")
        self.hub.join(session, "a")
        self.hub.join(session, "b")
        self.hub.join(session, "a")
        self.hub.part(session)
        self.assertEqual(session.current and session.current.name, "b")
        self.hub.part(session)
        self.assertEqual(session.current and session.current.name, "lobby")
        self.hub.part(session)
        self.assertIsNone(session.current)
        error = self.assertRaises(ChatError, self.hub.say, session, "hello?")
        self.assertEqual(render_error(error), "you are in no room; /join ROOM")

    def test_partOtherKeepsCurrent(self) -> None:
        """Parting a room that is not current keeps the current room."""
        _, session = self.register("alice")
        games = self.hub.join(session, "games")
        self.hub.part(session, "lobby")
        self.assertIs(session.current, games)

    def test_partDelivered(self) -> None:
        """
        A part, with its reason, is seen by every member of the room (the
        leaver too), and by nobody outside it.
        """
        alice, alice_session = self.register("alice")
        bob, bob_session = self.register("bob")
        carol, _ = self.register("carol")
        self.hub.join(alice_session, "games")
        self.hub.join(bob_session, "games")
        self.clear()
        self.hub.part(alice_session, "#games", "dinner")
        parted = [events.Parted("games", "alice", "dinner")]
        self.assertEqual(alice.events, parted)
        self.assertEqual(bob.events, parted)
        self.assertEqual(carol.events, [])
        self.assertEqual(self.hub.room("games").nicks(), ["bob"])

    def test_partErrors(self) -> None:
        """Parting a room one is not in, or with no room, is an error."""
        _, session = self.register("alice")
        self.register("bob")
        self.hub.join(self.hub.find("bob"), "games")
        error = self.assertRaises(ChatError, self.hub.part, session, "games")
        self.assertEqual(render_error(error), "you are not in #games")
        self.hub.part(session)
        error = self.assertRaises(ChatError, self.hub.part, session)
        self.assertEqual(render_error(error), "you are in no room; /join ROOM")

    def test_emptyRoomRemoved(self) -> None:
        """A room disappears when its last member parts or quits."""
        _, alice_session = self.register("alice")
        _, bob_session = self.register("bob")
        self.hub.join(alice_session, "games")
        self.hub.join(bob_session, "games")
        self.hub.part(alice_session, "games")
        self.assertIn("games", self.hub.rooms)
        self.hub.disconnect(bob_session)
        self.assertNotIn("games", self.hub.rooms)
        error = self.assertRaises(ChatError, self.hub.room, "games")
        self.assertEqual(render_error(error), "no such room: #games")

    def test_defaultRoomKept(self) -> None:
        """The default room stays when empty."""
        _, session = self.register("alice")
        self.hub.part(session, "lobby")
        self.assertEqual(self.hub.room("lobby").members, {})
        self.hub.disconnect(session)
        self.assertEqual([r.name for r in self.hub.all_rooms()], ["lobby"])

    def test_invalidRoomNames(self) -> None:
        """Room names with spaces, ``>``, controls, empty or too long are refused."""
        _, session = self.register("alice")
        for wanted, message in [
            ("#", "a room name cannot be empty"),
            ("", "a room name cannot be empty"),
            ("a" * 33, "a room name has at most 32 characters"),
            ("a>b", "a room name has letters, digits, _ - and . only (not '>')"),
            ("a\x1bb", "a room name has letters, digits, _ - and . only (not '\\x1b')"),
            ("##x", "a room name has letters, digits, _ - and . only (not '#')"),
        ]:
            error = self.assertRaises(ChatError, self.hub.join, session, wanted)
            self.assertEqual(render_error(error), message, wanted)
        self.assertEqual([r.key for r in session.rooms], ["lobby"])
        self.assertEqual(self.hub.join(session, "a" * 32).name, "a" * 32)

    def test_maxRooms(self) -> None:
        """
        Past ``max_rooms`` a new room cannot be created, an existing one can
        still be joined, and a room freed makes space again.
        """
        self.hub = Hub(ChatConfig(max_rooms=2), clock=self.clock.seconds)
        _, alice = self.register("alice")
        _, bob = self.register("bob")
        self.hub.join(alice, "games")
        error = self.assertRaises(ChatError, self.hub.join, bob, "other")
        self.assertEqual(
            render_error(error),
            "the server has 2 rooms (its limit); join an existing one",
        )
        self.assertNotIn("other", self.hub.rooms)
        self.hub.join(bob, "games")
        self.hub.part(alice, "games")
        self.hub.part(bob, "games")
        self.hub.join(bob, "other")
        self.assertEqual([r.name for r in self.hub.all_rooms()], ["lobby", "other"])

    def test_maxRoomsPerMember(self) -> None:
        """
        A member cannot be in more than ``max_rooms_per_member`` rooms; it can
        still switch between those it is in, and join again after a part.
        """
        self.hub = Hub(ChatConfig(max_rooms_per_member=2), clock=self.clock.seconds)
        _, session = self.register("alice")
        self.hub.join(session, "games")
        error = self.assertRaises(ChatError, self.hub.join, session, "third")
        self.assertEqual(
            render_error(error), "you are in 2 rooms already (limit 2); /part one first"
        )
        self.assertNotIn("third", self.hub.rooms)
        self.hub.join(session, "lobby")
        self.hub.part(session, "games")
        self.hub.join(session, "third")
        self.assertEqual([r.key for r in session.rooms], ["lobby", "third"])

    def test_whoAndNicks(self) -> None:
        """
        ``who`` gives the named room or the current one; its nicknames are
        sorted case-insensitively.
        """
        _, session = self.register("carol")
        self.register("Bob")
        self.register("alice")
        self.assertEqual(self.hub.who(session).nicks(), ["alice", "Bob", "carol"])
        self.hub.join(session, "games")
        self.assertEqual(self.hub.who(session).name, "games")
        self.assertEqual(self.hub.who(session, "#lobby").name, "lobby")
        error = self.assertRaises(ChatError, self.hub.who, session, "nowhere")
        self.assertEqual(render_error(error), "no such room: #nowhere")


class TopicTests(HubTestCase):
    """Room topics."""

    def test_set(self) -> None:
        """
        Any member sets the topic of its current room; the room's members
        see it once, others do not.
        """
        alice, alice_session = self.register("alice")
        bob, bob_session = self.register("bob")
        carol, carol_session = self.register("carol")
        self.hub.part(carol_session)
        self.clear()
        room = self.hub.set_topic(bob_session, "  Friday games  ")
        self.assertEqual(room.topic, "Friday games")
        changed = [events.TopicChanged("lobby", "bob", "Friday games")]
        self.assertEqual(alice.events, changed)
        self.assertEqual(bob.events, changed)
        self.assertEqual(carol.events, [])
        self.assertEqual(alice_session.current, room)

    def test_clear(self) -> None:
        """An empty topic clears it, and the room sees an empty topic."""
        alice, session = self.register("alice")
        self.hub.set_topic(session, "something")
        alice.take()
        self.hub.set_topic(session, "   ")
        self.assertEqual(self.hub.room("lobby").topic, "")
        self.assertEqual(alice.events, [events.TopicChanged("lobby", "alice", "")])

    def test_length(self) -> None:
        """A topic of ``max_topic_length`` is fine; one more character is not."""
        self.hub = Hub(ChatConfig(max_topic_length=10), clock=self.clock.seconds)
        alice, session = self.register("alice")
        self.hub.set_topic(session, "0123456789")
        alice.take()
        error = self.assertRaises(ChatError, self.hub.set_topic, session, "0123456789A")
        self.assertEqual(render_error(error), "a topic has at most 10 characters")
        self.assertEqual(self.hub.room("lobby").topic, "0123456789")
        self.assertEqual(alice.events, [])

    def test_namedRoom(self) -> None:
        """A topic may be set on another joined room, not on one not joined."""
        _, session = self.register("alice")
        _, bob = self.register("bob")
        self.hub.join(bob, "bobs")
        self.hub.join(session, "games")
        self.hub.set_topic(session, "hello", "lobby")
        self.assertEqual(self.hub.room("lobby").topic, "hello")
        self.assertEqual(self.hub.room("games").topic, "")
        error = self.assertRaises(ChatError, self.hub.set_topic, session, "x", "bobs")
        self.assertEqual(render_error(error), "you are not in #bobs")

    def test_noRoom(self) -> None:
        """Without a current room there is no topic to set."""
        _, session = self.register("alice")
        self.hub.part(session)
        error = self.assertRaises(ChatError, self.hub.set_topic, session, "x")
        self.assertEqual(render_error(error), "you are in no room; /join ROOM")


class MessageTests(HubTestCase):
    """Room and private messages."""

    def test_sayReachesRoom(self) -> None:
        """
        A line said reaches every member of the sender's current room, the
        sender included, once each; members elsewhere get nothing.
        """
        alice, alice_session = self.register("alice")
        bob, bob_session = self.register("bob")
        carol, carol_session = self.register("carol")
        dave, _ = self.register("dave")
        for session in (alice_session, bob_session, carol_session):
            self.hub.join(session, "games")
        self.hub.part(carol_session, "lobby")
        self.clear()
        room = self.hub.say(alice_session, "hello")
        self.assertEqual(room.name, "games")
        said = [events.RoomMessage("games", "alice", "hello")]
        self.assertEqual(alice.events, said)
        self.assertEqual(bob.events, said)
        self.assertEqual(carol.events, said)
        self.assertEqual(dave.events, [])

    def test_sayToCurrentOnly(self) -> None:
        """A member in several rooms speaks in its current room only."""
        _, session = self.register("alice")
        bob, _ = self.register("bob")
        self.hub.join(session, "games")
        self.hub.join(session, "lobby")
        self.clear()
        self.hub.say(session, "to the lobby")
        self.assertEqual(
            bob.events, [events.RoomMessage("lobby", "alice", "to the lobby")]
        )

    def test_action(self) -> None:
        """An action is a room message marked as one."""
        alice, session = self.register("alice")
        bob, _ = self.register("bob")
        self.clear()
        self.hub.say(session, "waves", action=True)
        waved = [events.RoomMessage("lobby", "alice", "waves", True)]
        self.assertEqual(alice.events, waved)
        self.assertEqual(bob.events, waved)

    def test_notice(self) -> None:
        """A notice is a room message marked as one, neither plain nor action."""
        alice, session = self.register("alice")
        bob, _ = self.register("bob")
        self.clear()
        self.hub.say(session, "heads up", notice=True)
        noticed = [events.RoomMessage("lobby", "alice", "heads up", notice=True)]
        self.assertEqual(alice.events, noticed)
        self.assertEqual(bob.events, noticed)
        self.assertNotEqual(noticed, [events.RoomMessage("lobby", "alice", "heads up")])
        (message,) = noticed
        self.assertFalse(message.action)

    def test_actionAndNoticeRefused(self) -> None:
        """A line cannot be an action and a notice at once: refused, unsaid."""
        alice, session = self.register("alice")
        bob, _ = self.register("bob")
        self.clear()
        error = self.assertRaises(
            UsageError, self.hub.say, session, "both", action=True, notice=True
        )
        self.assertIn("not both", str(error))
        self.assertEqual((alice.events, bob.events), ([], []))
        self.assertEqual(self.hub.stats.room_messages, 0)

    def test_sayToNamedRoom(self) -> None:
        """
        A line said to a named room the member is in goes there, whatever
        its current room (which stays as it was); a room it is not in is
        refused (``NotInRoom``).
        """
        _, session = self.register("alice")
        bob, bob_session = self.register("bob")
        self.hub.join(session, "games")
        self.hub.join(bob_session, "games")
        self.hub.join(session, "lobby")
        self.clear()
        room = self.hub.say(session, "to games", notice=True, room_name="#Games")
        self.assertEqual(room.name, "games")
        self.assertEqual(session.current, self.hub.room("lobby"))
        self.assertEqual(
            bob.take(), [events.RoomMessage("games", "alice", "to games", notice=True)]
        )
        self.assertRaises(
            NotInRoom, self.hub.say, session, "x", notice=True, room_name="elsewhere"
        )
        self.assertEqual(bob.events, [])

    def test_sayUpdatesIdle(self) -> None:
        """Speaking resets the member's idle time."""
        _, session = self.register("alice")
        self.clock.advance(30)
        self.hub.say(session, "hi")
        self.assertEqual(session.last_active, 1030)

    def test_privateMessage(self) -> None:
        """
        A private message reaches the recipient and the sender once, nobody
        else; it names the recipient as registered, whatever case was typed.
        """
        alice, session = self.register("alice")
        bob, bob_session = self.register("Bob")
        carol, _ = self.register("carol")
        self.clear()
        self.assertIs(self.hub.whisper(session, "bOB", "psst"), bob_session)
        private = [events.PrivateMessage("alice", "Bob", "psst")]
        self.assertEqual(alice.events, private)
        self.assertEqual(bob.events, private)
        self.assertEqual(carol.events, [])

    def test_privateNotice(self) -> None:
        """A private notice reaches the recipient and the sender once, as one."""
        alice, session = self.register("alice")
        bob, _ = self.register("bob")
        carol, _ = self.register("carol")
        self.clear()
        self.hub.whisper(session, "bob", "build done", notice=True)
        noticed = [events.PrivateMessage("alice", "bob", "build done", notice=True)]
        self.assertEqual(alice.events, noticed)
        self.assertEqual(bob.events, noticed)
        self.assertEqual(carol.events, [])
        self.assertNotEqual(
            noticed, [events.PrivateMessage("alice", "bob", "build done")]
        )

    def test_privateMessageToSelf(self) -> None:
        """A private message to oneself is delivered once."""
        alice, session = self.register("alice")
        alice.take()
        self.hub.whisper(session, "alice", "note")
        self.assertEqual(
            alice.events, [events.PrivateMessage("alice", "alice", "note")]
        )

    def test_privateMessageUnknownNick(self) -> None:
        """A private message to an unknown nickname is an error; nobody gets it."""
        alice, session = self.register("alice")
        alice.take()
        error = self.assertRaises(ChatError, self.hub.whisper, session, "nobody", "x")
        self.assertEqual(render_error(error), "no such nickname: nobody")
        self.assertEqual(alice.events, [])
        self.assertEqual(self.hub.stats.private_messages, 0)

    def test_privateMessageWithoutRoom(self) -> None:
        """Private messages need no room: neither side has to be in one."""
        _, session = self.register("alice")
        bob, bob_session = self.register("bob")
        self.hub.part(session)
        self.hub.part(bob_session)
        self.clear()
        self.hub.whisper(session, "bob", "still there?")
        self.assertEqual(
            bob.events, [events.PrivateMessage("alice", "bob", "still there?")]
        )

    def test_announce(self) -> None:
        """
        An announcement reaches every connected client, registered or not,
        once; the count is returned.
        """
        alice, session = self.register("alice")
        self.hub.part(session)
        bob, _ = self.register("bob")
        stranger, _ = self.connect()
        self.clear()
        self.assertEqual(self.hub.announce("restart at 6", "admin root"), 3)
        announced = [events.Announcement("restart at 6", "admin root")]
        for member in (alice, bob, stranger):
            self.assertEqual(member.events, announced)
        self.assertEqual(self.hub.stats.announcements, 1)


class QuitTests(HubTestCase):
    """A registered member leaving the chat."""

    def test_quitNoticeOncePerNeighbour(self) -> None:
        """
        A quit is delivered once to each member sharing one or more rooms
        with the leaver, never to the leaver, never to anyone else; the
        nickname is freed and emptied rooms vanish.
        """
        alice, alice_session = self.register("alice")
        bob, bob_session = self.register("bob")
        carol, _ = self.register("carol")
        dave, dave_session = self.register("dave")
        for session in (alice_session, bob_session):
            self.hub.join(session, "games")
            self.hub.join(session, "chess")
        self.hub.join(alice_session, "solo")
        self.hub.part(dave_session)
        self.clear()
        self.hub.disconnect(alice_session, "bye all")
        quit_ = [events.Quit("alice", "bye all")]
        self.assertEqual(bob.events, quit_)
        self.assertEqual(carol.events, quit_)
        self.assertEqual(alice.events, [])
        self.assertEqual(dave.events, [])
        self.assertRaises(ChatError, self.hub.find, "alice")
        self.assertNotIn("solo", self.hub.rooms)
        self.assertEqual(self.hub.room("games").nicks(), ["bob"])
        self.assertNotIn(alice_session, self.hub.sessions)
        self.assertIsNone(alice_session.current)
        self.assertEqual(alice_session.rooms, ())
        self.register("alice")

    def test_quitWithoutReason(self) -> None:
        """A quit without a reason has an empty one."""
        _, session = self.register("alice")
        bob, _ = self.register("bob")
        self.clear()
        self.hub.disconnect(session)
        self.assertEqual(bob.events, [events.Quit("alice", "")])


class OperatorTests(HubTestCase):
    """Operator rights, kicks and bans."""

    def test_requireOperator(self) -> None:
        """
        A privileged command needs operator rights; once granted, the
        operator is named by nickname (or account when unregistered).
        """
        _, session = self.register("alice")
        error = self.assertRaises(
            NotOperator, self.hub.require_operator, session, "/kick"
        )
        self.assertEqual(
            render_error(error), "/kick needs operator rights (/oper NAME PASSWORD)"
        )
        self.hub.grant_operator(session, "root")
        self.assertEqual(session.operator, "root")
        self.assertEqual(self.hub.require_operator(session, "/kick"), "alice")
        _, stranger = self.connect()
        self.hub.grant_operator(stranger, "admin2")
        self.assertEqual(self.hub.require_operator(stranger, "/kick"), "admin2")

    def test_kick(self) -> None:
        """
        A kick tells the victim and everyone sharing a room with it, once
        each, disconnects the victim with the reason, and frees its nickname.
        """
        alice, alice_session = self.register("alice")
        bob, bob_session = self.register("bob")
        carol, carol_session = self.register("carol")
        self.hub.join(alice_session, "games")
        self.hub.join(bob_session, "games")
        self.hub.part(carol_session)
        self.clear()
        self.assertIs(self.hub.kick("ALICE", "op", "flooding"), alice_session)
        kicked = [events.Kicked("alice", "op", "flooding")]
        self.assertEqual(alice.events, kicked)
        self.assertEqual(bob.events, kicked)
        self.assertEqual(carol.events, [])
        self.assertEqual(alice.disconnects, ["kicked by op: flooding"])
        self.assertNotIn(alice_session, self.hub.sessions)
        self.assertEqual(self.hub.room("games").nicks(), ["bob"])
        self.assertEqual(self.hub.stats.kicks, 1)
        self.register("alice")

    def test_kickWithoutReason(self) -> None:
        """A kick without a reason says only who kicked."""
        alice, _ = self.register("alice")
        self.hub.kick("alice", "op")
        self.assertEqual(alice.disconnects, ["kicked by op"])
        self.assertEqual(alice.events[-1], events.Kicked("alice", "op", ""))

    def test_kickUnknown(self) -> None:
        """Kicking a nickname nobody has is an error; nothing is counted."""
        error = self.assertRaises(ChatError, self.hub.kick, "ghost", "op")
        self.assertEqual(render_error(error), "no such nickname: ghost")
        self.assertEqual(self.hub.stats.kicks, 0)

    def test_banNickKicksHolder(self) -> None:
        """
        Banning a nickname kicks whoever holds it (in any case) and returns
        the ban and the sessions kicked.
        """
        alice, alice_session = self.register("Alice")
        bob, _ = self.register("bob")
        self.clear()
        ban, kicked = self.hub.ban("alice", 600, "op", "flooding")
        self.assertEqual(
            (ban.target, ban.until, ban.reason, ban.by),
            ("alice", 1600, "flooding", "op"),
        )
        self.assertIsNone(ban.network)
        self.assertEqual(kicked, [alice_session])
        self.assertEqual(alice.disconnects, ["kicked by op: banned for 10m: flooding"])
        self.assertEqual(
            bob.events, [events.Kicked("Alice", "op", "banned for 10m: flooding")]
        )
        self.assertEqual(self.hub.bans(), [ban])
        self.assertEqual(self.hub.stats.bans, 1)

    def test_bannedNickBlockedUntilExpiry(self) -> None:
        """
        A banned nickname cannot be taken, in any case or width, until the
        ban's duration has passed on the clock.
        """
        self.hub.ban("alice", 600, "op", "flooding")
        _, session = self.connect()
        for wanted in ("alice", "ALICE", "ａｌｉｃｅ"):
            error = self.nickRefused(session, wanted)
            self.assertEqual(
                render_error(error),
                f"the nickname {wanted} is banned for 10m: flooding",
            )
        self.clock.advance(599)
        error = self.nickRefused(session, "alice")
        self.assertEqual(
            render_error(error), "the nickname alice is banned for 1s: flooding"
        )
        self.clock.advance(1)
        self.assertEqual(
            self.successResultOf(self.hub.set_nick(session, "alice")), "alice"
        )
        self.assertEqual(self.hub.bans(), [])

    def test_renameToBannedNick(self) -> None:
        """A registered member cannot rename to a banned nickname either."""
        _, session = self.register("bob")
        self.hub.ban("alice", None, "op")
        error = self.nickRefused(session, "alice")
        self.assertEqual(
            render_error(error), "the nickname alice is banned until unbanned"
        )
        self.assertEqual(session.nick, "bob")

    def test_permanentBanUnban(self) -> None:
        """A ban without duration lasts until lifted; unban lifts it."""
        self.hub.ban("alice", None, "op")
        self.clock.advance(10**9)
        self.assertEqual([b.target for b in self.hub.bans()], ["alice"])
        self.assertEqual(self.hub.unban(" ALICE ").target, "alice")
        self.assertEqual(self.hub.bans(), [])
        self.register("alice")

    def test_unbanUnknown(self) -> None:
        """Lifting a ban that does not exist is an error."""
        error = self.assertRaises(ChatError, self.hub.unban, "alice")
        self.assertEqual(render_error(error), "no ban on alice")

    def test_banAgainReplaces(self) -> None:
        """Banning the same target again replaces the earlier ban."""
        self.hub.ban("alice", 60, "op", "one")
        self.hub.ban("ALICE", 120, "op2", "two")
        bans = self.hub.bans()
        self.assertEqual(
            [(b.target, b.until, b.reason) for b in bans], [("ALICE", 1120, "two")]
        )

    def test_banInvalidTarget(self) -> None:
        """A target that is neither an address nor a valid nickname is refused."""
        self.assertRaises(ChatError, self.hub.ban, "not valid!", 60, "op")
        self.assertEqual(self.hub.bans(), [])

    def test_banAddress(self) -> None:
        """
        Banning an address kicks every connection from it, registered or
        not, leaves others alone, and refuses new connections from it until
        unbanned.
        """
        alice, alice_session = self.register("alice", "10.0.0.7")
        bob, _ = self.register("bob", "10.0.0.8")
        stranger, stranger_session = self.connect("10.0.0.7")
        self.clear()
        ban, kicked = self.hub.ban("10.0.0.7", 300, "op", "spam")
        self.assertEqual(ban.target, "10.0.0.7/32")
        self.assertEqual(set(kicked), {alice_session, stranger_session})
        self.assertEqual(alice.disconnects, ["kicked by op: banned for 5m: spam"])
        self.assertEqual(stranger.disconnects, ["banned for 5m: spam"])
        self.assertEqual(bob.disconnects, [])
        self.assertEqual(
            bob.events, [events.Kicked("alice", "op", "banned for 5m: spam")]
        )
        self.assertEqual(stranger.events, [])
        self.assertEqual(self.hub.connections(), [self.hub.find("bob")])
        error = self.assertRaises(Refused, self.connect, "10.0.0.7")
        self.assertEqual(render_error(error), "you are banned for 5m: spam")
        self.assertEqual(self.hub.stats.refused, 1)
        self.connect("10.0.0.8")
        self.assertEqual(self.hub.unban("10.0.0.7").target, "10.0.0.7/32")
        self.connect("10.0.0.7")

    def test_banAddressExpires(self) -> None:
        """An address ban ends after its duration."""
        self.hub.ban("10.0.0.7", 60, "op")
        self.assertRaises(Refused, self.connect, "10.0.0.7")
        self.clock.advance(60)
        self.connect("10.0.0.7")

    def test_banNetwork(self) -> None:
        """
        A CIDR ban covers its whole network: connections in it are kicked and
        new ones refused; addresses outside it are unaffected.
        """
        inside, _ = self.register("inside", "10.0.0.5")
        inside2, _ = self.register("inside2", "10.0.0.250")
        outside, _ = self.register("outside", "10.0.1.5")
        ban, kicked = self.hub.ban("10.0.0.0/24", None, "op")
        self.assertEqual(ban.target, "10.0.0.0/24")
        self.assertEqual(sorted(s.nick or "" for s in kicked), ["inside", "inside2"])
        self.assertEqual(inside.disconnects, ["kicked by op: banned until unbanned"])
        self.assertEqual(inside2.disconnects, ["kicked by op: banned until unbanned"])
        self.assertEqual(outside.disconnects, [])
        error = self.assertRaises(Refused, self.connect, "10.0.0.77")
        self.assertEqual(render_error(error), "you are banned until unbanned")
        self.connect("10.0.1.77")
        self.assertRaises(ChatError, self.hub.unban, "10.0.0.5")
        self.hub.unban("10.0.0.0/24")
        self.connect("10.0.0.77")

    def test_banNetworkNotStrict(self) -> None:
        """A network given with host bits set means the network it is in."""
        ban, _ = self.hub.ban("10.0.0.9/24", 60, "op")
        self.assertEqual(ban.target, "10.0.0.0/24")
        self.assertRaises(Refused, self.connect, "10.0.0.1")

    def test_banIPv4MappedPeers(self) -> None:
        """
        An IPv4 ban also covers that address seen through a dual-stack IPv6
        port (``::ffff:10.0.0.7``), connected already or connecting later.
        """
        mapped, _ = self.register("mapped", "::ffff:10.0.0.7")
        self.hub.ban("10.0.0.0/24", 60, "op")
        self.assertEqual(len(mapped.disconnects), 1)
        self.assertRaises(Refused, self.connect, "::ffff:10.0.0.8")
        self.connect("::ffff:10.0.1.8")
        self.connect("2001:db8::7")

    def test_banIPv6(self) -> None:
        """IPv6 networks can be banned too."""
        self.hub.ban("2001:db8::/32", 60, "op")
        self.assertRaises(Refused, self.connect, "2001:db8::7")
        self.connect("2001:db9::7")
        self.connect("10.0.0.1")

    def test_addressBanIgnoresLocal(self) -> None:
        """
        Connections without an address (UNIX sockets) match no address ban,
        and an address ban does not block a nickname.
        """
        self.hub.ban("0.0.0.0/0", 60, "op")
        member, _ = self.register("alice", None)
        self.assertEqual(member.disconnects, [])


class DurationTests(SynchronousTestCase):
    """parse_duration and format_duration."""

    def test_parse(self) -> None:
        """Units, combinations and plain seconds parse to seconds."""
        for text, seconds in [
            ("30s", 30),
            ("10m", 600),
            ("2h", 7200),
            ("1d", 86400),
            ("1w", 604800),
            ("1h30m", 5400),
            ("90", 90),
            ("5m5", 305),
            ("36500d", 36500 * 86400),  # 100 years, the longest
            (" 10M ", 600),
        ]:
            self.assertEqual(parse_duration(text), seconds, text)

    def test_parseForever(self) -> None:
        """``0``, ``forever``, ``permanent`` and ``perm`` mean no end."""
        for text in ("0", "forever", "FOREVER", "permanent", "perm"):
            self.assertIsNone(parse_duration(text), text)

    def test_parseInvalid(self) -> None:
        """Anything else is an error saying what durations look like."""
        for text in (
            "",
            "m",
            "1.5h",
            "-5",
            "10x",
            "0s",
            "soon",
            "1 h",
            "²",
            "36501d",  # more than 100 years
            "9" * 13,
            "9" * 400 + "d",  # more than a float holds
        ):
            error = self.assertRaises(ChatError, parse_duration, text)
            self.assertEqual(
                render_error(error),
                f"not a duration: {text.strip().lower()} "
                "(try 30s, 10m, 2h, 1d, forever; at most 100 years)",
            )

    def test_format(self) -> None:
        """Seconds are shown with the largest units first, rounded."""
        for seconds, text in [
            (0, "0s"),
            (-5, "0s"),
            (0.4, "0s"),
            (59.6, "1m"),
            (90, "1m30s"),
            (3600, "1h"),
            (3661, "1h1m1s"),
            (86400 + 7200, "1d2h"),
            (3 * 86400 + 5, "3d5s"),
        ]:
            self.assertEqual(format_duration(seconds), text, seconds)

    def test_roundTrip(self) -> None:
        """What format_duration prints, parse_duration reads back."""
        for seconds in (1, 59, 61, 3600, 3725, 90061, 10**7):
            self.assertEqual(parse_duration(format_duration(seconds)), seconds)


class StatsTests(HubTestCase):
    """The counters shown by ``stats``."""

    def test_counters(self) -> None:
        """
        Messages, private messages, deliveries, kicks, bans and announcements
        are each counted.
        """
        _, alice = self.register("alice")
        _, bob = self.register("bob")
        deliveries = self.hub.stats.deliveries
        self.assertEqual(deliveries, 3)  # alice's join, bob's join to both
        self.hub.say(alice, "hi")
        self.hub.say(bob, "waves", action=True)
        self.hub.whisper(alice, "bob", "psst")
        self.hub.announce("note", "op")
        stats = self.hub.stats
        self.assertEqual(stats.room_messages, 2)
        self.assertEqual(stats.private_messages, 1)
        self.assertEqual(stats.announcements, 1)
        self.assertEqual(stats.deliveries, deliveries + 2 + 2 + 2 + 2)
        self.hub.ban("carol", 60, "op")
        self.hub.kick("bob", "op")
        self.assertEqual((stats.bans, stats.kicks), (1, 1))
        self.assertEqual(stats.started_at, 1000)


class VisibleTextTests(HubTestCase):
    """
    Control characters, escapes and bidirectional overrides from one user
    never reach another raw, in any text field.
    """

    def setUp(self) -> None:
        super().setUp()
        self.alice, self.alice_session = self.register("alice")
        self.bob, self.bob_session = self.register("bob")
        self.clear()

    def test_message(self) -> None:
        """A room message is made visible."""
        self.hub.say(self.alice_session, HOSTILE)
        self.assertEqual(self.bob.events, [events.RoomMessage("lobby", "alice", SHOWN)])

    def test_action(self) -> None:
        """An action is made visible."""
        self.hub.say(self.alice_session, HOSTILE, action=True)
        self.assertEqual(
            self.bob.events, [events.RoomMessage("lobby", "alice", SHOWN, True)]
        )

    def test_private(self) -> None:
        """A private message is made visible."""
        self.hub.whisper(self.alice_session, "bob", HOSTILE)
        self.assertEqual(
            self.bob.events, [events.PrivateMessage("alice", "bob", SHOWN)]
        )

    def test_topic(self) -> None:
        """A topic is made visible, in the event and in the room."""
        self.hub.set_topic(self.alice_session, HOSTILE)
        self.assertEqual(
            self.bob.events, [events.TopicChanged("lobby", "alice", SHOWN)]
        )
        self.assertEqual(self.hub.room("lobby").topic, SHOWN)

    def test_quitReason(self) -> None:
        """A quit reason is made visible."""
        self.hub.disconnect(self.alice_session, HOSTILE)
        self.assertEqual(self.bob.events, [events.Quit("alice", SHOWN)])

    def test_partReason(self) -> None:
        """A part reason is made visible."""
        self.hub.part(self.alice_session, None, HOSTILE)
        self.assertEqual(self.bob.events, [events.Parted("lobby", "alice", SHOWN)])

    def test_kickReason(self) -> None:
        """
        A kick reason is made visible, both in the notice to the rooms and in
        the reason the victim is disconnected with.
        """
        self.hub.kick("alice", "bob", HOSTILE)
        self.assertEqual(self.bob.events, [events.Kicked("alice", "bob", SHOWN)])
        self.assertEqual(self.alice.disconnects, [f"kicked by bob: {SHOWN}"])

    def test_banReason(self) -> None:
        """
        A ban reason is made visible in the ban, in the refusal of a new
        connection, in the kick notice and in the disconnect reasons.
        """
        _, stranger_session = self.connect("10.0.0.9")
        stranger = stranger_session.member
        assert isinstance(stranger, FakeMember)
        ban, _ = self.hub.ban("10.0.0.0/24", None, "bob", HOSTILE)
        self.assertEqual(ban.reason, SHOWN)
        self.assertEqual(
            self.alice.disconnects, [f"kicked by bob: banned until unbanned: {SHOWN}"]
        )
        self.assertEqual(stranger.disconnects, [f"banned until unbanned: {SHOWN}"])
        self.assertEqual(
            self.bob.disconnects, [f"kicked by bob: banned until unbanned: {SHOWN}"]
        )
        error = self.assertRaises(Refused, self.connect, "10.0.0.1")
        self.assertEqual(render_error(error), f"you are banned until unbanned: {SHOWN}")

    def test_announcement(self) -> None:
        """An announcement is made visible."""
        self.hub.announce(HOSTILE, "op")
        self.assertEqual(self.bob.events, [events.Announcement(SHOWN, "op")])


# The property: room messages reach exactly the members present.

MEMBERS = 4
ROOMS = ("lobby", "a", "B")

_slot = st.integers(min_value=0, max_value=MEMBERS - 1)
_room = st.sampled_from(ROOMS)
_operation = st.one_of(
    st.tuples(st.just("join"), _slot, _room),
    st.tuples(st.just("part"), _slot, _room),
    st.tuples(st.just("say"), _slot, st.just("")),
    st.tuples(st.just("say"), _slot, st.just("")),
    st.tuples(st.just("rename"), _slot, st.just("")),
    st.tuples(st.just("quit"), _slot, st.just("")),
)


@dataclass
class _Model:
    """What one slot's member should be in, tracked apart from the hub."""

    member: FakeMember
    session: Session
    nick: str
    rooms: list[str] = field(default_factory=lambda: ["lobby"])
    current: str | None = "lobby"


class DeliveryPropertyTests(SynchronousTestCase):
    """Room messages reach exactly the members present, once, in order."""

    @settings(max_examples=200, deadline=None, database=None)
    @given(st.lists(_operation, max_size=60))
    def test_messagesReachExactlyThePresent(self, operations) -> None:
        """
        For any sequence of joins, parts, says, renames and quits (followed by
        a new member taking the slot), every member in a room when a line is
        said there receives it exactly once and in order, and no member
        outside the room receives it.
        """
        clock = Clock()
        hub = Hub(clock=clock.seconds)
        names = iter(f"n{i}" for i in range(10**6))
        texts = iter(f"line {i}" for i in range(10**6))
        expected: dict[FakeMember, list[tuple[str, str, str]]] = {}

        def arrive() -> _Model:
            member = FakeMember()
            session = hub.connect(member, "10.0.0.1")
            nick = self.successResultOf(hub.set_nick(session, next(names)))
            expected[member] = []
            return _Model(member, session, nick)

        slots = [arrive() for _ in range(MEMBERS)]
        for kind, index, room in operations:
            model = slots[index]
            if kind == "join":
                hub.join(model.session, room)
                if room not in model.rooms:
                    model.rooms.append(room)
                model.current = room
            elif kind == "part":
                if room in model.rooms:
                    hub.part(model.session, room)
                    model.rooms.remove(room)
                    if model.current == room:
                        model.current = model.rooms[-1] if model.rooms else None
                else:
                    self.assertRaises(ChatError, hub.part, model.session, room)
            elif kind == "say":
                text = next(texts)
                if model.current is None:
                    self.assertRaises(ChatError, hub.say, model.session, text)
                    continue
                hub.say(model.session, text)
                for other in slots:
                    if model.current in other.rooms:
                        expected[other.member].append((model.current, model.nick, text))
            elif kind == "rename":
                model.nick = self.successResultOf(
                    hub.set_nick(model.session, next(names))
                )
            else:
                hub.disconnect(model.session, "bye")
                slots[index] = arrive()

        for member, wanted in expected.items():
            received = [
                (event.room, event.nick, event.text)
                for event in member.events
                if isinstance(event, events.RoomMessage)
            ]
            self.assertEqual(received, wanted)


class CollectedMessagesTests(HubTestCase):
    """
    With ``call_soon`` (the end of the reactor turn), room messages are
    collected and delivered together, and never out of order with anything
    else the hub does.
    """

    def setUp(self) -> None:
        super().setUp()
        self.soon: list[object] = []
        self.hub = Hub(
            self.config,
            clock=self.clock.seconds,
            backend=LocalBackend(call_soon=self.soon.append),
        )

    def end_turn(self) -> None:
        """Run what the hub asked to run at the end of the turn."""
        waiting, self.soon[:] = list(self.soon), []
        for work in waiting:
            assert callable(work)
            work()

    def said(self, nick: str, *texts: str) -> list[events.RoomMessage]:
        return [events.RoomMessage("lobby", nick, text) for text in texts]

    def test_collectedUntilTurnEnd(self) -> None:
        """
        Messages from several members to one room reach every member as one
        event at the end of the turn, in the order said; they are counted as
        deliveries when said.
        """
        alice, a = self.register("alice")
        bob, b = self.register("bob")
        self.clear()
        before = self.hub.stats.deliveries
        self.hub.say(a, "one")
        self.hub.say(b, "two")
        self.hub.say(a, "three")
        self.assertEqual((alice.events, bob.events), ([], []))
        self.assertEqual(self.hub.stats.deliveries - before, 3 * 2)
        self.assertEqual(len(self.soon), 1)
        self.end_turn()
        batch = events.RoomMessages(
            "lobby", (*self.said("alice", "one"), *self.said("bob", "two"),
                      *self.said("alice", "three"))
        )  # fmt: skip
        self.assertEqual(alice.take(), [batch])
        self.assertEqual(bob.take(), [batch])

    def test_collectedKeepTheirKinds(self) -> None:
        """
        A turn's message, notice and action to one room reach each member
        as one event whose messages keep what each was: the batch says
        which is a notice.
        """
        alice, a = self.register("alice")
        bob, b = self.register("bob")
        self.clear()
        self.hub.say(a, "plain")
        self.hub.say(b, "heads up", notice=True)
        self.hub.say(a, "waves", action=True)
        self.end_turn()
        (batch,) = bob.take()
        assert isinstance(batch, events.RoomMessages)
        self.assertEqual(
            [(m.text, m.action, m.notice) for m in batch.messages],
            [
                ("plain", False, False),
                ("heads up", False, True),
                ("waves", True, False),
            ],
        )
        self.assertEqual(alice.take(), [batch])

    def test_singleMessageIsItself(self) -> None:
        """One message in a turn is delivered as itself, not wrapped."""
        alice, a = self.register("alice")
        self.clear()
        self.hub.say(a, "alone")
        self.end_turn()
        self.assertEqual(alice.take(), self.said("alice", "alone"))

    def test_otherEventsComeAfter(self) -> None:
        """
        A private message, a topic change or a message in another room,
        made after room messages, is delivered after them.
        """
        alice, a = self.register("alice")
        bob, b = self.register("bob")
        self.clear()
        self.hub.say(a, "public")
        self.hub.whisper(a, "bob", "private")
        self.assertEqual(
            bob.take(),
            [
                *self.said("alice", "public"),
                events.PrivateMessage("alice", "bob", "private"),
            ],
        )
        self.hub.say(a, "before the topic")
        self.hub.set_topic(b, "news")
        self.assertEqual(
            alice.take(),
            [
                *self.said("alice", "public"),
                events.PrivateMessage("alice", "bob", "private"),
                *self.said("alice", "before the topic"),
                events.TopicChanged("lobby", "bob", "news"),
            ],
        )
        self.hub.join(b, "side")
        self.clear()
        self.hub.say(a, "in the lobby")
        self.hub.say(b, "in #side")
        self.end_turn()
        self.assertEqual(
            bob.take(),
            [
                *self.said("alice", "in the lobby"),
                events.RoomMessage("side", "bob", "in #side"),
            ],
        )

    def test_newcomerAndLeaver(self) -> None:
        """
        A member who joins after a message does not get it; one who leaves
        after a message does, before its own parting notice.
        """
        _, a = self.register("alice")
        bob, b = self.register("bob")
        self.clear()
        self.hub.say(a, "before carol")
        carol, _ = self.register("carol")
        self.hub.say(a, "before bob leaves")
        self.hub.part(b, reason="bye")
        self.end_turn()
        self.assertEqual(carol.take()[:1], [events.Joined("lobby", "carol")])
        self.assertNotIn(self.said("alice", "before carol")[0], carol.events)
        self.assertEqual(
            bob.take(),
            [
                *self.said("alice", "before carol"),
                events.Joined("lobby", "carol"),
                *self.said("alice", "before bob leaves"),
                events.Parted("lobby", "bob", "bye"),
            ],
        )

    def test_quitterGetsWhatWasSaidBefore(self) -> None:
        """A member who disconnects was delivered what was said before."""
        alice, a = self.register("alice")
        bob, b = self.register("bob")
        self.clear()
        self.hub.say(a, "last words")
        self.hub.disconnect(b, "gone")
        self.assertEqual(bob.take(), self.said("alice", "last words"))
        self.assertEqual(
            alice.take(),
            [*self.said("alice", "last words"), events.Quit("bob", "gone")],
        )

    def test_flushByFrontEnd(self) -> None:
        """
        ``flush()`` delivers what was collected at once (a front end calls
        it before writing a reply); the end of the turn then has nothing
        left to deliver.
        """
        alice, a = self.register("alice")
        self.clear()
        self.hub.say(a, "now")
        self.hub.flush()
        self.assertEqual(alice.take(), self.said("alice", "now"))
        self.end_turn()
        self.assertEqual(alice.take(), [])

    def test_oneFlushAskedPerTurn(self) -> None:
        """
        However often the talk moves between rooms in a turn, the hub asks
        for one flush at its end, and asks again in the next turn.
        """
        _, a = self.register("alice")
        self.hub.join(a, "side")
        self.clear()
        for _ in range(50):
            self.hub.join(a, "lobby")
            self.hub.say(a, "here")
            self.hub.join(a, "side")
            self.hub.say(a, "there")
        self.assertEqual(len(self.soon), 1)
        self.end_turn()
        self.hub.say(a, "next turn")
        self.assertEqual(len(self.soon), 1)


class QuietRoomTests(HubTestCase):
    """Rooms too big to announce who comes and goes."""

    config = ChatConfig(quiet_room_size=3)

    def test_smallRoomAnnounces(self) -> None:
        """Up to the threshold, everyone in the room sees joins and parts."""
        alice, _ = self.register("alice")
        alice.take()
        self.register("bob")
        self.assertEqual(alice.take(), [events.Joined("lobby", "bob")])

    def test_bigRoomQuiet(self) -> None:
        """
        Past the threshold, a join, a part and a quit are shown only to the
        member concerned; ``/who`` (the room's members) still has everyone,
        and messages still reach everyone.
        """
        members = [self.register(f"user{n}") for n in range(3)]
        self.clear()
        newcomer, session = self.register_keeping("late")
        self.assertEqual(newcomer.take(), [events.Joined("lobby", "late")])
        self.assertEqual([m.take() for m, _ in members], [[], [], []])
        self.assertEqual(len(self.hub.room("lobby").members), 4)
        self.assertIn("late", self.hub.room("lobby").nicks())
        self.hub.say(session, "hello")
        self.assertEqual(
            [m.take() for m, _ in members],
            [[events.RoomMessage("lobby", "late", "hello")]] * 3,
        )
        self.hub.join(session, "side")
        self.hub.part(session, "lobby")
        self.assertEqual(newcomer.take()[-1], events.Parted("lobby", "late"))
        self.assertEqual([m.take() for m, _ in members], [[], [], []])
        self.hub.join(session, "lobby")
        self.hub.disconnect(session, "bye")
        self.assertEqual([m.take() for m, _ in members], [[], [], []])

    def test_quitSeenInSmallRoomsOnly(self) -> None:
        """
        A member of a quiet room and a small one: its quit reaches the small
        room's members, not the quiet room's.
        """
        [self.register(f"user{n}") for n in range(3)]
        friend, friend_session = self.register("friend")
        leaver, leaver_session = self.register("leaver")
        self.hub.join(friend_session, "small")
        self.hub.join(leaver_session, "small")
        self.clear()
        leaver.take()
        lurker = self.members["user0"]
        self.hub.disconnect(leaver_session, "bye")
        self.assertEqual(friend.take(), [events.Quit("leaver", "bye")])
        self.assertEqual(lurker.take(), [])

    def test_zeroAnnouncesAlways(self) -> None:
        """A threshold of 0 announces joins in rooms of any size."""
        self.hub = Hub(ChatConfig(quiet_room_size=0), clock=self.clock.seconds)
        first, _ = self.register("first")
        first.take()
        for n in range(10):
            self.register(f"user{n}")
        self.assertEqual(len(first.take()), 10)

    def register_keeping(self, nick: str) -> tuple[FakeMember, Session]:
        """Register ``nick``, keeping what it was delivered."""
        member, session = self.connect()
        self.successResultOf(self.hub.set_nick(session, nick))
        self.members[nick] = member
        return member, session
