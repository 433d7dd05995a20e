"""
The command line and the service tree: the only place that wires endpoints
to factories.  ``twistd chatservice`` (via the plugin in ``twisted/plugins``)
and ``python -m twisted chatservice`` both call :func:`makeService`.

The doors are listed once, in :data:`DOORS`: each brings its option
``--<door> ENDPOINT`` (repeatable, ``none`` to turn it off), its own
options, and how to build its factory (:class:`chatservice.doors.door.Door`).
"""

from __future__ import annotations

import ipaddress
import sys
from collections.abc import Callable, Sequence

from twisted.application.service import IService
from twisted.internet.endpoints import AdoptedStreamServerEndpoint, serverFromString
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python import usage

from chatservice.activation import check_inherited, is_inherited_endpoint
from chatservice.backends.base import HubBackend
from chatservice.backends.local import LocalBackend
from chatservice.backends.redis.options import REDIS_PARAMETERS, redis_address
from chatservice.backends.redis.url import RedisAddress
from chatservice.chat.durations import parse_duration
from chatservice.chat.errors import ChatError
from chatservice.chat.hub import Hub
from chatservice.chat.model import ChatConfig
from chatservice.chat.names import check_room
from chatservice.config import (
    CONFIG_OPTION,
    ConfigFile,
    command_line_options,
    file_arguments,
    located,
    option_specs,
    read_config,
)
from chatservice.conn import fdlimit
from chatservice.conn.limits import Limits
from chatservice.conn.turns import end_of_turn
from chatservice.doors import admin, echo, irc, upper, web
from chatservice.doors.door import (
    OFF,
    Door,
    DoorContext,
    LimitedFactory,
    positive_int,
    seconds,
)
from chatservice.doors.native import protocol as native
from chatservice.service import ChatService, ListeningService
from chatservice.stores.base import HistoryStore
from chatservice.stores.memory import MemoryHistoryStore
from chatservice.stores.sqlite import DEFAULT_MAX_MESSAGES, SQLiteHistoryStore

_log = Logger()

#: Every door, in the order of ``--help``.
DOORS: tuple[Door, ...] = (
    echo.DOOR,
    upper.DOOR,
    native.DOOR,
    irc.DOOR,
    web.DOOR,
    admin.DOOR,
)

#: Each door's default endpoint (unprivileged ports; the admin console is
#: off unless asked for).
DEFAULT_ENDPOINTS = {door.name: door.default_endpoint for door in DOORS}

