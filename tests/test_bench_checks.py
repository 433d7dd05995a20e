"""
Tests for what the benchmark checks besides speed (``bench/``): the fan-out
load generator counts each delivery once, by its sender and sequence
number, and reports duplicates, deliveries out of order and unexpected
lines (:class:`loadgen.FanoutCheck`), and so does the C one
(``bench/fanout_loadgen.c``), against a fake chat server that breaks the
rules; ``bench/run.py`` fails a run that has any, and never counts a target
resting on a saturated run as met.
"""

from __future__ import annotations

import importlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from twisted.trial.unittest import SkipTest, SynchronousTestCase

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


class FaultyChat:
    """
    A fake chat server on a loopback port, one thread per client: a client
    registers with its nickname line and gets ``--- you are NICK; you are
    in #lobby``; every line a client says goes to every member as
    ``#lobby <NICK> LINE``, except that, when ``faulty``, sender 0's
    messages reach the receivers broken: r00000 gets message 2 twice and a
    line that is no delivery after message 3; r00001 gets message 6 before
    message 5 and never gets message 8; and r00001 gets no message of
    sender 1 from its 10th on.
    """

    def __init__(self, faulty: bool, irc: bool = False) -> None:
        self.faulty = faulty
        #: Speak IRC (:meth:`serve_irc`) rather than the native protocol.
        self.irc = irc
        self.members: dict[bytes, socket.socket] = {}
        self.lock = threading.Lock()
        self.held: bytes | None = None
        self.listeners: list[socket.socket] = []
        #: Connections accepted, by the port they came to.
        self.accepted: dict[int, int] = {}
        self.port = self.listen()

    def listen(self) -> int:
        """
        Listen on one more loopback port (a second node of the same chat,
        as two sharing a Redis are: its clients are in the same #lobby).
        """
        listener = socket.create_server(("127.0.0.1", 0))
        self.listeners.append(listener)
        port: int = listener.getsockname()[1]
        self.accepted[port] = 0
        threading.Thread(target=self.accept, args=(listener, port), daemon=True).start()
        return port

    def close(self) -> None:
        for listener in self.listeners:
            listener.close()
        with self.lock:
            for member in self.members.values():
                member.close()

    def accept(self, listener: socket.socket, port: int) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            with self.lock:
                self.accepted[port] += 1
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            serve = self.serve_irc if self.irc else self.serve
            threading.Thread(target=serve, args=(client,), daemon=True).start()

    def serve(self, client: socket.socket) -> None:
        reader = client.makefile("rb")
        try:
            nick = reader.readline().strip()
            with self.lock:
                self.members[nick] = client
                client.sendall(b"--- you are %s; you are in #lobby\r\n" % nick)
            for line in reader:
                self.say(nick, line.rstrip(b"\r\n"))
        except OSError:
            pass

    def serve_irc(self, client: socket.socket) -> None:
        """
        The same over IRC: ``NICK``, ``USER``, then 001; ``JOIN #lobby``,
        then 366; a ``PRIVMSG #lobby`` goes to every member but its sender
        as ``:NICK!NICK@fake PRIVMSG #lobby :TEXT``.
        """
        reader = client.makefile("rb")
        nick = b"*"
        try:
            for line in reader:
                command, _, rest = line.rstrip(b"\r\n").partition(b" ")
                if command == b"NICK":
                    nick = rest
                elif command == b"USER":
                    client.sendall(b":fake 001 %s :Welcome\r\n" % nick)
                elif command == b"JOIN":
                    with self.lock:
                        self.members[nick] = client
                        client.sendall(
                            b":%s!%s@fake JOIN #lobby\r\n"
                            b":fake 353 %s = #lobby :%s\r\n"
                            b":fake 366 %s #lobby :End of /NAMES list.\r\n"
                            % (nick, nick, nick, nick, nick)
                        )
                elif command == b"PRIVMSG":
                    self.say(nick, rest.partition(b" :")[2])
        except OSError:
            pass

    def say(self, nick: bytes, text: bytes) -> None:
        if self.irc:
            line = b":%s!%s@fake PRIVMSG #lobby :%s\r\n" % (nick, nick, text)
        else:
            line = b"#lobby <%s> %s\r\n" % (nick, text)
        number = int(text[1:9]) if text.startswith(b"F") else -1
        with self.lock:
            for member, conn in self.members.items():
                if not (self.irc and member == nick):
                    conn.sendall(self.broken(member, nick, number, line))

    def broken(self, member: bytes, nick: bytes, number: int, line: bytes) -> bytes:
        """What ``member`` gets of ``line`` (message ``number`` of ``nick``)."""
        if not self.faulty:
            return line
        if nick == b"s00001":
            return b"" if member == b"r00001" and number >= 10 else line
        if nick != b"s00000":
            return line
        if member == b"r00000" and number == 2:
            return line * 2
        if member == b"r00000" and number == 3:
            return line + b"!!! slow down\r\n"
        if member == b"r00001" and number == 5:
            self.held = line
            return b""
        if member == b"r00001" and number == 6 and self.held is not None:
            return line + self.held
        if member == b"r00001" and number == 8:
            return b""
        return line


