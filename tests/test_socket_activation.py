"""
systemd socket activation: a door on a listening socket that systemd
passes (``systemd:domain=INET:name=chat``), checked before anything starts
(a socket that is missing or of another domain is refused with one line),
judged by where it really listens for the admin console, and run for real
under ``systemd-socket-activate`` (Debian's ``systemd`` package; ``.ci/run``
installs it: a missing one fails these tests, it does not skip them).  The
units in ``contrib/`` agree with each other.
"""

from __future__ import annotations

import shlex
import shutil
import signal
import socket

from twisted.internet import endpoints
from twisted.python import usage
from twisted.python.systemd import ListenFDs
from twisted.trial.unittest import SynchronousTestCase

from chatservice import tap
from chatservice.activation import is_inherited_endpoint
from tests.support import (
    LOOPBACK,
    SOURCE_ROOT,
    START_TIMEOUT,
    Process,
    connect,
    free_port,
    receive_until,
    script,
    temp_dir,
    wait_for,
)
from tests.test_twistd import unit_settings

#: The first socket systemd passes, by its name and by its index.
BY_NAME_AND_INDEX = ("systemd:domain=INET:name=chat", "systemd:domain=INET:index=0")


def inherit(case: SynchronousTestCase, **sockets: socket.socket) -> None:
    """Make ``systemd:`` endpoints find ``sockets`` by name, as if passed."""
    case.patch(
        endpoints._SystemdParser,
        "_sddaemon",
        ListenFDs([s.fileno() for s in sockets.values()], list(sockets)),
    )


def listening(case: SynchronousTestCase, family: socket.AddressFamily) -> socket.socket:
    """A socket listening on loopback, closed when the test ends."""
    server = socket.socket(family, socket.SOCK_STREAM)
    case.addCleanup(server.close)
    server.bind(("::1" if family == socket.AF_INET6 else LOOPBACK, 0))
    server.listen()
    return server


class InheritedEndpointTests(SynchronousTestCase):
    """The options' checks of ``systemd:`` endpoints."""

    def parse(self, *argv: str) -> tap.Options:
        options = tap.Options()
        options.parseOptions(["--history", "none", *argv])
        return options

    def test_passedSocketAccepted(self) -> None:
        """A socket systemd passed, by name or index, is the door's endpoint."""
        inherit(self, chat=listening(self, socket.AF_INET))
        for description in BY_NAME_AND_INDEX:
            options = self.parse("--chat", description)
            self.assertEqual(options.endpoints["chat"], [description])

    def test_missingSocketRefused(self) -> None:
        """No such socket passed: one line says so and where to get one."""
        inherit(self)
        for description in BY_NAME_AND_INDEX:
            with self.assertRaises(usage.UsageError) as caught:
                self.parse("--chat", description)
            self.assertIn("systemd passed no such socket", str(caught.exception))

    def test_wrongDomainRefused(self) -> None:
        """An IPv6 socket said to be INET is refused, naming the right domain."""
        inherit(self, chat=listening(self, socket.AF_INET6))
        with self.assertRaises(usage.UsageError) as caught:
            self.parse("--chat", "systemd:domain=INET:name=chat")
        self.assertIn(
            "systemd passed an INET6 socket; say domain=INET6", str(caught.exception)
        )
        self.parse("--chat", "systemd:domain=INET6:name=chat")

    def test_adoptedNotCheckedAgain(self) -> None:
        """
        Parsed again for a reload, a passed socket that was adopted (its
        descriptor closed since) is not refused.
        """
        passed = listening(self, socket.AF_INET)
        inherit(self, chat=passed)
        passed.close()
        options = tap.Options()
        options.reloading = True
        options.parseOptions(
            ["--history", "none", "--chat", "systemd:domain=INET:name=chat"]
        )
        self.assertEqual(options.endpoints["chat"], ["systemd:domain=INET:name=chat"])
        with self.assertRaises(usage.UsageError) as caught:
            self.parse("--chat", "systemd:domain=INET:name=chat")
        self.assertIn("unusable", str(caught.exception))

    def test_adminJudgedWhereItListens(self) -> None:
        """
        The admin console on a passed socket needs no --admin-allow-remote:
        the string cannot tell where it listens, the listening service
        checks the socket's own address (loopback here).
        """
        inherit(self, admin=listening(self, socket.AF_INET))
        directory = temp_dir(self)
        (directory / "passwd").write_text("", encoding="utf-8")
        options = self.parse(
            "--admin",
            "systemd:domain=INET:name=admin",
            "--credentials",
            str(directory / "passwd"),
        )
        self.assertTrue(is_inherited_endpoint(options.endpoints["admin"][0]))
        self.assertFalse(tap.is_private_endpoint(options.endpoints["admin"][0]))


