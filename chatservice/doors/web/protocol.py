"""
The web door's connections: a page's WebSocket, a member of the hub like
a native or IRC client (``docs/web.rst``).

Two objects per connection.  :class:`~.wire.WebWire` is the WebSocket
protocol on the TCP transport (wsproto's state machine: framing, the
handshake, the close handshake; the message size limit).
:class:`WebMember` is the chat side, on the connection policy every
door shares (:mod:`chatservice.conn`: admission, the outbox and its send
queue, flood control, the idle sweep, closing) and the ``/commands`` of the
native door (:mod:`chatservice.doors.commands`): it reads JSON requests
(:mod:`.messages`) and sends events as JSON, each one framed once for all
its recipients.  :class:`WebFactory` counts the members, pings them (a
peer that does not answer is closed) and is what the page's ``/ws``
resource hands each upgraded connection to.
"""

from __future__ import annotations

import ipaddress
from collections import deque
from dataclasses import dataclass
from typing import Any, ClassVar

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime, ISSLTransport
from twisted.python.failure import Failure
from wsproto.connection import Connection as WebSocketConnection

from chatservice.chat import events
from chatservice.chat.errors import ChatError, NickRequired, NotInRoom, UsageError
from chatservice.chat.hub import Hub
from chatservice.chat.model import Room
from chatservice.chat.names import check_room, fold
from chatservice.conn.admission import Refusal
from chatservice.conn.connection import Authenticator
from chatservice.conn.connection import Connection as ConnectionPolicy
from chatservice.conn.factory import ConnectionFactory
from chatservice.conn.limits import Limits
from chatservice.doors.commands import MAX_HISTORY, ChatCommands
from chatservice.doors.member import HubFactory, HubMember, member_limits
from chatservice.doors.operations import Operations
from chatservice.doors.web import messages
from chatservice.doors.web.messages import BadMessageError, Request
from chatservice.doors.web.wire import PING, WebWire, frame

#: The wire name under which events keep their frames.
WIRE = "websocket"


def frame_event(event: events.Event) -> bytes:
    """An event's messages, framed: made once per event."""
    return b"".join(frame(text) for text in messages.encode(event))


@dataclass(frozen=True)
class WebSettings:
    """What the web door needs beyond the shared limits."""

    #: Seconds a page has to choose a nickname once connected (0: no limit).
    nick_timeout: float = 20.0
    #: Messages of a room replayed to a member who joins it (0: none).
    replay: int = 50
    #: Largest WebSocket message (and frame) read, in bytes: a bigger one
    #: closes the connection (close code 1009).
    max_message: int = 16 * 1024
    #: Seconds between pings; a page that has not answered the last one by
    #: the next is closed (0: no pings).
    ping_interval: float = 30.0
    #: Whether ``/oper`` works over plain HTTP from beyond loopback (off:
    #: only over TLS, or on a door listening on loopback).
    allow_plain_oper: bool = False


