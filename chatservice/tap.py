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
import re
from collections.abc import Callable

from twisted.application.service import IService
from twisted.internet.endpoints import serverFromString
from twisted.internet.interfaces import IReactorTime
from twisted.python import usage

from chatservice.backends.local import LocalBackend
from chatservice.chat.errors import ChatError
from chatservice.chat.hub import Hub
from chatservice.chat.model import ChatConfig
from chatservice.chat.names import check_room
from chatservice.conn.limits import Limits
from chatservice.conn.turns import end_of_turn
from chatservice.doors import admin, echo, irc, upper
from chatservice.doors.door import OFF, Door, DoorContext, positive_int, seconds
from chatservice.doors.native import protocol as native
from chatservice.service import (
    ChatService,
    ListeningService,
    report_listen_errors_briefly,
)

#: Every door, in the order of ``--help``.
DOORS: tuple[Door, ...] = (echo.DOOR, upper.DOOR, native.DOOR, irc.DOOR, admin.DOOR)

#: Each door's default endpoint (unprivileged ports; the admin console is
#: off unless asked for).
DEFAULT_ENDPOINTS = {door.name: door.default_endpoint for door in DOORS}

_DEFAULT_LIMITS = Limits()
_DEFAULT_CHAT = ChatConfig()

#: Options of the chat itself (every chat door shares them) and the limits
#: every door shares.
_COMMON_PARAMETERS: list[list[object]] = [
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
        "max-rooms",
        None,
        _DEFAULT_CHAT.max_rooms,
        "Chat rooms that may exist at once.",
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
        _DEFAULT_LIMITS.max_clients,
        "Connections each service accepts at once; the chat's can be changed "
        "at run time with /limit (0: no limit).",
        positive_int,
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
        "Seconds a started line may take to end (0: no limit).",
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
    #: The lines of ``--motd-file``, read once parsed.
    motd: tuple[str, ...] = ()
    #: The IRC door's server password, once read (``--irc-password[-file]``).
    irc_password: str | None = None
    longdesc = (
        "Runs the chatservice doors. Each ENDPOINT is a Twisted "
        "endpoint string (tcp:PORT, tcp:PORT:interface=127.0.0.1, "
        "unix:/path, ssl:PORT:privateKey=key.pem:certKey=cert.pem); give an "
        "option several times to listen on several endpoints, or 'none' to "
        "turn the service off."
    )

    optFlags = [
        *(flag for door in DOORS for flag in door.flags),
        *(_allow_remote_flag(door) for door in DOORS if door.private),
    ]
    optParameters = [
        *_COMMON_PARAMETERS,
        *(parameter for door in DOORS for parameter in door.parameters),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.endpoints: dict[str, list[str]] = {door.name: [] for door in DOORS}

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
                _check_endpoint(door.name, description)
            if given and door.needs_credentials and not self["credentials"]:
                raise usage.UsageError(f"--{door.name} needs --credentials FILE")
            if door.private and not self[f"{door.name}-allow-remote"]:
                for description in given:
                    if not is_private_endpoint(description):
                        raise usage.UsageError(
                            f"--{door.name} {description} would listen beyond "
                            "loopback; use unix:PATH, "
                            "tcp:PORT:interface=127.0.0.1 or ssl:..., "
                            f"or add --{door.name}-allow-remote"
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
        if self["max-line-length"] < 16:
            raise usage.UsageError("--max-line-length must be at least 16")
        self.limits = Limits(
            max_line_length=self["max-line-length"],
            idle_timeout=self["idle-timeout"],
            max_clients=self["max-clients"],
            max_per_address=self["max-per-address"],
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


def is_private_endpoint(description: str) -> bool:
    """
    Whether a server endpoint is reachable only from this machine (a UNIX
    socket, or TCP bound to a loopback address) or encrypted (``ssl:``).
    """
    kind = description.split(":", 1)[0].strip().lower()
    if kind in ("unix", "ssl"):
        return True
    if kind not in ("tcp", "tcp6"):
        return False
    match = re.search(r"(?:^|:)interface=((?:\\.|[^:])*)", description)
    if match is None:
        return False
    interface = match.group(1).replace("\\", "")
    if interface.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(interface).is_loopback
    except ValueError:
        return False


def _check_endpoint(service: str, description: str) -> None:
    """Raise a usage error for an endpoint string Twisted cannot parse."""
    from twisted.internet import reactor

    try:
        serverFromString(reactor, description)
    except (ValueError, TypeError, KeyError, ImportError, OSError) as error:
        raise usage.UsageError(
            f"--{service} {description!r} is not a valid endpoint: {error}"
        ) from None


def makeService(config: Options, reactor: IReactorTime | None = None) -> IService:
    """Build the service tree: the chat, and one listening service per endpoint."""
    if reactor is None:
        from twisted.internet import reactor as global_reactor

        reactor = global_reactor
    limits = config.limits
    hub = Hub(
        ChatConfig(
            default_room=config["default-room"],
            max_clients=limits.max_clients,
            max_rooms=config["max-rooms"],
            max_rooms_per_member=config["max-rooms-per-client"],
        ),
        clock=reactor.seconds,
        backend=LocalBackend(call_soon=end_of_turn(reactor).soon),
    )
    authenticator = None
    if config["credentials"]:
        from chatservice.auth import Authenticator

        authenticator = Authenticator.from_file(config["credentials"], reactor)
    chat = ChatService(hub, authenticator=authenticator)
    context = DoorContext(reactor, config, limits, chat)
    report_listen_errors_briefly()
    for door in DOORS:
        descriptions = config.endpoints[door.name]
        if not descriptions:
            continue
        factory = door.build(context)
        for description in descriptions:
            endpoint = serverFromString(reactor, description)
            ListeningService(description, endpoint, factory).setServiceParent(chat)
    return chat
