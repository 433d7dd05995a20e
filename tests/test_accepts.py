"""
Connections accepted per reactor turn (``--max-accepts-per-turn``,
:mod:`chatservice.conn.accepts`): real listening sockets on loopback, with
connections waiting in the kernel's queue, accepted by calling the port's
``doRead`` as the reactor would (an in-memory reactor: nothing is timed).
And the doors whose clients speak first, whose connections the kernel
accepts only once their first bytes have come (``--defer-accept``).
"""

from __future__ import annotations

import select
import socket
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from twisted.application.service import MultiService
from twisted.internet import tcp
from twisted.internet.interfaces import IProtocolFactory
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.testing import MemoryReactorClock
from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase

from chatservice import tap
from chatservice.conn.accepts import (
    DEFAULT_DEFER_ACCEPT,
    AcceptCap,
    cap_accepts,
    defer_accepts,
)
from chatservice.conn.factory import ConnectionFactory
from chatservice.conn.limits import Limits
from chatservice.reload import RELOADABLE
from chatservice.service import ListeningService
from tests.certificates import Authority
from tests.support import temp_dir
from tests.test_tap import parse


class RealPortsReactor(MemoryReactorClock):
    """An in-memory reactor whose ``listenTCP`` listens for real (loopback)."""

    def listenTCP(
        self,
        port: int,
        factory: IProtocolFactory,
        backlog: int = 50,
        interface: str = "",
    ) -> tcp.Port:
        listening = tcp.Port(port, factory, backlog, interface, self)
        listening.startListening()
        return listening


class Accepts:
    """Connections made to a real port, and those it accepted."""

    def __init__(self, test: SynchronousTestCase) -> None:
        self.test = test
        self.accepted: list[Protocol] = []
        test.addCleanup(self.close)

    def factory(self) -> Factory:
        accepted = self.accepted

        class Counted(Protocol):
            def connectionMade(self) -> None:
                accepted.append(self)

        return Factory.forProtocol(Counted)

    def connect(self, port: tcp.Port, count: int) -> None:
        """``count`` clients, connected: they wait in the kernel's queue."""
        address = ("127.0.0.1", port.getHost().port)
        for _ in range(count):
            self.test.addCleanup(socket.create_connection(address).close)

    def close(self) -> None:
        for protocol in self.accepted:
            protocol.transport.socket.close()  # type: ignore[union-attr]


def listen(test: SynchronousTestCase, factory: Any) -> tcp.Port:
    """A real loopback port of ``factory`` on an in-memory reactor."""
    reactor = RealPortsReactor()
    port = reactor.listenTCP(0, factory, interface="127.0.0.1")
    test.addCleanup(port.socket.close)
    return port


def listening_doors(
    test: SynchronousTestCase, *args: str
) -> dict[str, ListeningService]:
    """
    The echo, chat, IRC and web doors (and what ``args`` adds) listening on
    real loopback ports of an in-memory reactor, by door name.
    """
    top = tap.makeService(
        parse(
            "--history=none",
            "--echo=tcp:0:interface=127.0.0.1",
            "--chat=tcp:0:interface=127.0.0.1",
            "--irc=tcp:0:interface=127.0.0.1",
            "--web=tcp:0:interface=127.0.0.1",
            *args,
        ),
        RealPortsReactor(),
    )
    assert isinstance(top, MultiService)
    top.startService()
    listening: dict[str, ListeningService] = {}
    for service in top:
        if isinstance(service, ListeningService):
            assert isinstance(service.port, tcp.Port)
            test.addCleanup(service.port.socket.close)
            listening[service.factory.name] = service
    return listening


