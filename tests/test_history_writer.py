"""
The history writer off the reactor: the delivery gate
(:mod:`chatservice.stores.gate`), the outbox holding what it sends until
the commit of it returns, the SQLite store with a writer that answers when
the test says (:class:`LaterWriter`: batching, faults, stalls, reads of
what is in flight), a property test that nothing reaches a client before it
is in the file and the join boundary still holds, and the real thread.
"""

from __future__ import annotations

import itertools
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from hypothesis import given, settings
from twisted.internet import reactor
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.task import Clock, deferLater
from twisted.internet.testing import StringTransport
from twisted.logger import LogLevel, formatEvent
from twisted.trial.unittest import SynchronousTestCase, TestCase

from chatservice.backends.local import LocalBackend
from chatservice.chat import events
from chatservice.chat.hub import Hub
from chatservice.conn.limits import Limits
from chatservice.conn.outbox import Outbox, TurnWriter
from chatservice.conn.turns import end_of_turn
from chatservice.doors.native.protocol import ChatFactory, ChatSettings
from chatservice.stores.base import Position
from chatservice.stores.gate import DeliveryGate
from chatservice.stores.schema import ROWS_PER_STATEMENT
from chatservice.stores.sqlite import (
    RETRY_EVERY,
    STALL_AFTER,
    STOP_WAIT,
    SQLiteHistoryStore,
)
from chatservice.stores.writer import ThreadedWriter, Work
from chatservice.testing import Connection, LineClient, Network
from tests.support import temp_dir
from tests.test_history_door import (
    HISTORY_LINE,
    LIVE_LINE,
    assert_replay_then_live,
    boundary_steps,
)
from tests.test_outbox import Owner

T = TypeVar("T")
START = 1_700_000_000.0


class LaterWriter:
    """
    A writer whose writes run when the test says (a slow disk), on the
    test's thread: :meth:`run_next` runs the oldest and answers it.
    """

    def __init__(self) -> None:
        self.db: sqlite3.Connection | None = None
        self.jobs: list[tuple[Work[Any], Deferred[Any]]] = []
        #: Whether each write given asked to be waited for, in order.
        self.waits: list[bool] = []

    def start(self, connect: Callable[[], sqlite3.Connection]) -> None:
        self.db = connect()

    def run(self, work: Work[T], wait: bool = False) -> Deferred[T]:
        done: Deferred[T] = Deferred()
        self.jobs.append((work, done))
        self.waits.append(wait)
        return done

    def execute_next(self) -> Callable[[], None]:
        """
        Run the oldest write now, and give what answers it (as a thread
        does: the write is done before the reactor hears of it).
        """
        work, done = self.jobs.pop(0)
        assert self.db is not None
        try:
            result = succeed(work(self.db))
        except Exception:
            result = fail()

        def answer() -> None:
            result.chainDeferred(done)

        return answer

    def run_next(self) -> None:
        """Run the oldest write and answer it."""
        self.execute_next()()

    def run_all(self) -> None:
        while self.jobs:
            self.run_next()

    def stop(self) -> Deferred[None]:
        self.run_all()
        if self.db is not None:
            self.db.close()
        return succeed(None)


def on_disk(path: Path) -> list[str]:
    """The texts of the messages another connection reads from the file."""
    db = sqlite3.connect(path)
    try:
        return [t for (t,) in db.execute("SELECT text FROM messages ORDER BY seq")]
    finally:
        db.close()


def message(text: str, n: int = 0) -> events.RoomMessage:
    return events.RoomMessage(
        "lobby", "alice", text, id=f"w.{n}", at=START, door="chat"
    )


class GateTests(SynchronousTestCase):
    """The epochs of the delivery gate."""

    def test_closesInOrder(self) -> None:
        """
        Who waits for an epoch is called once it is closed, in the order of
        the epochs, with the newest closed one; an epoch already closed
        answers at once.
        """
        gate = DeliveryGate()
        self.assertFalse(gate.busy())
        called: list[tuple[str, int]] = []
        first, second = gate.open(), gate.open()
        self.assertTrue(gate.busy())
        gate.wait(first, lambda closed: called.append(("a", closed)))
        gate.wait(second, lambda closed: called.append(("b", closed)))
        gate.close(first)
        self.assertEqual(called, [("a", 1)])
        self.assertTrue(gate.busy())
        gate.close_all()
        self.assertEqual(called, [("a", 1), ("b", 2)])
        self.assertFalse(gate.busy())
        gate.wait(second, lambda closed: called.append(("c", closed)))
        self.assertEqual(called[-1], ("c", 2))

    def test_failingCallbackLogged(self) -> None:
        """One waiter that raises is logged; the next still gets its call."""
        gate = DeliveryGate()
        epoch = gate.open()
        called: list[int] = []

        def broken(closed: int) -> None:
            raise RuntimeError("broken outbox")

        gate.wait(epoch, broken)
        gate.wait(epoch, called.append)
        gate.close(epoch)
        self.assertEqual(called, [1])
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)


