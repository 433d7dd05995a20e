"""
The history stores (:mod:`chatservice.stores`): one mixin of what every
store does (:class:`StoreTests`), run against the memory store and the
SQLite store (in a temporary directory outside the checkout), then what only
the SQLite file does: survive a reopen, its schema, and its faults.
"""

from __future__ import annotations

import sqlite3
from ipaddress import ip_network
from typing import TYPE_CHECKING, Any

from twisted.internet.defer import fail
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from chatservice.backends.local import LocalBackend
from chatservice.chat import events
from chatservice.chat.hub import Hub
from chatservice.chat.model import Ban
from chatservice.conn.turns import end_of_turn
from chatservice.stores.base import (
    HistoryStore,
    Position,
    SavedTopic,
    StoreError,
    UnknownMessageError,
)
from chatservice.stores.memory import MemoryHistoryStore
from chatservice.stores.schema import MIGRATIONS
from chatservice.stores.sqlite import (
    APPLICATION_ID,
    CHECKPOINT_EVERY,
    PRUNE_EVERY,
    PRUNE_STEP,
    RETRY_EVERY,
    SCHEMA_VERSION,
    SQLiteHistoryStore,
)
from chatservice.stores.writer import SynchronousWriter
from chatservice.testing import FakeMember
from tests.support import temp_dir

if TYPE_CHECKING:
    _TestCase = SynchronousTestCase
else:
    _TestCase = object

#: A time in the chat's past, for messages the tests make.
EPOCH = 1_700_000_000.0


def message(room: str, text: str, at: float = EPOCH, n: int = 0) -> events.RoomMessage:
    """A stamped room message from alice."""
    return events.RoomMessage(room, "alice", text, id=f"t.{n}", at=at, door="chat")


