"""
Notices (``docs/protocol.rst``, ``docs/irc.rst``, ``docs/web.rst``) across
the doors and in history: the IRC, native and web doors on one hub and one
in-memory network, each driven by its behaviour-suite driver
(:mod:`tests.behaviour`), so that each client is read in its own door's
terms; then a notice replayed from the memory store, the SQLite store and
the Redis history store (a real ``redis-server``), over IRC
(``CHATHISTORY``), the native door (replay on join, ``/history``) and the
web door (replay on join).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from twisted.internet import reactor
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from chatservice.backends.local import LocalBackend
from chatservice.backends.redis import RedisBackend, parse_redis_url
from chatservice.backends.redis.history import HistoryCap, RedisHistoryStore
from chatservice.chat.hub import Hub
from chatservice.conn.limits import Limits
from chatservice.conn.turns import end_of_turn
from chatservice.doors.irc.message import Message
from chatservice.doors.irc.protocol import IRCFactory, IRCSettings
from chatservice.doors.native.protocol import ChatFactory, ChatSettings
from chatservice.doors.web.protocol import WebFactory, WebSettings
from chatservice.doors.web.site import WebSite
from chatservice.stores.memory import MemoryHistoryStore
from chatservice.stores.sqlite import SQLiteHistoryStore
from chatservice.testing import Network, turn_hub
from tests.redis_support import RedisServer, spin, stop_backend
from tests.support import temp_dir
from tests.test_irc_behaviour import IRCClient, IRCDriver
from tests.test_native_behaviour import NativeClient, NativeDriver
from tests.test_web_behaviour import WebClient, WebDriver

SERVER = "irc.test"
LIMITS = Limits(flood_rate=0)
#: A replayed line of the native door, its time taken out.
REPLAYED = re.compile(r"#(\S+) \[[^]]+\] (.*)")


class Doors:
    """The three chat doors on one hub, each with its behaviour-suite driver."""

    def __init__(self, hub: Hub, clock: Clock, network: Network) -> None:
        irc_settings = IRCSettings(server_name=SERVER, auto_join=(hub.default_room,))
        self.irc = IRCDriver(
            IRCFactory(hub, LIMITS, clock, settings=irc_settings), network
        )
        self.native = NativeDriver(
            ChatFactory(hub, LIMITS, clock, settings=ChatSettings(replay=50)), network
        )
        web = WebFactory(hub, LIMITS, clock, settings=WebSettings())
        self.web = WebDriver(WebSite(web), network)


class CrossDoorNoticeTests(SynchronousTestCase):
    """A notice sent on one door is a notice on every door."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(1000)
        self.hub = turn_hub(self.clock)
        self.network = Network(self.clock)
        self.doors = Doors(self.hub, self.clock, self.network)
        irc, native, web = self.doors.irc, self.doors.native, self.doors.web
        self.alice = self.registered(irc, "alice")
        self.bob = self.registered(irc, "bob")
        self.carol = self.registered(native, "carol")
        self.dave = self.registered(web, "dave")
        self.everyone: list[tuple[Any, Any]] = [
            (irc, self.alice),
            (irc, self.bob),
            (native, self.carol),
            (web, self.dave),
        ]
        self.seen()

    def registered(self, driver: Any, nick: str) -> Any:
        """A client of ``driver``'s door registered as ``nick`` (in the lobby)."""
        client = driver.connect()
        driver.register(client, nick)
        return client

    def seen(self) -> list[list[Any]]:
        """What each client received since last asked, in :attr:`everyone`'s order."""
        self.network.settle()
        return [driver.take(client) for driver, client in self.everyone]

    def test_ircNoticeToChannel(self) -> None:
        """
        An IRC user's NOTICE to a channel: the other IRC user gets a NOTICE
        (the sender too, with echo-message), the native user the native
        notice line, the web member a message with ``"notice": true``;
        none of them sees it as a plain message.
        """
        irc, native, web = self.doors.irc, self.doors.native, self.doors.web
        irc.notice(self.alice, "lobby", "deploy at five")
        alice, bob, carol, dave = self.seen()
        text = "deploy at five"
        for driver, seen in ((irc, alice), (irc, bob), (native, carol), (web, dave)):
            notices = [i for i in seen if driver.is_notice(i, "lobby", "alice", text)]
            plain = [i for i in seen if driver.is_message(i, "lobby", "alice", text)]
            self.assertEqual((len(notices), len(plain)), (1, 0), seen)
        self.assertEqual(carol, ["#lobby -alice- deploy at five"])
        self.assertEqual(
            [(m.command, m.prefix, m.params) for m in bob],
            [("NOTICE", f"alice!alice@{SERVER}", ["#lobby", "deploy at five"])],
        )
        self.assertEqual([(m["type"], m["notice"]) for m in dave], [("message", True)])

    def test_ircNoticeToNicks(self) -> None:
        """
        An IRC user's NOTICE to a native user and to a web member reaches
        each as a private notice, and its sender's copies as NOTICEs.
        """
        irc, native, web = self.doors.irc, self.doors.native, self.doors.web
        irc.private_notice(self.alice, "carol", "for carol")
        irc.private_notice(self.alice, "dave", "for dave")
        alice, bob, carol, dave = self.seen()
        self.assertEqual(carol, ["-alice- for carol"])
        self.assertTrue(
            native.is_private_notice(carol[0], "alice", "carol", "for carol")
        )
        text = "for dave"
        notices = [m for m in dave if web.is_private_notice(m, "alice", "dave", text)]
        plain = [m for m in dave if web.is_private(m, "alice", "dave", text)]
        self.assertEqual((len(notices), len(plain)), (1, 0), dave)
        self.assertEqual(
            [(m.command, m.params) for m in alice],
            [("NOTICE", ["carol", "for carol"]), ("NOTICE", ["dave", "for dave"])],
        )
        self.assertEqual(bob, [])

    def test_nativeAndWebNoticesReachIRC(self) -> None:
        """
        A native user's ``/notice`` and a web member's notice, to the
        channel and to an IRC user, reach the IRC user as NOTICEs.
        """
        native, web = self.doors.native, self.doors.web
        native.notice(self.carol, "lobby", "from the line")
        web.notice(self.dave, "lobby", "from the page")
        native.private_notice(self.carol, "bob", "line to you")
        web.private_notice(self.dave, "bob", "page to you")
        _, bob, carol, dave = self.seen()
        self.assertEqual(
            [(m.command, m.prefix.split("!")[0], m.params) for m in bob],
            [
                ("NOTICE", "carol", ["#lobby", "from the line"]),
                ("NOTICE", "dave", ["#lobby", "from the page"]),
                ("NOTICE", "carol", ["bob", "line to you"]),
                ("NOTICE", "dave", ["bob", "page to you"]),
            ],
        )
        self.assertEqual(
            carol,
            [
                "#lobby -carol- from the line",
                "#lobby -dave- from the page",
                "-> -bob- line to you",
            ],
        )
        self.assertEqual(
            [(m["type"], m["text"], m["notice"]) for m in dave],
            [
                ("message", "from the line", True),
                ("message", "from the page", True),
                ("private", "page to you", True),
            ],
        )