class HeldOutboxTests(SynchronousTestCase):
    """An outbox with a gate writes nothing while a commit is in flight."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.transport = StringTransport()
        self.gate = DeliveryGate()
        self.outbox = Outbox(
            Owner(),
            self.transport,
            TurnWriter(self.clock, "test"),
            max_send_queue=1000,
            gate=self.gate,
        )

    def test_heldUntilCommitted(self) -> None:
        """
        A delivery of a turn whose commit is in flight stays in the outbox
        at the end of the turn, and leaves once the commit is closed.
        """
        epoch = self.gate.open()
        self.outbox.deliver(b"said\r\n")
        self.clock.advance(0)
        self.assertEqual(self.transport.value(), b"")
        self.gate.close(epoch)
        self.assertEqual(self.transport.value(), b"said\r\n")
        self.assertIsNone(self.outbox.held)

    def test_repliesBehindHeld(self) -> None:
        """
        A reply, or anything written while something is held, goes behind
        it: the order the member was sent things in is kept.
        """
        epoch = self.gate.open()
        self.outbox.deliver(b"one\r\n")
        self.clock.advance(0)
        self.outbox.reply(b"reply\r\n")
        self.outbox.begin_read()
        self.outbox.reply(b"in a read\r\n")
        self.outbox.end_read()
        self.clock.advance(0)
        self.assertEqual(self.transport.value(), b"")
        self.gate.close(epoch)
        self.assertEqual(self.transport.value(), b"one\r\nreply\r\nin a read\r\n")

    def test_partialRelease(self) -> None:
        """
        Under a steady load (a new commit every turn), what was held for
        the commits that returned leaves; what came after waits for its own.
        """
        first = self.gate.open()
        self.outbox.deliver(b"first\r\n")
        self.clock.advance(0)
        second = self.gate.open()
        self.outbox.deliver(b"second\r\n")
        self.clock.advance(0)
        self.gate.close(first)
        self.assertEqual(self.transport.value(), b"first\r\n")
        self.gate.close(second)
        self.assertEqual(self.transport.value(), b"first\r\nsecond\r\n")

    def test_batchedTurnsLeaveInOneWrite(self) -> None:
        """
        Turns whose commits are closed together (batched behind the one in
        flight) reach the member in one write, in order, not one per turn.
        """
        writes: list[bytes] = []
        self.patch(self.transport, "write", writes.append)
        for text in (b"one\r\n", b"two\r\n", b"three\r\n"):
            last = self.gate.open()
            self.outbox.deliver(text)
            self.clock.advance(0)
        self.assertEqual(writes, [])
        self.gate.close(last)
        self.assertEqual(writes, [b"one\r\ntwo\r\nthree\r\n"])
        self.assertIsNone(self.outbox.held)

    def test_nothingInFlightNothingHeld(self) -> None:
        """Without a commit in flight, a turn's deliveries leave at its end."""
        self.outbox.deliver(b"free\r\n")
        self.clock.advance(0)
        self.assertEqual(self.transport.value(), b"free\r\n")

    def test_whenWrittenWaits(self) -> None:
        """
        What a closing connection does once its last lines are written (lose
        the connection) waits for what is held.
        """
        epoch = self.gate.open()
        self.outbox.deliver(b"last\r\n")
        self.outbox.flush()
        done: list[bytes] = []
        self.outbox.when_written(lambda: done.append(self.transport.value()))
        self.assertEqual(done, [])
        self.gate.close(epoch)
        self.assertEqual(done, [b"last\r\n"])

    def test_discardDropsHeld(self) -> None:
        """A connection gone drops what was held for it."""
        epoch = self.gate.open()
        self.outbox.deliver(b"lost\r\n")
        self.clock.advance(0)
        self.outbox.discard()
        self.gate.close(epoch)
        self.assertEqual(self.transport.value(), b"")


