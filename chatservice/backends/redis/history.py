"""
Room history shared through Redis: one stream per room
(``history:<folded room>``), written by the node whose member spoke, in the
same Lua script as the frame that delivers it (:data:`.scripts.KEEP_AND_PUBLISH`),
read by every node (:data:`.scripts.PAGE`).  ``docs/scaling.rst`` says why.

:class:`RedisHistoryStore` is the hub's store when ``--redis`` and history
are both on.  It keeps room messages in Redis only; what is not shared
(topics and bans, which Redis holds too, kept here as the copy a node
gives back to an empty Redis; private messages with ``--history-private``)
goes to the node's own store (``--history sqlite:PATH`` or ``memory``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from twisted.internet.defer import Deferred, succeed
from twisted.logger import Logger
from twisted.python.failure import Failure

from chatservice.backends.redis import scripts
from chatservice.chat import events
from chatservice.chat.model import Ban
from chatservice.chat.names import fold
from chatservice.chat.text import visible
from chatservice.stores.base import (
    HistoryStore,
    Position,
    Saved,
    SavedTopic,
    StoreFigures,
    UnknownMessageError,
)
from chatservice.stores.gate import DeliveryGate

if TYPE_CHECKING:
    from chatservice.backends.redis.backend import Item, RedisBackend

#: The fields of a stream entry, in the order the script takes them.
#: An entry written before notices has no ``notice``: not a notice.
FIELDS = ("id", "at", "room", "nick", "text", "action", "door", "notice")


@dataclass(frozen=True)
class HistoryCap:
    """How much of each room's history Redis keeps."""

    #: Messages per room (``--history-max-messages``); Redis trims whole
    #: nodes of its stream (``MAXLEN ~``), so up to ~100 more are kept.
    per_room: int
    #: Seconds a message is kept (``--history-max-age``; ``None``: any age).
    max_age: float | None = None
    clock: Callable[[], float] = time.time

    def oldest(self) -> float | None:
        """The time of the oldest message kept now (``None``: any)."""
        return None if self.max_age is None else self.clock() - self.max_age


def keep_arguments(
    backend: RedisBackend, cap: HistoryCap, items: list[Item], replayed: bool
) -> tuple[list[str], list[str]]:
    """
    The stream keys and the arguments after the first two (channel, frame)
    of :data:`~.scripts.KEEP_AND_PUBLISH` for a frame's items: the room
    messages (``say`` items) each goes to its room's stream.
    """
    by_room: dict[str, list[dict[str, Any]]] = {}
    for item in items:
        if isinstance(item, dict) and item.get("k") == "say":
            by_room.setdefault(str(item["r"]), []).extend(item["m"])
    oldest = cap.oldest()
    arguments = [
        str(cap.per_room),
        "" if oldest is None else f"{max(0, int(oldest * 1000))}-0",
        "1" if replayed else "0",
    ]
    keys = []
    for room, said in by_room.items():
        keys.append(backend.key("history", room))
        arguments.append(str(len(said)))
        for message in said:
            arguments += [
                str(message["id"]),
                repr(float(message["at"])),
                str(message["room"]),
                str(message["nick"]),
                str(message["text"]),
                "1" if message.get("action") else "0",
                str(message.get("door", "")),
                "1" if message.get("notice") else "0",
            ]
    return keys, arguments


def message_from(fields: list[Any]) -> events.RoomMessage:
    """A stream entry's fields back as a room message, its texts made safe."""
    entry = {str(fields[i]): str(fields[i + 1]) for i in range(0, len(fields) - 1, 2)}
    return events.RoomMessage(
        visible(entry["room"]),
        visible(entry["nick"]),
        visible(entry["text"]),
        entry.get("action") == "1",
        entry.get("notice") == "1",
        id=entry["id"],
        at=float(entry["at"]),
        door=visible(entry.get("door", "")),
    )


