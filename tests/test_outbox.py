"""
Tests of :mod:`chatservice.conn.outbox`: the order everything sent to one
connection keeps, the end-of-turn writes, and the send-queue limit, on an
in-memory transport (the write-through on plain TCP is exercised over real
sockets by ``tests/test_stress.py`` and ``tests/test_hostile.py``).
"""

from __future__ import annotations

from twisted.internet import tcp
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase

from chatservice.conn import outbox as outbox_module
from chatservice.conn.outbox import Outbox, TurnWriter


class Owner:
    """Records what an outbox tells its connection."""

    def __init__(self) -> None:
        self.said: list[str] = []

    def sendBlocked(self) -> None:
        self.said.append("blocked")

    def sendResumed(self) -> None:
        self.said.append("resumed")

    def sendQueueExceeded(self) -> None:
        self.said.append("exceeded")


class OutboxTests(SynchronousTestCase):
    """One outbox on a StringTransport (a streaming producer's transport)."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.transport = StringTransport()
        self.owner = Owner()
        self.synced: list[bytes] = []
        self.outbox = Outbox(
            self.owner,
            self.transport,
            TurnWriter(self.clock, "test"),
            max_send_queue=100,
            sync=lambda: self.synced.append(self.transport.value()),
        )
        self.outbox.register(self)

    def pauseProducing(self) -> None:
        self.outbox.paused()

    def resumeProducing(self) -> None:
        self.outbox.drained()

    def stopProducing(self) -> None:
        pass

    def test_registersStreaming(self) -> None:
        """Anything but plain TCP gets the connection as a streaming producer."""
        self.assertIs(self.transport.producer, self)
        self.assertTrue(self.transport.streaming)

    def test_plainTcpFound(self) -> None:
        """
        This Twisted's plain TCP server connection class is the one the
        write-through is for (the check at import found it).
        """
        self.assertIs(outbox_module.PLAIN_TCP, tcp.Server)

    def test_noPlainTcpFallsBack(self) -> None:
        """
        A Twisted whose ``tcp.Server`` is missing or no longer what the
        write-through needs makes no connection write through: the check
        gives ``None``, and a transport of the class it would have written
        through then gets no socket to write to (streaming either way).
        """
        self.patch(tcp, "Server", None)
        self.assertIsNone(outbox_module.plain_tcp_transport())
        self.patch(tcp, "Server", StringTransport)
        self.assertIsNone(outbox_module.plain_tcp_transport())

        class PlainTCP(StringTransport):
            dataBuffer = b""
            offset = 0
            _tempDataLen = 0

            def getHandle(self) -> object:
                return "socket"

        for plain, socket in ((PlainTCP, "socket"), (None, None)):
            self.patch(outbox_module, "PLAIN_TCP", plain)
            transport = PlainTCP()
            outbox = Outbox(self.owner, transport, TurnWriter(self.clock, "t"), 100)
            outbox.register(self)
            self.assertIs(transport.producer, self)
            self.assertTrue(transport.streaming)
            self.assertEqual(outbox._socket, socket)

    def test_syncBeforeReply(self) -> None:
        """
        A reply first gives the backend its chance to deliver what it holds
        (``sync``); a delivery does not (it comes from the backend).
        """
        self.outbox.deliver(b"delivery\r\n")
        self.assertEqual(self.synced, [])
        self.outbox.reply(b"reply\r\n")
        self.assertEqual(self.synced, [b""])

    def test_replyBehindDeliveries(self) -> None:
        """
        A reply sent while deliveries wait for the end of the turn goes out
        behind them, in the same write.
        """
        self.outbox.deliver(b"one\r\n")
        self.outbox.deliver(b"two\r\n")
        self.outbox.reply(b"reply\r\n")
        self.assertEqual(self.transport.value(), b"")
        self.clock.advance(0)
        self.assertEqual(self.transport.value(), b"one\r\ntwo\r\nreply\r\n")

    def test_readCollects(self) -> None:
        """Within a read, replies and deliveries leave together at its end."""
        self.outbox.begin_read()
        self.assertTrue(self.outbox.in_read())
        self.outbox.reply(b"a\r\n")
        self.outbox.deliver(b"b\r\n")
        self.assertEqual(self.transport.value(), b"")
        self.outbox.end_read()
        self.assertFalse(self.outbox.in_read())
        self.assertEqual(self.transport.value(), b"a\r\nb\r\n")

    def test_oneWritePerTurn(self) -> None:
        """Every delivery of a turn leaves in one write at its end."""
        writes: list[bytes] = []
        self.transport.write = writes.append  # type: ignore[method-assign]
        for n in range(5):
            self.outbox.deliver(b"%d\r\n" % n)
        self.clock.advance(0)
        self.assertEqual(writes, [b"0\r\n1\r\n2\r\n3\r\n4\r\n"])

    def test_blockedCountsAndCutsOff(self) -> None:
        """
        While the transport is full, what is written counts against the send
        queue; past it the owner is told to cut the client off, and writing
        stops.  Once it drains, the owner is told to read again.
        """
        self.pauseProducing()
        self.assertEqual(self.owner.said, ["blocked"])
        self.outbox.reply(b"x" * 60)
        self.outbox.reply(b"y" * 40)
        self.assertEqual(len(self.transport.value()), 100)
        self.outbox.reply(b"z")
        self.assertEqual(self.owner.said, ["blocked", "exceeded"])
        self.assertEqual(len(self.transport.value()), 100)

    def test_drainedResumes(self) -> None:
        """A full transport that drains lets the client be read again."""
        self.pauseProducing()
        self.resumeProducing()
        self.assertEqual(self.owner.said, ["blocked", "resumed"])
        self.assertFalse(self.outbox.blocked)

    def test_discard(self) -> None:
        """A discarded outbox writes nothing more at the end of the turn."""
        self.outbox.deliver(b"late\r\n")
        self.outbox.discard()
        self.clock.advance(0)
        self.assertEqual(self.transport.value(), b"")
