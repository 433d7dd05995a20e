"""
End-to-end tests of the installed service: ``twistd chatservice`` in the
foreground and as a daemon, ``python -m twisted chatservice``, their help
texts, and the systemd unit in ``contrib/``.

These run real processes of the environment the tests run in (found next to
``sys.executable``), on free loopback ports, with every file in a temporary
directory and every process killed when its test ends.

What they pin down about stopping (Twisted 26.10): on SIGTERM, twistd and
``python -m twisted`` stop every service cleanly -- each client is told
"Server shutting down. Goodbye." -- and then end *by* that SIGTERM (Twisted
re-raises it), so the exit status is ``-SIGTERM`` for :mod:`subprocess`,
143 in a shell, and a clean stop for systemd.
"""

from __future__ import annotations

import functools
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

from tests.support import (
    SOURCE_ROOT,
    START_TIMEOUT,
    STOP_TIMEOUT,
    Process,
    connect,
    describe_run,
    free_port,
    kill_daemon,
    loopback_endpoint,
    process_running,
    read_text,
    receive_to_end,
    receive_until,
    run,
    script,
    temp_dir,
    wait_for,
)

GOODBYE = b"Server shutting down. Goodbye.\r\n"

#: The status of a process that ended by SIGTERM, as :mod:`subprocess` says it.
KILLED_BY_SIGTERM = -signal.SIGTERM


def twistd() -> Path:
    """The ``twistd`` of the environment under test."""
    path = script("twistd")
    if not path.exists():
        raise AssertionError(f"no twistd next to {sys.executable}")
    return path


@functools.cache
def plugin_help() -> str:
    """The output of ``twistd chatservice --help`` (run once per test run)."""
    result = run([twistd(), "chatservice", "--help"])
    assert result.returncode == 0, describe_run(result)
    return result.stdout.decode()


def other_services_off() -> list[str]:
    """
    Options that turn off every other service that would listen on its
    fixed default port (such as ``--chat``, being added while these tests
    were written): each option whose help shows an endpoint as its default.
    """
    arguments = []
    for name, text in option_help(plugin_help()).items():
        default = re.search(r"\[default: (\w+):", normalize(text))
        if name not in ("echo", "upper") and default and default[1] != "none":
            arguments += [f"--{name}", "none"]
    return arguments


def service_arguments(echo_port: int, upper_port: int | None) -> list[str]:
    """The plugin options of a service on the given loopback ports."""
    upper = "none" if upper_port is None else loopback_endpoint(upper_port)
    return [
        "--echo",
        loopback_endpoint(echo_port),
        "--upper",
        upper,
        *other_services_off(),
    ]


def listening_pattern(service: str, port: int) -> str:
    """What the log says once ``service`` listens on ``port``."""
    return rf"{service} service listening on \S*:{port}\b"


def normalize(text: str) -> str:
    """Collapse all whitespace (help texts wrap at arbitrary points)."""
    return " ".join(text.split())


class ServerChecks(SynchronousTestCase):
    """What every way of running the service is checked for."""

    def setUp(self) -> None:
        self.directory = temp_dir(self)
        self.echo_port = free_port()
        self.upper_port = free_port()
        while self.upper_port == self.echo_port:
            self.upper_port = free_port()

    def wait_until_listening(self, server: Process) -> None:
        server.wait_for_output(listening_pattern("echo", self.echo_port))
        server.wait_for_output(listening_pattern("upper", self.upper_port))

    def assert_serves(self) -> tuple[socket.socket, socket.socket]:
        """
        Both services answer on their loopback ports; return an open
        connection to each.
        """
        echo = connect(self, self.echo_port)
        echo.sendall(b"hello\n")
        self.assertEqual(receive_until(echo, b"\r\n"), b"hello\r\n")
        upper = connect(self, self.upper_port)
        upper.sendall("hello\nstraße\n".encode())
        self.assertEqual(receive_until(upper, b"STRASSE\r\n"), b"HELLO\r\nSTRASSE\r\n")
        return echo, upper

    def assert_goodbye(self, *connections: socket.socket) -> None:
        """Each connection hears the shutdown line, then is closed."""
        for connection in connections:
            self.assertEqual(receive_to_end(connection), GOODBYE)

    def assert_no_traceback(self, *outputs: str) -> None:
        for output in outputs:
            self.assertNotIn("Traceback", output)


