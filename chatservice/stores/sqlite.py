"""
History in an SQLite file (``--history sqlite:PATH``, the default): room
messages, actions and notices, topics, bans, the rooms that have either, and private
messages only if asked (``--history-private``).  ``docs/history.rst`` says
what is on disk and what a crash or a power loss can lose.

The standard library's :mod:`sqlite3`, no ORM.  The file is in WAL mode with
``synchronous=NORMAL``: a commit appends to the write-ahead log without an
``fsync``, so it costs tens of microseconds, and survives the process being
killed (the data is in the operating system's cache once ``COMMIT``
returns).  The ``fsync`` happens when the log is copied into the database
(a *checkpoint*), which can take a long time: it runs in a thread of its
own at the lowest priority, on a connection of its own, never on the
reactor.

Writes are collected on the reactor (:meth:`SQLiteHistoryStore.append`...)
and handed, as one transaction, to the writer by
:meth:`SQLiteHistoryStore.commit`, which the backend calls before it
delivers anything.  The writer is a thread with a connection of its own
(:mod:`chatservice.stores.writer`).  The reactor waits for its answer for
at most ``wait`` seconds (``--history-wait``, a millisecond): a commit is
a tenth of that, and answered then, the turn's deliveries go out at once.
Beyond, what members are sent waits in their outboxes
(:attr:`SQLiteHistoryStore.gate`, :mod:`chatservice.stores.gate`) until
the writer answers: what a member was shown is in the file, and the
reactor never waits for the disk for longer than ``wait``.  One commit is in flight at a
time; what turns commit meanwhile goes in the next.  A write that fails
(the disk full, the file locked by another process, read-only) leaves what
it held waiting, in order, in a bounded queue, and deliveries no longer
wait for it; it is retried every :data:`RETRY_EVERY` seconds, the chat
goes on, one log line says what went wrong and one that it recovered, and
``/stats`` shows it (:meth:`SQLiteHistoryStore.status`).  A write that
does not answer for :data:`STALL_AFTER` seconds stops holding deliveries.

The schema has a version (``PRAGMA user_version``) and the file an
application id; opening a file of a newer version, of another program, or
one that is not a database is a start-up error (:class:`StoreError`), and
the file is left as it is.
"""

from __future__ import annotations

import os
import sqlite3
from collections import deque
from collections.abc import Iterable
from functools import partial
from itertools import chain
from typing import Any, TypeVar

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure

from chatservice.chat import events
from chatservice.chat.model import Ban
from chatservice.chat.names import fold
from chatservice.stores.base import (
    Position,
    Saved,
    SavedTopic,
    StoreError,
    StoreFigures,
    UnknownMessageError,
)
from chatservice.stores.gate import DeliveryGate
from chatservice.stores.reads import newer_page, read_rows
from chatservice.stores.schema import (
    ADD_BAN,
    APPLICATION_ID,
    INSERT_PRIVATE,
    MIGRATIONS,
    PRUNE_STEP,
    REMOVE_BAN,
    SCHEMA_VERSION,
    SET_TOPIC,
    Row,
    Statement,
    checkpoint,
    checkpoint_connection,
    load_saved,
    migrate,
    prune_step,
    write_batch,
    writer_connection,
)
from chatservice.stores.writer import DEFAULT_PATIENCE, Writer, default_writer

__all__ = [
    "APPLICATION_ID",
    "MIGRATIONS",
    "PRUNE_STEP",
    "SCHEMA_VERSION",
    "SQLiteHistoryStore",
]

T = TypeVar("T")

#: Defaults of ``--history-max-messages`` and ``--history-max-age``.
DEFAULT_MAX_MESSAGES = 10_000
DEFAULT_MAX_AGE = 30 * 86400.0
#: Messages that may wait while writing fails; beyond, the oldest are dropped.
DEFAULT_RETRY_LIMIT = 10_000
#: Seconds between retries while writing fails (and between commits of
#: what no delivery wrote).
RETRY_EVERY = 2.0
#: Seconds between background pruning steps (of PRUNE_STEP rows at most).
PRUNE_EVERY = 5.0
#: Default of ``--history-wait``: seconds the reactor waits for a commit.
DEFAULT_WAIT = DEFAULT_PATIENCE
#: Seconds between checkpoints (in a thread).
CHECKPOINT_EVERY = 1.0
#: Seconds a write may be in flight before deliveries stop waiting for it
#: (a disk that hangs must not stop the chat).
STALL_AFTER = 2.0
#: Seconds stopping waits for the writer before it closes without it.
STOP_WAIT = 10.0


