"""
:class:`~chatservice.backends.redis.RedisBackend` against a real
``redis-server`` (:mod:`tests.redis_support`): several hubs in this process,
each a node with its own backend and its own connections to one Redis, and
members that record what they are delivered
(:class:`~chatservice.testing.FakeMember`).  The reactor is the real one:
every test waits (bounded) for what Redis returns.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any

from twisted.internet import reactor, task
from twisted.internet.defer import Deferred, gatherResults, inlineCallbacks
from twisted.python.failure import Failure
from twisted.trial.unittest import TestCase

from chatservice.backends.redis import RedisBackend, parse_redis_url
from chatservice.chat import events
from chatservice.chat.errors import NickInUse, NickLookalike, Unavailable
from chatservice.chat.hub import Hub
from chatservice.chat.model import Session
from chatservice.conn.turns import end_of_turn
from chatservice.stores.base import HistoryStore
from chatservice.stores.memory import MemoryHistoryStore
from chatservice.testing import FakeMember
from tests.redis_support import RedisServer, command_counts

#: Seconds a test waits for what it expects from Redis.
WAIT = 10.0


def until(condition: Callable[[], bool], what: str) -> Deferred[None]:
    """Fires once ``condition()`` holds; fails after :data:`WAIT` seconds."""
    deadline = reactor.seconds() + WAIT

    def poll() -> Deferred[None] | None:
        if condition():
            return None
        if reactor.seconds() > deadline:
            raise AssertionError(f"not within {WAIT:g} s: {what}")
        return task.deferLater(reactor, 0.01, poll)  # type: ignore[arg-type]

    return task.deferLater(reactor, 0, poll)  # type: ignore[arg-type]


def texts(member: FakeMember) -> list[str]:
    """The room messages a member was delivered, in order."""
    said: list[str] = []
    for event in member.events:
        if isinstance(event, events.RoomMessage):
            said.append(event.text)
        elif isinstance(event, events.RoomMessages):
            said.extend(m.text for m in event.messages)
    return said


class Node:
    """A hub whose backend is a :class:`RedisBackend` on the test's Redis."""

    def __init__(
        self,
        case: TestCase,
        url: str,
        liveness: float = 30.0,
        store: HistoryStore | None = None,
        authorities: str | None = None,
    ) -> None:
        address = parse_redis_url(url)
        if authorities is not None:
            address = address.with_authorities(authorities)
        self.backend = RedisBackend(
            address,
            reactor,
            end_of_turn(reactor).soon,
            liveness=liveness,
        )
        self.hub = Hub(clock=reactor.seconds, backend=self.backend, store=store)
        self.backend.attach(self.hub)
        self.stopped = False
        case.addCleanup(self.stop)

    def start(self) -> Deferred[None]:
        self.backend.start()
        return until(self.ready, "the node connected and read the chat")

    def ready(self) -> bool:
        return self.backend.link.up and not self.backend.liveness.syncing

    def stop(self) -> Deferred[None]:
        if self.stopped:
            return Deferred.fromCoroutine(_nothing())
        self.stopped = True
        return self.backend.stop()

    def crash(self) -> Deferred[Any]:
        """Stop as kill -9 would: no goodbye, no heartbeat any more."""
        self.stopped = True
        self.backend.liveness.stop()
        return self.backend.link.stop()

    @inlineCallbacks
    def member(
        self, nick: str, address: str | None = None
    ) -> Generator[Deferred[Any], Any, tuple[Session, FakeMember]]:
        """A registered member in the default room."""
        member = FakeMember(nick)
        session = self.hub.connect(member, address)
        yield self.hub.set_nick(session, nick)
        return session, member


async def _nothing() -> None:
    return None


