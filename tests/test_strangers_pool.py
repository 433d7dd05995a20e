"""
The strangers' budget on its own (``chatservice.conn.strangers``), on a fake
clock with plain stand-ins for connections: who may be evicted is worked out
once a turn (the pool), and worked out again whenever a stranger leaves it
otherwise than by eviction, so that a burst costs one pass over the budget a
turn, not one an arrival, and evicts exactly whom a pass per arrival would.
Each ``clock.advance(0)`` ends a reactor turn.  And the rate-limited log
line of evictions, which describes a peer only when it is written.
"""

from __future__ import annotations

import random
from typing import cast

from twisted.internet.task import Clock
from twisted.logger import ILogObserver, globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase

from chatservice.conn.factory import RateLimitedLog
from chatservice.conn.limits import Limits
from chatservice.conn.strangers import Pool, Stranger, StrangersBudget


class FakeStranger:
    """What the budget reads of a connection, and what it did to it."""

    stranger = False
    arrived_turn = 0
    line_turn = -1
    handshaken = False
    handshake_turn = -2

    def __init__(self, name: str) -> None:
        self.name = name
        self.peer = name
        self.fate: str | None = None

    def evicted(self) -> None:
        self.fate = "evicted"

    def registrationTimedOut(self) -> None:
        self.fate = "timed out"

    def __repr__(self) -> str:
        return self.name


class CountingBudget(StrangersBudget):
    """Counts how often the pool is worked out (not merely returned)."""

    worked_out = 0

    def pool(self) -> Pool:
        before = self._pool
        pool = super().pool()
        if pool is not before:
            self.worked_out += 1
        return pool


class PoolTests(SynchronousTestCase):
    """The pool of a turn, and what makes it be worked out again."""

    def budget(self, max_strangers: int) -> tuple[Clock, CountingBudget]:
        clock = Clock()
        limits = Limits(max_strangers=max_strangers, registration_timeout=0)
        evicted: list[Stranger] = []
        budget = CountingBudget(clock, lambda: limits, evicted.append)
        budget.chooser = random.Random(1)
        return clock, budget

    def arrivals(
        self, clock: Clock, budget: StrangersBudget, name: str, count: int
    ) -> list[FakeStranger]:
        """``count`` newcomers in one turn, which then ends."""
        peers = [FakeStranger(f"{name}{n}") for n in range(count)]
        for peer in peers:
            budget.arrive(peer)
        clock.advance(0)
        return peers

    def later(self, clock: Clock, budget: StrangersBudget) -> None:
        """Two more turns with strangers' activity: the old may be evicted."""
        for _ in range(2):
            budget.end_turn_soon()
            clock.advance(0)

    def test_burstWorksPoolOutOncePerTurn(self) -> None:
        """
        A hundred newcomers in one turn over a full budget of ten: each
        arrival evicts one of the old, and the pool is worked out once for
        the whole turn, not once an arrival.
        """
        clock, budget = self.budget(10)
        old = self.arrivals(clock, budget, "old", 10)
        self.later(clock, budget)
        budget.worked_out = 0
        storm = [FakeStranger(f"storm{n}") for n in range(100)]
        for peer in storm[:10]:
            budget.arrive(peer)
        self.assertEqual([p.fate for p in old], ["evicted"] * 10)
        for peer in storm[10:]:
            budget.arrive(peer)  # nobody left to evict in this turn
        self.assertEqual(budget.worked_out, 1)
        self.assertEqual(len(budget.waiting), 100)
        self.assertFalse(any(p.fate for p in storm))

    def test_speakingLeavesThePool(self) -> None:
        """
        A stranger that sends a complete line after the pool of the turn was
        worked out is spared in that turn all the same; the next arrival
        evicts another one.
        """
        clock, budget = self.budget(2)
        talker, silent = self.arrivals(clock, budget, "old", 2)
        self.later(clock, budget)
        budget.pool()  # worked out with the talker in it
        budget.spoke(talker)
        budget.arrive(FakeStranger("new"))
        self.assertEqual((talker.fate, silent.fate), (None, "evicted"))

    def test_leavingLeavesThePool(self) -> None:
        """
        A stranger that registers after the pool was worked out is not
        evicted (it is no stranger any more), nor counted: the next arrival
        over the budget evicts one still waiting.
        """
        for seed in range(10):
            clock, budget = self.budget(3)
            budget.chooser = random.Random(seed)
            old = self.arrivals(clock, budget, "old", 3)
            self.later(clock, budget)
            budget.pool()
            budget.leave(old[0])  # registered
            budget.arrive(FakeStranger("new1"))
            budget.arrive(FakeStranger("new2"))
            self.assertIsNone(old[0].fate, seed)
            self.assertEqual([p.fate for p in old[1:]], ["evicted", None], seed)

    def test_sameVictimsAsAPassPerArrival(self) -> None:
        """
        Over twenty seeds, the strangers a burst evicts are the ones a pass
        over the whole budget at each arrival would choose (the pool of the
        turn less those already evicted, oldest first).
        """
        for seed in range(20):
            clock, budget = self.budget(8)
            old = self.arrivals(clock, budget, "old", 8)
            self.later(clock, budget)
            budget.chooser = random.Random(seed)
            expected_chooser = random.Random(seed)
            remaining = list(old)
            expected = []
            for _ in range(5):
                expected.append(
                    remaining.pop(expected_chooser.randrange(len(remaining) // 2))
                )
            for n in range(5):
                budget.arrive(FakeStranger(f"new{n}"))
            self.assertEqual(
                [p for p in old if p.fate == "evicted"],
                [p for p in old if p in expected],
                seed,
            )

    def test_handOverLeavesThePool(self) -> None:
        """
        A stranger handed over to its upgraded connection after the pool was
        worked out takes its place spared (its answer is on its way): the
        old object is never evicted, the next arrival evicts another.
        """
        clock, budget = self.budget(2)
        visitor, other = self.arrivals(clock, budget, "old", 2)
        self.later(clock, budget)
        budget.pool()
        upgraded = FakeStranger("upgraded")
        budget.hand_over(visitor, upgraded)
        budget.arrive(FakeStranger("new"))
        self.assertEqual((visitor.fate, upgraded.fate), (None, None))
        self.assertEqual(other.fate, "evicted")
        self.assertEqual([p.peer for p in budget.waiting], ["upgraded", "new"])


class Unread:
    """A connection whose peer must not be described (it would raise)."""

    @property
    def peer(self) -> str:
        raise AssertionError("the peer was described for a line not written")


class RateLimitedLogTests(SynchronousTestCase):
    """What the rate-limited log line of evictions and refusals reads."""

    def test_peerDescribedOnlyWhenLogged(self) -> None:
        """
        Within the interval an event is only counted: the connection's
        peer is not described (in a storm, thousands of them a second);
        the next line written names its own connection and the count.
        """
        clock = Clock()
        events: list[dict[str, object]] = []
        log = RateLimitedLog(clock, "echo", "evicted")
        observer = cast(ILogObserver, events.append)
        globalLogPublisher.addObserver(observer)
        self.addCleanup(globalLogPublisher.removeObserver, observer)
        log.note(FakeStranger("192.0.2.1:1000"), "full")
        for _ in range(50):
            log.note(Unread(), "full")
        clock.advance(10)
        log.note(FakeStranger("192.0.2.2:2000"), "full")
        lines = [e for e in events if e.get("what") == "evicted"]
        self.assertEqual(
            [e["peer"] for e in lines], ["192.0.2.1:1000", "192.0.2.2:2000"]
        )
        self.assertEqual([e["count"] for e in lines], [1, 51])
