"""
End-to-end tests over real sockets on the loopback interface: the echo and
uppercase services behind a :class:`ListeningService`, real TCP clients, a
raw socket for the half-close, a port already taken, and stopping.

Every test listens on port 0 of 127.0.0.1 (the system picks a free port),
is bounded by ``timeout``, and closes every port and connection it opened.
"""

from __future__ import annotations

import io
import socket
import sys
from typing import Any, cast

from twisted.internet import reactor
from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred, gatherResults
from twisted.internet.endpoints import (
    TCP4ClientEndpoint,
    connectProtocol,
    serverFromString,
)
from twisted.internet.error import ConnectionRefusedError
from twisted.internet.interfaces import ITCPTransport
from twisted.internet.protocol import Protocol, connectionDone
from twisted.internet.threads import deferToThread
from twisted.logger import ILogObserver, LogEvent, globalLogPublisher
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase, TestCase

from chatservice.conn.limits import Limits
from chatservice.doors.echo import EchoFactory
from chatservice.doors.line import LineFactory
from chatservice.doors.upper import UpperFactory, UpperProtocol
from chatservice.service import (
    ListenError,
    ListeningService,
    is_loopback_address,
    report_listen_errors_briefly,
)
from chatservice.tap import is_private_endpoint

LOOPBACK = "127.0.0.1"
ANY_PORT = f"tcp:0:interface={LOOPBACK}"
#: Seconds a raw socket waits for the server.
SOCKET_TIMEOUT = 10.0


class LineClient(Protocol):
    """Collects what the server sends; can wait for some of it."""

    def __init__(self) -> None:
        self.received = b""
        self.lost: Deferred[bytes] = Deferred()
        self._waiting: list[tuple[bytes, Deferred[bytes]]] = []

    def dataReceived(self, data: bytes) -> None:
        self.received += data
        arrived = [(e, w) for e, w in self._waiting if e in self.received]
        # Before the callbacks, which may wait for more (inlineCallbacks).
        self._waiting = [(e, w) for e, w in self._waiting if e not in self.received]
        for _, waiter in arrived:
            waiter.callback(self.received)

    def waitFor(self, expected: bytes) -> Deferred[bytes]:
        """Fires once ``expected`` has arrived."""
        waiter: Deferred[bytes] = Deferred()
        self._waiting.append((expected, waiter))
        self.dataReceived(b"")
        return waiter

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        waiting, self._waiting = self._waiting, []
        for expected, waiter in waiting:
            waiter.errback(
                AssertionError(f"lost before {expected!r}; got {self.received!r}")
            )
        self.lost.callback(self.received)


def half_close_exchange(port: int, payload: bytes) -> bytes:
    """
    With a plain blocking socket: send ``payload``, shut down the sending
    side, and read until the server closes.  Runs in a thread.
    """
    chunks = []
    with socket.create_connection((LOOPBACK, port), timeout=SOCKET_TIMEOUT) as sock:
        sock.sendall(payload)
        sock.shutdown(socket.SHUT_WR)
        while chunk := sock.recv(4096):
            chunks.append(chunk)
    return b"".join(chunks)


class LoopbackTestCase(TestCase):
    """Starts services on loopback and cleans up after them."""

    timeout = 20

    def setUp(self) -> None:
        self.clients: list[LineClient] = []
        # Registered first, so it runs last: after the clients are gone.
        self.services: list[ListeningService] = []
        self.addCleanup(self._stopServices)
        self.addCleanup(self._closeClients)

    def _stopServices(self) -> Deferred[Any]:
        return gatherResults(
            [service.stopService() for service in self.services if service.running]
        )

    def _closeClients(self) -> Deferred[Any]:
        for client in self.clients:
            if client.transport is not None and not client.lost.called:
                client.transport.loseConnection()
        return gatherResults([client.lost for client in self.clients])

    def serve(
        self, factory: LineFactory, description: str = ANY_PORT
    ) -> ListeningService:
        """Start a listening service on loopback."""
        service = ListeningService(
            description, serverFromString(reactor, description), factory
        )
        service.startService()
        self.services.append(service)
        return service

    def port_of(self, service: ListeningService) -> int:
        assert service.port is not None
        address = service.port.getHost()
        assert isinstance(address, IPv4Address)
        return address.port

    async def connect(self, service: ListeningService) -> LineClient:
        client = LineClient()
        endpoint = TCP4ClientEndpoint(
            reactor, LOOPBACK, self.port_of(service), timeout=SOCKET_TIMEOUT
        )
        await connectProtocol(endpoint, client)
        self.clients.append(client)
        return client


