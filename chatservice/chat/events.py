"""
What happens in the chat, one type per kind of thing, delivered by the hub to
every member concerned.

Every event the hub makes has an ``id``, unique across the chat (the
node's id and that node's counter: ``"3f9a1c0d2b7e4a58.42"``), and ``at``, the server
time it happened (seconds since the epoch, from the hub's clock).  History
keys on both; a node that receives an event twice (several nodes sharing
rooms) recognises it by its id.  Neither takes part in equality: two events
are equal when they say the same thing.

An event is formatted once per wire format, not once per recipient:
:meth:`Event.encoded` keeps each door's bytes on the event, so a room
message to a thousand members is encoded once.
"""

from __future__ import annotations

import itertools
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

E = TypeVar("E", bound="Event")


@dataclass(frozen=True, slots=True)
class Event:
    """Base of every chat event."""

    #: Unique across the chat; ``""`` for an event the hub did not make.
    id: str = field(default="", kw_only=True, compare=False)
    #: Server time the event happened, in seconds since the epoch.
    at: float = field(default=0.0, kw_only=True, compare=False, repr=False)
    _wire: dict[str, bytes] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def encoded(self: E, wire: str, encode: Callable[[E], bytes]) -> bytes:
        """This event in one wire format, encoded on first use only."""
        cached = self._wire.get(wire)
        if cached is None:
            cached = self._wire[wire] = encode(self)
        return cached


@dataclass(frozen=True, slots=True)
class RoomMessage(Event):
    """
    A member said something in a room: ``action``, said with ``/me``;
    ``notice``, said as a notice (IRC's ``NOTICE``, ``/notice``), which no
    client answers automatically.  Never both (:meth:`Hub.say` refuses).
    """

    room: str
    nick: str
    text: str
    action: bool = False
    notice: bool = False
    #: The door the sender spoke through (``"chat"``: the native door), for
    #: history; ``""`` when not known.  Not part of equality.
    door: str = field(default="", kw_only=True, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class RoomMessages(Event):
    """
    Several messages said in one room, one after the other with nothing in
    between, delivered as one event (the backend collects a turn's
    messages).  An envelope: its messages carry the ids and times.
    """

    room: str
    messages: tuple[RoomMessage, ...]


@dataclass(frozen=True, slots=True)
class History(Event):
    """
    Messages said in a room before now, oldest first, with their original
    ids and times: the replay a member gets on joining, or asked for
    (``/history``).  Delivered to that member only.
    """

    room: str
    messages: tuple[RoomMessage, ...]


@dataclass(frozen=True, slots=True)
class PrivateMessage(Event):
    """
    A message from one member to another, delivered to both (``notice``:
    sent as a notice, see :class:`RoomMessage`).
    """

    sender: str
    recipient: str
    text: str
    notice: bool = False
    #: The door the sender spoke through, for history (see RoomMessage).
    door: str = field(default="", kw_only=True, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Joined(Event):
    """A member joined a room."""

    room: str
    nick: str


@dataclass(frozen=True, slots=True)
class Parted(Event):
    """A member left a room."""

    room: str
    nick: str
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Quit(Event):
    """A member left the chat; delivered to everyone who shared a room."""

    nick: str
    reason: str = ""


@dataclass(frozen=True, slots=True)
class NickChanged(Event):
    """A member changed nickname; delivered to them and their rooms."""

    old: str
    new: str


@dataclass(frozen=True, slots=True)
class TopicChanged(Event):
    """A member set the topic of a room."""

    room: str
    nick: str
    topic: str


@dataclass(frozen=True, slots=True)
class Kicked(Event):
    """An operator removed a member from the chat."""

    nick: str
    by: str
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Announcement(Event):
    """A notice an operator or administrator sent to every client."""

    text: str
    by: str


class EventIds:
    """
    Makes event ids: this node's id (random unless given) and a counter, so
    that ids from several nodes sharing a chat never collide.
    """

    def __init__(self, node: str | None = None) -> None:
        # 64 random bits: a node started again, or another node, draws the
        # same id once in billions of starts (24 bits would once in a few
        # thousand, and repeat every id after it).
        self.node = node if node is not None else secrets.token_hex(8)
        self._counter = itertools.count(1)
        self._prefix = self.node + "."

    def next(self) -> str:
        """A new id."""
        return self._prefix + str(next(self._counter))
