"""
The outbox over real loopback TCP sockets: write-through when Twisted holds
nothing, the fallback when its buffers cannot be read, and the send-queue
limit judged on what really waits (a client that reads, only a little
slower than it is written to, is not cut off).
"""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
from typing import Any, cast

from twisted.internet import reactor, task
from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred
from twisted.internet.threads import deferToThread
from twisted.python.failure import Failure
from twisted.trial.unittest import TestCase

from chatservice.conn import outbox
from chatservice.conn.limits import Limits
from chatservice.doors.line import LineFactory, LineProtocol

LOOPBACK = "127.0.0.1"
#: One delivery: a 4 KiB line.
CHUNK = b"x" * 4094 + b"\r\n"
#: Seconds between deliveries.
PERIOD = 0.01
#: The talker's send queue: what may wait beyond Twisted's 64 KiB.
SEND_QUEUE = 512 * 1024


#: A client that reads at a given pace (port, bytes a second, seconds) and
#: prints how much it read.
READER = """
import socket, sys, time
port, rate, seconds = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3])
client = socket.create_connection(("127.0.0.1", port), timeout=10)
start, got = time.monotonic(), 0
try:
    while (elapsed := time.monotonic() - start) < seconds:
        want = int(elapsed * rate) - got
        if want > 0:
            data = client.recv(min(want, 1 << 20))
            if not data:
                break
            got += len(data)
        time.sleep(0.002)
except ConnectionError:
    pass
print(got)
"""


class Talker(LineProtocol):
    """Delivers :data:`CHUNK` every :data:`PERIOD` while connected."""

    factory: TalkerFactory

    def connectionAdmitted(self) -> None:
        # A small kernel buffer, so that Twisted's own buffer fills.
        cast(Any, self.transport).getHandle().setsockopt(
            socket.SOL_SOCKET, socket.SO_SNDBUF, 8192
        )
        self.factory.admitted.append(self)
        self.loop = task.LoopingCall(self.queue, CHUNK)
        self.loop.start(PERIOD)

    def textReceived(self, text: str) -> None:
        self.sendText(text)

    def sendBlocked(self) -> None:
        self.factory.was_blocked = True
        super().sendBlocked()

    def connectionClosed(self, reason: Failure) -> None:
        if self.loop.running:
            self.loop.stop()
        self.factory.closed.callback(self.lost_reason)


class TalkerFactory(LineFactory):
    protocol = Talker
    name = "talker"

    def __init__(self) -> None:
        super().__init__(Limits(max_per_address=0, max_send_queue=SEND_QUEUE), reactor)
        self.admitted: list[Talker] = []
        self.closed: Deferred[str] = Deferred()
        #: Whether a talker's transport filled up (the client fell behind).
        self.was_blocked = False


class OutboxOverTCPTests(TestCase):
    """One talker, one client thread reading at a chosen pace."""

    def listen(self) -> tuple[TalkerFactory, int]:
        factory = TalkerFactory()
        port = reactor.listenTCP(0, factory, interface=LOOPBACK)
        self.addCleanup(port.stopListening)
        return factory, cast(IPv4Address, port.getHost()).port

    @staticmethod
    def read(port: int, rate: float, seconds: float) -> int:
        """
        Read at ``rate`` bytes a second for ``seconds`` from a process of
        its own (so that the reactor does not share it); bytes read.
        """
        result = subprocess.run(
            [sys.executable, "-c", READER, str(port), str(rate), str(seconds)],
            capture_output=True,
            timeout=seconds + 30,
            check=True,
        )
        return int(result.stdout)

    async def test_steadyReaderKept(self) -> None:
        """
        A client that keeps reading, a fifth slower than it is written to,
        falls behind: it is held (the transport's buffer fills) but not cut
        off while less than the send queue really waits for it, though more
        than the send queue is written to it while it is held.
        """
        factory, port = self.listen()
        rate = 0.8 * len(CHUNK) / PERIOD
        got = await deferToThread(self.read, port, rate, 4.0)
        self.assertEqual(await factory.closed, "connection closed")
        self.assertTrue(factory.admitted[0].factory.was_blocked)
        self.assertGreater(got, 1_000_000)

    async def test_nonReaderCut(self) -> None:
        """A client that reads nothing is cut off once the send queue is full."""
        factory, port = self.listen()
        done = threading.Event()

        def connect_and_wait() -> None:
            with socket.create_connection((LOOPBACK, port), timeout=10) as client:
                client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
                done.wait(30)

        waiting = deferToThread(connect_and_wait)
        reason = await factory.closed
        done.set()
        await waiting
        self.assertEqual(reason, "send queue exceeded")

    async def test_writesThroughOnPlainTCP(self) -> None:
        """On Twisted's plain TCP transport the outbox writes to the socket."""
        factory, port = self.listen()
        got = await deferToThread(self.read, port, 10_000_000, 0.2)
        self.assertGreater(got, 0)
        self.assertIsNotNone(factory.admitted[0].outbox._socket)

    async def test_fallbackWithoutBuffers(self) -> None:
        """
        A Twisted whose TCP transport lacks the buffers the outbox reads gets
        no write-through: everything goes through ``transport.write``, and
        arrives the same.
        """

        def cannot(transport: Any) -> bool:
            return False

        self.patch(outbox, "can_read_buffers", cannot)
        factory, port = self.listen()
        got = await deferToThread(self.read, port, 10_000_000, 0.2)
        self.assertGreater(got, 0)
        self.assertIsNone(factory.admitted[0].outbox._socket)
