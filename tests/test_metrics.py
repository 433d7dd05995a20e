"""
Tests for :mod:`chatservice.metrics`: the counters as the doors and the hub
keep them, the Prometheus collector that reads them (in memory, on a fake
clock), ``/stats`` reading the same numbers, ``/healthz``, and the whole
``--metrics`` site scraped over a real loopback port while real clients
connect, chat, get refused and flood.
"""

from __future__ import annotations

import json
import re
import sqlite3
import urllib.error
import urllib.request
from collections.abc import Generator
from typing import Any

from prometheus_client.parser import text_string_to_metric_families
from twisted.cred.checkers import InMemoryUsernamePasswordDatabaseDontUse
from twisted.internet import reactor
from twisted.internet.defer import Deferred, gatherResults, inlineCallbacks
from twisted.internet.endpoints import (
    TCP4ClientEndpoint,
    connectProtocol,
    serverFromString,
)
from twisted.internet.task import Clock, deferLater
from twisted.internet.testing import MemoryReactor, MemoryReactorClock
from twisted.internet.threads import deferToThread
from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase, TestCase

from chatservice import tap
from chatservice.auth import Authenticator
from chatservice.auth.realm import make_portal
from chatservice.chat.hub import Hub
from chatservice.doors.native.protocol import ChatFactory
from chatservice.doors.operations import Operations
from chatservice.metrics.counters import Histogram
from chatservice.metrics.health import problems
from chatservice.metrics.web import MetricsSite, ReactorLag
from chatservice.service import ChatService, ListeningService
from chatservice.stores.memory import MemoryHistoryStore
from chatservice.stores.sqlite import SQLiteHistoryStore
from chatservice.testing import turn_hub
from tests.support import LOOPBACK, SOCKET_TIMEOUT, SOURCE_ROOT, temp_dir
from tests.test_chat_core import FakeMember
from tests.test_hostile import HostileTestCase, Peer
from tests.test_loopback import LineClient

#: A metric's samples: (name, sorted label pairs) -> value.
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(text: str) -> Samples:
    """Every sample of a Prometheus text page."""
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    """One sample's value (a KeyError names what is missing)."""
    return samples[(name, tuple(sorted(labels.items())))]


def chat_of(hub: Hub, *factories: Any) -> ChatService:
    """A chat service over ``hub`` whose doors are ``factories`` (not listening)."""
    chat = ChatService(hub)
    for factory in factories:
        endpoint = serverFromString(MemoryReactor(), "tcp:0")
        ListeningService("tcp:0", endpoint, factory).setServiceParent(chat)
    return chat


def scrape(site: MetricsSite) -> Samples:
    from prometheus_client import generate_latest

    return parse(generate_latest(site.registry).decode("utf-8"))


class HistogramTests(SynchronousTestCase):
    """The histogram of plain integers."""

    def test_cumulativeBuckets(self) -> None:
        """
        A value falls in the first bucket whose bound is at least the value
        (Prometheus' ``le``); the buckets shown are cumulative, ``+Inf``
        holds every observation, and the sum adds them up.
        """
        histogram = Histogram([0.1, 1.0])
        for observed in (0.05, 0.1, 0.5, 2.0):
            histogram.observe(observed)
        self.assertEqual(histogram.cumulative(), [("0.1", 2), ("1.0", 3), ("+Inf", 4)])
        self.assertEqual(histogram.count, 4)
        self.assertAlmostEqual(histogram.total, 2.65)

    def test_deliveryLatencyOncePerBatch(self) -> None:
        """
        The backend observes a room's batch once, by its oldest message:
        three messages said in one turn are one observation, of how long
        the first waited.
        """
        clock = Clock()
        clock.advance(100)
        hub = turn_hub(clock)
        session = hub.connect(FakeMember("alice"), "10.0.0.1")
        hub.set_nick(session, "alice")
        hub.say(session, "one")
        # Later in the same turn: the clock moves, no call runs.
        clock.rightNow += 0.003
        hub.say(session, "two")
        hub.say(session, "three")
        latency = hub.stats.delivery_latency
        self.assertEqual(latency.count, 0)
        clock.advance(0)
        self.assertEqual(latency.count, 1)
        self.assertAlmostEqual(latency.total, 0.003)

    def test_reactorLag(self) -> None:
        """
        The lag probe observes how late its timer ran: on time, nothing;
        behind a turn that kept the reactor busy, the delay.
        """
        clock = Clock()
        lag = ReactorLag(clock, interval=0.5)
        lag.startService()
        self.addCleanup(lag.stopService)
        clock.advance(0.5)
        self.assertEqual((lag.histogram.count, lag.histogram.total), (1, 0.0))
        clock.advance(2.0)  # due at 1.0, run at 2.5
        self.assertEqual((lag.histogram.count, lag.histogram.total), (2, 1.5))


