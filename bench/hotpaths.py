"""
Where chatservice spends its time under load: a profile of the server
while the load generator drives one workload (echo, upper, fanout,
latency, storm (registrations) or web-fanout (the web door under
bench/ws_loadgen.c), summarised as the functions with the most samples.

With ``py-spy`` installed next to ``sys.executable`` (``pip install
py-spy``) the server is sampled from outside: it runs at full speed and
the figures are fractions of its CPU time.  Without it, the server runs
under ``twistd --profile`` (cProfile), which slows every Python call down
several times, more the smaller the function, so read its ranking with care.

Usage: ``python bench/hotpaths.py [--workload echo] [--workload fanout]
[--seconds 5] [--top 25] [--raw DIR] [--storm-connections N]``.
Loopback only; every child is killed when done.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import dataclasses
import json
import pstats
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import run as bench
import web_workloads as web

PROFILED_WORKLOADS = ("echo", "upper", "fanout", "latency", "storm", "web-fanout")
#: The workloads on the chat service.
CHAT_WORKLOADS = ("fanout", "latency", "storm")
#: Clients of the storm profiled (``--storm-connections``).
STORM_CONNECTIONS = bench.FULL.storm_connections
#: The server profiled: chatservice, or with ``--history`` chatservice with
#: SQLite history on (a new file in the scratch directory).
SERVER = bench.CHATSERVICE


def py_spy() -> Path | None:
    path = Path(sys.executable).with_name("py-spy")
    return path if path.exists() else None


#: The C load generator for echo and upper, once built (``main``).
ECHO_LOADGEN: Path | None = None
#: The WebSocket load generator (web-fanout), once built (``main``).
WS_LOADGEN: Path | None = None


def service_of(workload: str) -> str:
    """The service a workload drives: chat, the web door, echo or upper."""
    if workload in web.KINDS:
        return web.SERVICE
    return "chat" if workload in CHAT_WORKLOADS else workload


def loadgen_command(
    workload: str, server: bench.Server, where: bench.Placement, seconds: float
) -> list[str]:
    settings = dataclasses.replace(
        bench.FULL,
        duration=seconds,
        warmup=1.0,
        storm_connections=STORM_CONNECTIONS,
    )
    service = service_of(workload)
    if ECHO_LOADGEN is not None and workload in ("echo", "upper"):
        program = [str(ECHO_LOADGEN)]
    elif workload in web.KINDS:
        if WS_LOADGEN is None:
            raise bench.BenchError("the WebSocket load generator did not build")
        program = [str(WS_LOADGEN)]
    else:
        program = [sys.executable, str(bench.LOADGEN)]
    argv = [
        *program,
        *bench.loadgen_args(workload, settings),
        "--port",
        str(server.ports[service]),
        "--server-pid",
        str(server.pid),
    ]
    if where.loadgen_cpu is not None:
        argv += ["--cpu", str(where.loadgen_cpu)]
    return argv


def summarise_collapsed(text: str, top: int) -> tuple[int, list[str]]:
    """Self and inclusive sample counts per function from collapsed stacks."""
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in text.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        frames = stack.split(";")
        total += count
        own[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count
    lines = [f"{total} samples of the server's main thread", "", "self time:"]
    lines += [
        f"  {100 * count / total:5.1f}%  {frame}"
        for frame, count in own.most_common(top)
    ]
    lines += ["", "inclusive time (chatservice and the reactor's I/O):"]
    shown = 0
    for frame, count in inclusive.most_common():
        if "chatservice" in frame or "twisted/internet" in frame:
            lines.append(f"  {100 * count / total:5.1f}%  {frame}")
            shown += 1
            if shown == top:
                break
    return total, lines


def profile_with_py_spy(
    tool: Path,
    workload: str,
    where: bench.Placement,
    workdir: Path,
    extra: Sequence[str],
    seconds: float,
    top: int,
    raw: Path | None,
) -> list[str]:
    service = service_of(workload)
    with bench.running(SERVER, (service,), where, workdir, extra) as server:
        load = subprocess.Popen(
            loadgen_command(workload, server, where, seconds + 1.0),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        try:
            # Sample once the load is on: after the set-up and the warm-up.
            time.sleep(1.5 if workload in ("echo", "upper") else 3.0)
            output = workdir / f"{workload}.collapsed"
            spy = subprocess.run(
                [
                    str(tool),
                    "record",
                    "--pid",
                    str(server.pid),
                    "--duration",
                    str(max(1, int(seconds))),
                    "--rate",
                    "250",
                    "--nolineno",
                    "--format",
                    "raw",
                    "--output",
                    str(output),
                ],
                capture_output=True,
                timeout=seconds + 60,
                check=False,
            )
            if spy.returncode != 0:
                raise bench.BenchError(
                    "py-spy failed: " + spy.stderr.decode(errors="replace")[-1000:]
                )
            stdout, stderr = load.communicate(timeout=bench.FULL.loadgen_timeout)
        finally:
            if load.poll() is None:
                load.kill()
                load.wait()
    report = figure(stdout, stderr)
    text = output.read_text()
    if raw is not None:
        (raw / f"{workload}.collapsed").write_text(text)
    _total, lines = summarise_collapsed(text, top)
    return [report, *lines]


def figure(stdout: bytes, stderr: bytes) -> str:
    """The load generator's figure for the profiled run, as one line."""
    try:
        result = json.loads(stdout.decode().strip().splitlines()[-1])
    except (ValueError, IndexError):
        return "load generator failed: " + stderr.decode(errors="replace")[-500:]
    if "error" in result:
        return f"load generator failed: {result['error']}"
    return (
        f"while profiled: {result['value']:,.2f} {result['unit']} "
        f"(server CPU {result.get('server_cpu_pct')}%)"
    )


