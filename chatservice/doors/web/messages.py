"""
The web door's JSON protocol (``docs/web.rst``): one JSON object per
WebSocket text message, ``{"type": ...}`` and its fields.

:func:`parse` turns what a page sends into a :class:`Request`, or raises
:class:`BadMessageError` saying what is wrong (not JSON, not an object, an
unknown type, a missing field or one of the wrong type); :func:`render`
and :func:`render_error` turn the core's events and typed errors into the
objects the page receives.  No I/O here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from chatservice.chat import errors, events

#: What each client message carries: field name -> (JSON type, required).
_STRING, _BOOL, _INT = "string", "boolean", "integer"
CLIENT_MESSAGES: dict[str, dict[str, tuple[str, bool]]] = {
    "nick": {"nick": (_STRING, True)},
    "input": {"text": (_STRING, True), "room": (_STRING, False)},
    "say": {
        "room": (_STRING, True),
        "text": (_STRING, True),
        "action": (_BOOL, False),
        "notice": (_BOOL, False),
    },
    "join": {"room": (_STRING, True)},
    "part": {"room": (_STRING, True), "reason": (_STRING, False)},
    "msg": {"to": (_STRING, True), "text": (_STRING, True), "notice": (_BOOL, False)},
    "topic": {"room": (_STRING, True), "topic": (_STRING, True)},
    "history": {
        "room": (_STRING, True),
        "count": (_INT, False),
        "before": (_STRING, False),
    },
    "ping": {},
}

_PYTHON_TYPES: dict[str, tuple[type, ...]] = {
    _STRING: (str,),
    _BOOL: (bool,),
    _INT: (int,),
}


class BadMessageError(Exception):
    """A client message the door cannot take; ``code`` names why."""

    def __init__(self, code: str, text: str) -> None:
        super().__init__(text)
        self.code = code
        self.text = text


@dataclass(frozen=True)
class Request:
    """One well-formed client message."""

    type: str
    fields: dict[str, Any]

    def text(self, name: str, default: str = "") -> str:
        value = self.fields.get(name, default)
        assert isinstance(value, str)
        return value


def parse(data: str) -> Request:
    """A client message, checked against :data:`CLIENT_MESSAGES`."""
    try:
        message = json.loads(data)
    except ValueError as error:
        raise BadMessageError("bad-json", f"not JSON: {error}") from None
    except RecursionError:
        raise BadMessageError("bad-json", "not JSON: nested too deeply") from None
    if not isinstance(message, dict):
        raise BadMessageError("bad-message", "a message is a JSON object")
    kind = message.get("type")
    if not isinstance(kind, str):
        raise BadMessageError("bad-message", 'a message needs "type", a string')
    spec = CLIENT_MESSAGES.get(kind)
    if spec is None:
        known = ", ".join(sorted(CLIENT_MESSAGES))
        raise BadMessageError("unknown-type", f"unknown type {kind!r} (known: {known})")
    fields: dict[str, Any] = {}
    for name, (json_type, required) in spec.items():
        if name not in message:
            if required:
                raise BadMessageError(
                    "bad-field", f'"{kind}" needs "{name}", a {json_type}'
                )
            continue
        value = message[name]
        # bool is an int in Python, not in JSON.
        if not isinstance(value, _PYTHON_TYPES[json_type]) or (
            json_type == _INT and isinstance(value, bool)
        ):
            raise BadMessageError(
                "bad-field", f'"{kind}": "{name}" must be a {json_type}'
            )
        if isinstance(value, str) and not _encodable(value):
            # "\ud800" in JSON: a lone surrogate, no character at all.
            raise BadMessageError(
                "bad-field", f'"{kind}": "{name}" is not valid Unicode text'
            )
        fields[name] = value
    return Request(kind, fields)


def _encodable(text: str) -> bool:
    """Whether a string is text every door can send (no lone surrogate)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def dumps(message: dict[str, Any]) -> str:
    """One server message as JSON text (compact, UTF-8 kept as is)."""
    return json.dumps(message, ensure_ascii=False, separators=(",", ":"))


def _message(message: events.RoomMessage) -> dict[str, Any]:
    return {
        "type": "message",
        "id": message.id,
        "at": message.at,
        "room": message.room,
        "nick": message.nick,
        "text": message.text,
        "action": message.action,
        "notice": message.notice,
    }


def render(event: events.Event) -> list[dict[str, Any]]:
    """The server messages that show an event (several for a batch)."""
    match event:
        case events.RoomMessage():
            return [_message(event)]
        case events.RoomMessages(messages=messages):
            return [_message(m) for m in messages]
        case events.History(room=room, messages=messages):
            return [
                {
                    "type": "history",
                    "room": room,
                    "messages": [_message(m) for m in messages],
                }
            ]
        case events.PrivateMessage(
            sender=sender, recipient=recipient, text=text, notice=notice
        ):
            kind = "private"
            facts = {"from": sender, "to": recipient, "text": text, "notice": notice}
        case events.Joined(room=room, nick=nick):
            kind, facts = "joined", {"room": room, "nick": nick}
        case events.Parted(room=room, nick=nick, reason=reason):
            kind, facts = "parted", {"room": room, "nick": nick, "reason": reason}
        case events.Quit(nick=nick, reason=reason):
            kind, facts = "quit", {"nick": nick, "reason": reason}
        case events.NickChanged(old=old, new=new):
            kind, facts = "renamed", {"old": old, "new": new}
        case events.TopicChanged(room=room, nick=nick, topic=topic):
            kind, facts = "topic", {"room": room, "nick": nick, "topic": topic}
        case events.Kicked(nick=nick, by=by, reason=reason):
            kind, facts = "kicked", {"nick": nick, "by": by, "reason": reason}
        case events.Announcement(text=text, by=by):
            kind, facts = "announcement", {"text": text, "by": by}
        case _:
            raise TypeError(f"no JSON form for {event!r}")
    return [{"type": kind, "id": event.id, "at": event.at, **facts}]


def encode(event: events.Event) -> list[str]:
    """An event's JSON texts: made once per event, whatever the recipients."""
    return [dumps(message) for message in render(event)]


#: The facts each typed error carries to the page, by field name.
_FACTS = ("nick", "other", "room", "limit", "count", "command", "remaining", "reason")


def render_error(error: errors.ChatError) -> dict[str, Any]:
    """
    A refusal: ``error`` is the core's type name (``NickInUse``), ``text``
    says it in English, and the facts the error has come along.
    """
    message: dict[str, Any] = {
        "type": "error",
        "error": type(error).__name__,
        "text": str(error),
    }
    for name in _FACTS:
        if hasattr(error, name):
            message[name] = getattr(error, name)
    return message


def bad_message(error: BadMessageError) -> dict[str, Any]:
    """The error a malformed client message gets."""
    return {"type": "error", "error": error.code, "text": error.text}
