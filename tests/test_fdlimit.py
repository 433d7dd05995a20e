"""
Limits that fit the machine (``chatservice.conn.fdlimit``): the soft
file-descriptor limit raised to the hard one at start-up, and
``--max-clients auto`` from what it leaves room for.
"""

from __future__ import annotations

import resource
import sys
from typing import cast

from twisted.internet.testing import MemoryReactorClock
from twisted.logger import ILogObserver, LogEvent, globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase

from chatservice import tap
from chatservice.conn import fdlimit
from tests.test_tap import parse


class ShareTests(SynchronousTestCase):
    """How many clients a number of descriptors leaves room for."""

    def test_share(self) -> None:
        """
        Headroom first, the rest split between the services, each less its
        strangers' budget.
        """
        self.assertEqual(fdlimit.max_clients_for(20_000, 3, 128), 6517)
        self.assertEqual(fdlimit.max_clients_for(1_064, 1, 0), 1_000)

    def test_bounds(self) -> None:
        """Never below 16 per service, never above 100,000."""
        self.assertEqual(fdlimit.max_clients_for(100, 4, 128), 16)
        self.assertEqual(fdlimit.max_clients_for(10**7, 1, 0), 100_000)


class RaiseTests(SynchronousTestCase):
    """Raising the soft limit to the hard one."""

    def fake(self, soft: int, hard: int, refuse: bool = False) -> list[tuple[int, int]]:
        calls: list[tuple[int, int]] = []

        def getrlimit(which: int) -> tuple[int, int]:
            return soft, hard

        def setrlimit(which: int, limits: tuple[int, int]) -> None:
            if refuse:
                raise ValueError("not permitted")
            calls.append(limits)

        self.patch(resource, "getrlimit", getrlimit)
        self.patch(resource, "setrlimit", setrlimit)
        return calls

    def test_raised(self) -> None:
        """A soft limit below the hard one is raised to it."""
        calls = self.fake(1024, 65536)
        self.assertEqual(fdlimit.raise_limit(), (1024, 65536))
        self.assertEqual(calls, [(65536, 65536)])

    def test_alreadyThere(self) -> None:
        """A soft limit at the hard one is left alone."""
        calls = self.fake(4096, 4096)
        self.assertEqual(fdlimit.raise_limit(), (4096, 4096))
        self.assertEqual(calls, [])

    def test_refused(self) -> None:
        """A system that refuses leaves the limit where it was, and says so."""
        self.fake(1024, 65536, refuse=True)
        self.assertEqual(fdlimit.raise_limit(), (1024, 1024))


class OptionTests(SynchronousTestCase):
    """``--max-clients auto`` (the default) and a number."""

    def test_autoCountsListeningServices(self) -> None:
        """The share is per service that listens: fewer services, more each."""
        hard = fdlimit.hard_limit()
        both = parse("--chat", "none", "--upper", "none")
        self.assertEqual(both.limits.max_clients, fdlimit.max_clients_for(hard, 1, 128))

    def test_numberKept(self) -> None:
        """A number given is kept, and nothing is computed."""
        options = parse("--max-clients", "50")
        self.assertEqual(options.limits.max_clients, 50)
        self.assertFalse(options.clients_from_descriptors)

    def test_startUpLogsTheChoice(self) -> None:
        """
        Building the service raises the soft limit and logs the limit and
        what each service holds.
        """
        self.patch(sys, "excepthook", sys.excepthook)
        self.patch(fdlimit, "raise_limit", lambda: (1024, 20000))
        events: list[LogEvent] = []
        observer = cast(ILogObserver, events.append)
        globalLogPublisher.addObserver(observer)
        self.addCleanup(globalLogPublisher.removeObserver, observer)
        options = parse()
        tap.makeService(options, MemoryReactorClock())
        chosen = [e for e in events if "now" in e and "clients" in e]
        self.assertEqual(len(chosen), 1)
        self.assertEqual(
            (chosen[0]["before"], chosen[0]["now"], chosen[0]["clients"]),
            (1024, 20000, options.limits.max_clients),
        )

    def events_of_start_up(self, raised: tuple[int, int], *args: str) -> list[LogEvent]:
        """The log events of building the service with ``args``."""
        self.patch(sys, "excepthook", sys.excepthook)
        calls: list[None] = []

        def raise_limit() -> tuple[int, int]:
            calls.append(None)
            return raised

        self.patch(fdlimit, "raise_limit", raise_limit)
        events: list[LogEvent] = []
        observer = cast(ILogObserver, events.append)
        globalLogPublisher.addObserver(observer)
        self.addCleanup(globalLogPublisher.removeObserver, observer)
        tap.makeService(parse(*args), MemoryReactorClock())
        self.assertEqual(len(calls), 1, "the soft limit is raised at start-up")
        return [e for e in events if "now" in e and "clients" in e]

    def test_numberGivenRaisesToo(self) -> None:
        """
        A ``--max-clients`` given raises the soft limit as ``auto`` does (it
        was left at 1024 with the hard limit at 20000: past about a
        thousand connections, newcomers were closed without a word) and
        logs the same line.
        """
        (line,) = self.events_of_start_up(
            (1024, 20000), "--max-clients", "5000", "--chat", "none", "--upper", "none"
        )
        self.assertEqual(
            (line["before"], line["now"], line["clients"]), (1024, 20000, 5000)
        )

    def test_tooFewDescriptorsWarned(self) -> None:
        """
        Limits that need more descriptors than the hard limit allows get a
        warning saying how many they need; 0 (no limit) gets none.
        """
        _info, warning = self.events_of_start_up(
            (1024, 1024), "--max-clients", "5000", "--chat", "none", "--upper", "none"
        )
        self.assertEqual(warning["log_level"].name, "warn")
        self.assertEqual(warning["needed"], 64 + 5000 + 128)
        self.assertEqual(warning["services"], 1)
        unlimited = self.events_of_start_up((1024, 1024), "--max-clients", "0")
        self.assertEqual(len(unlimited), 1)