class StoreTests(_TestCase):
    """What every history store does; mix in with :meth:`makeStore`."""

    def setUp(self) -> None:
        super().setUp()
        self.clock = Clock()
        self.clock.advance(EPOCH)

    def makeStore(
        self, per_room: int = 100, max_age: float | None = None, private: bool = False
    ) -> HistoryStore:
        """A started store of the kind under test, on :attr:`clock`."""
        raise NotImplementedError

    def recent(self, store: HistoryStore, room: str, count: int) -> list[str]:
        """The texts of a room's last ``count`` messages."""
        return [m.text for m in self.successResultOf(store.recent(room, count))]

    def test_recentOldestFirst(self) -> None:
        """
        ``recent`` gives a room's last N messages, oldest first, whatever
        the spelling of the room's name, with their ids, times and doors.
        """
        store = self.makeStore()
        for n in range(5):
            store.append(message("Lobby", f"m{n}", EPOCH + n, n))
        store.append(message("games", "elsewhere"))
        store.commit()
        self.assertEqual(self.recent(store, "LOBBY", 3), ["m2", "m3", "m4"])
        self.assertEqual(self.recent(store, "lobby", 50), [f"m{n}" for n in range(5)])
        last = self.successResultOf(store.recent("lobby", 1))[0]
        self.assertEqual(
            (last.room, last.nick, last.id, last.at, last.door, last.action),
            ("Lobby", "alice", "t.4", EPOCH + 4, "chat", False),
        )
        self.assertEqual(self.recent(store, "lobby", 0), [])
        self.assertEqual(self.recent(store, "nowhere", 5), [])

    def test_before(self) -> None:
        """
        ``page(before=)`` pages back from a message: the N said just before
        it, oldest first, written or not yet; an unknown message (another
        room's, or none) is an error.
        """
        store = self.makeStore()
        for n in range(6):
            store.append(message("Lobby", f"m{n}", EPOCH + n, n))
            store.append(message("games", f"g{n}", EPOCH + n, 100 + n))
            if n == 3:
                store.commit()

        def before(message_id: str, count: int) -> list[str]:
            page = store.page("LOBBY", count, before=Position(id=message_id))
            return [m.text for m in self.successResultOf(page)]

        def unknown(message_id: str) -> None:
            page = store.page("LOBBY", 5, before=Position(id=message_id))
            self.failureResultOf(page, UnknownMessageError)

        self.assertEqual(before("t.3", 2), ["m1", "m2"])
        self.assertEqual(before("t.5", 3), ["m2", "m3", "m4"])  # across the commit
        self.assertEqual(before("t.4", 10), ["m0", "m1", "m2", "m3"])
        self.assertEqual(before("t.0", 5), [])
        unknown("t.104")  # another room's message
        unknown("nope")
        self.assertEqual(before("t.5", 0), [])
        store.commit()
        self.assertEqual(before("t.5", 2), ["m3", "m4"])

    def test_uncommittedIncluded(self) -> None:
        """Messages appended and not committed yet are part of ``recent``."""
        store = self.makeStore()
        store.append(message("lobby", "written"))
        store.commit()
        store.append(message("lobby", "pending"))
        self.assertEqual(self.recent(store, "lobby", 5), ["written", "pending"])

    def page(self, store: HistoryStore, count: int, **bounds: Any) -> list[str]:
        """The texts of a page of #lobby's history."""
        return [
            m.text for m in self.successResultOf(store.page("lobby", count, **bounds))
        ]

    def test_pages(self) -> None:
        """
        Pages of a room's history: after and before a message id or a time
        (each excluded), between two, the newest or the oldest of them,
        oldest first; the same whether the messages are written or not.
        """
        store = self.makeStore()
        for n in range(10):
            store.append(message("lobby", f"m{n}", EPOCH + n, n))
            if n == 5:
                store.commit()  # m0..m5 written, m6..m9 collected
        store.append(message("games", "elsewhere", EPOCH + 3, 99))
        m = [f"m{n}" for n in range(10)]
        at = Position(at=EPOCH + 4)
        self.assertEqual(self.page(store, 3), m[7:])
        self.assertEqual(self.page(store, 3, latest=False), m[:3])
        self.assertEqual(self.page(store, 3, before=Position(id="t.4")), m[1:4])
        self.assertEqual(self.page(store, 3, before=Position(id="t.8")), m[5:8])
        self.assertEqual(
            self.page(store, 2, after=Position(id="t.4"), latest=False), m[5:7]
        )
        self.assertEqual(self.page(store, 9, after=Position(id="t.7")), m[8:])
        self.assertEqual(self.page(store, 3, before=at), m[1:4])
        self.assertEqual(self.page(store, 3, after=at, latest=False), m[5:8])
        between = {"after": Position(id="t.2"), "before": Position(id="t.8")}
        self.assertEqual(self.page(store, 10, **between), m[3:8])
        self.assertEqual(self.page(store, 2, **between), m[6:8])
        self.assertEqual(self.page(store, 2, **between, latest=False), m[3:5])
        mixed = {"after": Position(at=EPOCH + 6.5), "before": Position(id="t.9")}
        self.assertEqual(self.page(store, 10, **mixed), m[7:9])
        self.assertEqual(self.page(store, 10, after=Position(id="t.8"), before=at), [])
        self.assertEqual(self.page(store, 0), [])
        self.failureResultOf(
            store.page("lobby", 5, before=Position(id="t.99")), UnknownMessageError
        )
        self.failureResultOf(
            store.page("lobby", 5, after=Position(id="nowhere")), UnknownMessageError
        )

    def test_actionsKept(self) -> None:
        """An action comes back as an action."""
        store = self.makeStore()
        store.append(events.RoomMessage("lobby", "bob", "waves", True, id="a", at=1))
        store.commit()
        (kept,) = self.successResultOf(store.recent("lobby", 5))
        self.assertTrue(kept.action)

    def test_noticesKept(self) -> None:
        """
        A notice comes back as a notice, committed or not, and a message or
        an action as no notice, whether one message was written or several.
        """
        store = self.makeStore()
        said = [
            events.RoomMessage("lobby", "bob", "heads up", notice=True, id="n", at=1),
            events.RoomMessage("lobby", "bob", "plain", id="p", at=2),
            events.RoomMessage("lobby", "bob", "waves", True, id="a", at=3),
        ]
        store.append(said[0])
        self.assertEqual(self.kinds(store), [("heads up", False, True)])
        store.commit()
        self.assertEqual(self.kinds(store), [("heads up", False, True)])
        for one in said[1:]:
            store.append(one)
        store.commit()
        expected = [
            ("heads up", False, True),
            ("plain", False, False),
            ("waves", True, False),
        ]
        self.assertEqual(self.kinds(store), expected)
        self.assertEqual(self.kinds(self.reopen(store)), expected)

    def kinds(self, store: HistoryStore) -> list[tuple[str, bool, bool]]:
        """Each of the lobby's messages: its text, whether action, notice."""
        page = self.successResultOf(store.page("lobby", 10))
        return [(m.text, m.action, m.notice) for m in page]

    def test_perRoomLimit(self) -> None:
        """A room keeps its last ``per_room`` messages; others keep theirs."""
        store = self.makeStore(per_room=3)
        for n in range(10):
            store.append(message("lobby", f"m{n}", n=n))
            store.commit()
        store.append(message("games", "g"))
        store.commit()
        self.clock.advance(PRUNE_EVERY * 10)
        self.assertEqual(self.recent(store, "lobby", 50), ["m7", "m8", "m9"])
        self.assertEqual(self.recent(store, "games", 50), ["g"])

    def test_perRoomLimitKeptUnderLoad(self) -> None:
        """
        Rooms said into faster than one pruning step each ``PRUNE_EVERY``
        seconds (three steps' worth in the busiest, a little over the limit
        in a dozen others) are back within their limit after every round
        of pruning: the round takes as many steps as it needs.
        """
        store = self.makeStore(per_room=10)
        rooms = [f"side{n}" for n in range(12)]
        for round_ in range(3):
            for n in range(3 * PRUNE_STEP):
                store.append(message("lobby", f"r{round_}m{n}", n=n))
            for room in rooms:
                for n in range(12):
                    store.append(message(room, f"{room}-{round_}-{n}", n=n))
            store.commit()
            self.clock.advance(PRUNE_EVERY)
            for _ in range(100):  # the round's steps, a turn apart
                self.clock.advance(0)
            lobby = self.recent(store, "lobby", 10_000)
            self.assertEqual(lobby, [f"r{round_}m{n}" for n in range(590, 600)])
            for room in rooms:
                self.assertEqual(len(self.recent(store, room, 100)), 10, room)

    def test_busyRoomPrunedBetweenRounds(self) -> None:
        """
        A room said into between the timer's rounds is pruned as it goes:
        once a write leaves it a whole step over its limit, steps follow
        in the next turns, and it never holds much more than a step and a
        turn's messages over the limit.
        """
        store = self.makeStore(per_room=10)
        started = self.clock.seconds()
        largest = 0
        for turn in range(40):
            for n in range(50):
                store.append(message("lobby", f"t{turn}m{n}", n=n))
            # Another room said into last: the lobby's excess still counts.
            store.append(message("games", f"t{turn}"))
            store.commit()
            for _ in range(5):
                self.clock.advance(0)
            largest = max(largest, len(self.recent(store, "lobby", 10_000)))
        self.assertLessEqual(largest, 10 + PRUNE_STEP + 50)
        self.assertLess(self.clock.seconds() - started, PRUNE_EVERY)  # no round due

    def test_maxAge(self) -> None:
        """Messages older than ``max_age`` go once the clock has passed it."""
        store = self.makeStore(max_age=3600)
        store.append(message("lobby", "old", EPOCH))
        store.append(message("lobby", "new", EPOCH + 1800))
        store.commit()
        self.clock.advance(1800 + PRUNE_EVERY)
        self.assertEqual(self.recent(store, "lobby", 5), ["old", "new"])
        self.clock.advance(1800)
        self.assertEqual(self.recent(store, "lobby", 5), ["new"])

    def test_topicsAndBansSaved(self) -> None:
        """A store reopened gives back topics and the bans in force."""
        store = self.makeStore()
        store.set_topic(SavedTopic("Games", "chess", "alice", EPOCH))
        forever = Ban("mallory", None, "spam", "root")
        store.add_ban(forever)
        network = Ban("10.0.0.0/24", EPOCH + 60, "", "root", ip_network("10.0.0.0/24"))
        store.add_ban(network)
        store.add_ban(Ban("eve", EPOCH + 60, "", "root"))
        store.remove_ban(Ban("eve", EPOCH + 60, "", "root"))
        store.commit()
        again = self.reopen(store)
        saved = again.saved()
        self.assertEqual(saved.topics, (SavedTopic("Games", "chess", "alice", EPOCH),))
        self.assertEqual(saved.bans, (forever, network))
        self.clock.advance(61)
        self.assertEqual(
            [b.target for b in self.reopen(again).saved().bans], ["mallory"]
        )

    def test_privateOnlyWhenAsked(self) -> None:
        """Private messages are kept only by a store told to keep them."""
        event = events.PrivateMessage("alice", "bob", "secret", id="p", at=EPOCH)
        quiet = self.makeStore()
        quiet.append_private(event)
        quiet.commit()
        self.assertEqual(self.privates(quiet), [])
        keeping = self.makeStore(private=True)
        keeping.append_private(event)
        keeping.commit()
        self.assertEqual(self.privates(keeping), ["secret"])

    def reopen(self, store: HistoryStore) -> HistoryStore:
        """The same store after a restart (what a memory store keeps: itself)."""
        raise NotImplementedError

    def privates(self, store: HistoryStore) -> list[str]:
        """The texts of the private messages a store holds."""
        raise NotImplementedError


