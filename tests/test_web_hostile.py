"""
The web door against hostile clients, as ``tests/test_hostile.py`` tries the
native door and ``tests/test_irc_hostile.py`` the IRC door: admission from
TCP accept (per address, the strangers' budget and its eviction), the
registration deadline over the HTTP request, the upgrade and the nickname
(trickled bytes do not extend it), oversized and malformed requests, failed
upgrades, abrupt resets, and a normal page load beside all that.  In
memory (:class:`chatservice.testing.Network`), on a fake clock; nothing
may log a traceback.  Slow readers and floods over the WebSocket are in
the behaviour suite (``tests/test_web_behaviour.py``: send queue, flood
held and cut).
"""

from __future__ import annotations

import random
from typing import Any

from twisted.internet.error import ConnectionLost

from chatservice.conn.limits import Limits
from chatservice.doors.web.gate import MAX_PIPELINED, HTTPVisitor, WebChannel
from chatservice.doors.web.protocol import WebFactory, WebMember, WebSettings
from chatservice.doors.web.site import WebSite, read_static
from chatservice.testing import Connection
from tests.support import logged_failures
from tests.test_web import DoorTestCase, RawHTTP
from tests.web_client import JSONClient, client_factory

#: A request line and headers, without the blank line that ends them.
PARTIAL = "GET / HTTP/1.1\r\nHost: chat.test\r\nX-Slow: "
PAGE_FILES = ("/", "/chat.js", "/chat.css", "/favicon.ico")


class WebHostileTestCase(DoorTestCase):
    """A web door in memory; fails a test that logged a traceback."""

    limits = Limits(max_strangers=8, max_per_address=4, flood_rate=0)
    settings = WebSettings(nick_timeout=20, ping_interval=0)

    def setUp(self) -> None:
        super().setUp()
        self.logged = logged_failures(self)
        self.addCleanup(
            lambda: self.assertEqual(self.logged, [], "a traceback was logged")
        )

    def raw(self, host: str = "192.0.2.1", data: str = "") -> Connection[RawHTTP]:
        """A raw HTTP connection from ``host`` that has sent ``data``."""
        connection = self.network.connect(self.site, RawHTTP(), host=host)
        self.send(connection, data)
        return connection

    def send(self, connection: Connection[RawHTTP], data: str) -> None:
        client = connection.client
        if data and client.transport is not None:
            client.transport.write(data.encode("latin-1"))
        self.network.settle()

    def ws(self, host: str = "192.0.2.1") -> Connection[JSONClient]:
        """A page's WebSocket from ``host``, not pumped yet."""
        protocol = client_factory(self.clock).buildProtocol(None)
        assert isinstance(protocol, JSONClient)
        return self.network.connect(self.site, protocol, host=host)

    def chatter(self, nick: str, host: str = "192.0.2.1") -> Connection[JSONClient]:
        """A page registered as ``nick`` from ``host``."""
        page = self.ws(host)
        self.network.settle()
        self.assertTrue(page.client.opened)
        page.client.send(type="nick", nick=nick)
        self.network.settle()
        self.assertIn(
            {"type": "registered", "nick": nick, "room": "lobby"}, page.client.take()
        )
        return page

    def says(self, page: Connection[JSONClient], text: str) -> list[Any]:
        """``text`` said in the lobby; the messages the page saw of it."""
        page.client.send(type="say", room="lobby", text=text)
        self.network.settle()
        return [m for m in page.client.take() if m.get("type") == "message"]

    def status(self, connection: Connection[RawHTTP]) -> int:
        return connection.client.response()[0]

    def visitors(self) -> list[HTTPVisitor]:
        return [c for c in self.factory.strangers if isinstance(c, HTTPVisitor)]


