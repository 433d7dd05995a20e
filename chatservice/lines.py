"""
Line handling shared by every front end: framing, limits, decoding, closing.

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

:class:`LineFactory` counts connections, refuses those past the total and
per-address limits with a clear line, and closes all of them politely when
the service stops.
"""

from __future__ import annotations

import math
import re
import sys
from collections import Counter
from collections.abc import Callable
from typing import Any, ClassVar, Protocol

from twisted.internet import tcp
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

from chatservice.limits import Limits
from chatservice.turns import end_of_turn

#: Prefix of every error line the server sends.
ERROR_PREFIX = "!!! "
#: Prefix of the answer to a command (chat and admin console).
REPLY_PREFIX = "--- "
#: Prefix of an announcement to everyone (broadcast, shutdown).
ANNOUNCEMENT_PREFIX = "*** "


class Authenticator(Protocol):
    """What the front ends need of :class:`chatservice.auth.Authenticator`."""

    def login(
        self, username: str, password: str, address: str | None
    ) -> Deferred[str]: ...


#: Lines that end an echo or uppercase session (any case, surrounding blanks
#: ignored): ``exit`` from the timestamped echo exercise, ``q`` from the
#: client/server basics, ``quit`` for everyone else.
QUIT_WORDS = frozenset({b"exit", b"quit", b"q"})


#: A line that is a quit word, anywhere in a read (a quick test, so that
#: reads without one are answered in one pass).
#: Searched in ``b"\n" + lines``: a literal newline first lets the regex
#: engine skip ahead (about 1.5 µs for 64 lines, against 14 µs for the
#: ``(?m)^...$`` form), and spelt-out cases avoid the slower ``(?i)``.
_QUIT_WORD = (
    rb"[ \t\r\v\f]*(?:[eE][xX][iI][tT]|[qQ](?:[uU][iI][tT])?)[ \t\r\v\f]*(?=\n)"
)
QUIT_LINE = re.compile(rb"\n" + _QUIT_WORD)
#: A line that a plain echo would get wrong: a quit word, or a line ending
#: in a bare ``\n`` (answered with ``\r\n``).  Searched in
#: ``b"\r\n" + lines``, one pass for both tests: after each newline found
#: by the literal prefix, ``(?<!\r\n)`` sees whether a ``\r`` came before it.
NOT_PLAIN_LINE = re.compile(rb"\n(?:(?<!\r\n)|" + _QUIT_WORD + rb")")


def has_quit_line(lines: bytes) -> bool:
    """Whether complete lines (each ending in ``\n``) hold a quit word."""
    return QUIT_LINE.search(b"\n" + lines) is not None


def plain_lines(lines: bytes) -> bool:
    """
    Whether complete lines (each ending in ``\n``) all end in ``\r\n`` and
    none is a quit word: then they can be echoed as they are.
    """
    return NOT_PLAIN_LINE.search(b"\r\n" + lines) is None


#: Reasons to hold a connection's input (bits of :attr:`LineProtocol._held`).
HOLD_BACKPRESSURE = 1
HOLD_LOGIN = 2
HOLD_FLOOD = 4

#: What a Twisted transport buffers before it pauses its producer
#: (``FileDescriptor.bufferSize``), for transports that do not say.
TRANSPORT_BUFFER = 2**16


def crlf(lines: bytes) -> bytes:
    """Complete lines with every ``\n`` ending made ``\r\n``."""
    if lines.count(b"\n") == lines.count(b"\r\n"):
        return lines  # the usual case: nothing to change
    return lines.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def is_quit_word(line: bytes) -> bool:
    """Whether a line asks to end an echo or uppercase session."""
    word = line.strip()
    return len(word) <= 4 and word.lower() in QUIT_WORDS


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


def peer_host(transport: object) -> str | None:
    """
    The IP address of a transport's peer, or ``None`` for UNIX sockets and
    transports that have no host (limits per address do not apply to them).
    """
    get_peer = getattr(transport, "getPeer", None)
    if get_peer is None:
        return None
    host = getattr(get_peer(), "host", None)
    return host if isinstance(host, str) else None


def describe_peer(transport: object) -> str:
    """A short printable name for a transport's peer, for logs and listings."""
    get_peer = getattr(transport, "getPeer", None)
    if get_peer is None:
        return "?"
    return describe_address(get_peer())