def short_run(
    case: SynchronousTestCase, program: list[str], mode: str, port: int, *options: str
) -> dict[str, Any]:
    """
    The report of a short run of a load generator's ``mode`` against
    ``port`` (2 receivers and 2 senders unless ``options`` say otherwise,
    a 0.2 s warm-up, 0.5 s measured, 2 s to drain); ``case`` fails unless it
    exits with status 0.
    """
    argv = [*program, mode, "--port", str(port), *options]
    defaults = {
        "--receivers": "2",
        "--senders": "2",
        "--warmup": "0.2",
        "--duration": "0.5",
        "--drain-timeout": "2",
        "--timeout": "30",
    }
    for name, value in defaults.items():
        if name not in options:
            argv += [name, value]
    done = subprocess.run(argv, capture_output=True, timeout=60, check=False)
    report: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    case.assertEqual(done.returncode, 0, report)
    return report


def built_loadgen(case: SynchronousTestCase, source: Path) -> str:
    """
    A C load generator (``source``) built as bench/run.py builds it, removed
    when ``case`` ends: its program.
    """
    if run.c_compiler() is None:
        raise SkipTest("no C compiler (cc, gcc or $CC)")
    directory = Path(tempfile.mkdtemp(prefix=f"chatservice-{source.stem}-"))
    case.addCleanup(shutil.rmtree, directory, ignore_errors=True)
    program, how = run.build_c_loadgen(directory, source)
    case.assertIsNotNone(program, how)
    return str(program)


def fanout_loadgen(case: SynchronousTestCase) -> list[str]:
    """``bench/fanout_loadgen.c``, built: the command that runs it."""
    return [built_loadgen(case, run.FANOUT_LOADGEN_SOURCE)]