class MemoryStoreTests(StoreTests, SynchronousTestCase):
    """The memory store."""

    def makeStore(
        self, per_room: int = 100, max_age: float | None = None, private: bool = False
    ) -> MemoryHistoryStore:
        store = MemoryHistoryStore(
            per_room, max_age=max_age, clock=self.clock.seconds, private=private
        )
        self.successResultOf(store.start())
        return store

    def reopen(self, store: HistoryStore) -> HistoryStore:
        return store

    def privates(self, store: HistoryStore) -> list[str]:
        assert isinstance(store, MemoryHistoryStore)
        return [m.text for m in store.privates]


class SQLiteStoreTests(StoreTests, SynchronousTestCase):
    """The SQLite store, in a file of a temporary directory."""

    def setUp(self) -> None:
        super().setUp()
        self.directory = temp_dir(self)
        self.path = self.directory / "history.sqlite3"

    def makeStore(
        self, per_room: int = 100, max_age: float | None = None, private: bool = False
    ) -> SQLiteHistoryStore:
        store = SQLiteHistoryStore(
            str(self.path),
            self.clock,
            per_room=per_room,
            max_age=max_age,
            private=private,
        )
        self.successResultOf(store.start())
        self.addCleanup(store.stop)
        return store

    def reopen(self, store: HistoryStore) -> HistoryStore:
        self.successResultOf(store.stop())
        assert isinstance(store, SQLiteHistoryStore)
        return self.makeStore(store.per_room, store.max_age, store.private)

    def privates(self, store: HistoryStore) -> list[str]:
        with sqlite3.connect(self.path) as db:
            return [t for (t,) in db.execute("SELECT text FROM private_messages")]

    def test_messagesSurviveReopen(self) -> None:
        """What was committed is there after the store is closed and opened."""
        store = self.makeStore()
        for n in range(3):
            store.append(message("lobby", f"m{n}", n=n))
        store.commit()
        self.assertEqual(
            self.recent(self.reopen(store), "lobby", 5), ["m0", "m1", "m2"]
        )

    def test_fileIsWALWithVersion(self) -> None:
        """The file is in WAL mode, at the schema version, with our application id."""
        self.makeStore()
        with sqlite3.connect(self.path) as db:
            self.assertEqual(db.execute("PRAGMA journal_mode").fetchone()[0], "wal")
            self.assertEqual(
                db.execute("PRAGMA user_version").fetchone()[0], SCHEMA_VERSION
            )
            self.assertEqual(
                db.execute("PRAGMA application_id").fetchone()[0], APPLICATION_ID
            )

    def test_commitIsOneTransaction(self) -> None:
        """
        Nothing is in the file before ``commit``; after it, every message of
        the turn is, in the order said.
        """
        store = self.makeStore()
        for n in range(4):
            store.append(message("lobby", f"m{n}", n=n))
        self.assertEqual(self.on_disk(), [])
        store.commit()
        self.assertEqual(self.on_disk(), ["m0", "m1", "m2", "m3"])

    def on_disk(self) -> list[str]:
        """What another connection reads from the file, in order."""
        db = sqlite3.connect(self.path)
        try:
            return [t for (t,) in db.execute("SELECT text FROM messages ORDER BY seq")]
        finally:
            db.close()

    def test_pruneInSmallSteps(self) -> None:
        """
        A backlog beyond the limits goes in steps of at most ``PRUNE_STEP``
        rows, oldest first, the newest ``per_room`` staying.
        """
        store = self.makeStore(per_room=10**6, max_age=3600)
        for n in range(PRUNE_STEP * 2 + 50):
            store.append(message("lobby", f"m{n}", EPOCH + n, n))
        store.commit()
        self.successResultOf(store.stop())
        # Reopened with a lower limit: a backlog, with nothing written since.
        store = self.makeStore(per_room=10, max_age=3600)
        steps = []
        while removed := self.successResultOf(store.prune()):
            steps.append(removed)
        self.assertEqual(steps, [PRUNE_STEP, PRUNE_STEP, 40])
        self.assertEqual(self.on_disk(), [f"m{n}" for n in range(440, 450)])
        self.clock.advance(3600 + 445)
        while self.successResultOf(store.prune()):
            pass
        # m445 was said exactly max_age ago: still kept.
        self.assertEqual(self.on_disk(), ["m445", "m446", "m447", "m448", "m449"])
        self.assertIn("445 pruned", store.status())

    def test_stepKeepsPaceWithWrites(self) -> None:
        """
        A step deletes as many messages as were written since the last one
        when that is more than ``PRUNE_STEP``: pruning keeps pace with a
        writer that commits more than a step's worth at a time.
        """
        store = self.makeStore(per_room=10)
        for n in range(PRUNE_STEP * 3):
            store.append(message("lobby", f"m{n}", EPOCH + n, n))
        store.commit()
        self.assertEqual(self.successResultOf(store.prune()), PRUNE_STEP * 3 - 10)
        for n in range(PRUNE_STEP * 3, PRUNE_STEP * 3 + 50):
            store.append(message("lobby", f"m{n}", EPOCH + n, n))
        store.commit()
        self.assertEqual(self.successResultOf(store.prune()), 50)
        self.assertEqual(len(self.on_disk()), 10)

    # Start-up errors: the file is left as it is.

    def assertRefused(self, reason: str) -> None:
        """Opening the file fails with a start-up error saying ``reason``."""
        before = self.path.read_bytes()
        store = SQLiteHistoryStore(str(self.path), self.clock)
        error = self.failureResultOf(store.start(), StoreError).value
        self.assertIn(reason, str(error))
        self.assertIn(str(self.path), str(error))
        self.assertEqual(self.path.read_bytes(), before)

    def test_corruptFile(self) -> None:
        """A file that is not a database is a start-up error, never overwritten."""
        self.path.write_bytes(b"this is not a database\n" * 200)
        self.assertRefused("not a database")

    def test_newerSchema(self) -> None:
        """A file of a newer schema version is a start-up error, left as it is."""
        self.successResultOf(self.makeStore().stop())
        with sqlite3.connect(self.path) as db:
            db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
        self.assertRefused(f"schema version {SCHEMA_VERSION + 1} is newer")

    def test_otherProgramsDatabase(self) -> None:
        """Another program's SQLite file is a start-up error, left as it is."""
        with sqlite3.connect(self.path) as db:
            db.execute("CREATE TABLE accounts (name TEXT)")
        self.assertRefused("not a chatservice history file")

    def test_missingDirectory(self) -> None:
        """A file in a directory that does not exist cannot be opened."""
        store = SQLiteHistoryStore(str(self.directory / "no" / "h.sqlite3"), self.clock)
        error = self.failureResultOf(store.start(), StoreError).value
        self.assertIn("cannot open", str(error))

    def schema_lines(self) -> list[str]:
        """The schema lines logged while the test's store is made."""
        from twisted.logger import ILogObserver, formatEvent, globalLogPublisher
        from zope.interface import provider

        lines: list[str] = []

        @provider(ILogObserver)
        def observe(event: dict[str, Any]) -> None:
            if "schema version" in str(event.get("log_format", "")):
                lines.append(formatEvent(event))

        globalLogPublisher.addObserver(observe)
        try:
            self.makeStore()
        finally:
            globalLogPublisher.removeObserver(observe)
        return lines

    def test_newFileLoggedCreated(self) -> None:
        """
        A new file gets one line saying it was created, at the current
        version (not one line per migration it was made through, the
        first saying version 1).
        """
        self.assertEqual(
            self.schema_lines(),
            [f"history: created {self.path} (schema version {SCHEMA_VERSION})"],
        )

    def test_migrationLogged(self) -> None:
        """Each migration of an older file is one line: the version reached."""
        with sqlite3.connect(self.path) as db:
            db.executescript(MIGRATIONS[0])
            db.execute("PRAGMA user_version = 1")
            db.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        db.close()
        self.assertEqual(
            self.schema_lines(),
            [f"history: {self.path} migrated to schema version 2"],
        )

    def test_migratesVersion1File(self) -> None:
        """
        A file of schema version 1 (made with that version's schema, from
        before notices) opens, is migrated to the current version, keeps
        its messages, private messages, topics and bans, and reads its
        messages back as what they were: none a notice.  What is said next
        is kept with its notice flag.
        """
        with sqlite3.connect(self.path) as db:
            db.executescript(MIGRATIONS[0])
            db.execute("PRAGMA user_version = 1")
            db.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            db.executemany(
                "INSERT INTO messages (id, room, name, at, nick, text, action, door) "
                "VALUES (?, 'lobby', 'Lobby', ?, 'bob', ?, ?, 'irc')",
                [("old.1", EPOCH, "said", 0), ("old.2", EPOCH + 1, "waved", 1)],
            )
            db.execute(
                "INSERT INTO private_messages (id, at, sender, recipient, text, door) "
                "VALUES ('old.3', ?, 'bob', 'alice', 'psst', 'chat')",
                (EPOCH,),
            )
            db.execute(
                "INSERT INTO rooms (key, name, topic, topic_by, topic_at) "
                "VALUES ('lobby', 'Lobby', 'welcome', 'bob', ?)",
                (EPOCH,),
            )
            db.execute(
                "INSERT INTO bans (key, target, until, reason, by) "
                "VALUES ('mallory', 'mallory', NULL, 'spam', 'root')"
            )
            columns = [c[1] for c in db.execute("PRAGMA table_info(messages)")]
            self.assertNotIn("notice", columns)
        db.close()
        store = self.makeStore(private=True)
        with sqlite3.connect(self.path) as db:
            self.assertEqual(db.execute("PRAGMA user_version").fetchone()[0], 2)
            self.assertEqual(
                db.execute("SELECT notice FROM private_messages").fetchall(), [(0,)]
            )
        db.close()
        self.assertEqual(SCHEMA_VERSION, 2)
        kept = self.successResultOf(store.recent("lobby", 10))
        self.assertEqual(
            [(m.id, m.room, m.nick, m.text, m.action, m.notice, m.at) for m in kept],
            [
                ("old.1", "Lobby", "bob", "said", False, False, EPOCH),
                ("old.2", "Lobby", "bob", "waved", True, False, EPOCH + 1),
            ],
        )
        self.assertEqual(
            store.saved().topics, (SavedTopic("Lobby", "welcome", "bob", EPOCH),)
        )
        self.assertEqual([b.target for b in store.saved().bans], ["mallory"])
        store.append(
            events.RoomMessage(
                "Lobby", "bob", "new", notice=True, id="n.1", at=EPOCH + 2
            )
        )
        store.append_private(
            events.PrivateMessage("bob", "alice", "hey", True, id="n.2", at=EPOCH + 2)
        )
        store.commit()
        again = self.reopen(store)
        self.assertEqual(
            [
                (m.text, m.notice)
                for m in self.successResultOf(again.recent("lobby", 10))
            ],
            [("said", False), ("waved", False), ("new", True)],
        )
        with sqlite3.connect(self.path) as db:
            self.assertEqual(
                db.execute(
                    "SELECT text, notice FROM private_messages ORDER BY seq"
                ).fetchall(),
                [("psst", 0), ("hey", 1)],
            )
        db.close()

    def test_migratesOlderFile(self) -> None:
        """An empty file (version 0) is given the schema, step by step."""
        self.path.touch()
        store = self.makeStore()
        store.append(message("lobby", "hi"))
        store.commit()
        self.assertEqual(self.on_disk(), ["hi"])