def describe_address(address: object) -> str:
    """``127.0.0.1:6666``, ``[::1]:6666`` or ``unix:/path``."""
    host = getattr(address, "host", None)
    port = getattr(address, "port", None)
    if isinstance(host, str):
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    name = getattr(address, "name", None)
    return f"unix:{name.decode() if isinstance(name, bytes) else name or ''}"


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
    #: Replies of the read being handled: they leave in one write at its end.
    _pending: list[bytes] | None = None
    #: Deliveries caused by other connections: they leave in one write at
    #: the end of the reactor turn (:meth:`LineFactory.queueFlush`).
    _outbox: list[bytes] | None = None
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
    #: The transport's buffer is full (the peer does not read fast enough).
    _send_blocked: bool = False
    #: Bytes written since the transport's buffer filled up.
    _queued: int = 0
    #: Flood control: lines the client may send now, and when that was known.
    _tokens: float = 0.0
    _tokens_at: float = 0.0
    #: Flood control: since when the client has been held back without pause.
    _flood_since: float | None = None
    _flood_call: IDelayedCall | None = None
    #: When the unfinished line in the buffer was started.
    _partial_since: float | None = None
    #: Why input is held (a bit per reason, :data:`HOLD_BACKPRESSURE`...):
    #: while any is set, nothing is read or handled.
    _held: int = 0
    #: The client half-closed while input was held: finish once released.
    _input_ended: bool = False
    #: The socket of a plain TCP connection, for :meth:`_send`.
    _socket: Any = None
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
        refusal = self.factory.admit(self)
        if refusal is not None:
            self.log.info(
                "{service}: refused {peer}: {reason}",
                service=self.factory.name,
                peer=self.peer,
                reason=refusal,
            )
            self.close(refusal, error=True)
            return
        self.admitted = True
        if type(self.transport) is tcp.Server:
            # Plain TCP (not TLS, not a test transport): write through.
            self._socket = self.transport.getHandle()
        # The transport pauses us once its write buffer is full, and resumes
        # us when it has drained: we stop reading from a client that does not
        # read, and count what waits for it.
        self.transport.registerProducer(self, True)
        if self.flood_controlled and limits.flood_rate > 0:
            self._tokens = float(limits.flood_burst)
            self._tokens_at = self.factory.clock.seconds()
        self.connectionAdmitted()

    def connectionAdmitted(self) -> None:
        """Called once the connection is within every limit."""

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        # Nothing more can be sent: no deliveries, queued or to come.
        self.closing = True
        self._outbox = None
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
        if (
            self.fast_answers
            and not self.flood_controlled
            and not self._partial
            and data[-1:] == b"\n"
            and len(data) <= self.MAX_LENGTH
            and not (self.paused or self.closing or self._outbox or self._send_blocked)
        ):
            # The usual read of an echo or uppercase client: whole lines,
            # none over the limit (the read is not), nothing waiting before
            # the answer; no flood control.
            reply = self.answerLines(data)
            if reply is not None:
                self.last_input = self.factory.clock.seconds()
                self._partial_since = None
                self._send(reply)
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
        flood_controlled = self.flood_controlled and factory.limits.flood_rate > 0
        if flood_controlled:
            self._refill()
        self._pending = []
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
                    self._pending.append(reply)
                    self._unfinished_after(started=True)
                    return
            if lines is None:
                lines = complete.split(b"\n")[:-1] if complete else []
            for index, line in enumerate(lines):
                if self.closing:
                    return
                if flood_controlled:
                    if self._tokens < 1:
                        self._throttle()
                        if self.closing:
                            return  # cut for flooding: not this line either
                    else:
                        self._tokens -= 1
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

    # Flood control: a token bucket of flood_burst lines, refilled at
    # flood_rate lines per second.  An empty bucket holds input (the client
    # waits, its lines are not lost); holding it for flood_disconnect seconds
    # without a break disconnects.

    def _refill(self) -> None:
        limits = self.factory.limits
        now = self.factory.clock.seconds()
        tokens = self._tokens + (now - self._tokens_at) * limits.flood_rate
        if tokens >= limits.flood_burst:
            tokens = float(limits.flood_burst)
            self._flood_since = None
        self._tokens, self._tokens_at = tokens, now

    def _throttle(self) -> None:
        limits = self.factory.limits
        now = self.factory.clock.seconds()
        if self._flood_since is None:
            self._flood_since = now
            self.log.info(
                "{service}: {peer} sends over {rate:g} lines/s; slowing it down",
                service=self.factory.name,
                peer=self.peer,
                rate=limits.flood_rate,
            )
        elif now - self._flood_since > limits.flood_disconnect:
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
            wait = (1 - self._tokens) / limits.flood_rate
            self._flood_call = self.factory.clock.callLater(wait, self._unthrottle)

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
        if self._pending is not None:
            return  # released within dataReceived, whose loop carries on
        self.dataReceived(b"")
        if self._input_ended and not self._held:
            self._input_ended = False
            self.readConnectionLost()

    # IPushProducer, registered on our own transport: it pauses us while
    # its write buffer is full.

    def pauseProducing(self) -> None:
        # A TCP transport calls this again on every write while its buffer
        # is full: count from the first call only, or nothing ever adds up.
        if not self._send_blocked:
            self._send_blocked = True
            self._queued = 0
        self.holdInput(HOLD_BACKPRESSURE)

    def resumeProducing(self) -> None:
        self._send_blocked = False
        self.releaseInput(HOLD_BACKPRESSURE)

    def stopProducing(self) -> None:
        """The connection is going away; connectionLost cleans up."""

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
        gets the reason as an error line.  A connection gone or closing by
        then is left alone.
        """
        self.holdInput(HOLD_LOGIN)

        def succeeded(account: str) -> None:
            if self.closing or not self.admitted:
                return
            granted(account)
            self.releaseInput(HOLD_LOGIN)

        def failed(failure: Failure) -> None:
            if self.closing or not self.admitted:
                return
            self.sendError(str(failure.value) or "login failed")
            self.releaseInput(HOLD_LOGIN)

        authenticator.login(name, password, address).addCallbacks(succeeded, failed)

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
        self.write(line + self.delimiter)

    def write(self, data: bytes) -> None:
        """Send bytes; within a read, all of them leave in one write."""
        if self._pending is not None:
            self._pending.append(data)
        elif self._outbox is not None:
            self._outbox.append(data)  # after what waits already
        elif self._send_blocked:
            self._write_blocked(data)
        else:
            self._send(data)

    def _send(self, data: bytes) -> None:
        """
        Write through: on a plain TCP connection with nothing buffered, send
        at once and buffer only what the kernel did not take.  Twisted would
        buffer it all until the next reactor turn, watching the socket for
        writability in between (two ``epoll_ctl`` calls and a turn's delay
        per write).
        """
        transport = self.transport
        sock = self._socket
        if (
            sock is not None
            and not transport.dataBuffer  # type: ignore[attr-defined]
            and not transport._tempDataBuffer  # type: ignore[attr-defined]
            and not transport.disconnecting  # type: ignore[attr-defined]
        ):
            try:
                sent = sock.send(data)
            except BlockingIOError:
                sent = 0
            except OSError:
                sent = 0  # Twisted's own write reports the error
            if sent == len(data):
                return
            data = data[sent:]
        transport.write(data)
        if self._send_blocked:
            # This write filled the transport's buffer (a turn's deliveries
            # can be large): what it holds beyond that buffer waits for a
            # client that does not keep up, and counts.
            excess = len(data) - getattr(transport, "bufferSize", TRANSPORT_BUFFER)
            if excess > 0:
                self._queued = excess
                if excess > self.factory.limits.max_send_queue:
                    self._cut_off()

    def _write_blocked(self, data: bytes) -> None:
        """Write to a client that does not keep up, within the send queue."""
        self._queued += len(data)
        if self._queued <= self.factory.limits.max_send_queue:
            self.transport.write(data)
        else:
            self._cut_off()

    def _cut_off(self) -> None:
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

    def queue(self, data: bytes) -> None:
        """
        Send bytes that another connection's read caused (a chat message):
        everything delivered to this connection in one reactor turn, by
        however many reads, leaves in one write at the end of the turn.
        """
        if self._pending is not None:
            self._pending.append(data)
        elif self._outbox is not None:
            self._outbox.append(data)
        elif self._send_blocked:
            # Counted against the send queue at once, not at the turn's end:
            # one turn's reads could otherwise pile up without limit.
            self._write_blocked(data)
        else:
            self._outbox = [data]
            self.factory.queueFlush(self)

    def flushQueued(self) -> None:
        """Write what other connections' reads have queued for this one."""
        queued, self._outbox = self._outbox, None
        if queued:
            self.write(queued[0] if len(queued) == 1 else b"".join(queued))

    def sendText(self, text: str) -> None:
        """Send one line of text, UTF-8 encoded."""
        self.sendLine(text.encode("utf-8"))

    def sendError(self, message: str) -> None:
        """Send one error line."""
        self.sendText(ERROR_PREFIX + message)

    def flush(self) -> None:
        """Write what the current read has queued."""
        pending, self._pending = self._pending, None
        if pending:
            self.write(pending[0] if len(pending) == 1 else b"".join(pending))

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
        self.beforeClose()
        self.closing = True
        if reason is not None:
            self.lost_reason = reason
        if message is not None:
            if error:
                self.sendError(message)
            else:
                self.sendText(message)
        self.flush()
        self.flushQueued()
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
    """Builds one kind of :class:`LineProtocol` and keeps count of them."""

    protocol: type[LineProtocol]  # type: ignore[assignment]
    #: Name of the service in logs ("echo", "upper", "chat", ...).
    name = "line"
    #: What every client hears when the service stops.
    shutdown_message = "Server shutting down. Goodbye."
    #: ListeningService logs where it listens; no "Starting factory" lines.
    noisy = False

    def __init__(
        self, limits: Limits | None = None, clock: IReactorTime | None = None
    ) -> None:
        if clock is None:
            from twisted.internet import reactor

            clock = reactor
        self.limits = limits if limits is not None else Limits()
        self.clock: IReactorTime = clock
        self.connections: set[LineProtocol] = set()
        self._idle_call: IDelayedCall | None = None
        #: Connections with queued deliveries, written at the end of the
        #: reactor turn (:meth:`queueFlush`).
        self.queued: list[LineProtocol] = []
        self._turn = end_of_turn(clock)
        self._per_address: Counter[str] = Counter()
        self._all_closed: list[Deferred[None]] = []

    def _watchIdle(self) -> None:
        """Make sure the idle sweep runs while there are connections."""
        limit = self.limits.idle_timeout
        if limit > 0 and self._idle_call is None:
            self._idle_call = self.clock.callLater(limit, self._sweepIdle)

    def _sweepIdle(self) -> None:
        """
        Close the connections idle for ``idle_timeout``; come back when the
        next one would be, rounded up to a whole tick (a second, or the
        timeout if shorter): a connection may get up to a tick more.
        """
        self._idle_call = None
        limit = self.limits.idle_timeout
        now = self.clock.seconds()
        earliest: float | None = None
        for connection in list(self.connections):
            if connection.closing:
                continue
            due = connection.last_input + limit
            if due <= now:
                connection.timeoutConnection()
            elif earliest is None or due < earliest:
                earliest = due
        if earliest is not None:
            # On a grid of ticks, so that many connections falling due at
            # slightly different times share one sweep.
            tick = min(1.0, limit)
            at = math.ceil(earliest / tick - 1e-9) * tick
            self._idle_call = self.clock.callLater(at - now, self._sweepIdle)

    def queueFlush(self, connection: LineProtocol) -> None:
        """
        Write a connection's queued deliveries at the end of this reactor
        turn.  A message to a busy room then costs each member one write for
        everything that the turn's reads said there, whichever connections
        they came from, and it leaves before the reactor waits again.
        """
        if not self.queued:
            self._turn.soon(self.flushQueued)
        self.queued.append(connection)

    def flushQueued(self) -> None:
        """Write every connection's queued deliveries, one write each."""
        queued, self.queued = self.queued, []
        for connection in queued:
            try:
                connection.flushQueued()
            except Exception:
                # Logged; the other connections still get theirs.
                connection.log.failure(
                    "{service}: writing to {peer}",
                    service=self.name,
                    peer=connection.peer,
                )

    def admit(self, connection: LineProtocol) -> str | None:
        """
        Count a new connection, or say why it is refused: the service is
        full, or its address holds too many connections already.
        """
        limits = self.limits
        if limits.max_clients and len(self.connections) >= limits.max_clients:
            return (
                f"server full ({limits.max_clients} connections); "
                "please try again later"
            )
        host = connection.host
        if host is not None:
            if (
                limits.max_per_address
                and self._per_address[host] >= limits.max_per_address
            ):
                return (
                    f"too many connections from {host} (limit {limits.max_per_address})"
                )
            self._per_address[host] += 1
        self.connections.add(connection)
        self._watchIdle()
        return None

    def release(self, connection: LineProtocol) -> None:
        """Forget a connection that was admitted and is now gone."""
        self.connections.discard(connection)
        host = connection.host
        if host is not None:
            self._per_address[host] -= 1
            if self._per_address[host] <= 0:
                del self._per_address[host]
        if not self.connections:
            if self._idle_call is not None and self._idle_call.active():
                self._idle_call.cancel()
            self._idle_call = None
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
