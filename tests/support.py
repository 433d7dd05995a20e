"""
Helpers for the tests: mostly for those that run real processes (the
installed ``twistd``, ``python -m twisted`` and the console scripts), and
:func:`end_turn` and :func:`logged_failures` for those on in-memory
transports.

Everything here is bounded in time, talks to loopback only, and registers a
clean-up with the test case so that no process outlives its test, even one
that fails.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import cast

from twisted.internet.task import Clock
from twisted.logger import ILogObserver, LogEvent, globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase

from chatservice.doors.line import LineFactory

#: The checkout these tests belong to (for files that are not installed).
SOURCE_ROOT = Path(__file__).resolve().parent.parent

#: Loopback only: no test listens on or connects to anything else.
LOOPBACK = "127.0.0.1"

#: Seconds a service gets to start listening, and a process to end.
START_TIMEOUT = 30.0
STOP_TIMEOUT = 20.0
#: Seconds a one-shot command (``--help``, a client run) may take.
COMMAND_TIMEOUT = 60.0
#: Seconds a socket waits for the server's next bytes.
SOCKET_TIMEOUT = 10.0


def script(name: str) -> Path:
    """
    A console script of the environment the tests run in (``twistd``,
    ``chatservice-client``), found next to the running interpreter.
    """
    return Path(sys.executable).with_name(name)


def end_turn(factory: LineFactory) -> None:
    """
    Finish the current reactor turn of a factory on a fake clock: write the
    deliveries it queued (:meth:`LineFactory.queueFlush`), as the real
    reactor does before it waits for the network again.
    """
    clock = factory.clock
    assert isinstance(clock, Clock), clock
    clock.advance(0)


def logged_failures(case: SynchronousTestCase) -> list[LogEvent]:
    """
    The events logged with a traceback (``log_failure``) while ``case``
    runs, as they come.  Only those are kept: an event refers to what
    logged it, and keeping them all would keep protocols alive.
    """
    failures: list[LogEvent] = []

    def observe(event: LogEvent) -> None:
        if "log_failure" in event:
            failures.append(event)

    observer = cast(ILogObserver, observe)
    globalLogPublisher.addObserver(observer)
    case.addCleanup(globalLogPublisher.removeObserver, observer)
    return failures


def temp_dir(case: SynchronousTestCase) -> Path:
    """
    A fresh directory for one test's files (logs, pid files).

    Under trial it is inside trial's ``_trial_temp`` (kept for inspection
    until the next run); under pytest, where trial's ``mktemp`` would write
    into the current directory, it is in the system's temporary directory and
    removed when the test ends.
    """
    if os.environ.get("PYTEST_CURRENT_TEST") is None:
        path = Path(case.mktemp()).resolve()
        path.mkdir(parents=True)
        return path
    path = Path(tempfile.mkdtemp(prefix="chatservice-test-"))
    case.addCleanup(shutil.rmtree, path, ignore_errors=True)
    return path


def credentials_file(
    case: SynchronousTestCase, directory: Path, password: str, account: str = "root"
) -> Path:
    """A credentials file with one account, made by ``chatservice-passwd``."""
    path = directory / "passwd"
    made = run(
        [script("chatservice-passwd"), "--file", path, "--stdin", account],
        input=f"{password}\n".encode(),
    )
    case.assertEqual(made.returncode, 0, describe_run(made))
    return path


def free_port() -> int:
    """
    A TCP port on loopback that nothing listened on a moment ago: bind to
    port 0, read the port the kernel chose, close.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((LOOPBACK, 0))
        port: int = probe.getsockname()[1]
        return port


def loopback_endpoint(port: int) -> str:
    """The server endpoint string of a loopback-only TCP port."""
    return f"tcp:{port}:interface={LOOPBACK}"


