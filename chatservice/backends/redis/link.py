"""
The two connections a node keeps to Redis, through txredisapi's protocols:
one for commands, one of its own for the subscription (a subscribed
connection takes no other command).  Twisted's
:class:`~twisted.application.internet.ClientService` connects them and
reconnects with a backoff; :class:`RedisLink` says when both are up, and
logs one line when the link is lost and one when it is back, never one per
command.

Everything txredisapi-specific is here: another client (redis-py's asyncio
one on the asyncio reactor) would replace this module only.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from typing import Any

import txredisapi  # type: ignore[import-untyped]
from twisted.application.internet import ClientService, backoffPolicy
from twisted.internet.defer import Deferred, fail, gatherResults
from twisted.internet.endpoints import (
    HostnameEndpoint,
    TCP4ClientEndpoint,
    TCP6ClientEndpoint,
    wrapClientTLS,
)
from twisted.internet.interfaces import IReactorTime, IStreamClientEndpoint
from twisted.internet.protocol import Factory, Protocol
from twisted.logger import Logger
from twisted.python.failure import Failure

from chatservice.backends.redis.url import RedisAddress
from chatservice.chat.errors import Unavailable

#: Seconds to wait for a TCP connection (and for a reply: a Redis that stops
#: answering is treated as lost).
CONNECT_TIMEOUT = 5.0
REPLY_TIMEOUT = 10.0


class _Subscriber(txredisapi.SubscriberProtocol):  # type: ignore[misc]
    """The subscribed connection: hands each message to the link."""

    def messageReceived(self, pattern: object, channel: object, message: Any) -> None:
        self.factory.on_message(message)


class _ProtocolFactory(Factory):
    """Builds one kind of txredisapi protocol, logged in, numbers not converted."""

    # What txredisapi's protocol calls on its factory when AUTH or SELECT
    # fails (it then drops the connection, and ClientService tries again).
    isLazy = True
    noisy = False  # no "Starting factory" at each reconnection

    def __init__(
        self,
        kind: type[Any],
        address: RedisAddress,
        lost: Callable[[str], None],
        refused: Callable[[str], None],
        on_message: Callable[[bytes | str], None] | None = None,
    ) -> None:
        self.kind = kind
        self.on_message = on_message
        self.address = address
        self._lost = lost
        self._refused = refused

    def buildProtocol(self, addr: object) -> Protocol:
        protocol = self.kind(
            charset="utf-8",
            replyTimeout=REPLY_TIMEOUT if self.kind is not _Subscriber else None,
            password=self.address.password,
            dbid=self.address.db,
            # A message "42" stays the text "42".
            convertNumbers=False,
            username=self.address.username,
        )
        protocol.factory = self
        lost = protocol.connectionLost

        def connection_lost(reason: Failure) -> None:
            try:
                lost(reason)
            finally:
                self._lost(reason.getErrorMessage())

        protocol.connectionLost = connection_lost
        return protocol  # type: ignore[no-any-return]

    def stopTrying(self) -> None:
        pass  # keep trying, with the backoff: the password may be fixed

    def connectionError(self, why: str) -> None:
        self._refused(why)


def endpoint_for(reactor: Any, address: RedisAddress) -> IStreamClientEndpoint:
    """A client endpoint to the Redis at ``address`` (TLS for ``rediss://``)."""
    endpoint: IStreamClientEndpoint
    try:
        ip = ipaddress.ip_address(address.host)
    except ValueError:
        endpoint = HostnameEndpoint(
            reactor, address.host, address.port, timeout=CONNECT_TIMEOUT
        )
    else:
        # An address: nothing to resolve (no thread pool needed).
        kind = TCP6ClientEndpoint if ip.version == 6 else TCP4ClientEndpoint
        endpoint = kind(reactor, address.host, address.port, timeout=CONNECT_TIMEOUT)
    if address.tls:
        from twisted.internet.ssl import (
            Certificate,
            optionsForClientTLS,
            trustRootFromCertificates,
        )

        trust = None
        if address.ca_certificates is not None:
            trust = trustRootFromCertificates(
                [
                    Certificate.loadPEM(pem.encode("ascii"))
                    for pem in _pem_blocks(address.ca_certificates)
                ]
            )
        endpoint = wrapClientTLS(
            optionsForClientTLS(address.host, trustRoot=trust), endpoint
        )
    return endpoint


def _pem_blocks(text: str) -> list[str]:
    """Each ``-----BEGIN CERTIFICATE-----`` block of a PEM file."""
    end = "-----END CERTIFICATE-----"
    return [block + end for block in text.split(end) if "-----BEGIN" in block]


def is_refusal(failure: Failure) -> bool:
    """Whether a command failed because Redis answered with an error (not lost)."""
    return failure.check(txredisapi.ResponseError) is not None


class RedisLink:
    """
    A command connection and a subscription to one channel, kept up.

    ``on_message`` gets each message of the channel, in Redis's order;
    ``on_up`` is called once both connections are up (the subscription
    confirmed), ``on_down`` once either is lost after that.
    """

    log = Logger()

    def __init__(
        self,
        reactor: IReactorTime,
        address: RedisAddress,
        channel: str,
        on_message: Callable[[bytes | str], None],
        on_up: Callable[[], None],
        on_down: Callable[[], None],
        endpoint: IStreamClientEndpoint | None = None,
    ) -> None:
        self.address = address
        self.channel = channel
        self._on_message = on_message
        self._on_up = on_up
        self._on_down = on_down
        if endpoint is None:
            endpoint = endpoint_for(reactor, address)
        policy = backoffPolicy(initialDelay=0.2, maxDelay=5.0)
        self._commands_service = ClientService(
            endpoint,
            _ProtocolFactory(
                txredisapi.RedisProtocol, address, self._lost, self._refused
            ),
            retryPolicy=policy,
            clock=reactor,
            prepareConnection=self._command_ready,
        )
        self._subscriber_service = ClientService(
            endpoint,
            _ProtocolFactory(
                _Subscriber, address, self._lost, self._refused, on_message
            ),
            retryPolicy=policy,
            clock=reactor,
            prepareConnection=self._subscriber_ready,
        )
        self._commands: Any = None
        self._subscribed: Any = None
        #: Whether both connections are up (what ``on_up`` said).
        self.up = False
        self._said_down = False
        self._last_refusal = ""

    def start(self) -> None:
        """Connect (and keep reconnecting until :meth:`stop`)."""
        self._commands_service.startService()
        self._subscriber_service.startService()

    def stop(self) -> Deferred[Any]:
        """Disconnect for good."""
        self.up = False
        self._commands = self._subscribed = None
        return gatherResults(
            [
                self._commands_service.stopService(),
                self._subscriber_service.stopService(),
            ],
            consumeErrors=True,
        )

    def command(self, *args: object) -> Deferred[Any]:
        """Run one Redis command; fails with :class:`Unavailable` when down."""
        if self._commands is None or not self._commands.connected:
            return fail(Unavailable())
        try:
            return self._commands.execute_command(*args)  # type: ignore[no-any-return]
        except txredisapi.ConnectionError:
            return fail(Unavailable())

    def evaluate(self, script: str, keys: list[str], args: list[str]) -> Deferred[Any]:
        """Run a Lua script (by its hash once Redis knows it)."""
        if self._commands is None or not self._commands.connected:
            return fail(Unavailable())
        return self._commands.eval(script, keys, args)  # type: ignore[no-any-return]

    # Connections

    def _command_ready(self, protocol: Any) -> Deferred[Any]:
        def ready(_: object) -> None:
            self._commands = protocol
            self._check_up()

        return protocol.whenConnected().addCallback(ready)  # type: ignore[no-any-return]

    def _subscriber_ready(self, protocol: Any) -> Deferred[Any]:
        def subscribe(_: object) -> Deferred[Any]:
            return protocol.subscribe(self.channel)  # type: ignore[no-any-return]

        def subscribed(_: object) -> None:
            self._subscribed = protocol
            self._check_up()

        connected: Deferred[Any] = protocol.whenConnected()
        return connected.addCallback(subscribe).addCallback(subscribed)

    def _check_up(self) -> None:
        if self.up or self._commands is None or self._subscribed is None:
            return
        self.up = True
        self.log.info(
            "shared state: connected to Redis at {redis}", redis=str(self.address)
        )
        self._said_down = False
        self._last_refusal = ""
        self._on_up()

    def _lost(self, why: str) -> None:
        self._commands = (
            self._commands if self._commands and self._commands.connected else None
        )
        self._subscribed = (
            self._subscribed
            if self._subscribed and self._subscribed.connected
            else None
        )
        if not self.up:
            return
        self.up = False
        if not self._said_down:
            self._said_down = True
            self.log.warn(
                "shared state: lost Redis at {redis} ({why}); chatting on this "
                "node only, new nicknames refused, reconnecting",
                redis=str(self.address),
                why=why,
            )
        self._on_down()

    def _refused(self, why: str) -> None:
        if why != self._last_refusal:
            self._last_refusal = why
            self.log.error("shared state: {why}", why=why)
