"""
The SQLite store's writes on their way to the file (:mod:`.sqlite` says
why so): what turns collected, handed to the writer as one transaction at
a time with the delivery gate held for it, and what waits behind the one
in flight.  A write that fails (the disk full, the file locked) leaves
what it held waiting, in order, in a bounded queue that the store's timer
retries; one that hangs stops holding deliveries.  One log line says when
writing starts failing or hangs, one when it recovers.
"""

from __future__ import annotations

import sqlite3
from collections import deque
from collections.abc import Callable, Collection, Iterator
from functools import partial
from itertools import chain

from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from chatservice.stores.gate import DeliveryGate
from chatservice.stores.schema import Row, Statement, write_batch
from chatservice.stores.writer import Writer

#: Seconds between retries while writing fails (and between commits of
#: what no delivery wrote).
RETRY_EVERY = 2.0
#: Seconds a write may be in flight before deliveries stop waiting for it
#: (a disk that hangs must not stop the chat).
STALL_AFTER = 2.0


class Committer:
    """
    Collects a store's writes and commits them through its writer, one
    transaction in flight at a time; keeps, in order and at most
    ``retry_limit`` messages, what could not be written, for :meth:`retry`.
    """

    def __init__(
        self,
        path: str,
        clock: IReactorTime,
        writer: Writer,
        gate: DeliveryGate,
        log: Logger,
        *,
        retry_limit: int,
        stored: Callable[[Collection[Row]], None],
    ) -> None:
        #: The file, as the log lines name it.
        self.path = path
        self.clock = clock
        self.writer = writer
        self.gate = gate
        self.log = log
        self.retry_limit = retry_limit
        #: Told the message rows of each transaction written.
        self._stored = stored
        #: Message rows collected since the last commit, oldest first.
        self._messages: deque[Row] = deque()
        #: Other writes collected (statement, parameters), in order.
        self._others: list[Statement] = []
        #: Committed, waiting for the writer (or for a retry), in order,
        #: and the gate's epoch that closes once they are written (0: none).
        self._waiting: deque[Row] = deque()
        self._waiting_others: list[Statement] = []
        self._epoch = 0
        #: The message rows of the write in flight, and since when.
        self._inflight: deque[Row] | None = None
        self._sent_at = 0.0
        #: A write has been in flight for too long (STALL_AFTER).
        self._stalled = False
        self._idle_waiters: list[Deferred[None]] = []
        #: Rooms the file has a row for (read at start by the store).
        self.rooms: set[str] = set()
        #: The last write's error while writing fails, else ``None``.
        self.failing: sqlite3.Error | None = None
        #: Counters for ``/stats`` and ``chatservice.metrics``: messages
        #: written, dropped; transactions that failed.
        self.written = 0
        self.write_failures = 0
        self.dropped = 0

    # Collected

    def add_message(self, row: Row) -> None:
        """Collect a message row (while writing fails, the oldest may go)."""
        self._messages.append(row)
        if (
            self.failing is not None
            and len(self._messages) + len(self._waiting) > self.retry_limit
        ):
            (self._waiting or self._messages).popleft()
            self.dropped += 1

    def add(self, statement: Statement) -> None:
        """Collect another write: a private message, a topic, a ban."""
        self._others.append(statement)

    @property
    def in_flight(self) -> Collection[Row]:
        """The message rows of the write in flight (none: empty)."""
        return self._inflight or ()

    @property
    def busy(self) -> bool:
        """Whether a write is in flight."""
        return self._inflight is not None

    def unwritten(self) -> Iterator[Row]:
        """The message rows not known to be written, oldest first."""
        return chain(self.in_flight, self._waiting, self._messages)

    def unwritten_count(self) -> int:
        return len(self.in_flight) + len(self._waiting) + len(self._messages)

    # Writing

    def commit(self) -> None:
        """
        Hand what was collected to the writer, as one transaction, and open
        an epoch of the delivery gate for it: what is sent from now on
        waits until it is written (see :mod:`.sqlite`).  While a commit is
        in flight, what turns commit waits and goes in the next one; while
        writing fails, everything waits for the retry timer.
        """
        if not (self._messages or self._others):
            return
        self._collect()
        if self.failing is not None:
            self._trim()
            return
        if not self._stalled:
            self._epoch = self.gate.open()
        if self._inflight is None:
            self._send()

    def retry(self) -> None:
        """The timer's: write what waits, unless a write is in flight."""
        self.check_stall()
        if self._inflight is not None:
            return
        self._collect()
        if self._waiting or self._waiting_others:
            self._send()

    def last_try(self) -> Deferred[None]:
        """
        Stopping: one last write of everything that waits, even while
        writing fails; fires once it is answered.
        """
        self._collect()
        if self._waiting or self._waiting_others:
            self._send()
        return self.idle()

    def _collect(self) -> None:
        """Move what was collected behind what waits to be written."""
        self._waiting.extend(self._messages)
        self._waiting_others.extend(self._others)
        self._messages = deque()
        self._others = []

    def _send(self) -> None:
        """Give the writer everything that waits, as one transaction."""
        rows, others, epoch = self._waiting, self._waiting_others, self._epoch
        self._waiting, self._waiting_others, self._epoch = deque(), [], 0
        rooms = {row[1]: row[2] for row in rows if row[1] not in self.rooms}
        self._inflight = rows
        self._sent_at = self.clock.seconds()
        # Waited for: deliveries wait for it (the store's description).
        written = self.writer.run(partial(write_batch, rows, others, rooms), wait=True)
        written.addCallbacks(
            self._written,
            self._not_written,
            callbackArgs=(rows, rooms, epoch),
            errbackArgs=(rows, others),
        )

    def _written(
        self, _: None, rows: deque[Row], rooms: dict[str, str], epoch: int
    ) -> None:
        self._inflight = None
        self._unstall()
        self.rooms.update(rooms)
        self._stored(rows)
        self.written += len(rows)
        if self.failing is not None:
            self.log.info(
                "history: writing to {path} again; {count} waiting {messages} written",
                path=self.path,
                count=len(rows),
                messages="message" if len(rows) == 1 else "messages",
            )
            self.failing = None
        if epoch:
            self.gate.close(epoch)
        if self._waiting or self._waiting_others:
            self._send()  # what turns committed meanwhile, in one go
        else:
            self._idle_now()

    # Failing, hanging

    def _not_written(
        self, failure: Failure, rows: deque[Row], others: list[Statement]
    ) -> None:
        self._inflight = None
        self._unstall()
        error = failure.value
        if not isinstance(error, sqlite3.Error):
            self.log.failure("history: writing to {path}", failure, path=self.path)
            error = sqlite3.OperationalError(str(error))
        # Older than anything waiting: back in front of it, in order.
        rows.extend(self._waiting)
        self._waiting = rows
        self._waiting_others[:0] = others
        self._failed(error)
        # The chat goes on: deliveries no longer wait for these.
        self._epoch = 0
        self.gate.close_all()
        self._idle_now()

    def _failed(self, error: sqlite3.Error) -> None:
        self.write_failures += 1
        if self.failing is None:
            self.log.error(
                "history: cannot write to {path}: {error}; the chat goes on, "
                "messages wait (at most {limit}) and are retried every "
                "{every:g} s",
                path=self.path,
                error=error,
                limit=self.retry_limit,
                every=RETRY_EVERY,
            )
        self.failing = error
        self._trim()

    def _trim(self) -> None:
        """Keep at most ``retry_limit`` messages waiting: drop the oldest."""
        waiting = self._waiting
        while len(waiting) > self.retry_limit:
            waiting.popleft()
            self.dropped += 1

    def check_stall(self) -> None:
        """
        A write in flight for longer than :data:`STALL_AFTER` (a disk that
        hangs) no longer holds deliveries back: the chat goes on.
        """
        if (
            self._inflight is None
            or self._stalled
            or self.clock.seconds() - self._sent_at < STALL_AFTER
        ):
            return
        self.log.warn(
            "history: a write to {path} has not answered for {after:g} s; "
            "deliveries no longer wait for the disk until it does",
            path=self.path,
            after=STALL_AFTER,
        )
        self._stalled = True
        self._epoch = 0
        self.gate.close_all()

    def _unstall(self) -> None:
        if self._stalled:
            self._stalled = False
            self.log.info("history: {path} answers again", path=self.path)

    # Idle

    def idle(self) -> Deferred[None]:
        """Fires once no write is in flight."""
        if self._inflight is None:
            return succeed(None)
        idle: Deferred[None] = Deferred()
        self._idle_waiters.append(idle)
        return idle

    def _idle_now(self) -> None:
        waiters, self._idle_waiters = self._idle_waiters, []
        for idle in waiters:
            idle.callback(None)
