"""
Room history shared through Redis
(:class:`~chatservice.backends.redis.history.RedisHistoryStore`), against a
real ``redis-server``: nodes in this process (:class:`tests.test_redis_backend.Node`)
whose stores keep room history in Redis streams.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Generator
from typing import Any, cast

from twisted.internet import reactor
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.logger import ILogObserver, LogEvent, formatEvent, globalLogPublisher
from twisted.trial.unittest import TestCase

from chatservice.backends.redis import codec
from chatservice.backends.redis.history import HistoryCap, RedisHistoryStore
from chatservice.chat import events
from chatservice.stores.base import Position, UnknownMessageError, page_of
from chatservice.stores.memory import MemoryHistoryStore
from chatservice.testing import FakeMember
from tests.redis_support import RedisServer, command_counts
from tests.test_redis_backend import Node, texts, until


class SharedHistoryNode(Node):
    """A node whose room history is in Redis, the rest in memory."""

    def __init__(
        self,
        case: TestCase,
        url: str,
        per_room: int = 100,
        max_age: float | None = None,
        clock: Callable[[], float] = reactor.seconds,
        private: bool = False,
    ) -> None:
        super().__init__(case, url)
        self.local = MemoryHistoryStore(per_room, private=private)
        self.store = RedisHistoryStore(
            self.backend, self.local, HistoryCap(per_room, max_age, clock)
        )
        # The hub was built without a store: give it this one, as tap does.
        self.hub.store = self.store
        self.backend.set_barrier(self.store.commit)


def heard(member: FakeMember, text: str) -> Callable[[], bool]:
    """Whether ``member`` has been delivered ``text``, to wait for."""
    return lambda: text in texts(member)


def said(messages: list[events.RoomMessage]) -> list[str]:
    """The texts of these messages, in order."""
    return [m.text for m in messages]


class SharedHistoryTests(TestCase):
    """Every node reads the same room history, kept in Redis."""

    timeout = 60

    def setUp(self) -> None:
        self.redis = RedisServer(self)

    @inlineCallbacks
    def started(
        self, count: int, **options: Any
    ) -> Generator[Deferred[Any], Any, list[SharedHistoryNode]]:
        nodes = [
            SharedHistoryNode(self, self.redis.url, **options) for _ in range(count)
        ]
        for node in nodes:
            yield node.start()
        return nodes

    @inlineCallbacks
    def test_laterNodeReplaysEveryNodesHistory(
        self,
    ) -> Generator[Deferred[Any], Any, None]:
        """
        Messages said on two nodes are kept once each in the room's stream;
        a third node started afterwards replays them all, from both nodes,
        in the order the room's members saw them, none twice, with their
        ids, times, nicknames, doors and ``/me`` flags.
        """
        one, two = yield self.started(2)
        alice, alice_member = yield one.member("alice")
        bob, bob_member = yield two.member("bob")
        yield until(lambda: "bob" in one.hub.nicks, "bob known on one")
        for n in range(3):
            one.hub.say(alice, f"alice {n}")
            two.hub.say(bob, f"bob {n}", action=n == 1)
            yield until(heard(alice_member, f"bob {n}"), "heard")
        yield until(lambda: len(texts(bob_member)) == 6, "bob heard all six")
        seen = texts(bob_member)
        self.assertEqual(texts(alice_member), seen)
        (three,) = yield self.started(1)
        kept = yield three.hub.history("LOBBY", 50)
        self.assertEqual(said(kept), seen)
        self.assertEqual(len({m.id for m in kept}), 6)
        delivered = {
            m.id: m
            for e in bob_member.events
            for m in (e.messages if isinstance(e, events.RoomMessages) else (e,))
            if isinstance(m, events.RoomMessage)
        }
        for message in kept:
            original = delivered[message.id]
            self.assertEqual(message, original)
            self.assertEqual(message.at, original.at)
            self.assertEqual(message.door, original.door)
        actions = [m.action for m in kept if m.nick == "bob"]
        self.assertEqual(actions, [False, True, False])
        self.assertEqual(self.redis.command("XLEN", "chatservice:history:lobby"), 6)
        # The local stores hold no room message: Redis does.
        self.assertEqual(said((yield one.local.recent("lobby", 50))), [])
        replay = yield three.hub.history("lobby", 4)
        self.assertEqual(said(replay), seen[-4:])

    @inlineCallbacks
    def test_noticesKept(self) -> Generator[Deferred[Any], Any, None]:
        """
        A notice said on one node is kept in the room's stream as one and
        read back as one on another node, a message and an action as no
        notice; an entry written by a node of before notices (no
        ``notice`` field) reads as no notice.
        """
        one, two = yield self.started(2)
        alice, _ = yield one.member("alice")
        _, bob_member = yield two.member("bob")
        yield until(lambda: "bob" in one.hub.nicks, "bob known on one")
        one.hub.say(alice, "plain")
        one.hub.say(alice, "heads up", notice=True)
        one.hub.say(alice, "waves", action=True)
        yield until(heard(bob_member, "waves"), "bob heard all three")
        self.redis.command(
            "XADD", "chatservice:history:lobby", "*", "id", "old.1", "at", "1e9",
            "room", "lobby", "nick", "zed", "text", "before", "action", "0",
            "door", "irc",
        )  # fmt: skip
        kept = yield two.hub.history("lobby", 10)
        self.assertEqual(
            [(m.text, m.action, m.notice) for m in kept],
            [
                ("plain", False, False),
                ("heads up", False, True),
                ("waves", True, False),
                ("before", False, False),
            ],
        )
        delivered = [
            m
            for e in bob_member.events
            for m in (e.messages if isinstance(e, events.RoomMessages) else (e,))
            if isinstance(m, events.RoomMessage)
        ]
        self.assertEqual([m.notice for m in delivered], [False, True, False])

    @inlineCallbacks
    def test_pagingAcrossNodes(self) -> Generator[Deferred[Any], Any, None]:
        """
        ``page()`` pages back and forth through the shared history on any
        node, before or after a message (by id) or a time, and fails with
        UnknownMessageError for an id the room does not have.
        """
        one, two = yield self.started(2)
        alice, _ = yield one.member("alice")
        bob, bob_member = yield two.member("bob")
        for n in range(10):
            (one if n % 2 else two).hub.say(alice if n % 2 else bob, f"m{n}")
            yield until(heard(bob_member, f"m{n}"), f"m{n} heard")
        everything = yield one.store.page("lobby", 100)
        self.assertEqual(said(everything), [f"m{n}" for n in range(10)])
        middle = everything[6]
        back = yield two.store.page("lobby", 3, before=Position(id=middle.id))
        self.assertEqual(said(back), ["m3", "m4", "m5"])
        on = yield two.store.page(
            "lobby", 2, after=Position(id=middle.id), latest=False
        )
        self.assertEqual(said(on), ["m7", "m8"])
        between = yield one.store.page(
            "lobby",
            10,
            after=Position(at=everything[1].at),
            before=Position(at=everything[4].at),
        )
        self.assertEqual(said(between), ["m2", "m3"])
        yield self.assertFailure(
            one.store.page("lobby", 3, before=Position(id="no.such")),
            UnknownMessageError,
        )
        self.assertEqual(said((yield one.store.page("empty", 5))), [])

    @inlineCallbacks
    def test_capTrims(self) -> Generator[Deferred[Any], Any, None]:
        """
        Redis keeps a bounded history per room: past the cap the oldest
        messages go (the stream stays within the cap and one node of
        Redis's own), reads give the newest ``per_room`` only, and messages
        older than the age limit are neither read nor kept.
        """
        now = [float(reactor.seconds())]
        (one,) = yield self.started(1, per_room=5, max_age=60.0, clock=lambda: now[0])
        alice, member = yield one.member("alice")
        for n in range(150):
            one.hub.say(alice, f"m{n}")
        yield until(lambda: len(texts(member)) == 150, "150 delivered")
        length = self.redis.command("XLEN", "chatservice:history:lobby")
        assert isinstance(length, int)
        self.assertLessEqual(length, 5 + 100)
        self.assertGreaterEqual(length, 5)
        kept = yield one.hub.history("lobby", 50)
        self.assertEqual(said(kept), [f"m{n}" for n in range(145, 150)])
        # Two minutes later (by the store's clock): all too old.
        now[0] += 120
        self.assertEqual(said((yield one.hub.history("lobby", 50))), [])

    @inlineCallbacks
    def test_oneCommandPerTurnStoredBeforeDelivered(
        self,
    ) -> Generator[Deferred[Any], Any, None]:
        """
        A turn's room messages cost one Redis command (the script that
        appends them to the stream and publishes the frame), and a member
        of another node is delivered a message only once it is in the
        stream.
        """
        one, two = yield self.started(2)
        alice, _ = yield one.member("alice")
        _, bob_member = yield two.member("bob")
        found: list[object] = []

        class Checking(FakeMember):
            def deliver(inner, event: events.Event) -> None:  # noqa: N805
                if isinstance(event, events.RoomMessage | events.RoomMessages):
                    found.append(
                        self.redis.command("XLEN", "chatservice:history:lobby")
                    )
                super().deliver(event)

        checker = Checking("dave")
        session = two.hub.connect(checker)
        yield two.hub.set_nick(session, "dave")
        yield until(lambda: "dave" in one.hub.nicks, "dave known")
        yield until(lambda: one.backend.idle and two.backend.idle, "quiet")
        self.redis.command("CONFIG", "RESETSTAT")
        for n in range(20):
            one.hub.say(alice, f"m{n}")
        yield until(lambda: len(texts(checker)) == 20, "dave heard all")
        counts = command_counts(self.redis.port)
        # The test's own commands, and heartbeats, are not the message's.
        for name in ("config|resetstat", "xlen", "set", "smembers", "exists"):
            counts.pop(name, None)
        # Redis counts a script's inner commands too: one round trip.
        scripts = counts.pop("eval", 0) + counts.pop("evalsha", 0)
        self.assertEqual(scripts, 1, counts)
        self.assertEqual(counts, {"xadd": 20, "publish": 1})
        self.assertEqual(found, [20])
        self.assertEqual(len(texts(bob_member)), 20)

    @inlineCallbacks
    def test_privateMessagesStayLocal(self) -> Generator[Deferred[Any], Any, None]:
        """
        Private messages never go to Redis's history: with
        ``--history-private`` the sender's node keeps them in its own store.
        """
        one, two = yield self.started(2, private=True)
        alice, _ = yield one.member("alice")
        _, bob_member = yield two.member("bob")
        yield until(lambda: "bob" in one.hub.nicks, "bob known")
        one.hub.whisper(alice, "bob", "psst")
        yield until(
            lambda: any(
                isinstance(e, events.PrivateMessage) for e in bob_member.events
            ),
            "bob got it",
        )
        self.assertEqual([m.text for m in one.local.privates], ["psst"])
        self.assertEqual(self.redis.command("KEYS", "chatservice:history:*"), [])

    @inlineCallbacks
    def test_redisDownReadsFailSoftly(self) -> Generator[Deferred[Any], Any, None]:
        """
        Redis stops: the node's members go on chatting; history reads answer
        nothing, with one log line however many reads.  Redis comes back
        (empty): what was said meanwhile is replayed into the history.
        """
        (one,) = yield self.started(1)
        alice, member = yield one.member("alice")
        lines = self.logged("shared history")
        self.redis.stop()
        yield until(lambda: not one.backend.link.up, "Redis gone")
        one.hub.say(alice, "during")
        yield until(lambda: "during" in texts(member), "alice heard herself")
        for _ in range(3):
            self.assertEqual((yield one.hub.history("lobby", 10)), [])
        self.assertEqual(len(lines), 1, lines)
        self.assertIn("cannot read the shared history", lines[0])
        self.assertIn("unreachable", one.store.health() or "")
        self.redis.start()
        yield until(one.ready, "back")
        yield until(
            lambda: self.redis.command("XLEN", "chatservice:history:lobby") == 1,
            "the replay kept",
        )
        self.assertEqual(said((yield one.hub.history("lobby", 10))), ["during"])

    @inlineCallbacks
    def test_redisFullChatGoesOn(self) -> Generator[Deferred[Any], Any, None]:
        """
        A Redis that refuses to keep messages (out of memory, with
        ``noeviction``): the messages still reach every node, unkept, with
        one log line however many; once it has room again they are kept.
        """
        one, two = yield self.started(2)
        alice, _ = yield one.member("alice")
        _, bob_member = yield two.member("bob")
        yield until(lambda: "bob" in one.hub.nicks, "bob known")
        lines = self.logged("refused to keep")
        self.redis.command("CONFIG", "SET", "maxmemory-policy", "noeviction")
        self.redis.command("CONFIG", "SET", "maxmemory", "1")
        for n in range(3):
            one.hub.say(alice, f"full {n}")
            yield until(heard(bob_member, f"full {n}"), f"bob heard full {n}")
        self.assertEqual(len(lines), 1, lines)
        self.assertEqual(one.backend.publisher.history_refused, 3)
        self.assertEqual(one.store.figures().write_failures, 3)
        self.redis.command("CONFIG", "SET", "maxmemory", "0")
        one.hub.say(alice, "room again")
        yield until(heard(bob_member, "room again"), "bob heard it")
        self.assertEqual(said((yield two.hub.history("lobby", 10))), ["room again"])

    def logged(self, text: str) -> list[str]:
        """The log lines containing ``text`` from now on, as they come."""
        lines: list[str] = []

        def record(event: LogEvent) -> None:
            line = formatEvent(event)
            if text in line:
                lines.append(line)

        observe = cast(ILogObserver, record)
        globalLogPublisher.addObserver(observe)
        self.addCleanup(globalLogPublisher.removeObserver, observe)
        return lines

    @inlineCallbacks
    def test_replayedFrameKeptOnce(self) -> Generator[Deferred[Any], Any, None]:
        """
        A frame sent again as a replay after Redis had kept it (its reply
        lost with the connection) adds nothing to the history, and the
        other node delivers its message once.
        """
        one, two = yield self.started(2)
        yield one.member("alice")
        _, bob_member = yield two.member("bob")
        yield until(lambda: two.backend.idle, "bob in the room on two")
        message = events.RoomMessage(
            "lobby", "alice", "once", id=f"{one.backend.node}.999", at=1.0
        )
        frame: dict[str, Any] = {
            "n": one.backend.node,
            "i": [{"k": "say", "r": "lobby", "m": [codec.encode(message)]}],
        }
        yield one.backend.publisher.send_frame(frame, json.dumps(frame))
        frame["x"] = 1
        yield one.backend.publisher.send_frame(frame, json.dumps(frame))
        yield until(heard(bob_member, "once"), "bob heard it")
        yield until(lambda: two.backend.idle, "two idle")
        self.assertEqual(self.redis.command("XLEN", "chatservice:history:lobby"), 1)
        self.assertEqual(texts(bob_member), ["once"])

    @inlineCallbacks
    def test_pagesAsEveryStore(self) -> Generator[Deferred[Any], Any, None]:
        """
        The page script selects what every store selects
        (``stores.base.page_of``): for every pair of bounds (none, a message
        id, a time between, before or after the messages, an unknown id),
        every size, newest or oldest, the same page or the same error.
        """
        (one,) = yield self.started(1)
        epoch = 1_700_000_000.0
        kept = [
            events.RoomMessage("Lobby", "alice", f"m{n}", id=f"t.{n}", at=epoch + n)
            for n in range(8)
        ]
        frame: dict[str, Any] = {
            "n": one.backend.node,
            "i": [{"k": "say", "r": "lobby", "m": [codec.encode(m) for m in kept]}],
        }
        yield one.backend.publisher.send_frame(frame, json.dumps(frame))
        bounds: list[Position | None] = [None, Position(id="nope")]
        bounds += [Position(id=f"t.{n}") for n in (0, 3, 7)]
        bounds += [Position(at=epoch + at) for at in (-1, 2, 4.5, 30)]
        for after in bounds:
            for before in bounds:
                for count in (1, 3, 20):
                    for latest in (True, False):
                        try:
                            expected = said(page_of(kept, count, after, before, latest))
                        except UnknownMessageError:
                            expected = ["unknown"]
                        try:
                            got = said(
                                (
                                    yield one.store.page(
                                        "LOBBY",
                                        count,
                                        after=after,
                                        before=before,
                                        latest=latest,
                                    )
                                )
                            )
                        except UnknownMessageError:
                            got = ["unknown"]
                        self.assertEqual(got, expected, (after, before, count, latest))