class AdmissionTests(WebHostileTestCase):
    """HTTP connections are counted from the moment they are accepted."""

    def test_countedBeforeAByte(self) -> None:
        """
        A connection that has sent nothing is a stranger of the door,
        counted against its address, and released when it goes.
        """
        connection = self.raw()
        self.assertEqual(len(self.visitors()), 1)
        self.assertEqual(self.factory.admission.count, 1)
        assert connection.client.transport is not None
        connection.client.transport.loseConnection()
        self.network.settle()
        self.assertEqual(self.factory.strangers, {})
        self.assertEqual(self.factory.admission.count, 0)
        self.assertEqual(self.factory.connections, set())

    def test_perAddressRefusedWith503(self) -> None:
        """
        Past the per-address limit (HTTP connections and WebSockets alike),
        a connection is answered 503 with the reason and closed; another
        address still gets in.
        """
        self.chatter("alice", "192.0.2.1")
        held = [self.raw("192.0.2.1") for _ in range(3)]
        refused = self.raw("192.0.2.1")
        self.assertTrue(refused.closed)
        status, headers, body = refused.client.response()
        self.assertEqual(status, 503)
        self.assertIn(b"too many connections from 192.0.2.1 (limit 4)", body)
        self.assertEqual(headers["connection"], "close")
        self.assertFalse(any(c.closed for c in held))
        other = self.raw("198.51.100.1", "GET / HTTP/1.1\r\nHost: chat.test\r\n\r\n")
        self.assertEqual(self.status(other), 200)

    def test_strangersBudgetEvictsOlder(self) -> None:
        """
        With the budget full of connections trickling request headers, a
        newcomer is admitted and one of the older half is answered 503 and
        closed; the budget holds its size once each turn has ended.
        """
        storm = [self.raw(f"198.51.100.{n}", PARTIAL) for n in range(12)]
        closed = [c for c in storm if c.closed]
        self.assertEqual(len(closed), 4)
        self.assertFalse(any(c.closed for c in storm[8:]))
        for connection in closed:
            status, _, body = connection.client.response()
            self.assertEqual(status, 503)
            self.assertIn(b"too many connections are registering", body)
        self.assertEqual(len(self.factory.strangers), 8)

    def test_freshPageChatsThroughAStorm(self) -> None:
        """
        Waves of trickling HTTP connections from many addresses, each under
        the per-address limit: a fresh page still loads, opens its
        WebSocket, registers and chats, and a registered page is never
        evicted.
        """
        watcher = self.chatter("watcher", "203.0.113.1")
        for wave in range(3):
            for n in range(40):
                self.raw(f"198.51.{wave}.{n // 4}", PARTIAL)
            page = self.raw(f"203.0.113.{10 + wave}")
            self.send(page, "GET / HTTP/1.1\r\nHost: chat.test\r\n\r\n")
            self.assertEqual(self.status(page), 200)
            fresh = self.chatter(f"fresh{wave}", f"203.0.113.{10 + wave}")
            self.assertEqual(len(self.says(fresh, "hello")), 1)
            seen = [m["nick"] for m in watcher.client.take() if m["type"] == "message"]
            self.assertEqual(seen, [f"fresh{wave}"])
            self.assertLessEqual(len(self.factory.strangers), 8)
        self.assertFalse(watcher.closed)

    def test_serverFullStillServesThePage(self) -> None:
        """
        With every chat place taken the page still loads, and its WebSocket
        is told the server is full (the strangers' budget bounds the rest).
        """
        self.hub.set_max_clients(1)
        self.chatter("alice", "192.0.2.1")
        page = self.raw("192.0.2.2", "GET / HTTP/1.1\r\nHost: chat.test\r\n\r\n")
        self.assertEqual(self.status(page), 200)
        refused = self.ws("192.0.2.3")
        self.network.settle()
        (bye,) = [m for m in refused.client.take() if m["type"] == "bye"]
        self.assertIn("server full", bye["text"])
        self.assertTrue(refused.closed)
        self.assertEqual(self.factory.admission.count, 2)  # alice, the page

    def test_shutdownClosesHTTPConnections(self) -> None:
        """
        On shutdown, connections that never upgraded are closed too, and
        the shutdown completes once every connection is gone.
        """
        idle = self.raw("192.0.2.1")
        slow = self.raw("192.0.2.2", PARTIAL)
        page = self.chatter("alice", "192.0.2.3")
        done = self.site.closeAll()
        self.network.settle()
        self.successResultOf(done)
        self.assertTrue(idle.closed and slow.closed and page.closed)
        self.assertEqual(self.status(slow), 503)
        self.assertEqual(idle.client.data, b"")


