"""Who is on the other end of a transport, for limits, logs and listings."""

from __future__ import annotations

from twisted.internet.interfaces import INegotiated, ISSLTransport


def peer_host(transport: object) -> str | None:
    """
    The IP address of a transport's peer, or ``None`` for UNIX sockets and
    transports that have no host (limits per address do not apply to them).
    """
    get_peer = getattr(transport, "getPeer", None)
    if get_peer is None:
        return None
    host = getattr(get_peer(), "host", None)
    return host if isinstance(host, str) else None


def describe_peer(transport: object) -> str:
    """A short printable name for a transport's peer, for logs and listings."""
    get_peer = getattr(transport, "getPeer", None)
    if get_peer is None:
        return "?"
    return describe_address(get_peer())


def describe_address(address: object) -> str:
    """``127.0.0.1:6666``, ``[::1]:6666`` or ``unix:/path``."""
    host = getattr(address, "host", None)
    port = getattr(address, "port", None)
    if isinstance(host, str):
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    name = getattr(address, "name", None)
    return f"unix:{name.decode() if isinstance(name, bytes) else name or ''}"


def is_tls(transport: object) -> bool:
    """
    Whether a transport is TLS: ``ssl:`` ports give an ``ISSLTransport``,
    TLS wrapped over another endpoint (``tls:``, ``wrapClientTLS``) an
    ``INegotiated`` one (it copies what the TCP transport provides).
    """
    return bool(
        ISSLTransport.providedBy(transport) or INegotiated.providedBy(transport)
    )
