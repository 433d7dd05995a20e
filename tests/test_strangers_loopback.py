"""
The strangers' budget over real loopback sockets, from many source
addresses (127.0.x.y, under the per-address limit): connections that
trickle bytes and never register cannot lock fresh clients out of the chat,
the echo service, the IRC door or the web door (whose trickling
connections send part of an HTTP request and never finish it).  Bounded
in count (a few hundred sockets) and time.
"""

from __future__ import annotations

import json
import select
import socket
from typing import Any, cast

from twisted.internet import reactor
from twisted.internet.address import IPv4Address
from twisted.internet.protocol import ServerFactory
from twisted.internet.threads import deferToThread
from twisted.trial.unittest import TestCase
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, Request, TextMessage

from chatservice.backends.local import LocalBackend
from chatservice.chat.hub import Hub
from chatservice.chat.model import ChatConfig
from chatservice.conn.limits import Limits
from chatservice.conn.turns import end_of_turn
from chatservice.doors.echo import EchoFactory
from chatservice.doors.irc.protocol import IRCFactory
from chatservice.doors.line import LineFactory
from chatservice.doors.native.protocol import ChatFactory
from chatservice.doors.web import WebFactory, WebSettings, WebSite

LOOPBACK = "127.0.0.1"
#: Stormers, from this many addresses, each under the per-address limit.
STORMERS = 200
ADDRESSES = 50
#: Seconds any socket waits for the server.
TIMEOUT = 10.0


#: What a trickling web connection sends: part of a request's headers.
PARTIAL_REQUEST = b"GET / HTTP/1.1\r\nHost: chat\r\nX-Slow: "


def trickle(port: int, data: bytes = b"x") -> list[socket.socket]:
    """Connections from 127.0.1.x that send a few bytes and never a line."""
    held = []
    for index in range(STORMERS):
        source = f"127.0.1.{1 + index % ADDRESSES}"
        sock = socket.create_connection(
            (LOOPBACK, port), timeout=TIMEOUT, source_address=(source, 0)
        )
        sock.sendall(data)
        held.append(sock)
    return held


def receive_until(sock: socket.socket, expected: bytes) -> bytes:
    """What the server sent, up to and including ``expected``."""
    data = b""
    while expected not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise AssertionError(f"closed before {expected!r}; got {data!r}")
        data += chunk
    return data


def fresh_chat_client(port: int, nick: str) -> bytes:
    """A client from an address of its own that registers and says hello."""
    with socket.create_connection(
        (LOOPBACK, port), timeout=TIMEOUT, source_address=("127.0.2.1", 0)
    ) as sock:
        sock.sendall(f"{nick}\r\nhello from {nick}\r\n".encode())
        return receive_until(sock, f"<{nick}> hello from {nick}\r\n".encode())


def fresh_echo_client(port: int) -> bytes:
    """A client from an address of its own that sends a line."""
    with socket.create_connection(
        (LOOPBACK, port), timeout=TIMEOUT, source_address=("127.0.2.2", 0)
    ) as sock:
        sock.sendall(b"ping\r\n")
        return receive_until(sock, b"ping\r\n")


def fresh_irc_client(port: int, nick: str) -> bytes:
    """
    An IRC client from an address of its own that registers, joins
    #lobby and says hello; what the server sent, up to its answer to a
    PING sent after the hello (so the hello was read and handled).
    """
    with socket.create_connection(
        (LOOPBACK, port), timeout=TIMEOUT, source_address=("127.0.2.4", 0)
    ) as sock:
        sock.sendall(f"NICK {nick}\r\nUSER {nick} 0 * :Fresh\r\n".encode())
        welcome = receive_until(sock, b" 001 ")
        sock.sendall(
            f"JOIN #lobby\r\nPRIVMSG #lobby :hello from {nick}\r\n"
            "PING :after-hello\r\n".encode()
        )
        return welcome + receive_until(sock, b"after-hello")


def closed(held: list[socket.socket], expected: int) -> int:
    """
    How many of ``held`` the server has closed (what it said before is
    read and dropped: the IRC door greets at once), waiting up to the
    timeout for ``expected`` of them.
    """
    ended: set[socket.socket] = set()
    for _ in range(int(TIMEOUT * 10)):
        ready, _, _ = select.select([s for s in held if s not in ended], [], [], 0.1)
        for sock in ready:
            try:
                if not sock.recv(65536):
                    ended.add(sock)
            except OSError:  # reset
                ended.add(sock)
        if len(ended) >= expected:
            break
    return len(ended)


def fresh_web_client(port: int, nick: str) -> list[Any]:
    """
    A browser from an address of its own: loads the page, opens the
    WebSocket, chooses a nickname and says hello; what the door sent it.
    """
    source = ("127.0.2.3", 0)
    with socket.create_connection(
        (LOOPBACK, port), timeout=TIMEOUT, source_address=source
    ) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: chat\r\nConnection: close\r\n\r\n")
        page = receive_until(sock, b"</html>")
        assert page.startswith(b"HTTP/1.1 200 "), page[:100]
    with socket.create_connection(
        (LOOPBACK, port), timeout=TIMEOUT, source_address=source
    ) as sock:
        ws = WSConnection(ConnectionType.CLIENT)
        sock.sendall(ws.send(Request(host="chat", target="/ws")))
        received: list[Any] = []
        said = False
        while not any(
            m.get("type") == "message" and m.get("nick") == nick for m in received
        ):
            data = sock.recv(65536)
            if not data:
                raise AssertionError(f"closed; received {received}")
            ws.receive_data(data)
            for event in ws.events():
                if isinstance(event, AcceptConnection):
                    sock.sendall(
                        ws.send(TextMessage(json.dumps({"type": "nick", "nick": nick})))
                    )
                elif isinstance(event, TextMessage):
                    received.append(json.loads(event.data))
            if not said and any(m.get("type") == "registered" for m in received):
                said = True
                message = {"type": "say", "room": "lobby", "text": f"hello from {nick}"}
                sock.sendall(ws.send(TextMessage(json.dumps(message))))
        return received


