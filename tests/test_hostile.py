"""
Hostile clients against every front end, on in-memory transports and a fake
clock: over-long lines, bad encodings and control characters, clients that
do not read, floods, connection limits, timeouts (slowloris included),
abrupt disconnects and the shutdown of a service with clients that do not
read their goodbye.

Every test also checks that nothing was logged with a traceback
(``log_failure``): hostile input gets error lines and closed connections,
never an exception.  The same behaviours over real sockets are in
:mod:`tests.test_stress`.
"""

from __future__ import annotations

import gc
import weakref
from itertools import count
from typing import Any, cast

from twisted.internet.address import IPv4Address
from twisted.internet.base import DelayedCall
from twisted.internet.error import ConnectionDone, ConnectionLost
from twisted.internet.task import Clock
from twisted.internet.testing import (
    StringTransport,
    StringTransportWithDisconnection,
)
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from chatservice.backends.local import LocalBackend
from chatservice.chat.hub import Hub
from chatservice.chat.model import ChatConfig
from chatservice.conn.limits import Limits
from chatservice.conn.turns import end_of_turn
from chatservice.doors.echo import EchoFactory
from chatservice.doors.line import LineFactory, LineProtocol
from chatservice.doors.native.protocol import ChatFactory, ChatSettings
from chatservice.doors.upper import UpperFactory
from tests.support import end_turn, logged_failures

_ports = count(30000)

#: What the chat shows everyone when the service stops.
SHUTDOWN = "*** Server shutting down. Goodbye."


class HostileTransport(StringTransport):
    """
    A :class:`StringTransport` that records :meth:`abortConnection` and, once
    :attr:`full` is set, behaves like Twisted's TCP transport with a full
    write buffer: every further ``write`` pauses the registered streaming
    producer again (``FileDescriptor._maybePauseProducer`` does exactly
    that, on each write).
    """

    def __init__(self, host: str = "10.0.0.1") -> None:
        super().__init__(peerAddress=IPv4Address("TCP", host, next(_ports)))
        self.aborted = False
        self.full = False

    def write(self, data: bytes) -> None:
        super().write(data)
        if self.full and self.producer is not None and self.streaming:
            self.producer.pauseProducing()

    def abortConnection(self) -> None:
        self.aborted = True
        super().abortConnection()

    def fill(self) -> None:
        """The client stopped reading: the buffer is full, the producer paused."""
        self.full = True
        assert self.producer is not None
        self.producer.pauseProducing()

    def drain(self) -> None:
        """The client read everything: the buffer is empty, the producer resumed."""
        self.full = False
        self.clear()
        assert self.producer is not None
        self.producer.resumeProducing()


class Peer:
    """One client of any line front end, on a :class:`HostileTransport`."""

    def __init__(
        self,
        factory: LineFactory,
        host: str = "10.0.0.1",
        transport: StringTransport | None = None,
    ) -> None:
        self.transport = transport if transport is not None else HostileTransport(host)
        protocol = factory.buildProtocol(self.transport.getPeer())
        assert isinstance(protocol, LineProtocol)
        self.protocol: LineProtocol = protocol
        if isinstance(self.transport, StringTransportWithDisconnection):
            self.transport.protocol = protocol
        protocol.makeConnection(self.transport)

    def feed(self, data: bytes) -> None:
        """Bytes from the client, as one read, in a reactor turn of its own."""
        self.protocol.dataReceived(data)
        end_turn(self.protocol.factory)

    def send(self, *lines: str) -> None:
        """Lines from the client, in one read."""
        self.feed(b"".join(line.encode("utf-8") + b"\r\n" for line in lines))

    def take_bytes(self) -> bytes:
        """Everything the server wrote since the last call (at the turn's end)."""
        end_turn(self.protocol.factory)
        data: bytes = self.transport.value()
        self.transport.clear()
        return data

    def take(self) -> list[str]:
        """The lines the server wrote since the last call (whole lines only)."""
        text = self.take_bytes().decode("utf-8")
        assert text == "" or text.endswith("\r\n"), text
        return text.split("\r\n")[:-1]

    @property
    def hostile(self) -> HostileTransport:
        """The transport, which is a :class:`HostileTransport` unless given."""
        assert isinstance(self.transport, HostileTransport)
        return self.transport

    @property
    def closing(self) -> bool:
        """Whether the server closed (or is closing) the connection."""
        return bool(self.transport.disconnecting)

    @property
    def reading(self) -> bool:
        """Whether the server reads from this client (its input is not held)."""
        return self.transport.producerState == "producing"

    def lose(self, reason: type[Exception] = ConnectionDone) -> None:
        """The transport reports the connection gone."""
        self.protocol.connectionLost(Failure(reason()))


