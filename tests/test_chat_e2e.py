"""
The chat end to end: the installed ``twistd chatservice`` as a subprocess,
three real clients (two raw sockets acting like ``nc``, one
``chatservice-client``), an operator kicking one of them, and the admin
console broadcasting through ``chatservice-client --admin``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

from tests.support import (
    SOCKET_TIMEOUT,
    Process,
    chat_twistd,
    connect,
    credentials_file,
    describe_run,
    free_port,
    read_text,
    receive_until,
    run,
    temp_dir,
    wait_for,
)

PASSWORD = "correct horse battery"


class NcClient:
    """A raw socket speaking the chat's line protocol, as ``nc`` would."""

    def __init__(self, case: SynchronousTestCase, port: int, nick: str) -> None:
        self.socket = connect(case, port)
        self.received = b""
        self.expect("/help lists commands")
        self.send(nick)
        self.expect(f"--- you are {nick}")

    def send(self, line: str) -> None:
        self.socket.sendall(line.encode("utf-8") + b"\n")

    def expect(self, text: str) -> str:
        """Wait for ``text``; return everything received so far."""
        wanted = text.encode("utf-8")
        if wanted not in self.received:
            self.received += receive_until(self.socket, wanted)
        if wanted not in self.received:
            raise AssertionError(f"{text!r} never arrived; got {self.received!r}")
        return self.received.decode("utf-8")

    def closed_by_server(self) -> bool:
        """Whether the server closed this connection (reading to the end)."""
        self.socket.settimeout(SOCKET_TIMEOUT)
        while True:
            try:
                data = self.socket.recv(65536)
            except (ConnectionResetError, TimeoutError):
                return False
            if not data:
                return True
            self.received += data


class ChatEndToEndTests(SynchronousTestCase):
    """Three people, an operator and an administrator on a real server."""

    def setUp(self) -> None:
        self.directory = temp_dir(self)
        self.credentials = credentials_file(self, self.directory, PASSWORD)
        self.assertNotIn(PASSWORD, self.credentials.read_text())
        self.port = free_port()
        self.admin_socket = self.directory / "admin.sock"
        self.server = Process(
            self,
            chat_twistd(
                self.port,
                "--admin",
                f"unix:{self.admin_socket}",
                "--credentials",
                self.credentials,
            ),
            self.directory,
        )
        self.server.wait_for_output(r"chat service listening")
        self.server.wait_for_output(r"admin service listening")

    def start_client(self, nick: str) -> tuple[subprocess.Popen[bytes], Path]:
        """``chatservice-client`` with a pipe for stdin and a file for stdout."""
        output = self.directory / f"{nick}.out"
        with output.open("wb") as stdout:
            client = subprocess.Popen(
                [sys.executable, "-m", "chatservice.client", f"127.0.0.1:{self.port}"],
                stdin=subprocess.PIPE,
                stdout=stdout,
                stderr=subprocess.STDOUT,
            )
        self.addCleanup(_kill, client)
        assert client.stdin is not None
        client.stdin.write(f"{nick}\n".encode())
        client.stdin.flush()
        self.wait_for_file(output, f"--- you are {nick}")
        return client, output

    def wait_for_file(self, path: Path, text: str) -> None:
        wait_for(
            lambda: text in read_text(path),
            SOCKET_TIMEOUT,
            lambda: f"{text!r} in {path.name}: {read_text(path)!r}",
        )

    def test_three_clients_an_operator_and_the_admin_console(self) -> None:
        """
        Messages reach the room, a private message reaches only its
        recipient, an operator's kick disconnects its target while the room
        sees why, the admin console's broadcast reaches everyone, and a
        SIGTERM says goodbye to every client.
        """
        alice = NcClient(self, self.port, "alice")
        bob = NcClient(self, self.port, "bob")
        carol, carol_out = self.start_client("carol")
        assert carol.stdin is not None

        alice.send("hello, world")
        for received in (bob.expect("#lobby <alice> hello, world"),):
            self.assertIn("-!- carol has joined #lobby", received)
        self.wait_for_file(carol_out, "#lobby <alice> hello, world")

        carol.stdin.write(b"/msg bob just between us\n")
        carol.stdin.flush()
        bob.expect("*carol* just between us")
        self.wait_for_file(carol_out, "-> *bob* just between us")
        alice.send("/who")
        self.assertNotIn(
            "just between us", alice.expect("--- #lobby (3): alice bob carol")
        )

        bob.send(f"/oper root {PASSWORD}")
        bob.expect("--- you are now an operator (as root)")
        bob.send("/kick alice spamming")
        bob.expect("--- kicked alice")
        self.assertIn(
            "!!! disconnected: kicked by bob: spamming",
            alice.expect("!!! disconnected: kicked by bob: spamming"),
        )
        self.assertTrue(alice.closed_by_server())
        self.wait_for_file(carol_out, "-!- alice was kicked by bob (spamming)")

        password_file = self.directory / "admin-password"
        password_file.write_text(f"{PASSWORD}\n")
        console = run(
            [
                sys.executable,
                "-m",
                "chatservice.client",
                "--admin",
                "--user",
                "root",
                "--password-file",
                password_file,
                f"unix:{self.admin_socket}",
            ],
            input=b"broadcast tea is ready\nlist\n",
        )
        self.assertEqual(console.returncode, 0, describe_run(console))
        transcript = console.stdout.decode()
        self.assertIn("--- logged in as root", transcript)
        self.assertIn("--- announced to 2 clients", transcript)
        self.assertIn("--- 2 connections", transcript)
        self.assertNotIn(PASSWORD, transcript)
        bob.expect("*** admin root: tea is ready")
        self.wait_for_file(carol_out, "*** admin root: tea is ready")

        self.server.terminate()
        bob.expect("*** Server shutting down. Goodbye.")
        self.wait_for_file(carol_out, "*** Server shutting down. Goodbye.")
        self.server.wait()
        self.assertIn("Server Shut Down", self.server.stdout)
        self.assertEqual(carol.wait(SOCKET_TIMEOUT), 1)
        self.assertIn("connection closed by server", read_text(carol_out))

    def test_nc_style_client_gets_an_error_for_an_unknown_command(self) -> None:
        """A raw client gets one clear error line and stays connected."""
        alice = NcClient(self, self.port, "alice")
        alice.send("/dance")
        alice.expect("!!! unknown command /dance; /help lists commands")
        alice.send("still here")
        alice.expect("#lobby <alice> still here")


def _kill(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.kill()
    process.wait()
    if process.stdin is not None:
        process.stdin.close()
