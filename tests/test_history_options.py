"""
The history options of ``twistd chatservice`` (``--history``,
``--history-replay``, ``--history-private``, ``--history-max-messages``,
``--history-max-age``, ``--history-wait``), the store
:func:`chatservice.tap.makeService` builds from them, and how the service
tree opens it.
"""

from __future__ import annotations

import sys

from twisted.internet.defer import Deferred, fail
from twisted.internet.testing import MemoryReactorClock
from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase

from chatservice import tap
from chatservice.chat.hub import Hub
from chatservice.doors.native.protocol import ChatFactory
from chatservice.service import ChatService, ListeningService, StartupError
from chatservice.stores.base import StoreError
from chatservice.stores.memory import MemoryHistoryStore
from chatservice.stores.sqlite import SQLiteHistoryStore
from tests.test_tap import parse


class HistoryOptionTests(SynchronousTestCase):
    """Parsing the history options."""

    def test_defaults(self) -> None:
        """
        By default history is the SQLite file ``chatservice.sqlite3`` in the
        current directory, 50 messages replayed, 10000 kept per room for 30
        days, private messages not kept, commits waited for a millisecond.
        """
        options = parse()
        self.assertEqual(options.history, ("sqlite", "chatservice.sqlite3"))
        self.assertEqual(options["history-replay"], 50)
        self.assertEqual(options["history-max-messages"], 10000)
        self.assertEqual(options.history_max_age, 30 * 86400)
        self.assertFalse(options["history-private"])
        self.assertEqual(options["history-wait"], 0.001)

    def test_kinds(self) -> None:
        """``sqlite:PATH``, ``memory`` and ``none`` (any case) are understood."""
        self.assertEqual(
            parse("--history", "sqlite:a/b.db").history, ("sqlite", "a/b.db")
        )
        self.assertEqual(parse("--history", "MEMORY").history, ("memory", None))
        self.assertEqual(parse("--history=none").history, ("none", None))
        self.assertIsNone(parse("--history-max-age", "forever").history_max_age)
        self.assertEqual(parse("--history-max-age", "2h").history_max_age, 7200)

    def test_mistakes(self) -> None:
        """Anything else is a usage error naming the option."""
        for args, said in (
            (["--history", "sqlite:"], "--history 'sqlite:'"),
            (["--history", "redis:x"], "expected sqlite:PATH, memory or none"),
            (["--history", "memory:x"], "--history"),
            (["--history-max-age", "soon"], "--history-max-age"),
            (["--history-max-messages", "0"], "--history-max-messages"),
            # Memory's deque raised OverflowError at start-up past 2**63.
            (["--history-max-messages", str(10**23)], "too large"),
            (["--history-max-messages", "1000000001"], "at most 1000000000"),
            (["--history-wait", "-1"], "not a number of seconds"),
            (["--history-wait", "soon"], "not a number of seconds"),
            # 1e300 raised OverflowError from the lock at the first message.
            (["--history-wait", "1e300"], "--history-wait must be at most 1"),
            (["--history-wait", "1.5"], "--history-wait must be at most 1"),
        ):
            error = self.assertRaises(usage.UsageError, parse, *args)
            self.assertIn(said, str(error))

    def test_readCountsBounded(self) -> None:
        """
        ``--history-replay`` and ``--irc-chathistory-max`` are counts of
        messages read at once: beyond 100000 (a count SQLite could not
        even take, 10**22, crashed every join and ``CHATHISTORY``) they
        are a usage error at start-up; 100000 itself is taken.
        """
        for option in ("--history-replay", "--irc-chathistory-max"):
            for value in ("100001", str(10**22)):
                error = self.assertRaises(usage.UsageError, parse, option, value)
                self.assertIn("from 0 to 100000", str(error))
            self.assertEqual(parse(option, "100000")[option[2:]], 100000)


class MakeServiceTests(SynchronousTestCase):
    """The store ``makeService`` gives the hub."""

    def setUp(self) -> None:
        self.patch(sys, "excepthook", sys.excepthook)

    def hub(self, *args: str) -> Hub:
        top = tap.makeService(
            parse("--echo=none", "--upper=none", *args), MemoryReactorClock()
        )
        assert isinstance(top, ChatService)
        return top.hub

    def test_sqlite(self) -> None:
        """``--history sqlite:PATH`` gives an SQLite store on that file and limits."""
        store = self.hub(
            "--history=sqlite:h.db",
            "--history-max-messages=7",
            "--history-max-age=1h",
            "--history-private",
            "--history-wait=0.005",
        ).store
        assert isinstance(store, SQLiteHistoryStore)
        self.assertEqual(
            (store.path, store.per_room, store.max_age, store.private, store.wait),
            ("h.db", 7, 3600, True, 0.005),
        )

    def test_memoryAndNone(self) -> None:
        """``memory`` gives a memory store; ``none``, no store at all."""
        store = self.hub("--history=memory", "--history-max-messages=7").store
        assert isinstance(store, MemoryHistoryStore)
        self.assertEqual((store.per_room, store.private), (7, False))
        self.assertIsNone(self.hub("--history=none").store)

    def test_replayGoesToTheDoor(self) -> None:
        """``--history-replay`` is what the native door replays on join."""
        top = tap.makeService(
            parse(
                "--echo=none", "--upper=none", "--history=none", "--history-replay=3"
            ),
            MemoryReactorClock(),
        )
        assert isinstance(top, ChatService)
        (chat,) = [s for s in top if isinstance(s, ListeningService)]
        assert isinstance(chat.factory, ChatFactory)
        self.assertEqual(chat.factory.settings.replay, 3)


class BrokenStore(MemoryHistoryStore):
    """A store whose file cannot be opened."""

    def start(self) -> Deferred[None]:
        return fail(StoreError("history file x: file is not a database"))


class OpeningTests(SynchronousTestCase):
    """The service tree opens the store before the doors, and stops on failure."""

    def setUp(self) -> None:
        self.patch(sys, "excepthook", sys.excepthook)

    def test_failureStopsStartUp(self) -> None:
        """A store that cannot be opened is a start-up error with its message."""
        service = ChatService(Hub(store=BrokenStore()))
        error = self.assertRaises(StartupError, service.startService)
        self.assertEqual(str(error), "history file x: file is not a database")
        self.assertFalse(service.running)

    def test_restoredBeforeDoors(self) -> None:
        """Started, the service gives the hub the bans the store kept."""
        from chatservice.chat.model import Ban

        store = MemoryHistoryStore()
        store.add_ban(Ban("mallory", None, "", "root"))
        hub = Hub(store=store)
        ChatService(hub).startService()
        self.assertEqual([b.target for b in hub.bans()], ["mallory"])