class HostileTestCase(SynchronousTestCase):
    """Fails any test during which something was logged with a traceback."""

    def setUp(self) -> None:
        self.logged = logged_failures(self)
        self.addCleanup(self.assertNoTraceback)
        self.clock = Clock()

    def assertNoTraceback(self) -> None:
        self.assertEqual(
            self.logged, [], "a hostile client made the server log a traceback"
        )

    # Factories on the fake clock; per-address limits off unless given.

    def limits(self, **given: Any) -> Limits:
        given.setdefault("max_per_address", 0)
        return Limits(**given)

    def chat(
        self,
        config: ChatConfig | None = None,
        nick_timeout: float = 0,
        **limits: Any,
    ) -> ChatFactory:
        self.hub = Hub(
            config,
            clock=self.clock.seconds,
            backend=LocalBackend(call_soon=end_of_turn(self.clock).soon),
        )
        return ChatFactory(
            self.hub,
            self.limits(**limits),
            self.clock,
            settings=ChatSettings(nick_timeout=nick_timeout),
        )

    def echo(self, **limits: Any) -> EchoFactory:
        return EchoFactory(self.limits(**limits), self.clock)

    def upper(self, **limits: Any) -> UpperFactory:
        return UpperFactory(self.limits(**limits), self.clock)

    def register(self, factory: ChatFactory, nick: str, host: str = "10.0.0.1") -> Peer:
        """A chat client with a nickname, in the lobby; its output so far dropped."""
        peer = Peer(factory, host)
        peer.send(nick)
        self.assertEqual(peer.take()[-1], f"--- you are {nick}; you are in #lobby")
        return peer

    def room(self, factory: ChatFactory, *nicks: str) -> list[Peer]:
        """Chat clients in the lobby, everything they were sent so far dropped."""
        peers = [self.register(factory, nick) for nick in nicks]
        for peer in peers:
            peer.take()
        return peers


