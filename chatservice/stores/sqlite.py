"""
History in an SQLite file (``--history sqlite:PATH``, the default): room
messages and actions, topics, bans, the rooms that have either, and private
messages only if asked (``--history-private``).  ``docs/history.rst`` says
what is on disk and what a crash or a power loss can lose.

The standard library's :mod:`sqlite3`, no ORM.  The file is in WAL mode with
``synchronous=NORMAL``: a commit appends to the write-ahead log without an
``fsync``, so it costs tens of microseconds, and survives the process being
killed (the data is in the operating system's cache once ``COMMIT``
returns).  The ``fsync`` happens when the log is copied into the database
(a *checkpoint*), which can take a long time: it runs in a thread, on a
connection of its own, never on the reactor.

Writes are collected on the reactor (:meth:`SQLiteHistoryStore.append`...)
and written in one transaction by :meth:`SQLiteHistoryStore.commit`, which
the backend calls before it delivers anything: what a member was shown is in
the file.  A write that fails (the disk full, the file locked by another
process, read-only) leaves what it held waiting, in order, in a bounded
queue; it is retried every :data:`RETRY_EVERY` seconds, the chat goes on,
one log line says what went wrong and one that it recovered, and ``/stats``
shows it (:meth:`SQLiteHistoryStore.status`).

The schema has a version (``PRAGMA user_version``) and the file an
application id; opening a file of a newer version, of another program, or
one that is not a database is a start-up error (:class:`StoreError`), and
the file is left as it is.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from twisted.internet.defer import Deferred, fail, maybeDeferred, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from chatservice.chat import events
from chatservice.chat.model import Ban, parse_address_target
from chatservice.chat.names import fold
from chatservice.stores.base import Saved, SavedTopic, StoreError, StoreFigures

T = TypeVar("T")

#: ``PRAGMA application_id`` of a chatservice history file ("chat").
APPLICATION_ID = 0x63686174
#: The schema this code writes; :data:`MIGRATIONS` leads to it.
SCHEMA_VERSION = 1
#: ``MIGRATIONS[n]`` takes a file from version ``n`` to ``n + 1``.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE rooms (
        key TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        topic TEXT NOT NULL DEFAULT '',
        topic_by TEXT NOT NULL DEFAULT '',
        topic_at REAL
    );
    CREATE TABLE messages (
        seq INTEGER PRIMARY KEY,
        id TEXT NOT NULL,
        room TEXT NOT NULL,
        name TEXT NOT NULL,
        at REAL NOT NULL,
        nick TEXT NOT NULL,
        text TEXT NOT NULL,
        action INTEGER NOT NULL,
        door TEXT NOT NULL
    );
    CREATE INDEX messages_by_room ON messages (room, seq);
    CREATE TABLE private_messages (
        seq INTEGER PRIMARY KEY,
        id TEXT NOT NULL,
        at REAL NOT NULL,
        sender TEXT NOT NULL,
        recipient TEXT NOT NULL,
        text TEXT NOT NULL,
        door TEXT NOT NULL
    );
    CREATE TABLE bans (
        key TEXT PRIMARY KEY,
        target TEXT NOT NULL,
        until REAL,
        reason TEXT NOT NULL,
        by TEXT NOT NULL
    );
    """,
)

#: Defaults of ``--history-max-messages`` and ``--history-max-age``.
DEFAULT_MAX_MESSAGES = 10_000
DEFAULT_MAX_AGE = 30 * 86400.0
#: Messages that may wait while writing fails; beyond, the oldest are dropped.
DEFAULT_RETRY_LIMIT = 10_000
#: Seconds between retries while writing fails (and between commits of
#: what no delivery wrote).
RETRY_EVERY = 2.0
#: Seconds between background pruning steps, and rows one step deletes.
PRUNE_EVERY = 5.0
PRUNE_STEP = 200
#: Seconds between checkpoints (in a thread).
CHECKPOINT_EVERY = 1.0

