"""
The connection policy of one door's connection, whatever its framing: a
mixin for a Twisted ``Protocol`` (the line doors' ``LineReceiver``, a
WebSocket door's protocol); the factory it belongs to is
:mod:`chatservice.conn.factory`'s.

:class:`Connection` admits the connection (in total and per address),
sends everything through its :class:`~chatservice.conn.outbox.Outbox`,
holds input for as many reasons as apply (a client that does not read, a
result being waited for, flood control) and closes politely: a last
message, then an abort if the peer does not read it within the grace
period.  :class:`~chatservice.conn.factory.ConnectionFactory` counts the
connections, sweeps the idle ones, writes the turn's deliveries and closes
them all on shutdown.

A door subclasses both and supplies its framing: what to do once admitted
(:meth:`Connection.connectionAdmitted`), how to say a last message
(:meth:`Connection.sendFarewell`) and how to carry on with input it held
(:meth:`Connection.inputReleased`).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, TypeVar

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall, IHandshakeListener
from twisted.internet.protocol import connectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from chatservice.conn.flood import FloodControl
from chatservice.conn.outbox import Outbox
from chatservice.conn.peers import describe_peer, is_tls, peer_host

if TYPE_CHECKING:
    from chatservice.conn.factory import ConnectionFactory

T = TypeVar("T")

#: Reasons to hold a connection's input (bits of :attr:`Connection._held`).
HOLD_BACKPRESSURE = 1
#: A result the connection waits for (a login, a nickname claim).
HOLD_WAITING = 2
HOLD_FLOOD = 4
#: A history replay being read (the native door's replay on join).
HOLD_REPLAY = 8


class Avatar(Protocol):
    """What a door needs of a logged-in user (:class:`chatservice.auth.Operator`)."""

    @property
    def name(self) -> str: ...


class Authenticator(Protocol):
    """What the doors need of :class:`chatservice.auth.Authenticator`."""

    def login(
        self, username: str, password: str, address: str | None
    ) -> Deferred[Any]: ...


@implementer(IHandshakeListener)
class Connection:
    """
    The policy half of a door's protocol (see the module's description);
    it expects ``transport`` and ``factory`` (a :class:`ConnectionFactory`)
    as any Twisted protocol has them.
    """

    factory: ConnectionFactory
    transport: Any
    log: ClassVar[Logger] = Logger()

    #: Everything sent to the client goes through it, in order.
    outbox: Outbox
    #: Input is held (a ``LineReceiver`` reads this too).
    paused: bool = False
    _abort_call: IDelayedCall | None = None
    #: True once the connection was counted by the factory.
    admitted: bool = False
    #: True once :meth:`close` was called: no further input is processed.
    closing: bool = False
    #: Whether flood control applies (the chat and the admin console; the
    #: echo and uppercase services answer only their own client).
    flood_controlled: ClassVar[bool] = False
    #: Why the connection ended, for logs and quit notices.
    lost_reason: str = "connection closed"
    #: Flood control, when it applies and is on.
    _flood: FloodControl | None = None
    _flood_call: IDelayedCall | None = None
    #: Why input is held (a bit per reason, :data:`HOLD_BACKPRESSURE`...):
    #: while any is set, nothing is read or handled.
    _held: int = 0
    #: When the client last sent anything (the factory's idle sweep reads it).
    last_input: float = 0.0
    #: IP address of the peer, or ``None`` (UNIX socket).
    host: str | None = None
    #: Admitted and not registered yet: on the strangers' budget, with a
    #: deadline (an instance attribute only while true: memory per client).
    stranger: bool = False
    #: On TLS, until the handshake is done (:meth:`handshakeCompleted`):
    #: Twisted's TLS pauses its producer while it buffers what is written
    #: before the handshake (a welcome line), and holding input for that
    #: would stop the handshake itself (an instance attribute only then).
    handshaking: bool = False
    #: The factory's turn (``StrangersBudget.turn``) when a stranger
    #: was accepted, and when it last sent a complete line or message: a
    #: stranger is not evicted before it has had a turn to be read, nor in
    #: the turn it is registering (instance attributes only while a
    #: stranger).
    arrived_turn: int = 0
    line_turn: int = -1
    #: A stranger whose handshake the door has answered (the web door's
    #: WebSocket upgrade) and that waits for its client's next message, a
    #: round trip the line doors do not have: evicted only when no other
    #: stranger can be, and not in the turn of the hand-over or the next one
    #: (instance attributes only while a stranger).
    handshaken: bool = False
    handshake_turn: int = -2

    def admitConnection(self) -> None:
        """
        Call from ``connectionMade``: count the connection, or refuse it with
        the reason; once admitted, :meth:`connectionAdmitted` runs.
        """
        factory = self.factory
        limits = factory.limits
        self.last_input = factory.clock.seconds()
        host = peer_host(self.transport)
        # Connections from one address share one string (memory per client).
        self.host = sys.intern(host) if host is not None else None
        self.outbox = Outbox(
            self,
            self.transport,
            factory.writer,
            limits.max_send_queue,
            factory.sync,
            factory.counters,
            factory.gate,
        )
        refusal = factory.admit(self)
        if refusal is not None:
            factory.refusals.note(self, refusal)
            self.close(str(refusal), error=True)
            return
        self.admitted = True
        if is_tls(self.transport):
            self.handshaking = True
        # The transport tells the outbox when its write buffer is full and
        # when it has drained: we stop reading from a client that does not
        # read, and count what waits for it.
        self.outbox.register(self)
        if self.flood_controlled and limits.flood_rate > 0:
            self._flood = FloodControl(limits, factory.clock.seconds())
        self.connectionAdmitted()

    def connectionAdmitted(self) -> None:
        """Called once the connection is within every limit."""

    def register(self) -> bool:
        """
        The client has registered (a nickname, a login, a first line): it
        leaves the strangers' budget for a registered place.  ``False`` when
        every place is taken: the connection is then being closed.
        """
        if not self.stranger:
            return not self.closing
        factory = self.factory
        factory.budget.leave(self)
        refusal = factory.admission.register()
        if refusal is not None:
            factory.counters.count_refusal(refusal.kind)
            factory.refusals.note(self, refusal)
            self.close(str(refusal), error=True)
            return False
        del self.stranger  # back to the class's False, and no instance entry
        self.__dict__.pop("arrived_turn", None)
        self.__dict__.pop("line_turn", None)
        self.__dict__.pop("handshaken", None)
        self.__dict__.pop("handshake_turn", None)
        return True

    def inputCompleted(self) -> None:
        """
        A stranger's complete line (or message) was read: it may be
        registering, so it is not evicted in this turn.  Only this turn:
        what it sends cannot buy it a longer stay.
        """
        if self.stranger:
            self.factory.budget.spoke(self)

    #: What a connection not registered in time is told (``{timeout}``: the
    #: deadline in seconds).
    late_message: ClassVar[str] = "not registered within {timeout:g} s; closing"

    def registrationTimedOut(self) -> None:
        """The registration deadline passed: close, saying why."""
        timeout = self.factory.limits.registration_timeout
        self.factory.counters.registration_timeouts += 1
        self.close(
            self.late_message.format(timeout=timeout),
            error=True,
            reason="registration timeout",
        )

    def evicted(self) -> None:
        """Closed to make room for a newcomer on the strangers' budget."""
        self.close(
            "too many connections are registering; closing one of those "
            "that waited longest (yours): please connect again",
            error=True,
            reason="evicted",
        )

    def connectionClosed(self, reason: Failure) -> None:
        """Called once when an admitted connection is gone, for clean-up."""

    def sendFarewell(self, message: str, error: bool) -> None:
        """Send the last message :meth:`close` was given (an error or not)."""
        raise NotImplementedError

    def inputReleased(self) -> None:
        """Input is no longer held: carry on with what was read meanwhile."""

    @property
    def peer(self) -> str:
        """Printable peer name, for logs (made when needed, not stored)."""
        return describe_peer(self.transport)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        """The connection is gone: cancel its timers, let the factory forget it."""
        # Nothing more can be sent: no deliveries, queued or to come.
        self.closing = True
        self.outbox.discard()
        for call in (self._abort_call, self._flood_call):
            if call is not None and call.active():
                call.cancel()
        self._abort_call = self._flood_call = None
        if self.admitted:
            self.admitted = False
            self.connectionClosed(reason)
            self.factory.release(self)

    def throttle(self, flood: FloodControl) -> None:
        """The client has no token left: hold its input, or cut a long flood."""
        limits = self.factory.limits
        now = self.factory.clock.seconds()
        if flood.held(now):
            self.factory.counters.flood_holds += 1
            self.log.info(
                "{service}: {peer} sends over {rate:g} lines/s; slowing it down",
                service=self.factory.name,
                peer=self.peer,
                rate=limits.flood_rate,
            )
        elif flood.too_long(now):
            self.factory.counters.flood_disconnects += 1
            self.log.info(
                "{service}: {peer} kept flooding for {seconds:g} s; disconnecting",
                service=self.factory.name,
                peer=self.peer,
                seconds=limits.flood_disconnect,
            )
            self.close(
                f"flooding: more than {limits.flood_rate:g} lines/s for "
                f"{limits.flood_disconnect:g} s; closing connection",
                error=True,
                reason="flooding",
            )
            return
        self.holdInput(HOLD_FLOOD)
        if self._flood_call is None:  # more input while held: one timer
            self._flood_call = self.factory.clock.callLater(
                flood.wait(), self._unthrottle
            )

    def _unthrottle(self) -> None:
        self._flood_call = None
        self.releaseInput(HOLD_FLOOD)

    def holdInput(self, reason: int) -> None:
        """
        Stop reading and handling lines until :meth:`releaseInput` for every
        reason; lines already read wait, in order.
        """
        if not self._held:
            self.paused = True
            self.transport.pauseProducing()
        self._held |= reason

    def releaseInput(self, reason: int) -> None:
        """Lift one reason to hold input; with none left, carry on."""
        if not self._held & reason:
            return
        self._held &= ~reason
        if self._held or self.closing:
            return
        self.paused = False
        self.transport.resumeProducing()
        if self.outbox.in_read():
            return  # released while input is being handled, which carries on
        self.inputReleased()

    def pauseProducing(self) -> None:
        self.outbox.paused()

    def resumeProducing(self) -> None:
        self.outbox.drained()

    def sendBlocked(self) -> None:
        if self.handshaking:
            return  # what waits is the handshake, not the client's reading
        self.holdInput(HOLD_BACKPRESSURE)

    def handshakeCompleted(self) -> None:
        """The TLS handshake is done: backpressure holds input again."""
        if self.handshaking:
            del self.handshaking

    def sendResumed(self) -> None:
        self.releaseInput(HOLD_BACKPRESSURE)

    def sendQueueExceeded(self) -> None:
        """Abort a client that has more than the send queue waiting for it."""
        if self.lost_reason != "send queue exceeded":
            self.factory.counters.send_queue_cutoffs += 1
            self.log.info(
                "{service}: {peer} does not read: over {limit} bytes wait for "
                "it; disconnecting",
                service=self.factory.name,
                peer=self.peer,
                limit=self.factory.limits.max_send_queue,
            )
            # loseConnection would wait for the peer to read everything.
            self.lost_reason = "send queue exceeded"
            self.closing = True
            self.transport.abortConnection()

    def stopProducing(self) -> None:
        """The connection is going away; connectionLost cleans up."""

    def awaitResult(
        self,
        result: Deferred[T],
        done: Callable[[T], None],
        failed: Callable[[Failure], None],
    ) -> None:
        """
        Act on a result that may take a while (a login, a nickname claim
        against a shared backend): lines the client sends meanwhile wait for
        it, in order.  A result already there is acted on at once.  A
        connection gone or closing by then is left alone.
        """
        held = False

        def act(handler: Callable[[Any], None], outcome: object) -> None:
            if self.closing or not self.admitted:
                return
            try:
                handler(outcome)
            except Exception:
                self.log.failure(
                    "{service}: acting on {outcome!r}",
                    service=self.factory.name,
                    outcome=outcome,
                )
            if held:  # whatever happened, input goes on
                self.releaseInput(HOLD_WAITING)

        def succeeded(value: T) -> None:
            act(done, value)

        def refused(failure: Failure) -> None:
            act(failed, failure)

        result.addCallbacks(succeeded, refused)
        if not result.called:
            held = True
            self.holdInput(HOLD_WAITING)

    def checkLogin(
        self,
        authenticator: Authenticator,
        name: str,
        password: str,
        address: str | None,
        granted: Callable[[str], None],
    ) -> None:
        """
        Check credentials; what the client sends meanwhile waits for the
        answer, in order.  On success ``granted(account)`` runs; on failure
        :meth:`loginFailed` tells the client why.
        """

        def logged_in(avatar: Avatar) -> None:
            granted(avatar.name)

        def failed(failure: Failure) -> None:
            self.loginFailed(str(failure.value) or "login failed")

        self.awaitResult(
            authenticator.login(name, password, address), logged_in, failed
        )

    def loginFailed(self, message: str) -> None:
        """Tell the client its login was refused (the door's own way)."""
        raise NotImplementedError

    def timeoutConnection(self) -> None:
        self.factory.counters.idle_timeouts += 1
        self.close(
            f"idle for {self.factory.limits.idle_timeout:g} s; closing connection",
            error=True,
            reason="idle timeout",
        )

    def close(
        self,
        message: str | None = None,
        *,
        error: bool = False,
        reason: str | None = None,
    ) -> None:
        """
        Send a last line, close once it is written, and abort the connection
        if the peer has not read it within the grace period.  ``reason``
        says why in logs and quit notices.
        """
        if self.closing:
            return
        if self.outbox.sync is not None:
            # While it can still be delivered to: what was said before it
            # was closed is for it too.
            self.outbox.sync()
        self.beforeClose()
        self.closing = True
        if reason is not None:
            self.lost_reason = reason
        if message is not None:
            self.sendFarewell(message, error)
        self.outbox.flush()
        # A registered producer would keep the connection open.
        if getattr(self.transport, "producer", None) is not None:
            self.transport.unregisterProducer()
        # Scheduled first: a transport may report the connection lost from
        # within loseConnection, and connectionLost cancels this call.
        grace = self.factory.limits.close_grace
        self._abort_call = self.factory.clock.callLater(grace, self._abort)
        # Once what waits for the history's commits is written.
        self.outbox.when_written(self.transport.loseConnection)

    def beforeClose(self) -> None:
        """Called once by :meth:`close`, before anything else it does."""

    def _abort(self) -> None:
        self._abort_call = None
        self.log.info(
            "{service}: {peer} did not read its last line; aborting",
            service=self.factory.name,
            peer=self.peer,
        )
        self.transport.abortConnection()