if TYPE_CHECKING:
    _TestCase = SynchronousTestCase
else:
    _TestCase = object


class NoticeReplayMixin(_TestCase):
    """
    What an IRC user said in a channel (a notice, a message, an action)
    replayed by every door, each as what it was; mix in with :meth:`makeHub`.
    """

    def makeHub(self) -> Hub:
        """The hub on :attr:`clock`, with the store under test."""
        raise NotImplementedError

    def setUp(self) -> None:
        super().setUp()
        self.clock = Clock()
        self.clock.advance(1_700_000_000)
        self.hub = self.makeHub()
        self.network = Network(self.clock)
        self.doors = Doors(self.hub, self.clock, self.network)
        irc = self.doors.irc
        self.alice = self.irc_client("alice")
        irc.send(
            self.alice,
            "JOIN #games",
            "NOTICE #games :heads up",
            "PRIVMSG #games :plain",
            "PRIVMSG #games :\x01ACTION waves\x01",
        )
        # With echo-message: her three lines back once they are said (and
        # kept: nothing is delivered ahead of the history's commit of it).
        self.collect(irc, self.alice, lambda seen: len(self.said(seen)) == 3)

    def wait(self, done: Callable[[], bool]) -> None:
        """Let the chat run until ``done()``: here all is done at once."""
        self.network.settle()
        self.assertTrue(done(), "not done once the network settled")

    def collect(
        self, driver: Any, client: Any, enough: Callable[[list[Any]], bool]
    ) -> list[Any]:
        """What ``client`` receives until it is ``enough``."""
        seen: list[Any] = []

        def done() -> bool:
            seen.extend(driver.take(client))
            return enough(seen)

        self.wait(done)
        return seen

    def irc_client(self, nick: str) -> IRCClient:
        """An IRC client with echo-message and chat history, registered."""
        irc = self.doors.irc
        client = irc.connect()
        client.registering = False
        irc.send(
            client,
            "CAP REQ :echo-message batch draft/chathistory server-time message-tags",
            f"NICK {nick}",
            f"USER {nick} 0 * :{nick}",
            "CAP END",
        )
        self.collect(irc, client, lambda seen: any(m.command == "001" for m in seen))
        return client

    def said(self, seen: list[Message]) -> list[tuple[str, list[str]]]:
        """The NOTICE and PRIVMSG lines of the channel among ``seen``."""
        return [
            (m.command, m.params)
            for m in seen
            if m.command in ("NOTICE", "PRIVMSG") and m.params[:1] == ["#games"]
        ]

    def test_ircChatHistory(self) -> None:
        """
        CHATHISTORY gives the notice back as a NOTICE, the message and the
        action as PRIVMSG, in the batch, with their tags.
        """
        irc = self.doors.irc
        carol = self.irc_client("carol")
        irc.send(carol, "CHATHISTORY LATEST #games * 10")
        seen = self.collect(irc, carol, _batch_ended)
        self.assertEqual(
            self.said(seen),
            [
                ("NOTICE", ["#games", "heads up"]),
                ("PRIVMSG", ["#games", "plain"]),
                ("PRIVMSG", ["#games", "\x01ACTION waves\x01"]),
            ],
        )
        for line in seen:
            if line.params[:1] != ["#games"]:
                continue  # the rest of carol's welcome, over Redis
            self.assertIn("batch", line.tags)
            self.assertIn("msgid", line.tags)
            self.assertEqual(line.prefix, f"alice!alice@{SERVER}")

    def test_nativeReplayAndHistory(self) -> None:
        """
        A native user who joins the channel's room gets the notice
        replayed as a notice line (``-alice-``), the message and the action
        as theirs; ``/history`` shows the same.
        """
        native = self.doors.native
        bob: NativeClient = native.connect()
        native.register(bob, "bob")
        native.join(bob, "games")
        seen = self.collect(native, bob, lambda seen: len(_replayed(seen)) == 3)
        expected = ["-alice- heads up", "<alice> plain", "* alice waves"]
        self.assertEqual(_replayed(seen), expected)
        native.send(bob, "/history #games")
        seen = self.collect(
            native, bob, lambda seen: any("end of history" in line for line in seen)
        )
        self.assertEqual(_replayed(seen), expected)

    def test_webReplay(self) -> None:
        """A web member who joins the room gets the notice with ``"notice": true``."""
        web = self.doors.web
        dave: WebClient = web.connect()
        web.register(dave, "dave")
        web.join(dave, "games")
        seen = self.collect(web, dave, lambda seen: bool(_history_of(seen, "games")))
        (history,) = _history_of(seen, "games")
        self.assertEqual(
            [(m["text"], m["action"], m["notice"]) for m in history["messages"]],
            [
                ("heads up", False, True),
                ("plain", False, False),
                ("waves", True, False),
            ],
        )


