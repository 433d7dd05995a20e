"""
The options every door shares, as ``usage.Options`` reads them
(:data:`COMMON_PARAMETERS`, listed by :class:`chatservice.tap.Options`):
the chat's own (rooms, history, ``--redis``) and the connection limits,
each with its default and what reads its value (``--max-clients auto``,
``--history``).
"""

from __future__ import annotations

from twisted.python import usage

from chatservice.backends.redis.options import REDIS_PARAMETERS
from chatservice.chat.model import ChatConfig
from chatservice.config import CONFIG_OPTION
from chatservice.conn.accepts import DEFAULT_DEFER_ACCEPT
from chatservice.conn.limits import Limits
from chatservice.doors.door import OFF, history_count, positive_int, seconds
from chatservice.stores.sqlite import DEFAULT_MAX_MESSAGES, DEFAULT_WAIT

#: ``--history`` unless told: a file in the directory twistd runs in.
DEFAULT_HISTORY = "sqlite:chatservice.sqlite3"

_DEFAULT_LIMITS = Limits()
_DEFAULT_CHAT = ChatConfig()

#: ``--max-clients auto``: from the file-descriptor limit (``conn.fdlimit``).
AUTO = "auto"


def _clients(value: str) -> int | str:
    """A count of clients, or ``auto``."""
    if value.strip().lower() == AUTO:
        return AUTO
    return positive_int(value)


#: Options of the chat itself (every chat door shares them) and the limits
#: every door shares.
COMMON_PARAMETERS: list[list[object]] = [
    [
        CONFIG_OPTION,
        None,
        None,
        "TOML file of options (docs/options.rst); the command line overrides "
        "it, SIGHUP reloads it [default: none].",
    ],
    [
        "credentials",
        None,
        None,
        "Credentials file of administrators and operators "
        "(made with chatservice-passwd); needed by --admin and /oper "
        "[default: none].",
    ],
    [
        "default-room",
        None,
        _DEFAULT_CHAT.default_room,
        "Room every chat client joins once it has a nickname.",
    ],
    [
        "quiet-room-size",
        None,
        _DEFAULT_CHAT.quiet_room_size,
        "Chat rooms with more members than this show joins, parts and quits "
        "only to the member concerned (0: every room shows them to all).",
        positive_int,
    ],
    [
        "max-rooms",
        None,
        _DEFAULT_CHAT.max_rooms,
        "Chat rooms that may exist at once (at least 1: the default room).",
        positive_int,
    ],
    [
        "max-rooms-per-client",
        None,
        _DEFAULT_CHAT.max_rooms_per_member,
        "Chat rooms one client may be in at once.",
        positive_int,
    ],
    [
        "history",
        None,
        DEFAULT_HISTORY,
        "Where the chat keeps room history, topics and bans: sqlite:PATH "
        "(a file, created if new), memory (lost at exit) or none.",
    ],
    [
        "history-replay",
        None,
        50,
        "Messages of a room replayed to a member who joins it (0: none).",
        history_count,
    ],
    [
        "history-max-messages",
        None,
        DEFAULT_MAX_MESSAGES,
        "Messages kept per room; older ones are pruned.",
        positive_int,
    ],
    [
        "history-max-age",
        None,
        "30d",
        "How long messages are kept (30s, 10m, 2h, 30d, forever).",
    ],
    [
        "history-wait",
        None,
        DEFAULT_WAIT,
        "Seconds the event loop waits for a commit of the SQLite history "
        "before it goes on and deliveries wait for it instead (0: never).",
        seconds,
    ],
    *REDIS_PARAMETERS,
    [
        "max-line-length",
        None,
        _DEFAULT_LIMITS.max_line_length,
        "Longest accepted line in bytes; a longer one closes the connection.",
        positive_int,
    ],
    [
        "idle-timeout",
        None,
        _DEFAULT_LIMITS.idle_timeout,
        "Seconds without input before a connection is closed (0: never).",
        seconds,
    ],
    [
        "max-clients",
        None,
        AUTO,
        "Registered connections each service holds at once (chat clients "
        "with a nickname, logged-in administrators, echo and uppercase "
        "clients that sent a line); the chat's can be changed at run time "
        "with /limit (0: no limit; auto: what the file-descriptor limit "
        "leaves room for).",
        _clients,
    ],
    [
        "max-strangers",
        None,
        _DEFAULT_LIMITS.max_strangers,
        "Connections still registering (no nickname, no login, no first "
        "line yet) each service holds at once; past it the one that waited "
        "longest is closed to make room (0: no limit).",
        positive_int,
    ],
    [
        "max-accepts-per-turn",
        None,
        _DEFAULT_LIMITS.max_accepts_per_turn,
        "Connections each listening endpoint accepts in one turn of the "
        "event loop; a storm waits in the listen backlog and members are "
        "read in between (0: Twisted's own, 100 and growing).",
        positive_int,
    ],
    [
        "defer-accept",
        None,
        DEFAULT_DEFER_ACCEPT,
        "Seconds the kernel holds a new connection to a door whose clients "
        "speak first (echo, upper, web; any ssl: endpoint) until its first "
        "bytes come, before the server accepts it: silent connections cost "
        "nothing meanwhile (Linux TCP_DEFER_ACCEPT; 0: accept at once).",
        seconds,
    ],
    [
        "registration-timeout",
        None,
        _DEFAULT_LIMITS.registration_timeout,
        "Seconds a new echo, uppercase or admin connection has to register "
        "(send a first line, log in) whatever it sends meanwhile (0: no "
        "limit); the chat has its own nick timeout.",
        seconds,
    ],
    [
        "max-per-address",
        None,
        _DEFAULT_LIMITS.max_per_address,
        "Connections one IP address may hold on each service (0: no limit).",
        positive_int,
    ],
    [
        "close-grace",
        None,
        _DEFAULT_LIMITS.close_grace,
        "Seconds a closing client gets to read its last line before it is cut.",
        seconds,
    ],
    [
        "max-send-queue",
        None,
        _DEFAULT_LIMITS.max_send_queue,
        "Bytes that may wait for a client that does not read (beyond the "
        "transport's 64 KiB) before it is cut off.",
        positive_int,
    ],
    [
        "line-timeout",
        None,
        _DEFAULT_LIMITS.line_timeout,
        "Seconds a started line may take to end (0: no limit); on the web "
        "door, an HTTP request to arrive whole.",
        seconds,
    ],
    [
        "flood-burst",
        None,
        _DEFAULT_LIMITS.flood_burst,
        "Lines a chat or admin client may send at once before it is slowed down.",
        positive_int,
    ],
    [
        "flood-rate",
        None,
        _DEFAULT_LIMITS.flood_rate,
        "Lines per second a chat or admin client may send in the long run "
        "(0: no flood control).",
        seconds,
    ],
    [
        "flood-disconnect",
        None,
        _DEFAULT_LIMITS.flood_disconnect,
        "Seconds a client may keep flooding before it is disconnected.",
        seconds,
    ],
]


def parse_history(value: str) -> tuple[str, str | None]:
    """
    ``--history``: ``("sqlite", PATH)``, ``("memory", None)`` or
    ``("none", None)``.
    """
    kind, colon, path = value.strip().partition(":")
    kind = kind.lower()
    if kind == "sqlite" and colon and path:
        return "sqlite", path
    if kind in ("memory", OFF) and not colon:
        return kind, None
    raise usage.UsageError(f"--history {value!r}: expected sqlite:PATH, memory or none")
