"""
The command line and the service tree: the only place that wires endpoints
to factories.  ``twistd chatservice`` (via the plugin in ``twisted/plugins``)
and ``python -m twisted chatservice`` both call :func:`makeService`.

The doors are listed once, in :data:`DOORS`: each brings its option
``--<door> ENDPOINT`` (repeatable, ``none`` to turn it off), its own
options, and how to build its factory (:class:`chatservice.doors.door.Door`).
The options every door shares are in :mod:`chatservice.common_options`, what
is judged of an endpoint string in :mod:`chatservice.endpoints`.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence

from twisted.application.service import IService
from twisted.internet.endpoints import serverFromString
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python import usage

from chatservice.activation import is_inherited_endpoint
from chatservice.backends.base import HubBackend
from chatservice.backends.local import LocalBackend
from chatservice.backends.redis.options import redis_address
from chatservice.backends.redis.url import RedisAddress
from chatservice.chat.durations import parse_duration
from chatservice.chat.errors import ChatError
from chatservice.chat.hub import Hub
from chatservice.chat.model import ChatConfig
from chatservice.chat.names import check_room
from chatservice.common_options import AUTO, COMMON_PARAMETERS, parse_history
from chatservice.config import (
    ConfigFile,
    command_line_options,
    file_arguments,
    located,
    option_specs,
    read_config,
)
from chatservice.conn import fdlimit
from chatservice.conn.accepts import MAX_DEFER_ACCEPT
from chatservice.conn.limits import Limits
from chatservice.conn.turns import end_of_turn
from chatservice.doors import admin, echo, irc, upper, web
from chatservice.doors.door import OFF, Door, DoorContext, LimitedFactory
from chatservice.doors.native import protocol as native
from chatservice.endpoints import DEFAULT_BACKLOG as DEFAULT_BACKLOG
from chatservice.endpoints import check_endpoint, metrics_endpoint
from chatservice.endpoints import is_encrypted_endpoint as is_encrypted_endpoint
from chatservice.endpoints import is_private_endpoint as is_private_endpoint
from chatservice.endpoints import with_backlog as with_backlog
from chatservice.service import ChatService, ListeningService
from chatservice.stores.base import HistoryStore
from chatservice.stores.memory import MemoryHistoryStore
from chatservice.stores.sqlite import SQLiteHistoryStore

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


def _allow_remote_flag(door: Door) -> list[object]:
    return [
        f"{door.name}-allow-remote",
        None,
        f"Allow an --{door.name} TCP endpoint on an interface other than "
        "loopback (plain text: prefer ssl: or an SSH tunnel).",
    ]


#: The most messages ``--history-max-messages`` keeps per room.
MAX_KEPT = 1_000_000_000
#: The longest ``--history-wait``: the event loop waits, doing nothing else.
MAX_HISTORY_WAIT = 1.0


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
        *COMMON_PARAMETERS,
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
                check_endpoint(door.name, description, adopted=self.reloading)
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
        self.metrics = metrics_endpoint(self["metrics"], self["metrics-allow-remote"])
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
        if self["history-wait"] > MAX_HISTORY_WAIT:
            # The whole event loop stands still while it waits; 1e300 also
            # raised OverflowError from the lock's timeout at the first
            # message, which then reached nobody.
            raise usage.UsageError(
                f"--history-wait must be at most {MAX_HISTORY_WAIT:g} seconds"
            )
        if self["history-max-messages"] > MAX_KEPT:
            # Memory's deque (a C ssize_t) raised at start-up past 2**63.
            raise usage.UsageError(f"--history-max-messages must be at most {MAX_KEPT}")
        self.redis = redis_address(self)
        if self["defer-accept"] > MAX_DEFER_ACCEPT:
            raise usage.UsageError(
                f"--defer-accept must be at most {MAX_DEFER_ACCEPT:g} seconds"
            )
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
            wait=config["history-wait"],
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


def log_descriptors(config: Options) -> None:
    """
    Raise the soft file-descriptor limit to the hard one, whatever
    ``--max-clients`` says (a number given does not need fewer
    descriptors than ``auto``), and log what each service holds; warn
    when the limits given need more descriptors than there are: past
    them, ``accept`` fails and Twisted closes newcomers without a word.
    """
    limits = config.limits
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
    services = sum(1 for given in config.endpoints.values() if given)
    needed = fdlimit.descriptors_needed(
        services, limits.max_clients, limits.max_strangers
    )
    if needed is not None and needed > now:
        _log.warn(
            "file descriptors: {now}, fewer than the limits need (about "
            "{needed}: --max-clients {clients} and --max-strangers {strangers} "
            "for each listening service, {services} of them); past them new "
            "connections are closed without a word: "
            "raise the hard limit (ulimit -Hn, systemd's LimitNOFILE) or lower "
            "--max-clients",
            now=now,
            clients=limits.max_clients,
            strangers=limits.max_strangers,
            services=services,
            needed=needed,
        )


def makeService(config: Options, reactor: IReactorTime | None = None) -> IService:
    """Build the service tree: the chat, and one listening service per endpoint."""
    if reactor is None:
        from twisted.internet import reactor as global_reactor

        reactor = global_reactor
    limits = config.limits
    log_descriptors(config)
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
            # The client's first bytes come first: a TLS handshake, or the
            # door's protocol.
            speaks_first = door.client_speaks_first or is_encrypted_endpoint(
                description
            )
            ListeningService(
                description,
                endpoint,
                factory,
                loopback_only=loopback_only,
                max_accepts=accepts_per_turn(factory),
                defer_accept=config["defer-accept"] if speaks_first else 0.0,
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
