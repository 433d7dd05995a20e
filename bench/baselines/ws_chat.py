"""
The JSON the WebSocket broadcast baselines (``ws_*.py``) speak: the least
of the web door's protocol (``docs/web.rst``) that ``bench/ws_loadgen.c``
needs, so that it drives them and the door alike.

- ``{"type":"nick","nick":N}`` is answered ``{"type":"registered",...}``;
- ``{"type":"say","text":T}`` from a registered connection is broadcast to
  every registered one, itself included, as the door's ``message`` event
  (the same fields: ``id``, ``at``, ``room``, ``nick``, ``text``,
  ``action``);
- ``{"type":"ping"}`` is answered ``{"type":"pong"}``; anything else is
  ignored (no rooms, limits or checks: these are the plain servers to beat).

Each baseline frames and sends with its own library; this module has no I/O.
"""

from __future__ import annotations

import itertools
import json
import time
from typing import Any

PONG = '{"type":"pong"}'


class Room:
    """The one room: the registered connections and their nicknames."""

    def __init__(self) -> None:
        self.members: dict[Any, str] = {}
        self._ids = itertools.count()

    def received(self, connection: Any, text: str) -> tuple[str | None, str | None]:
        """A text message read: (what to answer, what to broadcast)."""
        try:
            message = json.loads(text)
        except ValueError:
            return '{"type":"error","error":"bad-json"}', None
        if not isinstance(message, dict):
            return None, None
        kind = message.get("type")
        if kind == "nick":
            nick = str(message.get("nick"))
            self.members[connection] = nick
            return json.dumps(
                {"type": "registered", "nick": nick, "room": "lobby"},
                separators=(",", ":"),
            ), None
        if kind == "say" and connection in self.members:
            event = {
                "type": "message",
                "id": str(next(self._ids)),
                "at": time.time(),
                "room": "lobby",
                "nick": self.members[connection],
                "text": str(message.get("text")),
                "action": False,
            }
            return None, json.dumps(event, ensure_ascii=False, separators=(",", ":"))
        if kind == "ping":
            return PONG, None
        return None, None

    def left(self, connection: Any) -> None:
        self.members.pop(connection, None)