class FanoutLoadGeneratorTests(SynchronousTestCase):
    """
    Both fan-out load generators (``loadgen.py fanout`` and the C one) run
    against :class:`FaultyChat` and report the same violations.
    """

    def fanout(self, program: list[str], faulty: bool, *options: str) -> dict[str, Any]:
        """
        The report of a short fan-out run of ``program`` (with ``options``)
        against a fake, an IRC one with ``--protocol irc``.
        """
        server = FaultyChat(faulty, irc="irc" in options)
        self.addCleanup(server.close)
        return short_run(
            self, program, "fanout", server.port, "--window", "2", *options
        )

    def c_program(self) -> list[str]:
        """The C fan-out load generator, built as bench/run.py builds it."""
        return fanout_loadgen(self)

    def assertViolations(self, report: dict[str, Any], faulty: bool) -> None:
        """``report`` has exactly the violations :class:`FaultyChat` caused."""
        expected = (
            # A duplicate; message 5 after 6 (out of order, then late); 9
            # after 7 (out of order); the end of sender 1's, lost.
            (2, 2, 1, ["!!! slow down"], True, False)
            if faulty
            else (0, 0, 0, [], False, True)
        )
        found = (
            report["duplicates"],
            report["out_of_order"],
            report["unexpected_lines"],
            report["unexpected_sample"],
            report["lost"] > 0,
            report["drained"],
        )
        self.assertEqual(found, expected, report)
        self.assertGreater(report["deliveries"], 0, report)
        self.assertGreater(report["messages_sent"], 8, report)

    def test_cLoadGeneratorChecks(self) -> None:
        """
        The C fan-out load generator counts a duplicate, deliveries out of
        order (and the late one one of them skipped), a line that is no
        delivery (quoted) and deliveries never received (the drain fails),
        as loadgen.py does; against a correct server, none of them.
        """
        program = self.c_program()
        for faulty in (True, False):
            report = self.fanout(program, faulty)
            self.assertEqual(report["loadgen"], "c")
            self.assertViolations(report, faulty)

    def test_cLoadGeneratorChecksOverIRC(self) -> None:
        """
        Over IRC (``--protocol irc``: registered with NICK and USER, joined
        once welcomed, deliveries as PRIVMSG lines, windows kept by
        receiver 0) the C load generator reports the same violations, and
        none against a correct server.
        """
        program = self.c_program()
        for faulty in (True, False):
            report = self.fanout(program, faulty, "--protocol", "irc")
            self.assertEqual((report["protocol"], report["pace"]), ("irc", "receiver"))
            self.assertViolations(report, faulty)

    def test_cLoadGeneratorPacedByAReceiver(self) -> None:
        """
        ``--pace receiver`` over the native protocol (the irc-fanout
        workload's native door) keeps the checks, and the run goes on.
        """
        program = self.c_program()
        for faulty in (True, False):
            report = self.fanout(program, faulty, "--pace", "receiver")
            self.assertEqual(report["pace"], "receiver")
            self.assertViolations(report, faulty)

    def test_pythonLoadGeneratorChecks(self) -> None:
        """
        loadgen.py fanout reports the same violations against the same
        faulty server, and none against a correct one.
        """
        program = [sys.executable, str(BENCH / "loadgen.py")]
        for faulty in (True, False):
            report = self.fanout(program, faulty)
            self.assertEqual(report["loadgen"], "python")
            self.assertViolations(report, faulty)

    def test_sameReportKeys(self) -> None:
        """The C and Python fan-out load generators report the same keys."""
        c_report = self.fanout(self.c_program(), False)
        python = self.fanout([sys.executable, str(BENCH / "loadgen.py")], False)
        self.assertEqual(sorted(c_report), sorted(python))


