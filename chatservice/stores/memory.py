"""
History in memory: the last messages of each room, topics and bans, lost at
exit (``--history memory``).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

from twisted.internet.defer import Deferred, fail, succeed

from chatservice.chat import events
from chatservice.chat.model import Ban
from chatservice.chat.names import fold
from chatservice.stores.base import (
    Position,
    Saved,
    SavedTopic,
    StoreFigures,
    UnknownMessageError,
    page_of,
)
from chatservice.stores.gate import DeliveryGate

#: Messages kept per room when nothing else is said.
DEFAULT_PER_ROOM = 1000


class MemoryHistoryStore:
    """
    A :class:`~chatservice.stores.base.HistoryStore` holding at most
    ``per_room`` messages of each room, none older than ``max_age`` seconds
    (``None``: any age) by ``clock``; the oldest go first.  Private messages
    are kept only with ``private``.
    """

    #: Memory is where it is kept: nothing to wait for.
    gate: DeliveryGate | None = None

    def __init__(
        self,
        per_room: int = DEFAULT_PER_ROOM,
        *,
        max_age: float | None = None,
        clock: Callable[[], float] = time.time,
        private: bool = False,
    ) -> None:
        if per_room < 1:
            raise ValueError("a history store keeps at least one message per room")
        self.per_room = per_room
        self.max_age = max_age
        self.clock = clock
        self.private = private
        self._rooms: dict[str, deque[events.RoomMessage]] = {}
        #: Private messages kept (only with ``private``).
        self.privates: deque[events.PrivateMessage] = deque(maxlen=per_room)
        self._topics: dict[str, SavedTopic] = {}
        self._bans: dict[str, Ban] = {}
        #: Room messages kept since the start (``chatservice.metrics``).
        self.written = 0

    def start(self) -> Deferred[None]:
        return succeed(None)

    def stop(self) -> Deferred[None]:
        return succeed(None)

    def saved(self) -> Saved:
        now = self.clock()
        bans = [b for b in self._bans.values() if b.until is None or b.until > now]
        return Saved(tuple(self._topics.values()), tuple(bans))

    def append(self, message: events.RoomMessage) -> None:
        key = fold(message.room)
        kept = self._rooms.get(key)
        if kept is None:
            kept = self._rooms[key] = deque(maxlen=self.per_room)
        kept.append(message)
        self.written += 1

    def append_private(self, message: events.PrivateMessage) -> None:
        if self.private:
            self.privates.append(message)

    def set_topic(self, topic: SavedTopic) -> None:
        self._topics[fold(topic.room)] = topic

    def add_ban(self, ban: Ban) -> None:
        self._bans[fold(ban.target)] = ban

    def remove_ban(self, ban: Ban) -> None:
        self._bans.pop(fold(ban.target), None)

    def commit(self) -> None:
        """Nothing to write: memory is where it is kept."""

    def _prune(self, kept: deque[events.RoomMessage]) -> None:
        if self.max_age is None:
            return
        oldest = self.clock() - self.max_age
        while kept and kept[0].at < oldest:
            kept.popleft()

    def recent(self, room: str, count: int) -> Deferred[list[events.RoomMessage]]:
        kept = self._rooms.get(fold(room))
        if count <= 0 or kept is None:
            return succeed([])
        self._prune(kept)
        return succeed(list(kept)[-count:])

    def page(
        self,
        room: str,
        count: int,
        *,
        after: Position | None = None,
        before: Position | None = None,
        latest: bool = True,
    ) -> Deferred[list[events.RoomMessage]]:
        kept = self._rooms.get(fold(room))
        if kept is None:
            kept = deque()
        self._prune(kept)
        try:
            return succeed(page_of(list(kept), count, after, before, latest))
        except UnknownMessageError:
            return fail()

    def figures(self) -> StoreFigures:
        return StoreFigures(written=self.written)

    def health(self) -> str | None:
        return None  # memory is always there

    def status(self) -> str:
        stored = sum(len(kept) for kept in self._rooms.values())
        return f"memory: {stored} messages in {len(self._rooms)} rooms (lost at exit)"
