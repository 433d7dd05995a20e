"""
The end of the reactor turn: work put off until every read of the turn has
been handled, then done before the reactor waits for the network again.

A busy room is where this pays: the hub collects what the turn's reads said
there, and each member's connection collects what it is sent, so a member
gets one write per turn however many messages and senders there were.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar
from weakref import WeakKeyDictionary

from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger


class EndOfTurn:
    """
    Callables run once, in the order given, at the end of the current
    reactor turn (a ``callLater(0)``): those given while they run, run in
    the same pass.  One per clock, shared by everything on it
    (:func:`end_of_turn`), so that the order holds across services.
    """

    log: ClassVar[Logger] = Logger()

    def __init__(self, clock: IReactorTime) -> None:
        self._clock = clock
        self._waiting: list[Callable[[], object]] = []
        self._call: IDelayedCall | None = None

    def soon(self, work: Callable[[], object]) -> None:
        """Run ``work`` at the end of this turn."""
        self._waiting.append(work)
        if self._call is None:
            self._call = self._clock.callLater(0, self._run)

    def _run(self) -> None:
        # Reactors run calls made by a delayed call in their next turn, not
        # this one: keep going until nothing is waiting.
        try:
            while self._waiting:
                waiting, self._waiting = self._waiting, []
                for index, work in enumerate(waiting):
                    try:
                        work()
                    except Exception:
                        self.log.failure(
                            "at the end of a reactor turn: {work!r}", work=work
                        )
                    except BaseException:
                        # KeyboardInterrupt and the like: what is left runs
                        # in the next turn, in order.
                        self._waiting[:0] = waiting[index + 1 :]
                        raise
        finally:
            self._call = None
            if self._waiting:
                self._call = self._clock.callLater(0, self._run)


_by_clock: WeakKeyDictionary[IReactorTime, EndOfTurn] = WeakKeyDictionary()


def end_of_turn(clock: IReactorTime) -> EndOfTurn:
    """The :class:`EndOfTurn` of a clock (a reactor, or a test's Clock)."""
    turn = _by_clock.get(clock)
    if turn is None:
        turn = _by_clock[clock] = EndOfTurn(clock)
    return turn
