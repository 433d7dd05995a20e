"""
Fuzzing the line protocol with Hypothesis: random byte streams cut at
random points into reads, fed to the echo, uppercase and chat protocols on
in-memory transports and a fake clock, and random command shapes for the
chat.

Whatever arrives, no exception escapes, nothing is logged with a
traceback, the input buffer stays within the line limit plus one read, and
the server only ever writes whole lines.  For echo and uppercase, a small
model of the protocol says exactly what must come back.
"""

from __future__ import annotations

from itertools import pairwise
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from chatservice.backends.local import LocalBackend
from chatservice.chat.hub import Hub
from chatservice.conn.limits import Limits
from chatservice.conn.turns import end_of_turn
from chatservice.doors.answers import is_quit_word
from chatservice.doors.commands import COMMANDS
from chatservice.doors.echo import EchoFactory
from chatservice.doors.line import LineFactory
from chatservice.doors.native.protocol import ChatFactory, ChatSettings
from chatservice.doors.upper import UpperFactory
from chatservice.stores.memory import MemoryHistoryStore
from tests.support import logged_failures
from tests.test_hostile import Peer

#: A small limit, so that random input reaches it often.
LIMIT = 48
TOO_LONG = f"!!! line too long (limit {LIMIT} bytes); closing connection".encode()

#: Pieces that matter to a line parser, mixed into random bytes.
SPECIAL = [
    b"\n",
    b"\r\n",
    b"\r",
    b"\x00",
    b"\xff",
    b"\xc3",  # the first half of a two-byte character
    "é".encode(),
    "☃".encode(),
    "🎉".encode(),
    b"q\n",
    b"quit\r\n",
    b" Q\t\n",  # quit words, any case, within ASCII blanks
    b"\x0bExIt \r\r\n",
    b"\rquit\x0c\n",
    b"quit\x1c\n",  # not a blank: not a quit word
    b"quiet\n",
    b"/nick fuzz\n",
    b"/join room\n",
    b"/quit\n",
    b"x" * (LIMIT - 1),
    b"x" * LIMIT,
]

pieces = st.one_of(
    st.binary(max_size=40),
    st.sampled_from(SPECIAL),
    st.text(max_size=20).map(lambda text: text.encode("utf-8", "surrogatepass")),
)


@st.composite
def streams(draw: st.DrawFn) -> tuple[bytes, list[bytes]]:
    """A byte stream and the reads it arrives in (cut at random points)."""
    stream = b"".join(draw(st.lists(pieces, max_size=30)))
    cuts = sorted(draw(st.lists(st.integers(0, len(stream)), max_size=12, unique=True)))
    bounds = [0, *cuts, len(stream)]
    reads = [stream[a:b] for a, b in pairwise(bounds) if b > a]
    return stream, reads


FUZZ = settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def invalid_line(line: bytes) -> bytes | None:
    """The error line for a line that is not UTF-8, or ``None``."""
    try:
        line.decode("utf-8")
    except UnicodeDecodeError as error:
        return (
            f"!!! invalid UTF-8 (byte 0x{line[error.start]:02x} at position "
            f"{error.start}); line ignored, please send UTF-8 text"
        ).encode()
    return None


def model(stream: bytes, answer: Any) -> list[bytes]:
    """
    What echo or uppercase must send back for a whole stream, however it
    was cut: ``answer(line)`` for each line, until an over-long line or a
    quit word ends the connection.
    """
    *lines, rest = stream.split(b"\n")
    replies: list[bytes] = []
    for line in lines:
        line = line.removesuffix(b"\r")
        if len(line) > LIMIT:
            return [*replies, TOO_LONG]
        if is_quit_word(line):
            return [*replies, b"Goodbye."]
        replies.append(answer(line))
    if len(rest) > LIMIT + 1:
        replies.append(TOO_LONG)
    return replies


def upper_answer(line: bytes) -> bytes:
    return invalid_line(line) or line.decode("utf-8").upper().encode("utf-8")


class FuzzTestCase(SynchronousTestCase):
    """Collects anything logged with a traceback."""

    def setUp(self) -> None:
        self.failures = logged_failures(self)

    def feed(self, peer: Peer, reads: list[bytes], clock: Clock) -> None:
        """
        Feed the reads as a TCP transport would: never while the server
        holds the connection's input (time passes until it reads again),
        checking the invariants after each: the buffer never holds more than
        the limit (and a ``\r``) plus one read, and stops growing once the
        connection is closing.
        """
        largest = 0
        for data in reads:
            for _ in range(1000):
                if peer.reading or peer.closing:
                    break
                clock.advance(1)
            self.assertTrue(peer.reading or peer.closing, "held for good")
            closing, before = peer.closing, len(peer.protocol._partial)
            largest = max(largest, len(data))
            peer.feed(data)
            buffered = len(peer.protocol._partial)
            self.assertLessEqual(buffered, LIMIT + 1 + largest)
            if closing:
                self.assertLessEqual(buffered, before)
            self.assertWholeLines(peer)
        self.assertEqual(self.failures, [])

    def assertWholeLines(self, peer: Peer) -> None:
        written = peer.transport.value()
        self.assertTrue(written == b"" or written.endswith(b"\r\n"), written[-80:])