class DeadlineTests(WebHostileTestCase):
    """The deadline runs from TCP accept to the nickname."""

    def test_trickledHeadersDoNotExtend(self) -> None:
        """
        A request whose headers come a byte a second is answered 408 and
        closed at the deadline, counted from the connection.
        """
        slow = self.raw("192.0.2.1", PARTIAL)
        for _ in range(19):
            self.clock.advance(1)
            self.send(slow, "x")
        self.assertFalse(slow.closed)
        self.clock.advance(1)
        self.network.settle()
        self.assertTrue(slow.closed)
        status, _, body = slow.client.response()
        self.assertEqual(status, 408)
        self.assertIn(b"within 20 s", body)
        self.assertEqual(self.factory.connections, set())

    def test_deadlineCoversUpgradeAndNick(self) -> None:
        """
        A page whose upgrade arrives 15 s after it connected has the 5 s
        left to choose a nickname, not 20 more.
        """
        page = self.ws()
        self.clock.advance(15)
        self.network.settle()
        self.assertTrue(page.client.opened)
        self.clock.advance(4)
        self.network.settle()
        self.assertFalse(page.closed)
        self.clock.advance(1)
        self.network.settle()
        self.assertTrue(page.closed)
        (bye,) = [m for m in page.client.take() if m["type"] == "bye"]
        self.assertIn("no nickname chosen within 20 s", bye["text"])
        self.assertEqual(self.factory.connections, set())

    def test_registeredPageStays(self) -> None:
        """A page that chose its nickname in time is not closed by the deadline."""
        page = self.chatter("alice")
        self.clock.advance(100)
        self.network.settle()
        self.assertFalse(page.closed)
        self.assertEqual(self.factory.strangers, {})

    def test_idleKeepAliveClosedQuietly(self) -> None:
        """
        A keep-alive connection that fetched a file is closed at the
        deadline without a word more (a browser expects it between
        requests): the response is all it received.
        """
        connection = self.raw("192.0.2.1", "GET / HTTP/1.1\r\nHost: chat.test\r\n\r\n")
        answered = connection.client.data
        self.clock.advance(20)
        self.network.settle()
        self.assertTrue(connection.closed)
        self.assertEqual(connection.client.data, answered)

    def test_httpTimeoutNotExtendedWithoutDeadline(self) -> None:
        """
        With no registration deadline, a request must still arrive whole
        within ``--line-timeout`` of the connection: trickled bytes do not
        restart HTTP's timeout.
        """
        self.factory = WebFactory(
            self.hub,
            Limits(line_timeout=60, flood_rate=0),
            self.clock,
            settings=WebSettings(nick_timeout=0, ping_interval=0),
        )
        self.site = WebSite(self.factory)
        slow = self.raw("192.0.2.1", PARTIAL)
        for _ in range(59):
            self.clock.advance(1)
            self.send(slow, "x")
        self.assertFalse(slow.closed)
        self.clock.advance(1)
        self.network.settle()
        self.assertTrue(slow.closed)


