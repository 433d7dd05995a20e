"""
The listening service of one front end: it listens on an endpoint, logs
where, turns a failure to listen into a one-line error, and on stop closes
every connection politely.
"""

from __future__ import annotations

import sys
from types import TracebackType
from typing import Any

from twisted.application.internet import StreamServerEndpointService
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IListeningPort, IStreamServerEndpoint
from twisted.logger import Logger

from chatservice.lines import LineFactory, describe_address


class ListenError(Exception):
    """A service could not listen on its endpoint; the message says why."""


def _report_listen_error(
    kind: type[BaseException],
    error: BaseException,
    traceback: TracebackType | None,
    previous: Any = sys.excepthook,
) -> None:
    """Show a failure to listen as one line, not a traceback."""
    if not isinstance(error, ListenError):
        previous(kind, error, traceback)
        return
    line = f"chatservice: {error}\n"
    # twistd sends sys.stderr to its log; say it on the terminal too.
    for stream in {sys.stderr, sys.__stderr__}:
        if stream is not None:
            stream.write(line)
            stream.flush()


def report_listen_errors_briefly() -> None:
    """Make a :class:`ListenError` that ends the process print one line."""
    sys.excepthook = _report_listen_error


class ListeningService(StreamServerEndpointService):
    """One front end on one endpoint."""

    log = Logger()
    # Fail start-up (and so twistd) at once when the port is taken.
    _raiseSynchronously = True

    def __init__(
        self, description: str, endpoint: IStreamServerEndpoint, factory: LineFactory
    ) -> None:
        super().__init__(endpoint, factory)
        self.description = description
        self.factory: LineFactory = factory
        self.setName(f"{factory.name} {description}")
        self.port: IListeningPort | None = None

    def privilegedStartService(self) -> None:
        try:
            super().privilegedStartService()
        except Exception as error:
            reason: object = getattr(error, "socketError", None) or error
            if isinstance(reason, OSError) and reason.strerror:
                # "Address already in use", without "[Errno 98] ": twistd's
                # daemon mode shows only 98 characters of
                # "chatservice.service.ListenError: <message>".
                reason = reason.strerror
            raise ListenError(
                f"{self.factory.name} on {self.description}: {reason}"
            ) from None
        assert self._waitingForPort is not None
        self._waitingForPort.addCallback(self._listening)

    def _listening(self, port: IListeningPort) -> IListeningPort:
        self.port = port
        self.log.info(
            "{service} service listening on {address} ({endpoint})",
            service=self.factory.name,
            address=describe_address(port.getHost()),
            endpoint=self.description,
        )
        return port

    def stopService(self) -> Deferred[Any]:
        stopped: Deferred[Any] = super().stopService()
        stopped.addCallback(lambda _: self.factory.closeAll())
        return stopped
