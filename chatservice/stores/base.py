"""
The interface between the hub and the history it keeps.

:meth:`HistoryStore.append` is called on the reactor for every room message
and must never block it (a store on disk queues the write and does it in a
thread or in batches); reads return Deferreds.  Durability: a message is
kept once the Deferred of :meth:`HistoryStore.stop` fired; what each store
promises before that is its own documentation's to say.
"""

from __future__ import annotations

from typing import Protocol

from twisted.internet.defer import Deferred

from chatservice.chat import events


class HistoryStore(Protocol):
    """Where room messages go, and where they come back from."""

    def start(self) -> Deferred[None]:
        """Open the store; fires once it takes messages."""

    def stop(self) -> Deferred[None]:
        """Write what is pending and close; fires once done."""

    def append(self, message: events.RoomMessage) -> None:
        """
        Keep a room message (never blocks; the message has an id and a
        time).  Its room is ``message.room``, the room's name as shown: key
        it on ``fold(message.room)`` (:func:`chatservice.chat.names.fold`).
        """

    def recent(self, room: str, count: int) -> Deferred[list[events.RoomMessage]]:
        """
        The last ``count`` messages of a room (its folded name), oldest
        first.
        """
