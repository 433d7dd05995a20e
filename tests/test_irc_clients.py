"""
The IRC door against an IRC client no one here wrote: the PyPI ``irc``
library (jaraco's), over loopback, against the installed ``twistd
chatservice`` with its native and IRC doors, and a native ``nc``-style
client in the same room.  The ``irc`` library is in the ``test`` extra: a
missing one fails these tests (an ``ImportError``), it does not skip them.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import irc.client
from twisted.trial.unittest import SynchronousTestCase

from tests.support import (
    LOOPBACK,
    START_TIMEOUT,
    Process,
    chat_twistd,
    describe_run,
    free_port,
    loopback_endpoint,
    read_text,
    run,
    script,
    temp_dir,
    wait_for,
)
from tests.test_chat_e2e import NcClient

PASSWORD = "correct horse battery"
SERVER_PASSWORD = "open sesame"
SERVER_NAME = "irc.chatservice.test"


def start_server(
    case: SynchronousTestCase, directory: Path, *options: str | Path
) -> tuple[int, int, Process]:
    """``twistd chatservice`` with its native and IRC doors on free ports."""
    chat_port, irc_port = free_port(), free_port()
    server = Process(
        case,
        chat_twistd(
            chat_port,
            "--irc",
            loopback_endpoint(irc_port),
            "--irc-server-name",
            SERVER_NAME,
            *options,
        ),
        directory,
    )
    server.wait_for_output(r"chat service listening")
    server.wait_for_output(r"irc service listening")
    return chat_port, irc_port, server


class LibraryClient:
    """One ``irc`` library connection, its events recorded as they come."""

    def __init__(
        self,
        case: SynchronousTestCase,
        port: int,
        nick: str,
        password: str | None = SERVER_PASSWORD,
    ) -> None:
        self.reactor = irc.client.Reactor()
        self.events: list[tuple[str, str, list[str]]] = []
        self.reactor.add_global_handler("all_events", self._record, -10)
        self.connection = self.reactor.server().connect(
            LOOPBACK, port, nick, password=password, username=nick, ircname=nick
        )
        case.addCleanup(self.close)

    def _record(self, connection: Any, event: Any) -> None:
        source = getattr(event.source, "nick", None) or str(event.source or "")
        self.events.append((event.type, source, [str(a) for a in event.arguments]))

    def expect(self, wanted: tuple[str, str, list[str]] | str) -> None:
        """Run the library's loop until an event (or an event type) arrives."""

        def arrived() -> bool:
            self.reactor.process_once(0.05)
            if isinstance(wanted, str):
                return any(event[0] == wanted for event in self.events)
            return wanted in self.events

        wait_for(arrived, START_TIMEOUT, lambda: f"{wanted!r} in {self.events!r}")

    def close(self) -> None:
        if self.connection.is_connected():
            self.connection.close()


