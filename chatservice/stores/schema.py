"""
The SQLite history file's schema, its migrations, and the writes the
store's writer runs on its connection (:mod:`chatservice.stores.writer`):
plain functions of a connection, with no state of the store, so that they
can run in the writer's thread.
"""

from __future__ import annotations

import contextlib
import functools
import sqlite3
from collections.abc import Collection, Iterator, Mapping, Sequence
from itertools import chain
from typing import Any

from chatservice.chat.model import Ban, parse_address_target
from chatservice.stores.base import Saved, SavedTopic

#: ``PRAGMA application_id`` of a chatservice history file ("chat").
APPLICATION_ID = 0x63686174
#: The schema this code writes; :data:`MIGRATIONS` leads to it.
SCHEMA_VERSION = 2
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
    # 2: notices (IRC's NOTICE, /notice); what a file of version 1 kept
    # was said before there were any, so none of it is one.
    """
    ALTER TABLE messages ADD COLUMN notice INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE private_messages ADD COLUMN notice INTEGER NOT NULL DEFAULT 0;
    """,
)

_INSERT_MESSAGES = (
    "INSERT INTO messages (id, room, name, at, nick, text, action, door, notice) "
)
_MESSAGE_VALUES = "(?, ?, ?, ?, ?, ?, ?, ?, ?)"
INSERT_MESSAGE = _INSERT_MESSAGES + "VALUES " + _MESSAGE_VALUES
INSERT_ROOM = "INSERT INTO rooms (key, name) VALUES (?, ?) ON CONFLICT DO NOTHING"
INSERT_PRIVATE = (
    "INSERT INTO private_messages (id, at, sender, recipient, text, door, notice) "
    "VALUES (?, ?, ?, ?, ?, ?, ?)"
)
SET_TOPIC = (
    "INSERT INTO rooms (key, name, topic, topic_by, topic_at) VALUES (?, ?, ?, ?, ?) "
    "ON CONFLICT (key) DO UPDATE SET name = excluded.name, topic = excluded.topic, "
    "topic_by = excluded.topic_by, topic_at = excluded.topic_at"
)
ADD_BAN = (
    "INSERT OR REPLACE INTO bans (key, target, until, reason, by) "
    "VALUES (?, ?, ?, ?, ?)"
)
REMOVE_BAN = "DELETE FROM bans WHERE key = ?"

#: A message row as :data:`INSERT_MESSAGE` takes it.
Row = tuple[str, str, str, float, str, str, int, str, int]


#: Message rows one statement of :func:`write_batch` inserts at most
#: (9 parameters each, far below SQLite's limit of 32,766).
ROWS_PER_STATEMENT = 64


@functools.cache
def insert_messages(count: int) -> str:
    """An ``INSERT`` of ``count`` message rows in one statement."""
    return _INSERT_MESSAGES + "VALUES " + ", ".join([_MESSAGE_VALUES] * count)


#: Rows one step of retention deletes at most, unless more were written
#: since the last step (a step keeps pace with the writes).
PRUNE_STEP = 200

#: Another write: a statement and its parameters.
Statement = tuple[str, tuple[Any, ...]]


def migrate(db: sqlite3.Connection, version: int) -> Iterator[int]:
    """
    Take a file from schema ``version`` to :data:`SCHEMA_VERSION`, one
    version at a time, each in one transaction; yields each version reached.
    """
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
            roll_back(db)
            raise
        yield version


def load_saved(db: sqlite3.Connection, now: float) -> Saved:
    """The topics and the bans still in force at ``now`` (expired ones deleted)."""
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
    return Saved(topics, bans)


#: Pages of write-ahead log (4 KiB each: 64 MiB) past which the writer
#: checkpoints itself: only when the checkpointer, at the lowest priority,
#: has been starved of the CPU that long (a saturated machine), so that the
#: log cannot grow without bound meanwhile (about 1 MiB a second at a
#: hundred commits a second).
WAL_BACKSTOP_PAGES = 16384


