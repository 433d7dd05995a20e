"""
Graceful shutdown and an immediate restart of the installed ``twistd
chatservice``, as an operator (or systemd) does it: SIGTERM with chat
clients connected, then start again at once on the same port, while the
connections the old server closed are still in TIME_WAIT.

The server runs as a subprocess on a free loopback port; every process is
killed when its test ends, even one that fails.
"""

from __future__ import annotations

import signal
import socket

from twisted.trial.unittest import SkipTest, SynchronousTestCase

from tests.support import (
    Process,
    chat_twistd,
    connect,
    free_port,
    receive_to_end,
    receive_until,
    temp_dir,
)

GREETING = b"/help lists commands.\r\n"
GOODBYE = b"*** Server shutting down. Goodbye.\r\n"


def time_wait(port: int) -> int | None:
    """
    How many TCP connections from local ``port`` are in TIME_WAIT (Linux's
    ``/proc/net/tcp``: state 06; the local port is in hexadecimal), or
    ``None`` where there is no ``/proc/net/tcp`` to see it in.
    """
    try:
        with open("/proc/net/tcp", encoding="ascii") as table:
            rows = table.read().splitlines()[1:]
    except OSError:
        return None
    return sum(
        1
        for row in rows
        if int(row.split()[1].split(":")[1], 16) == port and row.split()[3] == "06"
    )


class RestartTests(SynchronousTestCase):
    """SIGTERM says goodbye and ends the process; a new one starts at once."""

    def setUp(self) -> None:
        self.directory = temp_dir(self)
        self.port = free_port()

    def start(self, name: str) -> Process:
        """``twistd`` serving only the chat, on this test's port."""
        server = Process(
            self,
            chat_twistd(self.port, "--close-grace", "2"),
            self.directory,
            name=name,
        )
        server.wait_for_output(rf"chat service listening on .*\b{self.port}\b")
        return server

    def join(self, nick: str) -> socket.socket:
        """A chat client with a nickname."""
        client = connect(self, self.port)
        self.assertIn(GREETING, receive_until(client, GREETING))
        client.sendall(nick.encode() + b"\n")
        answer = f"--- you are {nick}; you are in #lobby\r\n".encode()
        self.assertIn(answer, receive_until(client, answer))
        return client

    def stop(self, server: Process, *clients: socket.socket) -> None:
        """
        SIGTERM: every client's last line is the goodbye, then the server
        closes it; the process ends by the signal, without a traceback.
        (Every wait has a deadline that only catches a hang.)
        """
        server.terminate()
        for client in clients:
            self.assertTrue(receive_to_end(client).endswith(GOODBYE))
            client.close()
        self.assertEqual(server.wait(), -signal.SIGTERM, server.describe())
        self.assertNotIn("Traceback", server.stdout + server.stderr)

    def test_shutdownThenRestartAtOnce(self) -> None:
        """
        With two chat clients connected (one talking, one that never reads
        a byte), SIGTERM gives each the shutdown line and ends twistd;
        starting twistd again at once on the same port succeeds although the
        old connections are in TIME_WAIT, and serves: the same nickname is
        free, and a message comes back.  Without ``/proc/net/tcp`` only the
        TIME_WAIT check is skipped (reported once the rest has passed).
        """
        first = self.start("first")
        alice = self.join("alice")
        silent = connect(self, self.port)
        alice.sendall(b"hello\n")
        self.assertIn(b"#lobby <alice> hello\r\n", receive_until(alice, b"hello\r\n"))
        self.stop(first, alice, silent)
        self.assertIn("Server Shut Down.", first.stdout)
        # The server closed first: its side of each connection waits.
        waiting = time_wait(self.port)
        if waiting is not None:
            self.assertGreater(waiting, 0)

        second = self.start("second")
        self.assertNotIn("Address already in use", second.stdout + second.stderr)
        again = self.join("alice")
        again.sendall(b"back\n")
        self.assertIn(b"#lobby <alice> back\r\n", receive_until(again, b"back\r\n"))
        self.stop(second, again)
        if waiting is None:
            raise SkipTest(
                "all else passed; TIME_WAIT not checked: no /proc/net/tcp to see it in"
            )