class CollectedTests(HostileTestCase):
    """The collector reads the doors' and the hub's counters, and /stats too."""

    def site(self, factory: ChatFactory, **chat: Any) -> MetricsSite:
        self.service = chat_of(self.hub, factory)
        if "authenticator" in chat:
            self.service.authenticator = chat["authenticator"]
        return MetricsSite(self.service)

    def test_connectAndChat(self) -> None:
        """
        Two clients register and one speaks: the scrape shows them open and
        accepted on the chat door, registered, the room, the message, its
        two deliveries, and the bytes both ways.
        """
        factory = self.chat()
        site = self.site(factory)
        alice, bob = self.room(factory, "alice", "bob")
        alice.send("hello")
        samples = scrape(site)
        self.assertEqual(value(samples, "chatservice_connections_open", door="chat"), 2)
        self.assertEqual(
            value(samples, "chatservice_connections_accepted_total", door="chat"), 2
        )
        self.assertEqual(value(samples, "chatservice_chat_registered"), 2)
        self.assertEqual(value(samples, "chatservice_chat_rooms"), 1)
        self.assertEqual(value(samples, "chatservice_room_messages_total"), 1)
        deliveries = self.hub.stats.deliveries
        self.assertEqual(value(samples, "chatservice_deliveries_total"), deliveries)
        self.assertEqual(
            value(samples, "chatservice_received_bytes_total", door="chat"),
            len(b"alice\r\nbob\r\nhello\r\n"),
        )
        sent = alice.transport.value() + bob.transport.value()
        self.assertGreater(
            value(samples, "chatservice_sent_bytes_total", door="chat"), len(sent)
        )
        self.assertEqual(
            value(samples, "chatservice_delivery_latency_seconds_count"), 1
        )
        bob.lose()
        samples = scrape(site)
        self.assertEqual(value(samples, "chatservice_connections_open", door="chat"), 1)
        self.assertEqual(value(samples, "chatservice_chat_registered"), 1)

    def test_refusedByReason(self) -> None:
        """
        A second connection from one address past ``max_per_address`` is
        refused for its address by the door; a banned address is refused by
        the hub; each is counted under its own reason.
        """
        factory = self.chat(max_per_address=1)
        site = self.site(factory)
        Peer(factory, "10.0.0.1")
        Peer(factory, "10.0.0.1")
        self.hub.ban("10.0.0.9", None, "op")
        Peer(factory, "10.0.0.9")
        samples = scrape(site)
        refused = "chatservice_connections_refused_total"
        self.assertEqual(value(samples, refused, door="chat", reason="address"), 1)
        self.assertEqual(value(samples, refused, door="chat", reason="full"), 0)
        self.assertEqual(
            value(samples, "chatservice_chat_refused_total", reason="banned"), 1
        )
        self.assertEqual(value(samples, "chatservice_bans_active"), 1)

    def test_strangersEvicted(self) -> None:
        """
        Past the strangers' budget one that waited longest is closed,
        counted under ``strangers``.
        """
        factory = self.chat(max_strangers=1)
        site = self.site(factory)
        first = Peer(factory, "10.0.0.1")
        Peer(factory, "10.0.0.2")
        # Newcomers are spared until they have had a turn to be read.
        self.clock.advance(factory.recount_delay)
        self.assertTrue(first.closing)
        samples = scrape(site)
        self.assertEqual(
            value(
                samples,
                "chatservice_connections_refused_total",
                door="chat",
                reason="strangers",
            ),
            1,
        )
        self.assertEqual(
            value(samples, "chatservice_connections_registering", door="chat"), 1
        )

    def test_floodHeldThenCut(self) -> None:
        """
        A client that floods is held once (however many lines wait), and
        cut once it has flooded for ``flood_disconnect`` seconds.
        """
        factory = self.chat(flood_burst=10, flood_rate=4, flood_disconnect=5)
        site = self.site(factory)
        (flooder,) = self.room(factory, "flooder")
        self.clock.advance(10)
        flooder.send(*[f"m{index}" for index in range(100)])
        samples = scrape(site)
        self.assertEqual(
            value(samples, "chatservice_flood_holds_total", door="chat"), 1
        )
        self.assertEqual(
            value(samples, "chatservice_flood_disconnects_total", door="chat"), 0
        )
        for _ in range(30):
            self.clock.advance(0.25)
        self.assertTrue(flooder.closing)
        samples = scrape(site)
        self.assertEqual(
            value(samples, "chatservice_flood_disconnects_total", door="chat"), 1
        )

    def test_sendQueueCutoff(self) -> None:
        """A member that does not read is cut off once, and counted."""
        factory = self.chat(max_send_queue=200, flood_rate=0)
        site = self.site(factory)
        lazy, talker = self.room(factory, "lazy", "talker")
        lazy.protocol.pauseProducing()
        for _ in range(5):
            talker.send("m" * 80)
        self.assertTrue(lazy.hostile.aborted)
        samples = scrape(site)
        self.assertEqual(
            value(samples, "chatservice_send_queue_cutoffs_total", door="chat"), 1
        )

    def test_kicksBansAndLogins(self) -> None:
        """
        Kicks and bans come from the hub's counters; failed logins from the
        authenticator's, by reason.
        """
        portal = make_portal(InMemoryUsernamePasswordDatabaseDontUse(root=b"right"))
        authenticator = Authenticator(portal, self.clock)
        factory = self.chat()
        site = self.site(factory, authenticator=authenticator)
        self.room(factory, "alice", "bob")
        self.hub.kick("alice", "op")
        self.hub.ban("bob", 60, "op")
        self.failureResultOf(authenticator.login("root", "wrong", "10.0.0.1"))
        samples = scrape(site)
        self.assertEqual(value(samples, "chatservice_kicks_total"), 2)
        self.assertEqual(value(samples, "chatservice_bans_total"), 1)
        self.assertEqual(
            value(samples, "chatservice_login_failures_total", reason="refused"), 1
        )
        self.assertEqual(
            value(samples, "chatservice_login_failures_total", reason="throttled"), 0
        )

    def test_statsReadsTheSameCounters(self) -> None:
        """
        ``/stats`` and the scrape show the same numbers: the door's line
        (open, accepted, refused, bytes, flood, cut-offs) and the hub's
        (refused, messages, deliveries), from one set of counters.
        """
        factory = self.chat(max_per_address=2)
        site = self.site(factory)
        alice, _bob = self.room(factory, "alice", "bob")
        Peer(factory, "10.0.0.1")  # the third from 10.0.0.1: refused
        alice.send("hello")
        operations = Operations(self.hub, doors=self.service.door_factories)
        lines = operations.run("stats", "", "op")
        samples = scrape(site)
        counter = "chatservice_{}_total".format
        self.assertIn(
            f"messages {value(samples, counter('room_messages')):.0f} to rooms, "
            f"{value(samples, counter('private_messages')):.0f} private, "
            f"{value(samples, counter('deliveries')):.0f} deliveries",
            lines,
        )
        door = "chat"
        self.assertIn(
            f"door chat: "
            f"{value(samples, 'chatservice_connections_open', door=door):.0f} open, "
            f"{value(samples, counter('connections_accepted'), door=door):.0f} "
            "accepted, refused 0 full "
            f"{value(samples, counter('connections_refused'), door=door, reason='address'):.0f}"  # noqa: E501
            " address 0 strangers, bytes "
            f"{value(samples, counter('received_bytes'), door=door):.0f} in "
            f"{value(samples, counter('sent_bytes'), door=door):.0f} out, "
            "flood 0 held 0 cut, 0 send-queue cut-offs",
            lines,
        )


