"""
One stop per process: a second SIGTERM or SIGINT while the server stops
is one log line, not a traceback.

Twisted's handlers stop the reactor on SIGTERM and SIGINT.  A second
signal before the process has ended (``kill`` sent twice, ``timeout`` that
signals the server and then its process group, Ctrl-C pressed twice) makes
them stop a reactor that is already stopping: ``ReactorNotRunning``,
logged as *critical* with its traceback, which an operator reads as a
crash.  :class:`SignalsOnce` passes the first signal to Twisted's handler
(which logs it, stops the reactor and has ``twistd`` end with the signal)
and answers the others with one line saying the server is already
stopping: stopping waits at most for the history's writer
(``docs/history.rst``), and ``SIGKILL`` ends it at once.
"""

from __future__ import annotations

import signal
from types import FrameType
from typing import Any

from twisted.application.service import Service
from twisted.internet.interfaces import IReactorCore, IReactorFromThreads
from twisted.logger import Logger

#: The signals Twisted's reactor stops on (SIGBREAK is Windows').
STOPPING_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class SignalsOnce(Service):
    """While running, only the first stopping signal reaches Twisted's handler."""

    log = Logger()

    def __init__(self, reactor: Any) -> None:
        self.setName("signals-once")
        self.reactor: IReactorCore = reactor
        self._threads: IReactorFromThreads = reactor
        self._previous: dict[int, Any] = {}
        self._signalled: str | None = None

    def startService(self) -> None:
        super().startService()
        # After the reactor's own handlers, which it installs as it starts.
        self.reactor.callWhenRunning(self._install)

    def _install(self) -> None:
        if not self.running:
            return
        for number in STOPPING_SIGNALS:
            previous = signal.getsignal(number)
            if callable(previous):
                self._previous[number] = previous
                signal.signal(number, self._caught)

    def _caught(self, number: int, frame: FrameType | None) -> None:
        name = signal.Signals(number).name
        if self._signalled is None:
            self._signalled = name
            self._previous[number](number, frame)
            return
        # A signal handler interrupts whatever runs: log on the reactor.
        self._threads.callFromThread(self._again, name)

    def _again(self, name: str) -> None:
        self.log.info(
            "{signal} again: already stopping (after {first}); SIGKILL stops at once",
            signal=name,
            first=self._signalled,
        )
