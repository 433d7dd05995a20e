"""
The interface between the hub and what the chat remembers: room history,
and the state that must survive a restart (topics, bans).

Writes (:meth:`HistoryStore.append`, :meth:`~HistoryStore.set_topic`,
:meth:`~HistoryStore.add_ban`...) are called on the reactor and never wait
for the disk: a store collects them and writes them when
:meth:`HistoryStore.commit` is called.  The backend calls ``commit`` before
it delivers anything (:meth:`chatservice.backends.base.HubBackend.set_barrier`),
so that what a member was shown is stored.  Reads return Deferreds; what
:meth:`HistoryStore.start` loaded (topics, bans) is :meth:`HistoryStore.saved`.
"""

from __future__ import annotations

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

    def status(self) -> str:
        """One line for ``/stats``: what is kept, where, and any trouble."""
