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

The store has two: the *writer*, whose commits deliveries wait for, and
the *checkpointer*, which copies the write-ahead log into the file (the
``fsync``) and is background work: its thread runs at the lowest priority
(:func:`lower_priority`), so that it never takes the core from the reactor
or the writer.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Callable
from queue import SimpleQueue
from typing import Any, Protocol, TypeVar

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.interfaces import IReactorThreads
from twisted.logger import Logger
from twisted.python.failure import Failure

T = TypeVar("T")

#: A write: what to do with the writer's connection.
Work = Callable[[sqlite3.Connection], T]


class Writer(Protocol):
    """Runs writes on a connection of its own, one at a time, in order."""

    def start(self, connect: Callable[[], sqlite3.Connection]) -> None:
        """Open the connection with ``connect`` (in the writer's thread)."""

    def run(self, work: Work[T], wait: bool = False) -> Deferred[T]:
        """
        Run ``work`` after every write given before; its result.  With
        ``wait``, the caller would rather wait a moment for it than have it
        in a later turn (a commit that deliveries wait for).
        """

    def stop(self) -> Deferred[None]:
        """Run what was given, then close the connection; fires once done."""


class SynchronousWriter:
    """A :class:`Writer` that runs each write at once, on the caller's thread."""

    def __init__(self) -> None:
        self.db: sqlite3.Connection | None = None

    def start(self, connect: Callable[[], sqlite3.Connection]) -> None:
        self.db = connect()

    def run(self, work: Work[T], wait: bool = False) -> Deferred[T]:
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


#: Seconds the reactor waits for a write it asked to wait for
#: (``--history-wait``) before it goes on without it.
DEFAULT_PATIENCE = 0.001


class _Job:
    """A write given to the thread, and how its answer gets back."""

    __slots__ = ("answer", "answered", "done", "waited", "work")

    def __init__(self, work: Work[Any], done: Deferred[Any], waited: bool) -> None:
        self.work = work
        self.done = done
        #: Whether the reactor is (still) waiting for it: then the thread
        #: leaves the answer here instead of calling the reactor.
        self.waited = waited
        #: Held until the thread answers (a bare lock: an Event costs a
        #: Condition and an RLock for each write).
        self.answered: threading.Lock | None = None
        if waited:
            self.answered = threading.Lock()
            self.answered.acquire()
        #: ``(True, result)`` or ``(False, failure)``, once answered.
        self.answer: tuple[bool, Any] | None = None


class ThreadedWriter:
    """
    A :class:`Writer` with a thread of its own: the reactor hands it writes
    and goes on; their results come back through ``callFromThread``.  The
    thread is a daemon: a disk that never answers does not keep the process
    from exiting.

    A write given with ``wait=True`` is waited for, up to ``patience``
    seconds, when nothing given before is still unanswered: the reactor
    blocks (the GIL and the core are the writer's meanwhile) and, if the
    answer comes in time, fires its Deferred at once, which spares a
    deliveries' hand-off through ``callFromThread`` and the wake-up of the
    reactor.  A write that takes longer is answered through
    ``callFromThread`` like any other: the reactor never waits for the disk
    for longer than ``patience``.
    """

    def __init__(
        self,
        reactor: IReactorThreads,
        name: str = "history writer",
        patience: float = DEFAULT_PATIENCE,
        background: bool = False,
    ) -> None:
        self._reactor = reactor
        self._name = name
        self.patience = patience
        #: Whether the thread lowers its priority (background work).
        self.background = background
        self._jobs: SimpleQueue[_Job | None] = SimpleQueue()
        self._thread: threading.Thread | None = None
        self._stopped: Deferred[None] = Deferred()
        #: Guards a job's ``waited`` and ``answer`` between the two threads.
        self._handoff = threading.Lock()
        #: Writes given and not answered on the reactor yet: one given
        #: while any is, is not waited for (answers keep their order).
        self._unanswered = 0
        #: How many writes were waited for, and answered in time.
        self.waited = 0
        self.answered_in_time = 0

    def start(self, connect: Callable[[], sqlite3.Connection]) -> None:
        self._thread = threading.Thread(
            target=self._main, args=(connect,), name=self._name, daemon=True
        )
        self._thread.start()

    def run(self, work: Work[T], wait: bool = False) -> Deferred[T]:
        if self._thread is None:
            return fail(sqlite3.ProgrammingError("the history writer is not started"))
        done: Deferred[T] = Deferred()
        done.addBoth(self._answered)
        waited = wait and self.patience > 0 and self._unanswered == 0
        self._unanswered += 1
        job = _Job(work, done, waited)
        self._jobs.put(job)
        if job.answered is not None:
            self.waited += 1
            job.answered.acquire(timeout=self.patience)
            with self._handoff:
                job.waited = False
                answer = job.answer
            if answer is not None:
                self.answered_in_time += 1
                _fire(done, answer)
        return done

    def _answered(self, result: T) -> T:
        self._unanswered -= 1
        return result

    def stop(self) -> Deferred[None]:
        if self._thread is None:
            return succeed(None)
        self._thread = None
        self._jobs.put(None)
        return self._stopped

    def _main(self, connect: Callable[[], sqlite3.Connection]) -> None:
        call = self._reactor.callFromThread
        if self.background:
            lower_priority(self._name)
        db: sqlite3.Connection | None = None
        opening: Failure | None = None
        try:
            db = connect()
        except Exception:
            opening = Failure()  # every write then fails with it
        while (job := self._jobs.get()) is not None:
            answer: tuple[bool, Any]
            if db is None:
                assert opening is not None
                answer = (False, opening)
            else:
                try:
                    answer = (True, job.work(db))
                except Exception:
                    answer = (False, Failure())
            with self._handoff:
                if job.waited:
                    job.answer = answer
                    assert job.answered is not None
                    job.answered.release()
                    continue
            call(_fire, job.done, answer)
        if db is not None:
            db.close()
        call(self._stopped.callback, None)


def _fire(done: Deferred[Any], answer: tuple[bool, Any]) -> None:
    succeeded, value = answer
    if succeeded:
        done.callback(value)
    else:
        done.errback(value)


_log = Logger()


def lower_priority(name: str) -> bool:
    """
    Make the calling thread the last to get a core: the batch policy at
    the lowest nice (19), which also takes it out of a real-time policy the
    process may run under (``chrt``).  Lowering is always allowed; where
    the system has no such calls, the thread keeps its priority.  Whether
    it was lowered.
    """
    try:
        os.sched_setscheduler(0, os.SCHED_BATCH, os.sched_param(0))
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
    except (AttributeError, OSError) as error:
        _log.info(
            "history: the {name} keeps its priority: {error}", name=name, error=error
        )
        return False
    return True


def default_writer(
    clock: object,
    name: str = "history writer",
    patience: float = DEFAULT_PATIENCE,
    background: bool = False,
) -> Writer:
    """A thread on a real reactor; at once on a test's clock (no threads)."""
    if IReactorThreads.providedBy(clock):
        return ThreadedWriter(clock, name, patience, background)
    return SynchronousWriter()
