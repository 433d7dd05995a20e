"""
The full-screen ``chatservice-client`` in a real terminal: ``tmux`` runs it
against the installed ``twistd chatservice``; raw sockets play the other
users.  Under CI (``CI=true``) a missing ``tmux`` fails the run
(``tests/conftest.py`` turns the skip into a failure; ``.ci/run`` installs
it).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from shlex import quote

from twisted.trial.unittest import SynchronousTestCase

from tests.support import (
    START_TIMEOUT,
    Process,
    chat_twistd,
    free_port,
    receive_until,
    script,
    temp_dir,
    wait_for,
)
from tests.test_chat_e2e import NcClient

#: Generous: only a hang fails (the client's reconnection backoff included).
WAIT = 60.0


class Tmux:
    """A private tmux server (its own socket) with one 100x20 window."""

    def __init__(self, case: SynchronousTestCase, directory: Path, command: str):
        tmux = shutil.which("tmux")
        if tmux is None:
            raise case.skipTest("tmux is not installed (.ci/run installs it)")
        self.base = [tmux, "-S", str(directory / "tmux.sock")]
        self.tmux("new-session", "-d", "-x", "100", "-y", "20", "-s", "t", command)
        case.addCleanup(self.tmux, "kill-server", check=False)

    def tmux(self, *args: str, check: bool = True) -> str:
        done = subprocess.run(
            [*self.base, *args],
            capture_output=True,
            timeout=START_TIMEOUT,
            check=False,
        )
        if check and done.returncode:
            raise AssertionError(f"tmux {args}: {done.stderr!r}")
        return done.stdout.decode("utf-8", errors="replace")

    def type(self, text: str) -> None:
        """Type ``text`` (literally, without Enter)."""
        self.tmux("send-keys", "-t", "t", "-l", text)

    def enter(self) -> None:
        self.tmux("send-keys", "-t", "t", "Enter")

    def screen(self) -> list[str]:
        """The window's rows, as shown (trailing blanks dropped)."""
        return [
            row.rstrip()
            for row in self.tmux("capture-pane", "-p", "-t", "t").split("\n")[:20]
        ]

    def wait(self, condition: str, found: object) -> list[str]:
        rows: list[str] = []

        def check() -> bool:
            rows[:] = self.screen()
            return bool(found(rows))  # type: ignore[operator]

        wait_for(check, WAIT, lambda: f"{condition}; the screen:\n" + "\n".join(rows))
        return rows


def whois(user: NcClient, nick: str) -> str:
    """The server's answer to ``/whois NICK``: a ``---`` or ``!!!`` line."""
    user.send(f"/whois {nick}")
    pending = ""
    while True:
        chunk = receive_until(user.socket, b"\n")
        if not chunk:
            raise AssertionError(f"no answer to /whois; got {pending!r}")
        pending += chunk.decode("utf-8", errors="replace")
        for line in pending.splitlines():
            if line.startswith((f"--- {nick}: in ", "!!! ")):
                return line


class ScreenInTmuxTests(SynchronousTestCase):
    """The full screen against a real server, in a real terminal."""

    def startServer(self, directory: Path, port: int, name: str) -> Process:
        server = Process(
            self,
            chat_twistd(port, "--history", "none"),  # keeping nothing
            directory,
            name,
        )
        server.wait_for_output(r"chat service listening")
        return server

    def test_inputLineStaysWholeAndReconnects(self):
        """
        A half-typed line stays whole on the bottom row while another user's
        messages arrive above it; Enter sends it; when the server restarts
        the client reconnects, takes back its nickname and rejoins its rooms.
        """
        directory = temp_dir(self)
        port = free_port()
        server = self.startServer(directory, port, "server")
        client = script("chatservice-client")
        tmux = Tmux(
            self,
            directory,
            f"env XDG_STATE_HOME={quote(str(directory / 'state'))}"
            f" {quote(str(client))} 127.0.0.1:{port}"
            f" 2>{quote(str(directory / 'client.stderr'))}; sleep 600",
        )
        tmux.wait("the greeting", lambda rows: any("Welcome" in r for r in rows))
        tmux.type("alice")
        tmux.enter()
        tmux.wait("registered", lambda rows: any("you are alice" in r for r in rows))
        tmux.type("/join #dev")
        tmux.enter()
        tmux.wait("in #dev", lambda rows: rows[0].strip() == "#dev")
        tmux.type("/join #lobby")
        tmux.enter()
        tmux.wait("in #lobby", lambda rows: rows[0].strip() == "#lobby")

        tmux.type("half typed li")
        dave = NcClient(self, port, "dave")
        for number in range(3):
            dave.send(f"message {number} from dave")
        rows = tmux.wait(
            "dave's messages above the partial line",
            lambda rows: any("<dave> message 2 from dave" in r for r in rows),
        )
        self.assertEqual(rows[-1], "half typed li")
        self.assertIn("alice", rows[-2])  # the status line, just above it
        self.assertEqual([r for r in rows if "half typed" in r], ["half typed li"])
        for number in range(3):
            self.assertTrue(
                any(
                    r.endswith(f"#lobby <dave> message {number} from dave")
                    for r in rows[1:-2]
                ),
                rows,
            )

        tmux.type("ne")
        tmux.enter()
        dave.expect("#lobby <alice> half typed line")
        tmux.wait("the line sent", lambda rows: rows[-1] == "")

        server.terminate()
        server.wait()
        tmux.wait(
            "the status line says the connection dropped",
            lambda rows: "reconnecting" in rows[-2],
        )
        self.startServer(directory, port, "server2")
        tmux.wait("reconnected", lambda rows: "| alice | connected" in rows[-2])
        erin = NcClient(self, port, "erin")
        answers: list[str] = []

        def rejoined() -> bool:
            answers.append(whois(erin, "alice"))
            return "#dev" in answers[-1] and "#lobby" in answers[-1]

        wait_for(
            rejoined, WAIT, lambda: f"alice back in #dev and #lobby: {answers[-1:]}"
        )
        # The rooms came back in order: the current one (#lobby) last.
        tmux.wait("back in #lobby", lambda rows: rows[0].strip() == "#lobby")
        erin.send("hello again")
        tmux.wait(
            "erin's line in #lobby",
            lambda rows: any(r.endswith("#lobby <erin> hello again") for r in rows),
        )
