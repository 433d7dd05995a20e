"""
A page's WebSocket on its TCP (or TLS) transport: wsproto's sans-IO state
machine (python-hyper's, ``docs/web.rst``) driven by a small Twisted
protocol with ``__slots__``.

wsproto does everything of RFC 6455: the opening handshake
(:func:`accept`, on the request ``twisted.web`` has read), parsing frames,
unmasking them, checking text is UTF-8, the close handshake, pings and
pongs.  :class:`WebWire` only feeds it what the socket reads, collects a
message's pieces within ``--web-max-message`` (wsproto hands a long frame
over as it arrives, without limit of its own), and hands each whole message
to the page's member (:class:`~chatservice.doors.web.protocol.WebMember`),
which writes everything through its outbox.

The server's messages are framed once for all their recipients
(:func:`frame`): a server's frames are not masked, and a message sent whole
in one frame leaves no state in the connection that frames it, so one
connection of the module frames every event the same for every member.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import h11
from twisted.internet.interfaces import IProtocol
from twisted.internet.protocol import connectionDone
from twisted.python.failure import Failure
from wsproto.connection import Connection, ConnectionState, ConnectionType
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Ping,
    Pong,
    RejectConnection,
    TextMessage,
)
from wsproto.handshake import H11Handshake
from wsproto.utilities import ProtocolError, RemoteProtocolError
from zope.interface import implementer

if TYPE_CHECKING:
    from chatservice.conn.connection import Connection as ConnectionPolicy
    from chatservice.doors.web.protocol import WebFactory, WebMember

#: Frames every server message (see the module's description).
_FRAMER = Connection(ConnectionType.SERVER)

#: A ping (no payload), the same for every member.
PING = bytes(_FRAMER.send(Ping()))

#: Close codes (RFC 6455, 7.4): a message over the size limit.
MESSAGE_TOO_BIG = 1009
#: The answer to an upgrade of a WebSocket version other than 13.
UPGRADE_REQUIRED = 426


def frame(text: str) -> bytes:
    """One WebSocket text message, framed (unmasked: server to client)."""
    return bytes(_FRAMER.send(TextMessage(data=text)))


class UpgradeRefusedError(Exception):
    """A WebSocket upgrade wsproto refuses: the HTTP answer it says."""

    def __init__(
        self, status: int, headers: list[tuple[bytes, bytes]], why: str
    ) -> None:
        super().__init__(why)
        self.status = status
        self.headers = headers
        self.why = why


def accept(
    headers: list[tuple[bytes, bytes]], target: bytes
) -> tuple[Connection, bytes]:
    """
    The opening handshake of a request already read (its headers and
    target): wsproto's connection, open, and the ``101`` answer to write;
    or :class:`UpgradeRefusedError` (no key, a version other than 13...).
    Only the connection is kept: the handshake's objects (h11's parser, the
    request) are not needed once open (memory per client).
    """
    handshake = H11Handshake(ConnectionType.SERVER)
    try:
        handshake.initiate_upgrade_connection(headers, target)
        for _ in handshake.events():
            pass  # the request, checked
        answer = handshake.send(AcceptConnection())
    except RemoteProtocolError as error:
        hint = error.event_hint
        if not isinstance(hint, RejectConnection):
            raise UpgradeRefusedError(400, [], str(error)) from None
        why = str(error)
        if hint.status_code == UPGRADE_REQUIRED:
            # wsproto says "Missing header" for a version it does not speak.
            given = {n.lower(): v for n, v in headers}[b"sec-websocket-version"]
            why = (
                f"WebSocket version {given.decode('latin-1')!r} is not spoken "
                "here: this door speaks 13"
            )
        raise UpgradeRefusedError(hint.status_code, list(hint.headers), why) from None
    except (ProtocolError, h11.ProtocolError) as error:
        raise UpgradeRefusedError(400, [], str(error)) from None
    connection = handshake.connection
    assert connection is not None
    return connection, answer


@implementer(IProtocol)
class WebWire:
    """
    The protocol of an upgraded connection (see the module's description):
    reads frames through wsproto and hands messages to its member.
    """

    __slots__ = ("_parts", "_size", "_ws", "door", "member", "transport", "visitor")

    def __init__(self, door: WebFactory, ws: Connection) -> None:
        self.door = door
        self._ws = ws
        self.transport: Any = None
        #: The page's chat side, made once connected (``makeConnection``).
        self.member: WebMember | None = None
        #: The HTTP connection's admission until the member takes it over
        #: (:mod:`.gate`, ``WebFactory.admit``).
        self.visitor: ConnectionPolicy | None = None
        #: The pieces of a text message being read (``None``: none yet),
        #: and its size so far in bytes.
        self._parts: list[str] | None = None
        self._size = 0

    # IProtocol

    def makeConnection(self, transport: Any) -> None:
        self.transport = transport
        self.connectionMade()

    def connectionMade(self) -> None:
        """Open (the ``101`` is written): the page's member comes in."""
        member = self.member = self.door.buildMember(self)
        member.admitConnection()

    def dataReceived(self, data: bytes) -> None:
        ws = self._ws
        member = self.member
        if member is None or ws.state is ConnectionState.CLOSED:
            return
        ws.receive_data(data)
        for event in ws.events():
            if isinstance(event, (TextMessage, BytesMessage)):
                self._piece(event, member)
            elif isinstance(event, Ping):
                if ws.state is ConnectionState.OPEN:  # none after a close
                    member.outbox.write(bytes(ws.send(event.response())))
            elif isinstance(event, Pong):
                member.awaiting_pong = False
            elif isinstance(event, CloseConnection):
                self._closed(event, member)
            if member.closing:
                break  # nothing more is read from a page being closed

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        if self.member is not None:  # it has the visitor's place by now
            self.member.connectionLost(reason)

    # Reading

    def _piece(self, event: TextMessage | BytesMessage, member: WebMember) -> None:
        """A message, or part of one: whole, to the member (binary: ``None``)."""
        data = event.data
        if isinstance(data, str):
            size = len(data) if data.isascii() else len(data.encode("utf-8"))
        else:
            size = len(data)
        size += self._size
        limit = self.door.settings.max_message
        if size > limit:
            member.closeWebSocket(
                self.closeFrame(MESSAGE_TOO_BIG, f"message over {limit} bytes"),
                "message too big",
            )
            return
        if not event.message_finished:
            if isinstance(data, str):
                if self._parts is None:
                    self._parts = [data]
                else:
                    self._parts.append(data)
            self._size = size
            return
        parts, self._parts, self._size = self._parts, None, 0
        self.door.counters.bytes_in += size
        if not isinstance(data, str):
            member.messageReceived(None)
            return
        if parts is not None:
            parts.append(data)
            data = "".join(parts)
        member.messageReceived(data)

    def _closed(self, event: CloseConnection, member: WebMember) -> None:
        ws = self._ws
        if ws.state is ConnectionState.REMOTE_CLOSING:
            # The page closes: answered with its own code (RFC 6455,
            # 5.5.1), then the TCP connection is closed.
            answer = bytes(ws.send(event.response()))
            member.closeWebSocket(answer, "connection closed")
        elif ws.state is ConnectionState.OPEN:
            # What came could not be parsed (wsproto says so as a close of
            # its own, with the code: 1002, 1007 for text not UTF-8).
            member.closeWebSocket(
                self.closeFrame(event.code, event.reason), "WebSocket protocol error"
            )
        # Else the page answered this side's close: nothing more to do.

    # Writing (through the member's outbox)

    def closeFrame(self, code: int, reason: str | None = None) -> bytes:
        """This side's close frame (nothing once a close was sent)."""
        ws = self._ws
        if ws.state is not ConnectionState.OPEN:
            return b""
        return bytes(ws.send(CloseConnection(code=code, reason=reason or None)))