def chat_twistd(
    port: int, *options: str | Path, twistd_options: tuple[str, ...] = ()
) -> list[str | Path]:
    """
    ``twistd`` in the foreground, no pidfile (and ``twistd_options``),
    serving the chat alone on a loopback ``port`` (echo and upper off), with
    ``options`` after it.
    """
    return [
        script("twistd"),
        "-n",
        "--pidfile=",
        *twistd_options,
        "chatservice",
        "--echo",
        "none",
        "--upper",
        "none",
        "--chat",
        loopback_endpoint(port),
        *options,
    ]


def json_logged_chat(
    case: SynchronousTestCase, directory: Path, port: int, *options: str
) -> Process:
    """
    :func:`chat_twistd` with JSON logs (``chatservice.logs.json_observer``)
    on standard output, started in ``directory`` and running.

    "Listening" is logged before the reactor runs, and so before it has
    installed its signal handlers: a SIGTERM then would end the process
    with the default action.  A welcome line means the reactor runs.
    """
    server = Process(
        case,
        chat_twistd(
            port, *options, twistd_options=("--logger=chatservice.logs.json_observer",)
        ),
        directory,
    )
    server.wait_for_output(r'"text": "chat service listening on')
    with socket.create_connection((LOOPBACK, port), timeout=SOCKET_TIMEOUT) as probe:
        welcome = receive_until(probe, b"\n")
    if b"Welcome" not in welcome:
        raise AssertionError(f"no welcome line: {welcome!r}\n{server.describe()}")
    return server


def wait_for(
    condition: Callable[[], bool],
    timeout: float,
    describe: Callable[[], str],
    interval: float = 0.05,
) -> None:
    """Poll ``condition`` until it holds; fail with ``describe()`` if it never does."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout:g} s: {describe()}")
        time.sleep(interval)


def read_text(path: Path) -> str:
    """A file's text, or ``""`` if it does not exist (yet)."""
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return ""


class Process:
    """
    A long-running child process (a server) whose standard output and error
    go to files, so a chatty child can never block on a full pipe.
    """

    def __init__(
        self,
        case: SynchronousTestCase,
        args: Sequence[str | os.PathLike[str]],
        directory: Path,
        name: str = "server",
    ) -> None:
        self.args = [os.fspath(arg) for arg in args]
        self.stdout_path = directory / f"{name}.stdout"
        self.stderr_path = directory / f"{name}.stderr"
        with (
            self.stdout_path.open("wb") as stdout,
            self.stderr_path.open("wb") as stderr,
        ):
            self.popen = subprocess.Popen(
                self.args,
                cwd=directory,
                stdin=subprocess.DEVNULL,
                stdout=stdout,
                stderr=stderr,
            )
        case.addCleanup(self.kill)

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def stdout(self) -> str:
        return read_text(self.stdout_path)

    @property
    def stderr(self) -> str:
        return read_text(self.stderr_path)

    def describe(self) -> str:
        """Everything known about the process, for failure messages."""
        return (
            f"{self.args}\nexit status: {self.popen.poll()}\n"
            f"--- stdout ---\n{self.stdout}\n--- stderr ---\n{self.stderr}"
        )

    def wait_for_output(self, pattern: str, timeout: float = START_TIMEOUT) -> None:
        """Wait until standard output matches ``pattern`` (a regular expression)."""

        def found() -> bool:
            if re.search(pattern, self.stdout, re.MULTILINE):
                return True
            if self.popen.poll() is not None:
                raise AssertionError(
                    f"exited before printing {pattern!r}:\n{self.describe()}"
                )
            return False

        wait_for(found, timeout, lambda: f"{pattern!r} in\n{self.describe()}")

    def terminate(self) -> None:
        """Ask the process to stop, as ``kill PID`` and systemd do."""
        self.popen.send_signal(signal.SIGTERM)

    def wait(self, timeout: float = STOP_TIMEOUT) -> int:
        """The exit status; fail if the process does not end in time."""
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"still running after {timeout:g} s:\n{self.describe()}"
            ) from None

    def kill(self) -> None:
        """Clean-up: end the process at once if it is still running."""
        if self.popen.poll() is None:
            self.popen.kill()
        self.popen.wait()


