"""
The service tree: :class:`ChatService` owns the chat (hub, backend, history
store) and opens and closes them around its children, one
:class:`ListeningService` per door endpoint, each of which listens, logs
where, turns a failure to listen into a one-line error, and on stop closes
every connection politely.
"""

from __future__ import annotations

import sys
from types import TracebackType
from typing import Any

from twisted.application.internet import StreamServerEndpointService
from twisted.application.service import MultiService
from twisted.internet.defer import Deferred, gatherResults
from twisted.internet.interfaces import IListeningPort, IStreamServerEndpoint
from twisted.logger import Logger
from twisted.python.failure import Failure

from chatservice.chat.hub import Hub
from chatservice.conn.connection import Authenticator
from chatservice.conn.peers import describe_address
from chatservice.doors.door import DoorFactory
from chatservice.doors.operations import Operations
from chatservice.stores.base import StoreError


class StartupError(Exception):
    """The server cannot start; the message says why, in one line."""


class ListenError(StartupError):
    """A service could not listen on its endpoint; the message says why."""


def _report_listen_error(
    kind: type[BaseException],
    error: BaseException,
    traceback: TracebackType | None,
    previous: Any = sys.excepthook,
) -> None:
    """Show a failure to start (listen, open the history) as one line."""
    if not isinstance(error, StartupError):
        previous(kind, error, traceback)
        return
    line = f"chatservice: {error}\n"
    # twistd sends sys.stderr to its log; say it on the terminal too.
    for stream in {sys.stderr, sys.__stderr__}:
        if stream is not None:
            stream.write(line)
            stream.flush()


def report_listen_errors_briefly() -> None:
    """Make a :class:`StartupError` that ends the process print one line."""
    sys.excepthook = _report_listen_error


class ListeningService(StreamServerEndpointService):
    """One front end on one endpoint."""

    log = Logger()
    # Fail start-up (and so twistd) at once when the port is taken.
    _raiseSynchronously = True

    def __init__(
        self, description: str, endpoint: IStreamServerEndpoint, factory: DoorFactory
    ) -> None:
        super().__init__(endpoint, factory)
        self.description = description
        self.factory: DoorFactory = factory
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


class ChatService(MultiService):
    """
    The whole chat: its hub with the hub's backend and history store, the
    operations and authenticator the doors share, and (as children) every
    door's listening services.  Started, it opens the backend and the store
    before the doors listen; stopped, it closes them once every door has
    closed its connections, so that nothing said at the end is lost.
    """

    log = Logger()

    def __init__(
        self,
        hub: Hub,
        operations: Operations | None = None,
        authenticator: Authenticator | None = None,
    ) -> None:
        super().__init__()
        self.setName("chatservice")
        self.hub = hub
        self.operations = operations if operations is not None else Operations(hub)
        self.authenticator = authenticator

    def privilegedStartService(self) -> None:
        # Before the doors: they listen in their own privilegedStartService.
        self._open()
        super().privilegedStartService()

    def startService(self) -> None:
        if not self._opened:
            self._open()  # started without the privileged step (tests, twist)
        super().startService()

    _opened = False

    def _open(self) -> None:
        """
        Open the backend and the store.  One that fails at once (a file that
        cannot be opened) stops the start with its error; one that fails
        later is logged.
        """
        self._opened = True
        opened = [self.hub.backend.start()]
        failures: list[Failure] = []
        opened[0].addErrback(failures.append)
        if failures:
            failures[0].raiseException()
        store = self.hub.store
        if store is not None:
            started = store.start()
            started.addErrback(failures.append)
            if failures:
                failures[0].trap(StoreError)
                # A file that cannot be opened stops the server, one line.
                raise StartupError(str(failures[0].value))
            # Topics and bans back before the doors take anyone in (a store
            # that answers later restores them when it does).
            started.addCallback(lambda _: self.hub.restore(store.saved()))
            opened.append(started)
        for result in opened:
            result.addErrback(
                lambda failure: self.log.failure("opening the chat's state", failure)
            )

    def stopService(self) -> Deferred[Any]:
        stopped: Deferred[Any] = super().stopService()
        return stopped.addCallback(lambda _: self._close())

    def _close(self) -> Deferred[Any]:
        self._opened = False
        closing = [self.hub.backend.stop()]
        if self.hub.store is not None:
            closing.append(self.hub.store.stop())
        return gatherResults(closing, consumeErrors=True)
