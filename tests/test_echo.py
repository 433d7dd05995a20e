"""
Tests for :mod:`chatservice.echo`: the echo service on in-memory transports
and a fake clock.
"""

from __future__ import annotations

import time
from itertools import count

from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase

from chatservice.conn.limits import Limits
from chatservice.doors.answers import is_quit_word
from chatservice.doors.echo import EchoFactory, EchoProtocol

_peers = count(1)


def make_factory(*, timestamp: bool = False, **limits) -> tuple[EchoFactory, Clock]:
    clock = Clock()
    # A fixed, known time: 2001-09-09 01:46:40 UTC.
    clock.advance(1_000_000_000)
    return EchoFactory(Limits(**limits), clock, timestamp=timestamp), clock


def connect(factory: EchoFactory) -> tuple[EchoProtocol, StringTransport]:
    n = next(_peers)
    peer = IPv4Address("TCP", f"10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}", 50000)
    transport = StringTransport(peerAddress=peer)
    protocol = factory.buildProtocol(peer)
    assert isinstance(protocol, EchoProtocol)
    protocol.makeConnection(transport)
    return protocol, transport


def echo(data: bytes, **options) -> StringTransport:
    """What one connection writes back for ``data``."""
    factory, _ = make_factory(**options)
    protocol, transport = connect(factory)
    protocol.dataReceived(data)
    return transport


class EchoTests(SynchronousTestCase):
    """Every line comes back as it was sent."""

    def test_lineBack(self) -> None:
        """A line comes back byte for byte, ended by ``\\r\\n``."""
        transport = echo(b"Hello, World!\r\n")
        self.assertEqual(transport.value(), b"Hello, World!\r\n")
        self.assertFalse(transport.disconnecting)

    def test_blanksKept(self) -> None:
        """Leading and trailing blanks and inner tabs are not touched."""
        transport = echo(b"  two\tcolumns  \n")
        self.assertEqual(transport.value(), b"  two\tcolumns  \r\n")

    def test_bareLfAnsweredWithCrlf(self) -> None:
        """A line ended by ``\\n`` alone comes back ended by ``\\r\\n``."""
        self.assertEqual(echo(b"abc\n").value(), b"abc\r\n")

    def test_invalidUTF8Echoed(self) -> None:
        """
        Bytes that are not UTF-8 come back unchanged, without an error line:
        an echo does not decode.
        """
        transport = echo(b"\xff\xfe\x80 latin-1: caf\xe9\n")
        self.assertEqual(transport.value(), b"\xff\xfe\x80 latin-1: caf\xe9\r\n")
        self.assertFalse(transport.disconnecting)

    def test_utf8Echoed(self) -> None:
        """UTF-8 text comes back unchanged."""
        line = "straße σίσυφος привет 🎉".encode()
        self.assertEqual(echo(line + b"\n").value(), line + b"\r\n")

    def test_emptyLine(self) -> None:
        """An empty line comes back empty and does not end the session."""
        factory, _ = make_factory()
        protocol, transport = connect(factory)
        protocol.dataReceived(b"\r\n\n")
        self.assertEqual(transport.value(), b"\r\n\r\n")
        self.assertFalse(transport.disconnecting)
        protocol.dataReceived(b"after\n")
        self.assertEqual(transport.value(), b"\r\n\r\nafter\r\n")

    def test_manyLinesOneWrite(self) -> None:
        """Many lines in one read come back in order."""
        lines = [f"line {n}".encode() for n in range(100)]
        transport = echo(b"\n".join(lines) + b"\n")
        self.assertEqual(transport.value(), b"\r\n".join(lines) + b"\r\n")

    def test_manyConnections(self) -> None:
        """
        Many connections to one factory are independent: each gets back
        only its own lines, even when their reads interleave, and one
        leaving does not disturb the others.
        """
        factory, _ = make_factory()
        connections = [connect(factory) for _ in range(50)]
        for n, (protocol, _) in enumerate(connections):
            protocol.dataReceived(f"from {n}, ".encode())
        for n, (protocol, _) in enumerate(connections):
            protocol.dataReceived(f"part two of {n}\n".encode())
        connections[0][0].dataReceived(b"quit\n")
        for protocol, _ in connections[1:]:
            protocol.dataReceived(b"again\n")
        self.assertEqual(
            connections[0][1].value(), b"from 0, part two of 0\r\nGoodbye.\r\n"
        )
        for n, (_, transport) in enumerate(connections[1:], 1):
            self.assertEqual(
                transport.value(), f"from {n}, part two of {n}\r\nagain\r\n".encode()
            )
            self.assertFalse(transport.disconnecting)
        self.assertEqual(len(factory.connections), 50)

    def test_lineLimit(self) -> None:
        """A line over the limit is not echoed; the client gets an error."""
        transport = echo(b"x" * 17 + b"\n", max_line_length=16)
        self.assertEqual(
            transport.value(),
            b"!!! line too long (limit 16 bytes); closing connection\r\n",
        )
        self.assertTrue(transport.disconnecting)


