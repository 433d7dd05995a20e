"""
History with the installed ``twistd chatservice`` as a real process: what
members were shown survives ``kill -9``, and so do topics and bans; a file
that is not a history file stops the server with one line and is left as
it is.

The server runs on a free loopback port with its file in a temporary
directory; every process is killed when its test ends.
"""

from __future__ import annotations

import re
import socket
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

from chatservice.auth.credentials import write_credentials
from chatservice.auth.hashing import hash_password
from tests.support import (
    Process,
    chat_twistd,
    connect,
    describe_run,
    free_port,
    receive_until,
    run,
    temp_dir,
)

PASSWORD = "correct horse battery"
GREETING = b"/help lists commands.\r\n"
MESSAGES = 300


def chat_alone(port: int, history: Path) -> list[str | Path]:
    """``twistd`` in the foreground with the chat alone, history in ``history``."""
    return chat_twistd(port, f"--history=sqlite:{history}")


class KillTests(SynchronousTestCase):
    """``kill -9`` loses nothing anyone saw."""

    def setUp(self) -> None:
        self.directory = temp_dir(self)
        self.history = self.directory / "history.sqlite3"
        self.credentials = self.directory / "passwd"
        write_credentials(self.credentials, {"root": hash_password(PASSWORD)})

    def start(self, name: str) -> tuple[Process, int]:
        """The chat alone, keeping history in this test's file."""
        port = free_port()
        server = Process(
            self,
            [
                *chat_alone(port, self.history),
                "--credentials",
                self.credentials,
                "--flood-rate",
                "0",
                "--history-replay",
                str(MESSAGES + 10),
            ],
            self.directory,
            name=name,
        )
        server.wait_for_output(rf"chat service listening on .*\b{port}\b")
        return server, port

    def join(self, port: int, nick: str) -> tuple[socket.socket, bytes]:
        """A registered client, and what it received up to its welcome."""
        client = connect(self, port)
        self.assertIn(GREETING, receive_until(client, GREETING))
        client.sendall(nick.encode() + b"\n")
        answer = f"--- you are {nick}; you are in #lobby\r\n".encode()
        received = receive_until(client, answer)
        self.assertIn(answer, received)
        return client, received

    def test_killedServerLosesNothingSeen(self) -> None:
        """
        Every message a member was delivered before ``kill -9`` is replayed
        to a new member of the restarted server, in order, and the topic
        and the ban set before the kill are still in force.
        """
        first, port = self.start("first")
        alice, _ = self.join(port, "alice")
        alice.sendall(f"/oper root {PASSWORD}\n".encode())
        self.assertIn(b"you are now an operator", receive_until(alice, b"operator"))
        alice.sendall(b"/topic kept across kill\n/ban mallory forever spammer\n")
        self.assertIn(b"banned mallory", receive_until(alice, b"banned mallory"))
        bob, _ = self.join(port, "bob")
        lines = b"".join(f"message {n}\n".encode() for n in range(MESSAGES))
        alice.sendall(lines)
        last = f"#lobby <alice> message {MESSAGES - 1}\r\n".encode()
        seen = receive_until(bob, last)
        self.assertIn(last, seen)
        first.popen.kill()  # SIGKILL: no shutdown, no final checkpoint
        first.popen.wait()

        second, port = self.start("second")
        carol, received = self.join(port, "carol")
        last_replayed = f"<alice> message {MESSAGES - 1}\r\n".encode()
        received += receive_until(carol, last_replayed)
        replayed = re.findall(rb"#lobby \[[^]]+\] <alice> (message \d+)\r\n", received)
        self.assertEqual(replayed, [f"message {n}".encode() for n in range(MESSAGES)])
        carol.sendall(b"/topic\n")
        topic = b"--- topic of #lobby: kept across kill\r\n"
        self.assertIn(topic, receive_until(carol, topic))
        mallory = connect(self, port)
        receive_until(mallory, GREETING)
        mallory.sendall(b"mallory\n")
        refusal = b"!!! the nickname mallory is banned until unbanned: spammer"
        self.assertIn(refusal, receive_until(mallory, refusal))
        second.terminate()
        second.wait()


class StartUpErrorTests(SynchronousTestCase):
    """A file that cannot be the history stops the server, untouched."""

    def test_corruptFile(self) -> None:
        """
        ``twistd`` exits with status 1 and one line naming the file and
        what to do; the file has the same bytes as before.
        """
        directory = temp_dir(self)
        history: Path = directory / "history.sqlite3"
        history.write_bytes(b"not a database at all\n" * 100)
        before = history.read_bytes()
        result = run(chat_alone(free_port(), history), cwd=directory)
        output = (result.stdout + result.stderr).decode()
        self.assertEqual(result.returncode, 1, describe_run(result))
        self.assertIn(
            f"chatservice: history file {history}: file is not a database "
            "(is it corrupt?); it was left as it is",
            output,
        )
        self.assertNotIn("Traceback", output)
        self.assertEqual(history.read_bytes(), before)