def run(
    args: Sequence[str | os.PathLike[str]],
    *,
    timeout: float = COMMAND_TIMEOUT,
    cwd: Path | None = None,
    input: bytes | None = None,
    env: Mapping[str, str] | None = None,
) -> subprocess.CompletedProcess[bytes]:
    """
    Run a command to its end, capturing its output; fail (after killing it)
    if it takes longer than ``timeout``.
    """
    args = [os.fspath(arg) for arg in args]
    try:
        return subprocess.run(
            args,
            cwd=cwd,
            env=env,
            input=input,
            stdin=None if input is not None else subprocess.DEVNULL,
            capture_output=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as error:
        raise AssertionError(
            f"{args} did not finish within {timeout:g} s\n"
            f"--- stdout ---\n{error.stdout!r}\n--- stderr ---\n{error.stderr!r}"
        ) from None


def describe_run(result: subprocess.CompletedProcess[bytes]) -> str:
    """A finished command, for failure messages."""
    return (
        f"{result.args}\nexit status: {result.returncode}\n"
        f"--- stdout ---\n{result.stdout.decode(errors='replace')}\n"
        f"--- stderr ---\n{result.stderr.decode(errors='replace')}"
    )


# Processes that are not our children (daemons)


def process_running(pid: int) -> bool:
    """
    Whether a process exists and has not ended.  A daemon is not our child:
    once it ends it may stay a zombie if its new parent does not reap it, so
    on Linux a zombie counts as ended.
    """
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    # "PID (COMMAND) STATE ...": COMMAND may itself hold spaces or parentheses.
    state = stat.rpartition(")")[2].split()[:1]
    return state != ["Z"]


def kill_daemon(pidfile: Path, marker: str) -> None:
    """
    Clean-up: SIGKILL the daemon named by ``pidfile`` if it still runs.  Where
    ``/proc`` shows command lines, only a process whose command line contains
    ``marker`` (a path unique to the test) is killed, never a process that
    reused the pid.
    """
    try:
        pid = int(pidfile.read_text().strip())
    except (OSError, ValueError):
        return
    if not process_running(pid):
        return
    try:
        command_line = Path(f"/proc/{pid}/cmdline").read_bytes()
    except FileNotFoundError:
        return
    except OSError:
        command_line = None
    if command_line is not None and marker.encode() not in command_line:
        return
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    wait_for(lambda: not process_running(pid), STOP_TIMEOUT, lambda: f"pid {pid}")


# Sockets


def connect(case: SynchronousTestCase, port: int) -> socket.socket:
    """A TCP connection to a loopback port, closed when the test ends."""
    connection = socket.create_connection((LOOPBACK, port), timeout=SOCKET_TIMEOUT)
    case.addCleanup(connection.close)
    return connection


def receive_until(connection: socket.socket, expected: bytes) -> bytes:
    """
    Read until ``expected`` has arrived, the peer closed, or nothing came for
    :data:`SOCKET_TIMEOUT` seconds; return everything read.
    """
    received = b""
    deadline = time.monotonic() + SOCKET_TIMEOUT
    while expected not in received:
        connection.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            data = connection.recv(65536)
        except TimeoutError:
            break
        if not data:
            break
        received += data
    return received


def receive_to_end(connection: socket.socket) -> bytes:
    """Read until the peer closes (or :data:`SOCKET_TIMEOUT` passes)."""
    received = b""
    deadline = time.monotonic() + SOCKET_TIMEOUT
    while True:
        connection.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            data = connection.recv(65536)
        except TimeoutError:
            raise AssertionError(
                f"the server did not close the connection; got {received!r}"
            ) from None
        except ConnectionResetError:
            raise AssertionError(
                f"the server reset the connection; got {received!r}"
            ) from None
        if not data:
            return received
        received += data
