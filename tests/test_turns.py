"""Tests for :mod:`chatservice.turns`: work done at the end of a reactor turn."""

from __future__ import annotations

from typing import cast

from twisted.internet.task import Clock
from twisted.logger import ILogObserver, LogEvent, globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase

from chatservice.conn.turns import EndOfTurn, end_of_turn


class EndOfTurnTests(SynchronousTestCase):
    """EndOfTurn.soon(): once, in order, at the end of the turn."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.turn = EndOfTurn(self.clock)
        self.ran: list[str] = []

    def test_notBeforeTurnEnd(self) -> None:
        """Nothing runs when asked; everything runs, in order, at turn end."""
        self.turn.soon(lambda: self.ran.append("a"))
        self.turn.soon(lambda: self.ran.append("b"))
        self.assertEqual(self.ran, [])
        self.assertEqual(len(self.clock.getDelayedCalls()), 1)
        self.clock.advance(0)
        self.assertEqual(self.ran, ["a", "b"])
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_askedWhileRunningRunsInSamePass(self) -> None:
        """
        Work asked for by work running at the end of the turn runs in the
        same pass, not a turn later (a reactor would put a ``callLater(0)``
        made then off to its next turn).
        """

        def first() -> None:
            self.ran.append("first")
            self.turn.soon(lambda: self.ran.append("second"))

        self.turn.soon(first)
        self.clock.advance(0)
        self.assertEqual(self.ran, ["first", "second"])
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_nextTurn(self) -> None:
        """After a turn's end, new work waits for the next one."""
        self.turn.soon(lambda: self.ran.append("one"))
        self.clock.advance(0)
        self.turn.soon(lambda: self.ran.append("two"))
        self.assertEqual(self.ran, ["one"])
        self.clock.advance(0)
        self.assertEqual(self.ran, ["one", "two"])

    def test_failureLoggedOthersRun(self) -> None:
        """Work that raises is logged; the work after it still runs."""
        logged: list[LogEvent] = []
        observer = cast(ILogObserver, logged.append)
        globalLogPublisher.addObserver(observer)
        self.addCleanup(globalLogPublisher.removeObserver, observer)

        def broken() -> None:
            raise ZeroDivisionError("broken")

        self.turn.soon(broken)
        self.turn.soon(lambda: self.ran.append("after"))
        self.clock.advance(0)
        self.assertEqual(self.ran, ["after"])
        failures = [event for event in logged if "log_failure" in event]
        self.assertEqual(len(failures), 1)
        self.assertIsInstance(failures[0]["log_failure"].value, ZeroDivisionError)
        self.flushLoggedErrors(ZeroDivisionError)

    def test_onePerClock(self) -> None:
        """end_of_turn() gives every user of one clock the same instance."""
        self.assertIs(end_of_turn(self.clock), end_of_turn(self.clock))
        self.assertIsNot(end_of_turn(self.clock), end_of_turn(Clock()))

    def test_interruptedPassGoesOnNextTurn(self) -> None:
        """
        Work left when a pass is interrupted (KeyboardInterrupt, say) runs
        at the end of the next turn rather than never.
        """

        def interrupted() -> None:
            raise KeyboardInterrupt

        self.turn.soon(interrupted)
        self.turn.soon(lambda: self.ran.append("left"))
        self.assertRaises(KeyboardInterrupt, self.clock.advance, 0)
        self.assertEqual(self.ran, [])
        self.clock.advance(0)
        self.assertEqual(self.ran, ["left"])