#: The listen backlog of a door's ``tcp:``, ``tcp6:`` and ``ssl:`` endpoints
#: that do not give one (``backlog=N`` in the string wins): Twisted's 50 is
#: full within a millisecond of a connection storm, and a client whose
#: handshake meets a full queue is retried by the kernel after a second
#: (``docs/limits.rst``).  Linux caps it at ``net.core.somaxconn``.
DEFAULT_BACKLOG = 1024

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
_COMMON_PARAMETERS: list[list[object]] = [
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
        positive_int,
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


def _allow_remote_flag(door: Door) -> list[object]:
    return [
        f"{door.name}-allow-remote",
        None,
        f"Allow an --{door.name} TCP endpoint on an interface other than "
        "loopback (plain text: prefer ssl: or an SSH tunnel).",
    ]


class Options(usage.Options):
    """``twistd chatservice`` options."""

    synopsis = "[options]"
    #: Whether ``--max-clients`` came from the file-descriptor limit.
    clients_from_descriptors = False
    #: The lines of ``--motd-file``, read once parsed.
    motd: tuple[str, ...] = ()
    #: The IRC door's server password, once read (``--irc-password[-file]``).
    irc_password: str | None = None
    #: The ``--config`` file, once read.
    config_file: ConfigFile | None = None
    #: The command line as given (a reload parses it again, file and all).
    command_line: Sequence[str] = ()
    #: Parsed again for a reload (``chatservice.reload``): the sockets
    #: systemd passed are adopted, and closed, by then; not checked again.
    reloading = False
    #: The web door's allowed origins, once parsed (``--web-allow-origin``).
    web_origins: tuple[str, ...] = ()
    #: ``--redis``, once read: where the nodes share the chat.
    redis: RedisAddress | None = None
    longdesc = (
        "Runs the chatservice doors. Each ENDPOINT is a Twisted "
        "endpoint string (tcp:PORT, tcp:PORT:interface=127.0.0.1, "
        "unix:/path, ssl:PORT:privateKey=key.pem:certKey=cert.pem); give an "
        "option several times to listen on several endpoints, or 'none' to "
        "turn the service off."
    )

    optFlags = [
        [
            "history-private",
            None,
            "Keep private messages in the history too (off: they are never "
            "written anywhere).",
        ],
        *(flag for door in DOORS for flag in door.flags),
        *(_allow_remote_flag(door) for door in DOORS if door.private),
        [
            "metrics-allow-remote",
            None,
            "Allow a --metrics TCP endpoint on an interface other than loopback.",
        ],
    ]
    optParameters = [
        *_COMMON_PARAMETERS,
        [
            "metrics",
            None,
            OFF,
            "Endpoint serving Prometheus metrics at /metrics and a health "
            "check at /healthz, e.g. tcp:9100:interface=127.0.0.1 "
            "(docs/metrics.rst) [default: none].",
        ],
        *(parameter for door in DOORS for parameter in door.parameters),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.endpoints: dict[str, list[str]] = {door.name: [] for door in DOORS}

    def parseOptions(self, options: Sequence[str] | None = None) -> None:
        """
        Parse the command line, after the ``--config`` file's options when
        there is one: each option the command line gives replaces the
        file's (``chatservice.config``).
        """
        argv = list(sys.argv[1:] if options is None else options)
        self.command_line = argv
        given, path = command_line_options(self, argv)
        if path is None:
            super().parseOptions(argv)
            return
        self.config_file = read_config(path, option_specs(type(self)))
        try:
            super().parseOptions(file_arguments(self.config_file, given) + argv)
        except usage.UsageError as error:
            raise located(error, self.config_file, given) from None

    def postOptions(self) -> None:
        for door in DOORS:
            given = self.endpoints[door.name]
            if not given:
                given.append(door.default_endpoint)
            if OFF in (d.strip().lower() for d in given):
                if len(given) > 1:
                    raise usage.UsageError(
                        f"--{door.name} {OFF} cannot be combined with other endpoints"
                    )
                given.clear()
        for door in DOORS:
            given = self.endpoints[door.name]
            for description in given:
                _check_endpoint(door.name, description, adopted=self.reloading)
            if given and door.needs_credentials and not self["credentials"]:
                raise usage.UsageError(f"--{door.name} needs --credentials FILE")
            if door.private and not self[f"{door.name}-allow-remote"]:
                for description in given:
                    # A socket from systemd is judged where it listens
                    # (ListeningService): the string cannot tell.
                    if not (
                        is_private_endpoint(description)
                        or is_inherited_endpoint(description)
                    ):
                        raise usage.UsageError(
                            f"--{door.name} {description} would listen beyond "
                            "loopback; use unix:PATH, "
                            "tcp:PORT:interface=127.0.0.1 or ssl:..., "
                            f"or add --{door.name}-allow-remote"
                        )
        self.metrics = _metrics_endpoint(self["metrics"], self["metrics-allow-remote"])
        if self["max-rooms"] < 1:
            raise usage.UsageError(
                "--max-rooms must be at least 1 (the default room is one)"
            )
        if self["max-rooms-per-client"] < 1:
            raise usage.UsageError(
                "--max-rooms-per-client must be at least 1 (the default room)"
            )
        try:
            check_room(self["default-room"])
        except ChatError as error:
            raise usage.UsageError(f"--default-room: {error}") from None
        for door in DOORS:
            if door.check is not None:
                door.check(self)
        self.history = parse_history(self["history"])
        try:
            # None: forever.
            self.history_max_age = parse_duration(self["history-max-age"])
        except ChatError as error:
            raise usage.UsageError(f"--history-max-age: {error}") from None
        if self["history-max-messages"] < 1:
            raise usage.UsageError("--history-max-messages must be at least 1")
        self.redis = redis_address(self)
        if self["max-line-length"] < 16:
            raise usage.UsageError("--max-line-length must be at least 16")
        if self["max-clients"] == AUTO:
            services = sum(1 for given in self.endpoints.values() if given)
            self["max-clients"] = fdlimit.max_clients_for(
                fdlimit.hard_limit(), services, self["max-strangers"]
            )
            self.clients_from_descriptors = True
        self.limits = Limits(
            max_line_length=self["max-line-length"],
            idle_timeout=self["idle-timeout"],
            max_clients=self["max-clients"],
            max_per_address=self["max-per-address"],
            max_strangers=self["max-strangers"],
            max_accepts_per_turn=self["max-accepts-per-turn"],
            registration_timeout=self["registration-timeout"],
            close_grace=self["close-grace"],
            max_send_queue=self["max-send-queue"],
            line_timeout=self["line-timeout"],
            flood_burst=self["flood-burst"],
            flood_rate=self["flood-rate"],
            flood_disconnect=self["flood-disconnect"],
        )
        if self.limits.flood_rate and self.limits.flood_burst < 1:
            raise usage.UsageError("--flood-burst must be at least 1")


def _endpoint_option(door: Door) -> Callable[[Options, str], None]:
    def option(self: Options, description: str) -> None:
        self.endpoints[door.name].append(description)

    option.__doc__ = f"Endpoint of {door.summary} [default: {door.default_endpoint}]."
    return option


# One --<door> ENDPOINT option per door (usage.Options finds opt_ methods).
for _door in DOORS:
    setattr(Options, f"opt_{_door.name.replace('-', '_')}", _endpoint_option(_door))


_LOOPBACK_NAMES = {"localhost", "ip6-localhost"}


def _endpoint_fields(description: str) -> list[tuple[str | None, str]] | None:
    """
    The fields of an endpoint string as Twisted reads them: split at each
    ``:`` not escaped by a backslash, each ``key=value`` or a bare value,
    escapes resolved.  ``None`` for a field with a second unescaped ``=``
    (whatever Twisted makes of it, it is not judged private).
    """
    fields: list[tuple[str | None, str]] = []
    key: str | None = None
    text: list[str] = []
    chars = iter(description)
    for char in chars:
        if char == "\\":
            text.append(next(chars, ""))
        elif char == ":":
            fields.append((key, "".join(text)))
            key, text = None, []
        elif char == "=":
            if key is not None:
                return None
            key, text = "".join(text), []
        else:
            text.append(char)
    fields.append((key, "".join(text)))
    return fields


def _kind(fields: list[tuple[str | None, str]]) -> str:
    return fields[0][1].strip().lower() if fields and fields[0][0] is None else ""


def is_encrypted_endpoint(description: str) -> bool:
    """Whether a server endpoint is ``ssl:`` (TLS)."""
    return _kind(_endpoint_fields(description) or []) == "ssl"


def is_private_endpoint(description: str) -> bool:
    """
    Whether a server endpoint is reachable only from this machine (a UNIX
    socket, or TCP bound to a loopback address) or encrypted (``ssl:``),
    judged as Twisted reads the string: the last ``interface=`` counts (as
    in Twisted), and a TCP endpoint with any positional field besides the
    port (where each endpoint type puts an interface or a backlog) is not
    judged private.  Only a guess before listening: the listening service
    checks the address it actually got (``ListeningService``).
    """
    fields = _endpoint_fields(description)
    if not fields:
        return False
    kind = _kind(fields)
    if kind in ("unix", "ssl"):
        return True
    if kind not in ("tcp", "tcp6"):
        return False
    positional = [value for key, value in fields[1:] if key is None]
    if len(positional) > 1:
        return False
    interfaces = [value for key, value in fields[1:] if key == "interface"]
    if not interfaces:
        return False
    interface = interfaces[-1]
    if interface.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(interface).is_loopback
    except ValueError:
        return False


#: Positional fields after the type up to the backlog's, by endpoint type
#: (``tcp:PORT:INTERFACE:BACKLOG``; ``ssl:`` has its keys and method first).
_BACKLOG_POSITION = {"tcp": 3, "tcp6": 3, "ssl": 6}


def with_backlog(description: str) -> str:
    """
    A door's endpoint string with ``backlog=`` :data:`DEFAULT_BACKLOG`
    added when it is a TCP or TLS one that gives no backlog of its own
    (by key or by position); any other string as given.
    """
    fields = _endpoint_fields(description)
    if not fields:
        return description
    position = _BACKLOG_POSITION.get(_kind(fields))
    if position is None or any(key == "backlog" for key, _ in fields):
        return description
    if sum(1 for key, _ in fields[1:] if key is None) >= position:
        return description
    return f"{description}:backlog={DEFAULT_BACKLOG}"


def _check_endpoint(service: str, description: str, adopted: bool = False) -> None:
    """
    Raise a usage error for an endpoint string Twisted cannot parse, or a
    socket from systemd that is not what it says (unless ``adopted``
    already: its descriptor is closed then, and may be another file's).
    """
    from twisted.internet import reactor

    try:
        endpoint = serverFromString(reactor, description)
    except (IndexError, KeyError) as error:
        if not is_inherited_endpoint(description):
            raise usage.UsageError(
                f"--{service} {description!r} is not a valid endpoint: {error}"
            ) from None
        # systemd passed no socket of that index or name (LISTEN_FDS).
        raise usage.UsageError(
            f"--{service} {description!r}: systemd passed no such socket "
            "(start it from a socket unit: contrib/chatservice.socket)"
        ) from None
    except (ValueError, TypeError, ImportError, OSError) as error:
        raise usage.UsageError(
            f"--{service} {description!r} is not a valid endpoint: {error}"
        ) from None
    if isinstance(endpoint, AdoptedStreamServerEndpoint) and not adopted:
        check_inherited(service, description, endpoint)


def _metrics_endpoint(description: str, allow_remote: bool) -> str | None:
    """``--metrics``: the endpoint, or ``None`` for none; checked like a door's."""
    if description.strip().lower() == OFF:
        return None
    _check_endpoint("metrics", description)
    if not allow_remote and not is_private_endpoint(description):
        raise usage.UsageError(
            f"--metrics {description} would listen beyond loopback; use "
            "tcp:PORT:interface=127.0.0.1, unix:PATH or ssl:..., or add "
            "--metrics-allow-remote"
        )
    return description


def make_backend(config: Options, reactor: IReactorTime) -> HubBackend:
    """The hub's backend: this node alone, or shared through ``--redis``."""
    call_soon = end_of_turn(reactor).soon
    if config.redis is None:
        return LocalBackend(call_soon=call_soon)
    from chatservice.backends.redis import RedisBackend

    return RedisBackend(
        config.redis,
        reactor,
        call_soon,
        liveness=config["redis-liveness"],
        replay_limit=config["redis-replay"],
    )


def make_store(config: Options, reactor: IReactorTime) -> HistoryStore | None:
    """The history store ``--history`` asks for (not opened yet), or ``None``."""
    kind, path = config.history
    per_room = config["history-max-messages"]
    private = bool(config["history-private"])
    if kind == "sqlite":
        assert path is not None
        return SQLiteHistoryStore(
            path,
            reactor,
            per_room=per_room,
            max_age=config.history_max_age,
            private=private,
        )
    if kind == "memory":
        return MemoryHistoryStore(
            per_room,
            max_age=config.history_max_age,
            clock=reactor.seconds,
            private=private,
        )
    return None


def shared_history(
    config: Options,
    reactor: IReactorTime,
    backend: HubBackend,
    store: HistoryStore | None,
) -> HistoryStore | None:
    """
    With ``--redis`` and history on, room history is kept in Redis, shared
    by every node; ``store`` keeps the rest (docs/scaling.rst).
    """
    if config.redis is None or store is None:
        return store
    from chatservice.backends.redis import RedisBackend
    from chatservice.backends.redis.history import HistoryCap, RedisHistoryStore

    assert isinstance(backend, RedisBackend)
    cap = HistoryCap(
        config["history-max-messages"], config.history_max_age, reactor.seconds
    )
    return RedisHistoryStore(backend, store, cap)


def makeService(config: Options, reactor: IReactorTime | None = None) -> IService:
    """Build the service tree: the chat, and one listening service per endpoint."""
    if reactor is None:
        from twisted.internet import reactor as global_reactor

        reactor = global_reactor
    limits = config.limits
    if config.clients_from_descriptors:
        before, now = fdlimit.raise_limit()
        _log.info(
            "file descriptors: {now} (soft limit {before} before); each service "
            "holds up to {clients} registered and {strangers} registering "
            "connections (--max-clients, --max-strangers)",
            now=now,
            before=before,
            clients=limits.max_clients,
            strangers=limits.max_strangers,
        )
    backend = make_backend(config, reactor)
    hub = Hub(
        ChatConfig(
            default_room=config["default-room"],
            max_clients=limits.max_clients,
            max_rooms=config["max-rooms"],
            max_rooms_per_member=config["max-rooms-per-client"],
            quiet_room_size=config["quiet-room-size"],
        ),
        clock=reactor.seconds,
        backend=backend,
        store=shared_history(config, reactor, backend, make_store(config, reactor)),
    )
    attach = getattr(hub.backend, "attach", None)
    if attach is not None:
        attach(hub)  # a shared backend mirrors the other nodes into the hub
    authenticator = None
    if config["credentials"]:
        from chatservice.auth import Authenticator

        authenticator = Authenticator.from_file(config["credentials"], reactor)
    chat = ChatService(hub, authenticator=authenticator)
    context = DoorContext(reactor, config, limits, chat)
    for door in DOORS:
        descriptions = config.endpoints[door.name]
        if not descriptions:
            continue
        factory = door.build(context)
        remote = not door.private or config[f"{door.name}-allow-remote"]
        for description in descriptions:
            endpoint = serverFromString(reactor, with_backlog(description))
            # A private door in plain text checks where it really listens.
            loopback_only = not (remote or is_encrypted_endpoint(description))
            ListeningService(
                description,
                endpoint,
                factory,
                loopback_only=loopback_only,
                max_accepts=accepts_per_turn(factory),
            ).setServiceParent(chat)
    if config.metrics is not None:
        add_metrics(chat, config.metrics, reactor, config["metrics-allow-remote"])
    return chat


def accepts_per_turn(factory: LimitedFactory) -> Callable[[], int]:
    """A door's ``--max-accepts-per-turn``, as its limits say at the time."""
    return lambda: factory.limits.max_accepts_per_turn


def add_metrics(
    chat: ChatService, description: str, reactor: IReactorTime, allow_remote: bool
) -> None:
    """``--metrics``: the reactor's lag, and the site on its endpoint."""
    from chatservice.metrics.web import MetricsSite, ReactorLag

    lag = ReactorLag(reactor)
    lag.setServiceParent(chat)
    loopback_only = not (allow_remote or is_encrypted_endpoint(description))
    ListeningService(
        description,
        serverFromString(reactor, description),
        MetricsSite(chat, lag.histogram),
        loopback_only=loopback_only,
    ).setServiceParent(chat)