def profile_with_cprofile(
    workload: str,
    where: bench.Placement,
    workdir: Path,
    extra: Sequence[str],
    seconds: float,
    top: int,
    raw: Path | None,
) -> list[str]:
    service = service_of(workload)
    stats_file = workdir / f"{workload}.pstats"
    command = bench.server_command(SERVER, (service,), extra)
    argv = list(command.argv)
    # twistd's own options go before the plugin name.
    at = argv.index("chatservice")
    argv[at:at] = [f"--profile={stats_file}", "--profiler=cprofile", "--savestats"]
    log = workdir / f"{workload}-cprofile.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            argv,
            cwd=workdir,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            preexec_fn=bench._child_setup(where.server_cpu),
        )
    server = bench.Server(SERVER, process, command.ports, log)
    try:
        bench.first_answer(
            command.ports[service], service, time.monotonic() + bench.START_TIMEOUT
        )
        load = subprocess.run(
            loadgen_command(workload, server, where, seconds),
            capture_output=True,
            timeout=bench.FULL.loadgen_timeout + bench.LOADGEN_GRACE,
            check=False,
        )
        process.send_signal(signal.SIGTERM)
        process.wait(30)
    finally:
        bench.stop(process)
    if not stats_file.exists():
        raise bench.BenchError("twistd wrote no profile:\n" + server.log_tail())
    if raw is not None:
        (raw / f"{workload}.pstats").write_bytes(stats_file.read_bytes())
    stream = _Lines()
    stats = pstats.Stats(str(stats_file), stream=stream)
    stats.strip_dirs().sort_stats("tottime").print_stats(top)
    stats.sort_stats("cumulative").print_stats("chatservice", top)
    return [figure(load.stdout, load.stderr), *stream.lines]


class _Lines:
    """A text stream that keeps what pstats prints."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def write(self, text: str) -> None:
        self.lines.extend(text.rstrip("\n").splitlines())


def main(argv: Sequence[str] | None = None) -> int:
    global STORM_CONNECTIONS, SERVER
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--workload",
        action="append",
        choices=PROFILED_WORKLOADS,
        help="profile under this workload (repeatable; default: echo, fanout)",
    )
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--raw", type=Path, help="keep the raw profiles here")
    parser.add_argument(
        "--storm-connections",
        type=int,
        default=STORM_CONNECTIONS,
        help="clients registering in the storm workload",
    )
    parser.add_argument(
        "--cprofile", action="store_true", help="use cProfile even with py-spy"
    )
    parser.add_argument(
        "--history",
        action="store_true",
        help="profile chatservice with SQLite history on (--history sqlite:FILE)",
    )
    options = parser.parse_args(sys.argv[1:] if argv is None else argv)
    if options.history:
        SERVER = bench.HISTORY
    workloads = options.workload or ["echo", "fanout"]
    STORM_CONNECTIONS = options.storm_connections
    where = bench.placement()
    print(where.note)
    extra = bench.load_test_options()
    tool = None if options.cprofile else py_spy()
    print(
        "profiler: "
        + ("py-spy (sampling, from outside)" if tool else "cProfile (twistd --profile)")
    )
    if options.raw is not None:
        options.raw.mkdir(parents=True, exist_ok=True)
    status = 0
    with tempfile.TemporaryDirectory(prefix="chatservice-hotpaths-") as tmp:
        if {"echo", "upper"} & set(workloads):
            global ECHO_LOADGEN
            ECHO_LOADGEN, how = bench.build_echo_loadgen(Path(tmp))
            print(f"echo and upper load generator: {how}")
        if set(web.KINDS) & set(workloads):
            global WS_LOADGEN
            WS_LOADGEN, how = bench.build_c_loadgen(Path(tmp), web.LOADGEN_SOURCE)
            print(f"WebSocket load generator: {how}")
        for workload in workloads:
            print()
            print(f"=== {workload} ===")
            try:
                if tool is not None:
                    lines = profile_with_py_spy(
                        tool,
                        workload,
                        where,
                        Path(tmp),
                        extra,
                        options.seconds,
                        options.top,
                        options.raw,
                    )
                else:
                    lines = profile_with_cprofile(
                        workload,
                        where,
                        Path(tmp),
                        extra,
                        options.seconds,
                        options.top,
                        options.raw,
                    )
            except (bench.BenchError, OSError, subprocess.SubprocessError) as error:
                print(f"FAILED: {error}")
                status = 1
                continue
            print("\n".join(lines))
    with contextlib.suppress(BrokenPipeError):
        sys.stdout.flush()
    return status


if __name__ == "__main__":
    sys.exit(main())
