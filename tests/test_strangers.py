"""
The strangers' budget (issue 12): connections that have not registered (no
nickname, no login, no first line) draw on their own budget with a
registration deadline that what they send does not extend; when the budget
is full the one that waited longest makes room, so that connections that
never register cannot lock anyone out.  On a fake clock, with the hostile
tests' in-memory peers.
"""

from __future__ import annotations

from typing import cast

from twisted.logger import ILogObserver, LogEvent, globalLogPublisher

from chatservice.chat.model import ChatConfig
from chatservice.doors.admin import AdminFactory
from chatservice.doors.operations import Operations
from chatservice.testing import FakeAuthenticator
from tests.test_hostile import HostileTestCase, Peer

EVICTED = (
    "!!! too many connections are registering; closing one of those that "
    "waited longest (yours): please connect again"
)


class BudgetTests(HostileTestCase):
    """The budget itself, on the echo service and the chat."""

    def test_oldestEvicted(self) -> None:
        """
        With the budget full, a newcomer is admitted and the stranger that
        waited longest is told why and closed; the others stay.
        """
        factory = self.echo(max_strangers=3)
        strangers = [Peer(factory, f"192.0.2.{n}") for n in range(3)]
        self.clock.advance(1)
        newcomer = Peer(factory, "192.0.2.9")
        self.clock.advance(0)  # the turn ends: back to the budget
        self.assertFalse(newcomer.closing)
        self.assertTrue(strangers[0].closing)
        self.assertEqual(strangers[0].take(), [EVICTED])
        self.assertEqual([p.closing for p in strangers[1:]], [False, False])
        self.assertEqual(len(factory.strangers), 3)
        newcomer.send("hello")
        self.assertEqual(newcomer.take(), ["hello"])

    def test_registeredLeaveTheBudget(self) -> None:
        """
        A client that sent its first line is registered: it no longer
        counts against the budget, and strangers coming after it cannot
        evict it.
        """
        factory = self.echo(max_strangers=2)
        first = Peer(factory, "192.0.2.1")
        first.send("hi")
        self.assertEqual(first.take(), ["hi"])
        self.assertEqual(factory.strangers, {})
        storm = [Peer(factory, f"198.51.100.{n}") for n in range(10)]
        # A burst in one turn is counted once it has had a turn to be read.
        self.clock.advance(factory.recount_delay)
        self.assertFalse(first.closing)
        self.assertEqual(sum(not p.closing for p in storm), 2)
        first.send("still here")
        self.assertEqual(first.take(), ["still here"])

    def test_trickleStormCannotLockOut(self) -> None:
        """
        Hundreds of connections that trickle bytes and never register, from
        many addresses, under the per-address limit: a fresh chat client
        still gets in and chats, every time.
        """
        factory = self.chat(max_strangers=50, max_per_address=5)
        watcher = self.register(factory, "watcher", "203.0.113.1")
        for wave in range(4):
            for n in range(100):
                stormer = Peer(factory, f"198.51.{wave}.{n // 5}")
                stormer.feed(b"x")  # a few bytes, never a line
            fresh = Peer(factory, f"203.0.113.{10 + wave}")
            fresh.send(f"fresh{wave}", "hello")
            self.assertEqual(
                fresh.take()[-2:],
                [
                    f"--- you are fresh{wave}; you are in #lobby",
                    f"#lobby <fresh{wave}> hello",
                ],
            )
            self.assertIn(f"#lobby <fresh{wave}> hello", watcher.take())
        self.assertLessEqual(len(factory.strangers), 50)

    def test_zeroMeansNoBudget(self) -> None:
        """``max_strangers`` 0: any number of strangers is admitted."""
        factory = self.echo(max_strangers=0)
        peers = [Peer(factory, f"192.0.2.{n}") for n in range(300)]
        self.assertFalse(any(p.closing for p in peers))

    def test_evictionsLoggedRateLimited(self) -> None:
        """
        Evictions are logged, but at most one line per 10 s per service,
        which says how many more there were since the last line.
        """
        events: list[LogEvent] = []
        observer = cast(ILogObserver, events.append)
        globalLogPublisher.addObserver(observer)
        self.addCleanup(globalLogPublisher.removeObserver, observer)
        factory = self.echo(max_strangers=1)
        for n in range(20):
            Peer(factory, f"192.0.2.{n}")
            self.clock.advance(0)  # each in a turn of its own
        self.clock.advance(10)
        Peer(factory, "192.0.2.99")
        evicted = [e for e in events if e.get("what") == "evicted"]
        self.assertEqual([e["count"] for e in evicted], [1, 19])
        self.assertIn("18 more", evicted[1]["more"])