class ForegroundTests(ServerChecks):
    """``twistd -n --pidfile= chatservice``: the way systemd runs it."""

    def start(self) -> Process:
        server = Process(
            self,
            [
                twistd(),
                "--nodaemon",
                "--pidfile=",
                "chatservice",
                *service_arguments(self.echo_port, self.upper_port),
            ],
            self.directory,
        )
        self.wait_until_listening(server)
        return server

    def test_servesThenStopsOnSIGTERM(self) -> None:
        """
        twistd serves echo and uppercase on loopback; on SIGTERM every
        client is told the server is shutting down and disconnected, twistd
        logs a clean shutdown and ends by the SIGTERM (status -SIGTERM, 143 in
        a shell), without a traceback or a pid file.  (The wait's deadline
        only catches a hang.)
        """
        server = self.start()
        echo, upper = self.assert_serves()
        server.terminate()
        self.assert_goodbye(echo, upper)
        status = server.wait()
        self.assertEqual(status, KILLED_BY_SIGTERM, server.describe())
        log = server.stdout
        self.assertRegex(log, listening_pattern("echo", self.echo_port))
        self.assertRegex(log, listening_pattern("upper", self.upper_port))
        self.assertIn("Received SIGTERM, shutting down.", log)
        self.assertIn("Server Shut Down.", log)
        self.assert_no_traceback(log, server.stderr)
        self.assertFalse((self.directory / "twistd.pid").exists())

    def test_client(self) -> None:
        """
        The real client (``python -m chatservice.client``) sends standard
        input to the uppercase service, prints every answer line and exits 0
        once its input has ended and the server has answered and closed.
        """
        server = self.start()
        result = run(
            [
                sys.executable,
                "-m",
                "chatservice.client",
                f"127.0.0.1:{self.upper_port}",
            ],
            cwd=self.directory,
            input="hello\nstraße\n".encode(),
        )
        self.assertEqual(
            (result.returncode, result.stdout),
            (0, b"HELLO\nSTRASSE\n"),
            describe_run(result),
        )
        server.terminate()
        self.assertEqual(server.wait(), KILLED_BY_SIGTERM, server.describe())

    def test_portTaken(self) -> None:
        """
        When a port is taken, twistd exits at once with a non-zero status
        and says so in one line naming the service and endpoint -- no
        traceback.
        """
        with socket.socket() as holder:
            holder.bind(("127.0.0.1", self.echo_port))
            holder.listen()
            result = run(
                [
                    twistd(),
                    "--nodaemon",
                    "--pidfile=",
                    "chatservice",
                    *service_arguments(self.echo_port, None),
                ],
                cwd=self.directory,
            )
        stdout = result.stdout.decode(errors="replace")
        stderr = result.stderr.decode(errors="replace")
        self.assertNotEqual(result.returncode, 0, describe_run(result))
        self.assertRegex(
            stderr,
            rf"(?m)^chatservice: echo on {re.escape(loopback_endpoint(self.echo_port))}"
            r": .*Address already in use$",
        )
        self.assert_no_traceback(stdout, stderr)