class LatencyLoadGeneratorTests(SynchronousTestCase):
    """
    Both latency load generators (``loadgen.py latency`` and
    ``fanout_loadgen latency``) run against :class:`FaultyChat` (correct:
    it relays every line), natively and over IRC, and report alike.
    """

    def latency(
        self, program: list[str], *options: str, second_node: bool = False
    ) -> dict[str, Any]:
        """
        The report of a short latency run of ``program`` (with ``options``)
        against a correct fake, an IRC one with ``--protocol irc``; with
        ``second_node``, ``--second-port`` names a second port of the fake,
        and the report gets ``second_node_connections``: how many came there.
        """
        server = FaultyChat(False, irc="irc" in options)
        self.addCleanup(server.close)
        if second_node:
            options += ("--second-port", str(server.listen()))
        report = short_run(
            self,
            program,
            "latency",
            server.port,
            "--receivers",
            "3",
            "--rate",
            "100",
            *options,
        )
        if second_node:
            report["second_node_connections"] = list(server.accepted.values())[1]
        return report

    def assertMeasured(self, report: dict[str, Any], protocol: str) -> None:
        """
        ``report`` measured every receiver's copy of each message sent after
        the warm-up (about 50 at 100/s for 0.5 s), lost none, and has
        percentiles in order (p50 ≤ p99 ≤ max, for both clocks).
        """
        self.assertEqual(report["protocol"], protocol)
        self.assertEqual(report["lost"], 0, report)
        self.assertEqual((report["receivers"], report["senders"]), (3, 2))
        self.assertEqual(report["samples"] % 3, 0, report)
        self.assertGreater(report["samples"], 3 * 30, report)
        self.assertLess(report["samples"], 3 * 70, report)
        self.assertEqual(report["value"], report["p99_ms"])
        self.assertGreater(report["p50_ms"], 0, report)
        self.assertLessEqual(report["p50_ms"], report["p99_ms"])
        self.assertLessEqual(report["p99_ms"], report["max_ms"])
        self.assertLessEqual(report["read_p50_ms"], report["read_p99_ms"])
        self.assertLessEqual(report["read_p99_ms"], report["read_max_ms"])
        self.assertGreater(report["messages_per_s"], 0, report)
        self.assertEqual(report["unit"], "ms p99")

    def test_cLoadGenerator(self) -> None:
        """
        ``fanout_loadgen latency`` sends stamped lines and measures them at
        every receiver, natively and over IRC (PRIVMSG, a sender not
        hearing itself), with the kernel's receive stamps.
        """
        program = fanout_loadgen(self)
        for protocol in ("native", "irc"):
            report = self.latency(program, "--protocol", protocol)
            self.assertEqual(report["loadgen"], "c")
            self.assertEqual(report["measured_at"], "kernel receive", report)
            self.assertMeasured(report, protocol)

    def test_pythonLoadGenerator(self) -> None:
        """``loadgen.py latency`` measures the same, natively and over IRC."""
        program = [sys.executable, str(BENCH / "loadgen.py")]
        for protocol in ("native", "irc"):
            report = self.latency(program, "--protocol", protocol)
            self.assertEqual(report["loadgen"], "python")
            self.assertMeasured(report, protocol)

    def test_secondNode(self) -> None:
        """
        With ``--second-port`` both load generators put every other
        receiver (one of three) on the second node, the senders on the
        first, and measure every receiver alike.
        """
        python = [sys.executable, str(BENCH / "loadgen.py")]
        for program in (fanout_loadgen(self), python):
            report = self.latency(program, second_node=True)
            self.assertEqual(report["second_node_connections"], 1, report)
            self.assertMeasured(report, "native")

    def test_sameReportKeys(self) -> None:
        """
        The C and Python latency load generators report the same keys,
        natively and over IRC.
        """
        c_program = fanout_loadgen(self)
        python = [sys.executable, str(BENCH / "loadgen.py")]
        for protocol in ("native", "irc"):
            c_report = self.latency(c_program, "--protocol", protocol)
            python_report = self.latency(python, "--protocol", protocol)
            self.assertEqual(sorted(c_report), sorted(python_report))


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

    def test_busyMachineLatencyIsNoVerdict(self) -> None:
        """
        A latency run that began with the machine busy (load average above
        ``BUSY_LOAD``) is flagged BUSY and its target is n/a, whether its
        figure met the target or not; the same figures on a quiet machine
        pass or fail.
        """
        latency = next(w for w in run.WORKLOADS if w.name == "latency")
        for p99, load, expected in (
            (2.0, run.BUSY_LOAD + 1, None),
            (9.0, run.BUSY_LOAD + 1, None),
            (2.0, 0.5, True),
            (9.0, 0.5, False),
        ):
            records = {
                ("latency", "chatservice"): run.Record(
                    "latency",
                    "chatservice",
                    [{"value": p99, "unit": "ms p99", "load_average": load}],
                )
            }
            rows, verdicts = run.table(records, [latency])
            self.assertEqual(verdicts, [("latency p99 ≤ 3 ms", expected)])
            self.assertEqual("BUSY" in rows[1][-1], expected is None)

    def test_spinnersAreNotBusy(self) -> None:
        """
        The spinners that keep the cores awake count in the load average
        but take no time: a run whose load is theirs is not BUSY.
        """
        latency = next(w for w in run.WORKLOADS if w.name == "latency")
        report = {"value": 2.0, "unit": "ms p99", "load_average": 3.0, "spinners": 2}
        records = {
            ("latency", "chatservice"): run.Record("latency", "chatservice", [report])
        }
        _, verdicts = run.table(records, [latency])
        self.assertEqual(verdicts, [("latency p99 ≤ 3 ms", True)])

    def test_busyIsOnlyForLatency(self) -> None:
        """A throughput workload's verdict does not depend on the load average."""
        fanout = next(w for w in run.WORKLOADS if w.name == "fanout")
        records = {
            ("fanout", server): run.Record(
                "fanout",
                server,
                [{"value": value, "unit": "deliveries/s", "load_average": 9.0}],
            )
            for server, value in (("chatservice", 300.0), ("naive-chat", 100.0))
        }
        _, verdicts = run.table(records, [fanout])
        self.assertEqual(verdicts, [("fanout ≥ 2x naive-chat", True)])


