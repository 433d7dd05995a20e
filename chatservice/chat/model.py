"""
What the chat is made of: sessions, rooms, bans, the configuration and the
counters.  Plain objects; the rules that change them are in
:mod:`chatservice.chat.hub`.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Protocol

from chatservice.chat import events
from chatservice.chat.names import fold
from chatservice.metrics.counters import LATENCY_BUCKETS, Histogram


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
    #: Rooms with more members than this are quiet about who comes and goes:
    #: joins, parts and quits are shown only to the member concerned (``/who``
    #: still lists everyone).  Announced to everyone, they cost each newcomer
    #: a delivery to every member: 10,000 joins into one room would be 50
    #: million deliveries.  0: every room announces them.
    quiet_room_size: int = 500


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

    def remaining(self, now: float) -> float | None:
        """Seconds the ban still lasts, or ``None`` until unbanned."""
        return None if self.until is None else self.until - now


@dataclass
class Stats:
    """
    Counters since the hub started: what ``/stats`` shows and the
    Prometheus endpoint exports (``chatservice.metrics``), one set for both.
    """

    started_at: float
    connections_total: int = 0
    connections_peak: int = 0
    #: The most members registered here at once (IRC's LUSERS shows it).
    members_peak: int = 0
    #: Connections refused by the hub: a banned address, every registered
    #: place taken (at connection or at registration).
    refused_banned: int = 0
    refused_full: int = 0
    room_messages: int = 0
    private_messages: int = 0
    deliveries: int = 0
    kicks: int = 0
    bans: int = 0
    announcements: int = 0
    #: Seconds from a room message said to its delivery to the members'
    #: doors (observed by the backend, once per batch: its oldest message).
    delivery_latency: Histogram = field(
        default_factory=lambda: Histogram(LATENCY_BUCKETS)
    )

    @property
    def refused(self) -> int:
        """Connections the hub refused, for any reason."""
        return self.refused_banned + self.refused_full


def parse_address_target(
    target: str,
) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    """An IP address or network in CIDR form, or ``None`` for a nickname."""
    try:
        return ipaddress.ip_network(target, strict=False)
    except ValueError:
        return None