class QuitTests(SynchronousTestCase):
    """``exit``, ``quit`` and ``q`` end the session."""

    quit_lines = [
        b"exit",
        b"quit",
        b"q",
        b"EXIT",
        b"Quit",
        b"Q",
        b" q",
        b"quit ",
        b"  quit  ",
        b"\tExit\t",
        b"   QUIT      ",
    ]
    other_lines = [b"quitter", b"qq", b"q q", b"exit now", b"ex it", b"", b"quit."]

    def test_quitWords(self) -> None:
        """
        Each quit word, in any case and with blanks around it, gets
        ``Goodbye.`` and closes the connection.
        """
        for line in self.quit_lines:
            transport = echo(line + b"\r\n")
            self.assertEqual(transport.value(), b"Goodbye.\r\n", line)
            self.assertTrue(transport.disconnecting, line)

    def test_notQuitWords(self) -> None:
        """Lines that merely contain a quit word are echoed."""
        for line in self.other_lines:
            transport = echo(line + b"\n")
            self.assertEqual(transport.value(), line + b"\r\n", line)
            self.assertFalse(transport.disconnecting, line)

    def test_isQuitWord(self) -> None:
        """:func:`is_quit_word` agrees with the lists above."""
        for line in self.quit_lines:
            self.assertTrue(is_quit_word(line), line)
        for line in self.other_lines:
            self.assertFalse(is_quit_word(line), line)

    def test_linesAfterQuitIgnored(self) -> None:
        """
        Lines before a quit word in the same read are echoed, those after
        it are not.
        """
        transport = echo(b"one\nquit\ntwo\n")
        self.assertEqual(transport.value(), b"one\r\nGoodbye.\r\n")

    def test_quitUnregistersProducer(self) -> None:
        """
        Quitting unregisters the connection as the transport's producer,
        which would otherwise keep the connection open.
        """
        factory, _ = make_factory()
        protocol, transport = connect(factory)
        self.assertIs(transport.producer, protocol)
        protocol.dataReceived(b"q\n")
        self.assertIsNone(transport.producer)


class TimestampTests(SynchronousTestCase):
    """``--echo-timestamp``: every line is prefixed with the server's time."""

    def test_prefix(self) -> None:
        """The echo is ``time.ctime(now) + " "`` followed by the line."""
        factory, clock = make_factory(timestamp=True)
        protocol, transport = connect(factory)
        protocol.dataReceived(b"hello\n")
        stamp = time.ctime(clock.seconds()).encode()
        self.assertEqual(transport.value(), stamp + b" hello\r\n")

    def test_clockMoves(self) -> None:
        """Each line is stamped with the time it was received."""
        factory, clock = make_factory(timestamp=True)
        protocol, transport = connect(factory)
        protocol.dataReceived(b"a\n")
        first = time.ctime(clock.seconds()).encode()
        clock.advance(60)
        protocol.dataReceived(b"b\n")
        second = time.ctime(clock.seconds()).encode()
        self.assertNotEqual(first, second)
        self.assertEqual(transport.value(), first + b" a\r\n" + second + b" b\r\n")

    def test_emptyLineStamped(self) -> None:
        """An empty line comes back as the time and one space."""
        factory, clock = make_factory(timestamp=True)
        protocol, transport = connect(factory)
        protocol.dataReceived(b"\n")
        self.assertEqual(
            transport.value(), time.ctime(clock.seconds()).encode() + b" \r\n"
        )

    def test_goodbyeNotStamped(self) -> None:
        """The goodbye is not stamped."""
        transport = echo(b"exit\n", timestamp=True)
        self.assertEqual(transport.value(), b"Goodbye.\r\n")

    def test_offByDefault(self) -> None:
        """Without the option there is no prefix."""
        self.assertEqual(echo(b"plain\n").value(), b"plain\r\n")


class FlowControlTests(SynchronousTestCase):
    """A client that does not read its echoes is not read from."""

    def test_pausedByTransport(self) -> None:
        """
        The connection is the transport's streaming producer; while the
        transport has it paused, input waits, and it is echoed in order
        on resume.
        """
        factory, _ = make_factory()
        protocol, transport = connect(factory)
        self.assertIs(transport.producer, protocol)
        self.assertTrue(transport.streaming)
        protocol.pauseProducing()
        protocol.dataReceived(b"one\ntwo\n")
        self.assertEqual(transport.value(), b"")
        protocol.resumeProducing()
        self.assertEqual(transport.value(), b"one\r\ntwo\r\n")