class PlacementTests(SynchronousTestCase):
    """How bench/run.py places and schedules the processes it measures."""

    def test_realtimeOnlyForLatency(self) -> None:
        """
        Asked for, real-time priority is given to the latency workloads
        (latency, irc-latency, web-latency, latency-history, latency-redis)
        and to no other; not asked for, to none.
        """
        where = run.Placement(0, 1, "test")
        chosen = {
            w.name
            for w in run.WORKLOADS
            if run.realtime_for(w, where, True).realtime == run.REALTIME_PRIORITY
        }
        self.assertEqual(
            chosen,
            {
                "latency",
                "irc-latency",
                "web-latency",
                "latency-history",
                "latency-redis",
            },
        )
        self.assertFalse(
            any(run.realtime_for(w, where, False).realtime for w in run.WORKLOADS)
        )

    def test_stealShare(self) -> None:
        """
        The hypervisor's share is its ticks over all ticks in between; no
        ticks in between is no figure rather than a division by zero.
        """
        self.assertEqual(run.steal_share((1000, 10), (2000, 60)), 5.0)
        self.assertIsNone(run.steal_share((1000, 10), (1000, 10)))

    def test_cpuTimesRead(self) -> None:
        """On Linux, /proc/stat gives a total and a steal no larger than it."""
        if not Path("/proc/stat").exists():
            raise SkipTest("no /proc/stat: not Linux")
        total, steal = run.cpu_times()
        self.assertGreater(total, 0)
        self.assertLessEqual(steal, total)

    def test_coresKeptAwake(self) -> None:
        """
        Keeping cores awake: one spinner per core asked for, each at
        ``SCHED_IDLE`` (it never takes time from what is measured) on its
        core; all of them gone once the block ends.
        """
        awake = importlib.import_module("awake")
        if not awake.allowed():
            raise SkipTest("no SCHED_IDLE or CPU affinity here")
        cpu = sorted(os.sched_getaffinity(0))[0]
        before = set(os.listdir("/proc"))
        with awake.cores_kept_awake([cpu, cpu]):
            deadline = time.monotonic() + 10
            found: list[int] = []
            while time.monotonic() < deadline and not found:
                for entry in set(os.listdir("/proc")) - before:
                    if not entry.isdigit():
                        continue
                    try:
                        policy = os.sched_getscheduler(int(entry))
                        where = os.sched_getaffinity(int(entry))
                    except OSError:
                        continue
                    if policy == os.SCHED_IDLE and where == {cpu}:
                        found.append(int(entry))
                time.sleep(0.05)
            self.assertEqual(len(found), 1, "one spinner for the one core")
        (spinner,) = found
        self.assertFalse(Path(f"/proc/{spinner}").exists())