def exported_names(samples: Samples) -> set[str]:
    """The metric names of a scrape, without the prefix and histogram suffixes."""
    names = set()
    for name, _ in samples:
        if name.startswith("chatservice_"):
            names.add(re.sub(r"_(bucket|count|sum)$", "", name[len("chatservice_") :]))
    return names


class DocumentedTests(HostileTestCase):
    """docs/metrics.rst and the Grafana dashboard name what is exported."""

    def everything(self) -> set[str]:
        """Every metric a chat with every part (store, logins, lag) exports."""
        portal = make_portal(InMemoryUsernamePasswordDatabaseDontUse())
        factory = self.chat()
        self.hub.store = MemoryHistoryStore()
        chat = chat_of(self.hub, factory)
        chat.authenticator = Authenticator(portal, self.clock)
        return exported_names(
            scrape(MetricsSite(chat, ReactorLag(self.clock).histogram))
        )

    def test_everyMetricDocumented(self) -> None:
        """
        Each metric exported is a row of docs/metrics.rst's tables (name,
        type), and each row is a metric exported: neither is stale.
        """
        text = (SOURCE_ROOT / "docs" / "metrics.rst").read_text(encoding="utf-8")
        rows = re.findall(r"(?m)^``([a-z_]+)``\s+(?:counter|gauge|histogram)\b", text)
        exported = self.everything()
        self.assertGreater(len(exported), 30)
        self.assertEqual(sorted(exported - set(rows)), [], "not documented")
        self.assertEqual(sorted(set(rows) - exported), [], "documented, not exported")

    def test_dashboardQueriesExist(self) -> None:
        """Every metric the Grafana dashboard queries is exported."""
        path = SOURCE_ROOT / "contrib" / "grafana-chatservice.json"
        dashboard = json.loads(path.read_text(encoding="utf-8"))
        queried = {
            re.sub(r"_(bucket|count|sum)$", "", name)
            for panel in dashboard["panels"]
            for target in panel["targets"]
            for name in re.findall(r"chatservice_([a-z_]+)", target["expr"])
        }
        self.assertGreater(len(queried), 10)
        self.assertEqual(sorted(queried - self.everything()), [])