class PageLoadTests(WebHostileTestCase):
    """What a browser does, under the default limits."""

    limits = Limits()
    settings = WebSettings(ping_interval=0)

    def test_pageLoadAndWebSocketFromOneAddress(self) -> None:
        """
        A browser's page load (six keep-alive connections, each fetching
        the page's files) and its WebSocket from one address are all
        admitted under the default per-address limit; once the deadline
        has passed the idle HTTP connections are closed and the chat goes on.
        """
        loads = [self.raw("192.0.2.1") for _ in range(6)]
        for connection in loads:
            for path in PAGE_FILES:
                connection.client.data = b""
                self.send(connection, f"GET {path} HTTP/1.1\r\nHost: chat.test\r\n\r\n")
                self.assertIn(self.status(connection), (200, 404))
        page = self.chatter("alice", "192.0.2.1")
        other = self.chatter("bob", "192.0.2.1")
        self.assertEqual(len(self.says(page, "hi")), 1)
        self.clock.advance(self.settings.nick_timeout)
        self.network.settle()
        self.assertTrue(all(c.closed for c in loads))
        self.assertFalse(page.closed or other.closed)
        self.assertEqual(self.factory.admission.count, 2)


class SlowHTTPReaderTests(WebHostileTestCase):
    """A client that asks and asks over HTTP and never reads the answers."""

    def test_pipelinedRequestsNotRead(self) -> None:
        """
        Hundreds of requests pipelined in one read by a client that reads
        nothing: only the first few are answered, then the connection is
        closed, so what waits for the client stays bounded.
        """
        connection = self.raw()
        connection.stop_reading()
        request = "GET /chat.js HTTP/1.1\r\nHost: chat.test\r\n\r\n"
        self.send(connection, request * 500)
        waiting = b"".join(connection.pump.serverIO.stream)
        self.assertEqual(waiting.count(b"HTTP/1.1 200 "), MAX_PIPELINED)
        self.assertTrue(connection.pump.serverIO.disconnecting)
        self.assertLessEqual(
            len(waiting), MAX_PIPELINED * (len(read_static("chat.js")) + 1024)
        )

    def test_fewPipelinedAnswered(self) -> None:
        """A few requests pipelined in one read are all answered, in order."""
        connection = self.raw()
        paths = ("/", "/chat.js", "/chat.css")
        self.send(
            connection,
            "".join(f"GET {p} HTTP/1.1\r\nHost: chat.test\r\n\r\n" for p in paths),
        )
        self.assertEqual(connection.client.data.count(b"HTTP/1.1 200 "), 3)
        self.assertFalse(connection.closed)


class BadRequestTests(WebHostileTestCase):
    """Requests no browser sends: a 400, the connection closed and forgotten."""

    def assertRefused(self, connection: Connection[RawHTTP], status: int) -> None:
        self.assertEqual(self.status(connection), status)
        self.assertTrue(connection.closed)
        self.assertEqual(self.factory.connections, set())
        self.assertEqual(self.factory.admission.count, 0)

    def test_oversizedRequestLine(self) -> None:
        """A request line past HTTP's 16 KiB is refused without being buffered."""
        connection = self.raw(data="GET /" + "a" * 20_000)
        self.assertRefused(connection, 400)

    def test_oversizedHeaders(self) -> None:
        """Headers past 16 KiB in all are refused."""
        headers = "".join(f"X-{n}: {'v' * 1000}\r\n" for n in range(20))
        connection = self.raw(data=f"GET / HTTP/1.1\r\nHost: chat.test\r\n{headers}")
        self.assertRefused(connection, 400)

    def test_tooManyHeaders(self) -> None:
        """More than 500 headers are refused."""
        headers = "".join(f"X-{n}: v\r\n" for n in range(600))
        connection = self.raw(data=f"GET / HTTP/1.1\r\n{headers}\r\n")
        self.assertRefused(connection, 400)

    def test_malformed(self) -> None:
        """A request line that is not HTTP (a TLS hello, junk) is refused."""
        for junk in ("\x16\x03\x01\x02\x00\x01\x00\r\n\r\n", "HELLO\r\n\r\n"):
            self.assertRefused(self.raw(data=junk), 400)

    def test_badUpgrade(self) -> None:
        """
        An upgrade wsproto refuses is answered, saying why, and closed,
        leaving nothing counted once the connection is gone: no key is a
        400, a version other than 13 a 426 naming the version the door
        speaks (RFC 6455, 4.4).
        """
        for extra, expected, version in (
            ("Sec-WebSocket-Version: 13\r\n", 400, None),
            ("Sec-WebSocket-Version: 7\r\nSec-WebSocket-Key: x\r\n", 426, "13"),
        ):
            connection = self.raw(
                data="GET /ws HTTP/1.1\r\nHost: chat.test\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\n{extra}\r\n"
            )
            status, headers, body = connection.client.response()
            self.assertEqual(status, expected)
            self.assertEqual(headers.get("sec-websocket-version"), version)
            self.assertIn(b"WebSocket upgrade refused", body)
            if version is not None:
                self.assertIn(b"version '7' is not spoken here", body)
                self.assertIn(b" 426 Upgrade Required\r\n", connection.client.data)
            self.assertEqual(headers["connection"], "close")
            self.clock.advance(self.limits.close_grace)
            self.network.settle()
            self.assertTrue(connection.closed)
            self.assertEqual(self.factory.connections, set())
            self.assertEqual(self.factory.admission.count, 0)
            self.assertEqual(self.hub.sessions, {})