class UnitsTests(SynchronousTestCase):
    """``contrib/chatservice.socket`` and the service it activates agree."""

    def test_socketMatchesService(self) -> None:
        """
        The socket unit names the service, and the service's chat endpoint
        asks for the socket by the socket unit's name and domain, requiring
        the socket unit.
        """
        sockets = unit_settings(SOURCE_ROOT / "contrib" / "chatservice.socket")
        service = unit_settings(SOURCE_ROOT / "contrib" / "chatservice.service")
        self.assertEqual(sockets["Service"], ["chatservice.service"])
        (name,) = sockets["FileDescriptorName"]
        (listen,) = sockets["ListenStream"]
        # A bare port: systemd makes a dual-stack IPv6 socket.
        self.assertTrue(listen.isdigit())
        (command,) = service["ExecStart"]
        argv = shlex.split(command)
        chat = argv[argv.index("--chat") + 1]
        self.assertEqual(chat, f"systemd:domain=INET6:name={name}")
        self.assertIn("chatservice.socket", service["Requires"])
        self.assertEqual(service["ExecReload"], ["/bin/kill -HUP $MAINPID"])


class SocketActivateTests(SynchronousTestCase):
    """``twistd -n chatservice`` started by ``systemd-socket-activate``."""

    def setUp(self) -> None:
        self.activate = shutil.which("systemd-socket-activate")
        self.assertIsNotNone(
            self.activate,
            "systemd-socket-activate is not installed (apt-get install systemd)",
        )
        self.directory = temp_dir(self)

    def test_chatThroughPassedSocket(self) -> None:
        """
        Two sockets passed by name (chat and echo): the first connection
        starts the server, which adopts both; two chat clients talk through
        one, the echo service answers on the other, and SIGTERM stops it as
        usual.
        """
        assert self.activate is not None
        chat_port, echo_port = free_port(), free_port()
        server = Process(
            self,
            [
                self.activate,
                f"--listen={LOOPBACK}:{chat_port}",
                f"--listen={LOOPBACK}:{echo_port}",
                "--fdname=chat:echo",
                script("twistd"),
                "-n",
                "--pidfile=",
                "chatservice",
                "--chat",
                "systemd:domain=INET:name=chat",
                "--echo",
                "systemd:domain=INET:name=echo",
                "--upper",
                "none",
                "--history",
                "none",
            ],
            self.directory,
        )

        # systemd-socket-activate says where it listens, then waits for a
        # connection before it starts twistd.
        def said(text: str) -> bool:
            return text in server.stdout + server.stderr

        wait_for(lambda: said(f"{echo_port}"), START_TIMEOUT, server.describe)
        alice = connect(self, chat_port)
        receive_until(alice, b"Choose a nickname")
        alice.sendall(b"alice\r\n")
        receive_until(alice, b"you are alice")
        bob = connect(self, chat_port)
        receive_until(bob, b"Choose a nickname")
        bob.sendall(b"bob\r\n")
        receive_until(bob, b"you are bob")
        alice.sendall(b"hello from a passed socket\r\n")
        self.assertIn(
            b"#lobby <alice> hello from a passed socket",
            receive_until(bob, b"passed socket\r\n"),
        )
        echo = connect(self, echo_port)
        echo.sendall(b"ping\r\n")
        self.assertEqual(receive_until(echo, b"ping\r\n"), b"ping\r\n")
        server.wait_for_output(
            rf"chat service listening on {LOOPBACK}:{chat_port} "
            r"\(systemd:domain=INET:name=chat\)"
        )
        # A reload parses the endpoints again, the sockets adopted (and
        # their descriptors closed) by then: not refused for that.
        server.popen.send_signal(signal.SIGHUP)
        server.wait_for_output(r"reloaded the command line: nothing changed")
        self.assertNotIn("reload refused", server.stdout)
        alice.sendall(b"still here\r\n")
        receive_until(bob, b"#lobby <alice> still here\r\n")
        # systemd-socket-activate became twistd (exec): same process.
        server.terminate()
        self.assertEqual(server.wait(), -signal.SIGTERM)