class HealthTests(SynchronousTestCase):
    """What ``/healthz`` reports, from the parts' own health."""

    def test_notListening(self) -> None:
        """A door that does not listen (not started, stopped) is a reason."""
        hub = Hub()
        chat = chat_of(hub, ChatFactory(hub, clock=Clock()))
        self.assertEqual(problems(chat), ["chat on tcp:0: not listening"])

    def test_storeCannotWrite(self) -> None:
        """
        A history store that cannot write (another process holds the
        file's lock) is a reason naming the error; once it writes again,
        it is not.
        """
        clock = Clock()
        path = temp_dir(self) / "history.sqlite3"
        store = SQLiteHistoryStore(str(path), clock)
        self.successResultOf(store.start())
        self.addCleanup(store.stop)
        chat = ChatService(Hub(store=store))
        self.assertEqual(problems(chat), [])
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        session = chat.hub.connect(FakeMember("alice"), "10.0.0.1")
        chat.hub.set_nick(session, "alice")
        chat.hub.say(session, "hello")
        [reason] = problems(chat)
        self.assertIn("history: cannot write", reason)
        self.assertIn("locked", reason)
        other.execute("ROLLBACK")
        other.close()
        clock.advance(60)
        self.assertEqual(problems(chat), [])

    def test_brokenCheckIsAReason(self) -> None:
        """A health check that raises is reported as a reason, not raised."""

        class Broken(MemoryHistoryStore):
            def health(self) -> str | None:
                raise RuntimeError("boom")

        chat = ChatService(Hub(store=Broken()))
        [reason] = problems(chat)
        self.assertIn("history: health check failed", reason)
        self.assertIn("boom", reason)


