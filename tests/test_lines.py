"""
Tests for :mod:`chatservice.doors.line`: framing, limits, decoding, timeouts,
closing, connection limits and flow control, on in-memory transports and a
fake clock.
"""

from __future__ import annotations

from itertools import count

from twisted.internet.address import IPv4Address, IPv6Address, UNIXAddress
from twisted.internet.error import ConnectionDone, ConnectionLost
from twisted.internet.interfaces import IHalfCloseableProtocol
from twisted.internet.task import Clock
from twisted.internet.testing import (
    StringTransport,
    StringTransportWithDisconnection,
)
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from chatservice.conn.limits import Limits
from chatservice.doors.line import LineFactory, LineProtocol

_ports = count(40000)


def fresh_peer(host: str = "192.0.2.1") -> IPv4Address:
    """A peer address with a port no other test connection uses."""
    return IPv4Address("TCP", host, next(_ports))


class CountingTransport(StringTransport):
    """A StringTransport that also keeps every ``write`` call apart."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.writes: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.writes.append(data)
        super().write(data)


class RecordingProtocol(LineProtocol):
    """
    Answers every decoded line with ``> `` and the line, records it, and
    pauses itself when the line is ``pause``.
    """

    factory: RecordingFactory
    first_line_registers = True

    def __init__(self) -> None:
        self.received: list[str] = []
        self.closed_count = 0

    def textReceived(self, text: str) -> None:
        self.received.append(text)
        self.sendText("> " + text)
        if text == "pause":
            self.pauseProducing()

    def connectionClosed(self, reason: Failure) -> None:
        self.closed_count += 1


class RecordingFactory(LineFactory):
    protocol = RecordingProtocol
    name = "test"


def make_factory(**limits) -> tuple[RecordingFactory, Clock]:
    """
    A factory on a fake clock; per-address limits and the registration
    deadline off unless given.
    """
    limits.setdefault("max_per_address", 0)
    limits.setdefault("registration_timeout", 0)
    clock = Clock()
    return RecordingFactory(Limits(**limits), clock), clock


def connect(
    factory: RecordingFactory,
    transport: StringTransport | None = None,
) -> tuple[RecordingProtocol, StringTransport]:
    """Build a protocol and connect it to a transport (a fresh peer's)."""
    if transport is None:
        transport = CountingTransport(peerAddress=fresh_peer())
    protocol = factory.buildProtocol(transport.getPeer())
    assert isinstance(protocol, RecordingProtocol)
    if isinstance(transport, StringTransportWithDisconnection):
        transport.protocol = protocol
    protocol.makeConnection(transport)
    return protocol, transport


def connect_registered(
    factory: RecordingFactory, transport: StringTransport | None = None
) -> tuple[RecordingProtocol, StringTransport]:
    """A connection that has sent its first line (so it is registered)."""
    protocol, transport = connect(factory, transport)
    if not transport.disconnecting:  # refused: keep what it was told
        protocol.dataReceived(b"hello\n")
        transport.clear()
    return protocol, transport


def writes_of(transport: StringTransport) -> list[bytes]:
    assert isinstance(transport, CountingTransport)
    return transport.writes


def lose(protocol: LineProtocol, reason: type[Exception] = ConnectionDone) -> None:
    """The transport reports the connection gone."""
    protocol.connectionLost(Failure(reason()))


class FramingTests(SynchronousTestCase):
    """Splitting the byte stream into lines."""

    def setUp(self) -> None:
        self.factory, self.clock = make_factory()
        self.protocol, self.transport = connect(self.factory)

    def test_partialLineAcrossReads(self) -> None:
        """
        A line that arrives in several reads is handled once, when its
        terminator arrives, and nothing is written before that.
        """
        self.protocol.dataReceived(b"hel")
        self.protocol.dataReceived(b"lo wor")
        self.assertEqual(self.protocol.received, [])
        self.assertEqual(self.transport.value(), b"")
        self.protocol.dataReceived(b"ld\r\n")
        self.assertEqual(self.protocol.received, ["hello world"])
        self.assertEqual(self.transport.value(), b"> hello world\r\n")

    def test_crlfTerminator(self) -> None:
        """``\\r\\n`` ends a line and is not part of it."""
        self.protocol.dataReceived(b"one\r\ntwo\r\n")
        self.assertEqual(self.protocol.received, ["one", "two"])

    def test_lfTerminator(self) -> None:
        """A bare ``\\n`` ends a line too."""
        self.protocol.dataReceived(b"one\ntwo\n")
        self.assertEqual(self.protocol.received, ["one", "two"])

    def test_mixedTerminators(self) -> None:
        """``\\r\\n`` and ``\\n`` may be mixed in one stream, even one read."""
        self.protocol.dataReceived(b"a\r\nb\nc\r\n\nd\n")
        self.assertEqual(self.protocol.received, ["a", "b", "c", "", "d"])

    def test_crlfSplitAcrossReads(self) -> None:
        """
        A ``\\r\\n`` whose two bytes arrive in different reads still ends the
        line without leaving a ``\\r`` in it.
        """
        self.protocol.dataReceived(b"abc\r")
        self.assertEqual(self.protocol.received, [])
        self.protocol.dataReceived(b"\n")
        self.assertEqual(self.protocol.received, ["abc"])

    def test_loneCarriageReturnKept(self) -> None:
        """
        A ``\\r`` that is not followed by ``\\n`` is part of the line; only
        one ``\\r`` before the ``\\n`` belongs to the terminator.
        """
        self.protocol.dataReceived(b"a\rb\r\nc\r\r\n\rd\n")
        self.assertEqual(self.protocol.received, ["a\rb", "c\r", "\rd"])

    def test_emptyLines(self) -> None:
        """Empty lines are lines: each one is handled."""
        self.protocol.dataReceived(b"\r\n\n\r\n")
        self.assertEqual(self.protocol.received, ["", "", ""])
        self.assertFalse(self.transport.disconnecting)

    def test_oneWritePerRead(self) -> None:
        """Every reply produced by one read leaves in a single write."""
        self.protocol.dataReceived(b"a\nb\r\nc\n")
        self.assertEqual(writes_of(self.transport), [b"> a\r\n> b\r\n> c\r\n"])
        self.protocol.dataReceived(b"d\ne\n")
        self.assertEqual(
            writes_of(self.transport),
            [b"> a\r\n> b\r\n> c\r\n", b"> d\r\n> e\r\n"],
        )

    def test_noWriteWithoutCompleteLine(self) -> None:
        """A read that completes no line writes nothing at all."""
        self.protocol.dataReceived(b"no newline yet")
        self.assertEqual(writes_of(self.transport), [])

    def test_sendLineOutsideRead(self) -> None:
        """A line sent outside any read is written at once."""
        self.protocol.sendText("hello")
        self.assertEqual(writes_of(self.transport), [b"hello\r\n"])

    def test_inputAfterCloseIgnored(self) -> None:
        """Once the connection is closing, further input is not handled."""
        self.protocol.close("bye")
        self.transport.clear()
        self.protocol.dataReceived(b"more\n")
        self.assertEqual(self.protocol.received, [])
        self.assertEqual(self.transport.value(), b"")


class DecodingTests(SynchronousTestCase):
    """UTF-8 is decoded per complete line."""

    def setUp(self) -> None:
        self.factory, self.clock = make_factory()
        self.protocol, self.transport = connect(self.factory)

    def test_characterSplitAcrossReads(self) -> None:
        """
        A multi-byte character whose bytes arrive in separate reads is
        decoded intact.
        """
        data = "snow ☃ and 🎉\n".encode()
        for index in range(len(data)):
            self.protocol.dataReceived(data[index : index + 1])
        self.assertEqual(self.protocol.received, ["snow ☃ and 🎉"])

    def test_invalidUTF8(self) -> None:
        """
        A line that is not UTF-8 gets one error line naming the bad byte and
        its position, is not passed on, and the connection stays usable.
        """
        self.protocol.dataReceived(b"ab\xffcd\nnext\n")
        self.assertEqual(self.protocol.received, ["next"])
        self.assertEqual(
            self.transport.value(),
            b"!!! invalid UTF-8 (byte 0xff at position 2); line ignored, "
            b"please send UTF-8 text\r\n> next\r\n",
        )
        self.assertFalse(self.transport.disconnecting)


class LineLengthTests(SynchronousTestCase):
    """The longest accepted line, and what happens past it."""

    limit = 16

    def setUp(self) -> None:
        self.factory, self.clock = make_factory(max_line_length=self.limit)
        self.protocol, self.transport = connect(self.factory)

    def test_lineAtLimitAccepted(self) -> None:
        """A line of exactly the limit is accepted, with either terminator."""
        line = b"x" * self.limit
        self.protocol.dataReceived(line + b"\r\n" + line + b"\n")
        self.assertEqual(self.protocol.received, [line.decode()] * 2)
        self.assertFalse(self.transport.disconnecting)

    def test_lineAtLimitInPieces(self) -> None:
        """
        A line of exactly the limit whose terminator arrives byte by byte
        is accepted.
        """
        self.protocol.dataReceived(b"y" * self.limit)
        self.protocol.dataReceived(b"\r")
        self.protocol.dataReceived(b"\n")
        self.assertEqual(self.protocol.received, ["y" * self.limit])
        self.assertFalse(self.transport.disconnecting)

    def test_lineOverLimit(self) -> None:
        """
        A line one byte over the limit gets an error line naming the limit
        and closes the connection; it is not handled.
        """
        self.protocol.dataReceived(b"z" * (self.limit + 1) + b"\r\n")
        self.assertEqual(self.protocol.received, [])
        self.assertEqual(
            self.transport.value(),
            b"!!! line too long (limit 16 bytes); closing connection\r\n",
        )
        self.assertTrue(self.transport.disconnecting)

    def test_linesBeforeLongLineAnswered(self) -> None:
        """
        Lines before an over-long one in the same read are answered, the
        lines after it are not, and all of it is one write.
        """
        self.protocol.dataReceived(b"ok\n" + b"z" * 40 + b"\nlater\n")
        self.assertEqual(self.protocol.received, ["ok"])
        self.assertEqual(
            writes_of(self.transport),
            [b"> ok\r\n!!! line too long (limit 16 bytes); closing connection\r\n"],
        )

    def test_unterminatedOverLimit(self) -> None:
        """
        Input without a terminator that grows past the limit closes the
        connection without waiting for the end of the line: at the limit
        plus 2 bytes (as ``docs/limits.rst`` says), since the limit plus one
        may still be a whole line and the ``\r`` of its ``\r\n``.
        """
        self.protocol.dataReceived(b"w" * self.limit)
        self.protocol.dataReceived(b"w")
        self.assertFalse(self.transport.disconnecting)
        self.protocol.dataReceived(b"w")
        self.assertTrue(self.transport.disconnecting)
        self.assertIn(b"line too long (limit 16 bytes)", self.transport.value())

    def test_memoryBounded(self) -> None:
        """
        Feeding 1 MiB without a newline never makes the protocol buffer
        more than the limit plus one read, and the connection is closed.
        """
        factory, _ = make_factory(max_line_length=4096)
        protocol, transport = connect(factory)
        chunk = 1000
        data = b"m" * (1024 * 1024)
        largest = 0
        for start in range(0, len(data), chunk):
            protocol.dataReceived(data[start : start + chunk])
            largest = max(largest, len(protocol._partial))
        self.assertLessEqual(largest, 4096 + chunk)
        self.assertTrue(transport.disconnecting)
        self.assertEqual(len(writes_of(transport)), 1)


class IdleTimeoutTests(SynchronousTestCase):
    """Connections without input are closed after ``idle_timeout``."""

    def setUp(self) -> None:
        self.factory, self.clock = make_factory(idle_timeout=10, close_grace=5)
        self.protocol, self.transport = connect(self.factory)

    def test_closesAfterTimeout(self) -> None:
        """
        An idle connection is left alone until ``idle_timeout`` has passed,
        then gets an error line and is closed.
        """
        self.clock.advance(9.9)
        self.assertFalse(self.transport.disconnecting)
        self.assertEqual(self.transport.value(), b"")
        self.clock.advance(0.1)
        self.assertTrue(self.transport.disconnecting)
        self.assertEqual(
            self.transport.value(), b"!!! idle for 10 s; closing connection\r\n"
        )

    def test_inputResetsTimer(self) -> None:
        """Any input, even part of a line, starts the idle period again."""
        self.clock.advance(9)
        self.protocol.dataReceived(b"a\n")
        self.clock.advance(9)
        self.protocol.dataReceived(b"part")
        self.clock.advance(9.9)
        self.assertFalse(self.transport.disconnecting)
        self.clock.advance(0.1)
        self.assertTrue(self.transport.disconnecting)

    def test_oneTimerForAllConnections(self) -> None:
        """
        However many connections there are, the idle timeout costs one timer
        per service (a sweep), not one per connection; it goes away with the
        last connection.
        """
        others = [connect(self.factory) for _ in range(50)]
        self.clock.advance(0)  # the turn ends (its strangers are counted)
        self.assertEqual(len(self.clock.getDelayedCalls()), 1)
        for protocol, _ in others:
            protocol.connectionLost(Failure(ConnectionDone()))
        self.protocol.connectionLost(Failure(ConnectionDone()))
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_closedWithinATickOfItsTime(self) -> None:
        """
        Connections that fall idle at different times are each closed at
        their own time, rounded up to the next whole second at most.
        """
        self.clock.advance(0.25)
        _, later_transport = connect(self.factory)
        self.clock.advance(9.75)
        self.assertTrue(self.transport.disconnecting)
        self.assertFalse(later_transport.disconnecting)
        self.clock.advance(0.999)
        self.assertFalse(later_transport.disconnecting)
        self.clock.advance(0.001)
        self.assertTrue(later_transport.disconnecting)

    def test_zeroMeansNever(self) -> None:
        """With an ``idle_timeout`` of 0, an idle connection stays open."""
        factory, clock = make_factory(idle_timeout=0)
        _, transport = connect(factory)
        clock.advance(10**7)
        self.assertFalse(transport.disconnecting)
        self.assertEqual(clock.getDelayedCalls(), [])


class CloseTests(SynchronousTestCase):
    """Closing: the last line, the grace period, and clean-up."""

    def test_peerThatDoesNotReadIsAborted(self) -> None:
        """
        A closing connection whose peer does not let it finish is aborted
        once ``close_grace`` has passed, and not before.
        """
        factory, clock = make_factory(close_grace=5)
        protocol, transport = connect(factory)
        protocol.close("bye")
        self.assertTrue(transport.disconnecting)
        clock.advance(4.9)
        self.assertFalse(transport.disconnected)
        clock.advance(0.1)
        self.assertTrue(transport.disconnected)

    def test_promptCloseLeavesNoTimer(self) -> None:
        """
        A connection that is gone as soon as it is closed leaves no timer
        behind and is never aborted.
        """
        factory, clock = make_factory(close_grace=5, idle_timeout=10)
        transport = StringTransportWithDisconnection(peerAddress=fresh_peer())
        protocol, _ = connect(factory, transport)
        protocol.close("bye")
        self.assertEqual(transport.value(), b"bye\r\n")
        self.assertFalse(transport.connected)
        clock.advance(0)  # the turn ends
        self.assertEqual(clock.getDelayedCalls(), [])
        clock.advance(60)
        self.assertFalse(transport.disconnected)

    def test_lostWhileClosingCancelsAbort(self) -> None:
        """
        A connection that goes away during its grace period is not aborted
        afterwards.
        """
        factory, clock = make_factory(close_grace=5)
        protocol, transport = connect(factory)
        protocol.close()
        clock.advance(1)
        lose(protocol)
        self.assertEqual(clock.getDelayedCalls(), [])
        clock.advance(10)
        self.assertFalse(transport.disconnected)

    def test_closeWithoutMessage(self) -> None:
        """Closing without a message writes nothing and closes."""
        factory, _ = make_factory()
        protocol, transport = connect(factory)
        protocol.close()
        self.assertEqual(transport.value(), b"")
        self.assertTrue(transport.disconnecting)

    def test_closeTwice(self) -> None:
        """A second close sends nothing more."""
        factory, _ = make_factory()
        protocol, transport = connect(factory)
        protocol.close("first")
        protocol.close("second")
        self.assertEqual(transport.value(), b"first\r\n")

    def test_disconnectMidLineCleansUp(self) -> None:
        """
        A connection lost in the middle of a line is forgotten by the
        factory, cleaned up once, and leaves no timer behind.
        """
        factory, clock = make_factory(idle_timeout=10)
        protocol, _ = connect(factory)
        protocol.dataReceived(b"half a li")
        lose(protocol, ConnectionLost)
        self.assertEqual(factory.connections, set())
        self.assertEqual(protocol.closed_count, 1)
        self.assertEqual(protocol.received, [])
        clock.advance(0)  # the turn ends
        self.assertEqual(clock.getDelayedCalls(), [])
        lose(protocol, ConnectionLost)
        self.assertEqual(protocol.closed_count, 1)


class HalfCloseTests(SynchronousTestCase):
    """The client ends its input but can still read."""

    def setUp(self) -> None:
        self.factory, self.clock = make_factory()
        self.protocol, self.transport = connect(self.factory)

    def test_halfCloseable(self) -> None:
        """
        The protocol declares itself half-closeable, so TCP tells it about
        the end of input instead of dropping the connection.
        """
        self.assertTrue(IHalfCloseableProtocol.providedBy(self.protocol))

    def test_lastUnterminatedLineAnswered(self) -> None:
        """
        When the input ends, its last line is answered even without a
        terminator, after the lines before it, and then the connection
        closes.
        """
        self.protocol.dataReceived(b"first\nlast")
        self.protocol.readConnectionLost()
        self.assertEqual(self.protocol.received, ["first", "last"])
        self.assertEqual(self.transport.value(), b"> first\r\n> last\r\n")
        self.assertTrue(self.transport.disconnecting)

    def test_halfCloseWithoutPartialLine(self) -> None:
        """When the input ends after a full line, nothing extra is sent."""
        self.protocol.dataReceived(b"only\r\n")
        self.protocol.readConnectionLost()
        self.assertEqual(self.protocol.received, ["only"])
        self.assertEqual(self.transport.value(), b"> only\r\n")
        self.assertTrue(self.transport.disconnecting)

    def test_writeConnectionLost(self) -> None:
        """A client that can no longer read is disconnected."""
        self.protocol.writeConnectionLost()
        self.assertTrue(self.transport.disconnecting)


class PauseTests(SynchronousTestCase):
    """Flow control: a paused protocol keeps its input for later."""

    def setUp(self) -> None:
        self.factory, self.clock = make_factory()
        self.protocol, self.transport = connect(self.factory)

    def test_pauseMidBatchKeepsRest(self) -> None:
        """
        Lines after a pause in the middle of a read are kept, not handled,
        and handled in order once production resumes.
        """
        self.protocol.dataReceived(b"a\npause\nb\r\nc\npartial")
        self.assertEqual(self.protocol.received, ["a", "pause"])
        self.assertEqual(self.transport.producerState, "paused")
        self.protocol.resumeProducing()
        self.assertEqual(self.protocol.received, ["a", "pause", "b", "c"])
        self.protocol.dataReceived(b" line\n")
        self.assertEqual(
            self.protocol.received, ["a", "pause", "b", "c", "partial line"]
        )
        self.assertEqual(
            self.transport.value(),
            b"> a\r\n> pause\r\n> b\r\n> c\r\n> partial line\r\n",
        )

    def test_inputWhilePausedKeptInOrder(self) -> None:
        """Input that arrives while paused is handled after the kept lines."""
        self.protocol.dataReceived(b"pause\nb\n")
        self.protocol.dataReceived(b"c\nd\n")
        self.assertEqual(self.protocol.received, ["pause"])
        self.protocol.resumeProducing()
        self.assertEqual(self.protocol.received, ["pause", "b", "c", "d"])

    def test_halfCloseWhilePaused(self) -> None:
        """
        An end of input that arrives while paused waits: once resumed, the
        kept lines and the last unterminated one are answered, in order,
        and only then is the connection closed.
        """
        self.protocol.dataReceived(b"pause\nb\nlast")
        self.protocol.readConnectionLost()
        self.assertEqual(self.protocol.received, ["pause"])
        self.assertFalse(self.transport.disconnecting)
        self.protocol.resumeProducing()
        self.assertEqual(self.protocol.received, ["pause", "b", "last"])
        self.assertEqual(self.transport.value(), b"> pause\r\n> b\r\n> last\r\n")
        self.assertTrue(self.transport.disconnecting)

    def test_pausedAgainAfterResume(self) -> None:
        """A second pause among the kept lines stops them again."""
        self.protocol.dataReceived(b"pause\nb\npause\nc\n")
        self.protocol.resumeProducing()
        self.assertEqual(self.protocol.received, ["pause", "b", "pause"])
        self.protocol.resumeProducing()
        self.assertEqual(self.protocol.received, ["pause", "b", "pause", "c"])


class ConnectionLimitTests(SynchronousTestCase):
    """The factory's total and per-address limits."""

    def test_serverFull(self) -> None:
        """
        Past ``max_clients``, a new connection gets a ``server full`` error
        line and is closed, while the existing ones keep working.
        """
        factory, _ = make_factory(max_clients=2)
        first, first_transport = connect_registered(factory)
        second, second_transport = connect_registered(factory)
        _, third_transport = connect(factory)
        self.assertEqual(
            third_transport.value(),
            b"!!! server full (2 connections); please try again later\r\n",
        )
        self.assertTrue(third_transport.disconnecting)
        self.assertEqual(factory.connections, {first, second})
        one, _ = make_factory(max_clients=1)
        connect_registered(one)
        _, refused = connect(one)
        self.assertEqual(
            refused.value(),
            b"!!! server full (1 connection); please try again later\r\n",
            "one connection, not one connections",
        )
        for protocol, transport in [
            (first, first_transport),
            (second, second_transport),
        ]:
            protocol.dataReceived(b"still here\n")
            self.assertEqual(transport.value(), b"> still here\r\n")
            self.assertFalse(transport.disconnecting)

    def test_refusedConnectionFreesNothing(self) -> None:
        """
        A refused connection going away does not free a slot, and is not
        cleaned up as if it had been admitted.
        """
        factory, _ = make_factory(max_clients=1)
        connect_registered(factory)
        refused, _ = connect(factory)
        lose(refused)
        self.assertEqual(refused.closed_count, 0)
        self.assertEqual(len(factory.connections), 1)
        _, transport = connect(factory)
        self.assertTrue(transport.disconnecting)
        self.assertIn(b"server full", transport.value())

    def test_releaseLetsNewClientIn(self) -> None:
        """When an admitted connection goes away, a new one is admitted."""
        factory, _ = make_factory(max_clients=1)
        first, _ = connect_registered(factory)
        _, refused_transport = connect(factory)
        self.assertTrue(refused_transport.disconnecting)
        lose(first)
        newcomer, transport = connect(factory)
        self.assertFalse(transport.disconnecting)
        self.assertEqual(factory.connections, {newcomer})

    def test_perAddressLimit(self) -> None:
        """
        Past ``max_per_address`` connections from one IP address, another
        from it is refused with a line naming the address and the limit;
        other addresses are still admitted.
        """
        factory, _ = make_factory(max_per_address=2)

        def from_host(host: str) -> StringTransport:
            return connect(factory, CountingTransport(peerAddress=fresh_peer(host)))[1]

        first = from_host("10.0.0.1")
        second = from_host("10.0.0.1")
        third = from_host("10.0.0.1")
        other = from_host("10.0.0.2")
        self.assertFalse(first.disconnecting)
        self.assertFalse(second.disconnecting)
        self.assertEqual(
            third.value(), b"!!! too many connections from 10.0.0.1 (limit 2)\r\n"
        )
        self.assertTrue(third.disconnecting)
        self.assertFalse(other.disconnecting)
        self.assertEqual(len(factory.connections), 3)

    def test_perAddressIPv6(self) -> None:
        """The per-address limit applies to IPv6 peers as well."""
        factory, _ = make_factory(max_per_address=1)
        peer = IPv6Address("TCP", "2001:db8::1", 1234)
        _, first = connect(factory, CountingTransport(peerAddress=peer))
        _, second = connect(factory, CountingTransport(peerAddress=peer))
        self.assertFalse(first.disconnecting)
        self.assertTrue(second.disconnecting)
        self.assertIn(b"2001:db8::1", second.value())

    def test_perAddressRelease(self) -> None:
        """
        When a connection from an address goes away, that address may
        connect again.
        """
        factory, _ = make_factory(max_per_address=1)
        peer = IPv4Address("TCP", "10.0.0.1", 1234)
        first, _ = connect(factory, CountingTransport(peerAddress=peer))
        _, refused = connect(factory, CountingTransport(peerAddress=peer))
        self.assertTrue(refused.disconnecting)
        lose(first)
        _, again = connect(factory, CountingTransport(peerAddress=peer))
        self.assertFalse(again.disconnecting)

    def test_unixPeersNotCountedPerAddress(self) -> None:
        """
        Connections over a UNIX socket have no address to count: the
        per-address limit does not apply to them, the total limit does.
        """
        factory, _ = make_factory(max_per_address=1, max_clients=3)
        transports = [
            connect_registered(
                factory, CountingTransport(peerAddress=UNIXAddress(None))
            )[1]
            for _ in range(4)
        ]
        self.assertEqual(
            [transport.disconnecting for transport in transports],
            [False, False, False, True],
        )
        self.assertIn(b"server full", transports[3].value())

    def test_zeroMeansNoLimit(self) -> None:
        """With both limits 0, any number of connections is admitted."""
        factory, _ = make_factory(max_clients=0, max_per_address=0)
        peer = IPv4Address("TCP", "10.0.0.1", 1234)
        transports = [
            connect(factory, CountingTransport(peerAddress=peer))[1] for _ in range(50)
        ]
        self.assertFalse(any(transport.disconnecting for transport in transports))
        self.assertEqual(len(factory.connections), 50)


class CloseAllTests(SynchronousTestCase):
    """:meth:`LineFactory.closeAll`, used when the service stops."""

    def test_noConnections(self) -> None:
        """With no connection, the result has fired already."""
        factory, _ = make_factory()
        self.assertIsNone(self.successResultOf(factory.closeAll()))

    def test_goodbyeAndWait(self) -> None:
        """
        Every connection gets the shutdown line and is closed; the result
        fires once all of them are gone, not before.
        """
        factory, _ = make_factory()
        (first, first_transport), (second, second_transport) = [
            connect(factory) for _ in range(2)
        ]
        closed = factory.closeAll()
        for transport in (first_transport, second_transport):
            self.assertEqual(transport.value(), b"Server shutting down. Goodbye.\r\n")
            self.assertTrue(transport.disconnecting)
        self.assertNoResult(closed)
        lose(first)
        self.assertNoResult(closed)
        lose(second)
        self.assertIsNone(self.successResultOf(closed))

    def test_customMessage(self) -> None:
        """``closeAll`` may be given another last line."""
        factory, _ = make_factory()
        _, transport = connect(factory)
        factory.closeAll("Maintenance, back soon.")
        self.assertEqual(transport.value(), b"Maintenance, back soon.\r\n")

    def test_promptPeers(self) -> None:
        """When the connections go at once, the result fires at once."""
        factory, clock = make_factory()
        for _ in range(3):
            connect(factory, StringTransportWithDisconnection(peerAddress=fresh_peer()))
        self.assertIsNone(self.successResultOf(factory.closeAll()))
        clock.advance(0)  # the turn ends
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_peersThatDoNotReadAreAborted(self) -> None:
        """
        Connections that do not go away are aborted after ``close_grace``,
        and the result fires when the transports report them gone.
        """
        factory, clock = make_factory(close_grace=2)
        connected = [connect(factory) for _ in range(2)]
        closed = factory.closeAll()
        clock.advance(2)
        self.assertTrue(all(transport.disconnected for _, transport in connected))
        for protocol, _ in connected:
            lose(protocol, ConnectionLost)
        self.assertIsNone(self.successResultOf(closed))
