"""
The endpoint argument of ``chatservice-client``: :func:`parse_endpoint` and
:func:`make_endpoint` turn ``HOST:PORT``, ``[V6]:PORT``, a bare ``PORT`` or
a Twisted client endpoint string into an endpoint, with a one-line error;
:func:`describe_connect_error` says in a few words why a connection failed.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from twisted.internet import error as neterror
from twisted.internet.endpoints import HostnameEndpoint, clientFromString
from twisted.internet.interfaces import (
    IStreamClientEndpoint,
    IStreamClientEndpointStringParserWithReactor,
)
from twisted.plugin import getPlugins

#: Host of a bare ``PORT``.
DEFAULT_HOST = "localhost"


class EndpointError(ValueError):
    """The endpoint argument cannot be used; the message says why."""


@dataclass(frozen=True)
class HostPort:
    """A ``HOST:PORT`` destination, connected with a ``HostnameEndpoint``."""

    host: str
    port: int


_BARE_PORT = re.compile(r"[0-9]+")
_BRACKETED = re.compile(r"\[([^\[\]]*)\]:([0-9]+)")
_HOST_PORT = re.compile(r"([^:\[\]=\s]+):([0-9]+)")
_UNBRACKETED_V6 = re.compile(r"([0-9A-Fa-f.]*:[0-9A-Fa-f.:]*):([0-9]+)")
_BUILTIN_TYPES = frozenset({"tcp", "ssl", "unix"})


def endpoint_types() -> frozenset[str]:
    """Every Twisted client endpoint type name known here (``tcp``, ``tls``...)."""
    plugins = getPlugins(IStreamClientEndpointStringParserWithReactor)
    return _BUILTIN_TYPES | {str(plugin.prefix).lower() for plugin in plugins}


def _port(text: str, whole: str) -> int:
    port = int(text)
    if not 0 < port < 65536:
        raise EndpointError(f"invalid endpoint {whole!r}: port must be 1 to 65535")
    return port


def parse_endpoint(
    text: str, known_types: Callable[[], frozenset[str]] = endpoint_types
) -> HostPort | str:
    """
    Read the endpoint argument: a :class:`HostPort` for ``PORT``
    (on localhost), ``HOST:PORT`` and ``[IPV6]:PORT``, or else the text
    itself, a Twisted client endpoint string for :func:`clientFromString`.

    ``NAME:DIGITS`` is an endpoint string when ``NAME`` is an endpoint type
    (``unix:1234`` is a socket file named ``1234``), else a host and a port.
    """
    whole = text
    text = text.strip()
    if not text:
        raise EndpointError("empty endpoint")
    if _BARE_PORT.fullmatch(text):
        return HostPort(DEFAULT_HOST, _port(text, whole))
    match = _BRACKETED.fullmatch(text)
    if match is not None:
        host = match.group(1)
        if not host:
            raise EndpointError(f"invalid endpoint {whole!r}: empty host")
        return HostPort(host, _port(match.group(2), whole))
    match = _HOST_PORT.fullmatch(text)
    if match is not None and match.group(1).lower() not in known_types():
        return HostPort(match.group(1), _port(match.group(2), whole))
    match = _UNBRACKETED_V6.fullmatch(text)
    if match is not None:
        raise EndpointError(
            f"invalid endpoint {whole!r}: put an IPv6 address in brackets, "
            f"as in [{match.group(1)}]:{match.group(2)}"
        )
    return text


def make_endpoint(
    reactor: Any, text: str, *, tls: bool = False, ca_file: str | None = None
) -> IStreamClientEndpoint:
    """
    The client endpoint for the endpoint argument, or :class:`EndpointError`
    with a one-line reason.  With ``tls``, ``HOST:PORT`` is reached over
    TLS, the certificate checked against ``ca_file`` (else the system's
    authorities) and the host name (:mod:`chatservice.client.tls`).
    """
    parsed = parse_endpoint(text)
    if tls:
        if not isinstance(parsed, HostPort):
            raise EndpointError(
                f"--tls takes HOST:PORT or PORT, not the endpoint string {text!r} "
                "(ssl: and tls: endpoint strings say their own TLS options)"
            )
        from chatservice.client.tls import CAFileError, VerifiedTLSEndpoint, load_trust

        try:
            trust = load_trust(ca_file)
        except CAFileError as problem:
            raise EndpointError(str(problem)) from None
        return VerifiedTLSEndpoint(reactor, parsed.host, parsed.port, trust)
    if isinstance(parsed, HostPort):
        endpoint: IStreamClientEndpoint = HostnameEndpoint(
            reactor, parsed.host, parsed.port
        )
        return endpoint
    try:
        endpoint = clientFromString(reactor, parsed)
    except Exception as problem:
        # Anything: a parser's ValueError or TypeError, a missing key file's
        # OSError, OpenSSL's complaint about a certificate...
        reason = str(problem) or type(problem).__name__
        if isinstance(problem, TypeError):
            # "TCP4ClientEndpoint.__init__() missing 1 required ... 'port'"
            found = re.search(r"(missing|unexpected).*", reason)
            reason = found.group() if found else reason
        raise EndpointError(f"invalid endpoint {text!r}: {reason}") from None
    return endpoint


def describe_connect_error(problem: BaseException) -> str:
    """A short reason for a failed or lost connection."""
    from chatservice.client.tls import CertificateError

    if isinstance(problem, CertificateError):
        return f"TLS: {problem}"
    if isinstance(problem, neterror.DNSLookupError):
        return "host not found"
    if isinstance(problem, neterror.TimeoutError | TimeoutError):
        return "timed out"
    reason = ""
    if isinstance(problem, neterror.ConnectError):
        # The OS's words ("Connection refused"), without Twisted's preamble.
        if problem.args and problem.args[0]:
            reason = str(problem.args[0])
        elif isinstance(problem.osError, str):
            reason = problem.osError
    reason = (reason or str(problem)).strip().rstrip(".")
    if not reason:
        return type(problem).__name__
    return reason[:1].lower() + reason[1:]
