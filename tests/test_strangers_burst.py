"""
The strangers' budget under bursts (issue 12): Twisted accepts many
connections in one reactor turn before it reads any of them, so a
newcomer is not evicted before it has had a turn to be read, nor in the
turn it sends a complete line; whom to evict is chosen at random among the
older half of the others, and what a stranger trickles does not spare it.
On a fake clock, with the hostile tests' in-memory peers: each
``clock.advance(0)`` ends a reactor turn.
"""

from __future__ import annotations

import random

from chatservice.conn.factory import ConnectionFactory
from tests.test_hostile import HostileTestCase, Peer


class BurstTests(HostileTestCase):
    """A burst bigger than the budget, in one turn."""

    def test_burstInOneTurnSparesWaitingFirstLines(self) -> None:
        """
        Forty stormers and five fresh chat clients accepted in one turn,
        with a budget of ten: nobody is evicted in that turn, nor in the
        next one (where the fresh clients' nicknames, already waiting, are
        read), while more stormers arrive; then the fresh clients are
        registered and chat, and the strangers are back to the budget.
        """
        factory = self.chat(max_strangers=10, max_per_address=0)
        watcher = self.register(factory, "watcher", "203.0.113.1")
        fresh: list[Peer] = []
        storm: list[Peer] = []
        for n in range(40):
            storm.append(Peer(factory, f"198.51.100.{n}"))
            if n % 8 == 7:
                fresh.append(Peer(factory, f"203.0.113.{10 + n}"))
        self.assertFalse(any(p.closing for p in storm + fresh))
        self.clock.advance(0)  # the turn of the accepts ends
        # The next turn: the reactor reads the fresh clients' first lines,
        # and accepts more of the storm meanwhile.
        for number, peer in enumerate(fresh):
            storm.append(Peer(factory, f"198.51.101.{number}"))
            peer.protocol.dataReceived(f"fresh{number}\r\n".encode())
        self.assertFalse(any(p.closing for p in fresh))
        self.clock.advance(factory.recount_delay)
        for number, peer in enumerate(fresh):
            self.assertFalse(peer.closing)
            self.assertIn(f"--- you are fresh{number}; you are in #lobby", peer.take())
            peer.send("hello")
        self.assertEqual(len(factory.strangers), 10)
        self.assertEqual(sum(not p.closing for p in storm), 10)
        said = watcher.take()
        for number in range(len(fresh)):
            self.assertIn(f"#lobby <fresh{number}> hello", said)

    def test_idleBurstTrimmed(self) -> None:
        """
        A burst over the budget with nothing after it is trimmed to the
        budget once it has had a turn to be read (``recount_delay``).
        """
        factory = self.echo(max_strangers=5)
        peers = [Peer(factory, f"192.0.2.{n}") for n in range(20)]
        self.clock.advance(0)
        self.assertEqual(len(factory.strangers), 20)
        self.clock.advance(ConnectionFactory.recount_delay)
        self.assertEqual(len(factory.strangers), 5)
        self.assertEqual(sum(not p.closing for p in peers), 5)
        self.assertEqual(factory.counters.evicted, 15)


class ChoiceTests(HostileTestCase):
    """Whom the budget evicts once the newcomers have had their turn."""

    def test_tricklingDoesNotSpare(self) -> None:
        """
        Four strangers that trickle a byte every turn, then four silent
        newcomers, one a turn, with a budget of four: the trickling ones
        are evicted, whatever the random choice, the newcomers stay.
        """
        for seed in range(5):
            factory = self.echo(max_strangers=4)
            factory.chooser = random.Random(seed)
            tricklers = [Peer(factory, f"198.51.100.{n}") for n in range(4)]
            newcomers = []
            for n in range(4):
                for trickler in tricklers:
                    if not trickler.closing:
                        trickler.feed(b"x")
                newcomers.append(Peer(factory, f"203.0.113.{n}"))
                self.clock.advance(0)
            self.assertTrue(all(p.closing for p in tricklers), seed)
            self.assertFalse(any(p.closing for p in newcomers), seed)

    def test_completeLineSparesOnlyThisTurn(self) -> None:
        """
        A stranger that sent a complete line (a nickname refused: still a
        stranger) is not evicted in that turn, the other old one is; in a
        later turn the line no longer spares it.
        """
        factory = self.chat(max_strangers=2, max_per_address=0)
        talker = Peer(factory, "192.0.2.1")
        silent = Peer(factory, "192.0.2.2")
        # Turns are counted when strangers come or speak: two go by.
        self.register(factory, "alice", "203.0.113.1")
        self.register(factory, "bob", "203.0.113.2")
        talker.protocol.dataReceived(b"no spaces allowed\r\n")
        newcomer = Peer(factory, "192.0.2.3")
        self.assertTrue(silent.closing)
        self.assertFalse(talker.closing or newcomer.closing)
        self.assertIn(talker.protocol, factory.strangers)
        self.clock.advance(0)
        self.register(factory, "carol", "203.0.113.3")
        self.register(factory, "dave", "203.0.113.4")
        Peer(factory, "192.0.2.4")
        self.assertTrue(talker.closing)
        self.assertFalse(newcomer.closing)

    def test_chosenAtRandomAmongOlderHalf(self) -> None:
        """
        With eight strangers that may be evicted, a newcomer's arrival
        evicts one of the four oldest, not always the oldest (over twenty
        seeds), never one of the newer half.
        """
        victims = set()
        for seed in range(20):
            factory = self.echo(max_strangers=8)
            factory.chooser = random.Random(seed)
            peers = []
            for n in range(8):
                peers.append(Peer(factory, f"192.0.2.{n}"))
                self.clock.advance(0)
            self.clock.advance(0)
            Peer(factory, "203.0.113.1")
            closed = [n for n, peer in enumerate(peers) if peer.closing]
            self.assertEqual(len(closed), 1, seed)
            victims.update(closed)
        self.assertLessEqual(max(victims), 3)
        self.assertGreater(len(victims), 1)