class ResetTests(WebHostileTestCase):
    """Connections that vanish at any point leave nothing behind."""

    def reset(self, connection: Connection[Any], settle: bool = True) -> None:
        """The peer resets the connection (the server sees ConnectionLost)."""
        connection.pump.serverIO.disconnectReason = ConnectionLost()
        connection.client.transport.abortConnection()
        if settle:
            self.network.settle()

    def assertForgotten(self) -> None:
        self.assertEqual(self.factory.connections, set())
        self.assertEqual(self.factory.strangers, {})
        self.assertEqual(self.factory.admission.count, 0)
        self.assertEqual(self.hub.sessions, {})

    def test_resetDuringRequest(self) -> None:
        """A connection reset in the middle of its request headers is forgotten."""
        connection = self.raw(data=PARTIAL)
        self.assertIsInstance(connection.pump.serverIO.protocol, WebChannel)
        self.reset(connection)
        self.assertForgotten()

    def test_resetBeforeNick(self) -> None:
        """A page reset after its upgrade, before a nickname, is forgotten."""
        page = self.ws()
        self.network.settle()
        self.assertTrue(page.client.opened)
        self.reset(page)
        self.assertForgotten()

    def test_resetWhileWrittenTo(self) -> None:
        """
        A registered page reset while the room talks is forgotten: the room
        hears it quit once, and its nickname is free again.
        """
        alice, bob = (
            self.chatter("alice", "192.0.2.1"),
            self.chatter("bob", "192.0.2.2"),
        )
        alice.client.send(type="say", room="lobby", text="hello")
        self.reset(bob)
        quits = [m for m in alice.client.take() if m["type"] == "quit"]
        self.assertEqual([q["nick"] for q in quits], ["bob"])
        self.assertEqual([s.nick for s in self.hub.sessions], ["alice"])
        self.chatter("bob", "192.0.2.3")


class BanTests(WebHostileTestCase):
    """Banned addresses are refused at TCP accept, as at the other doors."""

    def test_bannedRefusedAtAccept(self) -> None:
        """
        A connection from a banned network is answered ``403`` with the
        ban's terms before it sends a byte, and closed; it takes no place
        (no stranger evicted, nothing counted) and the hub counts the
        refusal; other addresses still get the page.
        """
        self.factory.set_limits(Limits(max_strangers=1))
        waiting = self.raw("192.0.2.1", PARTIAL)
        self.hub.ban("198.51.100.0/24", None, "op", "storming")
        refused_before = self.hub.stats.refused_banned
        banned = self.raw("198.51.100.7")
        self.assertTrue(banned.closed)
        status, _, body = banned.client.response()
        self.assertEqual(status, 403)
        self.assertEqual(body, b"you are banned until unbanned: storming\n")
        self.assertEqual(self.hub.stats.refused_banned, refused_before + 1)
        self.assertFalse(waiting.closed)
        self.assertEqual(self.factory.admission.count, 1)
        page = self.raw("203.0.113.5", "GET / HTTP/1.1\r\nHost: chat.test\r\n\r\n")
        self.assertEqual(page.client.response()[0], 200)


