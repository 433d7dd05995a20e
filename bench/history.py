"""
The history store alone, in this process: what the reactor pays for it.

``python bench/history.py`` (about half a minute) measures, on an SQLite
file in a temporary directory:

- **turn writes**: a turn's messages appended and committed in one
  transaction, for turns of 1, 10, 100 and 1000 messages: the time of one
  commit (median, p99, max) and the messages written per second sustained,
  with the checkpoint running in its thread meanwhile, as in the server;
- **the writer thread** (what the server runs): the same turns handed to
  the store's writer thread (``ThreadedWriter``) as fast as they come: what
  a commit costs the reactor (it only hands the turn over), how long a
  turn's deliveries wait for its commit to return (the delivery gate), and
  the messages/s written sustained, the turns that came while a commit was
  in flight going together in the next one; and again with the room kept
  to the default 10,000 messages (``--history-max-messages``), retention's
  pruning rounds running on the store's clock as in the server, so that
  every message written is also deleted;
- **replay**: a room with 10,000 stored messages (among 100 rooms), the last
  50 read (``recent``) and encoded as the native door's history lines: what
  a join costs the server beyond the join itself.

The machine is shared and noisy: compare figures of one run only.
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from itertools import count, product
from pathlib import Path
from queue import Empty, SimpleQueue
from typing import Any, cast

from twisted.internet.interfaces import IReactorThreads
from twisted.internet.task import Clock

from chatservice.chat import events
from chatservice.doors.native.render import WIRE, encode
from chatservice.stores.sqlite import (
    DEFAULT_MAX_MESSAGES,
    PRUNE_EVERY,
    SQLiteHistoryStore,
)
from chatservice.stores.writer import DEFAULT_PATIENCE, ThreadedWriter

TEXT = "a line of chat of about the usual length, forty-odd bytes"


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * share))]


def open_store(directory: Path, name: str) -> SQLiteHistoryStore:
    store = SQLiteHistoryStore(str(directory / name), Clock(), per_room=10**9)
    store.start()
    return store


def checkpoints(path: Path, stop: threading.Event) -> None:
    """Checkpoint every second in a thread of its own, as the server does."""
    while not stop.wait(1.0):
        db = sqlite3.connect(path, isolation_level=None)
        db.execute("PRAGMA busy_timeout = 1000")
        db.execute("PRAGMA wal_checkpoint(PASSIVE)")
        db.close()


def append_turn(store: SQLiteHistoryStore, n: int, batch: int) -> int:
    """Append a turn of ``batch`` messages (10 senders) after ``n``; the new ``n``."""
    for _ in range(batch):
        n += 1
        store.append(
            events.RoomMessage(
                "lobby", f"s{n % 10}", TEXT, id=f"b.{n}", at=1.7e9 + n, door="chat"
            )
        )
    return n


def turn_writes(directory: Path, batch: int, messages: int) -> dict[str, float]:
    store = open_store(directory, f"turns-{batch}.sqlite3")
    stop = threading.Event()
    thread = threading.Thread(
        target=checkpoints, args=(Path(store.path), stop), daemon=True
    )
    thread.start()
    commits: list[float] = []
    started = time.perf_counter()
    n = 0
    while n < messages:
        n = append_turn(store, n, batch)
        before = time.perf_counter()
        store.commit()
        commits.append(time.perf_counter() - before)
    elapsed = time.perf_counter() - started
    stop.set()
    thread.join()
    store.stop()
    return {
        "batch": batch,
        "messages_per_s": n / elapsed,
        "commit_p50_ms": statistics.median(commits) * 1e3,
        "commit_p99_ms": percentile(commits, 0.99) * 1e3,
        "commit_max_ms": max(commits) * 1e3,
    }


class Answers:
    """
    Stands in for the reactor of the writer thread: what the thread answers
    (``callFromThread``) waits here until the bench's loop runs it.
    """

    def __init__(self) -> None:
        self.calls: SimpleQueue[tuple[Callable[..., Any], tuple[Any, ...]]] = (
            SimpleQueue()
        )

    def callFromThread(self, call: Callable[..., Any], *args: Any) -> None:
        self.calls.put((call, args))

    def run(self, wait: float | None = None) -> bool:
        """Run one answer (waiting up to ``wait`` s for it); whether one ran."""
        try:
            call, args = (
                self.calls.get(timeout=wait) if wait else self.calls.get_nowait()
            )
        except Empty:
            return False
        call(*args)
        return True


_files = count()


def threaded_writes(
    directory: Path,
    batch: int,
    messages: int,
    rate: float | None = None,
    patience: float = DEFAULT_PATIENCE,
    per_room: int = 10**9,
    seconds: float | None = None,
) -> dict[str, float]:
    """
    Turns of ``batch`` messages handed to the writer thread: as fast as
    they come (``rate`` ``None``: the writer's capacity, turns batching up
    behind the commit in flight), or ``rate`` messages a second (how long
    deliveries wait for the commit at that load).  The reactor waits for
    each commit up to ``patience`` seconds (``--history-wait``).  The
    store's clock follows the real one, so that its retention rounds run
    (the room kept to ``per_room`` messages); ``seconds``: stop then, if
    the ``messages`` are not all written yet.
    """
    answers = Answers()
    writer = ThreadedWriter(cast(IReactorThreads, answers), patience=patience)
    path = directory / f"threaded-{next(_files)}.sqlite3"  # a new file each run
    clock = Clock()
    store = SQLiteHistoryStore(str(path), clock, per_room=per_room, writer=writer)
    store.start()
    stop = threading.Event()
    thread = threading.Thread(target=checkpoints, args=(path, stop), daemon=True)
    thread.start()
    handed: list[float] = []
    waits: list[float] = []
    started = time.perf_counter()
    n = 0
    while n < messages:
        if seconds is not None and time.perf_counter() - started > seconds:
            break
        if rate is not None:
            due = started + n / rate
            while (left := due - time.perf_counter()) > 0:
                answers.run(wait=left)
        n = append_turn(store, n, batch)
        before = time.perf_counter()
        store.commit()
        handed.append(time.perf_counter() - before)
        store.gate.wait(
            store.gate.opened,
            lambda _, since=before: waits.append(time.perf_counter() - since),
        )
        while answers.run():
            pass
        clock.advance(time.perf_counter() - started - clock.seconds())
    while store.gate.busy():
        answers.run(wait=1.0)
    elapsed = time.perf_counter() - started
    stop.set()
    thread.join()
    stopped = store.stop()
    while not stopped.called:
        answers.run(wait=1.0)
    with sqlite3.connect(path) as db:
        (kept,) = db.execute("SELECT count(*) FROM messages").fetchone()
    return {
        "batch": batch,
        "kept": kept,
        "messages_per_s": n / elapsed,
        "commit_p50_ms": statistics.median(handed) * 1e3,
        "commit_p99_ms": percentile(handed, 0.99) * 1e3,
        "wait_p50_ms": statistics.median(waits) * 1e3,
        "wait_p99_ms": percentile(waits, 0.99) * 1e3,
        "wait_max_ms": max(waits) * 1e3,
    }


def replay(directory: Path, stored: int = 10_000, rooms: int = 100) -> dict[str, float]:
    store = open_store(directory, "replay.sqlite3")
    n = 0
    for room in range(rooms):
        for _ in range(stored if room == 0 else stored // 100):
            n += 1
            store.append(
                events.RoomMessage(
                    f"room{room}", "alice", TEXT, id=f"r.{n}", at=1.7e9 + n
                )
            )
        store.commit()
    times: list[float] = []
    for _ in range(500):
        before = time.perf_counter()
        result: list[list[events.RoomMessage]] = []
        store.recent("room0", 50).addCallback(result.append)
        history = events.History("room0", tuple(result[0]))
        history.encoded(WIRE, encode)
        times.append(time.perf_counter() - before)
    store.stop()
    return {
        "stored": stored,
        "replay_p50_ms": statistics.median(times) * 1e3,
        "replay_p99_ms": percentile(times, 0.99) * 1e3,
        "replay_max_ms": max(times) * 1e3,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--messages", type=int, default=200_000, help="messages per turn size"
    )
    options = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="chatservice-history-bench-") as tmp:
        directory = Path(tmp)
        print("turn writes (append + one-transaction commit, checkpoints in a thread):")
        for batch in (1, 10, 100, 1000):
            figures = turn_writes(directory, batch, options.messages)
            print(
                f"  {batch:5} messages/turn: {figures['messages_per_s']:>9,.0f} "
                f"messages/s; commit p50 {figures['commit_p50_ms']:.3f} ms, "
                f"p99 {figures['commit_p99_ms']:.3f} ms, "
                f"max {figures['commit_max_ms']:.3f} ms"
            )
        print(
            "the writer thread (commit hands the turn over and waits up to "
            f"{DEFAULT_PATIENCE * 1e3:g} ms; deliveries wait for its answer):"
        )
        for batch in (1, 10, 100):
            figures = threaded_writes(directory, batch, options.messages)
            print(
                f"  {batch:5} messages/turn, as fast as they come: "
                f"{figures['messages_per_s']:>9,.0f} messages/s written; on the "
                f"reactor p50 {figures['commit_p50_ms']:.3f} ms, "
                f"p99 {figures['commit_p99_ms']:.3f} ms"
            )
        for batch, rate in ((10, None), (10, 50_000.0)):
            # Long enough for rounds of pruning (every PRUNE_EVERY s, and
            # whenever the room is a step over its limit).
            figures = threaded_writes(
                directory,
                batch,
                10**9,
                rate,
                per_room=DEFAULT_MAX_MESSAGES,
                seconds=2 * PRUNE_EVERY + 1,
            )
            pace = "as fast as they come" if rate is None else f"at {rate:,.0f}/s"
            print(
                f"  {batch:5} messages/turn, {pace}, the room kept to "
                f"{DEFAULT_MAX_MESSAGES:,} (--history-max-messages): "
                f"{figures['messages_per_s']:>9,.0f} messages/s written in "
                f"{2 * PRUNE_EVERY + 1:g} s, {figures['kept']:,} in the file "
                f"at the end; deliveries wait p99 {figures['wait_p99_ms']:.3f} ms"
            )
        for (batch, rate), patience in product(
            ((1, 200.0), (1, 2000.0), (10, 20_000.0), (100, 20_000.0)),
            (0.0, DEFAULT_PATIENCE),
        ):
            figures = threaded_writes(directory, batch, int(rate * 5), rate, patience)
            print(
                f"  {batch:5} messages/turn at {rate:,.0f} messages/s, waited "
                f"{patience * 1e3:g} ms: deliveries "
                f"wait p50 {figures['wait_p50_ms']:.3f} ms, "
                f"p99 {figures['wait_p99_ms']:.3f} ms, "
                f"max {figures['wait_max_ms']:.3f} ms; on the reactor "
                f"p99 {figures['commit_p99_ms']:.3f} ms"
            )
        figures = replay(directory)
        print(
            f"replay of 50 from a room of {figures['stored']:,} stored messages "
            f"(read and encoded): p50 {figures['replay_p50_ms']:.3f} ms, "
            f"p99 {figures['replay_p99_ms']:.3f} ms, "
            f"max {figures['replay_max_ms']:.3f} ms"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