class LaterWriterStoreTests(SynchronousTestCase):
    """The SQLite store with a writer that answers later."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(START)
        self.path = temp_dir(self) / "history.sqlite3"
        self.writer = LaterWriter()
        self.store = SQLiteHistoryStore(
            str(self.path), self.clock, writer=self.writer, retry_limit=5
        )
        self.successResultOf(self.store.start())
        self.addCleanup(self.stop)
        self.ids = itertools.count()

    def say(self, *texts: str) -> None:
        for text in texts:
            self.store.append(message(text, next(self.ids)))
        self.store.commit()

    def stop(self) -> None:
        """Stop the store, answering every write it waits for."""
        stopped = self.store.stop()
        self.writer.run_all()
        self.successResultOf(stopped)

    def recent(self) -> list[str]:
        return [m.text for m in self.successResultOf(self.store.recent("lobby", 50))]

    def test_commitOpensEpoch(self) -> None:
        """
        A commit hands the turn to the writer and returns: the gate is busy
        until the writer's commit returns, and the file has it by then.
        """
        self.say("a", "b")
        self.assertTrue(self.store.gate.busy())
        self.assertEqual(on_disk(self.path), [])
        self.writer.run_next()
        self.assertFalse(self.store.gate.busy())
        self.assertEqual(on_disk(self.path), ["a", "b"])

    def test_commitsAskToBeWaitedFor(self) -> None:
        """
        A commit asks the writer to be waited for (deliveries wait for it);
        a pruning step, which nothing waits for, does not.
        """
        self.say("a")
        self.writer.run_next()
        self.store.prune()
        self.assertEqual(self.writer.waits, [True, False])

    def test_turnsBatchWhileInFlight(self) -> None:
        """
        Turns committed while a commit is in flight go, together, in the
        next one: one write for all of them, and their epochs close with it.
        """
        self.say("a")
        self.say("b")
        self.say("c")
        self.assertEqual(len(self.writer.jobs), 1)
        self.writer.run_next()
        self.assertEqual(on_disk(self.path), ["a"])
        self.assertTrue(self.store.gate.busy())
        self.assertEqual(len(self.writer.jobs), 1)
        self.writer.run_next()
        self.assertEqual(on_disk(self.path), ["a", "b", "c"])
        self.assertFalse(self.store.gate.busy())
        self.assertEqual(self.writer.jobs, [])

    def test_turnsOfEverySizeWritten(self) -> None:
        """
        Turns of one message, of a few, and of more than one statement
        inserts (:data:`ROWS_PER_STATEMENT`), in a room the file knows, are
        written whole and in order, and their epochs close.
        """
        self.say("first")  # the room's first message: the room is written too
        self.writer.run_all()
        sizes = (1, 3, ROWS_PER_STATEMENT, ROWS_PER_STATEMENT + 5)
        texts = [[f"{size}.{n}" for n in range(size)] for size in sizes]
        for turn in texts:
            self.say(*turn)
            self.writer.run_all()
            self.assertFalse(self.store.gate.busy())
        expected = ["first", *itertools.chain.from_iterable(texts)]
        self.assertEqual(on_disk(self.path), expected)
        self.assertEqual(self.recent(), expected[-50:])

    def test_readsSeeInFlight(self) -> None:
        """
        ``recent`` has every message appended, written or not, once each:
        in flight, waiting behind it, and collected, and also when the
        writer's commit is done but its answer has not reached the reactor.
        """
        self.say("a")
        self.say("b")
        self.store.append(message("c", 99))
        self.assertEqual(self.recent(), ["a", "b", "c"])
        answer = self.writer.execute_next()
        self.assertEqual(on_disk(self.path), ["a"])
        self.assertEqual(self.recent(), ["a", "b", "c"])
        answer()
        self.assertEqual(self.recent(), ["a", "b", "c"])
        self.writer.run_all()
        self.assertEqual(self.recent(), ["a", "b", "c"])
        self.assertEqual(on_disk(self.path), ["a", "b", "c"])

    def test_pagesSeeInFlight(self) -> None:
        """
        Pages around messages in flight, waiting, or just written in the
        writer's thread give each message once, in order.
        """
        self.say("a", "b")
        self.say("c")

        def page(
            before: Position | None = None, after: Position | None = None
        ) -> list[str]:
            result = self.store.page("lobby", 5, before=before, after=after)
            return [m.text for m in self.successResultOf(result)]

        ids = [m.id for m in self.successResultOf(self.store.recent("lobby", 5))]
        for stage in ("in flight", "done in the thread", "answered"):
            if stage == "done in the thread":
                answer = self.writer.execute_next()
            elif stage == "answered":
                answer()
            self.assertEqual(page(before=Position(id=ids[2])), ["a", "b"], stage)
            self.assertEqual(page(after=Position(id=ids[0])), ["b", "c"], stage)
            self.assertEqual(page(before=Position(id=ids[1])), ["a"], stage)
            self.assertEqual(page(), ["a", "b", "c"], stage)

    def test_failedWriteReleasesAndRetries(self) -> None:
        """
        A commit that fails in the writer (the file locked) does not hold
        deliveries back (the chat goes on): its messages wait, in order, and
        the retry writes them.
        """
        other = sqlite3.connect(self.path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        self.say("a", "b")
        self.writer.run_next()
        self.assertFalse(self.store.gate.busy())
        self.assertIn("2 waiting", self.store.status())
        self.assertIn("locked", self.store.status())
        self.say("c")
        self.assertFalse(self.store.gate.busy(), "no epoch while writing fails")
        self.assertEqual(self.writer.jobs, [])
        other.execute("ROLLBACK")
        other.close()
        self.clock.advance(RETRY_EVERY)
        self.writer.run_next()
        self.assertEqual(on_disk(self.path), ["a", "b", "c"])
        self.assertIn("0 waiting", self.store.status())

    def test_stalledWriteStopsHolding(self) -> None:
        """
        A write that does not answer for ``STALL_AFTER`` seconds (a disk
        that hangs) no longer holds deliveries: one warning, the gate is
        open; once it answers, the next commits hold again.
        """
        warnings: list[str] = []
        from twisted.logger import ILogObserver, globalLogPublisher
        from zope.interface import provider

        @provider(ILogObserver)
        def observe(event: dict[str, object]) -> None:
            if str(event.get("log_format", "")).startswith("history: a write"):
                warnings.append(str(event["log_format"]))

        globalLogPublisher.addObserver(observe)
        self.addCleanup(globalLogPublisher.removeObserver, observe)
        self.say("a")
        self.clock.advance(STALL_AFTER)
        self.clock.advance(STALL_AFTER)
        self.assertFalse(self.store.gate.busy())
        self.assertEqual(len(warnings), 1)
        self.say("b")
        self.assertFalse(self.store.gate.busy())
        self.writer.run_all()
        self.say("c")
        self.assertTrue(self.store.gate.busy())
        self.writer.run_all()
        self.assertEqual(on_disk(self.path), ["a", "b", "c"])

    def test_stopWritesEverything(self) -> None:
        """Stopping waits for the write in flight, then writes what waits."""
        self.say("a")
        self.say("b")
        stopped = self.store.stop()
        self.writer.run_all()
        self.successResultOf(stopped)
        self.assertEqual(on_disk(self.path), ["a", "b"])


class HungDiskTests(SynchronousTestCase):
    """A writer that never answers does not keep the server from stopping."""

    def test_stopGivesUp(self) -> None:
        """
        Stopping waits ``STOP_WAIT`` seconds for a write in flight, then
        closes without it, and one error line says so and how many
        messages are lost.
        """
        clock = Clock()
        writer = LaterWriter()
        path = temp_dir(self) / "history.sqlite3"
        store = SQLiteHistoryStore(str(path), clock, writer=writer)
        self.successResultOf(store.start())
        store.append(message("never written"))
        store.commit()
        errors: list[str] = []
        from twisted.logger import ILogObserver, globalLogPublisher
        from zope.interface import provider

        @provider(ILogObserver)
        def observe(event: dict[str, object]) -> None:
            if event.get("log_level") == LogLevel.error:
                errors.append(formatEvent(event))

        globalLogPublisher.addObserver(observe)
        self.addCleanup(globalLogPublisher.removeObserver, observe)
        stopped = store.stop()
        clock.advance(STOP_WAIT - 1)
        self.assertNoResult(stopped)
        clock.advance(1)
        self.successResultOf(stopped)
        self.assertEqual(len(errors), 2, errors)
        self.assertIn("has not answered", errors[0])
        self.assertIn("1 messages could not be written", errors[1])
        assert writer.db is not None
        writer.db.close()


class SlowDiskChat:
    """A native chat on a fake clock whose SQLite store's writer answers later."""

    def __init__(self, directory: Path, replay: int = 1000) -> None:
        self.clock = Clock()
        self.clock.advance(START)
        self.path = directory / "history.sqlite3"
        self.writer = LaterWriter()
        self.store = SQLiteHistoryStore(str(self.path), self.clock, writer=self.writer)
        assert self.store.start().called
        backend = LocalBackend(call_soon=end_of_turn(self.clock).soon)
        self.hub = Hub(clock=self.clock.seconds, backend=backend, store=self.store)
        self.network = Network(self.clock)
        self.factory = ChatFactory(
            self.hub, clock=self.clock, settings=ChatSettings(replay=replay)
        )
        #: Every line each client received, in order.
        self.seen: dict[Connection[LineClient], list[str]] = {}

    def client(self, nick: str) -> Connection[LineClient]:
        connection = self.network.connect(self.factory, LineClient())
        self.seen[connection] = []
        self.send(connection, nick)
        self.settle()
        return connection

    def send(self, connection: Connection[LineClient], *lines: str) -> None:
        for line in lines:
            connection.client.sendLine(line.encode("utf-8"))
        connection.push()
        self.take()

    def settle(self) -> None:
        """End the turn, and let every client read what it was written."""
        self.clock.advance(0)
        self.network.settle()
        self.take()

    def take(self) -> None:
        for connection, lines in self.seen.items():
            lines.extend(connection.client.take())

    def shown(self) -> set[str]:
        """The text of every room message any client was shown."""
        texts = set()
        for lines in self.seen.values():
            for line in lines:
                found = HISTORY_LINE.fullmatch(line) or LIVE_LINE.fullmatch(line)
                if found:
                    texts.add(found.groups()[-1])
        return texts


