"""
The interface between the hub and what the chat remembers: room history,
and the state that must survive a restart (topics, bans).

Writes (:meth:`HistoryStore.append`, :meth:`~HistoryStore.set_topic`,
:meth:`~HistoryStore.add_ban`...) are called on the reactor and never wait
for the disk: a store collects them and writes them when
:meth:`HistoryStore.commit` is called.  The backend calls ``commit`` before
it delivers anything (:meth:`chatservice.backends.base.HubBackend.set_barrier`),
so that what a member was shown is stored; a store whose commit returns
later (in a thread) has a :attr:`HistoryStore.gate` at which what members
are sent waits for it.  Reads return Deferreds; what
:meth:`HistoryStore.start` loaded (topics, bans) is :meth:`HistoryStore.saved`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from twisted.internet.defer import Deferred

from chatservice.chat import events
from chatservice.chat.model import Ban
from chatservice.stores.gate import DeliveryGate


class StoreError(Exception):
    """
    A store cannot be opened (a corrupt file, a newer schema, a file of
    something else): a start-up error, whose message says what to do.
    """


class UnknownMessageError(KeyError):
    """A page of history was asked for around a message id the room has not."""


@dataclass(frozen=True)
class Position:
    """
    A point in a room's history, for paged reads: a message (its event id)
    or a time (seconds since the epoch).  Pages never include the point.
    """

    id: str | None = None
    at: float | None = None

    def __post_init__(self) -> None:
        if (self.id is None) == (self.at is None):
            raise ValueError("a position is a message id or a time")


def page_of(
    messages: Sequence[events.RoomMessage],
    count: int,
    after: Position | None = None,
    before: Position | None = None,
    latest: bool = True,
) -> list[events.RoomMessage]:
    """
    :meth:`HistoryStore.page` over a room's messages held in order, oldest
    first (a store in memory, or what a store has not written yet).
    """
    start, end = 0, len(messages)
    if after is not None:
        start = _index(messages, after, after=True)
    if before is not None:
        end = _index(messages, before, after=False)
    chosen = messages[start:end] if start < end else []
    return list(chosen[-count:] if latest else chosen[:count]) if count > 0 else []


def _index(
    messages: Sequence[events.RoomMessage], position: Position, after: bool
) -> int:
    """Where the messages after ``position`` start, or those before it end."""
    if position.id is not None:
        for index in range(len(messages) - 1, -1, -1):
            if messages[index].id == position.id:
                return index + 1 if after else index
        raise UnknownMessageError(position.id)
    at = position.at
    assert at is not None
    for index, message in enumerate(messages):
        if message.at > at if after else message.at >= at:
            return index
    return len(messages)


@dataclass(frozen=True)
class SavedTopic:
    """The topic of a room, who set it and when."""

    #: The room's shown name.
    room: str
    topic: str
    by: str
    at: float


@dataclass(frozen=True)
class Saved:
    """What a store keeps across restarts, as :meth:`HistoryStore.start` found it."""

    topics: tuple[SavedTopic, ...] = ()
    #: Bans still in force, oldest first.
    bans: tuple[Ban, ...] = ()


@dataclass(frozen=True)
class StoreFigures:
    """
    What a store counts, for ``chatservice.metrics``: a store may offer
    ``figures() -> StoreFigures`` and ``health() -> str | None`` (why it
    cannot keep the history now, ``None`` when it can); both are optional,
    so that a store without them still works, unmeasured.
    """

    #: Room messages written (kept) since the start.
    written: int = 0
    #: Writes (transactions) that failed.
    write_failures: int = 0
    #: Messages collected and not written yet.
    waiting: int = 0
    #: Messages dropped because writing failed for too long.
    dropped: int = 0


class HistoryStore(Protocol):
    """Where room messages, topics and bans go, and where they come back from."""

    @property
    def gate(self) -> DeliveryGate | None:
        """
        Where deliveries wait for the commits in flight
        (:mod:`chatservice.stores.gate`); ``None``: ``commit`` writes at once.
        """

    def start(self) -> Deferred[None]:
        """
        Open the store and load what it keeps (:meth:`saved`); fires once it
        takes messages, or fails with :class:`StoreError`.
        """

    def stop(self) -> Deferred[None]:
        """Write what is pending and close; fires once done."""

    def saved(self) -> Saved:
        """The topics and bans loaded by :meth:`start`."""

    def append(self, message: events.RoomMessage) -> None:
        """
        Keep a room message (never blocks; the message has an id and a
        time).  Its room is ``message.room``, the room's name as shown: key
        it on ``fold(message.room)`` (:func:`chatservice.chat.names.fold`).
        """

    def append_private(self, message: events.PrivateMessage) -> None:
        """Keep a private message, if this store was told to keep them."""

    def set_topic(self, topic: SavedTopic) -> None:
        """Keep a room's topic (``""``: cleared)."""

    def add_ban(self, ban: Ban) -> None:
        """Keep a ban, replacing one on the same target."""

    def remove_ban(self, ban: Ban) -> None:
        """Forget a lifted ban."""

    def commit(self) -> None:
        """
        Write everything kept since the last commit, in one transaction,
        now.  Never raises: what cannot be written waits and is retried.
        """

    def recent(self, room: str, count: int) -> Deferred[list[events.RoomMessage]]:
        """
        The last ``count`` messages of a room (any spelling of its name),
        oldest first: every message appended before the call, none after.
        """

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
        At most ``count`` messages of a room said after ``after`` and before
        ``before`` (each excluded; ``None``: no bound), oldest first: the
        newest of them if ``latest``, else the oldest.  Fails with
        :class:`UnknownMessageError` for a message id the room has not (any
        more).  Like :meth:`recent`, every message appended before the
        call is there.
        """

    def status(self) -> str:
        """One line for ``/stats``: what is kept, where, and any trouble."""
