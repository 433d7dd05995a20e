"""
``--redis URL``: ``redis://[[USER]:PASSWORD@]HOST[:PORT][/DB]``, or
``rediss://`` for TLS (the server's certificate checked against the
system's authorities and the host name).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from urllib.parse import unquote, urlsplit

DEFAULT_PORT = 6379


@dataclass(frozen=True)
class RedisAddress:
    """Where the shared Redis is and how to log in to it."""

    host: str
    port: int = DEFAULT_PORT
    db: int = 0
    tls: bool = False
    username: str | None = None
    password: str | None = None
    #: PEM certificates of the authorities to trust for ``rediss://``
    #: (``--redis-ca-file``; ``None``: the system's).
    ca_certificates: str | None = field(default=None, repr=False, compare=False)

    def with_password(self, password: str) -> RedisAddress:
        """The same address with this password (``--redis-password-file``)."""
        return replace(self, password=password)

    def with_authorities(self, pem: str) -> RedisAddress:
        """The same address trusting these authorities (``--redis-ca-file``)."""
        return replace(self, ca_certificates=pem)

    def __str__(self) -> str:
        """The URL without its password: what logs show."""
        scheme = "rediss" if self.tls else "redis"
        return f"{scheme}://{self.host}:{self.port}/{self.db}"


def parse_redis_url(url: str) -> RedisAddress:
    """A :class:`RedisAddress`, or :class:`ValueError` saying what is wrong."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("redis", "rediss"):
        raise ValueError("expected redis://HOST:PORT/DB or rediss://HOST:PORT/DB")
    try:
        port = parts.port or DEFAULT_PORT
    except ValueError:
        raise ValueError("the port is not a number from 0 to 65535") from None
    host = parts.hostname
    if not host:
        raise ValueError("no host")
    path = parts.path.strip("/")
    if path and not path.isdigit():
        raise ValueError(f"the database must be a number, not {path!r}")
    if parts.query or parts.fragment:
        raise ValueError("no query or fragment expected")
    return RedisAddress(
        host=host,
        port=port,
        db=int(path) if path else 0,
        tls=parts.scheme == "rediss",
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password is not None else None,
    )
