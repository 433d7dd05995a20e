"""
The SQLite store's paged reads (:meth:`HistoryStore.page`), on the
reactor's connection: the file's rows between two bounds, and which of
the messages not written yet (newer than every row) are between them.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Collection

from chatservice.chat import events
from chatservice.stores.base import Position, UnknownMessageError, page_of
from chatservice.stores.schema import Row


def read_rows(
    db: sqlite3.Connection,
    key: str,
    count: int,
    after: Position | None,
    before: Position | None,
    latest: bool,
    unwritten: Collection[str],
) -> list[Row]:
    """
    At most ``count`` rows of a room (folded name ``key``) between the
    bounds, the newest if ``latest`` else the oldest, oldest first.  A
    message id must be of this room: else :class:`UnknownMessageError`,
    unless it is among the ids of messages not written yet (``unwritten``),
    when no row of the file is after it.
    """
    where: list[str] = ["room = ?"]
    parameters: list[object] = [key]
    for position, sign in ((after, ">"), (before, "<")):
        if position is None:
            continue
        if position.at is not None:
            where.append(f"at {sign} ?")
            parameters.append(position.at)
            continue
        found = db.execute(
            "SELECT seq FROM messages WHERE room = ? AND id = ?", (key, position.id)
        ).fetchone()
        if found is None:
            if position.id in unwritten:
                if sign == ">":
                    return []  # the file has nothing newer
                continue
            raise UnknownMessageError(position.id)
        where.append(f"seq {sign} ?")
        parameters.append(found[0])
    order = "DESC" if latest else "ASC"
    rows: list[Row] = db.execute(
        "SELECT id, room, name, at, nick, text, action, door, notice FROM messages "
        f"WHERE {' AND '.join(where)} ORDER BY seq {order} LIMIT ?",
        (*parameters, count),
    ).fetchall()
    if latest:
        rows.reverse()
    return rows


def _bounds(position: Position, messages: list[events.RoomMessage]) -> bool:
    """Whether a position bounds messages not written yet."""
    if position.id is not None:
        return any(message.id == position.id for message in messages)
    return True  # a time bounds them as it bounds the file's rows


def newer_page(
    unwritten: list[events.RoomMessage],
    after: Position | None,
    before: Position | None,
) -> list[events.RoomMessage]:
    """
    Which messages not written yet are between the bounds: all are newer
    than any row of the file, so a bound that is a written message lets
    them all through (after it) or none (before it).
    """
    if before is not None and not _bounds(before, unwritten):
        return []
    if after is not None and not _bounds(after, unwritten):
        after = None
    return page_of(unwritten, len(unwritten), after, before)