class SlowDiskChatTests(SynchronousTestCase):
    """Through the native door: nothing reaches a client before the file has it."""

    def test_deliveredOnceWritten(self) -> None:
        """
        A message said while the disk is slow reaches nobody, its sender
        neither, until the writer's commit returns; then everyone, in order,
        and the file has it.
        """
        chat = SlowDiskChat(temp_dir(self))
        alice, bob = chat.client("alice"), chat.client("bob")
        chat.writer.run_all()
        chat.settle()
        chat.seen[alice].clear()
        chat.seen[bob].clear()
        chat.send(alice, "one", "two")
        chat.settle()
        self.assertEqual(chat.seen[bob], [])
        self.assertEqual(chat.seen[alice], [])
        chat.writer.run_all()
        chat.settle()
        self.assertEqual(chat.seen[bob], ["#lobby <alice> one", "#lobby <alice> two"])
        self.assertEqual(on_disk(chat.path), ["one", "two"])

    @settings(max_examples=60, deadline=None)
    @given(boundary_steps("write"))
    def test_boundaryAndDurabilityProperty(self, steps: list[tuple[str, int]]) -> None:
        """
        Whatever the interleaving of messages, joins, turns and commits of a
        slow writer: at every step, every message any client was shown is
        in the file; and at the end every member who joined saw every
        message of the room exactly once, in order, the replay first.
        """
        chat = SlowDiskChat(temp_dir(self))
        speakers = [chat.client(f"s{n}") for n in range(3)]
        joiners = [chat.client(f"j{n}") for n in range(4)]
        for speaker in speakers:
            chat.send(speaker, "/join games")
        chat.writer.run_all()
        chat.settle()
        for lines in chat.seen.values():
            lines.clear()
        said: list[str] = []
        joined: set[int] = set()
        for number, (step, who) in enumerate(steps):
            if step == "say":
                said.append(f"m{number}")
                chat.send(speakers[who], said[-1])
            elif step == "join" and who not in joined:
                joined.add(who)
                chat.send(joiners[who], "/join games")
            elif step == "write" and chat.writer.jobs:
                chat.writer.run_next()
                chat.take()
            elif step == "turn":
                chat.settle()
            self.assertLessEqual(chat.shown(), set(on_disk(chat.path)))
        chat.settle()
        while chat.writer.jobs:
            chat.writer.run_all()
            chat.settle()
        for who in sorted(joined):
            assert_replay_then_live(self, chat.seen[joiners[who]], "games", said)
        self.successResultOf(chat.store.stop())