class SQLiteHistoryStore:
    """A :class:`~chatservice.stores.base.HistoryStore` in an SQLite file."""

    log = Logger()

    def __init__(
        self,
        path: str,
        clock: IReactorTime,
        *,
        per_room: int = DEFAULT_MAX_MESSAGES,
        max_age: float | None = DEFAULT_MAX_AGE,
        private: bool = False,
        retry_limit: int = DEFAULT_RETRY_LIMIT,
        wait: float = DEFAULT_WAIT,
        writer: Writer | None = None,
        checkpointer: Writer | None = None,
    ) -> None:
        if per_room < 1:
            raise ValueError("a history store keeps at least one message per room")
        self.path = path
        self.clock = clock
        self.per_room = per_room
        self.max_age = max_age or None
        self.private = private
        self.retry_limit = retry_limit
        #: Seconds the reactor waits for a commit (``--history-wait``).
        self.wait = wait
        #: Runs the writes, on a connection of its own: a thread on a real
        #: reactor (:mod:`chatservice.stores.writer`), waited for at most
        #: ``wait`` seconds.
        self.writer = (
            writer if writer is not None else default_writer(clock, patience=wait)
        )
        #: Runs the checkpoints, on a connection of its own: a thread of
        #: the lowest priority on a real reactor.
        self.checkpointer = (
            checkpointer
            if checkpointer is not None
            else default_writer(clock, "history checkpointer", background=True)
        )
        #: Deliveries wait at it for the commits in flight.
        self.gate = DeliveryGate()
        #: The connection of the reactor thread: start-up and reads.
        self._db: sqlite3.Connection | None = None
        self._saved = Saved()
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
        self._pruning = False
        #: Rooms the file has a row for.
        self._rooms: set[str] = set()
        #: Messages each room has in the file, to prune to ``per_room``.
        self._counts: dict[str, int] = {}
        self._over: set[str] = set()
        #: The last write's error while writing fails, else ``None``.
        self.failing: sqlite3.Error | None = None
        #: Counters for ``/stats`` and ``chatservice.metrics``: messages
        #: written, dropped, pruned; transactions that failed.
        self.written = 0
        self.write_failures = 0
        self.dropped = 0
        self.pruned = 0
        self._loops: list[LoopingCall] = []
        self._checkpointing: Deferred[Any] | None = None

    # Opening and closing

    def start(self) -> Deferred[None]:
        try:
            self._open()
        except StoreError as error:
            return fail(error)
        self.writer.start(partial(writer_connection, self.path))
        self.checkpointer.start(partial(checkpoint_connection, self.path))
        for work, every in (
            (self._retry, RETRY_EVERY),
            (self.prune, PRUNE_EVERY),
            (self._checkpoint, CHECKPOINT_EVERY),
            (self._check_stall, STALL_AFTER / 4),
        ):
            loop = LoopingCall(work)
            loop.clock = self.clock
            loop.start(every, now=False)
            self._loops.append(loop)
        return succeed(None)

    def _fail_open(self, why: str) -> StoreError:
        if self._db is not None:
            self._db.close()
            self._db = None
        return StoreError(f"history file {self.path}: {why}")

    def _open(self) -> None:
        existed = os.path.exists(self.path) and os.path.getsize(self.path) > 0
        try:
            db = self._db = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as error:
            raise self._fail_open(f"cannot open: {error}") from None
        try:
            # Wait for a lock at start-up only; never on the reactor later.
            db.execute("PRAGMA busy_timeout = 5000")
            application = db.execute("PRAGMA application_id").fetchone()[0]
            version = db.execute("PRAGMA user_version").fetchone()[0]
            tables = db.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
        except sqlite3.DatabaseError as error:
            raise self._fail_open(
                f"{error} (is it corrupt?); it was left as it is: move it away, "
                "or give another --history"
            ) from None
        if application not in (0, APPLICATION_ID) or (
            application == 0 and (version or tables)
        ):
            raise self._fail_open(
                "not a chatservice history file; it was left as it is: "
                "give another --history"
            )
        if version > SCHEMA_VERSION:
            raise self._fail_open(
                f"schema version {version} is newer than this chatservice's "
                f"({SCHEMA_VERSION}); it was left as it is: run a newer "
                "chatservice, or give another --history"
            )
        try:
            mode = db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if mode.lower() != "wal":
                raise self._fail_open(f"cannot use WAL mode (journal mode {mode})")
            db.execute("PRAGMA synchronous = NORMAL")
            # Checkpoints (the fsync) run in a thread: _checkpoint.
            db.execute("PRAGMA wal_autocheckpoint = 0")
            db.execute("PRAGMA journal_size_limit = 67108864")
            for reached in migrate(db, version):
                self.log.info(
                    "history: {path} is at schema version {version}",
                    path=self.path,
                    version=reached,
                )
            self._load(db)
            db.execute("PRAGMA busy_timeout = 0")
        except sqlite3.Error as error:
            raise self._fail_open(
                f"cannot {'open' if existed else 'create'}: {error}"
            ) from None

    def _load(self, db: sqlite3.Connection) -> None:
        self._saved = load_saved(db, self.clock.seconds())
        self._rooms = {key for (key,) in db.execute("SELECT key FROM rooms")}
        self._counts = dict(
            db.execute("SELECT room, count(*) FROM messages GROUP BY room")
        )
        self._over = {k for k, n in self._counts.items() if n > self.per_room}

    def stop(self) -> Deferred[None]:
        for loop in self._loops:
            if loop.running:
                loop.stop()
        self._loops = []

        def last_write(_: object) -> Deferred[None]:
            # One last try, even while writing fails.
            self._collect()
            if self._waiting or self._waiting_others:
                self._send()
            return self._idle()

        def checkpointed(_: object) -> Deferred[Any]:
            waiting = self._checkpointing
            return waiting if waiting is not None else succeed(None)

        stopped: Deferred[None] = Deferred()

        def finish(_: object) -> None:
            if not stopped.called:
                if give_up.active():
                    give_up.cancel()
                self._close()
                stopped.callback(None)

        def hung() -> None:
            # A disk that never answers must not keep the server from
            # stopping: what is not written is lost, and said so.
            self.log.error(
                "history: the writer has not answered for {after:g} s at "
                "shutdown; closing without it",
                after=STOP_WAIT,
            )
            finish(None)

        give_up = self.clock.callLater(STOP_WAIT, hung)
        stopping = self._idle().addCallback(last_write)
        stopping.addBoth(lambda _: self.writer.stop())
        stopping.addBoth(checkpointed)
        stopping.addBoth(lambda _: self.checkpointer.stop())
        stopping.addBoth(finish)
        return stopped

    def _close(self) -> None:
        db, self._db = self._db, None
        if db is None:
            return
        if self.failing is None and self._inflight is None:
            try:
                db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except sqlite3.Error as error:
                self.log.warn("history: final checkpoint failed: {e}", e=error)
        left = self._unwritten_count()
        if left:
            self.log.error(
                "history: {count} messages could not be written to {path}: "
                "lost ({error})",
                count=left,
                path=self.path,
                error=self.failing,
            )
        db.close()

    def saved(self) -> Saved:
        return self._saved

    # Writes, collected

    def append(self, message: events.RoomMessage) -> None:
        self._messages.append(
            (
                message.id,
                fold(message.room),
                message.room,
                message.at,
                message.nick,
                message.text,
                int(message.action),
                message.door,
                int(message.notice),
            )
        )
        if (
            self.failing is not None
            and len(self._messages) + len(self._waiting) > self.retry_limit
        ):
            (self._waiting or self._messages).popleft()
            self.dropped += 1

    def append_private(self, message: events.PrivateMessage) -> None:
        if self.private:
            self._others.append(
                (
                    INSERT_PRIVATE,
                    (
                        message.id,
                        message.at,
                        message.sender,
                        message.recipient,
                        message.text,
                        message.door,
                        int(message.notice),
                    ),
                )
            )

    def set_topic(self, topic: SavedTopic) -> None:
        key = fold(topic.room)
        self._others.append(
            (SET_TOPIC, (key, topic.room, topic.topic, topic.by, topic.at))
        )

    def add_ban(self, ban: Ban) -> None:
        self._others.append(
            (ADD_BAN, (fold(ban.target), ban.target, ban.until, ban.reason, ban.by))
        )

    def remove_ban(self, ban: Ban) -> None:
        self._others.append((REMOVE_BAN, (fold(ban.target),)))

    # Writing

    def commit(self) -> None:
        """
        Hand what was collected to the writer, as one transaction, and open
        an epoch of the delivery gate for it: what is sent from now on
        waits until it is written (see the module's description).  While a
        commit is in flight, what turns commit waits and goes in the next
        one; while writing fails, everything waits for the retry timer.
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

    def _collect(self) -> None:
        """Move what was collected behind what waits to be written."""
        self._waiting.extend(self._messages)
        self._waiting_others.extend(self._others)
        self._messages = deque()
        self._others = []

    def _retry(self) -> None:
        self._check_stall()
        if self._inflight is not None:
            return
        self._collect()
        if self._waiting or self._waiting_others:
            self._send()

    def _send(self) -> None:
        """Give the writer everything that waits, as one transaction."""
        rows, others, epoch = self._waiting, self._waiting_others, self._epoch
        self._waiting, self._waiting_others, self._epoch = deque(), [], 0
        rooms = {row[1]: row[2] for row in rows if row[1] not in self._rooms}
        self._inflight = rows
        self._sent_at = self.clock.seconds()
        # Waited for: deliveries wait for it (the module's description).
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
        self._rooms.update(rooms)
        counts = self._counts
        for row in rows:
            room = row[1]
            counts[room] = count = counts.get(room, 0) + 1
            if count > self.per_room:
                self._over.add(room)
        self.written += len(rows)
        if self.failing is not None:
            self.log.info(
                "history: writing to {path} again; {count} waiting messages written",
                path=self.path,
                count=len(rows),
            )
            self.failing = None
        if epoch:
            self.gate.close(epoch)
        if self._waiting or self._waiting_others:
            self._send()  # what turns committed meanwhile, in one go
        else:
            self._idle_now()

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

    def _check_stall(self) -> None:
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

    def _idle(self) -> Deferred[None]:
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

    # Retention and checkpoints, in the background

    def prune(self) -> Deferred[int]:
        """
        One small step of retention, in the writer: delete at most
        :data:`PRUNE_STEP` messages older than ``max_age`` or beyond
        ``per_room`` in a room.  Fires with how many.
        """
        if self._db is None or self.failing is not None or self._pruning:
            return succeed(0)
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

        step = self.writer.run(partial(prune_step, oldest, room, excess))
        return step.addCallbacks(pruned, failed).addCallback(done)

    def _uncount(self, rooms: Iterable[str]) -> None:
        for room in rooms:
            left = self._counts.get(room, 1) - 1
            if left > 0:
                self._counts[room] = left
            else:
                self._counts.pop(room, None)

    def _checkpoint(self) -> None:
        if self._checkpointing is not None or self._db is None:
            return

        def done(result: object) -> None:
            self._checkpointing = None

        self._checkpointing = self.checkpointer.run(checkpoint)
        self._checkpointing.addErrback(
            lambda failure: self.log.warn(
                "history: checkpoint failed: {error}", error=failure.value
            )
        )
        self._checkpointing.addBoth(done)

    # Reads

    def recent(self, room: str, count: int) -> Deferred[list[events.RoomMessage]]:
        return self.page(room, count)

    def page(
        self,
        room: str,
        count: int,
        *,
        after: Position | None = None,
        before: Position | None = None,
        latest: bool = True,
    ) -> Deferred[list[events.RoomMessage]]:
        """
        See :meth:`~chatservice.stores.base.HistoryStore.page`: the file's
        rows, then those not known to be written (in flight, waiting,
        collected), which are newer than all of them.  A commit that has
        just returned in the writer's thread, not yet on the reactor, has
        its rows in both: they are taken from memory only.
        """
        if count <= 0 or self._db is None:
            return succeed([])
        # What a read shows is on its way to the file before it is shown
        # (and what the member is sent waits for it: the gate).
        self.commit()
        key = fold(room)
        unwritten = [
            _message(row)
            for row in chain(self._inflight or (), self._waiting, self._messages)
            if row[1] == key
        ]
        in_flight = {row[0] for row in self._inflight or () if row[1] == key}
        unwritten_ids = {message.id for message in unwritten}
        try:
            more = count + len(in_flight)  # those are taken from memory
            rows = read_rows(self._db, key, more, after, before, latest, unwritten_ids)
            recent = newer_page(unwritten, after, before)
        except UnknownMessageError:
            return fail()
        except sqlite3.Error as error:
            self.log.warn(
                "history: cannot read {path}: {error}", path=self.path, error=error
            )
            rows, recent = [], unwritten
        shown = [_message(row) for row in rows if row[0] not in in_flight] + recent
        return succeed(shown[-count:] if latest else shown[:count])

    def _unwritten_count(self) -> int:
        inflight = len(self._inflight) if self._inflight is not None else 0
        return inflight + len(self._waiting) + len(self._messages)

    def figures(self) -> StoreFigures:
        return StoreFigures(
            written=self.written,
            write_failures=self.write_failures,
            waiting=self._unwritten_count(),
            dropped=self.dropped,
        )

    def health(self) -> str | None:
        if self._db is None:
            return f"history file {self.path} is not open"
        if self.failing is not None:
            return f"history: cannot write to {self.path}: {self.failing}"
        return None

    def status(self) -> str:
        line = (
            f"sqlite {self.path}: {self.written} written, "
            f"{self._unwritten_count()} waiting, {self.dropped} dropped, "
            f"{self.pruned} pruned"
        )
        if self.failing is not None:
            line += f"; writing fails: {self.failing}"
        return line


def _message(row: tuple[Any, ...]) -> events.RoomMessage:
    id_, _, name, at, nick, text, action, door, notice = row
    return events.RoomMessage(
        name, nick, text, bool(action), bool(notice), id=id_, at=at, door=door
    )
