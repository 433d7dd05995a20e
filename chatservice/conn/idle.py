"""
The idle sweep: one timer per listening service closes every connection
that sent nothing for ``idle_timeout`` seconds (a ``DelayedCall`` per
connection would cost about half a KiB each, a quarter of the memory
budget per chat client).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Protocol

from twisted.internet.interfaces import IDelayedCall, IReactorTime


class Idler(Protocol):
    """What the sweep reads of a connection."""

    #: When the client last sent anything.
    last_input: float
    #: True once it is being closed (the sweep leaves it alone).
    closing: bool

    def timeoutConnection(self) -> None:
        """Close it for being idle."""


class IdleSweep:
    """Sweeps ``connections()`` while there are any."""

    def __init__(
        self,
        clock: IReactorTime,
        timeout: float,
        connections: Callable[[], Iterable[Idler]],
    ) -> None:
        self.clock = clock
        self.timeout = timeout
        self._connections = connections
        self._call: IDelayedCall | None = None

    def watch(self) -> None:
        """Make sure a sweep is due (a connection arrived)."""
        if self.timeout > 0 and self._call is None:
            self._call = self.clock.callLater(self.timeout, self._sweep)

    def stop(self) -> None:
        """No connections left: no sweep."""
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None

    def _sweep(self) -> None:
        """
        Close the connections idle for the timeout; come back when the next
        one would be, rounded up to a whole tick (a second, or the timeout if
        shorter): a connection may get up to a tick more.
        """
        self._call = None
        limit = self.timeout
        now = self.clock.seconds()
        earliest: float | None = None
        for connection in list(self._connections()):
            if connection.closing:
                continue
            due = connection.last_input + limit
            if due <= now:
                connection.timeoutConnection()
            elif earliest is None or due < earliest:
                earliest = due
        if earliest is not None:
            # On a grid of ticks, so that many connections falling due at
            # slightly different times share one sweep.
            tick = min(1.0, limit)
            at = math.ceil(earliest / tick - 1e-9) * tick
            self._call = self.clock.callLater(at - now, self._sweep)