class RoundTripTests(LoopbackTestCase):
    """Several clients at once, each with several lines."""

    async def converse(
        self, factory: LineFactory, lines: list[bytes], expected: list[bytes]
    ) -> None:
        """
        Five clients send ``lines`` at once and must get ``expected`` back;
        an ``@`` in either stands for the client's number.
        """
        service = self.serve(factory)
        clients = [await self.connect(service) for _ in range(5)]
        for n, client in enumerate(clients):
            assert client.transport is not None
            for line in lines:
                client.transport.write(line.replace(b"@", str(n).encode()) + b"\r\n")
        answers = [
            b"".join(e.replace(b"@", str(n).encode()) + b"\r\n" for e in expected)
            for n in range(len(clients))
        ]
        await gatherResults(
            [
                client.waitFor(answer)
                for client, answer in zip(clients, answers, strict=True)
            ]
        )
        for client in clients:
            assert client.transport is not None
            client.transport.write(b"quit\r\n")
        for client, answer in zip(clients, answers, strict=True):
            self.assertEqual(await client.lost, answer + b"Goodbye.\r\n")

    async def test_echo(self) -> None:
        """
        Five clients at once each get their own lines back, byte for byte,
        then ``Goodbye.`` and the end of the connection on ``quit``.
        """
        lines = [b"hello from @", b"", b"  blanks  @\t", b"\xff not utf-8 @"]
        await self.converse(EchoFactory(), lines, lines)

    async def test_upper(self) -> None:
        """
        Five clients at once each get their own lines back upper-cased,
        then ``Goodbye.`` on ``quit``.
        """
        lines = ["straße @", "σίσυφος @", "привет @", "ﬁn @"]
        expected = ["STRASSE @", "ΣΊΣΥΦΟΣ @", "ПРИВЕТ @", "FIN @"]
        await self.converse(
            UpperFactory(),
            [line.encode() for line in lines],
            [line.encode() for line in expected],
        )

    async def test_lineInPieces(self) -> None:
        """
        A line written in pieces, split inside a character, arrives whole:
        the server reads the first piece on its own (the client sends it at
        once, ``TCP_NODELAY``, and the test waits until the server has read
        it) and answers only once the rest has come.
        """
        reads: list[bytes] = []
        waiting: list[Deferred[None]] = []

        class RecordingUpper(UpperProtocol):
            def dataReceived(self, data: bytes) -> None:
                reads.append(data)
                super().dataReceived(data)
                for waiter in waiting:
                    waiter.callback(None)
                waiting.clear()

        def read(size: int) -> Deferred[None]:
            """Fires once the server has read ``size`` bytes in all."""
            waiter: Deferred[None] = Deferred()

            def check(_: None) -> Deferred[None] | None:
                if len(b"".join(reads)) >= size:
                    return None
                again: Deferred[None] = Deferred()
                waiting.append(again)
                return again.addCallback(check)

            waiting.append(waiter)
            return waiter.addCallback(check)

        factory = UpperFactory()
        factory.protocol = RecordingUpper
        client = await self.connect(self.serve(factory))
        assert client.transport is not None
        cast(ITCPTransport, client.transport).setTcpNoDelay(True)
        data = "straße\n".encode()
        first = read(5)
        client.transport.write(data[:5])
        await first
        self.assertEqual(b"".join(reads), b"stra\xc3")
        self.assertEqual(client.received, b"")
        client.transport.write(data[5:])
        await client.waitFor(b"STRASSE\r\n")
        self.assertEqual(b"".join(reads), data)
        self.assertGreaterEqual(len(reads), 2)


class HalfCloseTests(LoopbackTestCase):
    """A client that shuts down its sending side still gets its answers."""

    async def test_echoHalfClose(self) -> None:
        """
        The last line, without a terminator, is echoed after the others
        once the client's input ends, and then the server closes.
        """
        service = self.serve(EchoFactory())
        received = await deferToThread(
            half_close_exchange, self.port_of(service), b"one\r\ntwo\nlast"
        )
        self.assertEqual(received, b"one\r\ntwo\r\nlast\r\n")

    async def test_upperHalfClose(self) -> None:
        """The uppercase service answers a half-closed client's last line."""
        service = self.serve(UpperFactory())
        received = await deferToThread(
            half_close_exchange, self.port_of(service), "straße".encode()
        )
        self.assertEqual(received, b"STRASSE\r\n")