class LibraryClientTests(SynchronousTestCase):
    """The ``irc`` library and a native client on one real server."""

    def setUp(self) -> None:
        self.directory = temp_dir(self)
        credentials = self.directory / "passwd"
        made = run(
            [script("chatservice-passwd"), "--file", credentials, "--stdin", "root"],
            input=f"{PASSWORD}\n".encode(),
        )
        self.assertEqual(made.returncode, 0, describe_run(made))
        password_file = self.directory / "irc-password"
        password_file.write_text(SERVER_PASSWORD + "\n", encoding="utf-8")
        self.chat_port, self.irc_port, self.server = start_server(
            self,
            self.directory,
            "--irc-password-file",
            password_file,
            "--credentials",
            credentials,
        )

    def test_conversation(self) -> None:
        """
        An ``irc`` library client registers with the server password, joins
        ``#lobby`` and talks with a native client there: messages both
        ways, a private message each way, and the native operator's kick
        closes the IRC client, which the library sees as an error and a
        disconnection.
        """
        native = NcClient(self, self.chat_port, "nat")
        ircy = LibraryClient(self, self.irc_port, "ircy")
        ircy.expect("welcome")
        welcome = next(e for e in ircy.events if e[0] == "welcome")
        self.assertEqual(welcome[1], SERVER_NAME)
        ircy.connection.join("#lobby")
        ircy.expect(("join", "ircy", []))
        ircy.expect("endofnames")
        native.expect("-!- ircy has joined #lobby")
        ircy.connection.privmsg("#lobby", "hello from irc")
        native.expect("#lobby <ircy> hello from irc")
        native.send("hello from nc")
        ircy.expect(("pubmsg", "nat", ["hello from nc"]))
        native.send("/msg ircy psst")
        ircy.expect(("privmsg", "nat", ["psst"]))
        ircy.connection.privmsg("nat", "back at you")
        native.expect("*ircy* back at you")
        native.send(f"/oper root {PASSWORD}")
        native.expect("you are now an operator")
        native.send("/kick ircy enough")
        native.expect("-!- ircy was kicked by nat (enough)")
        ircy.expect("disconnect")
        self.assertEqual([e[0] for e in ircy.events].count("error"), 1, ircy.events)
        raw = [e[2][0] for e in ircy.events if e[0] == "all_raw_messages"]
        self.assertTrue(raw[-1].startswith("ERROR :"), raw)
        self.assertIn("enough", raw[-1])

    def test_chatHistory(self) -> None:
        """
        The ``irc`` library asks for the IRCv3 ``draft/chathistory``
        capability and, with ``CHATHISTORY LATEST``, gets what a native
        client said before in one ``chathistory`` batch, each message with
        its ``msgid`` and ``time`` tags, as ``pubmsg`` events it parses.
        """
        native = NcClient(self, self.chat_port, "nat")
        native.send("said before")
        native.send("/me waves")
        native.send("/history")
        native.expect("--- end of history of #lobby (2 messages)")
        ircy = LibraryClient(self, self.irc_port, "ircy")
        ircy.expect("welcome")
        caps = "batch draft/chathistory server-time message-tags"
        ircy.connection.send_raw(f"CAP REQ :{caps}")
        ircy.expect("cap")
        ircy.connection.send_raw("CHATHISTORY LATEST #lobby * 10")

        def raw() -> list[str]:
            return [e[2][0] for e in ircy.events if e[0] == "all_raw_messages"]

        wait_for(
            lambda: (
                ircy.reactor.process_once(0.05)
                or any(" BATCH -" in line for line in raw())
            ),
            START_TIMEOUT,
            lambda: f"the end of a batch in {raw()!r}",
        )
        batch = [line for line in raw() if "BATCH" in line or "@batch=" in line]
        self.assertRegex(batch[0], r"^:\S+ BATCH \+(\S+) chathistory #lobby$")
        reference = batch[0].split()[2][1:]
        self.assertEqual(batch[-1].split()[1:], ["BATCH", f"-{reference}"])
        self.assertEqual(len(batch), 4, batch)
        for line in batch[1:3]:
            self.assertIn(f"batch={reference}", line)
            self.assertRegex(line, r"msgid=[^; ]+")
            self.assertRegex(line, r"time=\d{4}-\d\d-\d\dT")
        said = [e for e in ircy.events if e[0] in ("pubmsg", "action")]
        self.assertEqual(
            [(e[0], e[1], e[2]) for e in said],
            [("pubmsg", "nat", ["said before"]), ("action", "nat", ["waves"])],
        )

    def test_wrongPassword(self) -> None:
        """A wrong server password gets 464 and the connection closed."""
        client = LibraryClient(self, self.irc_port, "ircy", password="wrong")
        client.expect("passwdmismatch")
        client.expect("disconnect")
        self.assertNotIn("welcome", [event[0] for event in client.events])


class SicTests(SynchronousTestCase):
    """
    ``sic``, Debian's small command-line IRC client (``.ci/run`` installs
    it): a missing ``sic`` fails this test, it does not skip it.
    """

    def setUp(self) -> None:
        self.sic = shutil.which("sic")
        self.assertIsNotNone(self.sic, "sic is not installed (apt-get install sic)")
        self.directory = temp_dir(self)
        self.chat_port, self.irc_port, self.server = start_server(
            self, self.directory, "--irc-password", "sesame"
        )

    def test_sicTalksWithNative(self) -> None:
        """
        ``sic`` registers with the server password, joins ``#lobby`` and
        exchanges messages with a native client there.
        """
        assert self.sic is not None
        native = NcClient(self, self.chat_port, "nat")
        output = self.directory / "sic.out"
        with output.open("wb") as stdout:
            sic = subprocess.Popen(
                [
                    self.sic,
                    "-h",
                    LOOPBACK,
                    "-p",
                    str(self.irc_port),
                    "-n",
                    "sicko",
                    "-k",
                    "sesame",
                ],
                stdin=subprocess.PIPE,
                stdout=stdout,
                stderr=subprocess.STDOUT,
            )
        self.addCleanup(sic.wait)
        self.addCleanup(sic.kill)
        assert sic.stdin is not None
        self.addCleanup(sic.stdin.close)

        def shows(text: str) -> None:
            wait_for(
                lambda: text in read_text(output),
                START_TIMEOUT,
                lambda: f"{text!r} in sic's output:\n{read_text(output)}",
            )

        shows("Welcome to")
        sic.stdin.write(b":j #lobby\n")
        sic.stdin.flush()
        native.expect("-!- sicko has joined #lobby")
        native.send("hello sic")
        shows("<nat> hello sic")
        sic.stdin.write(b":m #lobby hello from sic\n")
        sic.stdin.flush()
        native.expect("#lobby <sicko> hello from sic")
