"""
The command line and the service tree: the only place that wires endpoints
to factories.  ``twistd chatservice`` (via the plugin in ``twisted/plugins``)
and ``python -m twisted chatservice`` both call :func:`makeService`.
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Callable
from dataclasses import replace

from twisted.application.service import IService, MultiService
from twisted.internet.endpoints import serverFromString
from twisted.internet.interfaces import IReactorTime
from twisted.python import usage

from chatservice.admin import AdminFactory
from chatservice.chat.core import ChatConfig, Hub
from chatservice.chat.errors import ChatError
from chatservice.chat.names import check_room
from chatservice.chatline import ChatFactory, ChatSettings, read_motd
from chatservice.echo import EchoFactory
from chatservice.limits import Limits
from chatservice.lines import LineFactory
from chatservice.operations import Operations
from chatservice.service import ListeningService, report_listen_errors_briefly
from chatservice.turns import end_of_turn
from chatservice.upper import UpperFactory

#: The value of an endpoint option that turns its service off.
OFF = "none"

#: Each front end's default endpoint (unprivileged ports; the admin console
#: is off unless asked for).
DEFAULT_ENDPOINTS = {
    "echo": "tcp:5001",
    "upper": "tcp:12000",
    "chat": "tcp:6666",
    "admin": OFF,
}

_DEFAULT_LIMITS = Limits()
_DEFAULT_CHAT = ChatConfig()
_DEFAULT_SETTINGS = ChatSettings()
#: Chat users lurk; they are not cut off as soon as echo clients.
DEFAULT_CHAT_IDLE_TIMEOUT = 3600.0


def _positive_int(value: str) -> int:
    """A count: a whole number, 0 or more (twistd names the option)."""
    try:
        number = int(value)
    except ValueError:
        number = -1
    if number < 0:
        raise ValueError(f"{value!r} is not a whole number of 0 or more")
    return number


def _seconds(value: str) -> float:
    """A duration in seconds: a finite number, 0 or more."""
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if not (math.isfinite(number) and number >= 0):
        raise ValueError(f"{value!r} is not a number of seconds, 0 or more")
    return number


class Options(usage.Options):
    """``twistd chatservice`` options."""

    synopsis = "[options]"
    longdesc = (
        "Runs the chatservice line services. Each ENDPOINT is a Twisted "
        "endpoint string (tcp:PORT, tcp:PORT:interface=127.0.0.1, "
        "unix:/path, ssl:PORT:privateKey=key.pem:certKey=cert.pem); give an "
        "option several times to listen on several endpoints, or 'none' to "
        "turn the service off."
    )

    optFlags = [
        ["echo-timestamp", None, "Prefix every echoed line with the server's time."],
        [
            "admin-allow-remote",
            None,
            "Allow an --admin TCP endpoint on an interface other than loopback "
            "(plain text: prefer ssl: or an SSH tunnel).",
        ],
    ]
    optParameters = [
        [
            "credentials",
            None,
            None,
            "Credentials file of administrators and operators "
            "(made with chatservice-passwd); needed by --admin and /oper "
            "[default: none].",
        ],
        [
            "motd-file",
            None,
            None,
            "File whose lines greet every chat client [default: none].",
        ],
        [
            "default-room",
            None,
            _DEFAULT_CHAT.default_room,
            "Room every chat client joins once it has a nickname.",
        ],
        [
            "nick-timeout",
            None,
            _DEFAULT_SETTINGS.nick_timeout,
            "Seconds a chat client has to choose a nickname (0: no limit).",
            _seconds,
        ],
        [
            "chat-idle-timeout",
            None,
            DEFAULT_CHAT_IDLE_TIMEOUT,
            "Seconds without input before a chat client is closed (0: never).",
            _seconds,
        ],
        [
            "max-rooms",
            None,
            _DEFAULT_CHAT.max_rooms,
            "Chat rooms that may exist at once.",
            _positive_int,
        ],
        [
            "max-rooms-per-client",
            None,
            _DEFAULT_CHAT.max_rooms_per_member,
            "Chat rooms one client may be in at once.",
            _positive_int,
        ],
        [
            "max-line-length",
            None,
            _DEFAULT_LIMITS.max_line_length,
            "Longest accepted line in bytes; a longer one closes the connection.",
            _positive_int,
        ],
        [
            "idle-timeout",
            None,
            _DEFAULT_LIMITS.idle_timeout,
            "Seconds without input before a connection is closed (0: never).",
            _seconds,
        ],
        [
            "max-clients",
            None,
            _DEFAULT_LIMITS.max_clients,
            "Connections each service accepts at once; the chat's can be changed "
            "at run time with /limit (0: no limit).",
            _positive_int,
        ],
        [
            "max-per-address",
            None,
            _DEFAULT_LIMITS.max_per_address,
            "Connections one IP address may hold on each service (0: no limit).",
            _positive_int,
        ],
        [
            "close-grace",
            None,
            _DEFAULT_LIMITS.close_grace,
            "Seconds a closing client gets to read its last line before it is cut.",
            _seconds,
        ],
        [
            "max-send-queue",
            None,
            _DEFAULT_LIMITS.max_send_queue,
            "Bytes that may wait for a client that does not read (beyond the "
            "transport's 64 KiB) before it is cut off.",
            _positive_int,
        ],
        [
            "line-timeout",
            None,
            _DEFAULT_LIMITS.line_timeout,
            "Seconds a started line may take to end (0: no limit).",
            _seconds,
        ],
        [
            "flood-burst",
            None,
            _DEFAULT_LIMITS.flood_burst,
            "Lines a chat or admin client may send at once before it is slowed down.",
            _positive_int,
        ],
        [
            "flood-rate",
            None,
            _DEFAULT_LIMITS.flood_rate,
            "Lines per second a chat or admin client may send in the long run "
            "(0: no flood control).",
            _seconds,
        ],
        [
            "flood-disconnect",
            None,
            _DEFAULT_LIMITS.flood_disconnect,
            "Seconds a client may keep flooding before it is disconnected.",
            _seconds,
        ],
    ]

    def __init__(self) -> None:
        super().__init__()
        self.endpoints: dict[str, list[str]] = {name: [] for name in DEFAULT_ENDPOINTS}

    def _add_endpoint(self, service: str, description: str) -> None:
        self.endpoints[service].append(description)

    def opt_echo(self, description: str) -> None:
        """Endpoint of the echo service [default: tcp:5001]."""
        self._add_endpoint("echo", description)

    def opt_upper(self, description: str) -> None:
        """Endpoint of the uppercase service [default: tcp:12000]."""
        self._add_endpoint("upper", description)

    def opt_chat(self, description: str) -> None:
        """Endpoint of the chat service [default: tcp:6666]."""
        self._add_endpoint("chat", description)

    def opt_admin(self, description: str) -> None:
        """Endpoint of the admin console, e.g. unix:admin.sock or
        tcp:6667:interface=127.0.0.1 [default: none]."""
        self._add_endpoint("admin", description)

    def postOptions(self) -> None:
        for service, given in self.endpoints.items():
            if not given:
                given.append(DEFAULT_ENDPOINTS[service])
            if OFF in (d.strip().lower() for d in given):
                if len(given) > 1:
                    raise usage.UsageError(
                        f"--{service} {OFF} cannot be combined with other endpoints"
                    )
                given.clear()
        for service, given in self.endpoints.items():
            for description in given:
                _check_endpoint(service, description)
        admin = self.endpoints["admin"]
        if admin and not self["credentials"]:
            raise usage.UsageError("--admin needs --credentials FILE")
        if not self["admin-allow-remote"]:
            for description in admin:
                if not is_private_endpoint(description):
                    raise usage.UsageError(
                        f"--admin {description} would listen beyond loopback; use "
                        "unix:PATH, tcp:PORT:interface=127.0.0.1 or ssl:..., "
                        "or add --admin-allow-remote"
                    )
        if self["max-rooms-per-client"] < 1:
            raise usage.UsageError(
                "--max-rooms-per-client must be at least 1 (the default room)"
            )
        try:
            check_room(self["default-room"])
        except ChatError as error:
            raise usage.UsageError(f"--default-room: {error.message}") from None
        self.motd: tuple[str, ...] = ()
        if self["motd-file"]:
            try:
                self.motd = read_motd(self["motd-file"])
            except (OSError, UnicodeDecodeError) as error:
                raise usage.UsageError(f"--motd-file: {error}") from None
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
    """Build the service tree: one listening service per endpoint."""
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
        call_soon=end_of_turn(reactor).soon,
    )
    operations = Operations(hub)
    authenticator = None
    if config["credentials"]:
        from chatservice.auth import Authenticator

        authenticator = Authenticator.from_file(config["credentials"], reactor)
    factories: dict[str, Callable[[], LineFactory]] = {
        "echo": lambda: EchoFactory(
            limits, reactor, timestamp=bool(config["echo-timestamp"])
        ),
        "upper": lambda: UpperFactory(limits, reactor),
        "chat": lambda: ChatFactory(
            hub,
            replace(limits, idle_timeout=config["chat-idle-timeout"]),
            reactor,
            settings=ChatSettings(
                nick_timeout=config["nick-timeout"], motd=config.motd
            ),
            authenticator=authenticator,
            operations=operations,
        ),
        # Options guarantees --credentials whenever --admin is given.
        "admin": lambda: AdminFactory(
            operations,
            authenticator,  # type: ignore[arg-type]
            limits,
            reactor,
        ),
    }
    report_listen_errors_briefly()
    top = MultiService()
    for service, descriptions in config.endpoints.items():
        if not descriptions:
            continue
        factory = factories[service]()
        for description in descriptions:
            endpoint = serverFromString(reactor, description)
            ListeningService(description, endpoint, factory).setServiceParent(top)
    return top
