"""
Events as JSON, as they travel between nodes: ``{"t": type, ...fields}``,
ids and times included, nested room messages as lists of the same.

Only the hub's own event types are read back; anything else (a node of a
newer version, a corrupt frame) raises :class:`ValueError`, which the
backend logs and drops.  Every text read back is made safe to show
again (:func:`~chatservice.chat.text.visible`): the sending node did it
already, but whatever can write to Redis cannot send a terminal escape
sequence to members through it.

Bans and topics as Redis keeps them (the hashes ``bans`` and ``topics``)
and as frames carry them are JSON too: :func:`ban_entry`, :func:`ban_from`,
:func:`topic_entry`, :func:`topic_from`.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from chatservice.chat import events
from chatservice.chat.model import Ban, parse_address_target
from chatservice.chat.text import visible
from chatservice.stores.base import SavedTopic

#: Every event type a node may send, by name.
TYPES: dict[str, type[events.Event]] = {
    kind.__name__: kind
    for kind in vars(events).values()
    if isinstance(kind, type) and issubclass(kind, events.Event)
}

#: Each type's fields given to its constructor (not its wire-format cache).
_FIELDS: dict[type[events.Event], tuple[str, ...]] = {
    kind: tuple(f.name for f in dataclasses.fields(kind) if f.init)
    for kind in TYPES.values()
}

#: The fields that are true or false (a frame without one: false).
_FLAGS = frozenset({"action", "notice"})


def encode(event: events.Event) -> dict[str, Any]:
    """An event as a JSON-able dictionary."""
    data: dict[str, Any] = {"t": type(event).__name__}
    for name in _FIELDS[type(event)]:
        value = getattr(event, name)
        if name == "messages":
            value = [encode(message) for message in value]
        data[name] = value
    return data


def decode(data: object) -> events.Event:
    """An event back from :func:`encode`'s dictionary, or :class:`ValueError`."""
    if not isinstance(data, dict):
        raise ValueError(f"not an event: {data!r:.80}")
    kind = TYPES.get(data.get("t"))  # type: ignore[arg-type]
    if kind is None:
        raise ValueError(f"unknown event type: {data.get('t')!r:.80}")
    arguments: dict[str, Any] = {}
    for name in _FIELDS[kind]:
        if name not in data:
            continue  # its default
        value = data[name]
        if name == "messages":
            if not isinstance(value, list):
                raise ValueError("messages: not a list")
            value = tuple(_message(item) for item in value)
        elif name in _FLAGS:
            if not isinstance(value, bool):
                raise ValueError(f"{name}: not true or false: {value!r:.80}")
        elif isinstance(value, str):
            value = visible(value)
        arguments[name] = value
    try:
        return kind(**arguments)
    except TypeError as error:
        raise ValueError(f"{kind.__name__}: {error}") from None


def _message(data: object) -> events.RoomMessage:
    message = decode(data)
    if not isinstance(message, events.RoomMessage):
        raise ValueError("messages: not room messages")
    return message


def ban_entry(ban: Ban) -> dict[str, Any]:
    """A ban as JSON."""
    return {
        "t": ban.target,
        "u": ban.until,
        "w": ban.reason,
        "b": ban.by,
        "net": ban.network is not None,
    }


def ban_from(entry: dict[str, Any]) -> Ban:
    """A ban back from JSON (:class:`KeyError`, :class:`ValueError`: bad)."""
    target = str(entry["t"])
    until = entry.get("u")
    return Ban(
        target,
        None if until is None else float(until),
        str(entry.get("w", "")),
        str(entry.get("b", "")),
        parse_address_target(target) if entry.get("net") else None,
    )


def topic_entry(topic: SavedTopic) -> dict[str, Any]:
    """A room's topic as JSON."""
    return {"r": topic.room, "t": topic.topic, "b": topic.by, "a": topic.at}


def topic_from(entry: dict[str, Any]) -> SavedTopic:
    """A room's topic back from JSON (:class:`KeyError`, :class:`ValueError`: bad)."""
    return SavedTopic(
        str(entry["r"]), str(entry["t"]), str(entry.get("b", "")), float(entry["a"])
    )
