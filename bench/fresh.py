"""
How a fresh client of the attack (``bench/attack.py``) registers at each
door, as a small dialogue over a raw non-blocking socket: what it says
once connected, and what it reads until it is let in or refused.

- ``chat``: its nickname; let in at ``--- you are``;
- ``echo``: a line; let in when the line comes back;
- ``irc``: ``NICK`` and ``USER``; let in at the welcome (``001``);
- ``web``: the WebSocket upgrade of ``/ws``, then (at ``101``) a
  ``{"type": "nick"}`` message; let in at ``{"type": "registered"}``.

A refusal is the server's own word: ``!!!`` (chat, echo), ``ERROR`` (IRC),
an HTTP status other than 101 or a ``{"type": "error"}`` message (web).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

#: The doors a fresh client can try, in the order they take turns.
DOORS = ("chat", "echo", "irc", "web")

#: The upgrade a fresh client of the web door asks for.
WEB_UPGRADE = (
    b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
    b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    b"Sec-WebSocket-Version: 13\r\n\r\n"
)


def masked_text_frame(payload: bytes) -> bytes:
    """One WebSocket text frame from a client (masked, under 126 bytes)."""
    assert len(payload) < 126
    mask = os.urandom(4)
    body = bytes(byte ^ mask[i % 4] for i, byte in enumerate(payload))
    return bytes((0x81, 0x80 | len(payload))) + mask + body


@dataclass
class Dialogue:
    """One fresh client's registration at ``door``, as nickname ``nick``."""

    door: str
    nick: str
    data: bytes = b""
    #: The web door: the upgrade has been answered (101).
    upgraded: bool = False

    def hello(self) -> bytes:
        """What the client says once connected."""
        nick = self.nick.encode()
        if self.door == "chat":
            return nick + b"\r\n"
        if self.door == "echo":
            return b"hello " + nick + b"\r\n"
        if self.door == "irc":
            return b"NICK %s\r\nUSER %s 0 * :fresh\r\n" % (nick, nick)
        if self.door == "web":
            return WEB_UPGRADE
        raise ValueError(self.door)

    def read(self, data: bytes) -> tuple[bool | None, bytes]:
        """
        What was read: ``(True, b"")`` let in, ``(False, why)`` refused,
        ``(None, reply)`` not yet (``reply``: what to send now, if anything).
        """
        self.data += data
        seen = self.data
        if self.door == "chat":
            if b"--- you are " in seen:
                return True, b""
            return self._refused(seen, b"!!! ")
        if self.door == "echo":
            if b"hello " + self.nick.encode() + b"\r\n" in seen:
                return True, b""
            return self._refused(seen, b"!!! ")
        if self.door == "irc":
            if b" 001 " in seen:
                return True, b""
            return self._refused(seen, b"ERROR ")
        return self._web(seen)

    def _web(self, seen: bytes) -> tuple[bool | None, bytes]:
        if not self.upgraded:
            head, found, rest = seen.partition(b"\r\n\r\n")
            if not found:
                return None, b""
            status = head.split(b"\r\n", 1)[0]
            if b" 101 " not in status + b" ":
                return False, status
            self.upgraded, self.data = True, rest
            message = json.dumps({"type": "nick", "nick": self.nick}).encode()
            return None, masked_text_frame(message)
        if b'"registered"' in seen:
            return True, b""
        if b'"error"' in seen:
            return False, seen[-120:]
        return None, b""

    @staticmethod
    def _refused(seen: bytes, mark: bytes) -> tuple[bool | None, bytes]:
        at = seen.find(mark)
        if at < 0:
            return None, b""
        return False, seen[at:].split(b"\n", 1)[0]
