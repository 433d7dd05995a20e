"""History in memory: the last messages of each room, lost at exit."""

from __future__ import annotations

from collections import deque

from twisted.internet.defer import Deferred, succeed

from chatservice.chat import events
from chatservice.chat.names import fold

#: Messages kept per room when nothing else is said.
DEFAULT_PER_ROOM = 1000


class MemoryHistoryStore:
    """
    A :class:`~chatservice.stores.base.HistoryStore` holding at most
    ``per_room`` messages of each room; the oldest go first.
    """

    def __init__(self, per_room: int = DEFAULT_PER_ROOM) -> None:
        if per_room < 1:
            raise ValueError("a history store keeps at least one message per room")
        self.per_room = per_room
        self._rooms: dict[str, deque[events.RoomMessage]] = {}

    def start(self) -> Deferred[None]:
        return succeed(None)

    def stop(self) -> Deferred[None]:
        return succeed(None)

    def append(self, message: events.RoomMessage) -> None:
        key = fold(message.room)
        kept = self._rooms.get(key)
        if kept is None:
            kept = self._rooms[key] = deque(maxlen=self.per_room)
        kept.append(message)

    def recent(self, room: str, count: int) -> Deferred[list[events.RoomMessage]]:
        kept = self._rooms.get(fold(room), ())
        if count <= 0:
            return succeed([])
        return succeed(list(kept)[-count:])
