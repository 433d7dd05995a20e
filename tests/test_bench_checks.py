"""
Tests for what the benchmark checks besides speed (``bench/``): the fan-out
load generator counts each delivery once, by its sender and sequence
number, and reports duplicates, deliveries out of order and unexpected
lines (:class:`loadgen.FanoutCheck`); ``bench/run.py`` fails a run that has
any, and never counts a target resting on a saturated run as met.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

BENCH = Path(__file__).resolve().parent.parent / "bench"
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))

# bench/ is scripts, not a package: import them as bench/run.py does.
loadgen: Any = importlib.import_module("loadgen")
run: Any = importlib.import_module("run")


def delivery(sender: int, number: int) -> bytes:
    """One fan-out delivery as chatservice (and the naive baseline) sends it."""
    text: bytes = loadgen.FANOUT_TEXT % number
    return b"#lobby <s%05d> " % sender + text


class FanoutCheckTests(SynchronousTestCase):
    """loadgen.FanoutCheck: every delivery by its sender and number."""

    def test_eachDeliveryCountedOnce(self) -> None:
        """
        Deliveries of two senders, interleaved and split across reads (a
        line cut in the middle), are each counted once; nothing is missing
        once each receiver has every message.
        """
        check = loadgen.FanoutCheck(receivers=2, senders=2)
        stream = b"".join(delivery(s, n) for n in range(3) for s in (0, 1))
        for receiver in (0, 1):
            check.take(receiver, stream[:50])
            check.take(receiver, stream[50:])
        self.assertEqual(check.delivered, 12)
        self.assertEqual(
            (check.duplicates, check.out_of_order, check.unexpected), (0, 0, 0)
        )
        self.assertEqual(check.missing([3, 3]), 0)
        self.assertTrue(check.complete(0, [3, 3]))
        self.assertFalse(check.complete(1, [4, 3]))
        self.assertEqual(check.missing([4, 3]), 2)

    def test_duplicateDoesNotHideLoss(self) -> None:
        """
        A duplicate is counted as one, not as a delivery: with one message
        lost and another received twice, one is missing and one duplicated
        (a count of lines would see the right number and nothing wrong).
        """
        check = loadgen.FanoutCheck(receivers=1, senders=1)
        check.take(0, delivery(0, 0) + delivery(0, 1) + delivery(0, 1))
        self.assertEqual((check.delivered, check.duplicates), (2, 1))
        self.assertEqual(check.missing([3]), 1)

    def test_outOfOrder(self) -> None:
        """
        A delivery ahead of its sender's next number is out of order; the
        one skipped, arriving late, is then a duplicate: both are reported.
        """
        check = loadgen.FanoutCheck(receivers=1, senders=1)
        check.take(0, delivery(0, 1) + delivery(0, 0))
        self.assertEqual((check.out_of_order, check.duplicates), (1, 1))

    def test_unexpectedLines(self) -> None:
        """
        A complete line that is no delivery (a notice, an error, a
        mangled delivery) is counted and quoted, at most 5 of them; a line
        still incomplete is not judged yet.
        """
        check = loadgen.FanoutCheck(receivers=1, senders=1)
        lines = [b"-!- s00001 has quit\r\n", b"!!! slow down\r\n"]
        check.take(0, delivery(0, 0) + b"".join(lines) + b"#lobby <s0")
        self.assertEqual((check.delivered, check.unexpected), (1, 2))
        self.assertEqual(check.sample, ["-!- s00001 has quit", "!!! slow down"])
        check.take(0, b"0000> F00000001 fan-out garbled\r\n" * 10)
        self.assertEqual(check.unexpected, 12)
        self.assertEqual(len(check.sample), loadgen.SAMPLE_LINES)


def record(**fields: Any) -> Any:
    """A run.Record of one fan-out run with these report fields."""
    report: dict[str, object] = {"value": 1.0, "unit": "deliveries/s", **fields}
    return run.Record("fanout", "chatservice", [report])


class RunVerdictTests(SynchronousTestCase):
    """bench/run.py's verdicts on what the load generator reported."""

    def test_violationsReported(self) -> None:
        """
        A run's duplicates, deliveries out of order and unexpected lines are
        its violations, by kind; a clean run has none.
        """
        self.assertEqual(record(lost=0).violations, {})
        wrong = record(duplicates=2, out_of_order=0, unexpected_lines=1)
        self.assertEqual(wrong.violations, {"duplicates": 2, "unexpected_lines": 1})

    def test_violationsFailTheTable(self) -> None:
        """The table flags every violation next to the figure."""
        records = {("fanout", "chatservice"): record(duplicates=3)}
        workloads = [w for w in run.WORKLOADS if w.name == "fanout"]
        rows, _ = run.table(records, workloads)
        self.assertIn("DUPLICATES 3", rows[1][-1])

    def test_saturatedIsNoPass(self) -> None:
        """
        A target met by a run flagged saturated (of chatservice or of the
        baseline it is compared with) is n/a, not a pass; unsaturated, the
        same figures pass.
        """
        fanout = next(w for w in run.WORKLOADS if w.name == "fanout")
        for saturated in ("chatservice", "naive-chat", None):
            records = {
                ("fanout", server): run.Record(
                    "fanout",
                    server,
                    [
                        {
                            "value": value,
                            "unit": "deliveries/s",
                            "saturated": server == saturated,
                        }
                    ],
                )
                for server, value in (("chatservice", 300.0), ("naive-chat", 100.0))
            }
            _, verdicts = run.table(records, [fanout])
            expected = None if saturated else True
            self.assertEqual(verdicts, [("fanout ≥ 2x naive-chat", expected)])
