"""
The line door base: framing, decoding and closing for every line door
(native chat, admin console, echo, upper), on the connection policy of
:mod:`chatservice.conn` (admission, idle sweep, flood control, outbox).

:class:`LineProtocol` is a :class:`~twisted.protocols.basic.LineReceiver`
that frames input itself: one ``bytes.split`` per read instead of one per
line, every reply a read produces goes out in a single write, and
everything other connections deliver to it in one reactor turn in another.
It keeps the ``LineReceiver`` contract (``lineReceived``,
``lineLengthExceeded``, ``MAX_LENGTH``, pausing) and adds what a server
facing strangers needs:

- ``\\r\\n`` and bare ``\\n`` both end a line (``LineReceiver`` alone only
  knows ``\\r\\n``);
- a line longer than the limit gets an error line and closes the connection,
  and the buffer never holds more than the limit plus one read;
- UTF-8 is decoded per complete line, never per read, so a character split
  across two reads arrives intact; invalid input gets an error line and the
  connection stays usable;
- an idle connection is closed (one timer per service sweeps them all, not
  one per connection: a ``DelayedCall`` each would cost about half a KiB per
  connection, a quarter of the memory budget), and a closing connection
  that does not read its goodbye is aborted after a grace period.

:class:`LineFactory` admits connections (refusing those past the total and
per-address limits with a clear line), sweeps idle ones, writes the turn's
deliveries, and closes all of them politely when the service stops.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, ClassVar, Protocol, TypeVar

from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import (
    IDelayedCall,
    IHalfCloseableProtocol,
    IReactorTime,
)
from twisted.internet.protocol import ServerFactory, connectionDone
from twisted.logger import Logger
from twisted.protocols.basic import LineReceiver
from twisted.python.failure import Failure
from zope.interface import implementer

from chatservice.conn.admission import Admission, Refusal
from chatservice.conn.flood import FloodControl
from chatservice.conn.idle import IdleSweep
from chatservice.conn.limits import Limits
from chatservice.conn.outbox import Outbox, TurnWriter
from chatservice.conn.peers import describe_peer, peer_host

T = TypeVar("T")

#: Prefix of every error line the server sends.
ERROR_PREFIX = "!!! "
#: Prefix of the answer to a command (chat and admin console).
REPLY_PREFIX = "--- "
#: Prefix of an announcement to everyone (broadcast, shutdown).
ANNOUNCEMENT_PREFIX = "*** "


class Avatar(Protocol):
    """What a door needs of a logged-in user (:class:`chatservice.auth.Operator`)."""

    @property
    def name(self) -> str: ...


class Authenticator(Protocol):
    """What the doors need of :class:`chatservice.auth.Authenticator`."""

    def login(
        self, username: str, password: str, address: str | None
    ) -> Deferred[Any]: ...


#: Reasons to hold a connection's input (bits of :attr:`LineProtocol._held`).
HOLD_BACKPRESSURE = 1
#: A result the connection waits for (a login, a nickname claim).
HOLD_WAITING = 2
HOLD_FLOOD = 4


class Transport(Protocol):
    """What the line front ends use of a transport (TCP, UNIX, TLS, tests)."""

    def write(self, data: bytes) -> None: ...
    def loseConnection(self) -> None: ...
    def abortConnection(self) -> None: ...
    def registerProducer(self, producer: Any, streaming: bool) -> None: ...
    def unregisterProducer(self) -> None: ...
    def pauseProducing(self) -> None: ...
    def resumeProducing(self) -> None: ...
    def getPeer(self) -> Any: ...
    def getHost(self) -> Any: ...


@implementer(IHalfCloseableProtocol)
class LineProtocol(LineReceiver):
    """
    The base of every line front end.  Subclasses override
    :meth:`connectionAdmitted`, :meth:`textReceived` (or :meth:`lineReceived`
    for bytes) and, optionally, :meth:`connectionClosed`.
    """

    #: What :meth:`sendLine` ends each line with: ``nc`` and ``telnet``
    #: both show it well.
    delimiter = b"\r\n"
    factory: LineFactory
    transport: Transport  # type: ignore[assignment]
    log: ClassVar[Logger] = Logger()

    _partial: bytes = b""
    #: Everything sent to the client goes through it, in order
    #: (:mod:`chatservice.conn.outbox`).
    outbox: Outbox
    _abort_call: IDelayedCall | None = None
    #: True once the connection was counted by the factory.
    admitted: bool = False
    #: True once :meth:`close` was called: no further input is processed.
    closing: bool = False
    #: Whether :meth:`answerLines` may answer a whole read in one pass.
    fast_answers: ClassVar[bool] = False
    #: Whether flood control applies (the chat and the admin console; the
    #: echo and uppercase services answer only their own client).
    flood_controlled: ClassVar[bool] = False
    #: Why the connection ended, for logs and quit notices.
    lost_reason: str = "connection closed"
    #: Flood control, when it applies and is on.
    _flood: FloodControl | None = None
    _flood_call: IDelayedCall | None = None
    #: When the unfinished line in the buffer was started.
    _partial_since: float | None = None
    #: Why input is held (a bit per reason, :data:`HOLD_BACKPRESSURE`...):
    #: while any is set, nothing is read or handled.
    _held: int = 0
    #: The client half-closed while input was held: finish once released.
    _input_ended: bool = False
    #: When the client last sent anything (the factory's idle sweep reads it).
    last_input: float = 0.0
    #: IP address of the peer, or ``None`` (UNIX socket).
    host: str | None = None

    @property
    def peer(self) -> str:
        """Printable peer name, for logs (made when needed, not stored)."""
        return describe_peer(self.transport)

    # Connection life cycle

    def connectionMade(self) -> None:
        limits = self.factory.limits
        self.MAX_LENGTH = limits.max_line_length
        self.last_input = self.factory.clock.seconds()
        host = peer_host(self.transport)
        # Connections from one address share one string (memory per client).
        self.host = sys.intern(host) if host is not None else None
        self.outbox = Outbox(
            self,
            self.transport,
            self.factory.writer,
            limits.max_send_queue,
            self.factory.sync,
        )
        refusal = self.factory.admit(self)
        if refusal is not None:
            self.log.info(
                "{service}: refused {peer}: {reason}",
                service=self.factory.name,
                peer=self.peer,
                reason=refusal,
            )
            self.close(str(refusal), error=True)
            return
        self.admitted = True
        # The transport tells the outbox when its write buffer is full and
        # when it has drained: we stop reading from a client that does not
        # read, and count what waits for it.
        self.outbox.register(self)
        if self.flood_controlled and limits.flood_rate > 0:
            self._flood = FloodControl(limits, self.factory.clock.seconds())
        self.connectionAdmitted()

    def connectionAdmitted(self) -> None:
        """Called once the connection is within every limit."""

    def connectionLost(self, reason: Failure = connectionDone) -> None:
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

    def connectionClosed(self, reason: Failure) -> None:
        """Called once when an admitted connection is gone, for clean-up."""

    # Input

    def dataReceived(self, data: bytes) -> None:
        """
        Frame every complete line of this read at once and answer them with
        one write.
        """
        outbox = self.outbox
        if (
            self.fast_answers
            and not self.flood_controlled
            and not self._partial
            and data[-1:] == b"\n"
            and len(data) <= self.MAX_LENGTH
            and not (self.paused or self.closing or outbox.queued or outbox.blocked)
        ):
            # The usual read of an echo or uppercase client: whole lines,
            # none over the limit (the read is not), nothing waiting before
            # the answer; no flood control.
            reply = self.answerLines(data)
            if reply is not None:
                self.last_input = self.factory.clock.seconds()
                self._partial_since = None
                outbox.send(reply)
                return
        if self.closing:
            return
        if data:
            self.last_input = self.factory.clock.seconds()
        buffer = self._partial + data if self._partial else data
        end = buffer.rfind(b"\n") + 1
        if end == len(buffer):
            complete, self._partial = buffer, b""
        else:
            complete, self._partial = buffer[:end], buffer[end:]
        factory = self.factory
        flood = self._flood
        flood_controlled = flood is not None
        if flood is not None:
            flood.refill(factory.clock.seconds())
        outbox.begin_read()
        try:
            lines: list[bytes] | None = None
            if complete and self.fast_answers and not (flood_controlled or self.paused):
                reply = None
                # A read no longer than the limit cannot hold a longer line.
                if (
                    len(complete) <= self.MAX_LENGTH
                    or max(map(len, lines := complete.split(b"\n")[:-1]))
                    <= self.MAX_LENGTH
                ):
                    reply = self.answerLines(complete)
                if reply is not None:
                    outbox.write(reply)
                    self._unfinished_after(started=True)
                    return
            if lines is None:
                lines = complete.split(b"\n")[:-1] if complete else []
            for index, line in enumerate(lines):
                if self.closing:
                    return
                if flood is not None and not flood.take():
                    self._throttle(flood)
                    if self.closing:
                        return  # cut for flooding: not this line either
                if self.paused:
                    # Keep what is not handled yet, in order, for later.
                    lines.append(self._partial)
                    self._partial = b"\n".join(lines[index:])
                    return
                if line[-1:] == b"\r":
                    line = line[:-1]
                if len(line) > self.MAX_LENGTH:
                    self.lineLengthExceeded(line)
                    return
                self.lineReceived(line)
            self._unfinished_after(started=bool(lines))
        finally:
            self.flush()

    def answerLines(self, lines: bytes) -> bytes | None:
        """
        The replies to several complete lines at once (each ending in
        ``\n``, none over the limit), computed in one pass by the services
        that can (``fast_answers``); ``None`` when a line needs the
        line-by-line path (a quit word, invalid UTF-8...).
        """
        return None

    def _unfinished_after(self, started: bool) -> None:
        if self._partial and not self.closing:
            self._unfinished(started)
        else:
            self._partial_since = None

    def _unfinished(self, started: bool) -> None:
        """Limit the unfinished line: in size, and in time (slowloris)."""
        # A partial line may end in the \r of its terminator.
        if len(self._partial) > self.MAX_LENGTH + 1:
            self.lineLengthExceeded(self._partial)
            return
        limit = self.factory.limits.line_timeout
        if not limit:
            return
        now = self.factory.clock.seconds()
        if started or self._partial_since is None:
            self._partial_since = now
        elif now - self._partial_since > limit:
            self.close(
                f"line not finished within {limit:g} s; closing connection",
                error=True,
                reason="line not finished in time",
            )

    # Flood control (chatservice.conn.flood): an empty bucket holds input.

    def _throttle(self, flood: FloodControl) -> None:
        limits = self.factory.limits
        now = self.factory.clock.seconds()
        if flood.held(now):
            self.log.info(
                "{service}: {peer} sends over {rate:g} lines/s; slowing it down",
                service=self.factory.name,
                peer=self.peer,
                rate=limits.flood_rate,
            )
        elif flood.too_long(now):
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

    def readConnectionLost(self) -> None:
        """
        The client has sent all it will (it half-closed, like a pipe whose
        input ended): answer its last line, even one without a terminator,
        then close once every reply is written.
        """
        if self.closing:
            return
        if self._held:
            self._input_ended = True
            return
        if self._partial:
            self.dataReceived(b"\n")
        if self._held:
            self._input_ended = True
        elif not self.closing:
            self.endOfInput()

    # Holding input (backpressure, a login being checked, flood control)

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
            return  # released within dataReceived, whose loop carries on
        self.dataReceived(b"")
        if self._input_ended and not self._held:
            self._input_ended = False
            self.readConnectionLost()

    # The producer registered on our own transport (chatservice.conn.outbox
    # says which kind): what it says goes to the outbox, which tells us to
    # hold or release input.

    def pauseProducing(self) -> None:
        self.outbox.paused()

    def resumeProducing(self) -> None:
        self.outbox.drained()

    def sendBlocked(self) -> None:
        self.holdInput(HOLD_BACKPRESSURE)

    def sendResumed(self) -> None:
        self.releaseInput(HOLD_BACKPRESSURE)

    def sendQueueExceeded(self) -> None:
        """Abort a client that has more than the send queue waiting for it."""
        if self.lost_reason != "send queue exceeded":
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

        def succeeded(value: T) -> None:
            if self.closing or not self.admitted:
                return
            done(value)
            if held:
                self.releaseInput(HOLD_WAITING)

        def refused(failure: Failure) -> None:
            if self.closing or not self.admitted:
                return
            failed(failure)
            if held:
                self.releaseInput(HOLD_WAITING)

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
        Check credentials; lines sent meanwhile wait for the answer, in
        order.  On success ``granted(account)`` runs; on failure the client
        gets the reason as an error line.
        """

        def logged_in(avatar: Avatar) -> None:
            granted(avatar.name)

        def failed(failure: Failure) -> None:
            self.sendError(str(failure.value) or "login failed")

        self.awaitResult(
            authenticator.login(name, password, address), logged_in, failed
        )

    def endOfInput(self) -> None:
        """The client will send nothing more; by default, close quietly."""
        self.close()

    def writeConnectionLost(self) -> None:
        """The client can no longer read: nothing left to do but close."""
        self.transport.loseConnection()

    def clearLineBuffer(self) -> bytes:
        partial, self._partial = self._partial, b""
        return partial

    def lineReceived(self, line: bytes) -> None:
        """Decode one line as UTF-8 and pass it on to :meth:`textReceived`."""
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError as error:
            self.invalidEncoding(line, error)
        else:
            self.textReceived(text)

    def textReceived(self, text: str) -> None:
        """Handle one decoded line, without its terminator."""
        raise NotImplementedError

    def invalidEncoding(self, line: bytes, error: UnicodeDecodeError) -> None:
        """Tell the client its line was not UTF-8; the connection stays up."""
        self.sendError(
            f"invalid UTF-8 (byte 0x{line[error.start]:02x} at position "
            f"{error.start}); line ignored, please send UTF-8 text"
        )

    def lineLengthExceeded(self, line: bytes) -> None:
        self._partial = b""
        self.log.info(
            "{service}: {peer} sent a line over {limit} bytes",
            service=self.factory.name,
            peer=self.peer,
            limit=self.MAX_LENGTH,
        )
        self.close(
            f"line too long (limit {self.MAX_LENGTH} bytes); closing connection",
            error=True,
            reason="line too long",
        )

    def timeoutConnection(self) -> None:
        self.close(
            f"idle for {self.factory.limits.idle_timeout:g} s; closing connection",
            error=True,
            reason="idle timeout",
        )

    # Output

    def sendLine(self, line: bytes) -> None:
        """Send a line; within a read, all replies leave in one write."""
        self.outbox.reply(line + self.delimiter)

    def write(self, data: bytes) -> None:
        """Send bytes; within a read, all of them leave in one write."""
        self.outbox.reply(data)

    def queue(self, data: bytes) -> None:
        """
        Send bytes that another connection's read caused (a chat message):
        everything delivered to this connection in one reactor turn, by
        however many reads, leaves in one write at the end of the turn.
        """
        self.outbox.deliver(data)

    def sendText(self, text: str) -> None:
        """Send one line of text, UTF-8 encoded."""
        self.sendLine(text.encode("utf-8"))

    def sendError(self, message: str) -> None:
        """Send one error line."""
        self.sendText(ERROR_PREFIX + message)

    def flush(self) -> None:
        """Write what the current read has queued."""
        self.outbox.end_read()

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
            if error:
                self.sendError(message)
            else:
                self.sendText(message)
        self.outbox.flush()
        # A registered producer would keep the connection open.
        if getattr(self.transport, "producer", None) is not None:
            self.transport.unregisterProducer()
        # Scheduled first: a transport may report the connection lost from
        # within loseConnection, and connectionLost cancels this call.
        grace = self.factory.limits.close_grace
        self._abort_call = self.factory.clock.callLater(grace, self._abort)
        self.transport.loseConnection()

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