class DaemonTests(ServerChecks):
    """``twistd --pidfile=... --logfile=... chatservice``: a classic daemon."""

    def setUp(self) -> None:
        super().setUp()
        self.pidfile = self.directory / "chat.pid"
        self.logfile = self.directory / "chat.log"
        # The daemon is not our child: kill it by its pid file if a test
        # fails before it is stopped.
        self.addCleanup(kill_daemon, self.pidfile, str(self.pidfile))

    def launch(self, upper_port: int | None) -> subprocess.CompletedProcess[bytes]:
        """
        Run twistd in daemon mode and return its result (the run's deadline
        only catches a hang).
        """
        return run(
            [
                twistd(),
                f"--pidfile={self.pidfile}",
                f"--logfile={self.logfile}",
                "chatservice",
                *service_arguments(self.echo_port, upper_port),
            ],
            cwd=self.directory,
            timeout=START_TIMEOUT,
        )

    def describe(self, result: subprocess.CompletedProcess[bytes]) -> str:
        return (
            f"{describe_run(result)}\n"
            f"--- {self.logfile.name} ---\n{read_text(self.logfile)}"
        )

    def test_daemonLifeCycle(self) -> None:
        """
        twistd detaches and returns 0 once the services listen; the pid file
        names the running daemon, which serves; SIGTERM to that pid says
        goodbye to clients, ends the daemon, removes the pid file, and the
        log records a clean shutdown.
        """
        result = self.launch(self.upper_port)
        self.assertEqual(result.returncode, 0, self.describe(result))
        pid = int(self.pidfile.read_text().strip())
        self.assertTrue(process_running(pid), self.describe(result))
        echo, upper = self.assert_serves()
        os.kill(pid, signal.SIGTERM)
        self.assert_goodbye(echo, upper)
        wait_for(
            lambda: not process_running(pid),
            STOP_TIMEOUT,
            lambda: self.describe(result),
        )
        self.assertFalse(self.pidfile.exists(), "the pid file is left behind")
        log = read_text(self.logfile)
        self.assertRegex(log, listening_pattern("echo", self.echo_port))
        self.assertRegex(log, listening_pattern("upper", self.upper_port))
        self.assertIn("Received SIGTERM, shutting down.", log)
        self.assertIn("Server Shut Down.", log)
        self.assert_no_traceback(log)

    def test_portTaken(self) -> None:
        """
        When a port is taken, daemon-mode twistd exits non-zero without
        detaching a daemon or leaving a pid file; its error names the service
        and endpoint, without a traceback, and the log has the whole line.
        """
        with socket.socket() as holder:
            holder.bind(("127.0.0.1", self.echo_port))
            holder.listen()
            result = self.launch(None)
        stderr = result.stderr.decode(errors="replace")
        self.assertNotEqual(result.returncode, 0, self.describe(result))
        # twistd passes at most 100 bytes of the daemon's error back.
        self.assertIn(f"echo on {loopback_endpoint(self.echo_port)}", stderr)
        # The daemon reports to its parent first and writes its log after:
        # the line may land a moment after the parent has exited.
        expected = re.compile(
            rf"chatservice: echo on {re.escape(loopback_endpoint(self.echo_port))}"
            r": .*Address already in use"
        )
        wait_for(
            lambda: expected.search(read_text(self.logfile)) is not None,
            START_TIMEOUT,
            lambda: f"{expected.pattern!r} in the log:\n{read_text(self.logfile)}",
        )
        self.assert_no_traceback(stderr, read_text(self.logfile))
        wait_for(
            lambda: not self.pidfile.exists(),
            STOP_TIMEOUT,
            lambda: "the pid file to be removed",
        )


class TwistRunnerTests(ServerChecks):
    """``python -m twisted chatservice``: Twisted's newer runner."""

    def command(self, upper_port: int | None) -> list[str]:
        return [
            sys.executable,
            "-m",
            "twisted",
            # JSON is its default when the log is not a terminal.
            "--log-format=text",
            "chatservice",
            *service_arguments(self.echo_port, upper_port),
        ]

    def test_servesThenStopsOnSIGTERM(self) -> None:
        """
        ``python -m twisted chatservice`` serves both services; on SIGTERM it
        says goodbye to clients and ends by the SIGTERM, without a traceback.
        """
        server = Process(self, self.command(self.upper_port), self.directory)
        self.wait_until_listening(server)
        echo, upper = self.assert_serves()
        server.terminate()
        self.assert_goodbye(echo, upper)
        self.assertEqual(server.wait(), KILLED_BY_SIGTERM, server.describe())
        self.assertIn("Received SIGTERM, shutting down.", server.stdout)
        self.assertIn("Main loop terminated.", server.stdout)
        self.assert_no_traceback(server.stdout, server.stderr)

    def test_portTaken(self) -> None:
        """
        A taken port ends ``python -m twisted chatservice`` with a non-zero
        status and the same one-line error, without a traceback.
        """
        with socket.socket() as holder:
            holder.bind(("127.0.0.1", self.echo_port))
            holder.listen()
            result = run(self.command(None), cwd=self.directory)
        stdout = result.stdout.decode(errors="replace")
        stderr = result.stderr.decode(errors="replace")
        self.assertNotEqual(result.returncode, 0, describe_run(result))
        self.assertRegex(
            stderr,
            rf"(?m)^chatservice: echo on {re.escape(loopback_endpoint(self.echo_port))}"
            r": .*Address already in use$",
        )
        self.assert_no_traceback(stdout, stderr)