class OptionsTests(SynchronousTestCase):
    """``--metrics`` on the command line."""

    def parse(self, *arguments: str) -> tap.Options:
        options = tap.Options()
        options.parseOptions(["--history", "none", *arguments])
        return options

    def test_offByDefault(self) -> None:
        """Without ``--metrics`` nothing serves metrics."""
        chat = tap.makeService(self.parse(), MemoryReactorClock())
        assert isinstance(chat, ChatService)
        self.assertNotIn(
            "metrics", [listener.factory.name for listener in chat.listeners()]
        )

    def test_loopbackOnly(self) -> None:
        """
        An endpoint beyond loopback is refused unless
        ``--metrics-allow-remote``; a loopback one is taken.
        """
        error = self.assertRaises(usage.UsageError, self.parse, "--metrics", "tcp:9100")
        self.assertIn("--metrics-allow-remote", str(error))
        options = self.parse("--metrics", "tcp:9100", "--metrics-allow-remote")
        self.assertEqual(options.metrics, "tcp:9100")
        options = self.parse("--metrics", "tcp:9100:interface=127.0.0.1")
        self.assertEqual(options.metrics, "tcp:9100:interface=127.0.0.1")

    def test_badEndpoint(self) -> None:
        """An endpoint Twisted cannot parse is a usage error naming it."""
        error = self.assertRaises(usage.UsageError, self.parse, "--metrics", "nope:1")
        self.assertIn("--metrics 'nope:1'", str(error))


def get(port: int, path: str) -> tuple[int, str]:
    """GET a page of the metrics site with urllib (in a thread): code and text."""
    url = f"http://{LOOPBACK}:{port}{path}"
    try:
        with urllib.request.urlopen(url, timeout=SOCKET_TIMEOUT) as answer:
            return answer.status, answer.read().decode("utf-8")
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.read().decode("utf-8")


def fetch(port: int, path: str) -> Deferred[tuple[int, str]]:
    """:func:`get`, off the reactor's thread."""
    return deferToThread(get, port, path)


