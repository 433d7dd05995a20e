"""
What happens in the chat, one type per kind of thing, delivered by the hub to
every member concerned.

An event is formatted once per wire format, not once per recipient:
:meth:`Event.encoded` keeps each front end's bytes on the event, so a room
message to a thousand members is encoded once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

E = TypeVar("E", bound="Event")


@dataclass(frozen=True, slots=True)
class Event:
    """Base of every chat event."""

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
    """A member said something in a room (``action``: said with ``/me``)."""

    room: str
    nick: str
    text: str
    action: bool = False


@dataclass(frozen=True, slots=True)
class RoomMessages(Event):
    """
    Several messages said in one room, one after the other with nothing in
    between, delivered as one event (the hub collects a turn's messages).
    """

    room: str
    messages: tuple[RoomMessage, ...]


@dataclass(frozen=True, slots=True)
class PrivateMessage(Event):
    """A message from one member to another, delivered to both."""

    sender: str
    recipient: str
    text: str


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
