"""
The hub: every room, member, nickname, operator and ban of one chat.

It does no I/O and imports no reactor.  A front end calls
:meth:`Hub.connect` with a :class:`Member` (anything that can take an event
and be disconnected), then the hub's methods on the :class:`Session` it got
back; they return what the front end shows, raise
:class:`~chatservice.chat.errors.ChatError` with a message for the user, and
deliver :mod:`~chatservice.chat.events` to the members concerned.
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Protocol

from chatservice.chat import events
from chatservice.chat.errors import ChatError, NotOperatorError, RefusedError
from chatservice.chat.names import check_nick, check_room, fold, skeleton
from chatservice.text import visible


class Member(Protocol):
    """The hub's view of one connection, whatever its front end."""

    def deliver(self, event: events.Event) -> None:
        """Show an event to this member."""

    def disconnect(self, reason: str) -> None:
        """The hub removed this member (kick, ban); close the connection."""


@dataclass(frozen=True)
class ChatConfig:
    """The chat's rules and limits; see ``docs/limits.rst``."""

    #: Room every member joins on registration.
    default_room: str = "lobby"
    #: Clients connected at once (0: no limit); changed at run time by /limit.
    max_clients: int = 1000
    #: Rooms that may exist at once.
    max_rooms: int = 1000
    #: Rooms one member may be in at once.
    max_rooms_per_member: int = 20
    #: Longest topic, in characters.
    max_topic_length: int = 300


class Session:
    """One connected client as the hub sees it."""

    __slots__ = (
        "address",
        "connected_at",
        "current",
        "key",
        "last_active",
        "member",
        "nick",
        "operator",
        "rooms",
    )

    def __init__(self, member: Member, address: str | None, now: float) -> None:
        self.member = member
        self.address = address
        #: Shown nickname, ``None`` until registered.
        self.nick: str | None = None
        #: Folded nickname, the key of :attr:`Hub.nicks`.
        self.key: str | None = None
        #: Rooms joined, in the order joined (a tuple: 48 bytes for one
        #: room where a dict takes 184, for every client).
        self.rooms: tuple[Room, ...] = ()
        #: Room plain lines go to.
        self.current: Room | None = None
        #: Credentials name this member logged in with by /oper.
        self.operator: str | None = None
        self.connected_at = now
        self.last_active = now

    def __repr__(self) -> str:
        return f"<Session {self.nick or '(unregistered)'} from {self.address}>"

    def joined(self, key: str) -> Room | None:
        """The room with this folded name, if this session is in it."""
        for room in self.rooms:
            if room.key == key:
                return room
        return None


class Room:
    """A room and its members."""

    __slots__ = ("created_at", "key", "members", "name", "topic")

    def __init__(self, name: str, now: float) -> None:
        self.name = name
        self.key = fold(name)
        self.topic = ""
        #: Members in the order they joined (a dict as an ordered set).
        self.members: dict[Session, None] = {}
        self.created_at = now

    def __repr__(self) -> str:
        return f"<Room #{self.name} ({len(self.members)})>"

    def nicks(self) -> list[str]:
        """Members' nicknames, sorted case-insensitively."""
        return sorted((s.nick for s in self.members if s.nick), key=fold)


@dataclass(frozen=True)
class Ban:
    """A banned nickname or address (network) until a time (``None``: ever)."""

    target: str
    until: float | None
    reason: str
    by: str
    network: ipaddress.IPv4Network | ipaddress.IPv6Network | None = None

    def matches_address(self, address: str | None) -> bool:
        if self.network is None or address is None:
            return False
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            # An IPv4 client on a dual-stack (tcp6:) port: ::ffff:10.0.0.7.
            return ip in self.network or ip.ipv4_mapped in self.network
        return ip in self.network