class RedisHistoryStore:
    """
    A :class:`~chatservice.stores.base.HistoryStore` whose room history is
    in Redis, shared by every node; ``local`` keeps the rest.
    """

    log = Logger()

    def __init__(
        self, backend: RedisBackend, local: HistoryStore, cap: HistoryCap
    ) -> None:
        self.backend = backend
        self.local = local
        self.cap = cap
        # The backend appends each turn's room messages with its frame.
        backend.history = cap
        #: Room messages of this node's members (sent with the frames).
        self.written = 0
        #: Reads that failed (Redis away), and whether that was said.
        self.read_failures = 0
        self._said_trouble = False

    @property
    def gate(self) -> DeliveryGate | None:
        return self.local.gate

    def start(self) -> Deferred[None]:
        return self.local.start()

    def stop(self) -> Deferred[None]:
        return self.local.stop()

    def saved(self) -> Saved:
        return self.local.saved()

    def append(self, message: events.RoomMessage) -> None:
        """Counted only: the backend's frame of this turn carries it to Redis."""
        self.written += 1

    def append_private(self, message: events.PrivateMessage) -> None:
        self.local.append_private(message)

    def set_topic(self, topic: SavedTopic) -> None:
        self.local.set_topic(topic)

    def add_ban(self, ban: Ban) -> None:
        self.local.add_ban(ban)

    def remove_ban(self, ban: Ban) -> None:
        self.local.remove_ban(ban)

    def commit(self) -> None:
        self.local.commit()

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
        if count <= 0:
            return succeed([])
        # What this turn said goes to Redis first: on the same connection,
        # Redis answers this read after it has kept them.
        self.backend.publisher.send_frame_now()
        window = self.cap.per_room
        if after is None and before is None and latest:
            window = min(window, count)
        oldest = self.cap.oldest()
        arguments = [
            str(window),
            str(count),
            "1" if latest else "0",
            *_position(after),
            *_position(before),
            "" if oldest is None else repr(oldest),
        ]
        read = self.backend.evaluate(
            scripts.PAGE, [self.backend.key("history", fold(room))], arguments
        )
        return read.addCallbacks(self._read, self._read_failed)

    def _read(self, reply: list[Any]) -> list[events.RoomMessage]:
        if str(reply[0]) == "unknown":
            raise UnknownMessageError(str(reply[1]))
        self._said_trouble = False
        messages = []
        for fields in reply[1]:
            try:
                messages.append(message_from(fields))
            except (KeyError, TypeError, ValueError, IndexError) as error:
                self.log.warn(
                    "history: skipped a bad entry of the shared history: {error!r}",
                    error=error,
                )
        return messages

    def _read_failed(self, failure: Failure) -> list[events.RoomMessage]:
        # The chat goes on without history: an empty replay, one line said
        # until a read works again.
        self.read_failures += 1
        if not self._said_trouble:
            self._said_trouble = True
            self.log.warn(
                "history: cannot read the shared history from Redis ({why}); "
                "replays and pages are empty until it answers",
                why=failure.getErrorMessage() or repr(failure.value),
            )
        return []

    def figures(self) -> StoreFigures:
        """
        Room messages this node's members said (sent to Redis with the
        frames); write failures: the local store's, and the turns whose
        messages Redis refused to keep.
        """
        local: Any = getattr(self.local, "figures", None)
        figures = local() if local is not None else StoreFigures()
        refused = self.backend.publisher.history_refused
        return StoreFigures(
            written=self.written,
            write_failures=figures.write_failures + refused,
            waiting=figures.waiting,
            dropped=figures.dropped,
        )

    def health(self) -> str | None:
        trouble = self.backend.health()
        if trouble is not None:
            return trouble
        local: Any = getattr(self.local, "health", None)
        return local() if local is not None else None

    def status(self) -> str:
        age = "any age" if self.cap.max_age is None else f"{self.cap.max_age:g} s"
        return (
            f"redis: room history shared, {self.cap.per_room} messages per room, "
            f"{age}; this node: {self.local.status()}"
        )


def _position(position: Position | None) -> list[str]:
    if position is None:
        return ["", ""]
    if position.id is not None:
        return [position.id, ""]
    return ["", repr(position.at)]