class AcceptCapTests(SynchronousTestCase):
    """:class:`AcceptCap` on a real ``tcp.Port``."""

    def capped(self, cap: Callable[[], int], waiting: int) -> tuple[Accepts, tcp.Port]:
        """A real port capped by ``cap``, with ``waiting`` clients in its queue."""
        accepts = Accepts(self)
        port = listen(self, accepts.factory())
        cap_accepts(port, cap)
        accepts.connect(port, waiting)
        return accepts, port

    def test_batchesCapped(self) -> None:
        """
        Ten waiting connections are accepted four, four and two at a time
        with a cap of 4, although Twisted grows its batch after a full one.
        """
        accepts, port = self.capped(lambda: 4, 10)
        port.doRead()
        self.assertEqual(len(accepts.accepted), 4)
        self.assertEqual(port.numberAccepts, 24)  # Twisted's growth: +20
        port.doRead()
        self.assertEqual(len(accepts.accepted), 8)
        port.doRead()
        self.assertEqual(len(accepts.accepted), 10)

    def test_capReadAtEachBatch(self) -> None:
        """A cap that changes (a reload) applies from the next batch."""
        cap = [2]
        accepts, port = self.capped(lambda: cap[0], 9)
        port.doRead()
        self.assertEqual(len(accepts.accepted), 2)
        cap[0] = 5
        port.doRead()
        self.assertEqual(len(accepts.accepted), 7)

    def test_zeroIsTwistedsOwnBatch(self) -> None:
        """With a cap of 0, Twisted's batch (100 at first) takes all ten at once."""
        accepts, port = self.capped(lambda: 0, 10)
        port.doRead()
        self.assertEqual(len(accepts.accepted), 10)

    def test_otherPortsAsTheyAre(self) -> None:
        """A port that is not Twisted's stream port is not capped."""
        reactor = MemoryReactorClock()
        port = reactor.listenTCP(0, Factory.forProtocol(Protocol))
        self.assertIsNone(cap_accepts(port, lambda: 4))


class DoorsTests(SynchronousTestCase):
    """Every door's listening port is capped, from its limits."""

    def listen(self, *args: str) -> dict[str, ListeningService]:
        return listening_doors(
            self,
            "--upper=none",
            "--max-per-address=0",
            # Silent clients below: the kernel would hold them.
            "--defer-accept=0",
            *args,
        )

    def accept(self, service: ListeningService, waiting: int) -> int:
        """Connect ``waiting`` clients, accept one batch: how many came in."""
        factory = service.factory
        assert isinstance(service.port, tcp.Port)
        connections = (
            factory.connections
            if isinstance(factory, ConnectionFactory)
            else factory.door.connections
        )
        before = len(connections)
        address = ("127.0.0.1", service.port.getHost().port)
        for _ in range(waiting):
            self.addCleanup(socket.create_connection(address).close)
        service.port.doRead()
        for connection in connections:
            self.addCleanup(connection.transport.socket.close)
        return len(connections) - before

    def test_everyDoorCapped(self) -> None:
        """
        The chat, echo, IRC and web doors accept at most
        ``--max-accepts-per-turn`` connections in one batch.
        """
        doors = self.listen("--max-accepts-per-turn", "3")
        self.assertEqual(set(doors), {"echo", "chat", "irc", "web"})
        for name, service in doors.items():
            self.assertIsInstance(service.accept_cap, AcceptCap, name)
            self.assertEqual(self.accept(service, 5), 3, name)

    def test_defaultCap(self) -> None:
        """Without the option, the documented default applies."""
        doors = self.listen()
        default = Limits().max_accepts_per_turn
        self.assertEqual(parse().limits.max_accepts_per_turn, default)
        self.assertEqual(self.accept(doors["chat"], default + 3), default)

    def test_reloadedLimitsApply(self) -> None:
        """
        Limits replaced at run time (what a reload does: ``set_limits``)
        cap the next batch; the option is one a reload applies.
        """
        self.assertIn("max-accepts-per-turn", RELOADABLE)
        doors = self.listen("--max-accepts-per-turn", "2")
        chat = doors["chat"].factory
        assert isinstance(chat, ConnectionFactory)
        chat.set_limits(replace(chat.limits, max_accepts_per_turn=4))
        self.assertEqual(self.accept(doors["chat"], 6), 4)


def deferred_seconds(port: tcp.Port) -> int:
    """The listening socket's ``TCP_DEFER_ACCEPT`` (0: accepted at once)."""
    return port.socket.getsockopt(socket.IPPROTO_TCP, socket.TCP_DEFER_ACCEPT)


