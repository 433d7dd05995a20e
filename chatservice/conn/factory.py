"""
The factory of one door's connections (:mod:`chatservice.conn.connection`):
it counts them, admits them (in total, per address, strangers), sweeps the
idle ones, writes the turn's deliveries and closes them all on shutdown;
and the rate-limited log lines of its refusals and evictions.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from typing import TYPE_CHECKING, ClassVar, Protocol

from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.internet.protocol import ServerFactory
from twisted.logger import Logger

from chatservice.conn.admission import Admission, Refusal
from chatservice.conn.flood import FloodControl
from chatservice.conn.idle import IdleSweep
from chatservice.conn.limits import Limits
from chatservice.conn.outbox import Gate, TurnWriter
from chatservice.conn.strangers import Stranger, StrangersBudget
from chatservice.metrics.counters import DoorCounters

if TYPE_CHECKING:
    from chatservice.conn.connection import Connection


class ConnectionFactory(ServerFactory):
    """
    Builds one kind of :class:`Connection` and keeps count of them: the
    connection policy of :mod:`chatservice.conn` for one listening service.
    """

    #: Name of the service in logs ("echo", "upper", "chat", ...).
    name = "line"
    #: What every client hears when the service stops.
    shutdown_message = "Server shutting down. Goodbye."
    #: ListeningService logs where it listens; no "Starting factory" lines.
    noisy = False
    #: What every connection's outbox calls before a reply
    #: (:class:`chatservice.conn.outbox.Outbox`); the chat's backend flush.
    sync: Callable[[], None] | None = None
    #: Where every connection's outbox holds its writes while the history
    #: store commits (:mod:`chatservice.stores.gate`); ``None``: no store.
    gate: Gate | None = None
    #: The strangers' budget's (``StrangersBudget.recount_delay``).
    recount_delay: ClassVar[float] = StrangersBudget.recount_delay

    def __init__(
        self, limits: Limits | None = None, clock: IReactorTime | None = None
    ) -> None:
        if clock is None:
            from twisted.internet import reactor

            clock = reactor
        self.limits = limits if limits is not None else Limits()
        self.clock: IReactorTime = clock
        self.connections: set[Connection] = set()
        #: The strangers' budget (``conn/strangers.py``).
        self.budget = StrangersBudget(clock, lambda: self.limits, self._evicting)
        self.admission = Admission(self.limits)
        #: Refusals and evictions, logged at most once per interval each.
        self.refusals = RateLimitedLog(clock, self.name, "refused")
        self.evictions = RateLimitedLog(clock, self.name, "evicted")
        self.idle = IdleSweep(clock, self.limits.idle_timeout, lambda: self.connections)
        #: Writes the connections' deliveries at the end of the reactor turn.
        self.writer = TurnWriter(clock, self.name)
        #: What this door counts (``/stats``, ``chatservice.metrics``).
        self.counters = DoorCounters()
        self._all_closed: list[Deferred[None]] = []

    def set_limits(self, limits: Limits) -> None:
        """
        Limits changed at run time (a reload): admission (clients, per
        address, strangers), the idle sweep, the registration deadline and
        flood control apply them at once, to the connections already here
        too; the line length and the send queue are read when a connection
        is made, so they apply to new connections.
        """
        self.limits = limits
        self.admission.limits = limits
        self.idle.stop()
        self.idle.timeout = limits.idle_timeout
        if self.connections:
            self.idle.watch()
        self.budget.limits_changed()
        now = self.clock.seconds()
        for connection in self.connections:
            if not (connection.flood_controlled and connection.admitted):
                continue
            if limits.flood_rate <= 0:
                connection._flood = None
            elif connection._flood is None:
                connection._flood = FloodControl(limits, now)
            else:
                connection._flood.limits = limits

    def admit(self, connection: Connection) -> Refusal | None:
        """
        Count a new connection, or say why it is refused: the service is
        full, or its address holds too many connections already.
        """
        refusal = self.admission.admit(connection.host)
        if refusal is not None:
            self.counters.count_refusal(refusal.kind)
            return refusal
        self.counters.accepted += 1
        self.connections.add(connection)
        self.idle.watch()
        self.budget.arrive(connection)
        return None

    @property
    def strangers(self) -> dict[Stranger, float]:
        """Connections still registering, oldest first, with when they came."""
        return self.budget.waiting

    @property
    def turn(self) -> int:
        """The strangers' budget's turn (:attr:`StrangersBudget.turn`)."""
        return self.budget.turn

    @property
    def chooser(self) -> random.Random:
        """Chooses whom to evict among the older half (tests seed it)."""
        return self.budget.chooser

    @chooser.setter
    def chooser(self, chooser: random.Random) -> None:
        self.budget.chooser = chooser

    def _evicting(self, victim: Stranger) -> None:
        """The budget evicts ``victim``: counted, and logged (rate-limited)."""
        self.counters.evicted += 1
        self.evictions.note(
            victim, f"strangers' budget of {self.limits.max_strangers} full"
        )

    def handOver(self, old: Connection, new: Connection) -> None:
        """
        ``new`` carries on ``old``'s connection (the web door's HTTP
        connection, upgraded to a WebSocket): it takes its admission, in
        total and per address, and its place on the strangers' budget with
        the time it came, so that the registration deadline and the order of
        eviction run on from the connection, not from the hand-over.  ``old``
        is no longer admitted (its ``connectionLost`` releases nothing).
        """
        self.connections.discard(old)
        self.connections.add(new)
        old.admitted = False
        if old.stranger:
            self.budget.hand_over(old, new)

    def release(self, connection: Connection) -> None:
        """Forget a connection that was admitted and is now gone."""
        self.connections.discard(connection)
        if connection.stranger:
            self.budget.leave(connection)
        self.admission.release(connection.host, registered=not connection.stranger)
        if not self.connections:
            self.idle.stop()
            waiting, self._all_closed = self._all_closed, []
            for waiter in waiting:
                waiter.callback(None)

    def closeAll(self, message: str | None = None) -> Deferred[None]:
        """
        Say goodbye to every connection and close it; the result fires once
        all of them are gone (those that do not read are aborted after the
        grace period).
        """
        if not self.connections:
            return succeed(None)
        waiter: Deferred[None] = Deferred()
        self._all_closed.append(waiter)
        for connection in list(self.connections):
            connection.close(message or self.shutdown_message)
        return waiter


class Described(Protocol):
    """A connection as a log line names it."""

    @property
    def peer(self) -> str: ...


class RateLimitedLog:
    """
    One log line per kind of event and service at most every ``interval``
    seconds, saying how many more there were since: a storm of refused
    connections must not become a storm of log lines.
    """

    log: ClassVar[Logger] = Logger()

    def __init__(
        self, clock: IReactorTime, service: str, what: str, interval: float = 10.0
    ) -> None:
        self.clock = clock
        self.service = service
        self.what = what
        self.interval = interval
        self._last = -math.inf
        self._since = 0

    def note(self, who: Described, reason: object) -> None:
        """
        One more such event, about connection ``who``: logged now, or
        counted for the next line (its peer is described only when logged).
        """
        now = self.clock.seconds()
        if now - self._last < self.interval:
            self._since += 1
            return
        self.log.info(
            "{service}: {what} {peer}: {reason}{more}",
            service=self.service,
            what=self.what,
            peer=who.peer,
            reason=reason,
            more=f" ({self._since} more since the last such line)"
            if self._since
            else "",
            count=self._since + 1,
        )
        self._last, self._since = now, 0
