"""
Test doubles and an in-memory network for tests of chatservice and of
projects built on it.

- :class:`FakeMember`: a :class:`~chatservice.chat.model.Member` that
  records what the hub does to it, for tests of the core;
- :class:`FakeAuthenticator`: stands in for
  :class:`chatservice.auth.Authenticator` (``/oper`` and the like);
- :func:`turn_hub`: a hub on a test's clock that delivers room messages
  at the end of the reactor turn, as a server's does;
- :class:`Network` and :class:`Connection`: a real client protocol and a
  door's server protocol connected in memory (``twisted.test.iosim``) on a
  test's :class:`~twisted.internet.task.Clock`, bytes pumped between them;
- :class:`LineClient`: a client for line doors that collects the lines it
  receives.

Nothing here touches the network or sleeps: time is the test's clock.
"""

from __future__ import annotations

from itertools import count
from typing import Generic, TypeVar

from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.interfaces import IProtocol, IProtocolFactory
from twisted.internet.protocol import Protocol
from twisted.internet.task import Clock
from twisted.protocols.basic import LineReceiver
from twisted.test.iosim import FakeTransport, IOPump, connect, makeFakeClient

from chatservice.auth import Operator
from chatservice.backends.local import LocalBackend
from chatservice.chat import events
from chatservice.chat.hub import Hub
from chatservice.conn.outbox import TRANSPORT_BUFFER
from chatservice.conn.turns import end_of_turn

__all__ = [
    "Connection",
    "FakeAuthenticator",
    "FakeLoginError",
    "FakeMember",
    "LineClient",
    "Network",
    "ServerTransport",
    "turn_hub",
]

ClientT = TypeVar("ClientT", bound=Protocol)


class FakeMember:
    """A member that records what the hub does to it."""

    def __init__(self, label: str = "") -> None:
        self.label = label
        self.events: list[events.Event] = []
        self.disconnects: list[str] = []

    def __repr__(self) -> str:
        return f"<FakeMember {self.label}>"

    def deliver(self, event: events.Event) -> None:
        self.events.append(event)

    def disconnect(self, reason: str) -> None:
        self.disconnects.append(reason)

    def take(self) -> list[events.Event]:
        """The events delivered since the last call."""
        taken, self.events = self.events, []
        return taken


class FakeLoginError(Exception):
    """What the fake authenticator fails with."""


class FakeAuthenticator:
    """
    Stands in for :class:`chatservice.auth.Authenticator`: ``root`` with
    ``s3cret`` logs in, anything else fails with "login failed".  With
    ``hold`` set, answers wait until :meth:`answer` is called.
    """

    #: The one account that logs in, and its password.
    account = "root"
    password = "s3cret"

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str | None]] = []
        self.hold = False
        self.waiting: list[tuple[Deferred[Operator], str, str]] = []

    def login(
        self, username: str, password: str, address: str | None
    ) -> Deferred[Operator]:
        self.calls.append((username, password, address))
        if self.hold:
            waiting: Deferred[Operator] = Deferred()
            self.waiting.append((waiting, username, password))
            return waiting
        return self._check(username, password)

    def _check(self, name: str, password: str) -> Deferred[Operator]:
        if (name, password) == (self.account, self.password):
            return succeed(Operator(name))
        return fail(FakeLoginError("login failed"))

    def answer(self) -> None:
        """Answer every held login."""
        waiting, self.waiting = self.waiting, []
        for deferred, name, password in waiting:
            self._check(name, password).chainDeferred(deferred)


def turn_hub(clock: Clock) -> Hub:
    """
    A hub on ``clock`` whose backend, as a server's, collects the room
    messages of a reactor turn and delivers them at its end.
    """
    backend = LocalBackend(call_soon=end_of_turn(clock).soon)
    return Hub(clock=clock.seconds, backend=backend)


