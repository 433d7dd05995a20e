"""
The hub's mirror of the members of other nodes (a shared backend, such as
Redis, keeps it): they are listed by ``/who``, ``/whois``, ``/list`` and
``/stats`` and found by ``/msg`` and ``/kick``, but delivered to by their
own node.  No event is made here: their node announced them.  A part of
:class:`~chatservice.chat.hub.Hub`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from chatservice.chat.model import Room, Session
from chatservice.chat.names import fold

if TYPE_CHECKING:
    from chatservice.backends.base import HubBackend
    from chatservice.stores.base import SavedTopic


class Mirror:
    """Members of other nodes, as the backend mirrors them (see the module)."""

    # What of the hub this part uses (Hub has them).
    sessions: dict[Session, None]
    remote: dict[Session, None]
    rooms: dict[str, Room]
    topics: dict[str, SavedTopic]
    clock: Callable[[], float]
    backend: HubBackend

    if TYPE_CHECKING:

        def _leave(self, session: Session, room: Room) -> None: ...
        def _announce_quit(self, session: Session, reason: str) -> None: ...
        def _remove(self, session: Session) -> None: ...

    def add_remote(self, session: Session) -> None:
        """Take in a member registered on another node."""
        self.sessions[session] = None
        self.remote[session] = None

    def place(self, session: Session, name: str) -> Room:
        """Put a member of another node in a room (created if need be)."""
        key = fold(name)
        room = self.rooms.get(key)
        if room is None:
            room = self.rooms[key] = Room(name, self.clock())
            kept = self.topics.get(key)
            if kept is not None:
                room.topic = kept.topic
        if session not in room.members:
            room.members[session] = None
            session.rooms = (*session.rooms, room)
            session.current = room
        return room

    def displace(self, session: Session, room: Room) -> None:
        """Take a member of another node out of a room."""
        self._leave(session, room)

    def forget(self, session: Session) -> None:
        """Forget a member of another node that left the chat."""
        self.sessions.pop(session, None)
        self.remote.pop(session, None)
        for room in session.rooms:
            self._leave(session, room)
        session.rooms = ()
        session.current = None

    def lost(self, session: Session, reason: str) -> None:
        """
        A member of another node whose node is gone (it stopped
        heartbeating): its rooms hear that it quit, and it is forgotten.
        """
        if session not in self.remote:
            return
        self._announce_quit(session, reason)
        self.backend.member_gone(session)
        self.forget(session)

    def drop(self, session: Session, reason: str) -> None:
        """
        Remove a member of this node that another node removed (an
        operator there kicked or banned it): already announced there.
        """
        if session not in self.sessions:
            return
        self._remove(session)
        session.member.disconnect(reason)
