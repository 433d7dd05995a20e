"""
The command line and the service tree: the only place that wires endpoints
to factories.  ``twistd chatservice`` (via the plugin in ``twisted/plugins``)
and ``python -m twisted chatservice`` both call :func:`makeService`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.application.service import IService, MultiService
from twisted.internet.endpoints import serverFromString
from twisted.internet.interfaces import IReactorTime
from twisted.python import usage

from chatservice.echo import EchoFactory
from chatservice.limits import Limits
from chatservice.lines import LineFactory
from chatservice.service import ListeningService, report_listen_errors_briefly
from chatservice.upper import UpperFactory

#: The value of an endpoint option that turns its service off.
OFF = "none"

#: Each front end's option and default endpoint (unprivileged ports).
DEFAULT_ENDPOINTS = {
    "echo": "tcp:5001",
    "upper": "tcp:12000",
}

_DEFAULT_LIMITS = Limits()


def _positive_int(value: str) -> int:
    number = int(value)
    if number < 0:
        raise ValueError("must be 0 or more")
    return number


def _seconds(value: str) -> float:
    number = float(value)
    if not number >= 0:
        raise ValueError("must be 0 or more")
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
    ]
    optParameters = [
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
            "Connections each service accepts at once (0: no limit).",
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
        if self["max-line-length"] < 16:
            raise usage.UsageError("--max-line-length must be at least 16")
        self.limits = Limits(
            max_line_length=self["max-line-length"],
            idle_timeout=self["idle-timeout"],
            max_clients=self["max-clients"],
            max_per_address=self["max-per-address"],
            close_grace=self["close-grace"],
        )


def _check_endpoint(service: str, description: str) -> None:
    """Raise a usage error for an endpoint string Twisted cannot parse."""
    from twisted.internet import reactor

    try:
        serverFromString(reactor, description)
    except (ValueError, TypeError, KeyError, ImportError) as error:
        raise usage.UsageError(
            f"--{service} {description!r} is not a valid endpoint: {error}"
        ) from None


def makeService(
    config: Options | dict[str, Any], reactor: IReactorTime | None = None
) -> IService:
    """Build the service tree: one listening service per endpoint."""
    if reactor is None:
        from twisted.internet import reactor as global_reactor

        reactor = global_reactor
    limits: Limits = config.limits if isinstance(config, Options) else config["limits"]
    endpoints: dict[str, list[str]] = (
        config.endpoints if isinstance(config, Options) else config["endpoints"]
    )
    factories: dict[str, Callable[[], LineFactory]] = {
        "echo": lambda: EchoFactory(
            limits,
            reactor,
            timestamp=bool(config["echo-timestamp"]),
        ),
        "upper": lambda: UpperFactory(limits, reactor),
    }
    report_listen_errors_briefly()
    top = MultiService()
    for service, descriptions in endpoints.items():
        if not descriptions:
            continue
        factory = factories[service]()
        for description in descriptions:
            endpoint = serverFromString(reactor, description)
            ListeningService(description, endpoint, factory).setServiceParent(top)
    return top
