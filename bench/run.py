"""
Benchmarks of chatservice against the real alternatives, in one command.

``python bench/run.py`` (a few minutes) or ``python bench/run.py --quick``
(a smoke run of a few seconds per workload, tiny loads: its figures mean
nothing).  Every server (chatservice under the installed ``twistd`` next to
``sys.executable``, and the baselines in ``bench/baselines/``) runs as a
subprocess on a free loopback port, pinned to one core; the load generator
(``bench/loadgen.py``; for echo and upper ``bench/echo_loadgen.c`` and for
fanout and the latency workloads ``bench/fanout_loadgen.c`` when a C
compiler is at hand) runs as another process pinned to another core.
Runs of the servers are interleaved, round after round, and every ratio is
computed within a round: on a shared machine only figures measured side by
side compare.  ``--json FILE`` saves every figure.

``--compare REV_OR_PATH`` (repeatable) adds another chatservice to every
workload, side by side with the installed one: a git revision of this
checkout (``HEAD``, ``HEAD~1``, a branch; extracted with ``git archive``
into a temporary directory, removed at exit) or another checkout directory.
It shows as ``chatservice@REV`` (``chatservice@DIRNAME`` for a directory),
gets the load-test options that version has, and runs under
``bench/launch_tree.py``: twistd in this interpreter with that tree first on
``sys.path``, which prints the ``chatservice/__init__.py`` it imported.  The
report gives, for each workload, chatservice's figure over its figure in the
same round: ``python bench/run.py --compare HEAD~1 --only fanout``.

See ``docs/performance.rst`` for what each workload measures.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import dataclasses
import datetime
import errno
import io
import json
import os
import platform
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import awake
import ircd
import launch_tree
import web_workloads as web

BENCH = Path(__file__).resolve().parent
#: The checkout whose revisions ``--compare REV`` means.
CHECKOUT = BENCH.parent
#: Runs another tree's chatservice under twistd (``--compare``).
LAUNCHER = BENCH / "launch_tree.py"
BASELINES = BENCH / "baselines"
LOADGEN = BENCH / "loadgen.py"
#: The echo and uppercase load generator in C: the same workload and report
#: as ``loadgen.py echo|upper`` at a fraction of its cost per line.
ECHO_LOADGEN_SOURCE = BENCH / "echo_loadgen.c"
#: The fan-out and latency load generator in C: the same workloads, checks
#: and reports as ``loadgen.py fanout`` and ``loadgen.py latency``, without
#: saturating its core (nor, for latency, sending in bursts).
FANOUT_LOADGEN_SOURCE = BENCH / "fanout_loadgen.c"
#: The C load generators, by source, and the workloads (``Workload.kind``)
#: each one drives.
C_LOADGENS = (
    (ECHO_LOADGEN_SOURCE, ("echo", "upper")),
    (FANOUT_LOADGEN_SOURCE, ("fanout", "latency")),
    (web.LOADGEN_SOURCE, web.KINDS),
)
LOOPBACK = "127.0.0.1"
#: Seconds a server gets to accept its first connection.
START_TIMEOUT = 30.0
PR_SET_PDEATHSIG = 1
#: Seconds the load generator may overrun its own hard limit before it is killed.
LOADGEN_GRACE = 30.0

#: Options that take chatservice's protective limits out of a load test
#: (each only if this version of chatservice has it).
LOAD_TEST_OPTIONS = (
    ("--max-clients", "0"),
    ("--max-per-address", "0"),
    ("--max-strangers", "0"),
    ("--registration-timeout", "0"),
    ("--nick-timeout", "0"),
    ("--idle-timeout", "0"),
    ("--chat-idle-timeout", "0"),
    ("--flood-rate", "0"),
    ("--irc-ping-interval", "0"),
    ("--line-timeout", "0"),
    ("--max-rooms", "100000"),
    # History off unless a workload turns it on (HISTORY): the existing
    # figures stay comparable with versions before history.
    ("--history", "none"),
)

CHATSERVICE = "chatservice"
#: The installed chatservice with history on (``--history sqlite:FILE``, a
#: new file in the run's scratch directory), beside the same workload with
#: ``--history none``.
HISTORY = "chatservice+history"
#: The installed chatservice with ``--redis`` (a redis-server of the run's
#: own), alone; and two such nodes, half the receivers on the second.
ONE_NODE_REDIS = "chatservice+redis"
TWO_NODES_REDIS = "2-nodes+redis"
#: Two such nodes with history on (``--history memory``): the room history
#: is kept in Redis, appended by the script that publishes each turn.
TWO_NODES_SHARED_HISTORY = "2-nodes+redis+history"
SHARED_SERVERS = (ONE_NODE_REDIS, TWO_NODES_REDIS, TWO_NODES_SHARED_HISTORY)
RAW = "twisted-protocol"
LINERECEIVER = "twisted-linereceiver"
ASYNCIO = "asyncio-streams"
NAIVE_CHAT = "naive-chat"

BASELINE_SCRIPTS = {
    RAW: "twisted_protocol_echo.py",
    LINERECEIVER: "twisted_linereceiver_echo.py",
    ASYNCIO: "asyncio_streams_echo.py",
    NAIVE_CHAT: "naive_twisted_chat.py",
}
ECHO_SERVERS = (CHATSERVICE, RAW, LINERECEIVER, ASYNCIO)
CHAT_SERVERS = (CHATSERVICE, NAIVE_CHAT)
#: The installed chatservice's native chat door, beside its IRC door in the
#: IRC workloads (the same load, paced the same way).
NATIVE_DOOR = "chatservice-native"
INSPIRCD = ircd.INSPIRCD
NGIRCD = ircd.NGIRCD
#: Registrations the load generator has in flight at once with InspIRCd,
#: which completes registrations once a second (its listen backlog is
#: configured to take them: bench/anchors/).  Not with ngIRCd: its short
#: listen backlog drops connections (SYN retries of seconds) when 500 come
#: at once.
INSPIRCD_CONCURRENCY = 500
#: chatservice's IRC door, and the IRC daemons it is anchored to.
IRC_SERVERS = (CHATSERVICE, INSPIRCD, NGIRCD)
#: The history workloads: chatservice with history off and on.
HISTORY_SERVERS = (CHATSERVICE, HISTORY)
#: The least share of a compared tree's figure chatservice must keep, by
#: workload (issue 9: fan-out within 5 % of the code before a change).
COMPARED_AT_LEAST = {"fanout": 0.95}


class BenchError(Exception):
    """A run failed; the message says why."""


# Servers


@dataclass
class Placement:
    """Which core the servers and the load generator run on, and how."""

    server_cpu: int | None
    loadgen_cpu: int | None
    note: str
    #: The ``SCHED_FIFO`` priority they run at (:func:`realtime_for`), or
    #: None: the ordinary scheduler, shared with whatever else runs.
    realtime: int | None = None


#: The ``SCHED_FIFO`` priority of the servers and the load generator in the
#: latency workloads.  On a shared machine their tail is otherwise set by
#: the neighbours: with other work on both cores the native door read p99
#: 48 ms, and 3.6 ms at this priority in the same minutes.  Low among real
#: time priorities, so that the kernel's own threads still come first; the
#: kernel's real-time throttling (``sched_rt_runtime_us``) keeps 5 % of
#: each core for everything else should a process spin.
REALTIME_PRIORITY = 10
#: A one-minute load average above this, at the start of a latency run,
#: marks the machine busy (``BUSY``): the latency targets are then n/a.
#: Real-time priority keeps the neighbours from preempting the server, but
#: not from taking the memory bandwidth, caches and the hypervisor's time.
BUSY_LOAD = (os.cpu_count() or 1) + 0.5


def realtime_allowed() -> bool:
    """Whether this process may start children at ``SCHED_FIFO``."""
    if not hasattr(os, "sched_setscheduler"):
        return False
    probe = [
        sys.executable,
        "-c",
        "import os; os.sched_setscheduler(0, os.SCHED_FIFO, "
        f"os.sched_param({REALTIME_PRIORITY}))",
    ]
    return subprocess.run(probe, capture_output=True, check=False).returncode == 0


def realtime_for(workload: Workload, where: Placement, wanted: bool) -> Placement:
    """
    ``where`` for ``workload``: at :data:`REALTIME_PRIORITY` for a latency
    workload when ``wanted`` (``--no-realtime`` turns it off); throughput
    workloads keep the ordinary scheduler (a server that saturates its core
    at real-time priority would starve the rest of the machine).
    """
    if wanted and workload.kind.endswith("latency"):
        return dataclasses.replace(where, realtime=REALTIME_PRIORITY)
    return where


def cpu_times() -> tuple[int, int]:
    """All CPU time and the time stolen by the hypervisor, in ticks."""
    try:
        with open("/proc/stat") as stat:
            fields = [int(field) for field in stat.readline().split()[1:]]
    except (OSError, ValueError):
        return 0, 0
    # user nice system idle iowait irq softirq steal (guest, guest_nice are
    # already counted in user and nice).
    return sum(fields[:8]), (fields[7] if len(fields) > 7 else 0)


def steal_share(before: tuple[int, int], after: tuple[int, int]) -> float | None:
    """Per cent of the machine's CPU time the hypervisor took in between."""
    total = after[0] - before[0]
    if total <= 0:
        return None
    return 100.0 * (after[1] - before[1]) / total