class HelpTests(SynchronousTestCase):
    """What ``twistd --help`` and ``twistd chatservice --help`` say."""

    def test_pluginListed(self) -> None:
        """``twistd --help`` lists ``chatservice`` with its one-line description."""
        from twisted.plugins.chatservice_plugin import chatservice

        result = run([twistd(), "--help"])
        self.assertEqual(result.returncode, 0, describe_run(result))
        commands = normalize(result.stdout.decode().partition("Commands:")[2])
        self.assertIn(f"chatservice {normalize(chatservice.description)}", commands)

    def test_everyOptionWithDefault(self) -> None:
        """
        ``twistd chatservice --help`` lists every option of
        :class:`chatservice.tap.Options`, and each one that takes a value
        shows its ``[default: ...]`` -- except those whose default is
        ``None`` (optional files), for which there is nothing to show.
        """
        from chatservice.tap import Options

        described = option_help(plugin_help())
        options = Options()
        self.assertEqual(set(described), {name.rstrip("=") for name in options.longOpt})
        for name in (name[:-1] for name in options.longOpt if name.endswith("=")):
            text = normalize(described[name])
            if name not in options.defaults:
                # An opt_ method: its docstring states the default.
                self.assertRegex(text, r"\[default: [^]]+\]", f"--{name}")
            elif options.defaults[name] is not None:
                self.assertIn(f"[default: {options.defaults[name]}]", text, name)


def option_help(text: str) -> dict[str, str]:
    """Each option of a ``--help`` text and its description."""
    options: dict[str, str] = {}
    current: str | None = None
    in_options = False
    for line in text.splitlines():
        if line.strip() == "Options:":
            in_options = True
            continue
        if not in_options:
            continue
        if not line.strip():
            break
        match = re.match(r"\s+(?:-\w, )?--([\w-]+)=?(.*)", line)
        if match:
            current = match[1]
            options[current] = match[2]
        elif current is not None:
            options[current] += " " + line
    return options


class SystemdUnitTests(SynchronousTestCase):
    """The systemd unit in ``contrib/`` runs the service the tested way."""

    def setUp(self) -> None:
        self.unit = unit_settings(SOURCE_ROOT / "contrib" / "chatservice.service")

    def test_execStart(self) -> None:
        """
        The unit runs twistd in the foreground, without a pid file, logging
        to the journal, with plugin options the installed plugin accepts
        (given the socket ``contrib/chatservice.socket`` passes).
        """
        # twistd's options on POSIX (twisted.scripts.twistd re-exports them).
        from twisted.scripts._twistd_unix import ServerOptions

        from tests.test_socket_activation import inherit, listening

        inherit(self, chat=listening(self, socket.AF_INET6))

        (command,) = self.unit["ExecStart"]
        argv = shlex.split(command)
        self.assertEqual(Path(argv[0]).name, "twistd")
        config = ServerOptions()
        config.parseOptions(argv[1:])
        self.assertTrue(config["nodaemon"])
        self.assertEqual(config["pidfile"], "")
        self.assertIn(config["logfile"], (None, "-"))
        self.assertEqual(config.subCommand, "chatservice")

    def test_hardening(self) -> None:
        """
        The unit runs as the dedicated ``chatservice`` user, restarts only
        on failure, and is confined.
        """
        for key, value in [
            ("User", "chatservice"),
            ("Group", "chatservice"),
            ("Restart", "on-failure"),
            ("NoNewPrivileges", "yes"),
            ("ProtectSystem", "strict"),
            ("ProtectHome", "yes"),
            ("PrivateTmp", "yes"),
            ("StateDirectory", "chatservice"),
        ]:
            self.assertEqual(self.unit.get(key), [value], key)
        self.assertIn("WorkingDirectory", self.unit)


def unit_settings(path: Path) -> dict[str, list[str]]:
    """The ``Key=value`` settings of a systemd unit file, by key."""
    settings: dict[str, list[str]] = {}
    logical = ""
    for line in path.read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        if not logical and (not stripped or stripped[0] in "#;["):
            continue
        if stripped.endswith("\\"):
            logical += stripped[:-1] + " "
            continue
        logical += stripped
        key, _, value = logical.partition("=")
        settings.setdefault(key.strip(), []).append(value.strip())
        logical = ""
    return settings
