"""
The doors' endpoint strings as the command line gives them, judged as
Twisted reads them: whether one is private (a UNIX socket, loopback TCP) or
encrypted (``ssl:``), the listen backlog added where a string gives none
(:data:`DEFAULT_BACKLOG`), and the usage error for one Twisted cannot parse
or a socket from systemd that is not what it says.  :mod:`chatservice.tap`
checks every ``--<door>`` and ``--metrics`` endpoint with these.
"""

from __future__ import annotations

import ipaddress

from twisted.internet.endpoints import AdoptedStreamServerEndpoint, serverFromString
from twisted.python import usage

from chatservice.activation import check_inherited, is_inherited_endpoint
from chatservice.doors.door import OFF

#: The listen backlog of a door's ``tcp:``, ``tcp6:`` and ``ssl:`` endpoints
#: that do not give one (``backlog=N`` in the string wins): Twisted's 50 is
#: full within a millisecond of a connection storm, and a client whose
#: handshake meets a full queue is retried by the kernel after a second
#: (``docs/limits.rst``).  4096, Linux's ``net.core.somaxconn`` by default
#: (which caps it): at 1024 a storm slowed down by a busy machine overflowed
#: it, and the connections turned away waited a second; on a deferring door
#: (``--defer-accept``) the silent connections the kernel holds count
#: against it too.
DEFAULT_BACKLOG = 4096

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


def check_endpoint(service: str, description: str, adopted: bool = False) -> None:
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


def metrics_endpoint(description: str, allow_remote: bool) -> str | None:
    """``--metrics``: the endpoint, or ``None`` for none; checked like a door's."""
    if description.strip().lower() == OFF:
        return None
    check_endpoint("metrics", description)
    if not allow_remote and not is_private_endpoint(description):
        raise usage.UsageError(
            f"--metrics {description} would listen beyond loopback; use "
            "tcp:PORT:interface=127.0.0.1, unix:PATH or ssl:..., or add "
            "--metrics-allow-remote"
        )
    return description
