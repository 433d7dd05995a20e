"""
The service tree: :class:`ChatService` owns the chat (hub, backend, history
store) and opens and closes them around its children, one
:class:`ListeningService` per door endpoint, each of which listens, logs
where, turns a failure to listen into a one-line error, and on stop closes
every connection politely.
"""

from __future__ import annotations

import ipaddress
import sys
from collections.abc import Callable
from types import TracebackType
from typing import Any, cast

from twisted.application.service import MultiService, Service
from twisted.internet.address import UNIXAddress
from twisted.internet.defer import (
    CancelledError,
    Deferred,
    gatherResults,
    maybeDeferred,
    succeed,
)
from twisted.internet.interfaces import (
    IListeningPort,
    IProtocolFactory,
    IStreamServerEndpoint,
)
from twisted.logger import Logger
from twisted.python.failure import Failure

from chatservice.chat.hub import Hub
from chatservice.conn.accepts import AcceptCap, cap_accepts, defer_accepts
from chatservice.conn.connection import Authenticator
from chatservice.conn.factory import ConnectionFactory
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


def is_loopback_address(address: object) -> bool:
    """
    Whether a listening port's address (``port.getHost()``) is reachable
    from this machine only: a UNIX socket, or an IP address on loopback.
    """
    if isinstance(address, UNIXAddress):
        return True
    host = getattr(address, "host", None)
    if not isinstance(host, str):
        return False
    try:
        return ipaddress.ip_address(host.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


class ListeningService(Service):
    """
    One front end on one endpoint.  It listens in
    :meth:`privilegedStartService` (before twistd drops privileges) or else
    in :meth:`startService`; a failure to listen raises :class:`ListenError`
    at once when the endpoint answers at once (every reactor-backed
    endpoint: TCP, UNIX, SSL), so that twistd stops with one line.

    With ``loopback_only`` (a private door, such as the admin console,
    without ``--<door>-allow-remote``) it checks where it actually listens
    (the port's own address) and stops, with a :class:`ListenError`, if that
    is not loopback: whatever the endpoint string seemed to say.
    """

    log = Logger()

    def __init__(
        self,
        description: str,
        endpoint: IStreamServerEndpoint,
        factory: DoorFactory,
        *,
        loopback_only: bool = False,
        max_accepts: Callable[[], int] | None = None,
        defer_accept: float = 0.0,
    ) -> None:
        self.endpoint = endpoint
        self.description = description
        self.factory: DoorFactory = factory
        self.loopback_only = loopback_only
        self.setName(f"{factory.name} {description}")
        self.port: IListeningPort | None = None
        #: How many connections the port accepts per turn, read at every
        #: batch (a reload's limits apply at the next one); ``None``:
        #: Twisted's own.
        self.max_accepts = max_accepts
        #: What caps them, when the port is a stream port of Twisted's.
        self.accept_cap: AcceptCap | None = None
        #: Seconds the kernel holds a new connection until its first bytes
        #: (``--defer-accept``; 0: accepted at once).
        self.defer_accept = defer_accept
        #: Whether it does, once listening (a TCP port; not a UNIX socket).
        self.deferring = False
        self._listening: Deferred[IListeningPort] | None = None

    def privilegedStartService(self) -> None:
        super().privilegedStartService()
        self._listen()

    def startService(self) -> None:
        super().startService()
        self._listen()

    def _listen(self) -> None:
        if self._listening is not None:
            return
        # Every door's factory is a ServerFactory (DoorFactory says what else).
        self._listening = self.endpoint.listen(cast(IProtocolFactory, self.factory))
        outcome: list[IListeningPort | Failure] = []
        later = False

        def answered(result: Any) -> Any:
            if later:
                return result
            outcome.append(result)  # at once: handled below
            return None

        self._listening.addBoth(answered)
        if not outcome:
            # An endpoint that answers later: report there.
            later = True
            self._listening.addCallback(self._listened)
            self._listening.addErrback(self._failed_later)
            return
        self._listening = succeed(self._listened(self._result(outcome[0])))

    def _result(self, outcome: IListeningPort | Failure) -> IListeningPort:
        if not isinstance(outcome, Failure):
            return outcome
        self._listening = None
        error = outcome.value
        reason: object = getattr(error, "socketError", None) or error
        if isinstance(reason, OSError) and reason.strerror:
            # "Address already in use", without "[Errno 98] ": twistd's daemon
            # mode shows only 98 characters of "chatservice.service.ListenError:
            # <message>".
            reason = reason.strerror
        raise ListenError(f"{self.factory.name} on {self.description}: {reason}")

    def _listened(self, port: IListeningPort) -> IListeningPort:
        address = port.getHost()
        if self.loopback_only and not is_loopback_address(address):
            self._listening = None
            port.stopListening()
            raise ListenError(
                f"{self.factory.name} on {self.description}: listens on "
                f"{describe_address(address)}, beyond loopback; stopped (use "
                f"unix:PATH, tcp:PORT:interface=127.0.0.1 or ssl:..., or add "
                f"--{self.factory.name}-allow-remote)"
            )
        self.port = port
        if self.max_accepts is not None:
            self.accept_cap = cap_accepts(port, self.max_accepts)
        self.deferring = defer_accepts(port, self.defer_accept)
        self.log.info(
            "{service} service listening on {address} ({endpoint})",
            service=self.factory.name,
            address=describe_address(address),
            endpoint=self.description,
        )
        return port

    def _failed_later(self, failure: Failure) -> None:
        if failure.check(CancelledError):
            return  # stopped before the endpoint answered
        self.log.failure(
            "{service} could not listen on {endpoint}",
            failure,
            service=self.factory.name,
            endpoint=self.description,
        )

    def stopService(self) -> Deferred[Any]:
        super().stopService()
        listening, self._listening = self._listening, None
        port, self.port = self.port, None
        if port is not None:
            stopped: Deferred[Any] = maybeDeferred(port.stopListening)
        else:
            if listening is not None:
                listening.cancel()
            stopped = succeed(None)
        return stopped.addCallback(lambda _: self.factory.closeAll())


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
        self.operations = (
            operations
            if operations is not None
            else Operations(hub, doors=self.door_factories)
        )
        self.authenticator = authenticator

    def listeners(self) -> list[ListeningService]:
        """Every endpoint's listening service, in the order they were added."""
        return [child for child in self if isinstance(child, ListeningService)]

    def door_factories(self) -> list[ConnectionFactory]:
        """Each door's factory once (its endpoints share it): their counters."""
        seen: dict[ConnectionFactory, None] = {}
        for listener in self.listeners():
            if isinstance(listener.factory, ConnectionFactory):
                seen[listener.factory] = None
        return list(seen)

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
        failure = _failed_at_once(opened[0])
        if failure is not None:
            failure.raiseException()
        store = self.hub.store
        if store is not None:
            started = store.start()
            failure = _failed_at_once(started)
            if failure is not None:
                failure.trap(StoreError)
                # A file that cannot be opened stops the server, one line.
                raise StartupError(str(failure.value))
            # Topics and bans back before the doors take anyone in (a store
            # that answers later restores them when it does).
            started.addCallback(lambda _: self.hub.restore(store.saved()))
            opened.append(started)
        for result in opened:
            # What fails later is logged (what failed at once was raised).
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


def _failed_at_once(result: Deferred[Any]) -> Failure | None:
    """
    The failure of a Deferred that has already failed (taken from it), or
    ``None`` when it succeeded or has not answered yet (left as it is, for
    the errbacks added after).
    """
    if not result.called:
        return None
    failures: list[Failure] = []
    result.addErrback(failures.append)
    return failures[0] if failures else None
