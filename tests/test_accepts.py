"""
Connections accepted per reactor turn (``--max-accepts-per-turn``,
:mod:`chatservice.conn.accepts`): real listening sockets on loopback, with
connections waiting in the kernel's queue, accepted by calling the port's
``doRead`` as the reactor would (an in-memory reactor: nothing is timed).
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from twisted.application.service import MultiService
from twisted.internet import tcp
from twisted.internet.interfaces import IProtocolFactory
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SynchronousTestCase

from chatservice import tap
from chatservice.conn.accepts import AcceptCap, cap_accepts
from chatservice.conn.connection import ConnectionFactory
from chatservice.conn.limits import Limits
from chatservice.reload import RELOADABLE
from chatservice.service import ListeningService
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
        top = tap.makeService(
            parse(
                "--history=none",
                "--echo=tcp:0:interface=127.0.0.1",
                "--upper=none",
                "--max-per-address=0",
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
                self.addCleanup(service.port.socket.close)
                listening[service.factory.name] = service
        return listening

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
