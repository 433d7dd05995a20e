"""
What every chat door's connection does as a hub
:class:`~chatservice.chat.model.Member`, whatever its protocol (native,
IRC): join the hub once admitted and leave it when the connection ends.
(The deadline to register is every door's: ``Connection.register`` and
``Limits.registration_timeout``.)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from twisted.python.failure import Failure

from chatservice.chat import events
from chatservice.chat.errors import Refused
from chatservice.chat.model import Session
from chatservice.conn.connection import Authenticator
from chatservice.conn.limits import Limits
from chatservice.conn.outbox import Gate
from chatservice.doors.line import LineProtocol
from chatservice.doors.operations import Operations

if TYPE_CHECKING:
    from chatservice.chat.hub import Hub


def member_limits(limits: Limits | None, nick_timeout: float) -> Limits:
    """
    A chat door's limits: the hub counts its clients (its limit changes at
    run time with /limit), the factory still limits connections per
    address, and the deadline to register is the nickname's.
    """
    return replace(limits or Limits(), max_clients=0, registration_timeout=nick_timeout)


class HubFactory:
    """What a chat door's factory holds of the chat (a mixin)."""

    hub: Hub
    sync: Callable[[], None] | None
    gate: Gate | None
    authenticator: Authenticator | None
    operations: Operations

    def joinChat(
        self,
        hub: Hub,
        authenticator: Authenticator | None,
        operations: Operations | None,
    ) -> None:
        """Serve ``hub``: every reply waits for the room messages said before it."""
        self.hub = hub
        self.sync = hub.flush
        # Nothing is sent ahead of the history's commit of it.
        self.gate = hub.gate
        self.authenticator = authenticator
        self.operations = operations if operations is not None else Operations(hub)


class HubMember:
    """
    A connection that is a member of a hub (``factory.hub``), whatever its
    framing: it joins once admitted and leaves, once, when it ends.
    """

    session: Session | None = None
    factory: Any
    transport: Any
    host: str | None

    @property
    def hub(self) -> Hub:
        hub: Hub = self.factory.hub
        return hub

    def joinHub(self) -> Refused | None:
        """
        Become a session of the hub (no Nagle delay: chat lines are small
        and should leave at once), or say why the hub refuses.
        """
        set_no_delay = getattr(self.transport, "setTcpNoDelay", None)
        if set_no_delay is not None:
            set_no_delay(True)
        try:
            self.session = self.hub.connect(self, self.host)
        except Refused as refusal:
            self.noteRefusal(refusal)
            return refusal
        return None

    def noteRefusal(self, refusal: Refused) -> None:
        """
        Log a connection the hub refused (full, banned) as the connection
        policy logs its own: at most one line each 10 s per door, counting
        the others.  The hub's refusals went unlogged, the door's not.
        """
        self.factory.refusals.note(self, refusal)

    def deliver(self, event: events.Event) -> None:
        """Show an event to the client (the door's own rendering)."""
        raise NotImplementedError

    def disconnect(self, reason: str) -> None:
        """The hub removed this member (kick, ban): close the connection."""
        raise NotImplementedError

    def leaveHub(self, reason: str) -> None:
        """Leave the chat (its rooms hear why), once."""
        if self.session is not None:
            self.hub.disconnect(self.session, reason)
            self.session = None


class MemberProtocol(HubMember, LineProtocol):
    """A line door's connection that is a member of a hub."""

    def connectionClosed(self, reason: Failure) -> None:
        self.leaveHub(self.lost_reason)

    def endOfInput(self) -> None:
        self.leaveHub("end of input")
        self.close()
