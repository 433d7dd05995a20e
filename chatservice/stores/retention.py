"""
The SQLite store's retention (``--history-max-messages``,
``--history-max-age``): how many messages each room has in the file, and
small steps of pruning in the writer, in the background, so that no step
holds the writer for long.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Collection, Iterable
from functools import partial

from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from chatservice.stores.schema import PRUNE_STEP, Row, prune_step
from chatservice.stores.writer import Writer


class Retention:
    """
    Keeps a file to ``per_room`` messages a room, none older than
    ``max_age`` seconds (``None``: any age), one :meth:`step` at a time.
    """

    def __init__(
        self,
        clock: IReactorTime,
        writer: Writer,
        log: Logger,
        *,
        per_room: int,
        max_age: float | None,
        behind: Callable[[], object] = lambda: None,
    ) -> None:
        self.clock = clock
        #: Told when a write leaves a room a whole step over ``per_room``.
        self._behind = behind
        self.writer = writer
        self.log = log
        self.per_room = per_room
        self.max_age = max_age
        #: Messages each room has in the file, and the rooms over
        #: ``per_room``.
        self._counts: dict[str, int] = {}
        self._over: set[str] = set()
        self._pruning = False
        #: Messages written since the last step began.
        self._written = 0
        #: Messages pruned (``/stats``).
        self.pruned = 0

    def load(self, db: sqlite3.Connection) -> None:
        """Count the messages of each room in the file (at start)."""
        self._counts = dict(
            db.execute("SELECT room, count(*) FROM messages GROUP BY room")
        )
        self._over = {k for k, n in self._counts.items() if n > self.per_room}

    def steps_behind(self) -> int:
        """
        How many steps the rooms over ``per_room`` need to be within it
        again (as the counts stand; old messages not included).
        """
        counts, per_room = self._counts, self.per_room
        return sum(-(-(counts[room] - per_room) // PRUNE_STEP) for room in self._over)

    def count(self, rows: Collection[Row]) -> None:
        """Count messages written to the file."""
        counts, per_room = self._counts, self.per_room
        self._written += len(rows)
        behind = False
        for row in rows:
            room = row[1]
            counts[room] = count = counts.get(room, 0) + 1
            if count > per_room:
                self._over.add(room)
                # Any room of the batch, not only the last row's.
                behind = behind or count > per_room + PRUNE_STEP
        if behind:
            self._behind()

    def step(self) -> Deferred[int]:
        """
        One small step, in the writer: delete at most
        :data:`~.schema.PRUNE_STEP` messages older than ``max_age`` or
        beyond ``per_room`` in a room, or as many as were written since the
        last step if that is more: small steps, each no longer than the
        writes it keeps pace with.  Fires with how many.
        """
        if self._pruning:
            return succeed(0)
        limit, self._written = max(PRUNE_STEP, self._written), 0
        oldest = None if self.max_age is None else self.clock.seconds() - self.max_age
        room = self._over.pop() if self._over else None
        excess = self._counts.get(room, 0) - self.per_room if room else 0
        self._pruning = True

        def pruned(result: tuple[list[str], int]) -> int:
            old, step = result
            self._uncount(old)
            if room is not None:
                self._uncount([room] * step)
                if excess > step:
                    self._over.add(room)
            removed = len(old) + step
            self.pruned += removed
            return removed

        def failed(failure: Failure) -> int:
            if room is not None:
                self._over.add(room)
            self.log.warn("history: pruning failed: {error}", error=failure.value)
            return 0

        def done(result: int) -> int:
            self._pruning = False
            return result

        step = self.writer.run(partial(prune_step, oldest, room, excess, limit))
        return step.addCallbacks(pruned, failed).addCallback(done)

    def _uncount(self, rooms: Iterable[str]) -> None:
        for room in rooms:
            left = self._counts.get(room, 1) - 1
            if left > 0:
                self._counts[room] = left
            else:
                self._counts.pop(room, None)
