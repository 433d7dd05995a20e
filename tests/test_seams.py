# ruff: noqa: RUF001, RUF002 - look-alike letters on purpose
"""
Tests of the seams the reshape for many doors added: event ids and times,
typed errors with fields, the local backend behind the hub, the history
store interface and its memory store, and nickname claims that take a
round trip (a backend that answers later).
"""

from __future__ import annotations

from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase

from chatservice.backends.local import LocalBackend
from chatservice.chat import errors, events
from chatservice.chat.hub import Hub
from chatservice.chat.model import ChatConfig, Session
from chatservice.doors.native.protocol import ChatFactory, ChatProtocol
from chatservice.stores.memory import MemoryHistoryStore
from chatservice.testing import FakeMember


class SeamTestCase(SynchronousTestCase):
    """A hub with a memory store on a fake clock."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(1_700_000_000)
        self.store = MemoryHistoryStore(per_room=3)
        self.backend = LocalBackend()
        self.hub = Hub(
            ChatConfig(),
            clock=self.clock.seconds,
            backend=self.backend,
            store=self.store,
            node="n1",
        )

    def register(self, nick: str) -> tuple[FakeMember, Session]:
        member = FakeMember(nick)
        session = self.hub.connect(member, "10.0.0.1")
        self.assertEqual(self.successResultOf(self.hub.set_nick(session, nick)), nick)
        member.take()
        return member, session


class EventStampTests(SeamTestCase):
    """Every event the hub makes has an id and a time."""

    def test_everyEventStamped(self) -> None:
        """
        Joins, messages, topics, private messages, renames, parts, quits and
        announcements each get an id unique in the chat, prefixed with the
        node's id, and the hub's time.
        """
        alice, _ = self.register("alice")
        _, bob_session = self.register("bob")
        alice.take()
        self.clock.advance(5)
        self.hub.say(bob_session, "hi")
        self.hub.set_topic(bob_session, "news")
        self.hub.whisper(bob_session, "alice", "psst")
        self.hub.announce("notice", "admin")
        self.successResultOf(self.hub.set_nick(bob_session, "bobby"))
        self.hub.join(bob_session, "side")
        self.hub.part(bob_session, "side")
        self.hub.disconnect(bob_session, "bye")
        seen = alice.take()
        self.assertEqual(
            [type(e) for e in seen],
            [
                events.RoomMessage,
                events.TopicChanged,
                events.PrivateMessage,
                events.Announcement,
                events.NickChanged,
                events.Quit,
            ],
        )
        ids = [e.id for e in seen]
        self.assertEqual(len(set(ids)), len(ids))
        self.assertTrue(all(i.startswith("n1.") for i in ids), ids)
        self.assertTrue(all(e.at == 1_700_000_005 for e in seen))

    def test_idsGrowWithinANode(self) -> None:
        """A node's ids count up: later events have higher counters."""
        _, session = self.register("alice")
        first = self.hub.ids.next()
        self.hub.say(session, "x")
        message = self.successResultOf(self.hub.history("lobby", 1))[0]
        second = message.id
        self.assertLess(int(first.split(".")[1]), int(second.split(".")[1]))

    def test_randomNodeIds(self) -> None:
        """Two hubs without a node id given never share an id prefix."""
        ids = {Hub().ids.node for _ in range(20)}
        self.assertEqual(len(ids), 20)

    def test_equalityIgnoresStamps(self) -> None:
        """Two events that say the same thing are equal, whatever their stamps."""
        self.assertEqual(
            events.Joined("lobby", "alice", id="a.1", at=1.0),
            events.Joined("lobby", "alice", id="b.7", at=2.0),
        )
        self.assertNotEqual(
            events.Joined("lobby", "alice"), events.Joined("lobby", "bob")
        )


