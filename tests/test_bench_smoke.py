"""
Smoke test of the benchmark suite in ``bench/``: its quick mode runs every
workload against every server and saves the figures, and ``--compare``
runs the committed tree's chatservice beside the installed one.  It checks
that the suite works, not how fast anything is: no figure is compared with
a threshold.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from twisted.trial.unittest import SkipTest, SynchronousTestCase

ROOT = Path(__file__).resolve().parent.parent
RUN = ROOT / "bench" / "run.py"
#: Seconds after which a quick run is taken to hang (it usually takes about
#: twenty): a deadline that catches a hang, not a speed limit.
HANG_DEADLINE = 900.0


def compiler() -> str | None:
    """The C compiler bench/run.py would build the C load generator with."""
    return os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")


def head_commit() -> str | None:
    """The commit checked out in this checkout (None without git or one)."""
    command = ["git", "-C", str(ROOT), "rev-parse", "--verify", "HEAD"]
    try:
        output = subprocess.check_output(command, stderr=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError):
        return None
    return output.decode().strip() or None


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
    "storm": CHAT_SERVERS,
    "memory-chat": CHAT_SERVERS,
    "memory-echo": ECHO_SERVERS,
    "startup": (*ECHO_SERVERS, "naive-chat"),
    # The IRC daemons join these when installed; CI does not install them.
    "irc-fanout": ("chatservice", "chatservice-native"),
    "irc-latency": ("chatservice", "chatservice-native"),
    "memory-irc": ("chatservice",),
    "attack": ("chatservice",),
    # One node without Redis, one with --redis, two sharing a Redis (and
    # the room history).
    "fanout-redis": (
        "chatservice",
        "chatservice+redis",
        "2-nodes+redis",
        "2-nodes+redis+history",
    ),
    "latency-redis": ("chatservice", "2-nodes+redis"),
    # The web door's workloads (bench/web_workloads.py): the baselines on
    # websockets and Node's ws are expected only where they can run, and
    # the run must say why when they cannot (checked below).
    "web-fanout": (
        "chatservice",
        "chatservice-native",
        "autobahn",
        "twisted-websocket",
    ),
    "web-latency": ("chatservice", "chatservice-native", "autobahn"),
    "memory-web": ("chatservice", "autobahn", "twisted-websocket"),
}
#: The workloads driven by a C load generator of the native protocol (or
#: IRC) when there is a C compiler, and the web workload's row that is too.
C_DRIVEN = (
    "echo",
    "upper",
    "fanout",
    "irc-fanout",
    "latency",
    "irc-latency",
    "latency-redis",
)
C_DRIVEN_WEB = ("web-latency", "chatservice-native")
#: Baselines of the web workloads a quick run may leave out, saying why.
OPTIONAL = {
    "web-fanout": ("websockets", "node-ws"),
    "memory-web": ("websockets", "node-ws"),
}


class QuickBenchmarkTests(SynchronousTestCase):
    """``python bench/run.py --quick``."""

    def quickRun(self, *arguments: str) -> tuple[Any, str]:
        """
        Run ``bench/run.py --quick --json FILE ARGUMENTS`` in a temporary
        directory; fail unless it exits with status 0 (or hangs: past a
        generous deadline).  What it saved and what it printed.
        """
        directory = Path(tempfile.mkdtemp(prefix="chatservice-bench-test-"))
        self.addCleanup(shutil.rmtree, directory, ignore_errors=True)
        output = directory / "results.json"
        process = subprocess.Popen(
            [sys.executable, str(RUN), "--quick", "--json", str(output), *arguments],
            cwd=directory,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            # Its own process group: on a time-out, the servers and the load
            # generator it started go with it.
            start_new_session=True,
        )
        try:
            printed, _ = process.communicate(timeout=HANG_DEADLINE)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            printed, _ = process.communicate()
            self.fail(
                f"bench/run.py --quick hangs (over {HANG_DEADLINE:g} s):\n"
                + printed.decode(errors="replace")[-4000:]
            )
        transcript = printed.decode(errors="replace")
        self.assertEqual(process.returncode, 0, transcript[-4000:])
        return json.loads(output.read_text(encoding="utf-8")), transcript

    def assertFigures(
        self, document: Any, expected: Mapping[str, Sequence[str]], transcript: str
    ) -> None:
        """Every workload of ``expected`` has a positive figure per server."""
        figures = {
            (result["workload"], result["server"]): result["value"]
            for result in document["results"]
        }
        for workload, servers in expected.items():
            for server in servers:
                value = figures.get((workload, server))
                if not isinstance(value, int | float):
                    self.fail(f"no figure for {workload} / {server}: {value!r}")
                self.assertGreater(
                    value, 0, f"{workload} / {server}: {value!r}\n{transcript}"
                )

    def test_quickRunMeasuresEveryWorkloadAndServer(self) -> None:
        """
        ``python bench/run.py --quick --json FILE`` exits with status 0 and
        saves, for every workload, a positive figure for chatservice and for
        each baseline server it is compared with (the web workloads' optional
        baselines, websockets and Node's ws, have one where they ran, and
        the run says why where they did not); echo, upper, fanout and the
        latency workloads (web-latency's native door row among them) were
        driven by the C load generators whenever there is a C compiler
        (and by the Python one otherwise, a skip that fails under CI).
        The IRC workloads run against the IRC door and the native one, and
        irc-fanout is driven by the C load generator over IRC.
        """
        document, transcript = self.quickRun()
        # Without a C compiler irc-fanout is left out (loadgen.py speaks
        # no IRC), saying so.
        expected = {
            name: servers
            for name, servers in EXPECTED.items()
            if name != "irc-fanout" or compiler() is not None
        }
        self.assertFigures(document, expected, transcript)
        ran = {name: w["servers"] for name, w in document["workloads"].items()}
        for name, servers in OPTIONAL.items():
            for server in servers:
                if server not in ran[name]:
                    self.assertIn(f"{name}: {server} left out: ", transcript)
        optional = {
            name: tuple(s for s in servers if s in ran[name])
            for name, servers in OPTIONAL.items()
        }
        self.assertFigures(document, optional, transcript)
        c_loadgens = {
            run.get("loadgen")
            for result in document["results"]
            if result["workload"] in C_DRIVEN
            or (result["workload"], result["server"]) == C_DRIVEN_WEB
            for run in result["runs"]
        }
        protocols = {
            (result["server"], run.get("protocol"))
            for result in document["results"]
            if result["workload"] == "irc-fanout"
            and result["server"] in ("chatservice", "chatservice-native")
            for run in result["runs"]
        }
        self.assertTrue(c_loadgens, transcript)
        if compiler() is None:
            self.assertEqual(c_loadgens, {"python"})
            raise SkipTest("no C compiler: the C load generators were not tried")
        self.assertEqual(c_loadgens, {"c"}, transcript[-4000:])
        self.assertEqual(
            protocols, {("chatservice", "irc"), ("chatservice-native", "native")}
        )

    def test_compareRunsTheCommittedTreeSideBySide(self) -> None:
        """
        ``--compare HEAD`` (with ``--only fanout --only latency``) adds
        ``chatservice@HEAD`` to both workloads, right after chatservice: it
        has a positive figure in each, and the report a positive ratio of
        chatservice's figure to it.  Every run of it says it ran the
        ``chatservice/__init__.py`` of HEAD's commit extracted into a
        temporary directory (outside the checkout, and gone once the run is
        over), not the installed package.
        """
        commit = head_commit()
        if commit is None:
            raise SkipTest("not a git checkout: there is no HEAD to compare with")
        document, transcript = self.quickRun(
            "--compare", "HEAD", "--only", "fanout", "--only", "latency"
        )
        compared = "chatservice@HEAD"
        expected = {
            workload: ("chatservice", compared, "naive-chat")
            for workload in ("fanout", "latency")
        }
        self.assertEqual(
            {name: tuple(w["servers"]) for name, w in document["workloads"].items()},
            expected,
        )
        self.assertFigures(document, expected, transcript)
        (tree,) = document["compared"]
        self.assertEqual((tree["server"], tree["commit"]), (compared, commit))
        root = Path(tree["tree"])
        module = str(root / "chatservice" / "__init__.py")
        self.assertEqual(tree["chatservice_file"], module)
        self.assertFalse(root.is_relative_to(ROOT), root)
        self.assertNotEqual(document["chatservice_file"], module)
        self.assertFalse(root.exists(), f"{root} is left behind")
        self.assertIn(f"{compared}: {module}", transcript)
        for result in document["results"]:
            if result["server"] == compared:
                reported = [run.get("chatservice_file") for run in result["runs"]]
                self.assertEqual(reported, [module] * len(result["runs"]), result)
        ratios = {
            (item["workload"], item["server"]): item["ratio"]
            for item in document["comparisons"]
        }
        self.assertEqual(set(ratios), {(w, compared) for w in expected})
        for key, ratio in ratios.items():
            self.assertGreater(ratio, 0, f"{key}\n{transcript}")