class LineLengthTests(HostileTestCase):
    """Past the longest line: an error naming the limit, then the door."""

    def test_chatLineOverLimit(self) -> None:
        """
        A chat line one byte over the limit gets the error line naming the
        limit and closes the connection; the room never sees the line and
        hears why the member quit.
        """
        factory = self.chat(max_line_length=64)
        mallory, bob = self.room(factory, "mallory", "bob")
        mallory.feed(b"y" * 65 + b"\n")
        self.assertEqual(
            mallory.take(),
            ["!!! line too long (limit 64 bytes); closing connection"],
        )
        self.assertTrue(mallory.closing)
        self.assertEqual(bob.take(), [])
        mallory.lose(ConnectionLost)
        self.assertEqual(bob.take(), ["-!- mallory has quit (line too long)"])

    def test_unterminatedFloodBoundedEveryService(self) -> None:
        """
        Pushing 8 MiB without a newline, in 64 KiB reads (TCP's read size)
        or in 1000-byte reads, to echo, uppercase or chat: the protocol
        never holds more than the limit plus one read, the client gets the
        error line naming the limit at the first read past the limit, and
        nothing after it is kept.
        """
        for make in (self.echo, self.upper, self.chat):
            for size in (65536, 1000):
                chunk = b"A" * size
                peer = Peer(make(max_line_length=4096))
                peer.take_bytes()
                largest = 0
                reads = 0
                for _ in range(8 * 1024 * 1024 // len(chunk)):
                    # What the protocol holds: what it kept, and the read.
                    largest = max(largest, len(peer.protocol._partial) + size)
                    peer.feed(chunk)
                    reads += 1
                    if peer.closing:
                        break
                self.assertEqual(reads, 4097 // size + 1)
                self.assertLessEqual(largest, 4096 + size)
                self.assertEqual(
                    peer.take_bytes(),
                    b"!!! line too long (limit 4096 bytes); closing connection\r\n",
                )
                # What comes after the close is dropped unread.
                for _ in range(16):
                    peer.feed(chunk)
                self.assertEqual(peer.protocol._partial, b"")
                self.assertEqual(peer.take_bytes(), b"")

    def test_unterminatedBytewiseClosesAtLimit(self) -> None:
        """
        Sent one byte per read, an unterminated line is cut as soon as it is
        more than the limit (plus a possible ``\\r`` of its terminator).
        """
        peer = Peer(self.upper(max_line_length=32))
        for _ in range(32):
            peer.feed(b"a")
        self.assertFalse(peer.closing)
        peer.feed(b"a")
        self.assertFalse(peer.closing, "33 bytes may be a full line and its \\r")
        peer.feed(b"a")
        self.assertTrue(peer.closing)
        self.assertLessEqual(len(peer.protocol._partial), 32 + 1)

    def test_linesJustUnderAndAtLimit(self) -> None:
        """
        Lines of the limit minus one and of exactly the limit, in bytes (here
        made of two-byte characters), are answered by every service, with
        either terminator, and the connection stays open.
        """
        under = "é" * 31 + "x"  # 63 bytes
        at = "é" * 32  # 64 bytes
        for make, expected in [
            (self.echo, [under, at, under, at]),
            (self.upper, [under.upper(), at.upper()] * 2),
        ]:
            with self.subTest(service=make.__name__):
                peer = Peer(make(max_line_length=64))
                data = f"{under}\r\n{at}\n{under}\n{at}\r\n".encode()
                peer.feed(data)
                self.assertEqual(peer.take(), expected)
                self.assertFalse(peer.closing)
        factory = self.chat(max_line_length=64)
        alice, bob = self.room(factory, "alice", "bob")
        alice.feed(f"{under}\r\n{at}\n".encode())
        said = [f"#lobby <alice> {under}", f"#lobby <alice> {at}"]
        self.assertEqual(alice.take(), said)
        self.assertEqual(bob.take(), said)
        self.assertFalse(alice.closing)


class EncodingTests(HostileTestCase):
    """
    Invalid UTF-8, NUL bytes, lone ``\\r`` and mixed terminators: an error
    line or the documented normalisation, never a crash.
    """

    INVALID = [
        # (line, first bad byte, its position)
        (b"ab\xffcd", 0xFF, 2),
        (b"caf\xc3", 0xC3, 3),  # truncated sequence at the end of the line
        (b"\xc0\xaf", 0xC0, 0),  # overlong encoding of "/"
        (b"x\xed\xa0\x80", 0xED, 1),  # an encoded surrogate
        (b"\xf4\x90\x80\x80", 0xF4, 0),  # past U+10FFFF
        (b"\x80", 0x80, 0),  # a lone continuation byte
    ]

    @staticmethod
    def invalid(byte: int, position: int) -> str:
        return (
            f"!!! invalid UTF-8 (byte 0x{byte:02x} at position {position}); "
            "line ignored, please send UTF-8 text"
        )

    def test_invalidUTF8Chat(self) -> None:
        """
        Invalid UTF-8 in chat lines gets one error line each, reaches nobody,
        and the connection stays usable; before registration too.
        """
        factory = self.chat()
        newcomer = Peer(factory)
        newcomer.take()
        newcomer.feed(b"\xffalice\n")
        self.assertEqual(newcomer.take(), [self.invalid(0xFF, 0)])
        alice, bob = self.room(factory, "alice", "bob")
        for line, byte, position in self.INVALID:
            alice.feed(line + b"\r\n")
            self.assertEqual(alice.take(), [self.invalid(byte, position)])
        self.assertEqual(bob.take(), [])
        alice.send("still here")
        self.assertEqual(bob.take(), ["#lobby <alice> still here"])
        self.assertFalse(alice.closing)

    def test_invalidUTF8Upper(self) -> None:
        """The uppercase service answers invalid UTF-8 with an error line."""
        peer = Peer(self.upper())
        for line, byte, position in self.INVALID:
            peer.feed(line + b"\n")
            self.assertEqual(peer.take(), [self.invalid(byte, position)])
        peer.feed(b"ok\n")
        self.assertEqual(peer.take(), ["OK"])

    def test_invalidUTF8EchoedUnchanged(self) -> None:
        """
        The echo service returns any bytes unchanged, invalid UTF-8 included
        (documented: an echo is byte for byte).
        """
        peer = Peer(self.echo())
        data = b"".join(line + b"\n" for line, _, _ in self.INVALID)
        peer.feed(data)
        self.assertEqual(
            peer.take_bytes(),
            b"".join(line + b"\r\n" for line, _, _ in self.INVALID),
        )
        self.assertFalse(peer.closing)

    def test_controlCharactersChat(self) -> None:
        """
        NUL, a lone ``\\r``, ESC and DEL reach the room as caret notation,
        never raw; only one ``\\r`` before the ``\\n`` is part of the
        terminator.
        """
        factory = self.chat()
        alice, bob = self.room(factory, "alice", "bob")
        alice.feed(b"a\x00b\nc\rd\r\ne\r\r\n\x1b[2J\x7f\n")
        expected = [
            "#lobby <alice> a^@b",
            "#lobby <alice> c^Md",
            "#lobby <alice> e^M",
            "#lobby <alice> ^[[2J^?",
        ]
        self.assertEqual(bob.take(), expected)
        self.assertEqual(alice.take(), expected)

    def test_controlCharactersEchoUpper(self) -> None:
        """
        Echo and uppercase pass NUL and a lone ``\\r`` through as they came
        (their clients asked for their own bytes back).
        """
        echo = Peer(self.echo())
        echo.feed(b"a\x00b\nc\rd\r\n\x00\n")
        self.assertEqual(echo.take_bytes(), b"a\x00b\r\nc\rd\r\n\x00\r\n")
        upper = Peer(self.upper())
        upper.feed(b"a\x00b\nc\rd\r\n")
        self.assertEqual(upper.take_bytes(), b"A\x00B\r\nC\rD\r\n")

    def test_mixedTerminatorsAndEmptyLines(self) -> None:
        """
        ``\\r\\n`` and ``\\n`` mixed in one read, a ``\\r\\n`` split across
        reads, and empty lines: each line is handled once, and the chat
        ignores empty lines.
        """
        factory = self.chat()
        alice, bob = self.room(factory, "alice", "bob")
        alice.feed(b"one\r\ntwo\n\r\n\nthree\r")
        alice.feed(b"\nfour\n")
        self.assertEqual(
            bob.take(),
            [f"#lobby <alice> {word}" for word in ("one", "two", "three", "four")],
        )
        echo = Peer(self.echo())
        echo.feed(b"one\r\ntwo\n\r\n\nthree\r")
        echo.feed(b"\n")
        self.assertEqual(echo.take(), ["one", "two", "", "", "three"])


class SlowReaderTests(HostileTestCase):
    """Clients that stop reading: cut in the chat, not read from elsewhere."""

    MESSAGE = "m" * 80
    #: "#lobby <talker> " + 80 characters + "\r\n"
    LINE_SIZE = 16 + 80 + 2

    def setUp(self) -> None:
        super().setUp()
        # No flood control: the talkers here are not what is tested.
        self.factory = self.chat(max_send_queue=10 * self.LINE_SIZE + 50, flood_rate=0)
        self.lazy, self.talker, self.watcher = self.room(
            self.factory, "lazy", "talker", "watcher"
        )

    def test_pausedOnceThenCut(self) -> None:
        """
        A chat client whose transport is full (paused once) takes room
        messages up to ``max_send_queue`` bytes; the next one aborts it
        (no graceful close: it would wait for the client to read), and its
        room hears it quit because of the send queue.
        """
        self.lazy.protocol.pauseProducing()
        for _ in range(10):
            self.talker.send(self.MESSAGE)
        self.assertFalse(self.lazy.hostile.aborted)
        self.talker.send(self.MESSAGE)
        self.assertTrue(self.lazy.hostile.aborted)
        self.assertEqual(self.lazy.protocol.lost_reason, "send queue exceeded")
        self.assertEqual(len(self.lazy.take()), 10)
        self.lazy.lose(ConnectionLost)
        self.assertEqual(
            self.watcher.take(),
            [f"#lobby <talker> {self.MESSAGE}"] * 11
            + ["-!- lazy has quit (send queue exceeded)"],
        )

    def test_pausedOnEveryWriteThenCut(self) -> None:
        """
        A TCP transport pauses its producer again on every write while its
        buffer is full; the bytes queued still add up, and the client that
        does not read is cut past ``max_send_queue`` (this once never
        happened: each pause started the count again).
        """
        self.lazy.hostile.fill()
        for _ in range(11):
            self.talker.send(self.MESSAGE)
        self.assertTrue(self.lazy.hostile.aborted)
        self.assertEqual(self.lazy.protocol.lost_reason, "send queue exceeded")

    def test_othersKeepReceiving(self) -> None:
        """
        While a member does not read, and after it is cut, the others get
        every message, in order, and may keep talking.
        """
        self.lazy.hostile.fill()
        for index in range(30):
            self.talker.send(f"message {index}")
            self.watcher.send(f"reply {index}")
        self.assertTrue(self.lazy.hostile.aborted)
        self.lazy.lose(ConnectionLost)
        expected = []
        for index in range(30):
            expected += [
                f"#lobby <talker> message {index}",
                f"#lobby <watcher> reply {index}",
            ]
        quit_notice = "-!- lazy has quit (send queue exceeded)"
        self.assertEqual(self.watcher.take(), [*expected, quit_notice])
        self.assertEqual(self.talker.take(), [*expected, quit_notice])
        self.assertFalse(self.watcher.closing or self.talker.closing)

    def test_drainedClientStartsAfresh(self) -> None:
        """
        A client that catches up (its buffer drained) is counted afresh the
        next time it falls behind: being slow now and then is no offence.
        """
        for _ in range(5):
            self.lazy.hostile.fill()
            for _ in range(10):
                self.talker.send(self.MESSAGE)
            self.lazy.hostile.drain()
        self.assertFalse(self.lazy.hostile.aborted)
        self.assertFalse(self.lazy.closing)
        self.assertTrue(self.lazy.reading)

    def test_pausedClientReadsNothing(self) -> None:
        """
        A chat client whose buffer is full is not read from either: its
        lines wait (in order) until it has drained.
        """
        self.lazy.hostile.fill()
        self.assertFalse(self.lazy.reading)
        self.lazy.send("one", "two")
        self.assertEqual(self.watcher.take(), [])
        self.lazy.hostile.drain()
        self.assertEqual(
            self.watcher.take(), ["#lobby <lazy> one", "#lobby <lazy> two"]
        )

    def test_echoAndUpperHoldInput(self) -> None:
        """
        Echo and uppercase stop reading from a client that does not read
        (its transport is paused), so their replies are not buffered: input
        that was in flight waits unanswered and is answered, in order, once
        the client has read.
        """
        for make in (self.echo, self.upper):
            with self.subTest(service=make.__name__):
                peer = Peer(make(max_send_queue=100))
                peer.feed(b"first\n")
                self.assertEqual(peer.take_bytes().lower(), b"first\r\n")
                transport = peer.hostile
                transport.fill()
                self.assertFalse(peer.reading)
                for index in range(100):
                    peer.feed(b"line %d\n" % index)
                self.assertEqual(peer.transport.value(), b"")
                self.assertFalse(transport.aborted)
                transport.drain()
                self.assertTrue(peer.reading)
                self.assertEqual(
                    peer.take_bytes().lower(),
                    b"".join(b"line %d\r\n" % index for index in range(100)),
                )


class FloodTests(HostileTestCase):
    """Flood control: the chat holds a fast client back, then cuts it."""

    def setUp(self) -> None:
        super().setUp()
        # Powers of two keep the fake clock's arithmetic exact.
        self.factory = self.chat(flood_burst=10, flood_rate=4, flood_disconnect=5)
        self.flooder, self.watcher = self.room(self.factory, "flooder", "watcher")
        # Choosing the nickname took a token: let the bucket fill up again.
        self.clock.advance(10)

    def tick(self, seconds: float, step: float = 0.25) -> None:
        """
        Let time pass in steps, as a real clock does (one big
        ``Clock.advance`` would run every call at the end time).
        """
        for _ in range(round(seconds / step)):
            self.clock.advance(step)

    def said(self, *indexes: int) -> list[str]:
        return [f"#lobby <flooder> m{index}" for index in indexes]

    def test_inputWhileHeldOneTimer(self) -> None:
        """
        Input that still arrives while a flooder is held (a transport may
        deliver what it had read) joins the queue, in order, under one
        release timer; once the connection is lost, nothing it sent is
        handled any more.
        """
        self.flooder.send(*[f"m{index}" for index in range(12)])
        self.flooder.send("m12")
        self.flooder.send("m13")
        timers = [
            call
            for call in self.clock.getDelayedCalls()
            if getattr(getattr(call, "func", None), "__name__", "") == "_unthrottle"
        ]
        self.assertEqual(len(timers), 1)
        self.tick(0.5)
        self.assertEqual(self.watcher.take(), self.said(*range(12)))
        self.flooder.lose(ConnectionLost)
        self.tick(2)
        self.assertEqual(
            self.watcher.take(), ["-!- flooder has quit (connection closed)"]
        )

    def test_heldNotLost(self) -> None:
        """
        Thirty lines at once: the burst of ten is said at once, the input
        is then held (the server stops reading), and the rest follow one
        per 1/rate seconds, in order, none lost; then reading resumes.
        """
        self.flooder.send(*[f"m{index}" for index in range(30)])
        self.assertEqual(self.watcher.take(), self.said(*range(10)))
        self.assertFalse(self.flooder.reading)
        for index in range(10, 30):
            self.clock.advance(0.125)
            self.assertEqual(self.watcher.take(), [])
            self.clock.advance(0.125)
            self.assertEqual(self.watcher.take(), self.said(index))
        self.assertEqual(self.flooder.take(), self.said(*range(30)))
        self.assertTrue(self.flooder.reading)
        self.assertFalse(self.flooder.closing)

    def test_heldLineCostsOneToken(self) -> None:
        """
        Lines that arrive while input is held for another reason (here a
        client that does not read) cost their token once, when they are
        handled: a burst's worth of them is said at once on release.
        """
        self.flooder.protocol.pauseProducing()
        self.flooder.send(*[f"m{index}" for index in range(10)])
        self.assertEqual(self.watcher.take(), [])
        self.flooder.protocol.resumeProducing()
        self.assertEqual(self.watcher.take(), self.said(*range(10)))
        self.assertTrue(self.flooder.reading)

    def test_persistentFlooderCut(self) -> None:
        """
        A client that keeps flooding for ``flood_disconnect`` seconds gets
        the ``!!! flooding`` line and is closed; what it said until then
        reached the room in order, the line that tipped it over does not,
        and the room hears why it quit.
        """
        self.flooder.send(*[f"m{index}" for index in range(100)])
        self.tick(5)
        self.assertFalse(self.flooder.closing)
        self.tick(0.25)
        self.assertTrue(self.flooder.closing)
        self.assertEqual(
            self.flooder.take()[-1],
            "!!! flooding: more than 4 lines/s for 5 s; closing connection",
        )
        self.flooder.lose()
        # 10 at once, then one per 0.25 s for 5.25 s.
        self.assertEqual(
            self.watcher.take(),
            [*self.said(*range(31)), "-!- flooder has quit (flooding)"],
        )

    def test_withinRateNeverHeld(self) -> None:
        """
        A client that sends at most the burst, then waits until it has
        refilled, is never held: every line is said at once, for minutes.
        """
        sent = 0
        for _ in range(40):
            lines = [f"m{sent + index}" for index in range(10)]
            self.flooder.send(*lines)
            self.assertTrue(self.flooder.reading)
            self.assertEqual(self.watcher.take(), self.said(*range(sent, sent + 10)))
            sent += 10
            self.clock.advance(2.5)
        self.assertFalse(self.flooder.closing)

    def test_steadyJustUnderRate(self) -> None:
        """One line every 0.3 s (under 4 lines/s) for two minutes: never held."""
        for index in range(400):
            self.flooder.send(f"m{index}")
            self.assertTrue(self.flooder.reading)
            self.assertEqual(self.watcher.take(), self.said(index))
            self.clock.advance(0.3)

    def test_echoAndUpperNotFloodControlled(self) -> None:
        """
        Echo and uppercase answer only their own client: a thousand lines
        at once are all answered at once, without holding input.
        """
        for make in (self.echo, self.upper):
            with self.subTest(service=make.__name__):
                peer = Peer(make(flood_burst=10, flood_rate=4))
                peer.feed(b"x\n" * 1000)
                self.assertEqual(peer.take_bytes().lower(), b"x\r\n" * 1000)
                self.assertTrue(peer.reading)


class ConnectionLimitTests(HostileTestCase):
    """Total and per-address limits, with fake peers."""

    def test_perAddressChat(self) -> None:
        """
        Past ``max_per_address`` connections from one address, the next one
        gets the refusal line naming the address and is closed, without a
        chat session; other addresses are admitted.
        """
        factory = self.chat(max_per_address=2)
        admitted = [Peer(factory, "192.0.2.7") for _ in range(2)]
        refused = Peer(factory, "192.0.2.7")
        other = Peer(factory, "192.0.2.8")
        self.assertEqual(
            refused.take(), ["!!! too many connections from 192.0.2.7 (limit 2)"]
        )
        self.assertTrue(refused.closing)
        self.assertFalse(any(peer.closing for peer in [*admitted, other]))
        self.assertEqual(len(self.hub.sessions), 3)
        refused.lose()
        admitted[0].lose()
        again = Peer(factory, "192.0.2.7")
        self.assertFalse(again.closing)

    def test_totalChat(self) -> None:
        """
        The chat's total limit (registered clients) refuses the next client
        with ``server full``.
        """
        factory = self.chat(ChatConfig(max_clients=3))
        peers = [
            self.register(factory, f"user{index}", f"192.0.2.{index}")
            for index in range(3)
        ]
        peers.append(Peer(factory, "192.0.2.3"))
        self.assertEqual(
            peers[3].take(), ["!!! server full (3 clients); please try again later"]
        )
        self.assertTrue(peers[3].closing)
        self.assertEqual(len(self.hub.sessions), 3)

    def test_totalAndPerAddressEcho(self) -> None:
        """
        A storm of connections from many addresses: the per-address limit
        holds for each address, the total limit (registered clients, here
        those that sent a line) for the service, each refused client is told
        which, and slots are freed as connections go.
        """
        factory = self.echo(max_clients=100, max_per_address=2)
        storm = [Peer(factory, f"198.51.100.{index % 40}") for index in range(200)]
        admitted = [peer for peer in storm if not peer.closing]
        self.assertEqual(len(admitted), 80)
        for peer in admitted:
            peer.send("hi")
            self.assertEqual(peer.take_bytes(), b"hi\r\n")
        for peer in storm[80:]:
            host = peer.transport.getPeer().host
            self.assertEqual(
                peer.take_bytes(),
                f"!!! too many connections from {host} (limit 2)\r\n".encode(),
            )
        more = [Peer(factory, f"203.0.113.{index}") for index in range(50)]
        for peer in more:
            peer.send("hi")
        self.assertEqual([peer.closing for peer in more], [False] * 20 + [True] * 30)
        for peer in more[20:]:
            self.assertEqual(
                peer.take_bytes(),
                b"!!! server full (100 connections); please try again later\r\n",
            )
        late = Peer(factory, "203.0.113.99")
        self.assertTrue(late.closing)
        self.assertEqual(
            late.take_bytes(),
            b"!!! server full (100 connections); please try again later\r\n",
        )
        late.lose()
        for peer in more[20:]:
            peer.lose()
        self.assertEqual(len(factory.connections), 100)
        for peer in storm + more[:20]:
            peer.lose()
        self.assertEqual(factory.connections, set())
        self.assertFalse(Peer(factory, "198.51.100.1").closing)


class TimeoutTests(HostileTestCase):
    """Clients that never register, sit idle, or never finish a line."""

    def test_neverRegisters(self) -> None:
        """
        A chat client that never chooses a nickname is closed after
        ``nick_timeout``, even if it keeps sending (invalid nicknames).
        """
        factory = self.chat(nick_timeout=60, idle_timeout=600)
        peer = Peer(factory)
        peer.take()
        for _ in range(59):
            self.clock.advance(1)
            peer.send("not a nick")
        self.assertFalse(peer.closing)
        self.clock.advance(1)
        self.assertTrue(peer.closing)
        self.assertEqual(peer.take()[-1], "!!! no nickname chosen within 60 s; closing")

    def test_idle(self) -> None:
        """
        A registered chat client that sends nothing is closed after the idle
        timeout, and its room hears why.
        """
        factory = self.chat(idle_timeout=100)
        idler, watcher = self.room(factory, "idler", "watcher")
        self.clock.advance(99)
        watcher.send("hi")
        self.assertFalse(idler.closing)
        self.clock.advance(1)
        self.assertTrue(idler.closing)
        self.assertEqual(idler.take()[-1], "!!! idle for 100 s; closing connection")
        idler.lose()
        self.assertEqual(watcher.take()[-1], "-!- idler has quit (idle timeout)")

    def test_slowlorisEchoUpper(self) -> None:
        """
        One byte per second, never a line end: the idle timeout never fires
        (bytes keep coming), but the unfinished line is cut after
        ``line_timeout`` seconds.
        """
        for make in (self.echo, self.upper):
            with self.subTest(service=make.__name__):
                peer = Peer(make(line_timeout=10, idle_timeout=5))
                for _ in range(11):
                    peer.feed(b"G")
                    self.assertFalse(peer.closing)
                    self.clock.advance(1)
                peer.feed(b"G")
                self.assertTrue(peer.closing)
                self.assertEqual(
                    peer.take(),
                    ["!!! line not finished within 10 s; closing connection"],
                )

    def test_slowlorisChat(self) -> None:
        """
        A chat member that dribbles an endless line is cut after
        ``line_timeout``; its room hears why.
        """
        factory = self.chat(line_timeout=30)
        loris, watcher = self.room(factory, "loris", "watcher")
        for _ in range(31):
            loris.feed(b"z")
            self.clock.advance(1)
        self.assertFalse(loris.closing)
        loris.feed(b"z")
        self.assertTrue(loris.closing)
        loris.lose()
        self.assertEqual(
            watcher.take(), ["-!- loris has quit (line not finished in time)"]
        )

    def test_slowButFinishingLines(self) -> None:
        """
        A slow typist whose lines each end within ``line_timeout`` is never
        cut, however long it stays.
        """
        peer = Peer(self.echo(line_timeout=10))
        for index in range(100):
            for char in b"abcde":
                peer.feed(bytes([char]))
                self.clock.advance(1.5)
            peer.feed(b"\n")
            self.assertEqual(peer.take(), ["abcde"], index)
        self.assertFalse(peer.closing)


class AbruptDisconnectTests(HostileTestCase):
    """
    Clients that vanish: nothing of them may stay behind.

    The vanishing clients here do nothing the server logs: a log event
    refers to the protocol that logged it, and before logging has begun
    (under pytest) Twisted keeps recent events, which would keep the
    protocol alive for reasons that have nothing to do with the server.
    """

    def setUp(self) -> None:
        super().setUp()
        self.factory = self.chat(nick_timeout=60, idle_timeout=600, flood_burst=100)
        self.alice, self.bob = self.room(self.factory, "alice", "bob")
        self.alice.send("/join side", "/join lobby")
        self.bob.take()
        self.alice.take()

    def assertForgotten(self, nick: str) -> None:
        """
        The hub holds nothing of the client, its nickname is free, no timer
        of it is left, and once the test lets go of it the protocol is
        garbage (nothing else refers to it).
        """
        protocol = weakref.ref(self.alice.protocol)
        self.assertEqual([s.nick for s in self.hub.sessions], ["bob"])
        self.assertEqual(list(self.hub.nicks), ["bob"])
        backend = self.hub.backend
        assert isinstance(backend, LocalBackend)
        self.assertEqual(len(backend.lookalikes), 1)
        self.assertEqual(sorted(self.hub.rooms), ["lobby"], "an empty room remains")
        self.assertEqual([s.nick for s in self.hub.rooms["lobby"].members], ["bob"])
        self.assertEqual(len(self.factory.connections), 1)
        timers = [
            call
            for call in self.clock.getDelayedCalls()
            if getattr(cast(DelayedCall, call).func, "__self__", None)
            is self.alice.protocol
        ]
        self.assertEqual(timers, [])
        del self.alice
        gc.collect()
        leaked = protocol()
        if leaked is not None:
            self.fail(
                f"the protocol is still referred to by {gc.get_referrers(leaked)}"
            )
        newcomer = self.register(self.factory, nick)
        self.assertFalse(newcomer.closing)

    def test_vanishMidLine(self) -> None:
        """
        A client lost in the middle of a line: its rooms hear it quit, the
        half line is never said, and nothing of it stays.
        """
        self.alice.feed(b"half a li")
        self.alice.lose(ConnectionLost)
        self.assertEqual(self.bob.take(), ["-!- alice has quit (connection closed)"])
        self.assertForgotten("alice")

    def test_resetWhileServerWrites(self) -> None:
        """
        A client reset while the server is writing to it (its buffer full,
        its input held with lines waiting, its idle timer running): same
        clean-up.
        """
        self.alice.hostile.fill()
        self.alice.send(*[f"line {index}" for index in range(40)])
        for index in range(20):
            self.bob.send(f"to alice {index}")
        self.assertFalse(self.alice.reading)
        self.alice.lose(ConnectionLost)
        self.assertEqual(
            self.bob.take(),
            [f"#lobby <bob> to alice {index}" for index in range(20)]
            + ["-!- alice has quit (connection closed)"],
        )
        self.assertForgotten("alice")

    def test_lostWhileClosing(self) -> None:
        """
        A client that goes away during its grace period after being closed
        (idle) leaves nothing behind, the abort timer included.
        """
        self.clock.advance(599)
        self.bob.send("still here")
        self.clock.advance(1)
        self.assertTrue(self.alice.closing)
        self.assertFalse(self.bob.closing)
        self.alice.lose(ConnectionLost)
        self.assertEqual(self.bob.take()[-1], "-!- alice has quit (idle timeout)")
        self.assertForgotten("alice")


class ShutdownTests(HostileTestCase):
    """``closeAll``: every client hears goodbye; those that do not read are cut."""

    def test_nonReaderAbortedAfterGrace(self) -> None:
        """
        On shutdown every chat client gets the goodbye line; one that reads
        it is gone at once, one that does not is aborted after
        ``close_grace`` and not before, and the result fires when both are
        gone.
        """
        factory = self.chat(close_grace=5)
        reader = Peer(
            factory,
            transport=StringTransportWithDisconnection(
                peerAddress=IPv4Address("TCP", "10.0.0.2", next(_ports))
            ),
        )
        reader.send("reader")
        stubborn = self.register(factory, "stubborn")
        stubborn.hostile.fill()
        reader.take()
        closed = factory.closeAll()
        self.assertEqual(reader.take()[-1], SHUTDOWN)
        self.assertEqual(stubborn.take()[-1], SHUTDOWN)
        self.assertFalse(reader.transport.connected)
        self.assertNoResult(closed)
        self.clock.advance(4.9)
        self.assertFalse(stubborn.hostile.aborted)
        self.clock.advance(0.1)
        self.assertTrue(stubborn.hostile.aborted)
        self.assertNoResult(closed)
        stubborn.lose(ConnectionLost)
        self.assertIsNone(self.successResultOf(closed))
        self.assertEqual(self.hub.sessions, {})
        self.assertEqual(self.clock.getDelayedCalls(), [])