class TypedErrorTests(SeamTestCase):
    """Refusals are typed, with the facts as fields, in no door's dialect."""

    def test_fields(self) -> None:
        """Each refusal names what it is about in fields a door can render."""
        _, alice = self.register("alice")
        _, stranger = self.connect_unregistered()
        taken = self.failureResultOf(self.hub.set_nick(stranger, "ALICE")).value
        self.assertIsInstance(taken, errors.NickInUse)
        assert isinstance(taken, errors.NickInUse)
        self.assertEqual(taken.nick, "ALICE")
        twin = self.failureResultOf(self.hub.set_nick(stranger, "аӏісе")).value
        self.assertIsInstance(twin, errors.NickLookalike)
        assert isinstance(twin, errors.NickLookalike)
        self.assertEqual((twin.nick, twin.other), ("аӏісе", "alice"))
        nobody = self.assertRaises(errors.NoSuchNick, self.hub.find, "nobody")
        self.assertEqual(nobody.nick, "nobody")
        elsewhere = self.assertRaises(errors.NotInRoom, self.hub.part, alice, "x")
        self.assertEqual(elsewhere.room, "x")
        refused = self.assertRaises(
            errors.NotOperator, self.hub.require_operator, alice, "KICK"
        )
        self.assertEqual(refused.command, "KICK")
        self.assertRaises(errors.NickRequired, self.hub.say, stranger, "hi")

    def connect_unregistered(self) -> tuple[FakeMember, Session]:
        member = FakeMember()
        return member, self.hub.connect(member, "10.0.0.2")

    def test_bannedFields(self) -> None:
        """A ban refusal carries how long it still lasts and why."""
        self.hub.ban("10.0.0.9", 90, "op", "spam")
        banned = self.assertRaises(
            errors.Banned, self.hub.connect, FakeMember(), "10.0.0.9"
        )
        self.assertEqual((banned.remaining, banned.reason), (90, "spam"))
        self.hub.ban("mallory", None, "op")
        _, session = self.connect_unregistered()
        failure = self.failureResultOf(self.hub.set_nick(session, "mallory"))
        nick_banned = failure.value
        assert isinstance(nick_banned, errors.NickBanned)
        self.assertEqual(
            (nick_banned.nick, nick_banned.remaining, nick_banned.reason),
            ("mallory", None, ""),
        )

    def test_noNativeHints(self) -> None:
        """
        What the core says of a refusal names no door's commands: the
        native door adds "/nick NAME", "/part one first" and the like.
        """
        for error in [
            errors.NickRequired(),
            errors.NoCurrentRoom(),
            errors.TooManyRooms(2, 2),
            errors.RoomLimitReached(5),
            errors.NotOperator("/kick"),
            errors.InvalidDuration("soon"),
        ]:
            self.assertNotIn("/", str(error).replace("/kick", ""), error)


class LocalBackendTests(SeamTestCase):
    """The backend of a chat in one process."""

    def test_claimAndRelease(self) -> None:
        """
        A claim holds the nickname and its look-alike key until released;
        a second session's claim of either fails with a typed error.
        """
        one, two = Session(FakeMember(), None, 0), Session(FakeMember(), None, 0)
        self.successResultOf(self.backend.claim_nick(one, "alice", "alice", "alice"))
        one.nick = "alice"
        self.assertIs(self.backend.holder("alice"), one)
        self.failureResultOf(
            self.backend.claim_nick(two, "Alice", "alice", "alice"), errors.NickInUse
        )
        self.failureResultOf(
            self.backend.claim_nick(two, "al1ce", "al1ce", "alice"),
            errors.NickLookalike,
        )
        self.backend.release_nick(two, "alice", "alice")  # not its own: no effect
        self.assertIs(self.backend.holder("alice"), one)
        self.backend.release_nick(one, "alice", "alice")
        self.assertIsNone(self.backend.holder("alice"))
        self.successResultOf(self.backend.claim_nick(two, "alice", "alice", "alice"))

    def test_batchedUntilTurnEnds(self) -> None:
        """
        Given the end of the turn, room messages wait for it and reach each
        member as one event; anything else delivered first flushes them.
        """
        soon: list[object] = []
        backend = LocalBackend(call_soon=soon.append)
        hub = Hub(clock=self.clock.seconds, backend=backend)
        member = FakeMember("alice")
        session = hub.connect(member)
        self.successResultOf(hub.set_nick(session, "alice"))
        member.take()
        hub.say(session, "one")
        hub.say(session, "two")
        self.assertEqual(member.take(), [])
        self.assertEqual(len(soon), 1)
        hub.announce("hello", "admin")
        self.assertEqual(
            member.take(),
            [
                events.RoomMessages(
                    "lobby",
                    (
                        events.RoomMessage("lobby", "alice", "one"),
                        events.RoomMessage("lobby", "alice", "two"),
                    ),
                ),
                events.Announcement("hello", "admin"),
            ],
        )

    def test_bansExpire(self) -> None:
        """Bans are shared through the backend and forgotten once expired."""
        self.hub.ban("alice", 10, "op")
        self.assertEqual(
            [b.target for b in self.backend.bans(self.clock.seconds())], ["alice"]
        )
        self.clock.advance(10)
        self.assertEqual(self.hub.bans(), [])