@dataclass
class Stats:
    """Counters since the hub started."""

    started_at: float
    connections_total: int = 0
    connections_peak: int = 0
    refused: int = 0
    room_messages: int = 0
    private_messages: int = 0
    deliveries: int = 0
    kicks: int = 0
    bans: int = 0
    announcements: int = 0


def parse_address_target(
    target: str,
) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    """An IP address or network in CIDR form, or ``None`` for a nickname."""
    try:
        return ipaddress.ip_network(target, strict=False)
    except ValueError:
        return None


class Hub:
    """All state and rules of one chat."""

    def __init__(
        self,
        config: ChatConfig | None = None,
        clock: Callable[[], float] = time.time,
        *,
        call_soon: Callable[[Callable[[], None]], object] | None = None,
    ) -> None:
        self.config = config if config is not None else ChatConfig()
        self.clock = clock
        #: Runs a callable once the current batch of input has been handled
        #: (the end of the reactor turn); without it, every message is
        #: delivered at once.
        self._call_soon = call_soon
        #: Room messages said in one room since anything else happened:
        #: delivered together (:meth:`flush`), one event per member.
        self._said_in: Room | None = None
        self._said: list[events.RoomMessage] = []
        self._flush_asked = False
        self.max_clients = self.config.max_clients
        self.sessions: dict[Session, None] = {}
        self.nicks: dict[str, Session] = {}
        #: The same sessions by what their nicknames look like.
        self.lookalikes: dict[str, Session] = {}
        self.rooms: dict[str, Room] = {}
        self._bans: list[Ban] = []
        self.stats = Stats(started_at=clock())
        self.default_room = check_room(self.config.default_room)

    # Connections

    def connect(self, member: Member, address: str | None = None) -> Session:
        """
        Take a new connection, or raise :class:`RefusedError` when the chat is
        full or the address is banned.
        """
        ban = self._address_ban(address)
        if ban is not None:
            self.stats.refused += 1
            raise RefusedError(f"you are banned{_ban_terms(ban, self.clock())}")
        if self.max_clients and len(self.sessions) >= self.max_clients:
            self.stats.refused += 1
            raise RefusedError(
                f"server full ({self.max_clients} client"
                f"{'s' if self.max_clients != 1 else ''}); please try again later"
            )
        session = Session(member, address, self.clock())
        self.sessions[session] = None
        self.stats.connections_total += 1
        self.stats.connections_peak = max(
            self.stats.connections_peak, len(self.sessions)
        )
        return session

    def disconnect(self, session: Session, reason: str = "") -> None:
        """Forget a connection that is gone; its rooms hear that it quit."""
        if session not in self.sessions:
            return
        if session.nick is not None:
            quit_event = events.Quit(session.nick, visible(reason))
            self._deliver(self._neighbours(session), quit_event)
        self._remove(session)

    def _remove(self, session: Session) -> None:
        del self.sessions[session]
        for room in session.rooms:
            self._leave(session, room)
        if session.key is not None and self.nicks.get(session.key) is session:
            del self.nicks[session.key]
            del self.lookalikes[skeleton(session.key)]
        session.rooms = ()
        session.current = None

    # Nicknames

    def set_nick(self, session: Session, wanted: str) -> str:
        """
        Give a session a nickname: registers it (and joins the default room)
        the first time, renames it after that.  Returns the nickname.
        """
        nick = check_nick(wanted)
        key = fold(nick)
        if key == nick:
            key = nick  # one string, not two equal ones, per member
        holder = self.nicks.get(key)
        if holder is not None and holder is not session:
            raise ChatError(f"the nickname {nick} is taken")
        looks = skeleton(key)
        if looks == key:
            looks = key
        twin = self.lookalikes.get(looks)
        if twin is not None and twin is not session:
            raise ChatError(f"the nickname {nick} looks too much like {twin.nick}")
        ban = self._nick_ban(key)
        if ban is not None:
            raise ChatError(
                f"the nickname {nick} is banned{_ban_terms(ban, self.clock())}"
            )
        session.last_active = self.clock()
        old = session.nick
        if old == nick:
            return nick
        if session.key is not None:
            del self.nicks[session.key]
            del self.lookalikes[skeleton(session.key)]
        self.nicks[key] = session
        self.lookalikes[looks] = session
        session.nick, session.key = nick, key
        if old is None:
            self.join(session, self.default_room)
        else:
            self._deliver(
                self._neighbours(session, include_self=True),
                events.NickChanged(old, nick),
            )
        return nick

    def find(self, nick: str) -> Session:
        """The session with this nickname, or :class:`ChatError`."""
        session = self.nicks.get(fold(nick.strip()))
        if session is None:
            raise ChatError(f"no such nickname: {nick.strip()}")
        return session

    # Rooms

    def join(self, session: Session, name: str) -> Room:
        """
        Join a room (created on first join) and make it the current one; a
        room already joined just becomes current.
        """
        nick = self._require_nick(session)
        shown = check_room(name)
        key = fold(shown)
        room = session.joined(key)
        if room is not None:
            session.current = room
            return room
        if len(session.rooms) >= self.config.max_rooms_per_member:
            raise ChatError(
                f"you are in {len(session.rooms)} rooms already "
                f"(limit {self.config.max_rooms_per_member}); /part one first"
            )
        room = self.rooms.get(key)
        if room is None:
            if len(self.rooms) >= self.config.max_rooms:
                raise ChatError(
                    f"the server has {len(self.rooms)} rooms (its limit); "
                    "join an existing one"
                )
            room = self.rooms[key] = Room(shown, self.clock())
        self.flush()  # what was said before is not for the newcomer
        room.members[session] = None
        session.rooms = (*session.rooms, room)
        session.current = room
        self._deliver(room.members, events.Joined(room.name, nick))
        return room

    def part(self, session: Session, name: str | None = None, reason: str = "") -> Room:
        """Leave a room (the current one by default)."""
        nick = self._require_nick(session)
        room = self._joined(session, name)
        self._deliver(room.members, events.Parted(room.name, nick, visible(reason)))
        self._leave(session, room)
        return room

    def _leave(self, session: Session, room: Room) -> None:
        self.flush()
        room.members.pop(session, None)
        session.rooms = tuple(r for r in session.rooms if r is not room)
        if session.current is room:
            session.current = session.rooms[-1] if session.rooms else None
        if not room.members and room.key != fold(self.default_room):
            self.rooms.pop(room.key, None)

    def room(self, name: str) -> Room:
        """An existing room, or :class:`ChatError`."""
        room = self.rooms.get(fold(check_room(name)))
        if room is None:
            raise ChatError(f"no such room: #{check_room(name)}")
        return room

    def who(self, session: Session, name: str | None = None) -> Room:
        """The room whose members to list: the named one, or the current one."""
        if name:
            return self.room(name)
        return self._current(session)

    def all_rooms(self) -> list[Room]:
        """Every room, by name."""
        return sorted(self.rooms.values(), key=lambda room: room.key)

    def set_topic(self, session: Session, topic: str, name: str | None = None) -> Room:
        """Set the topic of a room the member is in (any member may)."""
        nick = self._require_nick(session)
        room = self._joined(session, name)
        topic = topic.strip()
        if len(topic) > self.config.max_topic_length:
            raise ChatError(
                f"a topic has at most {self.config.max_topic_length} characters"
            )
        room.topic = topic = visible(topic)
        self._deliver(room.members, events.TopicChanged(room.name, nick, topic))
        return room

    # Messages

    def say(self, session: Session, text: str, *, action: bool = False) -> Room:
        """Say a line to the current room; every member hears it, sender too."""
        nick = self._require_nick(session)
        room = self._current(session)
        session.last_active = self.clock()
        event = events.RoomMessage(room.name, nick, visible(text), action)
        self.stats.room_messages += 1
        if self._call_soon is None:
            self._deliver(room.members, event)
            return room
        # Collected, not delivered: what the turn says in a busy room
        # reaches each member as one event, costing one Python call per
        # member per turn rather than per message.
        if self._said_in is not room:
            self.flush()
            self._said_in = room
            if not self._flush_asked:
                self._flush_asked = True
                self._call_soon(self._turn_ended)
        self._said.append(event)
        self.stats.deliveries += len(room.members)
        return room

    def _turn_ended(self) -> None:
        self._flush_asked = False
        self.flush()

    def flush(self) -> None:
        """
        Deliver the room messages collected so far.  The hub does it before
        anything else happens (another event, a member joining or leaving),
        and at the end of the turn; a front end calls it before it sends a
        member anything of its own, so that every member sees things in the
        order they happened.
        """
        room = self._said_in
        if room is None:
            return
        said, self._said, self._said_in = self._said, [], None
        event: events.Event = (
            said[0] if len(said) == 1 else events.RoomMessages(room.name, tuple(said))
        )
        for session in room.members:
            session.member.deliver(event)

    def whisper(self, session: Session, nick: str, text: str) -> Session:
        """Send a private message; only the recipient (and the sender) see it."""
        sender = self._require_nick(session)
        target = self.find(nick)
        assert target.nick is not None
        session.last_active = self.clock()
        event = events.PrivateMessage(sender, target.nick, visible(text))
        self.stats.private_messages += 1
        self._deliver([target] if target is session else [target, session], event)
        return target

    # Operators and administration

    def grant_operator(self, session: Session, account: str) -> None:
        """Make a session an operator (after the front end checked credentials)."""
        session.operator = account

    def require_operator(self, session: Session, command: str) -> str:
        """The operator's name for logs, or :class:`NotOperatorError`."""
        if session.operator is None:
            raise NotOperatorError(command)
        return session.nick or session.operator

    def announce(self, text: str, by: str) -> int:
        """Send a notice to every connected client; returns how many."""
        self.stats.announcements += 1
        event = events.Announcement(visible(text), by)
        self._deliver(self.sessions, event)
        return len(self.sessions)

    def kick(self, nick: str, by: str, reason: str = "") -> Session:
        """Remove a member from the chat; they and their rooms are told why."""
        target = self.find(nick)
        assert target.nick is not None
        reason = visible(reason)
        event = events.Kicked(target.nick, by, reason)
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
        self._bans = [b for b in self._bans if fold(b.target) != fold(shown)]
        self._bans.append(ban)
        self.stats.bans += 1
        if network is not None:
            matched = [s for s in self.sessions if ban.matches_address(s.address)]
        else:
            holder = self.nicks.get(fold(shown))
            matched = [holder] if holder is not None else []
        why = "banned" + _ban_terms(ban, self.clock())
        for session in matched:
            if session.nick is not None:
                self.kick(session.nick, by, why)
            else:
                self._remove(session)
                session.member.disconnect(why)
        return ban, matched

    def unban(self, target: str) -> Ban:
        """Lift a ban, or :class:`ChatError` when there is none."""
        key = fold(target.strip())
        network = parse_address_target(target.strip())
        for ban in self.bans():
            if fold(ban.target) == key or (
                network is not None and ban.network == network
            ):
                self._bans.remove(ban)
                return ban
        raise ChatError(f"no ban on {target.strip()}")

    def bans(self) -> list[Ban]:
        """Bans in force, oldest first (expired ones are forgotten)."""
        now = self.clock()
        self._bans = [b for b in self._bans if b.until is None or b.until > now]
        return list(self._bans)

    def set_max_clients(self, limit: int) -> None:
        """Change the client limit; connected clients stay, new ones wait."""
        if limit < 0:
            raise ChatError("the client limit is 0 (none) or more")
        self.max_clients = limit

    def connections(self) -> list[Session]:
        """Every connected session, oldest first."""
        return list(self.sessions)

    # Helpers

    def _deliver(self, sessions: Collection[Session], event: events.Event) -> None:
        self.flush()
        for session in sessions:
            session.member.deliver(event)
        self.stats.deliveries += len(sessions)

    def _require_nick(self, session: Session) -> str:
        if session.nick is None:
            raise ChatError("choose a nickname first: /nick NAME")
        return session.nick

    def _current(self, session: Session) -> Room:
        if session.current is None:
            raise ChatError("you are in no room; /join ROOM")
        return session.current

    def _joined(self, session: Session, name: str | None) -> Room:
        if not name:
            return self._current(session)
        room = session.joined(fold(check_room(name)))
        if room is None:
            raise ChatError(f"you are not in #{check_room(name)}")
        return room

    def _neighbours(
        self, session: Session, *, include_self: bool = False
    ) -> list[Session]:
        """Everyone who shares a room with a session, once each."""
        seen: dict[Session, None] = {session: None} if include_self else {}
        for room in session.rooms:
            seen.update(room.members)
        if not include_self:
            seen.pop(session, None)
        return list(seen)

    def _address_ban(self, address: str | None) -> Ban | None:
        if address is None:
            return None
        return next((b for b in self.bans() if b.matches_address(address)), None)

    def _nick_ban(self, key: str) -> Ban | None:
        return next(
            (b for b in self.bans() if b.network is None and fold(b.target) == key),
            None,
        )


