"""
A soak run of the chat (not in CI): ``python bench/soak.py --minutes 20``.

It starts ``twistd -n chatservice`` (the one next to this interpreter) on a
free loopback port with its default limits, and for the whole run keeps up
a mixed load from one asyncio process:

- a room of ``--members`` registered clients that read everything, and
  ``--talkers`` of them saying a line every ``--interval`` seconds;
- churn: clients that register, join and part side rooms, and leave,
  over and over;
- slow readers: clients that register and never read (the server holds
  them back and, past their send queue, cuts them off; they come back);
- reconnects: clients that connect and drop without a word;
- a probe that says a timestamped line every 50 ms and times its return.

The server keeps its history as it does by default, in an SQLite file
(in a temporary directory), so that the writer, its checkpoints and the
pruning of old messages (``--history-max-messages``, 10 000 a room by
default: the room passes it within two minutes) are soaked too;
``--history none`` turns it off.

Every minute it prints the server's RSS and open file descriptors (from
``/proc``), the history file's size (with its write-ahead log), the
probe's p50/p99/max round trip that minute, and what the churn did; at the
end a summary of how RSS, descriptors, the file and p99 moved between the
first and the last minutes.  ``--json FILE`` saves it all.
Traffic goes to loopback only, and the run stops by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

LOOPBACK = "127.0.0.1"


@dataclass
class Minute:
    """What one minute of the run measured."""

    minute: int
    rss_kib: int
    fds: int
    history_kib: int
    probe_p50_ms: float
    probe_p99_ms: float
    probe_max_ms: float
    probes: int
    churned: int
    cut_slow_readers: int
    reconnects: int


@dataclass
class Counters:
    churned: int = 0
    cut_slow_readers: int = 0
    reconnects: int = 0
    trips: list[float] = field(default_factory=list)

    def take(self) -> tuple[int, int, int, list[float]]:
        taken = (self.churned, self.cut_slow_readers, self.reconnects, self.trips)
        self.churned = self.cut_slow_readers = self.reconnects = 0
        self.trips = []
        return taken


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((LOOPBACK, 0))
        return int(probe.getsockname()[1])


def proc_figures(pid: int) -> tuple[int, int]:
    """The server's resident memory (KiB) and open descriptors."""
    rss = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1])
    return rss, len(os.listdir(f"/proc/{pid}/fd"))