class HistoryStoreTests(SeamTestCase):
    """The hub keeps room messages in its store."""

    def test_recent(self) -> None:
        """
        Every room message goes to the store, with its id and time; the
        last N come back oldest first, at most ``per_room`` of them.
        """
        _, session = self.register("alice")
        for n in range(5):
            self.hub.say(session, f"m{n}")
        recent = self.successResultOf(self.hub.history("#LOBBY", 2))
        self.assertEqual([m.text for m in recent], ["m3", "m4"])
        everything = self.successResultOf(self.hub.history("lobby", 10))
        self.assertEqual([m.text for m in everything], ["m2", "m3", "m4"])
        self.assertTrue(all(m.id and m.at for m in everything))
        self.assertEqual(self.successResultOf(self.hub.history("lobby", 0)), [])
        self.assertEqual(self.successResultOf(self.hub.history("other", 5)), [])

    def test_privateNotKept(self) -> None:
        """Private messages are not stored."""
        _, alice = self.register("alice")
        self.register("bob")
        self.hub.whisper(alice, "bob", "secret")
        self.assertEqual(self.successResultOf(self.hub.history("lobby", 5)), [])

    def test_noStore(self) -> None:
        """Without a store the hub has no history, and says so with nothing."""
        hub = Hub()
        self.assertEqual(self.successResultOf(hub.history("lobby", 5)), [])

    def test_perRoomAtLeastOne(self) -> None:
        """A memory store keeps at least one message per room."""
        self.assertRaises(ValueError, MemoryHistoryStore, 0)


class SlowBackend(LocalBackend):
    """A backend whose nickname claims are answered when the test says."""

    def __init__(self) -> None:
        super().__init__()
        self.pending: list[tuple[Deferred[None], Deferred[None]]] = []

    def claim_nick(
        self, session: Session, nick: str, key: str, looks: str
    ) -> Deferred[None]:
        answer = super().claim_nick(session, nick, key, looks)
        later: Deferred[None] = Deferred()
        self.pending.append((answer, later))
        return later

    def answer(self) -> None:
        pending, self.pending = self.pending, []
        for answer, later in pending:
            answer.chainDeferred(later)


class RemoteClaimTests(SynchronousTestCase):
    """A nickname claim that takes a round trip (several nodes)."""

    def setUp(self) -> None:
        self.backend = SlowBackend()
        self.hub = Hub(backend=self.backend)

    def test_registeredOnceAnswered(self) -> None:
        """The session gets its nickname (and room) when the backend answers."""
        member = FakeMember()
        session = self.hub.connect(member)
        claim = self.hub.set_nick(session, "alice")
        self.assertNoResult(claim)
        self.assertIsNone(session.nick)
        self.backend.answer()
        self.assertEqual(self.successResultOf(claim), "alice")
        self.assertEqual(member.take(), [events.Joined("lobby", "alice")])

    def test_lookalikeOfPendingClaim(self) -> None:
        """
        A look-alike of a nickname whose claim is still out is refused too,
        naming what the held nickname looks like.
        """
        first = self.hub.connect(FakeMember())
        self.hub.set_nick(first, "alice")
        second = self.hub.connect(FakeMember())
        claim = self.hub.set_nick(second, "аӏісе")
        self.backend.answer()
        twin = self.failureResultOf(claim, errors.NickLookalike).value
        assert isinstance(twin, errors.NickLookalike)
        self.assertEqual(twin.other, "alice")
        self.assertEqual(first.nick, "alice")

    def test_goneBeforeAnswer(self) -> None:
        """A session gone before the answer does not keep the nickname."""
        session = self.hub.connect(FakeMember())
        claim = self.hub.set_nick(session, "alice")
        self.hub.disconnect(session)
        self.backend.answer()
        self.successResultOf(claim)
        self.assertIsNone(self.backend.holder("alice"))
        self.assertEqual(self.hub.sessions, {})


class SucceedingStoreTests(SynchronousTestCase):
    """The store interface as the hub uses it."""

    def test_storeGetsStampedMessages(self) -> None:
        """The hub hands the store each room message as it is said."""
        kept: list[events.RoomMessage] = []

        class Recorder(MemoryHistoryStore):
            def append(self, message: events.RoomMessage) -> None:
                kept.append(message)

        hub = Hub(store=Recorder(), node="x")
        session = hub.connect(FakeMember())
        self.successResultOf(hub.set_nick(session, "alice"))
        hub.say(session, "hello", action=True)
        self.assertEqual(kept, [events.RoomMessage("lobby", "alice", "hello", True)])
        self.assertTrue(kept[0].id.startswith("x."))