class LineFactory(ServerFactory):
    """
    Builds one kind of :class:`LineProtocol` and keeps count of them: the
    connection policy of :mod:`chatservice.conn` for one listening service.
    """

    protocol: type[LineProtocol]  # type: ignore[assignment]
    #: Name of the service in logs ("echo", "upper", "chat", ...).
    name = "line"
    #: What every client hears when the service stops.
    shutdown_message = "Server shutting down. Goodbye."
    #: ListeningService logs where it listens; no "Starting factory" lines.
    noisy = False
    #: What every connection's outbox calls before a reply
    #: (:class:`chatservice.conn.outbox.Outbox`); the chat's backend flush.
    sync: Callable[[], None] | None = None

    def __init__(
        self, limits: Limits | None = None, clock: IReactorTime | None = None
    ) -> None:
        if clock is None:
            from twisted.internet import reactor

            clock = reactor
        self.limits = limits if limits is not None else Limits()
        self.clock: IReactorTime = clock
        self.connections: set[LineProtocol] = set()
        self.admission = Admission(self.limits)
        self.idle = IdleSweep(clock, self.limits.idle_timeout, lambda: self.connections)
        #: Writes the connections' deliveries at the end of the reactor turn.
        self.writer = TurnWriter(clock, self.name)
        self._all_closed: list[Deferred[None]] = []

    def admit(self, connection: LineProtocol) -> Refusal | None:
        """
        Count a new connection, or say why it is refused: the service is
        full, or its address holds too many connections already.
        """
        refusal = self.admission.admit(connection.host)
        if refusal is not None:
            return refusal
        self.connections.add(connection)
        self.idle.watch()
        return None

    def release(self, connection: LineProtocol) -> None:
        """Forget a connection that was admitted and is now gone."""
        self.connections.discard(connection)
        self.admission.release(connection.host)
        if not self.connections:
            self.idle.stop()
            waiting, self._all_closed = self._all_closed, []
            for waiter in waiting:
                waiter.callback(None)

    def closeAll(self, message: str | None = None) -> Deferred[None]:
        """
        Say goodbye to every connection and close it; the result fires once
        all of them are gone (those that do not read are aborted after the
        grace period).
        """
        if not self.connections:
            return succeed(None)
        waiter: Deferred[None] = Deferred()
        self._all_closed.append(waiter)
        for connection in list(self.connections):
            connection.close(message or self.shutdown_message)
        return waiter
