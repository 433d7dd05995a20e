"""
Smoke test of the benchmark suite in ``bench/``: its quick mode runs every
workload against every server and saves the figures.  It checks that the
suite works, not how fast anything is: no figure is compared with a
threshold.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from twisted.trial.unittest import SkipTest, SynchronousTestCase

ROOT = Path(__file__).resolve().parent.parent
RUN = ROOT / "bench" / "run.py"
#: Seconds the quick run may take (it takes about twenty).
TIMEOUT = 90.0


def compiler() -> str | None:
    """The C compiler bench/run.py would build the C load generator with."""
    return os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")


ECHO_SERVERS = (
    "chatservice",
    "twisted-protocol",
    "twisted-linereceiver",
    "asyncio-streams",
)
CHAT_SERVERS = ("chatservice", "naive-chat")
#: Every workload, and the servers each one must have a figure for.
EXPECTED = {
    "echo": ECHO_SERVERS,
    "upper": ECHO_SERVERS,
    "fanout": CHAT_SERVERS,
    "latency": CHAT_SERVERS,
    "memory-chat": CHAT_SERVERS,
    "memory-echo": ECHO_SERVERS,
    "startup": (*ECHO_SERVERS, "naive-chat"),
}


class QuickBenchmarkTests(SynchronousTestCase):
    """``python bench/run.py --quick``."""

    def test_quickRunMeasuresEveryWorkloadAndServer(self) -> None:
        """
        ``python bench/run.py --quick --json FILE`` exits with status 0 and
        saves, for every workload, a positive figure for chatservice and for
        each baseline server it is compared with; echo and upper were driven
        by the C load generator whenever there is a C compiler (and by the
        Python one otherwise, a skip that fails under CI).
        """
        directory = Path(tempfile.mkdtemp(prefix="chatservice-bench-test-"))
        self.addCleanup(shutil.rmtree, directory, ignore_errors=True)
        output = directory / "results.json"
        process = subprocess.Popen(
            [sys.executable, str(RUN), "--quick", "--json", str(output)],
            cwd=directory,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            # Its own process group: on a time-out, the servers and the load
            # generator it started go with it.
            start_new_session=True,
        )
        try:
            printed, _ = process.communicate(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            printed, _ = process.communicate()
            self.fail(
                f"bench/run.py --quick took over {TIMEOUT:g} s:\n"
                + printed.decode(errors="replace")[-4000:]
            )
        transcript = printed.decode(errors="replace")
        self.assertEqual(process.returncode, 0, transcript[-4000:])
        document = json.loads(output.read_text(encoding="utf-8"))
        figures = {
            (result["workload"], result["server"]): result["value"]
            for result in document["results"]
        }
        for workload, servers in EXPECTED.items():
            for server in servers:
                value = figures.get((workload, server))
                if not isinstance(value, int | float):
                    self.fail(f"no figure for {workload} / {server}: {value!r}")
                self.assertGreater(
                    value, 0, f"{workload} / {server}: {value!r}\n{transcript}"
                )
        echo_loadgens = {
            run.get("loadgen")
            for result in document["results"]
            if result["workload"] in ("echo", "upper")
            for run in result["runs"]
        }
        self.assertTrue(echo_loadgens, transcript)
        if compiler() is None:
            self.assertEqual(echo_loadgens, {"python"})
            raise SkipTest("no C compiler: the C load generator was not tried")
        self.assertEqual(echo_loadgens, {"c"}, transcript[-4000:])