class ParserFuzzTests(FuzzTestCase):
    """Random bytes, cut anywhere, to every front end."""

    def limits(self, **given: Any) -> Limits:
        return Limits(max_line_length=LIMIT, max_per_address=0, **given)

    def served(self, factory: LineFactory, reads: list[bytes], clock: Clock) -> Peer:
        peer = Peer(factory)
        self.feed(peer, reads, clock)
        return peer

    @FUZZ
    @given(streams())
    def test_echo(self, sample: tuple[bytes, list[bytes]]) -> None:
        """
        The echo service returns exactly the model's lines for any stream
        cut into any reads: each line byte for byte, up to a quit word or an
        over-long line; nothing else, nothing partial.
        """
        stream, reads = sample
        clock = Clock()
        peer = self.served(EchoFactory(self.limits(), clock), reads, clock)
        expected = model(stream, lambda line: line)
        self.assertEqual(
            peer.transport.value(), b"".join(x + b"\r\n" for x in expected)
        )

    @FUZZ
    @given(streams())
    def test_upper(self, sample: tuple[bytes, list[bytes]]) -> None:
        """
        The uppercase service returns exactly the model's lines: each line
        upper-cased, or the invalid-UTF-8 error for it, up to a quit word or
        an over-long line.
        """
        stream, reads = sample
        clock = Clock()
        peer = self.served(UpperFactory(self.limits(), clock), reads, clock)
        expected = model(stream, upper_answer)
        self.assertEqual(
            peer.transport.value(), b"".join(x + b"\r\n" for x in expected)
        )

    @FUZZ
    @given(streams(), st.booleans())
    def test_chat(self, sample: tuple[bytes, list[bytes]], registered: bool) -> None:
        """
        A chat client (registered or not) sending any stream, cut anywhere,
        under flood control: no exception, whole lines to it and to another
        member of its room, and once it is gone the hub holds nothing of it.
        """
        _, reads = sample
        clock = Clock()
        hub = Hub(
            clock=clock.seconds, backend=LocalBackend(call_soon=end_of_turn(clock).soon)
        )
        factory = ChatFactory(
            hub,
            self.limits(flood_burst=5, flood_rate=1, flood_disconnect=30),
            clock,
            settings=ChatSettings(nick_timeout=0),
        )
        witness = Peer(factory)
        witness.send("witness")
        peer = Peer(factory)
        if registered:
            peer.send("fuzzer")
        self.feed(peer, reads, clock)
        self.assertWholeLines(witness)
        peer.lose()
        self.assertEqual([s.nick for s in hub.sessions], ["witness"])
        self.assertEqual(list(hub.nicks), ["witness"])
        self.assertEqual(hub.rooms["lobby"].nicks(), ["witness"])
        self.assertEqual(self.failures, [])


words = st.one_of(
    st.sampled_from(["fuzzer", "witness", "lobby", "#lobby", "room", "-", "/", "*"]),
    # Numbers as a count or a duration might be read: what int() refuses
    # though str.isdigit() accepts ("²"), other scripts' digits, signs,
    # exponents, separators, and one too large for anything.
    st.sampled_from(["0", "-1", "+5", "²", "٣", "1e3", "1_000", "5m", "9" * 30]),
    st.text(
        st.characters(exclude_categories=["Cs"], exclude_characters="\r\n"),
        max_size=12,
    ),
)
command_names = st.one_of(
    st.sampled_from(sorted({*COMMANDS, "list", "names", "m", "query"})),
    st.text(
        st.characters(exclude_categories=["Cs"], exclude_characters="\r\n "),
        max_size=8,
    ),
)


@st.composite
def commands(draw: st.DrawFn) -> str:
    """``/`` + a command name (real or not) + random words."""
    name = draw(command_names)
    if draw(st.booleans()):
        name = name.upper()
    args = draw(st.lists(words, max_size=4))
    return " ".join(["/" + name, *args])


class CommandFuzzTests(FuzzTestCase):
    """Random command shapes to the chat."""

    @settings(max_examples=200, deadline=None)
    @given(st.lists(commands(), min_size=1, max_size=25))
    def test_everyCommandAnswered(self, lines: list[str]) -> None:
        """
        Every command line, real or not, well-formed or not, gets at least
        one line back (an answer, an error, or the event it caused), and no
        exception escapes; ``/quit`` ends it with a goodbye.  (With a history
        store, so that ``/history`` reads one.)
        """
        clock = Clock()
        hub = Hub(
            clock=clock.seconds,
            backend=LocalBackend(call_soon=end_of_turn(clock).soon),
            store=MemoryHistoryStore(100, clock=clock.seconds),
        )
        factory = ChatFactory(
            hub,
            Limits(max_per_address=0),
            clock,
            settings=ChatSettings(nick_timeout=0),
        )
        witness = Peer(factory)
        witness.send("witness")
        peer = Peer(factory)
        peer.send("fuzzer")
        peer.take_bytes()
        for line in lines:
            # One line a second: within the flood rate.
            clock.advance(1)
            data = line.encode("utf-8") + b"\r\n"
            self.assertLessEqual(len(data), 4096)
            peer.feed(data)
            answer = peer.take_bytes()
            self.assertTrue(answer.endswith(b"\r\n"), f"no answer to {line!r}")
            if peer.closing:
                break
        self.assertWholeLines(witness)
        self.assertEqual(self.failures, [])