def writer_connection(path: str) -> sqlite3.Connection:
    """The writer's own connection to the file (opened in its thread)."""
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    # Never wait for a lock: deliveries wait for this connection's commits,
    # so a file locked by another process is a failed write (retried), not
    # a stalled chat.  These are per connection, like the reactor's.
    db.execute("PRAGMA busy_timeout = 0")
    db.execute("PRAGMA synchronous = NORMAL")
    db.execute(f"PRAGMA wal_autocheckpoint = {WAL_BACKSTOP_PAGES}")
    db.execute("PRAGMA journal_size_limit = 67108864")
    return db


def checkpoint_connection(path: str) -> sqlite3.Connection:
    """The checkpointer's own connection to the file (opened in its thread)."""
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    # A checkpoint may wait a while for a reader to finish: it is the only
    # work of its thread, and nothing waits for it.
    db.execute("PRAGMA busy_timeout = 1000")
    db.execute("PRAGMA wal_autocheckpoint = 0")
    return db


def checkpoint(db: sqlite3.Connection) -> None:
    """
    Copy what the write-ahead log has into the file, as far as no reader
    still needs it, and ``fsync`` it (the store's checkpoints).
    """
    db.execute("PRAGMA wal_checkpoint(PASSIVE)")


def write_batch(
    rows: Sequence[Row],
    others: Collection[Statement],
    rooms: Mapping[str, str],
    db: sqlite3.Connection,
) -> None:
    """
    Write messages, other writes and new rooms (folded name: shown name) in
    one transaction; on an error, nothing is written and it is raised.
    """
    if not others and not rooms and 0 < len(rows) <= ROWS_PER_STATEMENT:
        # The common case, a turn's messages in rooms the file knows: one
        # statement, which in autocommit is a transaction of its own, all
        # or nothing.  No BEGIN and COMMIT of their own: in the writer's
        # thread each statement gives the GIL away and waits to take it
        # back from the reactor, so fewer statements are fewer switches.
        if len(rows) == 1:
            db.execute(INSERT_MESSAGE, rows[0])
        else:
            db.execute(insert_messages(len(rows)), tuple(chain.from_iterable(rows)))
        return
    db.execute("BEGIN IMMEDIATE")
    try:
        for statement, parameters in others:
            db.execute(statement, parameters)
        if rooms:
            db.executemany(INSERT_ROOM, rooms.items())
        db.executemany(INSERT_MESSAGE, rows)
        db.execute("COMMIT")
    except BaseException:
        roll_back(db)
        raise


def prune_step(
    oldest: float | None,
    room: str | None,
    excess: int,
    limit: int,
    db: sqlite3.Connection,
) -> tuple[list[str], int]:
    """
    Delete at most ``limit`` messages: older than ``oldest`` (if given),
    else the oldest of ``room``, which has ``excess`` too many.  Returns
    the rooms of the old messages deleted, and how many of ``room``'s.
    """
    if oldest is not None:
        rows = db.execute(
            "SELECT seq, room, at FROM messages ORDER BY seq LIMIT ?", (limit,)
        ).fetchall()
        old = [(seq, key) for seq, key, at in rows if at < oldest]
        if old:
            db.execute("DELETE FROM messages WHERE seq <= ?", (old[-1][0],))
            return [key for _, key in old], 0
    if room is None or excess <= 0:
        return [], 0
    step = min(excess, limit)
    last = db.execute(
        "SELECT seq FROM messages WHERE room = ? ORDER BY seq LIMIT 1 OFFSET ?",
        (room, step - 1),
    ).fetchone()
    if last is None:
        return [], 0
    db.execute("DELETE FROM messages WHERE room = ? AND seq <= ?", (room, last[0]))
    return [], step


def roll_back(db: sqlite3.Connection) -> None:
    """Roll back what is left of a failed transaction (SQLite may have already)."""
    if db.in_transaction:
        # The first error is the one to report.
        with contextlib.suppress(sqlite3.Error):
            db.execute("ROLLBACK")