class NativeDoorWaitsForClaimTests(SynchronousTestCase):
    """The native door while a nickname claim is out (a remote backend)."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.backend = SlowBackend()
        self.hub = Hub(clock=self.clock.seconds, backend=self.backend)
        factory = ChatFactory(self.hub, clock=self.clock)
        self.transport = StringTransport(peerAddress=IPv4Address("TCP", "10.0.0.1", 1))
        protocol = factory.buildProtocol(self.transport.getPeer())
        assert isinstance(protocol, ChatProtocol)
        self.protocol: ChatProtocol = protocol
        protocol.makeConnection(self.transport)

    def lines(self) -> list[str]:
        self.clock.advance(0)
        data: str = self.transport.value().decode()
        self.transport.clear()
        return data.split("\r\n")[:-1]

    def test_linesWaitInOrder(self) -> None:
        """
        Lines sent while the claim is out wait for its answer and are then
        handled in order: nothing is said before the client has a name.
        """
        self.lines()
        self.protocol.dataReceived(b"alice\r\nhello\r\n/who\r\n")
        self.assertEqual(self.lines(), [])
        self.assertEqual(self.hub.stats.room_messages, 0)
        self.backend.answer()
        self.assertEqual(
            self.lines(),
            [
                "-!- alice has joined #lobby",
                "--- you are alice; you are in #lobby",
                "#lobby <alice> hello",
                "--- #lobby (1): alice",
            ],
        )

    def test_refusedAfterWait(self) -> None:
        """A claim refused after a wait is shown as the refusal, then input goes on."""
        other = self.hub.connect(FakeMember())
        claim = self.hub.set_nick(other, "alice")
        self.backend.answer()
        self.successResultOf(claim)
        self.lines()
        self.protocol.dataReceived(b"alice\r\nbob\r\n")
        self.backend.answer()
        self.assertEqual(self.lines(), ["!!! the nickname alice is taken"])
        self.backend.answer()
        self.assertEqual(
            self.lines(),
            ["-!- bob has joined #lobby", "--- you are bob; you are in #lobby"],
        )


class ReviewRegressionTests(SeamTestCase):
    """Defects a review of the reshape found, each fixed and kept fixed."""

    def test_renameToOwnLookalikeKeepsProtection(self) -> None:
        """
        A member renamed to a look-alike of its own nickname (Latin ``oce``
        to Cyrillic ``осе``) still holds the look-alike key: nobody else may
        then take ``oce``.
        """
        _, oce = self.register("oce")
        self.assertEqual(self.successResultOf(self.hub.set_nick(oce, "осе")), "осе")
        stranger = self.hub.connect(FakeMember(), "10.0.0.2")
        twin = self.failureResultOf(self.hub.set_nick(stranger, "oce")).value
        self.assertIsInstance(twin, errors.NickLookalike)

    def test_bannedRenameKeepsProtection(self) -> None:
        """
        A rename refused for a ban (to a look-alike of one's own nickname)
        leaves the member's nickname and look-alike key as they were.
        """
        _, oce = self.register("oce")
        self.hub.ban("осе", None, "op")
        self.failureResultOf(self.hub.set_nick(oce, "осе"), errors.NickBanned)
        self.assertEqual(oce.nick, "oce")
        stranger = self.hub.connect(FakeMember(), "10.0.0.2")
        self.failureResultOf(self.hub.set_nick(stranger, "осе"), errors.NickLookalike)

    def test_historyAskedByFoldedName(self) -> None:
        """The store is asked for a room's history by the room's folded name."""
        asked: list[str] = []

        class Recorder(MemoryHistoryStore):
            def recent(
                self, room: str, count: int
            ) -> Deferred[list[events.RoomMessage]]:
                asked.append(room)
                return super().recent(room, count)

        hub = Hub(store=Recorder())
        self.successResultOf(hub.history("#Lobby", 3))
        self.assertEqual(asked, ["lobby"])

    def test_nodeIdsLong(self) -> None:
        """A node's random id has 64 bits (16 hex digits)."""
        self.assertEqual(len(Hub().ids.node), 16)


class AwaitResultTests(SynchronousTestCase):
    """``Connection.awaitResult`` when the door's own handler fails."""

    def test_inputReleasedWhenHandlerRaises(self) -> None:
        """
        If the door's handler of a result that took a while raises, the
        client's input is released all the same (and the error is logged).
        """
        self.backend = SlowBackend()
        hub = Hub(backend=self.backend)
        factory = ChatFactory(hub, clock=Clock())
        transport = StringTransport(peerAddress=IPv4Address("TCP", "10.0.0.1", 1))
        protocol = factory.buildProtocol(transport.getPeer())
        assert isinstance(protocol, ChatProtocol)
        protocol.makeConnection(transport)
        waiting: Deferred[str] = Deferred()

        def broken(value: str) -> None:
            raise RuntimeError("handler failed")

        protocol.awaitResult(waiting, broken, lambda failure: None)
        self.assertTrue(protocol.paused)
        waiting.callback("late")
        self.assertFalse(protocol.paused)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
