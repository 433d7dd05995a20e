"""
Who is where across the nodes: this node's members as Redis keeps them for
the others (:class:`Presence`: the hash ``members:<node>``, written once a
turn with what changed, read by a node that starts or comes back), and
the other nodes' members as this node's hub holds them
(:class:`RemoteMember`).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from twisted.python.failure import Failure

from chatservice.chat import events
from chatservice.chat.errors import Unavailable
from chatservice.chat.model import Session
from chatservice.chat.names import skeleton

if TYPE_CHECKING:
    from chatservice.backends.redis.backend import Item, RedisBackend


class RemoteMember:
    """A member connected to another node, as this node's hub holds it."""

    door_name = "remote"

    def __init__(self, backend: RedisBackend, sid: str) -> None:
        self.backend = backend
        self.sid = sid

    def deliver(self, event: events.Event) -> None:
        """Nothing: its own node delivers to it, from the same frames."""

    def disconnect(self, reason: str) -> None:
        """Ask its node to close it (an operator here kicked or banned it)."""
        self.backend.publisher.queue({"k": "drop", "s": self.sid, "w": reason})


def is_remote(session: Session) -> bool:
    """Whether a session is a member of another node."""
    return isinstance(session.member, RemoteMember)


def lost_write(failure: Failure) -> None:
    """
    A write of the shared state that did not reach Redis: nothing to do, it
    is rewritten whole when Redis is back (:meth:`.Liveness.resync`).
    """
    failure.trap(Unavailable, Exception)


class Presence:
    """This node's members' hash: what changed this turn, written at its end."""

    def __init__(self, backend: RedisBackend) -> None:
        self.backend = backend
        #: Members whose entry in this node's hash changed this turn, and
        #: those gone.
        self._changed: dict[Session, None] = {}
        self._gone: list[str] = []

    def changed(self, session: Session) -> None:
        """A member's entry is to be written again (it registered, moved)."""
        self._changed[session] = None

    def gone(self, session: Session) -> None:
        """A member went: its entry is deleted (one of this node's)."""
        self._changed.pop(session, None)
        if not is_remote(session):
            self._gone.append(self.backend.sid_for(session))

    def clear(self) -> None:
        """Forget this turn's changes (Redis is away: rewritten when back)."""
        self._changed.clear()
        self._gone.clear()

    def write(self) -> None:
        """Write this turn's changes to this node's hash."""
        backend = self.backend
        members = backend.key("members", backend.node)
        if self._changed:
            fields: list[str] = []
            for session in self._changed:
                if session.nick is not None and not is_remote(session):
                    fields += [
                        backend.sid_for(session),
                        json.dumps(self.entry(session)),
                    ]
            if fields:
                backend.command("HSET", members, *fields).addErrback(lost_write)
            self._changed.clear()
        if self._gone:
            backend.command("HDEL", members, *self._gone).addErrback(lost_write)
            self._gone.clear()

    def describe(self, session: Session) -> Item:
        """The item that makes a member of this node known to the others."""
        return {
            "k": "m",
            "s": self.backend.sid_for(session),
            "n": session.nick,
            "a": session.address,
            "c": session.connected_at,
        }

    def entry(self, session: Session) -> dict[str, Any]:
        """A member of this node as its hash keeps it."""
        key = session.key or ""
        return {
            "n": session.nick,
            "k": key,
            "l": skeleton(key),
            "a": session.address,
            "c": session.connected_at,
            "r": [room.name for room in session.rooms],
        }