def _batch_ended(seen: list[Message]) -> bool:
    """Whether a batch was opened and then closed among ``seen``."""
    batches = [m.params[0] for m in seen if m.command == "BATCH"]
    opened = {b[1:] for b in batches if b.startswith("+")}
    return any(b.startswith("-") and b[1:] in opened for b in batches)


def _history_of(seen: list[Any], room: str) -> list[Any]:
    """The web door's history messages of ``room`` among ``seen``."""
    return [m for m in seen if m.get("type") == "history" and m.get("room") == room]


def _replayed(lines: list[str]) -> list[str]:
    """The native door's replayed lines of ``#games``, without their times."""
    found = [REPLAYED.fullmatch(line) for line in lines]
    return [m.group(2) for m in found if m is not None and m.group(1) == "games"]


class MemoryNoticeReplayTests(NoticeReplayMixin, SynchronousTestCase):
    """Notices replayed from the memory store."""

    def makeHub(self) -> Hub:
        backend = LocalBackend(call_soon=end_of_turn(self.clock).soon)
        store = MemoryHistoryStore(clock=self.clock.seconds)
        return Hub(clock=self.clock.seconds, backend=backend, store=store)


class SQLiteNoticeReplayTests(NoticeReplayMixin, SynchronousTestCase):
    """Notices replayed from the SQLite store's file."""

    def makeHub(self) -> Hub:
        store = SQLiteHistoryStore(str(temp_dir(self) / "h.sqlite3"), self.clock)
        self.successResultOf(store.start())
        self.addCleanup(store.stop)
        backend = LocalBackend(call_soon=end_of_turn(self.clock).soon)
        backend.set_barrier(store.commit)
        return Hub(clock=self.clock.seconds, backend=backend, store=store)


class RedisNoticeReplayTests(NoticeReplayMixin, SynchronousTestCase):
    """
    Notices replayed from the Redis history store, on a real
    ``redis-server``: the doors on the test's clock, Redis on the real
    reactor, which runs while a test waits.
    """

    def makeHub(self) -> Hub:
        self.redis = RedisServer(self)
        self.backend = RedisBackend(
            parse_redis_url(self.redis.url), reactor, end_of_turn(self.clock).soon
        )
        hub = Hub(clock=self.clock.seconds, backend=self.backend)
        self.backend.attach(hub)
        store = RedisHistoryStore(
            self.backend,
            MemoryHistoryStore(),
            HistoryCap(100, clock=self.clock.seconds),
        )
        # As tap does: the hub's store is the shared one.
        hub.store = store
        self.backend.set_barrier(store.commit)
        self.backend.start()
        self.addCleanup(stop_backend, self.backend)
        spin(lambda: self.backend.link.up and self.backend.idle)
        return hub

    def wait(self, done: Callable[[], bool]) -> None:
        def settled() -> bool:
            self.network.settle()
            return done()

        spin(settled)