_INSERT_MESSAGE = (
    "INSERT INTO messages (id, room, name, at, nick, text, action, door) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
_INSERT_ROOM = "INSERT INTO rooms (key, name) VALUES (?, ?) ON CONFLICT DO NOTHING"
_INSERT_PRIVATE = (
    "INSERT INTO private_messages (id, at, sender, recipient, text, door) "
    "VALUES (?, ?, ?, ?, ?, ?)"
)
_SET_TOPIC = (
    "INSERT INTO rooms (key, name, topic, topic_by, topic_at) VALUES (?, ?, ?, ?, ?) "
    "ON CONFLICT (key) DO UPDATE SET name = excluded.name, topic = excluded.topic, "
    "topic_by = excluded.topic_by, topic_at = excluded.topic_at"
)
_ADD_BAN = (
    "INSERT OR REPLACE INTO bans (key, target, until, reason, by) "
    "VALUES (?, ?, ?, ?, ?)"
)
_REMOVE_BAN = "DELETE FROM bans WHERE key = ?"

#: A message row as :data:`_INSERT_MESSAGE` takes it.
Row = tuple[str, str, str, float, str, str, int, str]


def _run_here(work: Callable[[], T]) -> Deferred[T]:
    return maybeDeferred(work)


def threaded(reactor: Any) -> Callable[[Callable[[], T]], Deferred[T]]:
    """
    How to run blocking work off the reactor: in the reactor's thread pool
    (a real reactor), or at once (a test's clock has no threads).
    """
    get_pool = getattr(reactor, "getThreadPool", None)
    if get_pool is None:
        return _run_here
    from twisted.internet.threads import deferToThreadPool

    def run(work: Callable[[], T]) -> Deferred[T]:
        return deferToThreadPool(reactor, get_pool(), work)

    return run


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
        in_thread: Callable[[Callable[[], Any]], Deferred[Any]] | None = None,
    ) -> None:
        if per_room < 1:
            raise ValueError("a history store keeps at least one message per room")
        self.path = path
        self.clock = clock
        self.per_room = per_room
        self.max_age = max_age or None
        self.private = private
        self.retry_limit = retry_limit
        self._in_thread = in_thread if in_thread is not None else threaded(clock)
        self._db: sqlite3.Connection | None = None
        self._saved = Saved()
        #: Message rows not written yet, oldest first.
        self._messages: deque[Row] = deque()
        #: Other writes not written yet (statement, parameters), in order.
        self._others: list[tuple[str, tuple[Any, ...]]] = []
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
        for work, every in (
            (self._retry, RETRY_EVERY),
            (self.prune, PRUNE_EVERY),
            (self._checkpoint, CHECKPOINT_EVERY),
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
            self._migrate(db, version)
            self._load(db)
            db.execute("PRAGMA busy_timeout = 0")
        except sqlite3.Error as error:
            raise self._fail_open(
                f"cannot {'open' if existed else 'create'}: {error}"
            ) from None

    def _migrate(self, db: sqlite3.Connection, version: int) -> None:
        while version < SCHEMA_VERSION:
            db.execute("BEGIN IMMEDIATE")
            try:
                for statement in MIGRATIONS[version].split(";"):
                    if statement.strip():
                        db.execute(statement)
                version += 1
                db.execute(f"PRAGMA user_version = {version}")
                db.execute(f"PRAGMA application_id = {APPLICATION_ID}")
                db.execute("COMMIT")
            except BaseException:
                _roll_back(db)
                raise
            self.log.info(
                "history: {path} is at schema version {version}",
                path=self.path,
                version=version,
            )

    def _load(self, db: sqlite3.Connection) -> None:
        now = self.clock.seconds()
        db.execute("DELETE FROM bans WHERE until IS NOT NULL AND until <= ?", (now,))
        topics = tuple(
            SavedTopic(name, topic, by, at or 0.0)
            for name, topic, by, at in db.execute(
                "SELECT name, topic, topic_by, topic_at FROM rooms "
                "WHERE topic != '' ORDER BY key"
            )
        )
        bans = tuple(
            Ban(target, until, reason, by, parse_address_target(target))
            for target, until, reason, by in db.execute(
                "SELECT target, until, reason, by FROM bans ORDER BY rowid"
            )
        )
        self._saved = Saved(topics, bans)
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
        self._retry()  # one last try, even while writing fails
        waiting = self._checkpointing
        if waiting is None:
            waiting = succeed(None)
        return waiting.addBoth(lambda _: self._close())

    def _close(self) -> None:
        db, self._db = self._db, None
        if db is None:
            return
        if self.failing is None:
            try:
                db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except sqlite3.Error as error:
                self.log.warn("history: final checkpoint failed: {e}", e=error)
        left = len(self._messages)
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
            )
        )
        if self.failing is not None and len(self._messages) > self.retry_limit:
            self._messages.popleft()
            self.dropped += 1

    def append_private(self, message: events.PrivateMessage) -> None:
        if self.private:
            self._others.append(
                (
                    _INSERT_PRIVATE,
                    (
                        message.id,
                        message.at,
                        message.sender,
                        message.recipient,
                        message.text,
                        message.door,
                    ),
                )
            )

    def set_topic(self, topic: SavedTopic) -> None:
        key = fold(topic.room)
        self._others.append(
            (_SET_TOPIC, (key, topic.room, topic.topic, topic.by, topic.at))
        )

    def add_ban(self, ban: Ban) -> None:
        self._others.append(
            (_ADD_BAN, (fold(ban.target), ban.target, ban.until, ban.reason, ban.by))
        )

    def remove_ban(self, ban: Ban) -> None:
        self._others.append((_REMOVE_BAN, (fold(ban.target),)))

    # Writing

    def commit(self) -> None:
        """
        Write what was collected, in one transaction (see the module's
        description); while writing fails, only the retry timer tries.
        """
        if self.failing is None and (self._messages or self._others):
            self._write()

    def _retry(self) -> None:
        if self._messages or self._others:
            self._write()

    def _write(self) -> None:
        db = self._db
        if db is None:
            return
        messages, others = self._messages, self._others
        rooms = {row[1]: row[2] for row in messages if row[1] not in self._rooms}
        try:
            db.execute("BEGIN IMMEDIATE")
            try:
                for statement, parameters in others:
                    db.execute(statement, parameters)
                if rooms:
                    db.executemany(_INSERT_ROOM, rooms.items())
                db.executemany(_INSERT_MESSAGE, messages)
                db.execute("COMMIT")
            except BaseException:
                _roll_back(db)
                raise
        except sqlite3.Error as error:
            self._failed(error)
            return
        self._rooms.update(rooms)
        counts = self._counts
        for row in messages:
            room = row[1]
            counts[room] = count = counts.get(room, 0) + 1
            if count > self.per_room:
                self._over.add(room)
        self.written += len(messages)
        if self.failing is not None:
            self.log.info(
                "history: writing to {path} again; {count} waiting messages written",
                path=self.path,
                count=len(messages),
            )
            self.failing = None
        self._messages = deque()
        self._others = []

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
        while len(self._messages) > self.retry_limit:
            self._messages.popleft()
            self.dropped += 1

    # Retention and checkpoints, in the background

    def prune(self) -> int:
        """
        One small step of retention: delete at most :data:`PRUNE_STEP`
        messages older than ``max_age`` or beyond ``per_room`` in a room.
        Returns how many.
        """
        db = self._db
        if db is None or self.failing is not None:
            return 0
        try:
            removed = self._prune_old(db)
            if not removed and self._over:
                removed = self._prune_room(db, self._over.pop())
        except sqlite3.Error as error:
            self.log.warn("history: pruning failed: {error}", error=error)
            return 0
        self.pruned += removed
        return removed

    def _prune_old(self, db: sqlite3.Connection) -> int:
        if self.max_age is None:
            return 0
        oldest = self.clock.seconds() - self.max_age
        rows = db.execute(
            "SELECT seq, room, at FROM messages ORDER BY seq LIMIT ?", (PRUNE_STEP,)
        ).fetchall()
        old = [(seq, room) for seq, room, at in rows if at < oldest]
        if not old:
            return 0
        db.execute("DELETE FROM messages WHERE seq <= ?", (old[-1][0],))
        self._uncount(room for _, room in old)
        return len(old)

    def _prune_room(self, db: sqlite3.Connection, room: str) -> int:
        excess = self._counts.get(room, 0) - self.per_room
        if excess <= 0:
            return 0
        step = min(excess, PRUNE_STEP)
        last = db.execute(
            "SELECT seq FROM messages WHERE room = ? ORDER BY seq LIMIT 1 OFFSET ?",
            (room, step - 1),
        ).fetchone()
        if last is None:
            return 0
        db.execute("DELETE FROM messages WHERE room = ? AND seq <= ?", (room, last[0]))
        self._uncount([room] * step)
        if excess > step:
            self._over.add(room)
        return step

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
        path = self.path

        def checkpoint() -> None:
            # A connection of its own, in a thread: the fsync is here.
            db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            try:
                db.execute("PRAGMA busy_timeout = 1000")
                db.execute("PRAGMA wal_checkpoint(PASSIVE)")
            finally:
                db.close()

        def done(result: object) -> None:
            self._checkpointing = None

        self._checkpointing = self._in_thread(checkpoint)
        self._checkpointing.addErrback(
            lambda failure: self.log.warn(
                "history: checkpoint failed: {error}", error=failure.value
            )
        )
        self._checkpointing.addBoth(done)

    # Reads

    def recent(self, room: str, count: int) -> Deferred[list[events.RoomMessage]]:
        if count <= 0 or self._db is None:
            return succeed([])
        key = fold(room)
        try:
            rows = self._db.execute(
                "SELECT id, room, name, at, nick, text, action, door FROM messages "
                "WHERE room = ? ORDER BY seq DESC LIMIT ?",
                (key, count),
            ).fetchall()
        except sqlite3.Error as error:
            self.log.warn(
                "history: cannot read {path}: {error}", path=self.path, error=error
            )
            rows = []
        rows.reverse()
        # What is not written yet is newer than everything written.
        rows.extend(row for row in self._messages if row[1] == key)
        return succeed([_message(row) for row in rows[-count:]])

    def before(
        self, room: str, message_id: str, count: int
    ) -> Deferred[list[events.RoomMessage]]:
        if count <= 0 or self._db is None:
            return succeed([])
        key = fold(room)
        # What is not written yet is newer than everything written.
        pending = [row for row in self._messages if row[1] == key]
        found = [index for index, row in enumerate(pending) if row[0] == message_id]
        query = (
            "SELECT id, room, name, at, nick, text, action, door FROM messages "
            "WHERE room = ? AND seq < ? ORDER BY seq DESC LIMIT ?"
        )
        try:
            if found:
                older = pending[: found[0]][-count:]
                rows = self._db.execute(
                    query, (key, 2**63 - 1, count - len(older))
                ).fetchall()
            else:
                older = []
                # The room's index finds the message among the room's own.
                seq = self._db.execute(
                    "SELECT seq FROM messages WHERE room = ? AND id = ?",
                    (key, message_id),
                ).fetchone()
                rows = (
                    []
                    if seq is None
                    else self._db.execute(query, (key, seq[0], count)).fetchall()
                )
        except sqlite3.Error as error:
            self.log.warn(
                "history: cannot read {path}: {error}", path=self.path, error=error
            )
            return succeed([])
        rows.reverse()
        return succeed([_message(row) for row in [*rows, *older]])

    def figures(self) -> StoreFigures:
        return StoreFigures(
            written=self.written,
            write_failures=self.write_failures,
            waiting=len(self._messages),
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
            f"{len(self._messages)} waiting, {self.dropped} dropped, "
            f"{self.pruned} pruned"
        )
        if self.failing is not None:
            line += f"; writing fails: {self.failing}"
        return line


def _roll_back(db: sqlite3.Connection) -> None:
    """Roll back what is left of a failed transaction (SQLite may have already)."""
    if db.in_transaction:
        # The first error is the one to report.
        with contextlib.suppress(sqlite3.Error):
            db.execute("ROLLBACK")


def _message(row: tuple[Any, ...]) -> events.RoomMessage:
    id_, _, name, at, nick, text, action, door = row
    return events.RoomMessage(name, nick, text, bool(action), id=id_, at=at, door=door)
