"""
The server powers (broadcast, kick, ban, limit, listings, statistics) as
text commands, parsed once and shared by the line doors: the admin console
and chat operators (``/kick``...).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from twisted.logger import Logger

from chatservice.chat.durations import format_duration, take_duration
from chatservice.chat.errors import UsageError
from chatservice.chat.hub import Hub

if TYPE_CHECKING:
    from chatservice.conn.factory import ConnectionFactory

#: Ban length when none is given.
DEFAULT_BAN = 3600.0

#: Each command's arguments and what it does, for ``help``.
COMMANDS: dict[str, tuple[str, str]] = {
    "broadcast": ("TEXT", "send a notice to every connected client"),
    "kick": ("NICK [REASON]", "disconnect a client; it and its rooms see why"),
    "ban": (
        "NICK|ADDRESS[/BITS] [DURATION] [REASON]",
        "ban a nickname or address for DURATION (30s, 10m, 2h, 1d, forever; "
        f"default {format_duration(DEFAULT_BAN)}) and kick who it matches",
    ),
    "unban": ("NICK|ADDRESS", "lift a ban"),
    "bans": ("", "list the bans in force"),
    "limit": ("[N]", "show or set the maximum number of clients (0: none)"),
    "list": ("", "list connections: nick, address, rooms, idle, connected since"),
    "stats": ("", "show statistics"),
}


class Operations:
    """Runs one administrative command against a hub and returns reply lines."""

    log = Logger()

    def __init__(
        self,
        hub: Hub,
        wall_clock: Callable[[], float] = time.time,
        *,
        doors: Callable[[], Sequence[ConnectionFactory]] | None = None,
    ) -> None:
        self.hub = hub
        self.wall_clock = wall_clock
        #: The doors' factories, whose counters ``stats`` shows.
        self.doors = doors

    def run(self, command: str, args: str, by: str) -> list[str]:
        """
        Run ``command`` with the rest of the line as ``args`` on behalf of
        ``by``; raise a :class:`~chatservice.chat.errors.ChatError`.
        """
        handler = getattr(self, f"do_{command}", None)
        if command not in COMMANDS or handler is None:
            raise UsageError(f"unknown command {command}; try help")
        lines: list[str] = handler(args.strip(), by)
        self.log.info(
            "admin {command} by {by}: {args}", command=command, by=by, args=args.strip()
        )
        return lines

    @staticmethod
    def usage(command: str) -> str:
        args, _ = COMMANDS[command]
        return f"usage: {command} {args}".rstrip()

    def do_broadcast(self, args: str, by: str) -> list[str]:
        if not args:
            raise UsageError(self.usage("broadcast"))
        count = self.hub.announce(args, by)
        return [f"announced to {count} client{'s' if count != 1 else ''}"]

    def do_kick(self, args: str, by: str) -> list[str]:
        nick, _, reason = args.partition(" ")
        if not nick:
            raise UsageError(self.usage("kick"))
        target = self.hub.kick(nick, by, reason.strip())
        return [f"kicked {target.nick}"]

    def do_ban(self, args: str, by: str) -> list[str]:
        target, _, rest = args.partition(" ")
        if not target:
            raise UsageError(self.usage("ban"))
        duration: float | None = DEFAULT_BAN
        taken = take_duration(rest)
        if taken is not None:  # else the whole rest is the reason
            duration, rest = taken
        ban, kicked = self.hub.ban(target, duration, by, rest.strip())
        length = (
            "until unbanned" if duration is None else f"for {format_duration(duration)}"
        )
        line = f"banned {ban.target} {length}"
        if kicked:
            line += " and disconnected " + ", ".join(
                s.nick or s.address or "?" for s in kicked
            )
        return [line]

    def do_unban(self, args: str, by: str) -> list[str]:
        if not args:
            raise UsageError(self.usage("unban"))
        ban = self.hub.unban(args)
        return [f"unbanned {ban.target}"]

    def do_bans(self, args: str, by: str) -> list[str]:
        now = self.hub.clock()
        bans = self.hub.bans()
        if not bans:
            return ["no bans"]
        return [
            f"{b.target} "
            + (
                "until unbanned"
                if b.until is None
                else f"for {format_duration(b.until - now)}"
            )
            + f" by {b.by}"
            + (f": {b.reason}" if b.reason else "")
            for b in bans
        ]

    def do_limit(self, args: str, by: str) -> list[str]:
        hub = self.hub
        if args:
            try:
                limit = int(args)
            except ValueError:
                raise UsageError(self.usage("limit")) from None
            hub.set_max_clients(limit)
        shown = hub.max_clients or "no limit"
        return [f"clients: {len(hub.sessions)} connected, limit {shown}"]

    def do_list(self, args: str, by: str) -> list[str]:
        now = self.hub.clock()
        sessions = self.hub.connections()
        lines = [f"{len(sessions)} connection{'s' if len(sessions) != 1 else ''}"]
        for s in sessions:
            rooms = " ".join(f"#{r.name}" for r in s.rooms) or "-"
            since = time.strftime(
                "%Y-%m-%d %H:%M:%S",
                time.localtime(self.wall_clock() - (now - s.connected_at)),
            )
            op = " (operator)" if s.operator else ""
            lines.append(
                f"{s.nick or '(no nick)'}{op} {s.address or 'local'} rooms {rooms} "
                f"idle {format_duration(now - s.last_active)} since {since}"
            )
        return lines

    def do_stats(self, args: str, by: str) -> list[str]:
        hub, stats = self.hub, self.hub.stats
        lines = [
            f"uptime {format_duration(hub.clock() - stats.started_at)}",
            f"clients {len(hub.sessions)} (peak {stats.connections_peak}, "
            f"limit {hub.max_clients or 'none'}, total {stats.connections_total}, "
            f"refused {stats.refused}: {stats.refused_banned} banned, "
            f"{stats.refused_full} full)",
            f"registered {len(hub.nicks)}, rooms {len(hub.rooms)}",
            f"messages {stats.room_messages} to rooms, {stats.private_messages} "
            f"private, {stats.deliveries} deliveries",
            f"kicks {stats.kicks}, bans {stats.bans} ({len(hub.bans())} in force), "
            f"announcements {stats.announcements}",
        ]
        if hub.store is not None:
            lines.append(f"history {hub.store.status()}")
        for factory in self.doors() if self.doors is not None else ():
            lines.append(door_stats(factory))
        return lines


def door_stats(factory: ConnectionFactory) -> str:
    """One line of ``stats`` about a door, from the counters the metrics read."""
    counts = factory.counters
    return (
        f"door {factory.name}: {len(factory.connections)} open, "
        f"{counts.accepted} accepted, refused {counts.refused_full} full "
        f"{counts.refused_address} address {counts.evicted} strangers, "
        f"bytes {counts.bytes_in} in {counts.bytes_out} out, flood "
        f"{counts.flood_holds} held {counts.flood_disconnects} cut, "
        f"{counts.send_queue_cutoffs} send-queue cut-offs"
    )
