"""
The listen backlog of the doors' endpoints: ``tcp:``, ``tcp6:`` and
``ssl:`` endpoints that give none listen with :data:`~chatservice.tap.DEFAULT_BACKLOG`
(Twisted's 50 overflows in a connection storm, and the kernel retries a
refused handshake only after a second); a ``backlog=`` given wins.
"""

from __future__ import annotations

from twisted.application.service import MultiService
from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SynchronousTestCase

from chatservice import tap
from tests.test_tap import parse


class WithBacklogTests(SynchronousTestCase):
    """:func:`chatservice.tap.with_backlog` on endpoint strings."""

    def test_addedWhenMissing(self) -> None:
        """TCP, TCP over IPv6 and TLS strings without a backlog get the default."""
        for description in (
            "tcp:5001",
            "tcp:5001:interface=127.0.0.1",
            "TCP:port=5001",
            r"tcp6:5001:interface=\:\:1",
            "ssl:6697:privateKey=key.pem",
        ):
            self.assertEqual(
                tap.with_backlog(description),
                f"{description}:backlog={tap.DEFAULT_BACKLOG}",
            )

    def test_givenBacklogWins(self) -> None:
        """A backlog given by key or by position is left as it is."""
        for description in (
            "tcp:5001:backlog=7",
            "tcp:5001:127.0.0.1:7",
            "ssl:6697:key.pem:cert.pem:TLSv1_2_METHOD:127.0.0.1:7",
        ):
            self.assertEqual(tap.with_backlog(description), description)

    def test_otherEndpointsAsGiven(self) -> None:
        """UNIX sockets, sockets from systemd and unparsed strings are as given."""
        for description in ("unix:chat.sock", "systemd:domain=INET:index=0", "a=b=c"):
            self.assertEqual(tap.with_backlog(description), description)


class ListenTests(SynchronousTestCase):
    """What the doors listen with, on an in-memory reactor."""

    def listen(self, *args: str) -> dict[int, int]:
        reactor = MemoryReactorClock()
        top = tap.makeService(parse(*args, "--history=none"), reactor)
        assert isinstance(top, MultiService)
        top.startService()
        self.addCleanup(top.stopService)
        return {port: backlog for port, _, backlog, _ in reactor.tcpServers}

    def test_defaultBacklog(self) -> None:
        """Every default TCP endpoint listens with the default backlog."""
        backlogs = self.listen()
        self.assertIn(5001, backlogs)
        self.assertEqual(set(backlogs.values()), {tap.DEFAULT_BACKLOG})

    def test_explicitBacklog(self) -> None:
        """An endpoint's own ``backlog=`` is what its port listens with."""
        backlogs = self.listen("--echo", "tcp:7001:interface=127.0.0.1:backlog=64")
        self.assertEqual(backlogs[7001], 64)
        self.assertEqual(backlogs[12000], tap.DEFAULT_BACKLOG)
