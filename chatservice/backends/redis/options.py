"""
The command line's ``--redis`` options (``chatservice.tap`` lists them with
the chat's own) and reading them: the URL, the password file, the
authorities' certificates.
"""

from __future__ import annotations

from twisted.python import usage

from chatservice.backends.redis.url import RedisAddress, parse_redis_url
from chatservice.doors.door import positive_int, seconds

#: ``--redis`` and its options, in ``usage.Options.optParameters`` form.
REDIS_PARAMETERS: list[list[object]] = [
    [
        "redis",
        None,
        None,
        "Share the chat with every node started with the same Redis: "
        "redis://[:PASSWORD@]HOST:PORT/DB, or rediss://... for TLS "
        "(docs/scaling.rst) [default: none, this node alone].",
    ],
    [
        "redis-password-file",
        None,
        None,
        "File whose first line is the Redis password (instead of one in the URL).",
    ],
    [
        "redis-ca-file",
        None,
        None,
        "PEM certificates of the authorities that sign the Redis server's "
        "(rediss://) [default: none, the system's authorities].",
    ],
    [
        "redis-liveness",
        None,
        30.0,
        "Seconds without a heartbeat after which a node is dead: its members "
        "are announced gone and their nicknames freed.",
        seconds,
    ],
    [
        "redis-replay",
        None,
        1000,
        "Turns of messages kept while Redis is unreachable, sent to the other "
        "nodes when it is back (older ones are not).",
        positive_int,
    ],
]


def redis_address(config: usage.Options) -> RedisAddress | None:
    """``--redis`` and ``--redis-password-file`` read, or ``None``."""
    if not config["redis"]:
        if config["redis-password-file"]:
            raise usage.UsageError("--redis-password-file needs --redis URL")
        return None
    try:
        address = parse_redis_url(config["redis"])
    except ValueError as error:
        raise usage.UsageError(f"--redis: {error}") from None
    path = config["redis-password-file"]
    if path:
        try:
            with open(path, encoding="utf-8") as file:
                password = file.readline().strip()
        except OSError as error:
            raise usage.UsageError(
                f"--redis-password-file {path}: {error.strerror}"
            ) from None
        address = address.with_password(password)
    path = config["redis-ca-file"]
    if path:
        if not address.tls:
            raise usage.UsageError("--redis-ca-file needs a rediss:// URL")
        try:
            with open(path, encoding="ascii") as file:
                pem = file.read()
        except (OSError, ValueError) as error:
            raise usage.UsageError(f"--redis-ca-file {path}: {error}") from None
        if "-----BEGIN CERTIFICATE-----" not in pem:
            raise usage.UsageError(f"--redis-ca-file {path}: no PEM certificate")
        address = address.with_authorities(pem)
    if config["redis-liveness"] < 3:
        raise usage.UsageError("--redis-liveness must be at least 3 seconds")
    return address
