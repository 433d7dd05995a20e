"""
Who runs the SQLite store's writes: a thread of its own with one dedicated
connection (:class:`ThreadedWriter`, a real reactor), or the caller at once
(:class:`SynchronousWriter`, tests on a :class:`~twisted.internet.task.Clock`).

A write is a callable taking the writer's connection; :meth:`Writer.run`
gives a Deferred of its result, fired on the reactor thread, and the writes
run one at a time in the order given.  The store never has more than one
commit in flight (:mod:`chatservice.stores.sqlite`): what turns collect
meanwhile goes in the next one, so commits batch turns when the disk is
slow.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from queue import SimpleQueue
from typing import Any, Protocol, TypeVar

from twisted.internet.defer import Deferred, fail, maybeDeferred, succeed
from twisted.internet.interfaces import IReactorThreads
from twisted.python.failure import Failure

T = TypeVar("T")

#: A write: what to do with the writer's connection.
Work = Callable[[sqlite3.Connection], T]


class Writer(Protocol):
    """Runs writes on a connection of its own, one at a time, in order."""

    def start(self, connect: Callable[[], sqlite3.Connection]) -> None:
        """Open the connection with ``connect`` (in the writer's thread)."""

    def run(self, work: Work[T]) -> Deferred[T]:
        """Run ``work`` after every write given before; its result."""

    def stop(self) -> Deferred[None]:
        """Run what was given, then close the connection; fires once done."""


class SynchronousWriter:
    """A :class:`Writer` that runs each write at once, on the caller's thread."""

    def __init__(self) -> None:
        self.db: sqlite3.Connection | None = None

    def start(self, connect: Callable[[], sqlite3.Connection]) -> None:
        self.db = connect()

    def run(self, work: Work[T]) -> Deferred[T]:
        db = self.db
        if db is None:
            return fail(sqlite3.ProgrammingError("the history writer is closed"))
        try:
            return succeed(work(db))
        except Exception:
            return fail()

    def stop(self) -> Deferred[None]:
        db, self.db = self.db, None
        if db is not None:
            db.close()
        return succeed(None)


class ThreadedWriter:
    """
    A :class:`Writer` with a thread of its own: the reactor hands it writes
    and goes on; their results come back through ``callFromThread``.  The
    thread is a daemon: a disk that never answers does not keep the process
    from exiting.
    """

    def __init__(self, reactor: IReactorThreads, name: str = "history writer") -> None:
        self._reactor = reactor
        self._name = name
        self._jobs: SimpleQueue[tuple[Work[Any], Deferred[Any]] | None] = SimpleQueue()
        self._thread: threading.Thread | None = None
        self._stopped: Deferred[None] = Deferred()

    def start(self, connect: Callable[[], sqlite3.Connection]) -> None:
        self._thread = threading.Thread(
            target=self._main, args=(connect,), name=self._name, daemon=True
        )
        self._thread.start()

    def run(self, work: Work[T]) -> Deferred[T]:
        if self._thread is None:
            return fail(sqlite3.ProgrammingError("the history writer is not started"))
        done: Deferred[T] = Deferred()
        self._jobs.put((work, done))
        return done

    def stop(self) -> Deferred[None]:
        if self._thread is None:
            return succeed(None)
        self._thread = None
        self._jobs.put(None)
        return self._stopped

    def _main(self, connect: Callable[[], sqlite3.Connection]) -> None:
        call = self._reactor.callFromThread
        db: sqlite3.Connection | None = None
        opening: Failure | None = None
        try:
            db = connect()
        except Exception:
            opening = Failure()  # every write then fails with it
        while (job := self._jobs.get()) is not None:
            work, done = job
            if db is None:
                assert opening is not None
                call(done.errback, opening)
                continue
            try:
                result = work(db)
            except Exception:
                call(done.errback, Failure())
            else:
                call(done.callback, result)
        if db is not None:
            db.close()
        call(self._stopped.callback, None)


def _run_here(work: Callable[[], T]) -> Deferred[T]:
    return maybeDeferred(work)


def threaded(reactor: Any) -> Callable[[Callable[[], T]], Deferred[T]]:
    """
    How to run blocking work off the reactor: in the reactor's thread pool
    (a real reactor), or at once (a test's clock has no threads).
    """
    get_pool = getattr(reactor, "getThreadPool", None)
    if get_pool is None:
        return _run_here
    from twisted.internet.threads import deferToThreadPool

    def run(work: Callable[[], T]) -> Deferred[T]:
        return deferToThreadPool(reactor, get_pool(), work)

    return run


def default_writer(clock: object) -> Writer:
    """A thread on a real reactor; at once on a test's clock (no threads)."""
    if IReactorThreads.providedBy(clock):
        return ThreadedWriter(clock)
    return SynchronousWriter()
