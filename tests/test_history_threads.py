"""
The history's two threads on the running reactor: the writer, which the
reactor waits for a moment (``--history-wait``) and which answers through
``callFromThread`` when it takes longer, in order either way; and the
checkpointer, which runs at the lowest priority on a connection of its own
and copies the write-ahead log into the file.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import sys
import threading
import time
from pathlib import Path
from typing import Any, cast

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorThreads
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase, TestCase

from chatservice.chat import events
from chatservice.stores import schema
from chatservice.stores.sqlite import SQLiteHistoryStore
from chatservice.stores.writer import ThreadedWriter, lower_priority
from tests.support import temp_dir

START = 1_700_000_000.0


def connect_memory() -> sqlite3.Connection:
    return sqlite3.connect(":memory:", check_same_thread=False)


def answered(deferred: Deferred[Any]) -> list[object]:
    """What ``deferred`` has fired with so far: [] or [result or Failure]."""
    seen: list[object] = []
    deferred.addBoth(lambda result: seen.append(result))
    return seen


class WaitedWriterTests(TestCase):
    """How long the reactor waits for the writer thread, and what then."""

    def writer(self, patience: float) -> ThreadedWriter:
        writer = ThreadedWriter(cast(IReactorThreads, reactor), "test writer", patience)
        writer.start(connect_memory)
        self.addCleanup(writer.stop)
        return writer

    def test_answeredInTime(self) -> None:
        """
        A write waited for that the thread answers in time has fired when
        ``run`` returns, with its result, on the reactor's thread.
        """
        writer = self.writer(patience=10.0)
        done = writer.run(lambda db: db.execute("SELECT 6 * 7").fetchone()[0], True)
        self.assertEqual(answered(done), [42])
        self.assertEqual((writer.waited, writer.answered_in_time), (1, 1))

    def test_failureAnsweredInTime(self) -> None:
        """A write waited for that fails in time has failed when ``run`` returns."""
        writer = self.writer(patience=10.0)
        done = writer.run(lambda db: db.execute("SELECT nonsense FROM nowhere"), True)
        (result,) = answered(done)
        assert isinstance(result, Failure)
        self.assertIsInstance(result.value, sqlite3.OperationalError)

    async def test_slowWriteAnsweredLater(self) -> None:
        """
        A write that takes longer than the patience is not waited for
        beyond it: ``run`` returns unanswered, and the answer comes through
        the reactor later.  A write given while it is unanswered is not
        waited for either (its answer would overtake the first's): the
        answers come in the order of the writes.
        """
        writer = self.writer(patience=0.05)
        order: list[str] = []

        def slow(db: sqlite3.Connection) -> str:
            time.sleep(0.2)  # 4 times the patience
            return "slow"

        first = writer.run(slow, True)
        first.addCallback(order.append)
        self.assertEqual(order, [])
        # Were it waited for, its wait would see the slow one end first.
        second = writer.run(lambda db: "quick", True)
        second.addCallback(order.append)
        self.assertEqual(order, [])
        await second
        self.assertEqual(order, ["slow", "quick"])
        self.assertEqual((writer.waited, writer.answered_in_time), (1, 0))

    def test_noPatienceNoWait(self) -> Deferred[bool]:
        """With a patience of 0 nothing is waited for: ``run`` returns unanswered."""
        writer = self.writer(patience=0)
        block = threading.Event()
        done = writer.run(lambda db: block.wait(10), True)
        self.assertEqual(answered(done), [])
        self.assertEqual(writer.waited, 0)
        block.set()
        return done

    def test_notAskedNotWaited(self) -> Deferred[bool]:
        """A write given without ``wait`` is never waited for."""
        writer = self.writer(patience=10.0)
        block = threading.Event()
        done = writer.run(lambda db: block.wait(10))
        self.assertEqual(answered(done), [])
        block.set()
        return done


class CheckpointerTests(TestCase):
    """The checkpointer: the lowest priority, its own connection, the log copied."""

    def setUp(self) -> None:
        self.path: Path = temp_dir(self) / "history.sqlite3"

    async def test_lowestPriority(self) -> None:
        """
        The checkpointer's thread runs at the batch policy and nice 19,
        lowered from the real-time policy a benchmark or ``chrt`` may give
        the process; the writer's thread keeps the process's priority.
        """
        if not sys.platform.startswith("linux"):
            self.skipTest("thread priorities are checked on Linux only")
        store = SQLiteHistoryStore(str(self.path), reactor)
        await store.start()
        self.addCleanup(store.stop)

        def priority(db: sqlite3.Connection) -> tuple[int, int]:
            tid = threading.get_native_id()
            return os.sched_getscheduler(0), os.getpriority(os.PRIO_PROCESS, tid)

        here = os.sched_getscheduler(0), os.getpriority(os.PRIO_PROCESS, 0)
        self.assertEqual(await store.checkpointer.run(priority), (os.SCHED_BATCH, 19))
        self.assertEqual(await store.writer.run(priority), here)

    def test_lowerPriorityInThread(self) -> None:
        """
        :func:`lower_priority` lowers the calling thread only: a thread
        that called it runs at the batch policy and nice 19, the others
        keep theirs.
        """
        if not sys.platform.startswith("linux"):
            self.skipTest("thread priorities are checked on Linux only")
        seen: list[tuple[bool, int, int]] = []

        def lowered() -> None:
            done = lower_priority("test thread")
            tid = threading.get_native_id()
            seen.append(
                (done, os.sched_getscheduler(0), os.getpriority(os.PRIO_PROCESS, tid))
            )

        thread = threading.Thread(target=lowered)
        thread.start()
        thread.join()
        self.assertEqual(seen, [(True, os.SCHED_BATCH, 19)])
        self.assertNotEqual(os.getpriority(os.PRIO_PROCESS, 0), 19)

    async def test_checkpointCopiesLog(self) -> None:
        """
        A checkpoint copies what was committed into the database file
        itself: a copy of the file without its ``-wal`` has every message.
        """
        store = SQLiteHistoryStore(str(self.path), reactor)
        await store.start()
        try:
            for n in range(20):
                store.append(
                    events.RoomMessage(
                        "lobby", "alice", f"m{n}", id=f"c.{n}", at=START, door="chat"
                    )
                )
            store.commit()
            closed: Deferred[int] = Deferred()
            store.gate.wait(store.gate.opened, closed.callback)
            await closed
            copy = self.path.with_name("copy.sqlite3")
            shutil.copyfile(self.path, copy)
            self.assertEqual(texts(copy), [])  # all in the log so far
            store._checkpoint()
            waiting = store._checkpointing
            assert waiting is not None
            await waiting
            shutil.copyfile(self.path, copy)
            self.assertEqual(texts(copy), [f"m{n}" for n in range(20)])
        finally:
            await store.stop()


class BackstopTests(SynchronousTestCase):
    """The writer's own checkpoint, for when the checkpointer is starved."""

    def test_logBoundedWithoutCheckpointer(self) -> None:
        """
        With no checkpointer at all, the writer's connection checkpoints by
        itself once the log passes ``WAL_BACKSTOP_PAGES`` (here made small):
        the log holds no more than that and a commit's pages, however much
        is written.
        """
        self.patch(schema, "WAL_BACKSTOP_PAGES", 50)
        path = temp_dir(self) / "backstop.sqlite3"
        with sqlite3.connect(path) as setup:
            setup.execute("PRAGMA journal_mode = WAL")
            setup.execute("CREATE TABLE t (x)")
        db = schema.writer_connection(str(path))
        self.addCleanup(db.close)
        page = db.execute("PRAGMA page_size").fetchone()[0]
        for _ in range(400):  # a page or more a commit: 400 frames and more
            db.execute("INSERT INTO t VALUES (?)", ("x" * 2000,))
        self.assertEqual(db.execute("SELECT count(*) FROM t").fetchone()[0], 400)
        # A log reset after its checkpoint is written again from its start:
        # its size is the most it ever held (a frame is a page and a header).
        wal = path.with_name(path.name + "-wal").stat().st_size
        self.assertLessEqual(wal, 32 + (50 + 5) * (page + 24))


def texts(path: Path) -> list[str]:
    """
    The messages of a database file read alone (no log beside it): none
    while even the schema is only in the log.
    """
    db = sqlite3.connect(path)
    try:
        tables = db.execute("SELECT name FROM sqlite_master WHERE name = 'messages'")
        if tables.fetchone() is None:
            return []
        return [t for (t,) in db.execute("SELECT text FROM messages ORDER BY seq")]
    finally:
        db.close()