class WebMember(ChatCommands, HubMember, ConnectionPolicy):
    """The chat side of one page's WebSocket (see the module's description)."""

    factory: WebFactory
    flood_controlled = True
    door_name: ClassVar[str] = "web"
    #: Whether it was sent a ping it has not answered yet.
    awaiting_pong: bool = False

    def __init__(self, wire: WebWire, factory: WebFactory) -> None:
        self.wire = wire
        self.factory = factory
        self.transport = wire.transport

    #: Requests read and not handled yet (input held), in order; made on
    #: first use (an empty deque is 0.7 KiB: memory per client).
    _inbox: deque[str | None] | None = None

    # Life cycle

    def connectionAdmitted(self) -> None:
        refusal = self.joinHub()
        if refusal is not None:
            self.closeRefused(refusal)
            return
        # On TLS, the handshake was done before the HTTP request was read:
        # backpressure holds input from now on (Connection.sendBlocked).
        self.handshakeCompleted()
        self.send({"type": "hello", "server": "chatservice", "door": "web"})

    late_message = "no nickname chosen within {timeout:g} s; closing"

    def connectionClosed(self, reason: Failure) -> None:
        self.leaveHub(self.lost_reason)

    # The hub's side (Member)

    def deliver(self, event: events.Event) -> None:
        if self.closing:
            return
        self.outbox.deliver(event.encoded(WIRE, frame_event))

    def disconnect(self, reason: str) -> None:
        self.session = None  # the hub has let go of it already
        self.close(f"disconnected: {reason}", error=True)

    # Output

    def send(self, message: dict[str, Any]) -> None:
        """Send one message of the client's own (a reply, an error)."""
        self.outbox.reply(frame(messages.dumps(message)))

    def reply(self, text: str) -> None:
        self.send({"type": "reply", "text": text})

    def sendChatError(self, error: ChatError) -> None:
        self.send(messages.render_error(error))

    def closeRefused(self, error: ChatError) -> None:
        self.farewell_code = type(error).__name__
        self.close(str(error), error=True)

    #: What the last message says the close is (``bye``'s ``code``).
    farewell_code: str = "closing"

    def sendFarewell(self, message: str, error: bool) -> None:
        """
        The last message (none when empty), then the WebSocket's close
        frame, in that order and behind whatever waits in the outbox.
        """
        if message:
            self.send(
                {
                    "type": "bye",
                    "text": message,
                    "error": error,
                    "code": self.farewell_code,
                }
            )
        close_frame = self.__dict__.pop("_close_frame", None)
        if close_frame is None:
            # 4000: a close of this application's own (RFC 6455, 7.4.2); the
            # page reconnects after 1000 (shutdown) and not after 4000.
            close_frame = self.wire.closeFrame(4000 if error else 1000)
        self.outbox.write(close_frame)

    def closeWebSocket(self, close_frame: bytes, reason: str) -> None:
        """
        Close with this close frame and no ``bye`` (the page's own close
        answered, a protocol error, a message too big); ``reason`` is what
        the page's rooms hear.
        """
        if self.closing:
            return
        self._close_frame = close_frame  # an instance entry only until sent
        self.close("", reason=reason)

    # Input

    def messageReceived(self, payload: str | None) -> None:
        """A text message (``None``: a binary one) read from the page."""
        if self.closing:
            return
        self.last_input = self.factory.clock.seconds()
        self.inputCompleted()
        if self._inbox is None:
            self._inbox = deque()
        self._inbox.append(payload)
        self.inputReleased()

    def inputReleased(self) -> None:
        """Handle what was read, one request per flood-control token."""
        flood = self._flood
        if flood is not None:
            flood.refill(self.factory.clock.seconds())
        inbox = self._inbox
        if inbox is None:
            return
        self.outbox.begin_read()
        try:
            while inbox and not (self.paused or self.closing):
                if flood is not None and not flood.take():
                    self.throttle(flood)
                    continue  # held now (or closing): the loop ends
                self.handle(inbox.popleft())
        finally:
            if not inbox:
                del self._inbox  # back to none
            self.outbox.end_read()

    def handle(self, payload: str | None) -> None:
        """Act on one message from the page; a bad one gets an error."""
        if payload is None:
            self.send(
                messages.bad_message(
                    BadMessageError(
                        "binary", "binary messages are not taken; send JSON text"
                    )
                )
            )
            return
        try:
            request = messages.parse(payload)
            self.check_lengths(request)
            self.act(request)
        except BadMessageError as error:
            self.send(messages.bad_message(error))
        except ChatError as error:
            self.sendChatError(error)
        except Exception:
            # A bug, not the page's fault: logged, and the page told.
            self.log.failure("web: handling {payload!r}", payload=payload[:200])
            self.send(
                {
                    "type": "error",
                    "error": "internal-error",
                    "text": "the server could not handle that message (logged)",
                }
            )

    def check_lengths(self, request: Request) -> None:
        """A text field longer than a line may be is refused, as on every door."""
        limit = self.factory.limits.max_line_length
        for name, value in request.fields.items():
            if isinstance(value, str) and len(value.encode("utf-8")) > limit:
                raise BadMessageError(
                    "too-long", f'"{name}" is over {limit} bytes; not sent'
                )

    def act(self, request: Request) -> None:
        session = self.session
        assert session is not None
        hub = self.factory.hub
        kind = request.type
        if kind == "ping":
            self.send({"type": "pong"})
        elif kind == "nick":
            self.chooseNick(request.text("nick"))
        elif kind == "input":
            room = request.fields.get("room")
            if room is not None and session.nick is not None:
                self.switch_to(room)
            self.typed(request.text("text"))
        elif kind == "say":
            self.switch_to(request.text("room"))
            hub.say(
                session,
                request.text("text"),
                action=request.fields.get("action", False),
                notice=request.fields.get("notice", False),
            )
        elif kind == "join":
            self.join_room(request.text("room"))
        elif kind == "part":
            hub.part(session, request.text("room"), request.text("reason"))
        elif kind == "msg":
            hub.whisper(
                session,
                request.text("to"),
                request.text("text"),
                notice=request.fields.get("notice", False),
            )
        elif kind == "topic":
            hub.set_topic(session, request.text("topic"), request.text("room"))
        elif kind == "history":
            count = request.fields.get("count", self.factory.settings.replay or 50)
            count = max(1, min(count, MAX_HISTORY))
            room = self.joined(request.text("room"))
            before = request.fields.get("before")
            if before is None:
                self.replay(room.name, count)
            else:
                self.page_back(room.name, before, count)

    def joined(self, name: str) -> Room:
        """A room this member is in, or :class:`NotInRoom`."""
        assert self.session is not None
        if self.session.nick is None:
            raise NickRequired()
        room = self.session.joined(fold(check_room(name)))
        if room is None:
            raise NotInRoom(check_room(name))
        return room

    def switch_to(self, name: str) -> None:
        """Make a room this member is in its current one (where lines go)."""
        assert self.session is not None
        self.session.current = self.joined(name)

    # What the commands need (ChatCommands)

    def nickChosen(self, nick: str, first: bool) -> None:
        if not first:
            return  # the rename is an event of its own
        hub = self.factory.hub
        self.send({"type": "registered", "nick": nick, "room": hub.default_room})
        self.send_room(hub.room(hub.default_room))
        self.joinReplay(hub.default_room)

    def send_room(self, room: Room) -> None:
        """What the page shows of a room it is in: topic and members."""
        self.send(
            {
                "type": "room",
                "room": room.name,
                "topic": room.topic,
                "members": room.nicks(),
            }
        )

    def do_join(self, args: str, name: str) -> None:
        if not args:
            raise UsageError("usage: /join ROOM")
        self.join_room(args.split()[0])

    def join_room(self, name: str) -> None:
        """Join a room (or make it current): its state, then its history."""
        assert self.session is not None
        already = len(self.session.rooms)
        room = self.factory.hub.join(self.session, name)
        self.send_room(room)
        if len(self.session.rooms) > already:
            self.joinReplay(room.name)

    def do_timestamps(self, args: str, name: str) -> None:
        self.reply("the page shows every message with its time")

    def replay(self, room: str, count: int, footer: bool = False) -> None:
        if count > 0:
            self.send_history(room, self.factory.hub.history(room, count), {})

    def page_back(self, room: str, before: str, count: int) -> None:
        """The messages said before one the page shows (scrolling up)."""
        found = self.factory.hub.history_before(room, before, count)
        self.send_history(room, found, {"before": before, "count": count})

    def send_history(
        self,
        room: str,
        found: Deferred[list[events.RoomMessage]],
        extra: dict[str, Any],
    ) -> None:
        """Send a room's history once read; requests wait for it meanwhile."""

        def arrived(messages_found: list[events.RoomMessage]) -> None:
            history = events.History(room, tuple(messages_found))
            self.send({**messages.render(history)[0], **extra})

        def failed(failure: Failure) -> None:
            self.log.failure("history of #{room}", failure, room=room)
            self.send(
                {
                    "type": "error",
                    "error": "HistoryUnavailable",
                    "text": f"the history of #{room} cannot be read now",
                }
            )

        self.awaitResult(found, arrived, failed)

    def loginFailed(self, message: str) -> None:
        self.send({"type": "error", "error": "LoginFailed", "text": message})

    def do_oper(self, args: str, name: str) -> None:
        if not (self.factory.settings.allow_plain_oper or self.private_channel()):
            raise ChatError(
                "/oper is refused here: this page is plain HTTP from beyond "
                "loopback, and a password would cross the network readable "
                "(use https, or the server's --web-allow-plain-oper)"
            )
        super().do_oper(args, name)

    def private_channel(self) -> bool:
        """Whether no one else can read this connection: TLS, or loopback."""
        if ISSLTransport.providedBy(self.transport):
            return True
        host = self.transport.getHost()
        address = getattr(host, "host", None)
        if not isinstance(address, str):
            return getattr(host, "name", None) is not None  # a UNIX socket
        try:
            return ipaddress.ip_address(address).is_loopback
        except ValueError:
            return False