class OldestFirst(random.Random):
    """The eviction's choice among the older half made the oldest, always."""

    def randrange(self, *args: Any, **kwargs: Any) -> int:
        return 0


class HandOverTests(WebHostileTestCase):
    """The upgrade hands the HTTP connection's place to the page's member."""

    def test_placeInLineKept(self) -> None:
        """
        A page that upgrades keeps its place among the strangers, oldest
        first (for its deadline), and, waiting for its nickname, is evicted
        after every stranger that has not upgraded: a storm of HTTP
        connections over the budget evicts them, the page stays (with the
        eviction's choice among the older half made the oldest).
        """
        self.factory.chooser = OldestFirst()
        first = self.raw("198.51.100.1", PARTIAL)
        page = self.ws("198.51.100.2")
        later = [self.raw(f"198.51.100.{n}", PARTIAL) for n in range(3, 9)]
        self.network.settle()
        self.assertTrue(page.client.opened)
        members = [c for c in self.factory.strangers if isinstance(c, WebMember)]
        self.assertEqual(list(self.factory.strangers).index(members[0]), 1)
        self.raw("203.0.113.1")
        self.raw("203.0.113.2")
        self.assertTrue(first.closed and later[0].closed)
        self.assertFalse(page.closed)
        self.assertFalse(any(c.closed for c in later[1:]))
        self.assertEqual(len(self.factory.strangers), 8)
        page.client.send(type="nick", nick="fresh")
        self.network.settle()
        self.assertIn(
            {"type": "registered", "nick": "fresh", "room": "lobby"}, page.client.take()
        )

    def test_upgradeSparedAsANewcomer(self) -> None:
        """
        A page that came first and upgrades a turn later is spared in the
        turn of its upgrade and the next one, as a newcomer: the storm of
        its turn over the budget evicts the silent strangers before it,
        and not the page, though no other stranger is left to evict.
        """
        self.factory.chooser = OldestFirst()
        page = self.ws("198.51.100.1")  # accepted; its upgrade not read yet
        old = [
            self.network.connect(self.site, RawHTTP(), host=f"198.51.100.{n}")
            for n in range(2, 9)
        ]
        self.clock.advance(0)  # the turn of the accepts ends
        page.push()  # the upgrade is read and answered in this turn
        storm = [
            self.network.connect(self.site, RawHTTP(), host=f"198.51.101.{n}")
            for n in range(8)
        ]
        self.clock.advance(0)
        self.network.settle()
        self.assertTrue(all(c.closed for c in old))
        self.assertTrue(page.client.opened)
        self.assertFalse(page.closed)
        self.assertFalse(any(c.closed for c in storm))

    def test_upgradedEvictedLast(self) -> None:
        """
        With only upgraded pages waiting for their nicknames on the budget,
        one page more makes room once they have had the turn of their
        upgrade and the next one (their nicknames may be on the way): one
        of them is evicted, the oldest with the choice made so.
        """
        self.factory.chooser = OldestFirst()
        pages = [self.ws(f"198.51.100.{n}") for n in range(9)]
        self.network.settle()
        self.assertTrue(all(p.client.opened for p in pages))
        self.assertFalse(any(p.closed for p in pages))
        self.assertEqual(len(self.factory.strangers), 9)
        for _ in range(3):
            self.clock.advance(self.factory.recount_delay)
            self.network.settle()
        self.assertTrue(pages[0].closed)
        self.assertFalse(any(p.closed for p in pages[1:]))
        self.assertEqual(len(self.factory.strangers), 8)
