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
(:mod:`chatservice.stores.writer`); what is committed waits for it, in
order (:mod:`chatservice.stores.committer`).  The reactor waits for its
answer for at most ``wait`` seconds (``--history-wait``, a millisecond): a commit is
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
Retention prunes in small steps in the background
(:mod:`chatservice.stores.retention`).

The schema has a version (``PRAGMA user_version``) and the file an
application id; opening a file of a newer version, of another program, or
one that is not a database is a start-up error (:class:`StoreError`), and
the file is left as it is (:mod:`chatservice.stores.opening`).
"""

from __future__ import annotations

import sqlite3
from functools import partial
from typing import Any

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
from chatservice.stores.committer import RETRY_EVERY, STALL_AFTER, Committer
from chatservice.stores.gate import DeliveryGate
from chatservice.stores.opening import open_history
from chatservice.stores.reads import newer_page, read_rows
from chatservice.stores.retention import Retention
from chatservice.stores.schema import (
    ADD_BAN,
    APPLICATION_ID,
    INSERT_PRIVATE,
    MIGRATIONS,
    PRUNE_STEP,
    REMOVE_BAN,
    SCHEMA_VERSION,
    SET_TOPIC,
    checkpoint,
    checkpoint_connection,
    load_saved,
    writer_connection,
)
from chatservice.stores.writer import DEFAULT_PATIENCE, Writer, default_writer

__all__ = [
    "APPLICATION_ID",
    "MIGRATIONS",
    "PRUNE_STEP",
    "RETRY_EVERY",
    "SCHEMA_VERSION",
    "STALL_AFTER",
    "SQLiteHistoryStore",
]

#: Defaults of ``--history-max-messages`` and ``--history-max-age``.
DEFAULT_MAX_MESSAGES = 10_000
DEFAULT_MAX_AGE = 30 * 86400.0
#: Messages that may wait while writing fails; beyond, the oldest are dropped.
DEFAULT_RETRY_LIMIT = 10_000
#: Seconds between rounds of background pruning: steps of PRUNE_STEP rows
#: at most, one after another while there is more to prune.
PRUNE_EVERY = 5.0
#: Default of ``--history-wait``: seconds the reactor waits for a commit.
DEFAULT_WAIT = DEFAULT_PATIENCE
#: Seconds between checkpoints (in a thread).
CHECKPOINT_EVERY = 1.0
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
        self.private = private
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
        #: How many messages each room keeps, for how long; pruning.
        self.retention = Retention(
            clock,
            self.writer,
            self.log,
            per_room=per_room,
            max_age=max_age or None,
            behind=self._prune_soon,
        )
        #: The round of pruning under way, and whether one is asked for.
        self._round: Deferred[None] | None = None
        self._round_asked = False
        #: What is collected and committed until it is in the file.
        self.commits = Committer(
            path,
            clock,
            self.writer,
            self.gate,
            self.log,
            retry_limit=retry_limit,
            stored=self.retention.count,
        )
        #: The connection of the reactor thread: start-up and reads.
        self._db: sqlite3.Connection | None = None
        self._saved = Saved()
        self._loops: list[LoopingCall] = []
        self._checkpointing: Deferred[Any] | None = None
        #: The last checkpoint's error while checkpoints fail, else ``None``.
        self.checkpoint_failing: BaseException | None = None

    @property
    def per_room(self) -> int:
        """Messages kept per room (``--history-max-messages``)."""
        return self.retention.per_room

    @property
    def max_age(self) -> float | None:
        """Seconds a message is kept (``--history-max-age``; ``None``: any)."""
        return self.retention.max_age

    # Opening and closing

    def start(self) -> Deferred[None]:
        try:
            self._db = open_history(self.path, self.log, self._load)
        except StoreError as error:
            return fail(error)
        self.writer.start(partial(writer_connection, self.path))
        self.checkpointer.start(partial(checkpoint_connection, self.path))
        for work, every in (
            (self.commits.retry, RETRY_EVERY),
            (self._prune_round, PRUNE_EVERY),
            (self._checkpoint, CHECKPOINT_EVERY),
            (self.commits.check_stall, STALL_AFTER / 4),
        ):
            loop = LoopingCall(work)
            loop.clock = self.clock
            loop.start(every, now=False)
            self._loops.append(loop)
        return succeed(None)

    def _load(self, db: sqlite3.Connection) -> None:
        self._saved = load_saved(db, self.clock.seconds())
        self.commits.rooms = {key for (key,) in db.execute("SELECT key FROM rooms")}
        self.retention.load(db)

    def stop(self) -> Deferred[None]:
        for loop in self._loops:
            if loop.running:
                loop.stop()
        self._loops = []

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
        # One last try, even while writing fails.
        stopping = self.commits.idle().addCallback(lambda _: self.commits.last_try())
        stopping.addBoth(lambda _: self.writer.stop())
        stopping.addBoth(checkpointed)
        stopping.addBoth(lambda _: self.checkpointer.stop())
        stopping.addBoth(finish)
        return stopped

    def _close(self) -> None:
        db, self._db = self._db, None
        if db is None:
            return
        commits = self.commits
        if commits.failing is None and not commits.busy:
            try:
                db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except sqlite3.Error as error:
                self.log.warn("history: final checkpoint failed: {e}", e=error)
        left = commits.unwritten_count()
        if left:
            self.log.error(
                "history: {count} messages could not be written to {path}: "
                "lost ({error})",
                count=left,
                path=self.path,
                error=commits.failing,
            )
        db.close()

    def saved(self) -> Saved:
        return self._saved

    # Writes, collected (written by commit: self.commits)

    def append(self, message: events.RoomMessage) -> None:
        self.commits.add_message(
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

    def append_private(self, message: events.PrivateMessage) -> None:
        if self.private:
            self.commits.add(
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
        self.commits.add(
            (SET_TOPIC, (key, topic.room, topic.topic, topic.by, topic.at))
        )

    def add_ban(self, ban: Ban) -> None:
        self.commits.add(
            (ADD_BAN, (fold(ban.target), ban.target, ban.until, ban.reason, ban.by))
        )

    def remove_ban(self, ban: Ban) -> None:
        self.commits.add((REMOVE_BAN, (fold(ban.target),)))

    def commit(self) -> None:
        """
        Hand what was collected to the writer, as one transaction, and open
        an epoch of the delivery gate for it (:meth:`.Committer.commit`).
        """
        self.commits.commit()

    # Retention and checkpoints, in the background

    def prune(self) -> Deferred[int]:
        """
        One small step of retention, in the writer
        (:meth:`.Retention.step`); none while writing fails.  Fires with
        how many messages it deleted.
        """
        if self._db is None or self.commits.failing is not None:
            return succeed(0)
        return self.retention.step()

    def _prune_soon(self) -> None:
        """
        A write left a room a whole step over its limit: a round of pruning
        in the next turn, unless one is under way, so that a busy room is
        kept near its limit between the timer's rounds.
        """
        if self._round is None and not self._round_asked and self._db is not None:
            self._round_asked = True
            self.clock.callLater(0, self._prune_round)

    def _prune_round(self) -> Deferred[None]:
        """
        Steps of retention one after another, a reactor turn apart (commits
        go between them in the writer), as many as the rooms over the limit
        needed when the round began, and more while each deletes a whole
        step: every :data:`PRUNE_EVERY` seconds (for messages grown too
        old) and whenever a write leaves a room a step over its limit, so
        that however fast a room is said into it stays within about a
        step of its limit.
        """
        self._round_asked = False
        if self._round is not None:
            return succeed(None)
        done: Deferred[None] = Deferred()
        self._round = done
        needed = self.retention.steps_behind()
        steps = 0

        def step() -> None:
            self.prune().addCallback(stepped)

        def stepped(removed: int) -> None:
            nonlocal steps
            steps += 1
            more = removed >= PRUNE_STEP or (removed > 0 and steps < needed)
            if more and self._db is not None:
                self.clock.callLater(0, step)
            else:
                self._round = None
                done.callback(None)

        step()
        return done

    def _checkpoint(self) -> None:
        if self._checkpointing is not None or self._db is None:
            return

        def worked(result: object) -> None:
            self._checkpointing = None
            if self.checkpoint_failing is not None:
                self.checkpoint_failing = None
                self.log.info(
                    "history: checkpoints of {path} work again", path=self.path
                )

        def failed(failure: Failure) -> None:
            self._checkpointing = None
            # Checkpoints are retried every second: a fault that lasts
            # (an I/O error, a read-only file) gets one line, not one a second.
            if self.checkpoint_failing is None:
                self.log.warn(
                    "history: checkpoint of {path} failed: {error}; retried "
                    "every {every:g} s, logged again once it works",
                    path=self.path,
                    error=failure.value,
                    every=CHECKPOINT_EVERY,
                )
            self.checkpoint_failing = failure.value

        self._checkpointing = self.checkpointer.run(checkpoint)
        self._checkpointing.addCallbacks(worked, failed)

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
        unwritten = [_message(row) for row in self.commits.unwritten() if row[1] == key]
        in_flight = {row[0] for row in self.commits.in_flight if row[1] == key}
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

    def figures(self) -> StoreFigures:
        commits = self.commits
        return StoreFigures(
            written=commits.written,
            write_failures=commits.write_failures,
            waiting=commits.unwritten_count(),
            dropped=commits.dropped,
        )

    def health(self) -> str | None:
        if self._db is None:
            return f"history file {self.path} is not open"
        if self.commits.failing is not None:
            return f"history: cannot write to {self.path}: {self.commits.failing}"
        return None

    def status(self) -> str:
        commits = self.commits
        line = (
            f"sqlite {self.path}: {commits.written} written, "
            f"{commits.unwritten_count()} waiting, {commits.dropped} dropped, "
            f"{self.retention.pruned} pruned"
        )
        if commits.failing is not None:
            line += f"; writing fails: {commits.failing}"
        return line


def _message(row: tuple[Any, ...]) -> events.RoomMessage:
    id_, _, name, at, nick, text, action, door, notice = row
    return events.RoomMessage(
        name, nick, text, bool(action), bool(notice), id=id_, at=at, door=door
    )