class ThreadedWriterTests(TestCase):
    """The real writer thread, on the running reactor."""

    def setUp(self) -> None:
        self.path = temp_dir(self) / "history.sqlite3"

    async def test_commitInThread(self) -> None:
        """
        With the real reactor the store writes in its thread: not waited
        for (``wait=0``), a commit returns at once with the gate busy, and
        once the gate closes another connection reads every message, in
        order.
        """
        store = SQLiteHistoryStore(str(self.path), reactor, wait=0)
        self.assertIsInstance(store.writer, ThreadedWriter)
        await store.start()
        try:
            for n in range(100):
                store.append(message(f"m{n}", n))
            store.commit()
            self.assertTrue(store.gate.busy())
            closed: Deferred[int] = Deferred()
            store.gate.wait(store.gate.opened, closed.callback)
            await closed
            self.assertEqual(on_disk(self.path), [f"m{n}" for n in range(100)])
            recent = await store.recent("lobby", 3)
            self.assertEqual([m.text for m in recent], ["m97", "m98", "m99"])
        finally:
            await store.stop()

    async def test_commitWaitedFor(self) -> None:
        """
        Waited for (here up to 10 s, so that a slow machine answers in
        time too), a commit returns once the thread has written it: the
        gate is closed, the file has every message, and nothing waits for
        the reactor's next turn.
        """
        store = SQLiteHistoryStore(str(self.path), reactor, wait=10.0)
        await store.start()
        try:
            for n in range(10):
                store.append(message(f"m{n}", n))
            store.commit()
            self.assertFalse(store.gate.busy())
            self.assertEqual(on_disk(self.path), [f"m{n}" for n in range(10)])
            writer = store.writer
            assert isinstance(writer, ThreadedWriter)
            self.assertEqual((writer.waited, writer.answered_in_time), (1, 1))
        finally:
            await store.stop()

    async def test_failureInThread(self) -> None:
        """
        A write that fails in the thread (the file locked by another
        connection) opens the gate and leaves the messages waiting; they
        are written once the lock is gone.
        """
        store = SQLiteHistoryStore(str(self.path), reactor)
        await store.start()
        other = sqlite3.connect(self.path, isolation_level=None)
        try:
            other.execute("BEGIN IMMEDIATE")
            store.append(message("locked out"))
            store.commit()
            closed: Deferred[int] = Deferred()
            store.gate.wait(store.gate.opened, closed.callback)
            await closed
            self.assertIn("1 waiting", store.status())
            self.assertIn("locked", store.status())
            other.execute("ROLLBACK")
        finally:
            other.close()
            await store.stop()
        self.assertEqual(on_disk(self.path), ["locked out"])

    async def test_chatOverLoopback(self) -> None:
        """
        A real chat over loopback TCP with the threaded writer: whenever a
        client receives a message, another connection to the file already
        reads it.
        """
        from twisted.internet.endpoints import (
            TCP4ClientEndpoint,
            TCP4ServerEndpoint,
            connectProtocol,
        )

        store = SQLiteHistoryStore(str(self.path), reactor)
        await store.start()
        backend = LocalBackend(call_soon=end_of_turn(reactor).soon)
        hub = Hub(clock=reactor.seconds, backend=backend, store=store)
        factory = ChatFactory(
            hub,
            limits=Limits(flood_rate=0),
            clock=reactor,
            settings=ChatSettings(replay=0),
        )
        port = await TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(
            factory
        )
        checked: list[tuple[str, bool]] = []
        everything: Deferred[None] = Deferred()

        class Witness(LineClient):
            def lineReceived(self, line: bytes) -> None:
                text = line.decode()
                if text.startswith("#lobby <"):
                    said = text.split("> ", 1)[1]
                    checked.append((said, said in on_disk(self_path)))
                    if len(checked) == 25:
                        everything.callback(None)
                super().lineReceived(line)

        self_path = self.path
        address = port.getHost()
        endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", address.port)
        witness = await connectProtocol(endpoint, Witness())
        speaker = await connectProtocol(endpoint, LineClient())
        try:
            witness.sendLine(b"witness")
            speaker.sendLine(b"speaker")
            await deferLater(reactor, 0.2, lambda: None)
            for n in range(25):
                speaker.sendLine(f"m{n}".encode())
            await everything
        finally:
            witness.transport.loseConnection()
            speaker.transport.loseConnection()
            await port.stopListening()
            await deferLater(reactor, 0.05, lambda: None)
            await store.stop()
        self.assertEqual(len(checked), 25)
        self.assertTrue(all(stored for _, stored in checked), checked)
