"""
A real ``redis-server`` for the tests: started on a free loopback port in a
temporary directory, without persistence, stopped (and restarted on the
same port) by the test; and a small blocking client to look at it
(``INFO commandstats``, keys) without the code under test.

Without ``redis-server`` the test is skipped, which under CI
(``CI=true``, ``tests/conftest.py``) is a failure: ``.ci/run`` installs it.
"""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from twisted.trial.unittest import SynchronousTestCase

from tests.support import LOOPBACK, Process, free_port, temp_dir, wait_for

if TYPE_CHECKING:
    from chatservice.backends.redis import RedisBackend

#: Seconds redis-server has to answer after it starts.
START_TIMEOUT = 20.0


def redis_server_path(case: SynchronousTestCase) -> str:
    """Where ``redis-server`` is; skip (a failure under CI) when missing."""
    path = shutil.which("redis-server")
    if path is None:
        raise case.skipTest("redis-server is not installed (.ci/run installs it)")
    return path


def command(port: int, *args: str, timeout: float = 5.0, tls: bool = False) -> object:
    """One command to the Redis on ``port``; its answer (errors raised)."""
    with socket.create_connection((LOOPBACK, port), timeout=timeout) as plain:
        connection = plain
        if tls:
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            connection = context.wrap_socket(plain)
        request = f"*{len(args)}\r\n" + "".join(
            f"${len(arg.encode())}\r\n{arg}\r\n" for arg in args
        )
        connection.sendall(request.encode())
        reader = connection.makefile("rb")
        return _reply(reader)


def _reply(reader: object) -> object:
    line = reader.readline()  # type: ignore[attr-defined]
    if not line:
        raise ConnectionError("redis closed the connection")
    kind, rest = line[:1], line[1:-2].decode()
    if kind == b"+":
        return rest
    if kind == b"-":
        raise RuntimeError(rest)
    if kind == b":":
        return int(rest)
    if kind == b"$":
        if rest == "-1":
            return None
        data = reader.read(int(rest) + 2)  # type: ignore[attr-defined]
        return data[:-2].decode()
    if kind == b"*":
        if rest == "-1":
            return None
        return [_reply(reader) for _ in range(int(rest))]
    raise RuntimeError(f"unexpected reply {line!r}")


def command_counts(port: int) -> dict[str, int]:
    """``INFO commandstats``: calls per command (lower case) since a reset."""
    info = command(port, "INFO", "commandstats")
    assert isinstance(info, str)
    counts = {}
    for line in info.splitlines():
        if line.startswith("cmdstat_"):
            name, _, stats = line[len("cmdstat_") :].partition(":")
            fields = dict(field.split("=") for field in stats.split(","))
            counts[name] = int(fields["calls"])
    return counts


class RedisServer:
    """One ``redis-server`` of a test, on its own port and directory."""

    def __init__(
        self, case: SynchronousTestCase, name: str = "redis", tls: bool = False
    ) -> None:
        self.case = case
        self.name = name
        #: With ``tls``: a self-signed certificate for localhost (its own
        #: authority), and the server on TLS only.
        self.tls = tls
        self.binary = redis_server_path(case)
        self.directory = temp_dir(case)
        self.port = free_port()
        self.process: Process | None = None
        self.starts = 0
        if tls:
            self._make_certificate()
        self.start()
        case.addCleanup(self.stop)

    @property
    def url(self) -> str:
        if self.tls:
            return f"rediss://localhost:{self.port}/0"
        return f"redis://{LOOPBACK}:{self.port}/0"

    @property
    def certificate(self) -> Path:
        return self.directory / "cert.pem"

    def _make_certificate(self) -> None:
        openssl = shutil.which("openssl")
        if openssl is None:
            raise self.case.skipTest("openssl is not installed")
        request = [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes"]
        request += ["-days", "1", "-subj", "/CN=localhost"]
        request += ["-addext", "subjectAltName=DNS:localhost"]
        request += ["-keyout", str(self.directory / "key.pem")]
        request += ["-out", str(self.certificate)]
        made = subprocess.run(
            request,
            capture_output=True,
            check=False,
        )
        if made.returncode != 0:
            raise AssertionError(made.stderr.decode(errors="replace"))

    def start(self) -> None:
        """Start it (again, on the same port) and wait until it answers."""
        self.starts += 1
        self.process = Process(
            self.case,
            [
                self.binary,
                *self._port_arguments(),
                "--bind",
                LOOPBACK,
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.directory),
            ],
            self.directory,
            name=f"{self.name}-{self.starts}",
        )
        process = self.process

        def answers() -> bool:
            if process.popen.poll() is not None:
                raise AssertionError(f"redis-server exited:\n{process.describe()}")
            try:
                return command(self.port, "PING", tls=self.tls) == "PONG"
            except OSError:
                return False

        wait_for(answers, START_TIMEOUT, process.describe)

    def _port_arguments(self) -> list[str]:
        if not self.tls:
            return ["--port", str(self.port)]
        return [
            "--port",
            "0",
            "--tls-port",
            str(self.port),
            "--tls-cert-file",
            str(self.certificate),
            "--tls-key-file",
            str(self.directory / "key.pem"),
            "--tls-ca-cert-file",
            str(self.certificate),
            "--tls-auth-clients",
            "no",
        ]

    def stop(self) -> None:
        """Stop it (its data goes: no persistence)."""
        if self.process is not None:
            self.process.kill()
            self.process = None
            # The port is free again once the kernel let go of it.
            time.sleep(0.05)

    def command(self, *args: str) -> object:
        return command(self.port, *args, tls=self.tls)

    def path(self) -> Path:
        return self.directory


#: Seconds the real reactor may run for one wait before the test fails.
REDIS_WAIT = 10.0


def spin(condition: Callable[[], bool], timeout: float = REDIS_WAIT) -> None:
    """
    Run the real reactor (where the Redis client lives) until ``condition``
    holds, for a test on a fake clock; fail after ``timeout`` seconds.
    """
    from twisted.internet import reactor

    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("Redis never answered")
        reactor.iterate(0.001)


def stop_backend(backend: RedisBackend) -> None:
    """Stop a backend and run the reactor until it has (a test's clean-up)."""
    done: list[object] = []
    backend.stop().addBoth(done.append)
    spin(lambda: bool(done))
