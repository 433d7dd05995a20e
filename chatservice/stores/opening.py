"""
Opening the SQLite history file on the reactor's connection, at start-up:
what is checked of it (a chatservice file, of a schema this code knows),
its journal mode, and its migrations.  A file that fails a check is left as
it is, and the start stops with a :class:`StoreError` that says why.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable

from twisted.logger import Logger

from chatservice.stores.base import StoreError
from chatservice.stores.schema import APPLICATION_ID, SCHEMA_VERSION, migrate


def open_history(
    path: str, log: Logger, load: Callable[[sqlite3.Connection], None]
) -> sqlite3.Connection:
    """
    The reactor's connection to the history file at ``path``, created if
    need be, in WAL mode and at :data:`SCHEMA_VERSION` (each migration
    logged on ``log``), once ``load`` has read from it what the store keeps
    in memory; else :class:`StoreError`, the file left as it is.
    """
    existed = os.path.exists(path) and os.path.getsize(path) > 0
    try:
        db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    except sqlite3.Error as error:
        raise StoreError(f"history file {path}: cannot open: {error}") from None

    def refused(why: str) -> StoreError:
        db.close()
        return StoreError(f"history file {path}: {why}")

    try:
        # Wait for a lock at start-up only; never on the reactor later.
        db.execute("PRAGMA busy_timeout = 5000")
        application = db.execute("PRAGMA application_id").fetchone()[0]
        version = db.execute("PRAGMA user_version").fetchone()[0]
        tables = db.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
    except sqlite3.DatabaseError as error:
        raise refused(
            f"{error} (is it corrupt?); it was left as it is: move it away, "
            "or give another --history"
        ) from None
    if application not in (0, APPLICATION_ID) or (
        application == 0 and (version or tables)
    ):
        raise refused(
            "not a chatservice history file; it was left as it is: "
            "give another --history"
        )
    if version > SCHEMA_VERSION:
        raise refused(
            f"schema version {version} is newer than this chatservice's "
            f"({SCHEMA_VERSION}); it was left as it is: run a newer "
            "chatservice, or give another --history"
        )
    try:
        mode = db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if mode.lower() != "wal":
            raise refused(f"cannot use WAL mode (journal mode {mode})")
        db.execute("PRAGMA synchronous = NORMAL")
        # Checkpoints (the fsync) run in a thread: the store's checkpointer.
        db.execute("PRAGMA wal_autocheckpoint = 0")
        db.execute("PRAGMA journal_size_limit = 67108864")
        for reached in migrate(db, version):
            # A new file is made through every migration: one line for it,
            # not "is at version 1" of a file that never was.
            if existed:
                log.info(
                    "history: {path} migrated to schema version {version}",
                    path=path,
                    version=reached,
                )
        if not existed:
            log.info(
                "history: created {path} (schema version {version})",
                path=path,
                version=SCHEMA_VERSION,
            )
        load(db)
        db.execute("PRAGMA busy_timeout = 0")
    except sqlite3.Error as error:
        raise refused(f"cannot {'open' if existed else 'create'}: {error}") from None
    return db
