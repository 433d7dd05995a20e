"""
The web door's admission from TCP accept: an HTTP connection is counted
before it sends a byte, as every door counts its connections.

:class:`WebChannel` is the door's ``twisted.web`` HTTP channel.  When it
is made, its :class:`HTTPVisitor` asks the door's
:class:`~chatservice.doors.web.protocol.WebFactory` for a place (in
total, per address, on the strangers' budget): a connection refused is
answered ``503`` with the reason and closed; one admitted is a stranger
until, upgraded to a WebSocket, it chooses a nickname.  The upgrade hands
its place over to the page's member
(:meth:`~chatservice.conn.factory.ConnectionFactory.handOver`), arrival
time included: the registration deadline (``--nick-timeout``) covers the
HTTP request, the upgrade and the nickname, and what the peer sends
meanwhile does not extend it.  A connection that only fetches the page's
files is a stranger too: closed once the deadline passes (silently if it
is between requests, as a browser expects of a keep-alive connection), or
when the budget needs its place for a newcomer.

HTTP's own timeout (``--line-timeout``) bounds each request as a line is
bounded: counted from the connection, or from the end of the previous
response, to the end of the request's headers; bytes trickled meanwhile
do not restart it (Twisted restarts it on every read).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from twisted.internet.protocol import connectionDone
from twisted.python.failure import Failure
from twisted.web.http import HTTPChannel

from chatservice.chat.administration import ban_terms
from chatservice.chat.errors import Banned
from chatservice.conn.connection import Connection
from chatservice.conn.peers import peer_host

if TYPE_CHECKING:
    from chatservice.doors.web.protocol import WebFactory

#: The status of the answer to a request half sent when the connection is
#: closed: past the deadline, or for any other reason (refused, evicted,
#: shutdown).
_TIMEOUT = b"408 Request Timeout"
_UNAVAILABLE = b"503 Service Unavailable"
_FORBIDDEN = b"403 Forbidden"
#: Requests answered from one read; the one that reaches it is answered and
#: the connection closed.  Browsers do not pipeline requests; a client that
#: sends hundreds in one read, not reading the answers, would otherwise have
#: every answer queued at once (Twisted stops reading from a connection that
#: does not read, but answers all it has read).
MAX_PIPELINED = 8


class HTTPVisitor(Connection):
    """
    The connection policy's view of a web connection before its WebSocket
    has a member: counted, on the strangers' budget, closed at the
    deadline, on eviction and on shutdown.  It has no outbox: what it says
    is one HTTP response, written on the channel's transport.
    """

    factory: WebFactory
    late_message = "no nickname chosen within {timeout:g} s of connecting; closing"

    def __init__(self, channel: WebChannel, factory: WebFactory) -> None:
        self.channel = channel
        self.factory = factory
        #: The connection's transport, kept after the upgrade (when the
        #: channel lets go of it) until the member takes over.
        self.transport = channel.transport
        self._status = _UNAVAILABLE

    def arrive(self) -> bool:
        """Count the connection, or refuse it (answered and closed): admitted?"""
        factory = self.factory
        self.last_input = factory.clock.seconds()
        self.host = peer_host(self.transport)
        try:
            # A banned address is refused before it takes any place (it
            # would evict a stranger from the budget), as the other doors
            # refuse it at accept.
            factory.hub.check_address(self.host)
        except Banned as banned:
            self._status = _FORBIDDEN
            self.close(
                str(banned) + ban_terms(banned.remaining, banned.reason),
                error=True,
                reason="banned",
            )
            return False
        refusal = factory.admit(self)
        if refusal is not None:
            factory.refusals.note(self, refusal)
            self.close(str(refusal), error=True)
            return False
        self.admitted = True
        return True

    def registrationTimedOut(self) -> None:
        self._status = _TIMEOUT
        super().registrationTimedOut()

    def refuse(self, status: bytes, why: str) -> None:
        """Answer the request being read with ``status`` and ``why``; close."""
        self._status = status
        self.close(why, error=True, reason="bad request")

    def close(
        self,
        message: str | None = None,
        *,
        error: bool = False,
        reason: str | None = None,
    ) -> None:
        """
        Close the connection; answer the request it is sending, if any,
        with ``message``; abort it if it has not gone within the grace.
        """
        if self.closing:
            return
        self.closing = True
        if reason is not None:
            self.lost_reason = reason
        if message is not None:
            self.sendFarewell(message, error)
        grace = self.factory.limits.close_grace
        self._abort_call = self.factory.clock.callLater(grace, self._abort)
        if self.channel.transport is not None:
            self.channel.loseConnection()  # lets go of its producer first
        else:
            self.transport.loseConnection()  # upgraded: the WebSocket's now

    def sendFarewell(self, message: str, error: bool) -> None:
        """
        An HTTP error response, when a request is being sent (or nothing
        was admitted); a keep-alive connection between requests is closed
        without one, and an upgraded one belongs to the WebSocket.
        """
        channel = self.channel
        if channel.transport is None or not (channel.receiving or not self.admitted):
            return
        body = message.encode("utf-8") + b"\n"
        channel.transport.write(
            b"HTTP/1.1 " + self._status + b"\r\n"
            b"Content-Type: text/plain; charset=utf-8\r\n"
            b"Content-Length: " + str(len(body)).encode() + b"\r\n"
            b"X-Content-Type-Options: nosniff\r\n"
            b"Connection: close\r\n\r\n" + body
        )

    def connectionLost(self, reason: Failure | None = None) -> None:
        """Gone (before its member took over, if it was upgraded): released."""
        self.closing = True
        if self._abort_call is not None and self._abort_call.active():
            self._abort_call.cancel()
        self._abort_call = None
        if self.admitted:
            self.admitted = False
            self.factory.release(self)


class WebChannel(HTTPChannel):
    """The door's HTTP channel: admitted when made (see the module's description)."""

    #: The admission of this connection.
    visitor: HTTPVisitor
    #: Whether part of a request has been read and not answered yet.
    receiving = False
    #: Requests answered from the read being handled.
    _answered = 0

    def __init__(self, door: WebFactory) -> None:
        super().__init__()
        self.door = door

    def connectionMade(self) -> None:
        super().connectionMade()
        self.visitor = HTTPVisitor(self, self.door)
        self.visitor.arrive()

    def dataReceived(self, data: bytes) -> None:
        if self.visitor.closing:
            return  # refused, evicted or timed out: nothing more is read
        if data:
            self.receiving = True
        self._answered = 0
        super().dataReceived(data)

    def lineLengthExceeded(self, line: bytes) -> None:
        """A request line or header over ``MAX_LENGTH``: a 400 saying so, closed."""
        self.visitor.refuse(
            b"400 Bad Request",
            f"a request line or header is over {self.MAX_LENGTH} bytes",
        )

    def resetTimeout(self) -> None:
        """Reads do not restart the request's timeout (slowloris)."""

    def requestDone(self, request: Any) -> None:
        self.receiving = False  # a pipelined request read next sets it again
        self._answered += 1
        if self._answered >= MAX_PIPELINED:
            self.persistent = False  # answered, then closed: nothing more read
        super().requestDone(request)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        super().connectionLost(reason)
        self.visitor.connectionLost(reason)
