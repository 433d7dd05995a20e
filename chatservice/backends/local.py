"""
The backend of a chat in one process: nicknames and bans in dictionaries,
events handed straight to the members' doors.

Room messages said in one turn are collected (given ``call_soon``, the end
of the reactor turn) and delivered together as one
:class:`~chatservice.chat.events.RoomMessages`: one call per member per turn
rather than per message, which is what makes a busy room cheap
(``docs/performance.rst``).  Nothing overtakes them: anything else the
backend delivers, a membership change (:meth:`LocalBackend.flush`, called by
the hub) and any line a door sends a member of its own (through the
member's outbox, :mod:`chatservice.conn.outbox`) delivers them first.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping

from twisted.internet.defer import Deferred, fail, succeed

from chatservice.backends.base import nick_refusal, one_event
from chatservice.chat import events
from chatservice.chat.model import Ban, Room, Session
from chatservice.chat.names import fold
from chatservice.metrics.counters import Histogram


class LocalBackend:
    """A :class:`~chatservice.backends.base.HubBackend` inside this process."""

    def __init__(
        self, call_soon: Callable[[Callable[[], None]], object] | None = None
    ) -> None:
        #: Runs a callable at the end of the current turn; without it, every
        #: room message is delivered at once.
        self._call_soon = call_soon
        self._nicks: dict[str, Session] = {}
        #: The same sessions by what their nicknames look like.
        self.lookalikes: dict[str, Session] = {}
        self._bans: list[Ban] = []
        #: Room messages said in one room since anything else happened.
        self._said_in: Room | None = None
        self._said: list[events.RoomMessage] = []
        self._flush_asked = False
        #: Called before anything is delivered (the store's commit).
        self._barrier: Callable[[], None] | None = None
        #: Where a turn's room messages' wait is observed, and the clock of
        #: their times (:meth:`measure_latency`).
        self._latency: Histogram | None = None
        self._clock: Callable[[], float] | None = None

    def set_barrier(self, barrier: Callable[[], None]) -> None:
        self._barrier = barrier

    def measure_latency(self, histogram: Histogram, clock: Callable[[], float]) -> None:
        """
        Observe into ``histogram`` how long the oldest room message of each
        batch waited before its delivery (``clock`` is the hub's, whose
        times the messages carry): once per room and turn, not per member.
        """
        self._latency, self._clock = histogram, clock

    def health(self) -> str | None:
        """Why the backend cannot carry the chat, or ``None``: in one process, never."""
        return None

    def start(self) -> Deferred[None]:
        return succeed(None)

    def stop(self) -> Deferred[None]:
        self.flush()
        return succeed(None)

    # Nicknames

    @property
    def nicks(self) -> Mapping[str, Session]:
        return self._nicks

    def claim_nick(
        self, session: Session, nick: str, key: str, looks: str
    ) -> Deferred[None]:
        refusal = nick_refusal(self._nicks, self.lookalikes, session, nick, key, looks)
        if refusal is not None:
            return fail(refusal)
        self._nicks[key] = session
        self.lookalikes[looks] = session
        return succeed(None)

    def release_nick(
        self, session: Session, key: str | None, looks: str | None
    ) -> None:
        if key is not None and self._nicks.get(key) is session:
            del self._nicks[key]
        if looks is not None and self.lookalikes.get(looks) is session:
            del self.lookalikes[looks]

    def holder(self, key: str) -> Session | None:
        return self._nicks.get(key)

    # Deliveries

    def publish(self, room: Room, event: events.Event) -> None:
        self.send(room.members, event)

    def send(self, sessions: Collection[Session], event: events.Event) -> None:
        self.flush()
        if self._barrier is not None:
            self._barrier()
        for session in sessions:
            session.member.deliver(event)

    def say(self, room: Room, message: events.RoomMessage) -> None:
        if self._call_soon is None:
            self.send(room.members, message)
            return
        # Collected, not delivered: what the turn says in a busy room
        # reaches each member as one event.
        if self._said_in is not room:
            self.flush()
            self._said_in = room
            if not self._flush_asked:
                self._flush_asked = True
                self._call_soon(self._turn_ended)
        self._said.append(message)

    def _turn_ended(self) -> None:
        self._flush_asked = False
        self.flush()

    def flush(self) -> None:
        room = self._said_in
        if room is None:
            return
        said, self._said, self._said_in = self._said, [], None
        if self._barrier is not None:
            self._barrier()  # stored before anyone sees it
        event = one_event(room.name, said)
        if self._latency is not None and self._clock is not None:
            self._latency.observe(self._clock() - said[0].at)
        for session in room.members:
            session.member.deliver(event)

    # Who is where: nobody else to tell.

    def member_registered(self, session: Session) -> None:
        pass

    def member_renamed(self, session: Session) -> None:
        pass

    def member_joined(self, session: Session, room: Room) -> None:
        pass

    def member_left(self, session: Session, room: Room) -> None:
        pass

    def member_gone(self, session: Session) -> None:
        pass

    def limit_changed(self, limit: int) -> None:
        pass

    # Bans

    def add_ban(self, ban: Ban) -> None:
        key = fold(ban.target)
        self._bans = [b for b in self._bans if fold(b.target) != key]
        self._bans.append(ban)

    def remove_ban(self, ban: Ban) -> None:
        self._bans.remove(ban)

    def bans(self, now: float) -> list[Ban]:
        self._bans = [b for b in self._bans if b.until is None or b.until > now]
        return list(self._bans)
