"""
Tests for :mod:`chatservice.upper`: the uppercase service on in-memory
transports and a fake clock.
"""

from __future__ import annotations

from itertools import count

from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase

from chatservice.conn.limits import Limits
from chatservice.doors.upper import UpperFactory, UpperProtocol

_peers = count(1)


def make_factory(**limits) -> UpperFactory:
    return UpperFactory(Limits(**limits), Clock())


def connect(factory: UpperFactory) -> tuple[UpperProtocol, StringTransport]:
    n = next(_peers)
    peer = IPv4Address("TCP", f"10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}", 50000)
    transport = StringTransport(peerAddress=peer)
    protocol = factory.buildProtocol(peer)
    assert isinstance(protocol, UpperProtocol)
    protocol.makeConnection(transport)
    return protocol, transport


def upper(text: str) -> str:
    """What the service answers to one line of text."""
    protocol, transport = connect(make_factory())
    protocol.dataReceived(text.encode("utf-8") + b"\r\n")
    reply: bytes = transport.value()
    assert reply.endswith(b"\r\n"), reply
    return reply[:-2].decode("utf-8")


class UppercaseTests(SynchronousTestCase):
    """Lines come back upper-cased with Unicode's full case mapping."""

    def test_ascii(self) -> None:
        """ASCII letters are upper-cased; digits and punctuation are kept."""
        self.assertEqual(upper("Hello, world 42!"), "HELLO, WORLD 42!")

    def test_sharpS(self) -> None:
        """``ß`` becomes two letters: ``straße`` is ``STRASSE``."""
        self.assertEqual(upper("straße"), "STRASSE")

    def test_ligature(self) -> None:
        """The ``ﬁ`` ligature becomes ``FI``."""
        self.assertEqual(upper("ﬁ"), "FI")
        self.assertEqual(upper("ﬁne"), "FINE")

    def test_greek(self) -> None:
        """Greek, including the final sigma and accents, is upper-cased."""
        self.assertEqual(upper("σίσυφος"), "ΣΊΣΥΦΟΣ")

    def test_cyrillic(self) -> None:
        """Cyrillic is upper-cased."""
        self.assertEqual(upper("привет, мир"), "ПРИВЕТ, МИР")

    def test_uncased(self) -> None:
        """Scripts without case and emoji come back as they were."""
        self.assertEqual(upper("日本語 🎉"), "日本語 🎉")

    def test_emptyLine(self) -> None:
        """An empty line comes back empty and the connection stays."""
        protocol, transport = connect(make_factory())
        protocol.dataReceived(b"\n")
        self.assertEqual(transport.value(), b"\r\n")
        self.assertFalse(transport.disconnecting)

    def test_manyLinesPerConnection(self) -> None:
        """
        A connection may send any number of lines, in any number of reads;
        each gets its answer, in order.
        """
        protocol, transport = connect(make_factory())
        lines = [f"line {n} é" for n in range(200)]
        data = "".join(line + "\n" for line in lines).encode()
        for start in range(0, len(data), 7):
            protocol.dataReceived(data[start : start + 7])
        self.assertEqual(
            transport.value().decode(),
            "".join(line.upper() + "\r\n" for line in lines),
        )
        self.assertFalse(transport.disconnecting)

    def test_manyConnections(self) -> None:
        """Connections are independent: each gets only its own answers."""
        factory = make_factory()
        connections = [connect(factory) for _ in range(30)]
        for n, (protocol, _) in enumerate(connections):
            protocol.dataReceived(f"client {n} é".encode())
        for protocol, _ in connections:
            protocol.dataReceived(b"\n")
        for n, (_, transport) in enumerate(connections):
            self.assertEqual(transport.value(), f"CLIENT {n} É\r\n".encode())


class EncodingTests(SynchronousTestCase):
    """Input is UTF-8, decoded per line."""

    def test_invalidUTF8(self) -> None:
        """
        A line that is not UTF-8 gets exactly one error line, and the
        connection stays usable for the next line.
        """
        protocol, transport = connect(make_factory())
        protocol.dataReceived(b"caf\xe9\n")
        reply = transport.value()
        self.assertTrue(reply.startswith(b"!!! invalid UTF-8 "), reply)
        self.assertIn(b"0xe9", reply)
        self.assertEqual(reply.count(b"\r\n"), 1)
        self.assertTrue(reply.endswith(b"\r\n"))
        self.assertFalse(transport.disconnecting)
        transport.clear()
        protocol.dataReceived("café\n".encode())
        self.assertEqual(transport.value(), "CAFÉ\r\n".encode())

    def test_invalidAmongValid(self) -> None:
        """Only the invalid line of a read is refused; the others are answered."""
        protocol, transport = connect(make_factory())
        protocol.dataReceived(b"ok\n\xff\xfe\nfine\n")
        lines = transport.value().split(b"\r\n")
        self.assertEqual(lines[0], b"OK")
        self.assertTrue(lines[1].startswith(b"!!! invalid UTF-8"), lines[1])
        self.assertEqual(lines[2:], [b"FINE", b""])

    def test_characterSplitAcrossReads(self) -> None:
        """
        A two-byte character split between two reads arrives intact, as
        does a four-byte one split into four reads.
        """
        protocol, transport = connect(make_factory())
        sharp_s = "ß".encode()
        protocol.dataReceived(b"stra" + sharp_s[:1])
        protocol.dataReceived(sharp_s[1:] + b"e\n")
        emoji = "🎉x\n".encode()
        for index in range(len(emoji)):
            protocol.dataReceived(emoji[index : index + 1])
        self.assertEqual(transport.value(), "STRASSE\r\n🎉X\r\n".encode())


class QuitTests(SynchronousTestCase):
    """The quit words end an uppercase session too."""

    def test_quitWords(self) -> None:
        """``exit``, ``quit`` and ``q``, any case, get ``Goodbye.`` and close."""
        for word in [b"exit", b"QUIT", b"q", b" Q "]:
            protocol, transport = connect(make_factory())
            protocol.dataReceived(b"hi\n" + word + b"\r\nnot answered\n")
            self.assertEqual(transport.value(), b"HI\r\nGoodbye.\r\n", word)
            self.assertTrue(transport.disconnecting, word)

    def test_invalidUTF8NotQuit(self) -> None:
        """A quit word with a stray invalid byte is an error, not a quit."""
        protocol, transport = connect(make_factory())
        protocol.dataReceived(b"q\xff\n")
        self.assertTrue(transport.value().startswith(b"!!! invalid UTF-8"))
        self.assertFalse(transport.disconnecting)
