"""
The echo and uppercase services answer a whole read in one pass when they
can; these tests check that this gives exactly what answering line by line
gives, whatever the input.
"""

from __future__ import annotations

from itertools import pairwise

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase

from chatservice.conn.limits import Limits
from chatservice.doors.answers import plain_lines
from chatservice.doors.echo import EchoFactory, EchoProtocol
from chatservice.doors.line import LineFactory
from chatservice.doors.upper import UpperFactory, UpperProtocol

LIMITS = Limits(max_line_length=64, idle_timeout=0, line_timeout=0)

#: Lines mixing what matters: text, \r, blanks, quit words, bad UTF-8.
PIECES = st.sampled_from(
    [b"a", b"Stra\xc3\x9fe", b"\xef\xac\x81", b"\r", b" ", b"\t", b"q", b"quit",
     b"EXIT", b"\xff", b"\xc3", b"\x00", b"x" * 30, b"\xcf\x83"]
)  # fmt: skip
LINE = st.lists(PIECES, max_size=4).map(b"".join)
ENDING = st.sampled_from([b"\n", b"\r\n"])
READS = st.lists(
    st.lists(st.tuples(LINE, ENDING).map(b"".join), min_size=1, max_size=6).map(
        b"".join
    ),
    min_size=1,
    max_size=4,
)

#: The same lines cut anywhere: reads that end mid-line, or mid-CRLF.
CUT_READS = st.tuples(READS, st.lists(st.integers(0, 400), max_size=5)).map(
    lambda drawn: cut(b"".join(drawn[0]), drawn[1])
)


def cut(data: bytes, points: list[int]) -> list[bytes]:
    """``data`` cut at these offsets (within its length) into reads."""
    offsets = sorted({0, len(data), *(p for p in points if p < len(data))})
    return [data[a:b] for a, b in pairwise(offsets)]


def answers(factory: LineFactory, reads: list[bytes]) -> tuple[bytes, bool]:
    """What a connection writes for these reads, and whether it closed."""
    protocol = factory.buildProtocol(None)
    assert protocol is not None
    transport = StringTransport()
    protocol.makeConnection(transport)
    for data in reads:
        protocol.dataReceived(data)
    return transport.value(), bool(transport.disconnecting)


class SlowEcho(EchoProtocol):
    fast_answers = False


class SlowUpper(UpperProtocol):
    fast_answers = False


class FastAnswersTests(SynchronousTestCase):
    """One pass or line by line: the same bytes out."""

    @settings(max_examples=300, deadline=None)
    @given(READS)
    def test_echoSameAsLineByLine(self, reads: list[bytes]) -> None:
        """The echo's one-pass answer equals its line-by-line answer."""
        fast = EchoFactory(LIMITS, Clock())
        slow = EchoFactory(LIMITS, Clock())
        slow.protocol = SlowEcho
        self.assertEqual(answers(fast, reads), answers(slow, reads))

    @settings(max_examples=300, deadline=None)
    @given(READS)
    def test_upperSameAsLineByLine(self, reads: list[bytes]) -> None:
        """The uppercase service's one-pass answer equals line by line."""
        fast = UpperFactory(LIMITS, Clock())
        slow = UpperFactory(LIMITS, Clock())
        slow.protocol = SlowUpper
        self.assertEqual(answers(fast, reads), answers(slow, reads))

    @settings(max_examples=300, deadline=None)
    @given(CUT_READS)
    def test_cutAnywhereSameAsLineByLine(self, reads: list[bytes]) -> None:
        """
        With reads cut anywhere (mid-line, between \r and \n), both services
        answer as they do line by line.
        """
        for factory_type, slow_protocol in (
            (EchoFactory, SlowEcho),
            (UpperFactory, SlowUpper),
        ):
            fast = factory_type(LIMITS, Clock())
            slow = factory_type(LIMITS, Clock())
            slow.protocol = slow_protocol
            self.assertEqual(answers(fast, reads), answers(slow, reads))

    def test_onePassIsTaken(self) -> None:
        """A read of plain lines is answered without the line-by-line path."""
        factory = UpperFactory(LIMITS, Clock())
        protocol = factory.buildProtocol(None)
        assert isinstance(protocol, UpperProtocol)
        calls: list[bytes] = []
        protocol.lineReceived = calls.append
        transport = StringTransport()
        protocol.makeConnection(transport)
        protocol.dataReceived(b"one\ntwo\r\nstra\xc3\x9fe\n")
        self.assertEqual(calls, [])
        self.assertEqual(transport.value(), b"ONE\r\nTWO\r\nSTRASSE\r\n")


class PlainLinesTests(SynchronousTestCase):
    """plain_lines(): the one-regex test that lets a read be echoed as is."""

    def test_plain(self) -> None:
        """Lines that all end in CRLF and hold no quit word are plain."""
        for lines in [
            b"a\r\n",
            b"a\r\nb\r\n",
            b"\r\n",
            b"quiet\r\nexits\r\nqq\r\n",
            b"x\r\r\n",  # a \r in the line, then CRLF: echoed as it came
            b"a quit\r\n",
        ]:
            self.assertTrue(plain_lines(lines), lines)

    def test_notPlain(self) -> None:
        """A bare LF ending or a quit word anywhere makes a read not plain."""
        for lines in [
            b"a\n",
            b"\n",
            b"a\r\nb\n",
            b"a\nb\r\n",
            b"quit\r\n",
            b"a\r\n  Q \r\n",
            b"a\r\nExIt\n",
            b"a\r\n\tq\x0b\x0c\r\n",
        ]:
            self.assertFalse(plain_lines(lines), lines)
