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

from typing import Any, ClassVar, Protocol

from twisted.internet.interfaces import IHalfCloseableProtocol
from twisted.protocols.basic import LineReceiver
from zope.interface import implementer

from chatservice.conn.connection import (
    HOLD_BACKPRESSURE,
    HOLD_FLOOD,
    HOLD_WAITING,
    Authenticator,
    Avatar,
    Connection,
)
from chatservice.conn.factory import ConnectionFactory

__all__ = [
    "HOLD_BACKPRESSURE",
    "HOLD_FLOOD",
    "HOLD_WAITING",
    "Authenticator",
    "Avatar",
    "LineFactory",
    "LineProtocol",
]

#: Prefix of every error line the server sends.
ERROR_PREFIX = "!!! "
#: Prefix of the answer to a command (chat and admin console).
REPLY_PREFIX = "--- "
#: Prefix of an announcement to everyone (broadcast, shutdown).
ANNOUNCEMENT_PREFIX = "*** "


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
class LineProtocol(Connection, LineReceiver):
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

    _partial: bytes = b""
    #: Whether :meth:`answerLines` may answer a whole read in one pass.
    fast_answers: ClassVar[bool] = False
    #: Whether a first complete line registers the client (echo, upper:
    #: they have no other way to say they are there for real).
    first_line_registers: ClassVar[bool] = False
    #: When the unfinished line in the buffer was started.
    _partial_since: float | None = None
    #: The client half-closed while input was held: finish once released.
    _input_ended: bool = False

    def connectionMade(self) -> None:
        self.MAX_LENGTH = self.factory.limits.max_line_length
        self.admitConnection()

    # Input

    def dataReceived(self, data: bytes) -> None:
        """
        Frame every complete line of this read at once and answer them with
        one write.
        """
        self.factory.counters.bytes_in += len(data)
        outbox = self.outbox
        if (
            self.fast_answers
            and not self.flood_controlled
            and not self._partial
            and data[-1:] == b"\n"
            and len(data) <= self.MAX_LENGTH
            and not (self.paused or self.closing or outbox.queued or outbox.blocked)
            and not self.stranger
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
        if complete and self.stranger:
            self.inputCompleted()
            if self.first_line_registers and not self.register():
                return
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
                # A line that waits (input held) costs its token when handled.
                if flood is not None and not self.paused and not flood.take():
                    self.throttle(flood)
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

    def inputReleased(self) -> None:
        """Handle the lines read while input was held, then a half-close."""
        self.dataReceived(b"")
        if self._input_ended and not self._held:
            self._input_ended = False
            self.readConnectionLost()

    def loginFailed(self, message: str) -> None:
        """A login was refused: an error line."""
        self.sendError(message)

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

    def sendFarewell(self, message: str, error: bool) -> None:
        if error:
            self.sendError(message)
        else:
            self.sendText(message)

    def flush(self) -> None:
        """Write what the current read has queued."""
        self.outbox.end_read()


class LineFactory(ConnectionFactory):
    """Builds one kind of :class:`LineProtocol` and keeps count of them."""

    protocol: type[LineProtocol]  # type: ignore[assignment]