def placement() -> Placement:
    """Server on the first core we may use, load generator on the second."""
    if not hasattr(os, "sched_getaffinity"):
        return Placement(None, None, "no CPU pinning on this platform")
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) >= 2:
        return Placement(
            cpus[0],
            cpus[1],
            f"server pinned to core {cpus[0]}, load generator to core {cpus[1]}",
        )
    return Placement(
        cpus[0],
        cpus[0],
        f"only one core ({cpus[0]}): server and load generator share it, so "
        "absolute figures are low; ratios still compare like with like",
    )


def free_port() -> int:
    """A loopback TCP port nothing listened on a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((LOOPBACK, 0))
        port: int = probe.getsockname()[1]
        return port


def twistd() -> Path:
    """The ``twistd`` installed next to the running interpreter."""
    path = Path(sys.executable).with_name("twistd")
    if not path.exists():
        raise BenchError(f"no twistd next to {sys.executable}")
    return path


def chatservice_help(twistd_command: Sequence[str]) -> str:
    """What ``TWISTD chatservice --help`` prints, for a twistd command."""
    result = subprocess.run(
        [*twistd_command, "chatservice", "--help"],
        capture_output=True,
        timeout=60,
        check=False,
    )
    if result.returncode != 0:
        raise BenchError(
            f"{' '.join(twistd_command)} chatservice --help failed:\n"
            + result.stderr.decode()[-2000:]
        )
    return result.stdout.decode()


def load_test_options(known: str | None = None) -> list[str]:
    """
    The options of :data:`LOAD_TEST_OPTIONS` a chatservice knows, from its
    ``--help`` text (by default, the installed chatservice's).
    """
    if known is None:
        known = chatservice_help([str(twistd())])
    options: list[str] = []
    for name, value in LOAD_TEST_OPTIONS:
        if f"{name}=" in known or f"{name} " in known:
            options += [name, value]
    return options


def default_limits(options: Sequence[str]) -> list[str]:
    """
    chatservice options (``--name value`` pairs) without those of
    :data:`LOAD_TEST_OPTIONS` but ``--history``: the server keeps its
    default limits (the attack workload tries them).
    """
    lifting = {name for name, _ in LOAD_TEST_OPTIONS} - {"--history"}
    pairs = zip(options[::2], options[1::2], strict=True)
    return [
        part for name, value in pairs if name not in lifting for part in (name, value)
    ]


#: The listen backlog of chatservice's endpoints (``--backlog``; None: the
#: tree's own default: chatservice.tap.DEFAULT_BACKLOG, or Twisted's 50 in
#: trees before it).
BACKLOG: int | None = None


def endpoint(port: int | None) -> str:
    if port is None:
        return "none"
    backlog = "" if BACKLOG is None else f":backlog={BACKLOG}"
    return f"tcp:{port}:interface={LOOPBACK}{backlog}"


# Compared trees (--compare)


def reported_module(text: str) -> str | None:
    """The ``chatservice/__init__.py`` that launch_tree.py says it imported."""
    for line in text.splitlines():
        if line.startswith(launch_tree.MARKER):
            return line.removeprefix(launch_tree.MARKER).strip()
    return None


def installed_module() -> str | None:
    """The ``chatservice/__init__.py`` the installed twistd imports."""
    # sys.path as twistd has it: the script's directory first.
    script = (
        "import sys; sys.path[0] = sys.argv[1]; import chatservice; "
        "print(chatservice.__file__)"
    )
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        result = subprocess.run(
            [sys.executable, "-c", script, str(twistd().parent)],
            capture_output=True,
            timeout=60,
            check=True,
        )
        return result.stdout.decode().strip() or None
    return None


@dataclass(frozen=True)
class Tree:
    """
    Another chatservice, benchmarked side by side with the installed one: a
    git revision of this checkout extracted into a temporary directory, or
    another checkout.  It runs under ``launch_tree.py``.
    """

    name: str
    spec: str
    root: Path
    commit: str | None
    module: str
    options: tuple[str, ...]
    #: Whether its chatservice has the web door (``--web`` in its help).
    has_web_door: bool = False

    @property
    def twistd(self) -> list[str]:
        return tree_twistd(self.root)

    def describe(self) -> dict[str, object]:
        return {
            "server": self.name,
            "compare": self.spec,
            "commit": self.commit,
            "tree": str(self.root),
            "chatservice_file": self.module,
            "chatservice_options": list(self.options),
        }


def tree_twistd(root: Path) -> list[str]:
    """The command that runs twistd with the chatservice in ``root``."""
    return [sys.executable, str(LAUNCHER), str(root)]


def git(*args: str) -> bytes:
    """What a git command prints, run in this checkout."""
    result = subprocess.run(
        ["git", *args], cwd=CHECKOUT, capture_output=True, timeout=120, check=False
    )
    if result.returncode != 0:
        why = result.stderr.decode(errors="replace").strip()[-500:]
        raise BenchError(f"git {' '.join(args)} failed: {why}")
    return result.stdout


def extract_revision(spec: str, into: Path) -> str:
    """Write revision ``spec`` of this checkout into ``into``; its commit."""
    try:
        commit = git("rev-parse", "--verify", "--quiet", f"{spec}^{{commit}}")
    except (BenchError, OSError, subprocess.SubprocessError):
        raise BenchError(f"neither a directory nor a revision of {CHECKOUT}") from None
    revision = commit.decode().strip()
    archive = git("archive", "--format=tar", revision)
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        if hasattr(tarfile, "data_filter"):
            tar.extractall(into, filter="data")
        else:  # Python before 3.11.4; git archive writes plain files only
            tar.extractall(into)
    return revision


def package_root(tree: Path) -> Path:
    """The directory of ``tree`` that holds its ``chatservice`` package."""
    for root in (tree, tree / "src"):
        if (root / "chatservice" / "__init__.py").is_file():
            return root
    raise BenchError(f"no chatservice package in {tree} (nor in {tree / 'src'})")


def compared_tree(spec: str, scratch: Path) -> Tree:
    """
    The chatservice ``--compare SPEC`` means: the checkout in directory
    ``SPEC`` if there is one, else revision ``SPEC`` of this checkout,
    extracted into a new directory under ``scratch``.
    """
    directory = Path(spec).expanduser()
    commit = None
    if directory.is_dir():
        root = package_root(directory.resolve())
        name = f"{CHATSERVICE}@{directory.resolve().name}"
    else:
        into = Path(tempfile.mkdtemp(prefix="tree-", dir=scratch))
        commit = extract_revision(spec, into)
        root = package_root(into)
        name = f"{CHATSERVICE}@{spec}"
    known = chatservice_help(tree_twistd(root))
    module = reported_module(known)
    if module is None:
        raise BenchError(f"{LAUNCHER.name} did not say what it imported:\n{known}")
    return Tree(
        name,
        spec,
        root,
        commit,
        module,
        tuple(load_test_options(known)),
        has_web_door="--web=" in known,
    )


@dataclass
class ServerCommand:
    """How to start one server, and the port of each of its services."""

    argv: list[str]
    ports: dict[str, int]


def server_command(
    server: str,
    services: Sequence[str],
    extra: Sequence[str],
    upper: bool = False,
    trees: Mapping[str, Tree] | None = None,
    workdir: Path | None = None,
    keep_limits: bool = False,
) -> ServerCommand:
    """
    The command line of ``server`` listening for ``services`` (echo, upper,
    chat, irc); a baseline serves one of them, in ``--upper`` mode for
    upper, and an IRC daemon (:mod:`ircd`) irc, configured in ``workdir``.
    chatservice gets the options ``extra``, and a compared tree (one of
    ``trees``, by name) its own; with ``keep_limits``, without those that
    lift its protective limits (:func:`default_limits`).
    """
    tree = (trees or {}).get(server)
    if tuple(services) == (web.SERVICE,):
        command, options = (
            ([str(twistd())], extra) if tree is None else (tree.twistd, tree.options)
        )
        return ServerCommand(*web.server_command(server, command, options, free_port()))
    ports = {service: free_port() for service in services}
    if server in ircd.DAEMONS:
        if workdir is None:
            raise BenchError(f"{server} needs a directory for its configuration")
        (port,) = ports.values()
        return ServerCommand(ircd.DAEMONS[server].command(port, workdir), ports)
    if server in (CHATSERVICE, HISTORY, NATIVE_DOOR) or tree is not None:
        command, options = (
            ([str(twistd())], extra) if tree is None else (tree.twistd, tree.options)
        )
        if keep_limits:
            options = default_limits(options)
        if server == HISTORY:
            # Relative: the server runs in the scratch directory.
            history = f"history-{time.monotonic_ns()}.sqlite3"
            options = [*options, "--history", f"sqlite:{history}"]
        argv = [
            *command,
            "-n",
            "--pidfile=",
            "chatservice",
            "--echo",
            endpoint(ports.get("echo")),
            "--upper",
            endpoint(ports.get("upper")),
            "--chat",
            endpoint(ports.get("chat")),
            # Only when asked for: a compared tree may have no IRC door.
            *(["--irc", endpoint(ports["irc"])] if "irc" in ports else []),
            *(["--web", endpoint(ports["web"])] if "web" in ports else []),
            *options,
        ]
    else:
        (port,) = ports.values()
        argv = [sys.executable, str(BASELINES / BASELINE_SCRIPTS[server]), str(port)]
        if upper:
            argv.append("--upper")
    return ServerCommand(argv, ports)


def _die_with_parent() -> None:
    """Linux: have the kernel kill this child if the benchmark dies first."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def _child_setup(cpu: int | None, realtime: int | None = None) -> Callable[[], None]:
    def setup() -> None:
        _die_with_parent()
        if cpu is not None:
            os.sched_setaffinity(0, {cpu})
        if realtime is not None:
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(realtime))
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if hard == resource.RLIM_INFINITY:
            hard = max(soft, 1 << 20)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    return setup


