"""
The hub's administration: operators, the broadcast, kicks, bans and the
client limit, the rules an operator's commands (and the admin console's)
call.  A part of :class:`~chatservice.chat.hub.Hub`, kept apart to keep
each module one concern.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import TYPE_CHECKING

from chatservice.chat import events
from chatservice.chat.errors import InvalidLimit, NoSuchBan, NotOperator
from chatservice.chat.model import Ban, Session, Stats, parse_address_target
from chatservice.chat.names import check_nick, fold
from chatservice.chat.text import visible

if TYPE_CHECKING:
    from chatservice.backends.base import HubBackend
    from chatservice.stores.base import HistoryStore


class Administration:
    """Operators, the broadcast, kicks, bans, the limit (see the module)."""

    # What of the hub this part uses (Hub has them).
    sessions: dict[Session, None]
    stats: Stats
    clock: Callable[[], float]
    backend: HubBackend
    store: HistoryStore | None
    max_clients: int

    if TYPE_CHECKING:

        def _stamp(self) -> tuple[str, float]: ...
        def _deliver(
            self, sessions: Collection[Session], event: events.Event
        ) -> None: ...
        def _remove(self, session: Session) -> None: ...
        def find(self, nick: str) -> Session: ...
        def _neighbours(
            self,
            session: Session,
            *,
            include_self: bool = False,
            presence: bool = False,
        ) -> list[Session]: ...

    def grant_operator(self, session: Session, account: str) -> None:
        """Make a session an operator (after the door checked credentials)."""
        session.operator = account

    def require_operator(self, session: Session, command: str) -> str:
        """The operator's name for logs, or :class:`NotOperator`."""
        if session.operator is None:
            raise NotOperator(command)
        return session.nick or session.operator

    def announce(self, text: str, by: str) -> int:
        """Send a notice to every connected client; returns how many."""
        self.stats.announcements += 1
        event_id, at = self._stamp()
        event = events.Announcement(visible(text), by, id=event_id, at=at)
        self._deliver(self.sessions, event)
        return len(self.sessions)

    def kick(self, nick: str, by: str, reason: str = "") -> Session:
        """Remove a member from the chat; they and their rooms are told why."""
        target = self.find(nick)
        assert target.nick is not None
        reason = visible(reason)
        event_id, at = self._stamp()
        event = events.Kicked(target.nick, by, reason, id=event_id, at=at)
        self._deliver(self._neighbours(target, include_self=True), event)
        self.stats.kicks += 1
        self._remove(target)
        target.member.disconnect(f"kicked by {by}" + (f": {reason}" if reason else ""))
        return target

    def ban(
        self, target: str, duration: float | None, by: str, reason: str = ""
    ) -> tuple[Ban, list[Session]]:
        """
        Ban a nickname, or an IP address or network (``10.0.0.7``,
        ``10.0.0.0/24``), for ``duration`` seconds (``None``: until unbanned).
        Clients it matches are kicked; returns the ban and them.
        """
        network = parse_address_target(target)
        shown = str(network) if network is not None else check_nick(target)
        until = None if duration is None else self.clock() + duration
        ban = Ban(shown, until, visible(reason), by, network)
        self.backend.add_ban(ban)
        if self.store is not None:
            self.store.add_ban(ban)
        self.stats.bans += 1
        if network is not None:
            matched = [s for s in self.sessions if ban.matches_address(s.address)]
        else:
            holder = self.backend.holder(fold(shown))
            matched = [holder] if holder is not None else []
        why = "banned" + ban_terms(ban.remaining(self.clock()), ban.reason)
        for session in matched:
            if session.nick is not None:
                self.kick(session.nick, by, why)
            else:
                self._remove(session)
                session.member.disconnect(why)
        return ban, matched

    def unban(self, target: str) -> Ban:
        """Lift a ban, or :class:`NoSuchBan`."""
        key = fold(target.strip())
        network = parse_address_target(target.strip())
        for ban in self.bans():
            if fold(ban.target) == key or (
                network is not None and ban.network == network
            ):
                self.backend.remove_ban(ban)
                if self.store is not None:
                    self.store.remove_ban(ban)
                return ban
        raise NoSuchBan(target.strip())

    def bans(self) -> list[Ban]:
        """Bans in force, oldest first (expired ones are forgotten)."""
        return self.backend.bans(self.clock())

    def set_max_clients(self, limit: int) -> None:
        """Change the client limit; connected clients stay, new ones wait."""
        if limit < 0:
            raise InvalidLimit(limit)
        self.max_clients = limit
        self.backend.limit_changed(limit)

    def connections(self) -> list[Session]:
        """Every connected session, oldest first."""
        return list(self.sessions)


def ban_terms(remaining: float | None, reason: str) -> str:
    """`` for 5m: reason`` — how long a ban lasts and why, for the user."""
    from chatservice.chat.durations import format_duration

    terms = (
        " until unbanned" if remaining is None else f" for {format_duration(remaining)}"
    )
    return terms + (f": {reason}" if reason else "")
