"""
One stop per process (``chatservice.stopping``): the first SIGTERM stops
the server as Twisted does; those that follow while it stops are one log
line each, not a critical error with a traceback.
"""

from __future__ import annotations

import json
import signal
from collections.abc import Callable
from typing import Any

from twisted.logger import ILogObserver, globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import provider

from chatservice.stopping import STOPPING_SIGNALS, SignalsOnce
from tests.support import free_port, json_logged_chat, temp_dir


class FakeReactor:
    """Just what :class:`SignalsOnce` uses: when running, and from threads."""

    def __init__(self) -> None:
        self.when_running: list[Callable[[], object]] = []
        self.from_threads: list[tuple[Callable[..., object], tuple[Any, ...]]] = []

    def callWhenRunning(self, call: Callable[[], object]) -> None:
        self.when_running.append(call)

    def callFromThread(self, call: Callable[..., object], *args: Any) -> None:
        self.from_threads.append((call, args))


class SignalsOnceTests(SynchronousTestCase):
    """The handlers, on a fake reactor."""

    def setUp(self) -> None:
        self.called: list[int] = []
        for number in STOPPING_SIGNALS:
            self.addCleanup(signal.signal, number, signal.getsignal(number))
            signal.signal(number, self.twisted_handler)

    def twisted_handler(self, number: int, frame: Any) -> None:
        self.called.append(number)

    def test_firstPassedOthersLogged(self) -> None:
        """
        Once the reactor runs, the first stopping signal reaches the handler
        that was there (Twisted's), and the others are logged on the
        reactor, naming the signal and the first one.
        """
        reactor = FakeReactor()
        service = SignalsOnce(reactor)
        service.startService()
        self.assertEqual(signal.getsignal(signal.SIGTERM), self.twisted_handler)
        for call in reactor.when_running:
            call()
        logged: list[dict[str, Any]] = []

        @provider(ILogObserver)
        def observe(event: dict[str, Any]) -> None:
            if event.get("log_namespace") == "chatservice.stopping.SignalsOnce":
                logged.append(event)

        globalLogPublisher.addObserver(observe)
        self.addCleanup(globalLogPublisher.removeObserver, observe)
        terminate, interrupt = (signal.getsignal(n) for n in STOPPING_SIGNALS)
        assert callable(terminate) and callable(interrupt)
        terminate(signal.SIGTERM, None)
        self.assertEqual((self.called, reactor.from_threads), ([signal.SIGTERM], []))
        interrupt(signal.SIGINT, None)
        terminate(signal.SIGTERM, None)
        self.assertEqual(self.called, [signal.SIGTERM])
        for call, args in reactor.from_threads:
            call(*args)
        self.assertEqual(
            [(e["signal"], e["first"]) for e in logged],
            [("SIGINT", "SIGTERM"), ("SIGTERM", "SIGTERM")],
        )

    def test_stoppedBeforeRunning(self) -> None:
        """A service stopped before the reactor ran leaves the handlers alone."""
        reactor = FakeReactor()
        service = SignalsOnce(reactor)
        service.startService()
        service.stopService()
        for call in reactor.when_running:
            call()
        self.assertEqual(signal.getsignal(signal.SIGTERM), self.twisted_handler)


class TwistdStopTests(SynchronousTestCase):
    """``twistd -n chatservice`` sent SIGTERM twice at once."""

    def test_secondSignalLogged(self) -> None:
        """
        SIGTERM and SIGINT at once (``kill`` twice, ``timeout`` signalling
        the server and its group, Ctrl-C) stop the server once: it ends
        with the first, the second is one info line, and nothing is logged
        as critical.  (Both are sent while the process is stopped, so that
        both are pending when it goes on: two SIGTERMs would be one.)
        """
        directory = temp_dir(self)
        port = free_port()
        server = json_logged_chat(
            self, directory, port, "--history", "sqlite:history.sqlite3"
        )
        server.popen.send_signal(signal.SIGSTOP)
        server.popen.send_signal(signal.SIGTERM)
        server.popen.send_signal(signal.SIGINT)
        server.popen.send_signal(signal.SIGCONT)
        status = server.wait()
        events = [json.loads(line) for line in server.stdout.splitlines()]
        texts = [e["text"] for e in events]
        again = [
            e
            for e in events
            if e.get("log_namespace") == "chatservice.stopping.SignalsOnce"
        ]
        self.assertEqual(len(again), 1, server.describe())
        first, second = again[0]["first"], again[0]["signal"]
        self.assertEqual({first, second}, {"SIGTERM", "SIGINT"})
        self.assertEqual(status, -signal.Signals[first], server.describe())
        self.assertIn(f"Received {first}, shutting down.", texts)
        self.assertEqual(
            [e for e in events if e.get("level") == "critical"], [], server.describe()
        )
        self.assertIn("Server Shut Down.", texts)