def _ban_terms(ban: Ban, now: float) -> str:
    """`` for 5m: reason`` — how long a ban lasts and why, for the user."""
    terms = (
        " until unbanned"
        if ban.until is None
        else f" for {format_duration(ban.until - now)}"
    )
    return terms + (f": {ban.reason}" if ban.reason else "")


def format_duration(seconds: float) -> str:
    """``90`` → ``1m30s``: a short human duration."""
    seconds = max(0, int(seconds + 0.5))
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            parts.append(f"{seconds // size}{unit}")
            seconds %= size
    if seconds or not parts:
        parts.append(f"{seconds}s")
    return "".join(parts)


#: Unit words a plain number may be followed by (``5 minutes``).
DURATION_WORDS = {
    **dict.fromkeys(("s", "sec", "secs", "second", "seconds"), "s"),
    **dict.fromkeys(("m", "min", "mins", "minute", "minutes"), "m"),
    **dict.fromkeys(("h", "hr", "hrs", "hour", "hours"), "h"),
    **dict.fromkeys(("d", "day", "days"), "d"),
    **dict.fromkeys(("w", "week", "weeks"), "w"),
}


def take_duration(text: str) -> tuple[float | None, str] | None:
    """
    A duration at the start of ``text`` (``10m``, ``forever``, or a number
    and a unit word: ``5 minutes``) and the rest of the text; ``None`` when
    ``text`` does not start with one.
    """
    first, _, rest = text.strip().partition(" ")
    if first.isdigit():
        word, _, after = rest.strip().partition(" ")
        unit = DURATION_WORDS.get(word.lower())
        if unit is not None:
            first, rest = first + unit, after
    try:
        return parse_duration(first), rest
    except ChatError:
        return None


def parse_duration(text: str) -> float | None:
    """
    ``30s``, ``10m``, ``2h``, ``1d``, ``1h30m`` or plain seconds; ``0``,
    ``forever`` or ``permanent`` mean until unbanned (``None``).
    """
    text = text.strip().lower()
    if text in ("0", "forever", "permanent", "perm"):
        return None
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
    total = 0.0
    number = ""
    for char in text:
        if char in "0123456789":
            number += char
        elif char in units and number:
            total += int(number) * units[char]
            number = ""
        else:
            raise ChatError(f"not a duration: {text} (try 30s, 10m, 2h, 1d, forever)")
    if number:
        total += int(number)
    if total <= 0:
        raise ChatError(f"not a duration: {text} (try 30s, 10m, 2h, 1d, forever)")
    return total