class WebFactory(HubFactory, ConnectionFactory):
    """The web door's members: counted, swept, pinged, closed on shutdown."""

    name = "web"
    shutdown_message = "Server shutting down. Goodbye."

    def __init__(
        self,
        hub: Hub,
        limits: Limits | None = None,
        clock: IReactorTime | None = None,
        *,
        settings: WebSettings | None = None,
        authenticator: Authenticator | None = None,
        operations: Operations | None = None,
    ) -> None:
        settings = settings if settings is not None else WebSettings()
        super().__init__(member_limits(limits, settings.nick_timeout), clock)
        self.settings = settings
        self.joinChat(hub, authenticator, operations)
        self._ping_call: IDelayedCall | None = None

    def buildWire(self, ws: WebSocketConnection) -> WebWire:
        """The protocol of one upgraded connection, on wsproto's ``ws``."""
        self._watch()
        return WebWire(self, ws)

    def buildMember(self, wire: WebWire) -> WebMember:
        """The chat side of a page's WebSocket, once open."""
        return WebMember(wire, self)

    def admit(self, connection: ConnectionPolicy) -> Refusal | None:
        """
        Count a new connection (an HTTP one: :mod:`.gate`); a page's member
        takes over its HTTP connection's place instead, already counted.
        """
        if isinstance(connection, WebMember):
            wire = connection.wire
            visitor = wire.visitor
            if visitor is not None:
                wire.visitor = None  # no reference left: memory per client
                self.handOver(visitor, connection)
                return None
        return super().admit(connection)

    def _watch(self) -> None:
        interval = self.settings.ping_interval
        if interval > 0 and self._ping_call is None:
            self._ping_call = self.clock.callLater(interval, self._ping)

    def _ping(self) -> None:
        """Close the members that did not answer the last ping; ping the rest."""
        self._ping_call = None
        for member in list(self.connections):
            if not isinstance(member, WebMember) or member.closing:
                # HTTP connections have no WebSocket yet: their deadline
                # closes them (chatservice.doors.web.gate).
                continue
            if member.awaiting_pong:
                member.log.info(
                    "web: {peer} did not answer a ping; closing", peer=member.peer
                )
                member.lost_reason = "no answer to ping"
                member.closing = True
                member.transport.abortConnection()
                continue
            member.awaiting_pong = True
            member.outbox.write(PING)
        if self.connections:
            self._watch()

    def release(self, connection: ConnectionPolicy) -> None:
        super().release(connection)
        if not self.connections and self._ping_call is not None:
            if self._ping_call.active():
                self._ping_call.cancel()
            self._ping_call = None