async def connect(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection(LOOPBACK, port)


async def register(
    port: int, nick: str
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await connect(port)
    writer.write(f"{nick}\r\n".encode())
    await writer.drain()
    await reader.readuntil(b"; you are in #lobby\r\n")
    return reader, writer


async def drain_forever(reader: asyncio.StreamReader) -> None:
    with contextlib.suppress(Exception):
        while await reader.read(65536):
            pass


async def member(port: int, nick: str, talker: bool, interval: float) -> None:
    reader, writer = await register(port, nick)
    reading = asyncio.ensure_future(drain_forever(reader))
    try:
        count = 0
        while True:
            await asyncio.sleep(interval if talker else 3600)
            writer.write(f"{nick} says {count}\r\n".encode())
            count += 1
    finally:
        reading.cancel()
        writer.close()


async def churner(port: int, index: int, counters: Counters) -> None:
    """Register, join and part side rooms, quit; again and again."""
    round_ = 0
    while True:
        nick = f"ch{index}x{round_ % 1000}"
        round_ += 1
        try:
            reader, writer = await register(port, nick)
            reading = asyncio.ensure_future(drain_forever(reader))
            for room in range(3):
                writer.write(f"/join side{index}r{room}\r\nhi\r\n/part\r\n".encode())
                await asyncio.sleep(0.2)
            writer.write(b"/quit bye\r\n")
            await writer.drain()
            await asyncio.sleep(0.2)
            reading.cancel()
            writer.close()
            counters.churned += 1
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            await asyncio.sleep(0.5)


async def slow_reader(port: int, index: int, counters: Counters) -> None:
    """Register, never read; once cut off, come back."""
    round_ = 0
    while True:
        try:
            reader, writer = await register(port, f"slow{index}x{round_ % 1000}")
            round_ += 1
            # Never read: wait until the server gives up on us.
            sock = writer.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            while not writer.is_closing():
                await asyncio.sleep(1)
                try:
                    writer.write(b"")
                    await writer.drain()
                except OSError:
                    break
                if reader.at_eof():
                    break
            counters.cut_slow_readers += 1
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            await asyncio.sleep(1)
        else:
            writer.close()


async def reconnector(port: int, counters: Counters) -> None:
    """Connect and drop without a word, a few times a second."""
    while True:
        with contextlib.suppress(OSError):
            _, writer = await connect(port)
            writer.close()
            counters.reconnects += 1
        await asyncio.sleep(0.25)


async def probe(port: int, counters: Counters) -> None:
    reader, writer = await register(port, "probe")
    count = 0
    while True:
        token = f"probe {count} "
        sent = time.perf_counter()
        writer.write(f"{token}\r\n".encode())
        await writer.drain()
        expected = f"<probe> {token}\r\n".encode()
        while True:
            line = await reader.readuntil(b"\r\n")
            if line.endswith(expected):
                break
        counters.trips.append((time.perf_counter() - sent) * 1000)
        count += 1
        await asyncio.sleep(0.05)


def percentile(values: list[float], fraction: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def history_kib(where: Path) -> int:
    """The history file's size with its write-ahead log, in KiB."""
    return sum(path.stat().st_size for path in where.glob("history.sqlite3*")) // 1024


async def soak(
    options: argparse.Namespace, port: int, pid: int, where: Path
) -> list[Minute]:
    counters = Counters()
    tasks = [asyncio.ensure_future(probe(port, counters))]
    for n in range(options.members):
        tasks.append(
            asyncio.ensure_future(
                member(port, f"m{n}", n < options.talkers, options.interval)
            )
        )
        if n % 50 == 49:
            await asyncio.sleep(0.1)
    tasks += [
        asyncio.ensure_future(churner(port, n, counters))
        for n in range(options.churners)
    ]
    tasks += [
        asyncio.ensure_future(slow_reader(port, n, counters))
        for n in range(options.slow_readers)
    ]
    tasks.append(asyncio.ensure_future(reconnector(port, counters)))
    minutes: list[Minute] = []
    try:
        for minute in range(1, options.minutes + 1):
            await asyncio.sleep(options.minute_seconds)
            churned, cut, reconnects, trips = counters.take()
            rss, fds = proc_figures(pid)
            row = Minute(
                minute,
                rss,
                fds,
                history_kib(where),
                round(statistics.median(trips), 3) if trips else float("nan"),
                round(percentile(trips, 0.99), 3),
                round(max(trips), 3) if trips else float("nan"),
                len(trips),
                churned,
                cut,
                reconnects,
            )
            minutes.append(row)
            print(
                f"minute {minute:3}: RSS {rss:7,} KiB  fds {fds:5}  history "
                f"{row.history_kib:7,} KiB  probe p50 "
                f"{row.probe_p50_ms:6.2f} p99 {row.probe_p99_ms:6.2f} max "
                f"{row.probe_max_ms:7.2f} ms ({len(trips)})  churned {churned}  "
                f"slow readers cut {cut}  reconnects {reconnects}",
                flush=True,
            )
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return minutes


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=int, default=20)
    parser.add_argument(
        "--minute-seconds", type=float, default=60.0, help="seconds per report"
    )
    parser.add_argument("--members", type=int, default=200)
    parser.add_argument("--talkers", type=int, default=10)
    parser.add_argument("--interval", type=float, default=0.1)
    parser.add_argument("--churners", type=int, default=20)
    parser.add_argument("--slow-readers", type=int, default=5)
    parser.add_argument(
        "--history",
        choices=("sqlite", "none"),
        default="sqlite",
        help="the server's history: an SQLite file (the default) or none",
    )
    parser.add_argument("--json", metavar="FILE")
    options = parser.parse_args()
    # Stopped by a signal, still stop the server (the ``finally`` below).
    signal.signal(signal.SIGTERM, lambda number, frame: sys.exit(128 + number))
    port = free_port()
    twistd = Path(sys.executable).with_name("twistd")
    with tempfile.TemporaryDirectory(prefix="chatservice-soak-") as where:
        server = subprocess.Popen(
            [
                str(twistd),
                "-n",
                "--pidfile=",
                "chatservice",
                "--chat",
                f"tcp:{port}:interface={LOOPBACK}",
                "--echo",
                "none",
                "--upper",
                "none",
                "--history",
                "sqlite:history.sqlite3" if options.history == "sqlite" else "none",
                "--flood-rate",
                "0",
                "--max-per-address",
                "0",
            ],
            cwd=where,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 30
            while True:
                with (
                    contextlib.suppress(OSError),
                    socket.create_connection((LOOPBACK, port), timeout=1),
                ):
                    break
                if time.monotonic() > deadline or server.poll() is not None:
                    raise SystemExit("chatservice did not start")
                time.sleep(0.1)
            minutes = asyncio.run(soak(options, port, server.pid, Path(where)))
        finally:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(30)
            except subprocess.TimeoutExpired:
                server.kill()
    if len(minutes) >= 2:
        first, last = minutes[0], minutes[-1]
        print(
            f"first to last minute: RSS {first.rss_kib:,} -> {last.rss_kib:,} KiB "
            f"({(last.rss_kib - first.rss_kib) / first.rss_kib:+.1%}), fds "
            f"{first.fds} -> {last.fds}, history {first.history_kib:,} -> "
            f"{last.history_kib:,} KiB, probe p99 {first.probe_p99_ms:.2f} -> "
            f"{last.probe_p99_ms:.2f} ms"
        )
    if options.json:
        Path(options.json).write_text(
            json.dumps([m.__dict__ for m in minutes], indent=2), encoding="utf-8"
        )
    return 0


if __name__ == "__main__":
    random.seed(1)
    sys.exit(main())
