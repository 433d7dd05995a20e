"""
The line client's two protocols, which only frame lines and report to the
:class:`~chatservice.client.session.Session`: :class:`NetworkProtocol` on
the connection to the server (the full screen's connection uses it too)
and :class:`TerminalProtocol` on standard input and output, with
:class:`FlowControl` to pause each side while the other cannot keep up.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from twisted.internet.interfaces import (
    IDelayedCall,
    IHalfCloseableProtocol,
    IHandshakeListener,
    IPushProducer,
    IReactorTime,
)
from twisted.internet.protocol import connectionDone
from twisted.protocols.basic import LineReceiver
from twisted.python.failure import Failure
from zope.interface import implementer

from chatservice.client.exits import EXIT_FAILURE
from chatservice.conn.peers import is_tls
from chatservice.doors.answers import is_quit_word

if TYPE_CHECKING:
    from chatservice.client.session import Session


#: Longest line accepted from the server or from standard input, in bytes.
MAX_LINE_LENGTH = 1 << 20


class Transport(Protocol):
    """What the client uses of a connection's or of stdio's transport."""

    def write(self, data: bytes) -> None: ...
    def loseConnection(self) -> None: ...
    def registerProducer(self, producer: Any, streaming: bool) -> None: ...
    def unregisterProducer(self) -> None: ...
    def pauseProducing(self) -> None: ...
    def resumeProducing(self) -> None: ...


@implementer(IPushProducer)
class FlowControl:
    """
    Lets one side pause and resume the other's reading (the side that
    cannot write fast enough), and nothing more: a transport that goes away
    calls ``stopProducing`` on its producer, but ending the session is the
    :class:`Session`'s decision.
    """

    def __init__(self, target: Transport) -> None:
        self.target = target

    def pauseProducing(self) -> None:
        self.target.pauseProducing()

    def resumeProducing(self) -> None:
        self.target.resumeProducing()

    def stopProducing(self) -> None:
        pass


#: What every line sent to the server ends with.
LINE_END = b"\r\n"

#: Seconds a TLS connection may take to complete its handshake.  A server
#: that speaks plain text (``--tls`` given for a plain port) waits for a
#: line and never answers the client's hello: without a deadline the
#: client would wait for ever, saying nothing.
TLS_HANDSHAKE_TIMEOUT = 10.0


def _strip_cr(line: bytes) -> bytes:
    return line[:-1] if line.endswith(b"\r") else line


def is_quit_line(line: bytes) -> bool:
    """Whether a line typed by the user ends the session (``quit``, ``/quit``)."""
    return is_quit_word(line) or line.lstrip().lower().startswith(b"/quit")


class NetworkSide(Protocol):
    """
    What a :class:`NetworkProtocol` reports to: the :class:`Session`, or
    the full screen's ``chatservice.client.screen.reconnect.Connection``.
    """

    def networkConnected(self, network: NetworkProtocol) -> None: ...
    def serverLine(self, line: bytes) -> None: ...
    def networkLost(self, reason: Failure) -> None: ...
    def finish(self, code: int, message: str | None = None) -> None: ...


@implementer(IHandshakeListener)
class NetworkProtocol(LineReceiver):
    """
    The connection to the server: lines end with ``\\n`` or ``\\r\\n`` on
    the way in and with ``\\r\\n`` on the way out; everything else is the
    :class:`Session`'s business.  Over TLS, with a ``clock``, a handshake
    that has not completed within ``handshake_timeout`` seconds ends the
    client with a message that says what is likely wrong.
    """

    delimiter = b"\n"
    MAX_LENGTH = MAX_LINE_LENGTH
    transport: Transport  # type: ignore[assignment]

    def __init__(
        self,
        session: NetworkSide,
        clock: IReactorTime | None = None,
        handshake_timeout: float = TLS_HANDSHAKE_TIMEOUT,
    ) -> None:
        self.session = session
        self.clock = clock
        self.handshake_timeout = handshake_timeout
        self._handshake_call: IDelayedCall | None = None

    def connectionMade(self) -> None:
        clock = self.clock
        if clock is not None and self.handshake_timeout > 0 and is_tls(self.transport):
            self._handshake_call = clock.callLater(
                self.handshake_timeout, self._handshakeTimedOut
            )
        self.session.networkConnected(self)

    def handshakeCompleted(self) -> None:
        self._cancel_handshake_deadline()

    def _handshakeTimedOut(self) -> None:
        self._handshake_call = None
        self.session.finish(
            EXIT_FAILURE,
            f"no TLS handshake from the server in {self.handshake_timeout:g} s: "
            "is this a TLS port? (for a plain one, leave out --tls)",
        )
        abort = getattr(self.transport, "abortConnection", None)
        if abort is not None:
            abort()
        else:
            self.transport.loseConnection()

    def _cancel_handshake_deadline(self) -> None:
        call, self._handshake_call = self._handshake_call, None
        if call is not None and call.active():
            call.cancel()

    def lineReceived(self, line: bytes) -> None:
        self.session.serverLine(_strip_cr(line))

    def lineLengthExceeded(self, line: bytes) -> None:
        self.clearLineBuffer()
        self.session.finish(
            EXIT_FAILURE, f"the server sent a line over {self.MAX_LENGTH} bytes"
        )

    def sendLine(self, line: bytes) -> None:
        self.transport.write(line + LINE_END)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self._cancel_handshake_deadline()
        self.session.networkLost(reason)


@implementer(IHalfCloseableProtocol)
class TerminalProtocol(LineReceiver):
    """
    Standard input and output (``StandardIO``): lines in, rendered lines
    out.  It is half-closeable, so that the end of the input leaves the
    output open for the replies still to come.
    """

    delimiter = b"\n"
    MAX_LENGTH = MAX_LINE_LENGTH
    transport: Transport  # type: ignore[assignment]
    #: False once standard output can no longer be written.
    writable = True
    #: True once standard input has ended.
    input_ended = False

    def __init__(self, session: Session) -> None:
        self.session = session

    def connectionMade(self) -> None:
        self.session.terminalConnected(self)

    def lineReceived(self, line: bytes) -> None:
        self.session.userLine(_strip_cr(line))

    def lineLengthExceeded(self, line: bytes) -> None:
        self.clearLineBuffer()
        self.session.finish(
            EXIT_FAILURE, f"input line over {self.MAX_LENGTH} bytes; not sent"
        )

    def show(self, text: str) -> None:
        """Print one line."""
        if self.writable:
            self.transport.write(text.encode("utf-8") + b"\n")

    def readConnectionLost(self) -> None:
        """Standard input ended: send its last line, even unterminated."""
        self.input_ended = True
        last = _strip_cr(self.clearLineBuffer())
        if last:
            self.session.userLine(last)
        self.session.inputEnded()

    def writeConnectionLost(self) -> None:
        """Standard output was closed (say, ``| head -1``)."""
        self.writable = False
        self.session.outputClosed()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.writable = False
        self.session.terminalLost()