class DeferAcceptTests(SynchronousTestCase):
    """The kernel holds a connection to a door whose clients speak first."""

    def test_silentHeldSpeakerAccepted(self) -> None:
        """
        On a deferring port, a client that connects and says nothing is not
        accepted; one that sends its first bytes is, with them.
        """
        accepts = Accepts(self)
        port = listen(self, accepts.factory())
        self.assertTrue(defer_accepts(port, 20))
        address = ("127.0.0.1", port.getHost().port)
        silent = socket.create_connection(address)
        self.addCleanup(silent.close)
        speaker = socket.create_connection(address)
        self.addCleanup(speaker.close)
        speaker.sendall(b"hello\r\n")
        # Waiting for the event, not timing it: the bound is generous.
        readable, _, _ = select.select([port.socket], [], [], 30)
        self.assertEqual(readable, [port.socket])
        port.doRead()
        self.assertEqual(len(accepts.accepted), 1)
        transport = accepts.accepted[0].transport
        assert isinstance(transport, tcp.Server)
        self.assertEqual(transport.getPeer().port, speaker.getsockname()[1])
        self.assertEqual(transport.socket.recv(16), b"hello\r\n")

    def test_roundedUpToWholeSeconds(self) -> None:
        """The option is set in whole seconds, rounded up; 0 sets nothing."""
        port = listen(self, Factory.forProtocol(Protocol))
        self.assertFalse(defer_accepts(port, 0))
        self.assertEqual(deferred_seconds(port), 0)
        self.assertTrue(defer_accepts(port, 2.5))
        self.assertGreaterEqual(deferred_seconds(port), 3)

    def test_otherPortsAsTheyAre(self) -> None:
        """A port that is not Twisted's TCP stream port is left as it is."""
        reactor = MemoryReactorClock()
        port = reactor.listenTCP(0, Factory.forProtocol(Protocol))
        self.assertFalse(defer_accepts(port, 20))

    def services(self, *args: str) -> dict[str, ListeningService]:
        return listening_doors(self, "--upper=tcp:0:interface=127.0.0.1", *args)

    def test_doorsWhoseClientsSpeakFirst(self) -> None:
        """
        By default the echo, uppercase and web doors defer (their clients
        speak first); the chat and IRC doors, which greet a connection
        before it says anything, accept at once.
        """
        self.assertEqual(parse()["defer-accept"], DEFAULT_DEFER_ACCEPT)
        doors = self.services()
        for name in ("echo", "upper", "web"):
            self.assertTrue(doors[name].deferring, name)
            port = doors[name].port
            assert isinstance(port, tcp.Port)
            self.assertGreaterEqual(deferred_seconds(port), DEFAULT_DEFER_ACCEPT)
        for name in ("chat", "irc"):
            self.assertFalse(doors[name].deferring, name)
            port = doors[name].port
            assert isinstance(port, tcp.Port)
            self.assertEqual(deferred_seconds(port), 0, name)

    def test_tooLongIsAUsageError(self) -> None:
        """
        More than an hour is refused at start-up with the option's name (a
        number beyond the socket option's ``int``, 99999999999 or 1e300,
        raised from ``setsockopt`` with the port already listening); an
        hour is taken.
        """
        for value in ("3601", "99999999999", "1e300"):
            error = self.assertRaises(usage.UsageError, parse, "--defer-accept", value)
            self.assertIn("--defer-accept must be at most 3600", str(error))
        self.assertEqual(parse("--defer-accept", "3600")["defer-accept"], 3600)

    def test_zeroAcceptsAtOnce(self) -> None:
        """``--defer-accept 0``: every door accepts at once."""
        for name, service in self.services("--defer-accept", "0").items():
            self.assertFalse(service.deferring, name)

    def test_tlsEndpointsDefer(self) -> None:
        """
        Any door on ``ssl:`` defers, the chat's too: a TLS client speaks
        first (its handshake), and the greeting comes after it.
        """
        files = Authority(temp_dir(self)).server("chat")
        top = tap.makeService(
            parse(
                "--history=none",
                "--echo=none",
                "--upper=none",
                f"--chat={files.endpoint()}",
                "--irc=tcp:0:interface=127.0.0.1",
                "--defer-accept=7",
            ),
            MemoryReactorClock(),
        )
        assert isinstance(top, MultiService)
        deferral = {
            service.factory.name: service.defer_accept
            for service in top
            if isinstance(service, ListeningService)
        }
        self.assertEqual(deferral, {"chat": 7.0, "irc": 0.0})

    def test_reloadNeedsRestart(self) -> None:
        """The socket option is set when listening: a reload leaves it."""
        self.assertNotIn("defer-accept", RELOADABLE)