class LoopbackTests(TestCase):
    """``--metrics`` on a real loopback port, with real clients."""

    timeout = 30

    def setUp(self) -> None:
        self.clients: list[LineClient] = []
        self.path = temp_dir(self) / "history.sqlite3"
        options = tap.Options()
        any_port = f"tcp:0:interface={LOOPBACK}"
        options.parseOptions(
            [
                "--echo=none",
                "--upper=none",
                f"--chat={any_port}",
                f"--irc={any_port}",
                f"--metrics={any_port}",
                f"--history=sqlite:{self.path}",
                "--max-per-address=2",
                "--flood-burst=2",
                "--flood-rate=20",
                "--flood-disconnect=0",
            ]
        )
        chat = tap.makeService(options, reactor)
        assert isinstance(chat, ChatService)
        self.chat = chat
        chat.startService()
        self.addCleanup(self._stop)

    def _stop(self) -> Deferred[Any]:
        for client in self.clients:
            if client.transport is not None and not client.lost.called:
                client.transport.loseConnection()
        lost = gatherResults([client.lost for client in self.clients])
        return lost.addCallback(lambda _: self.chat.stopService())

    def port(self, door: str) -> int:
        for listener in self.chat.listeners():
            if listener.factory.name == door and listener.port is not None:
                number: int = listener.port.getHost().port  # type: ignore[attr-defined]
                return number
        raise AssertionError(f"{door} does not listen")

    @inlineCallbacks
    def connect(self, door: str = "chat") -> Generator[Deferred[Any], Any, LineClient]:
        client = LineClient()
        endpoint = TCP4ClientEndpoint(reactor, LOOPBACK, self.port(door))
        yield connectProtocol(endpoint, client)
        self.clients.append(client)
        return client

    @inlineCallbacks
    def scrape(self) -> Generator[Deferred[Any], Any, Samples]:
        code, text = yield fetch(self.port("metrics"), "/metrics")
        self.assertEqual(code, 200)
        return parse(text)

    @inlineCallbacks
    def test_valuesMove(self) -> Generator[Deferred[Any], Any, None]:
        """
        Scraped before and after: a client that registers and chats moves
        the open, accepted, registered, message, delivery and byte
        counters; a third connection from the address is refused; a flooder
        is held and cut.
        """
        before = yield self.scrape()
        self.assertEqual(value(before, "chatservice_connections_open", door="chat"), 0)
        alice = yield self.connect()
        alice.transport.write(b"alice\r\n")
        yield alice.waitFor(b"you are alice")
        alice.transport.write(b"hello\r\n")
        yield alice.waitFor(b"<alice> hello")
        after = yield self.scrape()
        self.assertEqual(value(after, "chatservice_connections_open", door="chat"), 1)
        self.assertEqual(
            value(after, "chatservice_connections_accepted_total", door="chat"), 1
        )
        self.assertEqual(value(after, "chatservice_chat_registered"), 1)
        self.assertEqual(value(after, "chatservice_room_messages_total"), 1)
        self.assertEqual(value(after, "chatservice_history_written_total"), 1)
        self.assertEqual(value(after, "chatservice_history_up"), 1)
        self.assertGreater(value(after, "chatservice_deliveries_total"), 0)
        self.assertEqual(
            value(after, "chatservice_received_bytes_total", door="chat"), 14
        )
        self.assertGreater(value(after, "chatservice_sent_bytes_total", door="chat"), 0)
        self.assertEqual(
            value(
                after,
                "chatservice_door_listening",
                door="irc",
                endpoint=f"tcp:0:interface={LOOPBACK}",
            ),
            1,
        )
        yield self.connect()
        refused = yield self.connect()
        yield refused.lost
        flooder = yield self.connect("irc")
        flooder.transport.write(
            b"NICK flood\r\nUSER f 0 * :f\r\n"
            + b"".join(b"PRIVMSG #x :%d\r\n" % n for n in range(50))
        )
        yield flooder.lost
        final = yield self.scrape()
        self.assertEqual(
            value(
                final,
                "chatservice_connections_refused_total",
                door="chat",
                reason="address",
            ),
            1,
        )
        self.assertEqual(value(final, "chatservice_flood_holds_total", door="irc"), 1)
        self.assertEqual(
            value(final, "chatservice_flood_disconnects_total", door="irc"), 1
        )

    @inlineCallbacks
    def test_healthz(self) -> Generator[Deferred[Any], Any, None]:
        """
        ``/healthz`` is 200 ``ok`` while every door listens and the history
        writes; 503 naming the reason while the history file is locked by
        another process, and while a door has stopped listening.
        """
        code, text = yield fetch(self.port("metrics"), "/healthz")
        self.assertEqual((code, text), (200, "ok\n"))
        other = sqlite3.connect(self.path, isolation_level=None)
        self.addCleanup(other.close)
        other.execute("BEGIN IMMEDIATE")
        alice = yield self.connect()
        alice.transport.write(b"alice\r\nhello\r\n")
        yield alice.waitFor(b"<alice> hello")
        code, text = yield fetch(self.port("metrics"), "/healthz")
        self.assertEqual(code, 503)
        self.assertIn("history: cannot write", text)
        self.assertIn("locked", text)
        other.execute("ROLLBACK")
        [irc] = [s for s in self.chat.listeners() if s.factory.name == "irc"]
        yield irc.stopService()
        yield deferLater(reactor, 0, lambda: None)
        code, text = yield fetch(self.port("metrics"), "/healthz")
        self.assertEqual(code, 503)
        self.assertIn(f"irc on tcp:0:interface={LOOPBACK}: not listening", text)