class ListeningServiceTests(LoopbackTestCase):
    """Starting and stopping a :class:`ListeningService`."""

    def test_logsAddress(self) -> None:
        """Once listening, the service logs its name and the real address."""
        events: list[LogEvent] = []
        observer = cast(ILogObserver, events.append)
        globalLogPublisher.addObserver(observer)
        self.addCleanup(globalLogPublisher.removeObserver, observer)
        service = self.serve(EchoFactory())
        port = self.port_of(service)
        listening = [e for e in events if "listening" in e.get("log_format", "")]
        self.assertEqual(len(listening), 1)
        self.assertEqual(listening[0]["service"], "echo")
        self.assertEqual(listening[0]["endpoint"], ANY_PORT)
        self.assertEqual(listening[0]["address"], f"{LOOPBACK}:{port}")

    async def test_privateJudgementMatchesTwisted(self) -> None:
        """
        Every TCP endpoint the option check judges private really listens on
        loopback once Twisted has parsed and opened it, and every one it
        refuses does not (or is ambiguous): the judgement follows what
        Twisted does, checked through Twisted itself.
        """
        private = [
            f"tcp:0:interface={LOOPBACK}",
            f"tcp:0:interface=0.0.0.0:interface={LOOPBACK}",
            f"tcp:port=0:interface={LOOPBACK}",
        ]
        public = [
            f"tcp:0:interface={LOOPBACK}:interface=0.0.0.0",
            "tcp:0:0.0.0.0",
            "tcp:0",
        ]
        for description in private + public:
            port = await serverFromString(reactor, description).listen(EchoFactory())
            try:
                listening = is_loopback_address(port.getHost())
            finally:
                await port.stopListening()
            self.assertEqual(is_private_endpoint(description), listening, description)
            self.assertEqual(listening, description in private, description)

    def test_loopbackOnlyRefusesWhatListensBeyond(self) -> None:
        """
        A loopback-only service (a private door) that finds itself
        listening beyond loopback, whatever its endpoint string said, stops
        listening and raises :class:`ListenError` naming the address it got
        and the way out; on loopback it listens as usual.
        """
        description = f"tcp:0:interface={LOOPBACK}:interface=0.0.0.0"
        service = ListeningService(
            description,
            serverFromString(reactor, description),
            EchoFactory(),
            loopback_only=True,
        )
        error = self.assertRaises(ListenError, service.privilegedStartService)
        message = str(error)
        self.assertTrue(message.startswith(f"echo on {description}: "), message)
        self.assertIn("listens on 0.0.0.0:", message)
        self.assertIn("beyond loopback", message)
        self.assertIn("--echo-allow-remote", message)
        self.assertIsNone(service.port)
        fine = ListeningService(
            ANY_PORT,
            serverFromString(reactor, ANY_PORT),
            EchoFactory(),
            loopback_only=True,
        )
        fine.startService()
        self.services.append(fine)
        self.assertIsNotNone(fine.port)

    def test_portTaken(self) -> None:
        """
        Listening on a port that is taken raises :class:`ListenError` at
        once, with a one-line message naming the service and the endpoint.
        """
        taken = self.port_of(self.serve(EchoFactory()))
        description = f"tcp:{taken}:interface={LOOPBACK}"
        second = ListeningService(
            description, serverFromString(reactor, description), UpperFactory()
        )
        error = self.assertRaises(ListenError, second.privilegedStartService)
        message = str(error)
        self.assertTrue(message.startswith(f"upper on {description}: "), message)
        self.assertNotIn("\n", message)
        self.assertIsNone(second.port)

    async def test_stopSaysGoodbye(self) -> None:
        """
        Stopping the service sends every connected client the shutdown
        line and closes it; the port no longer accepts connections.
        """
        service = self.serve(EchoFactory(Limits(close_grace=5)))
        port = self.port_of(service)
        clients = [await self.connect(service) for _ in range(3)]
        for client in clients:
            assert client.transport is not None
            client.transport.write(b"hi\n")
        # Once answered, each connection is surely known to the server.
        await gatherResults([client.waitFor(b"hi\r\n") for client in clients])
        await service.stopService()
        for client in clients:
            self.assertEqual(
                await client.lost, b"hi\r\nServer shutting down. Goodbye.\r\n"
            )
        assert isinstance(service.factory, LineFactory)
        self.assertEqual(service.factory.connections, set())
        endpoint = TCP4ClientEndpoint(reactor, LOOPBACK, port, timeout=SOCKET_TIMEOUT)
        await self.assertFailure(
            connectProtocol(endpoint, LineClient()), ConnectionRefusedError
        )


class ListenErrorReportTests(SynchronousTestCase):
    """How a :class:`ListenError` that ends the process is shown."""

    def test_oneLine(self) -> None:
        """It is printed as one line prefixed with the program's name."""
        stderr = io.StringIO()
        self.patch(sys, "stderr", stderr)
        self.patch(sys, "__stderr__", stderr)
        self.patch(sys, "excepthook", sys.excepthook)
        report_listen_errors_briefly()
        error = ListenError("echo on tcp:5001: Address already in use")
        sys.excepthook(ListenError, error, None)
        self.assertEqual(
            stderr.getvalue(),
            "chatservice: echo on tcp:5001: Address already in use\n",
        )