class RedisBackendTests(TestCase):
    """Several nodes, one chat, on a real Redis."""

    timeout = 60

    def setUp(self) -> None:
        self.redis = RedisServer(self)

    @inlineCallbacks
    def nodes(
        self, count: int, liveness: float = 30.0
    ) -> Generator[Deferred[Any], Any, list[Node]]:
        started = [Node(self, self.redis.url, liveness) for _ in range(count)]
        yield gatherResults([node.start() for node in started])
        return started

    @inlineCallbacks
    def test_crossNodeRoomMessages(self) -> Generator[Deferred[Any], Any, None]:
        """
        Members on two nodes share the default room: each sees the other's
        messages and its own, once, and a message "42" stays the text "42".
        """
        one, two = yield self.nodes(2)
        alice, alice_member = yield one.member("alice")
        bob, bob_member = yield two.member("bob")
        yield until(lambda: one.hub.nicks.keys() >= {"bob"}, "bob known on one")
        one.hub.say(alice, "42")
        two.hub.say(bob, "hello")
        yield until(
            lambda: len(texts(alice_member)) == 2 and len(texts(bob_member)) == 2,
            "both messages delivered to both",
        )
        self.assertEqual(texts(alice_member), texts(bob_member))
        self.assertEqual(sorted(texts(alice_member)), ["42", "hello"])
        joined = [e for e in alice_member.events if isinstance(e, events.Joined)]
        self.assertEqual([e.nick for e in joined], ["alice", "bob"])

    @inlineCallbacks
    def test_oneOrderEverywhere(self) -> Generator[Deferred[Any], Any, None]:
        """
        Three nodes each say 30 messages to one room, interleaved over
        several turns: every member, whatever its node, sees all 90 in one
        and the same order.
        """
        nodes = yield self.nodes(3)
        pairs = []
        for index, node in enumerate(nodes):
            pairs.append((yield node.member(f"user{index}")))
        yield until(
            lambda: all(len(n.hub.rooms["lobby"].members) == 3 for n in nodes),
            "everyone in the lobby on every node",
        )
        for round_ in range(10):
            for index, (session, _) in enumerate(pairs):
                for n in range(3):
                    nodes[index].hub.say(session, f"{index}-{round_}-{n}")
            yield task.deferLater(reactor, 0.001, lambda: None)
        yield until(
            lambda: all(len(texts(member)) == 90 for _, member in pairs),
            "every message to everyone",
        )
        orders = [texts(member) for _, member in pairs]
        self.assertEqual(orders[0], orders[1])
        self.assertEqual(orders[0], orders[2])
        self.assertEqual(len(set(orders[0])), 90)

    @inlineCallbacks
    def test_nicknamesUniqueAcrossNodes(self) -> Generator[Deferred[Any], Any, None]:
        """
        A nickname held on one node is refused on another, and so is a
        case variant of it and a look-alike (``cepe`` in Cyrillic letters),
        naming the nickname it looks like.
        """
        one, two = yield self.nodes(2)
        yield one.member("bob")
        yield one.member("cepe")
        yield until(lambda: "bob" in two.hub.nicks, "bob known on two")
        for wanted, error in [("bob", NickInUse), ("BOB", NickInUse)]:
            session = two.hub.connect(FakeMember())
            self.failureResultOf(two.hub.set_nick(session, wanted), error)
        session = two.hub.connect(FakeMember())
        claim = two.hub.set_nick(session, "\u0441\u0435\u0440\u0435")
        (failure,) = yield _failure(claim)
        self.assertTrue(failure.check(NickLookalike), failure)
        self.assertEqual(failure.value.other, "cepe")

    @inlineCallbacks
    def test_nickRace(self) -> Generator[Deferred[Any], Any, None]:
        """
        Two nodes claim the same nickname in the same turn, neither knowing
        of the other's: exactly one gets it, the other is told it is taken.
        """
        one, two = yield self.nodes(2)
        outcomes: list[object] = []
        for node in (one, two):
            session = node.hub.connect(FakeMember())
            node.hub.set_nick(session, "carol").addCallbacks(
                outcomes.append, lambda f: outcomes.append(f.value)
            )
        yield until(lambda: len(outcomes) == 2, "both claims answered")
        self.assertEqual(outcomes.count("carol"), 1, outcomes)
        self.assertEqual(
            [type(o) for o in outcomes if o != "carol"], [NickInUse], outcomes
        )

    @inlineCallbacks
    def test_claimDuringResyncWaits(self) -> Generator[Deferred[Any], Any, None]:
        """
        A nickname claimed on a node while it reads the chat from Redis
        (just connected, or back from an outage) waits for the reading to
        end: the member then sees the members of the other nodes, and its
        own node's hash in Redis has it (the resynchronisation rewrites that
        hash from the members it knew when it began).
        """
        (one,) = yield self.nodes(1)
        yield one.member("alice")
        two = Node(self, self.redis.url)
        claims: list[Deferred[str]] = []
        at_claim: list[tuple[bool, bool]] = []
        link_up = two.backend._link_up

        def up_then_claim() -> None:
            link_up()  # the resynchronisation begins: its first command sent
            self.assertTrue(two.backend.liveness.syncing)
            session = two.hub.connect(FakeMember())
            claim = two.hub.set_nick(session, "carol")

            def granted(nick: str) -> str:
                # What the member sees the moment it has its nickname.
                liveness = two.backend.liveness
                at_claim.append((liveness.syncing, "alice" in two.hub.nicks))
                return nick

            claims.append(claim.addCallback(granted))

        two.backend.link._on_up = up_then_claim
        two.backend.start()
        yield until(lambda: bool(claims), "two connected")
        nick = yield claims[0]
        self.assertEqual(nick, "carol")
        self.assertEqual(at_claim, [(False, True)])
        # The hash is written at the end of the turn.
        yield task.deferLater(reactor, 0.05, lambda: None)
        members = yield two.backend.command(
            "HGETALL", two.backend.key("members", two.backend.node)
        )
        self.assertIn('"carol"', " ".join(str(m) for m in members))

    @inlineCallbacks
    def test_privateMessageAndWhois(self) -> Generator[Deferred[Any], Any, None]:
        """
        A member finds one of another node (/whois), whispers to it; only the
        two see the message; /who of the lobby lists both on either node.
        """
        one, two = yield self.nodes(2)
        alice, alice_member = yield one.member("alice", "10.0.0.1")
        _, bob_member = yield two.member("bob", "10.0.0.2")
        yield until(lambda: "bob" in one.hub.nicks, "bob known on one")
        found = one.hub.find("Bob")
        self.assertEqual((found.nick, found.address), ("bob", "10.0.0.2"))
        self.assertEqual([r.name for r in found.rooms], ["lobby"])
        self.assertEqual(one.hub.who(alice).nicks(), ["alice", "bob"])
        one.hub.whisper(alice, "bob", "psst")

        def private(member: FakeMember) -> list[str]:
            return [
                e.text for e in member.events if isinstance(e, events.PrivateMessage)
            ]

        yield until(lambda: private(bob_member) == ["psst"], "bob got it")
        yield until(lambda: private(alice_member) == ["psst"], "alice's copy")

    @inlineCallbacks
    def test_operatorKicksMemberOfAnotherNode(
        self,
    ) -> Generator[Deferred[Any], Any, None]:
        """
        An operator on one node kicks a member of another: the member and
        its rooms are told, its node disconnects it, it leaves every node's
        /who, and its nickname is free again.
        """
        one, two, three = yield self.nodes(3)
        yield one.member("op")
        _, carol_member = yield three.member("carol")
        _, dave_member = yield two.member("dave")
        yield until(lambda: "carol" in one.hub.nicks, "carol known on one")
        yield until(lambda: len(two.hub.rooms["lobby"].members) == 3, "everyone on two")
        one.hub.kick("carol", "op", "spam")
        yield until(lambda: carol_member.disconnects != [], "carol disconnected")
        self.assertIn("kicked by op: spam", carol_member.disconnects[0])
        self.assertIn(events.Kicked("carol", "op", "spam"), carol_member.events)
        yield until(
            lambda: events.Kicked("carol", "op", "spam") in dave_member.events,
            "dave told",
        )
        for node in (one, two, three):
            yield until(
                lambda node=node: "carol" not in node.hub.nicks,  # type: ignore[misc]
                "carol gone everywhere",
            )
        self.assertEqual(sorted(two.hub.rooms["lobby"].nicks()), ["dave", "op"])
        yield two.member("carol")

    @inlineCallbacks
    def test_bansTopicsLimitAnnouncements(
        self,
    ) -> Generator[Deferred[Any], Any, None]:
        """
        A ban, a topic, a client limit and an announcement made on one node
        hold on the other; a node started afterwards reads the ban, the
        topic and every member from Redis.
        """
        one, two = yield self.nodes(2)
        alice, _ = yield one.member("alice")
        _, bob_member = yield two.member("bob")
        _, mallory_member = yield two.member("mallory", "10.9.9.9")
        one.hub.set_topic(alice, "welcome")
        one.hub.announce("maintenance at noon", "alice")
        one.hub.set_max_clients(7)
        yield until(lambda: "mallory" in one.hub.nicks, "mallory known on one")
        one.hub.ban("10.9.9.0/24", None, "alice", "abuse")
        yield until(lambda: mallory_member.disconnects != [], "mallory banned")
        yield until(lambda: two.hub.max_clients == 7, "limit on two")
        yield until(lambda: two.hub.rooms["lobby"].topic == "welcome", "topic on two")
        self.assertIn(
            events.Announcement("maintenance at noon", "alice"), bob_member.events
        )
        self.assertEqual([b.target for b in two.hub.bans()], ["10.9.9.0/24"])
        (three,) = yield self.nodes(1)
        self.assertEqual([b.target for b in three.hub.bans()], ["10.9.9.0/24"])
        self.assertEqual(three.hub.rooms["lobby"].topic, "welcome")
        self.assertEqual(three.hub.rooms["lobby"].nicks(), ["alice", "bob"])

    @inlineCallbacks
    def test_deadNodeMembersAnnouncedGone(
        self,
    ) -> Generator[Deferred[Any], Any, None]:
        """
        A node that stops heartbeating (as after kill -9) is found dead by
        another within the liveness bound: its members are announced as
        quit, leave /who, and their nicknames can be taken.
        """
        one, two = yield self.nodes(2, liveness=3.0)
        _, alice_member = yield one.member("alice")
        yield two.member("bob")
        yield until(lambda: "bob" in one.hub.nicks, "bob known on one")
        yield two.crash()
        yield until(
            lambda: any(
                isinstance(e, events.Quit) and e.nick == "bob"
                for e in alice_member.events
            ),
            "alice told bob quit",
        )
        self.assertNotIn("bob", one.hub.nicks)
        self.assertEqual(one.hub.rooms["lobby"].nicks(), ["alice"])
        yield one.member("bob")

    @inlineCallbacks
    def test_redisOutage(self) -> Generator[Deferred[Any], Any, None]:
        """
        Redis stops: a node's members keep chatting among themselves, a new
        nickname is refused as temporarily unavailable; Redis comes back
        (empty): the nodes write the chat back, what was said meanwhile
        reaches the other node, and nicknames work again, unique as before.
        ``health()`` (``/healthz``) says Redis is unreachable meanwhile.
        """
        one, two = yield self.nodes(2)
        alice, alice_member = yield one.member("alice")
        _, amy_member = yield one.member("amy")
        _, bob_member = yield two.member("bob")
        yield until(lambda: "bob" in one.hub.nicks, "bob known")
        self.assertIsNone(one.backend.health())
        self.redis.stop()
        yield until(lambda: not one.backend.link.up, "one sees Redis gone")
        self.assertIn("unreachable", one.backend.health() or "")
        one.hub.say(alice, "still here")
        yield until(lambda: "still here" in texts(amy_member), "amy hears alice")
        newcomer = one.hub.connect(FakeMember())
        (failure,) = yield _failure(one.hub.set_nick(newcomer, "zed"))
        self.assertTrue(failure.check(Unavailable), failure)
        self.redis.start()
        yield until(lambda: one.ready() and two.ready(), "both back")
        self.assertIsNone(one.backend.health())
        yield until(lambda: "still here" in texts(bob_member), "bob hears it late")
        self.assertEqual(texts(alice_member).count("still here"), 1)
        session = two.hub.connect(FakeMember())
        self.failureResultOf(two.hub.set_nick(session, "alice"), NickInUse)
        (failure,) = yield _failure(two.hub.set_nick(session, "Amy"))
        self.assertTrue(failure.check(NickInUse), failure)
        yield two.member("zed")

    @inlineCallbacks
    def test_historyHasEveryNodesMessages(
        self,
    ) -> Generator[Deferred[Any], Any, None]:
        """
        With history on, each node stores the room messages said on the
        other nodes too: replay on join, on either node, shows the room's
        messages from both, in the order said.
        """
        nodes = [
            Node(self, self.redis.url, store=MemoryHistoryStore(100)) for _ in range(2)
        ]
        one, two = nodes
        (alice, _), (bob, bob_member) = yield alice_and_bob(one, two)
        one.hub.say(alice, "from one")
        yield until(lambda: "from one" in texts(bob_member), "bob heard it")
        two.hub.say(bob, "from two")
        yield until(lambda: "from two" in texts(bob_member), "bob heard himself")
        yield task.deferLater(reactor, 0.05, lambda: None)
        for node in nodes:
            kept = yield node.hub.history("lobby", 10)
            self.assertEqual([m.text for m in kept], ["from one", "from two"])

    @inlineCallbacks
    def test_startedWithoutRedis(self) -> Generator[Deferred[Any], Any, None]:
        """
        A node started while Redis is down starts all the same, refusing
        nicknames as temporarily unavailable, and joins the chat once Redis
        answers.
        """
        self.redis.stop()
        node = Node(self, self.redis.url)
        node.backend.start()
        session = node.hub.connect(FakeMember())
        self.failureResultOf(node.hub.set_nick(session, "early"), Unavailable)
        self.redis.start()
        yield until(node.ready, "the node connected once Redis answered")
        yield node.hub.set_nick(session, "early")
        self.assertEqual(
            self.redis.command("KEYS", "chatservice:nick:*"), ["chatservice:nick:early"]
        )

    @inlineCallbacks
    def test_commandsPerMessage(self) -> Generator[Deferred[Any], Any, None]:
        """
        Room messages cost at most one Redis command each (a PUBLISH per
        turn and room), counted by Redis itself (INFO commandstats): 100
        said in one turn are one command, 20 said in 20 turns are 20.
        """
        (one,) = yield self.nodes(1)
        alice, member = yield one.member("alice")
        yield until(lambda: len(member.events) >= 1, "alice joined")
        self.redis.command("CONFIG", "RESETSTAT")
        for n in range(100):
            one.hub.say(alice, f"m{n}")
        yield until(lambda: len(texts(member)) == 100, "100 delivered")
        self.assertEqual(_total(command_counts(self.redis.port)), 1)
        self.redis.command("CONFIG", "RESETSTAT")
        for n in range(20):
            one.hub.say(alice, f"t{n}")
            yield task.deferLater(reactor, 0, lambda: None)
        yield until(lambda: len(texts(member)) == 120, "20 more delivered")
        counts = command_counts(self.redis.port)
        self.assertLessEqual(_total(counts), 20 + counts.get("config", 0), counts)


