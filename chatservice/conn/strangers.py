"""
The strangers' budget of one listening service (``--max-strangers``,
``docs/limits.rst``, *Connection storms*): connections admitted and not
registered yet, oldest first, each with its registration deadline.

When the budget is full a newcomer is not refused: one of the older half
of those that may be evicted, at random, makes room (as OpenSSH's
``MaxStartups``).  Spared: strangers accepted in this turn or the previous
one (the reactor accepts many connections in one turn and reads them in
the next), those that sent a complete line in this turn, and those whose
handshake the door answered in this turn or the previous one (the web
door's upgrade), which are evicted only once no other can be.  Turns are
counted at the end of each reactor turn in which strangers come or speak.

Under a storm a newcomer arrives many times a turn and each arrival evicts
one stranger: who may be evicted is worked out once a turn (the pool, which
only shrinks until the turn ends), not at every arrival.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import ClassVar, Protocol

from twisted.internet.interfaces import IDelayedCall, IReactorTime

from chatservice.conn.limits import Limits
from chatservice.conn.turns import end_of_turn


class Stranger(Protocol):
    """What the budget reads and calls of a connection (``Connection``)."""

    stranger: bool
    arrived_turn: int
    line_turn: int
    handshaken: bool
    handshake_turn: int

    @property
    def peer(self) -> str: ...

    def evicted(self) -> None:
        """Closed to make room for a newcomer."""

    def registrationTimedOut(self) -> None:
        """Closed at its registration deadline."""


class Pool:
    """
    The strangers that may be evicted in one turn, oldest first
    (:meth:`StrangersBudget.pool`): the others in :attr:`first`, those whose
    handshake was answered in :attr:`handshaken`, taken only once
    :attr:`first` is empty.
    """

    __slots__ = ("first", "handshaken", "turn")

    def __init__(self, turn: int) -> None:
        self.turn = turn
        self.first: list[Stranger] = []
        self.handshaken: list[Stranger] = []

    def __len__(self) -> int:
        return len(self.first) + len(self.handshaken)

    def take(self, chooser: random.Random) -> Stranger:
        """One of the older half, at random (of :attr:`first` while any)."""
        pool = self.first or self.handshaken
        return pool.pop(chooser.randrange(max(1, len(pool) // 2)))


class StrangersBudget:
    """
    The strangers of one service (:attr:`waiting`, oldest first, with when
    they came), kept to ``limits().max_strangers`` and to the registration
    deadline (one timer for all of them, the oldest's); ``limits`` is read
    each time (a reload applies at once).  ``evict`` is called
    with each connection evicted (to count and log it) before it is told.
    """

    #: Seconds after which strangers over the budget, spared because none
    #: could be evicted yet, are counted again when nothing else ends the
    #: turn (a reactor turn ends with the next poll's reads).
    recount_delay: ClassVar[float] = 0.01

    def __init__(
        self,
        clock: IReactorTime,
        limits: Callable[[], Limits],
        evict: Callable[[Stranger], None],
    ) -> None:
        self.clock = clock
        self.limits = limits
        self._evict = evict
        #: Connections still registering, oldest first, with when they came.
        self.waiting: dict[Stranger, float] = {}
        #: Reactor turns with strangers' activity, counted at their end
        #: (:meth:`_turnEnded`): what spares newcomers from eviction.
        self.turn = 0
        #: Chooses whom to evict among the older half (tests seed it).
        self.chooser = random.Random()
        self._turn_ending = False
        self._pool: Pool | None = None
        self._deadline_call: IDelayedCall | None = None
        self._recount_call: IDelayedCall | None = None

    def limits_changed(self) -> None:
        """A reload: the deadline is due again from the new limits."""
        self._cancel_deadline()
        self._watch()

    def arrive(self, connection: Stranger) -> None:
        """A newcomer, admitted: on the budget, its deadline running."""
        connection.stranger = True
        connection.arrived_turn = self.turn
        self.waiting[connection] = self.clock.seconds()
        self.end_turn_soon()
        self.trim()
        self._watch()

    def spoke(self, connection: Stranger) -> None:
        """A complete line (or message) was read: not evicted in this turn."""
        connection.line_turn = self.turn
        self._pool = None  # it may have been in it
        self.end_turn_soon()

    def leave(self, connection: Stranger) -> None:
        """A stranger registered, or is gone: off the budget."""
        if self.waiting.pop(connection, None) is not None:
            self._pool = None
        if not self.waiting:
            self._cancel_deadline()
            if self._recount_call is not None:
                if self._recount_call.active():
                    self._recount_call.cancel()
                self._recount_call = None

    def hand_over(self, old: Stranger, new: Stranger) -> None:
        """
        ``new`` carries on ``old``'s connection (the web door's upgrade):
        its place, with the time and turn it came, so that the deadline and
        the order of eviction run on from the connection; the upgrade was
        read whole in this turn, and its answer is on its way.
        """
        del old.stranger
        new.stranger = True
        new.arrived_turn = old.arrived_turn
        new.line_turn = self.turn
        new.handshaken = True
        new.handshake_turn = self.turn
        self._pool = None
        waiting = self.waiting
        if next(reversed(waiting)) is old:
            waiting[new] = waiting.pop(old)  # the newest: stays last
            return
        # Oldest first, as the deadline sweep and eviction read them: the
        # dictionary is rebuilt with ``new`` in ``old``'s place (at most the
        # budget's length).
        entries = [(new if c is old else c, since) for c, since in waiting.items()]
        waiting.clear()
        waiting.update(entries)

    def end_turn_soon(self) -> None:
        """Count the end of this turn (once, however many strangers came)."""
        if not self._turn_ending:
            self._turn_ending = True
            end_of_turn(self.clock).soon(self._turnEnded)

    def _turnEnded(self) -> None:
        self._turn_ending = False
        self.turn += 1
        self.trim()

    def pool(self) -> Pool:
        """
        Strangers that may be evicted in this turn, oldest first: not
        accepted in this turn or the previous one, nor registering in this
        turn (a complete line read); those whose handshake was answered
        (:attr:`Stranger.handshaken`) are spared in the turn of the
        hand-over and the next one too, as newcomers, and come second.
        Worked out once a turn: within a turn newcomers never join it, and
        a stranger that leaves it otherwise than by eviction (registered,
        gone, speaking) has it worked out again.
        """
        turn = self.turn
        pool = self._pool
        if pool is not None and pool.turn == turn:
            return pool
        pool = self._pool = Pool(turn)
        for connection in self.waiting:
            if connection.arrived_turn >= turn - 1:
                break  # in arrival order: the rest are newer still
            if connection.handshake_turn >= turn - 1:
                continue  # its answer to the upgrade may be on its way
            if connection.line_turn != turn:
                if connection.handshaken:
                    pool.handshaken.append(connection)
                else:
                    pool.first.append(connection)
        return pool

    def trim(self) -> None:
        """
        Back to the budget: evict as many as are over it, each chosen at
        random among the older half of those that may be (:meth:`pool`);
        what a connection sends does not spare it beyond its turn.
        Strangers spared now are counted again at the end of the turn.
        """
        budget = self.limits().max_strangers
        waiting = self.waiting
        if not budget or len(waiting) <= budget:
            return
        while len(waiting) > budget:
            # Worked out again only if an eviction changed more than itself.
            pool = self.pool()
            if not pool:
                break
            victim = pool.take(self.chooser)
            del waiting[victim]
            self._evict(victim)
            victim.evicted()
        if len(waiting) > budget and self._recount_call is None:
            self._recount_call = self.clock.callLater(self.recount_delay, self._recount)

    def _recount(self) -> None:
        self._recount_call = None
        self.end_turn_soon()

    def _watch(self) -> None:
        """Make sure the registration deadline of the oldest stranger is due."""
        timeout = self.limits().registration_timeout
        if timeout <= 0 or self._deadline_call is not None or not self.waiting:
            return
        oldest = next(iter(self.waiting.values()))
        wait = max(0.0, oldest + timeout - self.clock.seconds())
        self._deadline_call = self.clock.callLater(wait, self._sweep)

    def _sweep(self) -> None:
        """Close the strangers whose deadline has passed, oldest first."""
        self._deadline_call = None
        deadline = self.clock.seconds() - self.limits().registration_timeout
        for connection, since in list(self.waiting.items()):
            if since > deadline:
                break
            del self.waiting[connection]
            self._pool = None
            connection.registrationTimedOut()
        self._watch()

    def _cancel_deadline(self) -> None:
        if self._deadline_call is not None:
            if self._deadline_call.active():
                self._deadline_call.cancel()
            self._deadline_call = None
