"""
The interface between the hub and whatever carries its events.

Which calls can go remote, and so are asynchronous: a nickname claim must be
decided by whoever holds every node's nicknames, so :meth:`claim_nick`
returns a Deferred (the local backend's has fired already).  Deliveries are
fire and forget: :meth:`publish` and :meth:`say` may deliver later (at the
end of the turn, or once a remote server has ordered them), never out of
order.  Reads (:meth:`holder`, :meth:`bans`) are answered from what this
node knows, synchronously: a shared backend keeps a local mirror.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from typing import Protocol

from twisted.internet.defer import Deferred

from chatservice.chat import events
from chatservice.chat.errors import ChatError, NickInUse, NickLookalike
from chatservice.chat.model import Ban, Room, Session


def one_event(room: str, said: list[events.RoomMessage]) -> events.Event:
    """What a turn said in a room, as one event (one message: itself)."""
    return said[0] if len(said) == 1 else events.RoomMessages(room, tuple(said))


def nick_refusal(
    nicks: Mapping[str, Session],
    lookalikes: Mapping[str, Session],
    session: Session,
    nick: str,
    key: str,
    looks: str,
) -> ChatError | None:
    """
    Why ``session`` cannot have ``nick`` (folded ``key``, skeleton
    ``looks``) given who holds what, or ``None``.
    """
    holder = nicks.get(key)
    if holder is not None and holder is not session:
        return NickInUse(nick)
    twin = lookalikes.get(looks)
    if twin is not None and twin is not session:
        # A twin whose own claim is still being answered has no nickname
        # yet: name what it looks like.
        return NickLookalike(nick, twin.nick or looks)
    return None


class HubBackend(Protocol):
    """What the hub needs to deliver events and share its registries."""

    def start(self) -> Deferred[None]:
        """Connect to whatever the backend needs; fires once usable."""

    def stop(self) -> Deferred[None]:
        """Let go of it; fires once stopped."""

    # Nicknames: unique across the chat, and so are their look-alike keys.

    def claim_nick(
        self, session: Session, nick: str, key: str, looks: str
    ) -> Deferred[None]:
        """
        Give ``session`` the nickname whose folded form is ``key`` and
        look-alike skeleton ``looks`` (its old one stays claimed until
        :meth:`release_nick`).  Fails with
        :class:`~chatservice.chat.errors.NickInUse` or
        :class:`~chatservice.chat.errors.NickLookalike`.
        """

    def release_nick(
        self, session: Session, key: str | None, looks: str | None
    ) -> None:
        """
        Free the folded nickname ``key`` and the look-alike key ``looks``
        that ``session`` held (nothing for one it did not hold, or given as
        ``None``: kept, as when a rename keeps the same skeleton).
        """

    def holder(self, key: str) -> Session | None:
        """Who has the nickname with this folded form, if anyone."""

    @property
    def nicks(self) -> Mapping[str, Session]:
        """Every registered member by folded nickname."""

    # Deliveries, in the order they are asked for.

    def set_barrier(self, barrier: Callable[[], None]) -> None:
        """
        Call ``barrier`` before delivering anything (the history store's
        commit): what a member is shown has been stored first (or is being
        written, and the member's outbox holds it until then: the store's
        gate, :mod:`chatservice.stores.gate`).
        """

    def publish(self, room: Room, event: events.Event) -> None:
        """Deliver an event to every member of a room."""

    def say(self, room: Room, message: events.RoomMessage) -> None:
        """
        Deliver a room message to every member of the room; a backend may
        collect a turn's messages to one room into one
        :class:`~chatservice.chat.events.RoomMessages`.
        """

    def send(self, sessions: Collection[Session], event: events.Event) -> None:
        """Deliver an event to these members."""

    def flush(self) -> None:
        """
        Deliver whatever was collected and not delivered yet.  The hub calls
        it before a room's membership changes, and a member's outbox before
        a reply of the door's own, so that order holds.  A backend whose
        deliveries come back from a remote server delivers what it has
        received; what is still on its way may then arrive after a reply.
        """

    # Who is where: what other nodes must know of this node's members.
    # The hub tells the backend after each change, before the event that
    # announces it; the local backend has nobody to tell.

    def member_registered(self, session: Session) -> None:
        """``session`` got its first nickname (it is a member of the chat now)."""

    def member_renamed(self, session: Session) -> None:
        """``session`` has a new nickname (``session.nick``)."""

    def member_joined(self, session: Session, room: Room) -> None:
        """``session`` joined ``room``."""

    def member_left(self, session: Session, room: Room) -> None:
        """``session`` left ``room`` (and is still in the chat)."""

    def member_gone(self, session: Session) -> None:
        """``session`` left the chat (quit, kicked, banned), its rooms with it."""

    def limit_changed(self, limit: int) -> None:
        """An operator changed the client limit: every node takes it."""

    # Bans, shared by every node.

    def add_ban(self, ban: Ban) -> None:
        """Add a ban, replacing one on the same target."""

    def remove_ban(self, ban: Ban) -> None:
        """Lift a ban."""

    def bans(self, now: float) -> list[Ban]:
        """Bans in force at ``now``, oldest first."""