class RedisTLSTests(TestCase):
    """``rediss://``: the nodes talk to Redis over TLS."""

    timeout = 60

    @inlineCallbacks
    def test_twoNodesOverTLS(self) -> Generator[Deferred[Any], Any, None]:
        """
        Two nodes reach a Redis that speaks TLS only, checking its
        certificate against the authority given (``--redis-ca-file``), and
        are one chat: a member of each hears the other.
        """
        redis = RedisServer(self, tls=True)
        authority = redis.certificate.read_text()
        one, two = (Node(self, redis.url, authorities=authority) for _ in range(2))
        (alice, alice_member), (_, bob_member) = yield alice_and_bob(one, two)
        one.hub.say(alice, "over TLS")
        yield until(lambda: "over TLS" in texts(bob_member), "bob heard it")
        self.assertEqual(texts(alice_member), ["over TLS"])


@inlineCallbacks
def alice_and_bob(
    one: Node, two: Node
) -> Generator[Deferred[Any], Any, list[tuple[Session, FakeMember]]]:
    """Start two nodes; alice on the first, bob on the second, known to both."""
    yield gatherResults([one.start(), two.start()])
    alice = yield one.member("alice")
    bob = yield two.member("bob")
    yield until(lambda: "bob" in one.hub.nicks, "bob known on one")
    return [alice, bob]


def _total(counts: dict[str, int]) -> int:
    """Commands but the test's own (CONFIG RESETSTAT, INFO) and heartbeats."""
    return sum(
        calls
        for name, calls in counts.items()
        if name not in ("config|resetstat", "info", "config", "set", "smembers")
    )


@inlineCallbacks
def _failure(result: Deferred[Any]) -> Generator[Deferred[Any], Any, list[Failure]]:
    """
    The failure ``result`` fails with, in a list (a Deferred cannot fire
    with a bare failure); an assertion error if it succeeds.
    """
    try:
        value = yield result
    except Exception:
        return [Failure()]
    raise AssertionError(f"succeeded with {value!r}")