class LineClient(LineReceiver):
    """A client of a line door that keeps every line it receives, decoded."""

    delimiter = b"\r\n"

    def __init__(self) -> None:
        self.lines: list[str] = []

    def lineReceived(self, line: bytes) -> None:
        self.lines.append(line.decode("utf-8"))

    def take(self) -> list[str]:
        """The lines received since the last call."""
        taken, self.lines = self.lines, []
        return taken


class ServerTransport(FakeTransport):
    """
    The server's end of an in-memory connection, with a write buffer like
    TCP's: once the client stops reading (:meth:`Connection.stop_reading`),
    what the server writes waits here, and past ``bufferSize`` bytes every
    write pauses the server's producer again, as Twisted's
    ``FileDescriptor`` does.  An abort drops what waits.
    """

    def __init__(
        self, protocol: IProtocol, peer: IPv4Address, buffer_size: int
    ) -> None:
        super().__init__(protocol, isServer=True, peerAddress=peer)
        #: What the transport buffers before it pauses its producer.
        self.bufferSize = buffer_size
        #: Whether the client reads what the server writes.
        self.reading = True

    def write(self, data: bytes) -> None:
        super().write(data)
        if (
            not self.reading
            and self.producer is not None
            and sum(map(len, self.stream)) > self.bufferSize
        ):
            self.producer.pauseProducing()

    def getOutBuffer(self) -> bytes | None:
        if not self.reading:
            return None
        data: bytes | None = super().getOutBuffer()
        return data

    def abortConnection(self) -> None:
        self.stream = []
        super().abortConnection()


class Connection(Generic[ClientT]):
    """A client protocol connected to a server protocol in memory."""

    def __init__(
        self,
        client: ClientT,
        server: IProtocol,
        server_transport: ServerTransport,
        clock: Clock,
    ) -> None:
        self.client = client
        self._server_transport = server_transport
        self._client_transport = makeFakeClient(client)
        self.pump: IOPump = connect(
            server,
            server_transport,
            client,
            self._client_transport,
            greet=False,
            clock=clock,
        )

    def push(self) -> None:
        """
        Move the bytes either side has written to the other now, within the
        current reactor turn (the clock does not move): what the client
        sent is read, and answered, before anything else happens.
        """
        self.pump.pump(advanceClock=False)

    def stop_reading(self) -> None:
        """The client reads nothing more: the server's writes pile up."""
        self._server_transport.reading = False

    @property
    def closed(self) -> bool:
        """Whether the connection is gone and both ends have been told."""
        return bool(
            self._client_transport.disconnected and self._server_transport.disconnected
        )


class Network:
    """
    Every in-memory connection of a test, on one clock, pumped together.
    Each connection comes from an address of its own (``10.0.x.y``).
    """

    def __init__(self, clock: Clock, buffer_size: int = TRANSPORT_BUFFER) -> None:
        self.clock = clock
        #: What each server transport buffers for a client that stops reading.
        self.buffer_size = buffer_size
        self._pumps: list[IOPump] = []
        self._numbers = count(1)

    def connect(
        self, factory: IProtocolFactory, client: ClientT, host: str | None = None
    ) -> Connection[ClientT]:
        """
        Connect ``client`` to a new protocol of ``factory`` (not pumped yet),
        from ``host`` if given (several connections from one address).
        """
        number = next(self._numbers)
        if host is None:
            host = f"10.0.{number // 256}.{number % 256}"
        peer = IPv4Address("TCP", host, 40000 + number % 20000)
        server = factory.buildProtocol(peer)
        assert server is not None, f"{factory} refused to build a protocol"
        transport = ServerTransport(server, peer, self.buffer_size)
        connection = Connection(client, server, transport, self.clock)
        self._pumps.append(connection.pump)
        return connection

    def settle(self) -> None:
        """
        Pump every connection, ending reactor turns (``clock.advance(0)``)
        in between, until no bytes move and every disconnection has been
        reported: what is due now has happened, and every client has read
        what it was sent.  Time does not pass.
        """
        for _ in range(1000):
            moved = [pump.pump() for pump in self._pumps]
            if not any(moved):
                return
        raise AssertionError("the network never settled: endless traffic")