class HubRefusalLogTests(HostileTestCase):
    """The chat's own refusals (the hub's) are logged like the door's."""

    def test_fullChatLogged(self) -> None:
        """
        A chat full of registered clients refuses a newcomer at connect,
        and one that was still choosing its nickname when the last place
        went: both are logged as refusals (they were not), at most a line
        each 10 s, counting the others.
        """
        events: list[LogEvent] = []
        observer = cast(ILogObserver, events.append)
        globalLogPublisher.addObserver(observer)
        self.addCleanup(globalLogPublisher.removeObserver, observer)
        factory = self.chat(ChatConfig(max_clients=1))
        late = Peer(factory, "192.0.2.2")
        self.register(factory, "first", "192.0.2.1")
        refused = Peer(factory, "192.0.2.3")
        self.assertTrue(refused.closing)
        self.clock.advance(10)
        late.send("late")
        self.assertTrue(late.closing)
        lines = [e for e in events if e.get("what") == "refused"]
        self.assertEqual([e["count"] for e in lines], [1, 1], lines)
        self.assertEqual(
            [str(e["reason"]) for e in lines], ["server full (1 client)"] * 2
        )


class DeadlineTests(HostileTestCase):
    """The registration deadline, which input does not extend."""

    def test_echoTrickleDoesNotExtend(self) -> None:
        """
        An echo client that sends a byte a second but never a whole line is
        closed at the deadline, counted from its connection.
        """
        factory = self.echo(registration_timeout=20, line_timeout=0)
        peer = Peer(factory)
        for _ in range(19):
            peer.feed(b"x")
            self.clock.advance(1)
        self.assertFalse(peer.closing)
        self.clock.advance(1)
        self.assertEqual(peer.take(), ["!!! no line within 20 s; closing connection"])
        self.assertTrue(peer.closing)

    def test_echoRegisteredStays(self) -> None:
        """An echo client that sent a line in time is not closed by the deadline."""
        factory = self.echo(registration_timeout=20)
        peer = Peer(factory)
        peer.send("hi")
        self.clock.advance(100)
        self.assertFalse(peer.closing)

    def test_chatDeadline(self) -> None:
        """
        A chat client sending invalid nicknames is still closed at the
        deadline; one that registered in time stays.
        """
        factory = self.chat(nick_timeout=20, idle_timeout=600)
        registered = self.register(factory, "alice", "192.0.2.1")
        stranger = Peer(factory, "192.0.2.2")
        stranger.take()
        for _ in range(19):
            stranger.send("not a nick!")
            self.clock.advance(1)
        stranger.take()
        self.assertFalse(stranger.closing)
        self.clock.advance(1)
        self.assertEqual(
            stranger.take(), ["!!! no nickname chosen within 20 s; closing"]
        )
        self.assertFalse(registered.closing)

    def test_oneTimerForAllStrangers(self) -> None:
        """
        However many strangers wait, one timer watches their deadlines, and
        none is left once they are gone.
        """
        factory = self.echo(registration_timeout=20, idle_timeout=0)
        peers = [Peer(factory, f"192.0.2.{n}") for n in range(50)]
        self.clock.advance(0)  # the turn ends
        self.assertEqual(len(self.clock.getDelayedCalls()), 1)
        for peer in peers:
            peer.lose()
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_adminLoginRegisters(self) -> None:
        """
        An admin console that logs in in time stays; one that does not is
        closed at the deadline with a line saying so.
        """
        authenticator = FakeAuthenticator()
        factory = AdminFactory(
            Operations(self.chat(ChatConfig()).hub),
            authenticator,
            self.limits(registration_timeout=20),
            self.clock,
        )
        admin = Peer(factory, "127.0.0.1")
        admin.send("login root s3cret")
        idle = Peer(factory, "127.0.0.1")
        self.clock.advance(20)
        self.assertFalse(admin.closing)
        self.assertEqual(idle.take()[-1], "!!! not logged in within 20 s; closing")
        self.assertTrue(idle.closing)