class SQLiteFaultTests(SynchronousTestCase):
    """
    Writing fails after start-up (disk full, locked, read-only): the store
    keeps the messages in order in a bounded queue, retries, tells /stats,
    and the chat goes on.
    """

    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(EPOCH)
        self.path = temp_dir(self) / "history.sqlite3"
        self.store = SQLiteHistoryStore(str(self.path), self.clock, retry_limit=5)
        self.successResultOf(self.store.start())
        self.addCleanup(self.store.stop)
        self.errors: list[str] = []
        #: The "writing again" lines, as logged.
        self.recovered: list[str] = []
        from twisted.logger import ILogObserver, formatEvent, globalLogPublisher
        from zope.interface import provider

        @provider(ILogObserver)
        def observe(event: dict[str, object]) -> None:
            text = str(event.get("log_format", ""))
            if event.get("log_level") is not None and text.startswith(
                "history: cannot write"
            ):
                self.errors.append(str(event["error"]))
            elif text.startswith("history: writing to"):
                self.recovered.append(formatEvent(event))

        globalLogPublisher.addObserver(observe)
        self.addCleanup(globalLogPublisher.removeObserver, observe)

    def texts(self) -> list[str]:
        db = sqlite3.connect(self.path)
        try:
            return [t for (t,) in db.execute("SELECT text FROM messages ORDER BY seq")]
        finally:
            db.close()

    def writing(self) -> sqlite3.Connection:
        """The connection the store writes with (its writer's, at once here)."""
        writer = self.store.writer
        assert isinstance(writer, SynchronousWriter) and writer.db is not None
        return writer.db

    def say(self, *texts: str) -> None:
        for text in texts:
            self.store.append(message("lobby", text))
        self.store.commit()

    def test_locked(self) -> None:
        """
        While another process holds a write transaction, nothing is written
        and the reactor does not wait; once it lets go, the retry writes
        everything waiting, in order.
        """
        other = sqlite3.connect(self.path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        self.say("a", "b")
        self.assertEqual(len(self.errors), 1)
        self.assertIn("locked", self.errors[0])
        self.assertIn("2 waiting", self.store.status())
        self.assertIn("writing fails: database is locked", self.store.status())
        self.assertEqual(self.recent(), ["a", "b"])
        self.say("c")
        self.assertEqual(len(self.errors), 1, "one log line, not one per turn")
        other.execute("ROLLBACK")
        other.close()
        self.clock.advance(RETRY_EVERY)
        self.assertEqual(self.texts(), ["a", "b", "c"])
        self.assertIn("0 waiting", self.store.status())
        self.assertNotIn("fails", self.store.status())
        self.assertEqual(
            self.recovered,
            [f"history: writing to {self.path} again; 3 waiting messages written"],
        )

    def recent(self) -> list[str]:
        return [m.text for m in self.successResultOf(self.store.recent("lobby", 50))]

    def test_diskFull(self) -> None:
        """
        A full disk (``PRAGMA max_page_count``) keeps at most the retry limit
        waiting, dropping the oldest and counting them; room again, the rest
        is written.
        """
        db = self.writing()
        pages = db.execute("PRAGMA page_count").fetchone()[0]
        db.execute(f"PRAGMA max_page_count = {pages}")
        self.say(*(f"m{n} " + "x" * 3000 for n in range(8)))
        self.assertEqual(len(self.errors), 1)
        self.assertIn("full", self.errors[0])
        self.assertIn("5 waiting, 3 dropped", self.store.status())
        db.execute("PRAGMA max_page_count = 1000000")
        self.clock.advance(RETRY_EVERY)
        self.assertEqual(
            [t.split()[0] for t in self.texts()], ["m3", "m4", "m5", "m6", "m7"]
        )

    def test_readOnly(self) -> None:
        """A file that cannot be written (read-only) is retried the same way."""
        db = self.writing()
        db.execute("PRAGMA query_only = 1")
        self.say("a")
        self.assertEqual(len(self.errors), 1)
        self.assertIn("readonly", self.errors[0])
        db.execute("PRAGMA query_only = 0")
        self.clock.advance(RETRY_EVERY)
        self.assertEqual(self.texts(), ["a"])
        self.assertEqual(
            self.recovered,
            [f"history: writing to {self.path} again; 1 waiting message written"],
        )

    def test_chatGoesOn(self) -> None:
        """
        With the file locked, members still get every message, and the
        operators' statistics say that messages wait.
        """
        from chatservice.doors.operations import Operations

        hub = Hub(clock=self.clock.seconds, store=self.store)
        member = FakeMember()
        session = hub.connect(member)
        self.successResultOf(hub.set_nick(session, "alice"))
        other = sqlite3.connect(self.path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        self.addCleanup(other.close)
        member.take()
        hub.say(session, "still here")
        self.assertEqual(
            member.take(), [events.RoomMessage("lobby", "alice", "still here")]
        )
        stats = Operations(hub).run("stats", "", "root")
        self.assertIn("1 waiting", stats[-1])
        self.assertTrue(stats[-1].startswith("history sqlite "))


class FailingCheckpointer(SynchronousWriter):
    """A checkpointer whose checkpoints fail while ``failing`` is set."""

    failing: sqlite3.Error | None = None

    def run(self, work: Any, wait: bool = False) -> Any:
        if self.failing is not None:
            return fail(self.failing)
        return super().run(work, wait)


class CheckpointFaultTests(SynchronousTestCase):
    """
    Checkpoints that fail (an I/O error, a file made read-only) are retried
    every second: one log line when they start failing, one when they
    work again, not one a second.
    """

    def test_oneLinePerFault(self) -> None:
        """
        Ten failed checkpoints in a row log one warning; the first that
        works logs one line; a new fault is logged again.
        """
        clock = Clock()
        checkpointer = FailingCheckpointer()
        path = temp_dir(self) / "history.sqlite3"
        store = SQLiteHistoryStore(
            str(path), clock, writer=SynchronousWriter(), checkpointer=checkpointer
        )
        self.successResultOf(store.start())
        self.addCleanup(store.stop)
        lines: list[str] = []
        from twisted.logger import ILogObserver, formatEvent, globalLogPublisher
        from zope.interface import provider

        @provider(ILogObserver)
        def observe(event: dict[str, Any]) -> None:
            if "checkpoint" in str(event.get("log_format", "")):
                lines.append(formatEvent(event))

        globalLogPublisher.addObserver(observe)
        self.addCleanup(globalLogPublisher.removeObserver, observe)
        checkpointer.failing = sqlite3.OperationalError("disk I/O error")
        for _ in range(10):
            clock.advance(CHECKPOINT_EVERY)
        self.assertEqual(len(lines), 1, lines)
        self.assertIn("disk I/O error", lines[0])
        self.assertIn(str(path), lines[0])
        checkpointer.failing = None
        for _ in range(3):
            clock.advance(CHECKPOINT_EVERY)
        self.assertEqual(len(lines), 2, lines)
        self.assertIn("work again", lines[1])
        checkpointer.failing = sqlite3.OperationalError("disk I/O error")
        for _ in range(3):
            clock.advance(CHECKPOINT_EVERY)
        self.assertEqual(len(lines), 3, lines)


class DurabilityTests(SynchronousTestCase):
    """What a member is shown is in the file first."""

    def test_storedBeforeDelivered(self) -> None:
        """
        When a room message reaches a member, another connection to the file
        already reads it: the turn's messages were committed before the
        backend delivered them.
        """
        clock = Clock()
        path = temp_dir(self) / "history.sqlite3"
        store = SQLiteHistoryStore(str(path), clock)
        self.successResultOf(store.start())
        self.addCleanup(store.stop)
        backend = LocalBackend(call_soon=end_of_turn(clock).soon)
        hub = Hub(clock=clock.seconds, backend=backend, store=store)
        seen_on_disk: list[list[str]] = []

        class Witness(FakeMember):
            def deliver(self, event: events.Event) -> None:
                if isinstance(event, events.RoomMessage | events.RoomMessages):
                    db = sqlite3.connect(path)
                    try:
                        seen_on_disk.append(
                            [t for (t,) in db.execute("SELECT text FROM messages")]
                        )
                    finally:
                        db.close()
                super().deliver(event)

        session = hub.connect(Witness())
        self.successResultOf(hub.set_nick(session, "alice"))
        hub.say(session, "one")
        hub.say(session, "two")
        self.assertEqual(seen_on_disk, [])
        clock.advance(0)
        self.assertEqual(seen_on_disk, [["one", "two"]])
