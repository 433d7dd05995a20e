"""
What every chat door's connection does as a hub
:class:`~chatservice.chat.model.Member`, whatever its protocol (native,
IRC): join the hub once admitted, give the client a deadline to register,
and leave the hub when the connection ends.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from twisted.internet.interfaces import IDelayedCall
from twisted.python.failure import Failure

from chatservice.chat import events
from chatservice.chat.errors import Refused
from chatservice.chat.model import Session
from chatservice.doors.line import LineProtocol

if TYPE_CHECKING:
    from chatservice.chat.hub import Hub


class MemberProtocol(LineProtocol):
    """A line door's connection that is a member of a hub (``factory.hub``)."""

    session: Session | None = None
    _deadline: IDelayedCall | None = None

    @property
    def hub(self) -> Hub:
        hub: Hub = self.factory.hub  # type: ignore[attr-defined]
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
            return refusal
        return None

    def startDeadline(self, timeout: float) -> None:
        """Call :meth:`deadlinePassed` in ``timeout`` seconds (0: never)."""
        if timeout > 0:
            self._deadline = self.factory.clock.callLater(timeout, self._passed)

    def stopDeadline(self) -> None:
        """The client registered in time."""
        if self._deadline is not None and self._deadline.active():
            self._deadline.cancel()
        self._deadline = None

    def _passed(self) -> None:
        self._deadline = None
        self.deadlinePassed()

    def deadlinePassed(self) -> None:
        """The registration deadline has passed: close if still unregistered."""

    def deliver(self, event: events.Event) -> None:
        """Show an event to the client (the door's own rendering)."""
        raise NotImplementedError

    def disconnect(self, reason: str) -> None:
        """The hub removed this member (kick, ban): close the connection."""
        raise NotImplementedError

    def connectionClosed(self, reason: Failure) -> None:
        self.stopDeadline()
        self.leaveHub(self.lost_reason)

    def endOfInput(self) -> None:
        self.leaveHub("end of input")
        self.close()

    def leaveHub(self, reason: str) -> None:
        """Leave the chat (its rooms hear why), once."""
        if self.session is not None:
            self.hub.disconnect(self.session, reason)
            self.session = None