@dataclass
class Server:
    """A running server process."""

    name: str
    process: subprocess.Popen[bytes]
    ports: dict[str, int]
    log: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def log_text(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""

    def log_tail(self) -> str:
        return self.log_text()[-3000:]

    def noted(self, report: dict[str, object]) -> dict[str, object]:
        """
        ``report`` with the ``chatservice/__init__.py`` this server said it
        runs (a compared tree under launch_tree.py says so at startup).
        """
        module = reported_module(self.log_text())
        if module is not None:
            report["chatservice_file"] = module
        return report

    def check_alive(self) -> None:
        if self.process.poll() is not None:
            raise BenchError(
                f"{self.name} exited with status {self.process.returncode}:\n"
                + self.log_tail()
            )


def stop(process: subprocess.Popen[bytes]) -> None:
    """End a child at once (nothing of it needs a clean stop)."""
    if process.poll() is None:
        process.kill()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(10)


def connect_once(port: int, timeout: float) -> socket.socket | None:
    """A connection to a loopback port, or None if it is refused."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect((LOOPBACK, port))
    except OSError as error:
        sock.close()
        if error.errno in (errno.ECONNREFUSED, errno.ECONNRESET) or isinstance(
            error, TimeoutError
        ):
            return None
        raise
    return sock


def first_answer(port: int, service: str, deadline: float) -> None:
    """
    Wait until the service on ``port`` answers: an echo of a line (echo,
    upper), the greeting line (chat), a WebSocket upgrade (web), or any
    line (irc: daemons greet no one, they answer a ``PING``).
    """
    while service == web.SERVICE and not web.answered(port):
        if time.monotonic() > deadline:
            raise BenchError(f"no WebSocket upgrade answered on port {port} in time")
        time.sleep(0.01)
    while service != web.SERVICE:
        sock = connect_once(port, 1.0)
        if sock is not None:
            with sock:
                if service == "irc":
                    sock.sendall(b"PING :bench\r\n")
                elif service != "chat":
                    sock.sendall(b"ping\r\n")
                data = b""
                with contextlib.suppress(OSError):
                    while b"\n" not in data and time.monotonic() < deadline:
                        chunk = sock.recv(4096)
                        if not chunk:
                            break
                        data += chunk
                if b"\n" in data:
                    return
        if time.monotonic() > deadline:
            raise BenchError(f"nothing answered on port {port} in time")
        time.sleep(0.002)


def log_file(workdir: Path, name: str) -> Path:
    """A new log file in ``workdir`` for ``name`` (a server's, say)."""
    # Compared revisions may have slashes in their names (origin/main).
    return workdir / f"{name.replace('/', '_')}-{time.monotonic_ns()}.log"


def start_pinned(
    argv: Sequence[str], workdir: Path, log: Path, where: Placement
) -> subprocess.Popen[bytes]:
    """A server process on the server core, its output added to ``log``."""
    with log.open("ab") as output:
        return subprocess.Popen(
            argv,
            cwd=workdir,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            preexec_fn=_child_setup(where.server_cpu, where.realtime),
        )


@contextlib.contextmanager
def running(
    server: str,
    services: Sequence[str],
    where: Placement,
    workdir: Path,
    extra: Sequence[str],
    upper: bool = False,
    trees: Mapping[str, Tree] | None = None,
    keep_limits: bool = False,
) -> Iterator[Server]:
    """Start a server pinned to the server core; kill it when done."""
    command = server_command(
        server, services, extra, upper, trees, workdir, keep_limits
    )
    log = log_file(workdir, server)
    process = start_pinned(command.argv, workdir, log, where)
    handle = Server(server, process, command.ports, log)
    try:
        deadline = time.monotonic() + START_TIMEOUT
        for service, port in command.ports.items():
            try:
                first_answer(port, service, deadline)
            except BenchError:
                handle.check_alive()
                raise
        yield handle
    finally:
        stop(process)


def redis_command(port: int, *args: str) -> str:
    """One command to the run's redis-server; its reply, as text."""
    with socket.create_connection((LOOPBACK, port), timeout=10) as connection:
        connection.sendall(
            (
                f"*{len(args)}\r\n"
                + "".join(f"${len(a.encode())}\r\n{a}\r\n" for a in args)
            ).encode()
        )
        reader = connection.makefile("rb")
        first = reader.readline()
        if first.startswith(b"$"):
            return reader.read(int(first[1:]) + 2)[:-2].decode()
        return first[1:].strip().decode()


def redis_costs(port: int, report: dict[str, object]) -> dict[str, object]:
    """
    Redis commands per room message, from ``INFO commandstats`` (reset
    before the load generator started).  Its registrations came first,
    each turn of them one ``PUBLISH`` and one ``HSET``, its messages one
    ``PUBLISH`` per turn: the messages' commands are the ``PUBLISH`` calls
    beyond the ``HSET`` calls.  With the history in Redis, each turn's
    ``PUBLISH`` is in the one script (``EVALSHA``) that appends its
    messages (``XADD``, counted by Redis too, not round trips): the same
    count.
    """
    calls: dict[str, int] = {}
    for line in redis_command(port, "INFO", "commandstats").splitlines():
        if line.startswith("cmdstat_"):
            name, _, stats = line[len("cmdstat_") :].partition(":")
            calls[name] = int(stats.split(",")[0].split("=")[1])
    ours = {"config|resetstat", "info"}
    total = sum(n for name, n in calls.items() if name not in ours)
    messages = number(report.get("messages_sent", 0))
    for_messages = calls.get("publish", 0) - calls.get("hset", 0)
    return {
        "redis_commands": total,
        "redis_publishes": calls.get("publish", 0),
        "redis_xadds": calls.get("xadd", 0),
        "redis_commands_per_message": for_messages / messages if messages else None,
    }


@contextlib.contextmanager
def running_shared(
    server: str, where: Placement, workdir: Path, extra: Sequence[str]
) -> Iterator[Server]:
    """
    A redis-server of the run's own and one node (``chatservice+redis``) or
    two (``2-nodes+redis``) with ``--redis`` on it, all on the server core;
    the handle is the first node's, with ``chat2`` (the second node's
    port) and ``redis`` among its ports.
    """
    binary = shutil.which("redis-server")
    if binary is None:
        raise BenchError("redis-server is not installed (apt-get install redis-server)")
    redis_port = free_port()
    redis_argv = [binary, "--port", str(redis_port), "--bind", LOOPBACK]
    redis_argv += ["--save", "", "--appendonly", "no", "--dir", str(workdir)]
    processes: list[subprocess.Popen[bytes]] = []
    log = log_file(workdir, server)
    try:
        processes.append(start_pinned(redis_argv, workdir, log, where))
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            try:
                if redis_command(redis_port, "PING") == "PONG":
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise BenchError("redis-server did not answer")
            time.sleep(0.05)
        url = f"redis://{LOOPBACK}:{redis_port}/0"
        nodes = 1 if server == ONE_NODE_REDIS else 2
        options = [*extra, "--redis", url]
        if server == TWO_NODES_SHARED_HISTORY:
            options += ["--history", "memory"]  # the last one counts
        commands = [
            server_command(CHATSERVICE, ("chat",), options) for _ in range(nodes)
        ]
        for command in commands:
            processes.append(start_pinned(command.argv, workdir, log, where))
        ports = {"chat": commands[0].ports["chat"], "redis": redis_port}
        if nodes == 2:
            ports["chat2"] = commands[1].ports["chat"]
        handle = Server(server, processes[1], ports, log)
        for command in commands:
            first_answer(command.ports["chat"], "chat", deadline)
        # Every node connected to Redis before anyone registers.
        while log.read_text(errors="replace").count("connected to Redis") < nodes:
            if time.monotonic() > deadline:
                raise BenchError("the nodes did not connect to Redis")
            time.sleep(0.05)
        yield handle
    finally:
        for process in reversed(processes):
            stop(process)


def measure_startup(
    server: str,
    where: Placement,
    workdir: Path,
    extra: Sequence[str],
    trees: Mapping[str, Tree] | None = None,
) -> dict[str, object]:
    """Seconds from starting the server to the first answered connection."""
    services = (
        ("chat",)
        if server == NAIVE_CHAT
        else (("echo",) if server in BASELINE_SCRIPTS else ("echo", "upper", "chat"))
    )
    command = server_command(server, services, extra, trees=trees)
    service = "echo" if "echo" in command.ports else "chat"
    log = log_file(workdir, f"startup-{server}")
    with log.open("wb") as output:
        started = time.perf_counter()
        process = subprocess.Popen(
            command.argv,
            cwd=workdir,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            preexec_fn=_child_setup(where.server_cpu),
        )
    handle = Server(server, process, command.ports, log)
    try:
        first_answer(command.ports[service], service, time.monotonic() + START_TIMEOUT)
        elapsed = time.perf_counter() - started
    except BenchError:
        handle.check_alive()
        raise
    finally:
        stop(process)
    return handle.noted(
        {
            "value": elapsed,
            "unit": "s",
            "loadgen_cpu_pct": None,
            "loadgen_busy_pct": None,
            "server_cpu_pct": None,
            "saturated": False,
        }
    )


# Workloads


@dataclass
class Settings:
    """Sizes and durations of one benchmark run (full or quick)."""

    rounds: int
    duration: float
    warmup: float
    echo_connections: int
    echo_window: int
    fanout_receivers: int
    fanout_senders: int
    fanout_window: int
    latency_receivers: int
    latency_senders: int
    latency_rate: float
    memory_connections: int
    storm_connections: int
    attack_slowloris: int
    attack_storm: int
    attack_members: int
    attack_duration: float
    memory_room_members: int
    memory_room_size: int
    startup_repeats: int
    loadgen_timeout: float


FULL = Settings(
    rounds=3,
    duration=3.0,
    warmup=0.5,
    echo_connections=100,
    echo_window=64,
    fanout_receivers=1000,
    fanout_senders=10,
    fanout_window=8,
    latency_receivers=100,
    latency_senders=2,
    latency_rate=200.0,
    memory_connections=10000,
    storm_connections=2000,
    attack_slowloris=1000,
    attack_storm=5000,
    attack_members=20,
    attack_duration=25.0,
    memory_room_members=2000,
    memory_room_size=20,
    startup_repeats=5,
    loadgen_timeout=180.0,
)

QUICK = Settings(
    rounds=1,
    duration=0.5,
    warmup=0.1,
    echo_connections=4,
    echo_window=16,
    fanout_receivers=20,
    fanout_senders=2,
    fanout_window=4,
    latency_receivers=10,
    latency_senders=1,
    latency_rate=100.0,
    memory_connections=1000,
    storm_connections=200,
    attack_slowloris=50,
    attack_storm=200,
    attack_members=5,
    attack_duration=2.0,
    memory_room_members=100,
    memory_room_size=20,
    startup_repeats=1,
    loadgen_timeout=30.0,
)


@dataclass(frozen=True)
class Target:
    """A goal for chatservice: a ratio to a baseline, or an absolute bound."""

    text: str
    baseline: str | None = None
    at_least: float | None = None
    at_most: float | None = None
    #: Whose figure an absolute bound is for.
    server: str = CHATSERVICE

    def met(self, ratio: float | None, value: float | None) -> bool | None:
        if self.baseline is not None:
            if ratio is None:
                return None
            if self.at_least is not None:
                return ratio >= self.at_least
            if self.at_most is not None:
                return ratio <= self.at_most
            return None
        if value is None:
            return None
        if self.at_most is not None:
            return value <= self.at_most
        if self.at_least is not None:
            return value >= self.at_least
        return None


@dataclass(frozen=True)
class Workload:
    """One workload: the servers it runs against and how."""

    name: str
    servers: tuple[str, ...]
    service: str
    description: str
    higher_is_better: bool
    targets: tuple[Target, ...] = ()
    rounds: int | None = None
    #: The load generator's workload, when not the same name.
    load: str = ""
    #: Whether chatservice keeps its default protective limits (the load
    #: test options that lift them are left out: :func:`default_limits`).
    keeps_limits: bool = False
    #: Doors chatservice listens on too, beside ``service`` (the attack's
    #: echo, IRC and web doors), whose ports the load generator is given
    #: as ``--<door>-port``.
    doors: tuple[str, ...] = ()

    @property
    def kind(self) -> str:
        """What the load generator runs (``fanout-history``: ``fanout``)."""
        return self.load or self.name


WORKLOADS = (
    Workload(
        "echo",
        ECHO_SERVERS,
        "echo",
        "lines/s echoed, 100 connections pipelining 32-byte lines",
        True,
        (
            Target("≥ 1.0x twisted-protocol", RAW, at_least=1.0),
            Target("≥ 5x asyncio-streams", ASYNCIO, at_least=5.0),
        ),
    ),
    Workload(
        "upper",
        ECHO_SERVERS,
        "upper",
        "lines/s upper-cased (baselines in --upper mode)",
        True,
        (
            Target("≥ 1.0x twisted-protocol", RAW, at_least=1.0),
            Target("≥ 5x asyncio-streams", ASYNCIO, at_least=5.0),
        ),
    ),
    Workload(
        "fanout",
        CHAT_SERVERS,
        "chat",
        "deliveries/s at 1000 receivers of one room, 10 senders",
        True,
        (Target("≥ 2x naive-chat", NAIVE_CHAT, at_least=2.0),),
    ),
    Workload(
        "irc-fanout",
        (CHATSERVICE, NATIVE_DOOR, INSPIRCD, NGIRCD),
        "irc",
        "fanout over IRC (1000 receivers of #lobby, 10 senders), windows kept "
        "by receiver 0; chatservice-native: the same over the native door",
        True,
        (
            Target("≥ 2x inspircd", INSPIRCD, at_least=2.0),
            Target("≥ 0.8x native door", NATIVE_DOOR, at_least=0.8),
        ),
        load="fanout",
    ),
    Workload(
        "latency",
        CHAT_SERVERS,
        "chat",
        "p99 delivery latency, 100 receivers, 20k deliveries/s",
        False,
        (Target("p99 ≤ 3 ms", at_most=3.0),),
    ),
    Workload(
        "irc-latency",
        (CHATSERVICE, NATIVE_DOOR, INSPIRCD, NGIRCD),
        "irc",
        "latency over IRC (100 receivers, 20k deliveries/s); "
        "chatservice-native: the same over the native door",
        False,
        (Target("p99 ≤ 3 ms", at_most=3.0),),
        load="latency",
    ),
    Workload(
        "fanout-history",
        HISTORY_SERVERS,
        "chat",
        "fanout, history on (sqlite) beside off, side by side",
        True,
        # cs / this ≤ 1.25: history on keeps ≥ 0.8x of history off.
        (Target("history on ≥ 0.8x off", HISTORY, at_most=1.25),),
        load="fanout",
    ),
    Workload(
        "fanout-redis",
        (CHATSERVICE, *SHARED_SERVERS),
        "chat",
        "fanout without Redis, with --redis, and on two nodes sharing a "
        "Redis (receivers split, senders on the first), without and with "
        "the room history kept in Redis",
        True,
        # cs / this ≤ 1/0.6: a node with --redis keeps ≥ 0.6x of one without.
        (Target("--redis ≥ 0.6x without", ONE_NODE_REDIS, at_most=1 / 0.6),),
        load="fanout",
    ),
    Workload(
        "latency-redis",
        (CHATSERVICE, TWO_NODES_REDIS),
        "chat",
        "latency at 20k deliveries/s, one node beside two sharing a Redis "
        "(half the receivers on the second node)",
        False,
        (Target("p99 ≤ 5 ms across nodes", at_most=5.0, server=TWO_NODES_REDIS),),
        load="latency",
    ),
    Workload(
        "latency-history",
        HISTORY_SERVERS,
        "chat",
        "latency, history on (sqlite) beside off, side by side",
        False,
        (
            Target("p99 ≤ 3 ms", at_most=3.0),
            Target("p99 ≤ 3 ms with history", at_most=3.0, server=HISTORY),
        ),
        load="latency",
    ),
    Workload(
        "storm",
        CHAT_SERVERS,
        "chat",
        "chat registrations/s, 2000 clients connecting in batches of 100",
        True,
    ),
    Workload(
        "attack",
        (CHATSERVICE,),
        "chat",
        "issue 12's attack, default limits: 1000 slowloris + a 5000-connection "
        "storm (5 per address) spread over the chat, echo, IRC and web doors "
        "while 20 members chat and fresh clients arrive at each",
        True,
        (Target("every fresh client in ≤ 1 s", at_least=100.0),),
        rounds=1,
        keeps_limits=True,
        doors=("echo", "irc", "web"),
    ),
    Workload(
        "memory-chat",
        CHAT_SERVERS,
        "chat",
        "server RSS per registered chat client (10k clients)",
        False,
        (Target("≤ 2 KiB/conn", at_most=2.0),),
        rounds=1,
    ),
    Workload(
        "memory-irc",
        IRC_SERVERS,
        "irc",
        "server RSS per registered IRC client (10k clients)",
        False,
        (Target("≤ 2.5 KiB/conn", at_most=2.5),),
        rounds=1,
    ),
    Workload(
        "memory-echo",
        ECHO_SERVERS,
        "echo",
        "server RSS per idle echo connection (10k connections)",
        False,
        rounds=1,
    ),
    Workload(
        "web-fanout",
        web.FANOUT_SERVERS,
        web.SERVICE,
        "deliveries/s to 1000 WebSocket receivers of one room, 10 senders",
        True,
        (
            Target("≥ 3x autobahn", web.AUTOBAHN, at_least=3.0),
            Target("≥ 0.3x native door", web.NATIVE, at_least=0.3),
        ),
    ),
    Workload(
        "web-latency",
        web.LATENCY_SERVERS,
        web.SERVICE,
        "p99 latency over WebSocket, 100 receivers, 20k deliveries/s",
        False,
        (Target("p99 ≤ 5 ms", at_most=5.0),),
    ),
    Workload(
        "memory-web",
        web.MEMORY_SERVERS,
        web.SERVICE,
        "server RSS per registered web client (10k clients)",
        False,
        (Target("≤ 5 KiB/conn", at_most=5.0),),
        rounds=1,
    ),
    Workload(
        "startup",
        (CHATSERVICE, RAW, LINERECEIVER, ASYNCIO, NAIVE_CHAT),
        "",
        "seconds from launch to the first answered connection",
        False,
        (Target("≤ 1 s", at_most=1.0),),
    ),
)


def with_compared(workload: Workload, trees: Sequence[Tree]) -> Workload:
    """
    ``workload`` with every compared tree among its servers, right after
    chatservice, and its target against each (:data:`COMPARED_AT_LEAST`).
    """
    if not trees or CHATSERVICE not in workload.servers:
        return workload
    at = workload.servers.index(CHATSERVICE) + 1
    names = tuple(tree.name for tree in trees)
    targets = workload.targets
    least = COMPARED_AT_LEAST.get(workload.name)
    if least is not None:
        targets += tuple(
            Target(f"≥ {least:g}x {name}", name, at_least=least) for name in names
        )
    return dataclasses.replace(
        workload,
        servers=(*workload.servers[:at], *names, *workload.servers[at:]),
        targets=targets,
    )


def served(workload: Workload, server: str) -> str:
    """The service ``server`` is loaded on in ``workload`` (the native
    door's chat beside the IRC door's irc)."""
    return "chat" if server == NATIVE_DOOR else workload.service


def available(
    workloads: Sequence[Workload], c_loadgen: bool
) -> tuple[list[Workload], list[str]]:
    """
    ``workloads`` without the IRC daemons that are not installed, and
    without irc-fanout when there is no C load generator (``c_loadgen``
    false: loadgen.py speaks the native protocol only); why each was left
    out.
    """
    kept: list[Workload] = []
    notes: list[str] = []
    for workload in workloads:
        if workload.service == "irc" and workload.kind == "fanout" and not c_loadgen:
            notes.append(f"{workload.name}: skipped, it needs the C load generator")
            continue
        missing = [
            name
            for name in workload.servers
            if name in ircd.DAEMONS and ircd.DAEMONS[name].installed() is None
        ]
        for name in missing:
            notes.append(
                f"{workload.name}: {name} not installed (apt-get install "
                f"{ircd.DAEMONS[name].package}), run without it"
            )
        servers = tuple(name for name in workload.servers if name not in missing)
        kept.append(dataclasses.replace(workload, servers=servers))
    return kept, notes


def without_missing(workload: Workload, trees: Sequence[Tree] = ()) -> Workload:
    """
    ``workload`` without the baselines that cannot run here (a library or
    Node's ``ws`` missing), nor, in a web workload, compared trees that
    have no web door; saying which and why.
    """
    missing = web.missing_servers(workload.servers)
    if workload.service == web.SERVICE:
        for tree in trees:
            if tree.name in workload.servers and not tree.has_web_door:
                missing[tree.name] = "this version has no web door (--web)"
    for server, why in missing.items():
        print(f"{workload.name}: {server} left out: {why}")
    if not missing:
        return workload
    servers = tuple(s for s in workload.servers if s not in missing)
    return dataclasses.replace(workload, servers=servers)


def loadgen_args(workload: str, settings: Settings) -> list[str]:
    """The load generator's command-line arguments for one workload."""
    common = [
        "--duration",
        str(settings.duration),
        "--warmup",
        str(settings.warmup),
        "--timeout",
        str(settings.loadgen_timeout),
    ]
    if workload in ("echo", "upper"):
        return [
            workload,
            *common,
            "--connections",
            str(settings.echo_connections),
            "--window",
            str(settings.echo_window),
        ]
    if workload == "fanout":
        return [
            "fanout",
            *common,
            "--receivers",
            str(settings.fanout_receivers),
            "--senders",
            str(settings.fanout_senders),
            "--window",
            str(settings.fanout_window),
        ]
    if workload == "latency":
        return [
            "latency",
            *common,
            "--receivers",
            str(settings.latency_receivers),
            "--senders",
            str(settings.latency_senders),
            "--rate",
            str(settings.latency_rate),
        ]
    if workload in web.KINDS:
        # The native workload's arguments: its first is the load generator's
        # mode (fanout, latency, memory); memory-web's rooms as memory-chat's.
        native = loadgen_args(web.NATIVE_LIKE[workload], settings)
        if workload == "memory-web":
            native += ["--room-size", str(settings.memory_room_size)]
        return native
    if workload == "storm":
        return [
            "storm",
            *common,
            "--connections",
            str(settings.storm_connections),
        ]
    if workload == "attack":
        return [
            "attack",
            *common,
            "--slowloris",
            str(settings.attack_slowloris),
            "--storm",
            str(settings.attack_storm),
            "--receivers",
            str(settings.attack_members),
            "--senders",
            "4",
            "--rate",
            "10",
            "--duration",
            str(settings.attack_duration),
        ]
    if workload in ("memory-chat", "memory-echo", "memory-irc"):
        return [
            "memory",
            *common,
            "--service",
            workload.removeprefix("memory-"),
            "--connections",
            str(settings.memory_connections),
            "--room-members",
            str(settings.memory_room_members),
        ]
    raise ValueError(workload)


def c_compiler() -> str | None:
    """The C compiler the C load generators are built with (``$CC``, else
    ``cc`` or ``gcc``), or ``None``."""
    return os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")


def build_c_loadgen(
    workdir: Path, source: Path = ECHO_LOADGEN_SOURCE
) -> tuple[Path | None, str]:
    """
    Compile ``source`` (a C load generator: ``echo_loadgen.c`` unless told)
    into ``workdir`` with the C compiler (:func:`c_compiler`); the program,
    or ``None`` and why not.
    """
    compiler = c_compiler()
    if not compiler:
        return None, "no C compiler (cc, gcc or $CC) found"
    program = workdir / source.stem
    try:
        built = subprocess.run(
            [compiler, "-O2", "-o", str(program), str(source)],
            capture_output=True,
            timeout=120,
            check=False,
        )
    except (OSError, subprocess.SubprocessError) as error:
        return None, f"{compiler} failed: {error}"
    if built.returncode != 0:
        why = built.stderr.decode(errors="replace").strip()[-500:]
        return None, f"{compiler} failed: {why}"
    return program, f"C (bench/{source.name}, built with {compiler} -O2)"


def build_echo_loadgen(workdir: Path) -> tuple[Path | None, str]:
    """Compile ``echo_loadgen.c`` into ``workdir`` (:func:`build_c_loadgen`)."""
    return build_c_loadgen(workdir, ECHO_LOADGEN_SOURCE)


def build_loadgens(
    workloads: Sequence[Workload],
    workdir: Path,
    python_loadgen: bool,
    progress: Callable[[str], None],
) -> dict[str, Path]:
    """
    Build, once, each C load generator some of ``workloads`` need (none with
    ``python_loadgen``), saying which load generator will run; the programs
    built, by the workload (``Workload.kind``) each drives.
    """
    kinds = {w.kind for w in workloads}
    kinds |= web.also_needed(kinds)
    programs: dict[str, Path] = {}
    for source, drives in C_LOADGENS:
        wanted = [kind for kind in drives if kind in kinds]
        if not wanted:
            continue
        # There is no Python WebSocket load generator: the C one always.
        if python_loadgen and source != web.LOADGEN_SOURCE:
            how = "Python (bench/loadgen.py), as asked"
        else:
            program, how = build_c_loadgen(workdir, source)
            if program is None:
                how = f"Python (bench/loadgen.py): {how}"
            else:
                programs.update(dict.fromkeys(drives, program))
        progress(f"{' and '.join(drives)} load generator: {how}")
    return programs


def run_loadgen(
    workload: Workload,
    server: Server,
    where: Placement,
    settings: Settings,
    c_loadgens: Mapping[str, Path] | None = None,
) -> dict[str, object]:
    """
    Run the load generator once against a running server: the C one that
    ``c_loadgens`` has for the workload's kind (echo, upper, fanout,
    latency), else
    ``loadgen.py``.
    """
    kind = web.loadgen_kind(workload.kind, server.name)
    args = loadgen_args(kind, settings)
    service = served(workload, server.name)
    if workload.name == "memory-chat" and server.name == NAIVE_CHAT:
        # The naive chat has one room: every member is in it.
        args += ["--room-size", "0"]
    elif workload.name in ("memory-chat", "memory-irc"):
        args += ["--room-size", str(settings.memory_room_size)]
    if service == "irc":
        args += ["--protocol", "irc"]
    elif workload.kind == "fanout" and workload.service == "irc":
        # Over IRC receiver 0 keeps the windows: the native door's alike.
        args += ["--pace", "receiver"]
    if server.name == INSPIRCD:
        # Registered once a second: many at once, or the set-up takes minutes.
        args += ["--concurrency", str(INSPIRCD_CONCURRENCY)]
    if workload.name == "storm" and server.name != NAIVE_CHAT:
        # The naive chat has no /who to check the room against, nor rooms
        # but one: there the probe's lines go to the whole storm.
        args += ["--check-who", "--probe-room"]
    c_program = (c_loadgens or {}).get(kind)
    if workload.name in ("fanout-redis", "latency-redis"):
        if "chat2" in server.ports:
            args += ["--second-port", str(server.ports["chat2"])]
        if "redis" in server.ports:
            redis_command(server.ports["redis"], "CONFIG", "RESETSTAT")
    if c_program is None and kind in web.KINDS:
        raise BenchError(f"{kind} needs bench/{web.LOADGEN_SOURCE.name}, not built")
    if c_program is not None:
        program = [str(c_program)]
    elif workload.kind == "fanout" and workload.service == "irc":
        raise BenchError(f"{workload.name} needs the C load generator")
    else:
        program = [sys.executable, str(LOADGEN)]
    argv = [
        *program,
        *args,
        "--port",
        str(server.ports[service]),
        "--server-pid",
        str(server.pid),
    ]
    for door in workload.doors:
        argv += [f"--{door}-port", str(server.ports[door])]
    if where.loadgen_cpu is not None:
        argv += ["--cpu", str(where.loadgen_cpu)]
    before = cpu_times()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    try:
        result = subprocess.run(
            argv,
            capture_output=True,
            timeout=settings.loadgen_timeout + LOADGEN_GRACE,
            check=False,
            # Pinned by its own --cpu; here only the scheduling class.
            preexec_fn=_child_setup(None, where.realtime),
        )
    except subprocess.TimeoutExpired:
        raise BenchError(
            f"the load generator did not finish {workload.name} against "
            f"{server.name} in time"
        ) from None
    lines = result.stdout.decode(errors="replace").strip().splitlines()
    try:
        report = json.loads(lines[-1]) if lines else {}
    except json.JSONDecodeError:
        report = {}
    if result.returncode != 0 or "value" not in report:
        why = report.get("error") or result.stderr.decode(errors="replace")[-2000:]
        server_state = ""
        if server.process.poll() is not None:
            server_state = "\nserver log:\n" + server.log_tail()
        raise BenchError(f"{workload.name} against {server.name}: {why}{server_state}")
    server.check_alive()
    report.pop("workload", None)
    # How quiet the machine was: what the figure may be judged against.
    report["steal_pct"] = steal_share(before, cpu_times())
    report["load_average"] = load
    report["realtime"] = where.realtime
    if "redis" in server.ports:
        report.update(redis_costs(server.ports["redis"], report))
    return server.noted(report)


@dataclass
class Record:
    """Every run of one server under one workload."""

    workload: str
    server: str
    runs: list[dict[str, object]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def values(self) -> list[float]:
        return [number(run["value"]) for run in self.runs]

    @property
    def value(self) -> float | None:
        values = self.values()
        return statistics.median(values) if values else None

    @property
    def unit(self) -> str:
        return str(self.runs[0]["unit"]) if self.runs else ""

    def field_list(self, name: str) -> list[object]:
        return [run.get(name) for run in self.runs]

    @property
    def saturated(self) -> bool:
        return any(bool(run.get("saturated")) for run in self.runs)

    @property
    def understated(self) -> bool:
        """
        Whether a saturated run left the server idle part of the time: its
        figure is then a lower bound of what the server can do.
        """
        return any(
            bool(run.get("saturated"))
            and run.get("server_cpu_pct") is not None
            and number(run["server_cpu_pct"]) < 90
            for run in self.runs
        )

    @property
    def busy(self) -> bool:
        """
        Whether the machine was busy with other work when a run began: a
        load average above :data:`BUSY_LOAD` (the benchmark's own server
        and load generator make about 1), not counting the spinners that
        keep the cores awake (in the load, but never running while anything
        else wants the core).
        """
        return any(
            isinstance(run.get("load_average"), int | float)
            and number(run["load_average"]) - number(run.get("spinners") or 0)
            > BUSY_LOAD
            for run in self.runs
        )

    def median_of(self, name: str) -> float | None:
        values = [number(v) for v in self.field_list(name) if v is not None]
        return statistics.median(values) if values else None

    @property
    def lost(self) -> int:
        return sum(int(number(run.get("lost") or 0)) for run in self.runs)

    def total(self, name: str) -> int:
        """A count summed over the runs (0 where a run has none)."""
        return sum(int(number(run.get(name) or 0)) for run in self.runs)

    @property
    def violations(self) -> dict[str, int]:
        """
        What the load generator saw that a correct server never sends: each
        kind (duplicates, deliveries out of order, unexpected lines) with
        its count, where there were any.  Any of them fails the run.
        """
        found = {name: self.total(name) for name in VIOLATIONS}
        return {name: count for name, count in found.items() if count}


#: Counts in a run's report that fail the benchmark when not 0.
VIOLATIONS = ("duplicates", "out_of_order", "unexpected_lines")


def number(value: object) -> float:
    """A figure from a report (JSON numbers only)."""
    if not isinstance(value, int | float):
        raise TypeError(f"not a number: {value!r}")
    return float(value)


def ratio_of(ours: Record, theirs: Record, name: str = "value") -> float | None:
    """
    chatservice's figure over the baseline's, for every workload alike: the
    median of the ratios of runs of the same round (measured side by side).
    """
    by_round = {run.get("round"): run for run in theirs.runs}
    pairs = []
    for run in ours.runs:
        other = by_round.get(run.get("round"))
        if other is None or run.get(name) is None or other.get(name) is None:
            continue
        if number(other[name]) > 0:
            pairs.append(number(run[name]) / number(other[name]))
    return statistics.median(pairs) if pairs else None


def run_all(
    workloads: Sequence[Workload],
    settings: Settings,
    where: Placement,
    extra: Sequence[str],
    progress: Callable[[str], None],
    python_loadgen: bool = False,
    trees: Mapping[str, Tree] | None = None,
    realtime: bool = False,
    keep_awake: bool = False,
) -> dict[tuple[str, str], Record]:
    """
    Every workload, its servers (compared trees included: ``trees``, by
    name) interleaved round after round; the latency workloads at real-time
    priority when ``realtime`` (:func:`realtime_for`), and with both cores
    kept awake when ``keep_awake`` (:mod:`awake`).
    """
    records: dict[tuple[str, str], Record] = {}
    with tempfile.TemporaryDirectory(prefix="chatservice-bench-") as tmp:
        workdir = Path(tmp)
        c_loadgens = build_loadgens(workloads, workdir, python_loadgen, progress)
        for workload in workloads:
            placed = realtime_for(workload, where, realtime)
            spinning = contextlib.ExitStack()
            spinners = 0
            if keep_awake and workload.kind.endswith("latency"):
                cores = {where.server_cpu, where.loadgen_cpu}
                awake_cores = [c for c in cores if c is not None]
                spinners = len(awake_cores)
                spinning.enter_context(awake.cores_kept_awake(awake_cores))
            rounds = (
                settings.startup_repeats
                if workload.name == "startup"
                else workload.rounds or settings.rounds
            )
            for server in workload.servers:
                records[workload.name, server] = Record(workload.name, server)
            for round_number in range(rounds):
                # Alternate the order, so that no server always goes first.
                order = workload.servers[:: -1 if round_number % 2 else 1]
                for server in order:
                    record = records[workload.name, server]
                    label = (
                        f"{workload.name} / {server} "
                        f"(round {round_number + 1}/{rounds})"
                    )
                    progress(label)
                    try:
                        if workload.name == "startup":
                            report = measure_startup(
                                server, placed, workdir, extra, trees
                            )
                        else:
                            with (
                                running_shared(server, placed, workdir, extra)
                                if server in SHARED_SERVERS
                                else running(
                                    server,
                                    (served(workload, server), *workload.doors),
                                    placed,
                                    workdir,
                                    extra,
                                    upper=workload.service == "upper",
                                    trees=trees,
                                    keep_limits=workload.keeps_limits,
                                )
                            ) as handle:
                                report = run_loadgen(
                                    workload, handle, placed, settings, c_loadgens
                                )
                    except (BenchError, OSError, subprocess.SubprocessError) as error:
                        record.errors.append(str(error))
                        progress(f"  FAILED: {error}")
                        continue
                    report["round"] = round_number + 1
                    # They count in the load average, but take no time.
                    report["spinners"] = spinners
                    share = report.get("server_cpu_pct")
                    if (
                        workload.higher_is_better
                        and isinstance(share, int | float)
                        and share > 0
                    ):
                        # The figure per second of server CPU: what a line
                        # costs, whatever else the machine was doing.
                        report["per_server_cpu_s"] = number(report["value"]) / (
                            share / 100
                        )
                    record.runs.append(report)
            spinning.close()
    return records


# Output


def human(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit.endswith("/s"):
        return f"{value:,.0f} {unit}"
    if unit == "s":
        return f"{value:.3f} s"
    return f"{value:,.2f} {unit}"


def percents(values: Sequence[object]) -> str:
    shown = [f"{number(v):.0f}" for v in values if v is not None]
    return "/".join(shown) + "%" if shown else "-"


def table(
    records: dict[tuple[str, str], Record], workloads: Sequence[Workload]
) -> tuple[list[list[str]], list[tuple[str, bool | None]]]:
    """The rows of the result table, and every target with whether it is met."""
    rows = [
        [
            "workload",
            "server",
            "figure (median)",
            "cs / this",
            "per CPU-s",
            "target",
            "loadgen CPU",
            "loadgen busy",
            "server CPU",
            "flags",
        ]
    ]
    verdicts: list[tuple[str, bool | None]] = []
    for workload in workloads:
        ours = records.get((workload.name, CHATSERVICE))
        for server in workload.servers:
            record = records.get((workload.name, server))
            if record is None:
                continue
            ratio = per_cpu = None
            target_text = ""
            if server != CHATSERVICE and ours is not None:
                ratio = ratio_of(ours, record)
                per_cpu = ratio_of(ours, record, "per_server_cpu_s")
                for target in workload.targets:
                    if target.baseline == server:
                        met = unsaturated(target.met(ratio, None), ours, record)
                        target_text = f"{target.text}: {verdict(met)}"
                        verdicts.append((f"{workload.name} {target.text}", met))
            if server in (CHATSERVICE, HISTORY):
                for target in workload.targets:
                    if target.baseline is None and target.server == server:
                        met = unsaturated(target.met(None, record.value), record)
                        if workload.kind.endswith("latency") and record.busy:
                            # A tail measured on a busy machine is the
                            # machine's: neither a pass nor a fail.
                            met = None
                        target_text = f"{target.text}: {verdict(met)}"
                        verdicts.append((f"{workload.name} {target.text}", met))
            flags = []
            if workload.kind.endswith("latency") and record.busy:
                flags.append("BUSY")
            if record.saturated:
                flags.append("SATURATED")
                if record.understated:
                    flags.append("(lower bound)")
            if record.lost:
                flags.append(f"LOST {record.lost}")
            for name, count in record.violations.items():
                flags.append(f"{name.upper()} {count}")
            if record.errors:
                flags.append(f"{len(record.errors)} FAILED")
            rows.append(
                [
                    workload.name,
                    server,
                    human(record.value, record.unit),
                    "-" if ratio is None else f"{ratio:.2f}x",
                    "-" if per_cpu is None else f"{per_cpu:.2f}x",
                    target_text,
                    percents(record.field_list("loadgen_cpu_pct")),
                    percents(record.field_list("loadgen_busy_pct")),
                    percents(record.field_list("server_cpu_pct")),
                    " ".join(flags),
                ]
            )
    return rows, verdicts


LEGEND = """\
cs / this: chatservice's figure over this server's, the median of the ratios
  of runs in the same round; higher is better for echo, upper, fanout and
  storm, lower for latency, memory and startup.
per CPU-s: the same ratio for the figures divided by the server's CPU share,
  i.e. work per second of server CPU: steadier on a busy machine, and not
  limited by a saturated load generator.
SATURATED: the load generator used 90% or more of its core (CPU or busy
  time); with the server below 90% CPU, the figure is a lower bound.  A
  target that rests on a saturated run is n/a, never a pass.
BUSY (latency workloads): a run began with the machine's load average above
  the number of cores + 0.5, other work besides the benchmark's own: the
  latency targets are n/a.  The latency workloads run at SCHED_FIFO (unless
  --no-realtime), so neighbours cannot preempt the server, but they still
  share its caches and the hypervisor's time.
chatservice+history: the installed chatservice with --history sqlite:FILE
  (a new file each run; the other chatservice runs have --history none).
2-nodes+redis+history: two nodes sharing a Redis, with --history memory:
  the room history is kept in Redis (docs/scaling.rst, "Shared history").
DUPLICATES, OUT_OF_ORDER, UNEXPECTED_LINES: fan-out deliveries received
  twice, out of a sender's order, or lines that are no delivery: the run
  fails (exit status 1).
chatservice@REV: the chatservice of revision REV (or checkout directory
  REV) that --compare asked for, run side by side with the installed one."""


def comparisons(
    records: dict[tuple[str, str], Record],
    workloads: Sequence[Workload],
    trees: Sequence[Tree],
) -> list[dict[str, object]]:
    """
    For each compared tree and workload, chatservice's figure over the
    tree's (the median of ratios within a round), plain and per server CPU.
    """
    found: list[dict[str, object]] = []
    for tree in trees:
        for workload in workloads:
            ours = records.get((workload.name, CHATSERVICE))
            theirs = records.get((workload.name, tree.name))
            if ours is None or theirs is None:
                continue
            found.append(
                {
                    "workload": workload.name,
                    "server": tree.name,
                    "ratio": ratio_of(ours, theirs),
                    "per_server_cpu_s_ratio": ratio_of(
                        ours, theirs, "per_server_cpu_s"
                    ),
                    "higher_is_better": workload.higher_is_better,
                }
            )
    return found


def comparison_lines(found: Sequence[dict[str, object]]) -> list[str]:
    """The comparisons of :func:`comparisons`, one line each."""

    def times(value: object) -> str:
        return "-" if value is None else f"{number(value):.2f}x"

    return [
        f"  {item['workload']:12} {item['server']:21} {times(item['ratio']):>7}"
        f"  per CPU-s {times(item['per_server_cpu_s_ratio']):>7}  "
        + ("higher" if item["higher_is_better"] else "lower")
        + " is better for chatservice"
        for item in found
    ]


def record_list(record: Record, name: str) -> str:
    """One figure of every run of ``record``, in order: ``2.9, 3.1, 3.0``."""
    return ", ".join(
        f"{number(value):.2f}" for value in record.field_list(name) if value is not None
    )


def details(records: dict[tuple[str, str], Record]) -> list[str]:
    """Secondary figures, one line per workload and server (medians)."""

    def med(record: Record, name: str, digits: int = 2) -> str:
        value = record.median_of(name)
        return "-" if value is None else f"{value:,.{digits}f}"

    lines = []
    for (name, server), record in records.items():
        if not record.runs:
            continue
        workload = (
            name.removesuffix("-history").removesuffix("-redis").removeprefix("web-")
        )
        if workload in ("echo", "upper"):
            text = (
                f"{med(record, 'per_server_cpu_s', 0)} lines per server "
                f"CPU-second; {med(record, 'lines_per_read', 1)} lines per read"
            )
        elif workload in ("fanout", "irc-fanout"):
            text = (
                f"{med(record, 'per_server_cpu_s', 0)} deliveries per server "
                f"CPU-second; {med(record, 'messages_sent', 0)} messages sent, "
                f"{record.lost} deliveries lost in the final drain, "
                f"{record.total('duplicates')} duplicates, "
                f"{record.total('out_of_order')} out of order, "
                f"{record.total('unexpected_lines')} unexpected lines"
            )
            if record.median_of("redis_commands_per_message") is not None:
                text += (
                    f"; Redis {med(record, 'redis_commands_per_message', 3)} "
                    "commands per message"
                )
        elif workload in ("latency", "irc-latency"):
            text = (
                f"in socket p50 {med(record, 'p50_ms')} / p99 "
                f"{med(record, 'p99_ms')} / max {med(record, 'max_ms')} ms; "
                f"read by the load generator p50 {med(record, 'read_p50_ms')} / "
                f"p99 {med(record, 'read_p99_ms')} ms; "
                f"{med(record, 'deliveries_per_s', 0)} deliveries/s; per round "
                f"p99 {record_list(record, 'p99_ms')} ms; the machine: load "
                f"{med(record, 'load_average')}, {med(record, 'steal_pct', 1)} % "
                "stolen by the hypervisor"
            )
        elif workload == "storm":
            text = (
                f"{med(record, 'connections', 0)} clients in "
                f"{med(record, 'seconds')} s, {med(record, 'server_cpu_s')} s of "
                f"server CPU; a member's round trips between batches p50 "
                f"{med(record, 'probe_p50_ms')} / max {med(record, 'probe_max_ms')} ms"
            )
        elif workload == "attack":
            run = record.runs[-1]
            text = (
                f"fresh clients: {run.get('fresh_admitted')} of "
                f"{run.get('fresh_tried')} let in (in time, by door: "
                f"{run.get('fresh_by_door')}; p50 {med(record, 'fresh_p50_ms')} "
                f"/ max {med(record, 'fresh_max_ms')} ms), refused "
                f"{run.get('fresh_refused')}; members' chat during the attack: "
                f"{med(record, 'deliveries', 0)} deliveries, {record.lost} lost, "
                f"p50 {med(record, 'chat_p50_ms')} / p99 {med(record, 'chat_p99_ms')}"
                f" / max {med(record, 'chat_max_ms')} ms; slowloris: "
                f"{run.get('slowloris_connected')} connected, "
                f"{run.get('slowloris_closed_by_server')} closed by the server "
                f"(p50 at {run.get('slowloris_closed_p50_s')} s), "
                f"{run.get('slowloris_open_at_end')} open at the end; storm: "
                f"{run.get('storm_connected')} connected, "
                f"{run.get('storm_refused_at_connect')} refused at connect, "
                f"{run.get('storm_closed_by_server')} closed by the server, "
                f"{run.get('storm_open_at_end')} open at the end; strangers were "
                f"told {run.get('storm_said')}"
            )
        elif workload.startswith("memory"):
            text = (
                f"RSS {med(record, 'rss_before_kib', 0)} KiB before, "
                f"{med(record, 'rss_after_kib', 0)} KiB after "
                f"{med(record, 'connections', 0)} connections"
            )
        else:
            text = "runs: " + ", ".join(f"{v:.3f}" for v in record.values()) + " s"
        lines.append(f"  {name:12} {server:21} {text}")
    return lines


def unsaturated(met: bool | None, *records: Record) -> bool | None:
    """
    A target's verdict, or none (``n/a``) when a run it rests on was
    saturated: then the figure says more about the load generator than
    about the server, and a saturated run is never a pass.
    """
    if any(record.saturated for record in records):
        return None
    return met


def verdict(met: bool | None) -> str:
    return {True: "PASS", False: "FAIL", None: "n/a"}[met]


def format_table(rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for number, row in enumerate(rows):
        lines.append("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)))
        if number == 0:
            lines.append("  ".join("-" * width for width in widths))
    return "\n".join(line.rstrip() for line in lines)


def versions() -> dict[str, str]:
    """What ran: interpreter, Twisted, kernel, and chatservice's commit."""
    import twisted

    found = {
        "python": platform.python_version(),
        "twisted": twisted.__version__,
        "kernel": platform.release(),
        "machine": platform.machine(),
        "cpus": str(os.cpu_count()),
    }
    checkout = BENCH.parent
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=checkout,
            capture_output=True,
            timeout=10,
            check=True,
        )
        changed = subprocess.run(
            ["git", "status", "--porcelain", "--", "chatservice"],
            cwd=checkout,
            capture_output=True,
            timeout=10,
            check=True,
        )
        found["chatservice_commit"] = commit.stdout.decode().strip() + (
            " (with uncommitted changes)" if changed.stdout.strip() else ""
        )
    return found


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Benchmark chatservice against baseline servers (loopback)."
    )
    parser.add_argument(
        "--quick", action="store_true", help="smoke mode: tiny loads, seconds"
    )
    parser.add_argument("--json", metavar="FILE", help="save every figure here")
    parser.add_argument(
        "--only",
        metavar="WORKLOAD",
        action="append",
        choices=[w.name for w in WORKLOADS],
        help="run only this workload (repeatable)",
    )
    parser.add_argument("--rounds", type=int, help="rounds of interleaved runs")
    parser.add_argument("--duration", type=float, help="seconds measured per run")
    parser.add_argument("--echo-window", type=int, help="lines in flight (echo)")
    parser.add_argument(
        "--fanout-window", type=int, help="messages in flight per sender (fanout)"
    )
    parser.add_argument(
        "--backlog",
        type=int,
        help="listen backlog of chatservice's endpoints (default: each tree's own)",
    )
    parser.add_argument(
        "--memory-connections", type=int, help="connections for memory-*"
    )
    parser.add_argument(
        "--storm-connections", type=int, help="clients registering in the storm"
    )
    parser.add_argument(
        "--attack-slowloris", type=int, help="attack: trickling connections"
    )
    parser.add_argument(
        "--attack-storm", type=int, help="attack: connections of the storm"
    )
    parser.add_argument(
        "--attack-duration", type=float, help="attack: seconds it lasts"
    )
    parser.add_argument(
        "--python-loadgen",
        action="store_true",
        help="drive echo, upper, fanout and latency with loadgen.py, not the C "
        "load generators",
    )
    parser.add_argument(
        "--no-realtime",
        dest="realtime",
        action="store_false",
        help="run the latency workloads at the ordinary priority, not SCHED_FIFO",
    )
    parser.add_argument(
        "--no-keep-awake",
        dest="keep_awake",
        action="store_false",
        help="latency workloads: let the cores go idle (by default a SCHED_IDLE "
        "spinner keeps each busy, so that an idle virtual CPU's wake-up is not "
        "in the figures: bench/awake.py)",
    )
    parser.add_argument(
        "--compare",
        metavar="REV_OR_PATH",
        action="append",
        default=[],
        help="also run the chatservice of this git revision of the checkout "
        "or of this checkout directory, as chatservice@REV (repeatable)",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_args(sys.argv[1:] if argv is None else argv)
    # Kill every child, and remove every temporary file, if told to stop.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    # Revisions compared are extracted in here.
    with tempfile.TemporaryDirectory(prefix="chatservice-bench-trees-") as scratch:
        return benchmark(options, Path(scratch))


def benchmark(options: argparse.Namespace, scratch: Path) -> int:
    """Run the benchmarks ``options`` ask for; the exit status."""
    overrides = {
        name: getattr(options, name)
        for name in (
            "rounds",
            "duration",
            "echo_window",
            "fanout_window",
            "memory_connections",
            "storm_connections",
            "attack_slowloris",
            "attack_storm",
            "attack_duration",
        )
        if getattr(options, name) is not None
    }
    settings = dataclasses.replace(QUICK if options.quick else FULL, **overrides)
    global BACKLOG
    BACKLOG = options.backlog
    selected = [w for w in WORKLOADS if options.only is None or w.name in options.only]
    where = placement()
    if where.loadgen_cpu is not None:
        os.sched_setaffinity(0, {where.loadgen_cpu})
    started = datetime.datetime.now(datetime.UTC)
    clock = time.monotonic()

    def progress(text: str) -> None:
        print(f"[{time.monotonic() - clock:6.1f} s] {text}", flush=True)

    print(f"chatservice benchmarks ({'quick' if options.quick else 'full'} mode)")
    print(where.note)
    try:
        extra = load_test_options()
    except (BenchError, OSError, subprocess.SubprocessError) as error:
        print(f"cannot run chatservice: {error}", file=sys.stderr)
        return 1
    installed = installed_module()
    print(f"chatservice: {installed or '(file unknown)'} (installed), under {twistd()}")
    print("chatservice options: " + " ".join(extra))
    trees: list[Tree] = []
    for spec in options.compare:
        try:
            tree = compared_tree(spec, scratch)
            if tree.name in (t.name for t in trees):
                raise BenchError(f"{tree.name} is named twice")
        except (BenchError, OSError, subprocess.SubprocessError) as error:
            print(f"cannot run --compare {spec}: {error}", file=sys.stderr)
            return 1
        origin = (
            "checkout directory"
            if tree.commit is None
            else f"commit {tree.commit[:12]}, extracted with git archive"
        )
        print(f"{tree.name}: {tree.module} ({origin}), under {LAUNCHER.name}")
        print(f"{tree.name} options: " + " ".join(tree.options))
        trees.append(tree)
    selected, skipped = available(
        selected, c_compiler() is not None and not options.python_loadgen
    )
    for note in skipped:
        print(note)
    workloads = [with_compared(w, trees) for w in selected]
    workloads = [without_missing(w, trees) for w in workloads]
    about = versions()
    print(
        f"Python {about['python']}, Twisted {about['twisted']}, chatservice "
        f"{about.get('chatservice_commit', '(commit unknown)')}"
    )
    realtime = options.realtime and realtime_allowed()
    if any(w.kind.endswith("latency") for w in workloads):
        print(
            f"latency workloads: servers and load generator at SCHED_FIFO "
            f"priority {REALTIME_PRIORITY}, so that other work on the machine "
            "cannot preempt them"
            if realtime
            else "latency workloads: ordinary scheduling"
            + ("" if not options.realtime else " (SCHED_FIFO is not permitted here)")
            + ": other work on the machine adds to their tail"
        )
    if options.keep_awake and any(w.kind.endswith("latency") for w in workloads):
        print(
            "latency workloads: both cores kept awake by a SCHED_IDLE spinner "
            "(--no-keep-awake to let them idle)"
        )
    records = run_all(
        workloads,
        settings,
        where,
        extra,
        progress,
        options.python_loadgen,
        {tree.name: tree for tree in trees},
        realtime,
        options.keep_awake and awake.allowed(),
    )
    rows, verdicts = table(records, workloads)
    print()
    print(format_table(rows))
    print(LEGEND)
    print()
    print("Details (medians over rounds):")
    print("\n".join(details(records)))
    print()
    compared = comparisons(records, workloads, trees)
    if compared:
        print("chatservice against the compared trees (ratios within a round):")
        print("\n".join(comparison_lines(compared)))
        print()
    print("Targets for chatservice:")
    for text, met in verdicts:
        print(f"  {verdict(met):4}  {text}")
    failures = [
        (key, error) for key, record in records.items() for error in record.errors
    ]
    lost = [key for key, record in records.items() if record.lost]
    wrong = [key for key, record in records.items() if record.violations]
    for (workload, server), error in failures:
        print(f"FAILED {workload} / {server}: {error}", file=sys.stderr)
    for workload, server in lost:
        print(f"LOSS: {workload} / {server} lost deliveries", file=sys.stderr)
    for workload, server in wrong:
        record = records[(workload, server)]
        seen = ", ".join(f"{count} {name}" for name, count in record.violations.items())
        samples = [
            line for run in record.runs for line in run.get("unexpected_sample") or []
        ]
        print(f"WRONG: {workload} / {server}: {seen} {samples[:5]!r}", file=sys.stderr)
    if options.json:
        document = {
            "started": started.isoformat(timespec="seconds"),
            "elapsed_s": round(time.monotonic() - clock, 1),
            "mode": "quick" if options.quick else "full",
            "placement": where.note,
            "server_cpu": where.server_cpu,
            "loadgen_cpu": where.loadgen_cpu,
            "latency_realtime_priority": REALTIME_PRIORITY if realtime else None,
            "latency_cores_kept_awake": bool(options.keep_awake),
            "chatservice_options": extra,
            "chatservice_file": installed,
            "compared": [tree.describe() for tree in trees],
            "versions": about,
            "settings": vars(settings),
            "skipped": skipped,
            "workloads": {
                w.name: {"servers": list(w.servers), "description": w.description}
                for w in workloads
            },
            "results": [
                {
                    "workload": record.workload,
                    "server": record.server,
                    "value": record.value,
                    "unit": record.unit,
                    "per_server_cpu_s": record.median_of("per_server_cpu_s"),
                    "saturated": record.saturated,
                    "runs": record.runs,
                    "errors": record.errors,
                }
                for record in records.values()
            ],
            "table": rows,
            "comparisons": compared,
            "targets": [{"target": t, "met": m} for t, m in verdicts],
        }
        Path(options.json).write_text(json.dumps(document, indent=2) + "\n")
        print(f"results saved to {options.json}")
    return 1 if failures or lost or wrong else 0


if __name__ == "__main__":
    sys.exit(main())