class TrickleStormTests(TestCase):
    """Fresh clients get in while a trickle storm holds connections open."""

    def listen(self, factory: LineFactory | WebSite) -> int:
        # Either a line door's factory or the web door's Site.
        server = cast("ServerFactory[Any]", factory)
        port = reactor.listenTCP(0, server, interface=LOOPBACK)
        self.addCleanup(port.stopListening)
        self.addCleanup(factory.closeAll)
        return cast(IPv4Address, port.getHost()).port

    async def storm(self, port: int, data: bytes = b"x") -> list[socket.socket]:
        held = await deferToThread(trickle, port, data)

        def close_all() -> None:
            for sock in held:
                sock.close()

        self.addCleanup(close_all)
        return held

    async def test_chat(self) -> None:
        """
        With room for 100 registered clients, a strangers' budget of 50 and
        200 trickling connections from 50 addresses, fresh chat clients keep
        registering and chatting, and the server never holds more strangers
        than its budget.
        """
        hub = Hub(
            ChatConfig(max_clients=100),
            clock=reactor.seconds,
            backend=LocalBackend(call_soon=end_of_turn(reactor).soon),
        )
        factory = ChatFactory(
            hub, Limits(max_strangers=50, max_per_address=5, flood_rate=0), reactor
        )
        port = self.listen(factory)
        for wave in range(2):
            await self.storm(port)
            nick = f"fresh{wave}"
            answer = await deferToThread(fresh_chat_client, port, nick)
            self.assertIn(f"--- you are {nick}; you are in #lobby".encode(), answer)
            self.assertLessEqual(len(factory.strangers), 50)

    async def test_echo(self) -> None:
        """The same storm does not lock fresh echo clients out either."""
        factory = EchoFactory(
            Limits(max_clients=100, max_strangers=50, max_per_address=5), reactor
        )
        port = self.listen(factory)
        await self.storm(port)
        answer = await deferToThread(fresh_echo_client, port)
        self.assertEqual(answer, b"ping\r\n")
        self.assertLessEqual(len(factory.strangers), 50)

    async def test_irc(self) -> None:
        """
        The same storm on the IRC door (its connections trickle a byte and
        never send ``NICK``): all but the budget's worth are closed, fresh
        IRC clients keep registering, joining and speaking, a native member
        of #lobby hears them, and the door never holds more strangers than
        its budget.
        """
        hub = Hub(
            ChatConfig(max_clients=100),
            clock=reactor.seconds,
            backend=LocalBackend(call_soon=end_of_turn(reactor).soon),
        )
        limits = Limits(max_strangers=50, max_per_address=5, flood_rate=0)
        door = IRCFactory(hub, limits, reactor)
        port = self.listen(door)
        native_port = self.listen(ChatFactory(hub, limits, reactor))
        listener = socket.create_connection(
            (LOOPBACK, native_port), timeout=TIMEOUT, source_address=("127.0.2.5", 0)
        )
        self.addCleanup(listener.close)
        listener.sendall(b"listener\r\n")
        await deferToThread(receive_until, listener, b"you are listener")
        for wave in range(2):
            held = await self.storm(port)
            ended = await deferToThread(closed, held, STORMERS - 50)
            self.assertGreaterEqual(ended, STORMERS - 50)
            nick = f"fresh{wave}"
            answer = await deferToThread(fresh_irc_client, port, nick)
            self.assertIn(f" 001 {nick} ".encode(), answer)
            heard = await deferToThread(
                receive_until, listener, f"<{nick}> hello from {nick}\r\n".encode()
            )
            self.assertIn(f"#lobby <{nick}> hello from {nick}".encode(), heard)
            self.assertLessEqual(len(door.strangers), 50)

    async def test_web(self) -> None:
        """
        The same storm on the web door, each connection stuck in its HTTP
        request's headers: fresh browsers keep loading the page, opening
        the WebSocket, registering and chatting, and the door never holds
        more strangers than its budget.
        """
        hub = Hub(
            ChatConfig(max_clients=100),
            clock=reactor.seconds,
            backend=LocalBackend(call_soon=end_of_turn(reactor).soon),
        )
        door = WebFactory(
            hub,
            Limits(max_strangers=50, max_per_address=5, flood_rate=0),
            reactor,
            settings=WebSettings(ping_interval=0),
        )
        port = self.listen(WebSite(door))
        for wave in range(2):
            held = await self.storm(port, PARTIAL_REQUEST)
            # All but the budget's worth were closed to make room.
            ended = await deferToThread(closed, held, STORMERS - 50)
            self.assertGreaterEqual(ended, STORMERS - 50)
            nick = f"fresh{wave}"
            received = await deferToThread(fresh_web_client, port, nick)
            self.assertIn(
                {"type": "registered", "nick": nick, "room": "lobby"}, received
            )
            self.assertLessEqual(len(door.strangers), 50)
