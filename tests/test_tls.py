"""
TLS end to end, with certificates made at test time (:mod:`tests.certificates`):
a real ``twistd chatservice`` with its doors on ``ssl:`` endpoints (the chat,
the IRC door, the admin console, echo and uppercase with a wrong-name and an
expired certificate), reached by the real ``chatservice-client --tls/--ca``
and by Python's own ``ssl`` module; and the client's wait for the last
replies on a connection that cannot half-close, on a fake clock.
"""

from __future__ import annotations

import socket
import ssl
from pathlib import Path

from twisted.internet import error as neterror
from twisted.internet.interfaces import ISSLTransport
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import directlyProvides

from chatservice.auth.credentials import write_credentials
from chatservice.client import TLS_WAIT_FACTOR, NetworkProtocol
from tests.certificates import Authority, ServerFiles
from tests.support import (
    LOOPBACK,
    SOCKET_TIMEOUT,
    Process,
    describe_run,
    free_port,
    run,
    script,
    temp_dir,
)
from tests.test_auth import fast_hash
from tests.test_client import SessionHarness
from tests.test_hostile import HostileTestCase, HostileTransport, Peer

#: Seconds of quiet the client waits for after its input ends (kept short).
QUIET = "0.3"


class TLSTransport(StringTransport):
    """An in-memory TLS transport: it has ``loseWriteConnection`` (TCP's, below
    TLS) but must never be half-closed."""

    halfClosed = False

    def __init__(self) -> None:
        super().__init__()
        directlyProvides(self, ISSLTransport)

    def loseWriteConnection(self) -> None:
        self.halfClosed = True


class QuietWaitTests(SynchronousTestCase):
    """At the end of the input on TLS, the client waits for the replies."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.wire = TLSTransport()
        harness = SessionHarness(network_transport=self.wire, clock=self.clock)
        harness.connect()
        self.harness = harness
        self.terminal, self.network = harness.terminal, harness.network
        self.stdio = harness.stdio
        self.results, self.reports = harness.results, harness.reports

    def flushed(self) -> None:
        self.harness.stdioFlushed()

    def test_repliesThenQuiet(self) -> None:
        """
        The input ends: the connection is neither half-closed nor closed;
        the replies that follow are printed, each one restarting the wait;
        once the server has been quiet for the period, the client closes
        and exits 0 without a message.
        """
        self.terminal.dataReceived(b"a\nb")
        self.terminal.readConnectionLost()
        self.assertEqual(self.wire.value(), b"a\r\nb\r\n")
        self.assertFalse(self.wire.halfClosed)
        self.assertFalse(self.wire.disconnecting)
        self.clock.advance(0.9)
        self.network.dataReceived(b"A\r\n")
        self.clock.advance(0.9)
        self.network.dataReceived(b"B\r\n")
        self.clock.advance(0.9)
        self.assertFalse(self.wire.disconnecting)
        self.clock.advance(0.1)
        self.assertTrue(self.wire.disconnecting)
        self.flushed()
        self.assertEqual(self.stdio.value(), b"A\nB\n")
        self.assertEqual((self.results, self.reports), ([0], []))

    def test_serverClosesFirst(self) -> None:
        """A server that closes while the client waits (a quit word): exit 0."""
        self.terminal.dataReceived(b"/quit\n")
        self.terminal.readConnectionLost()
        self.network.dataReceived(b"-!- Goodbye.\r\n")
        self.network.connectionLost(Failure(neterror.ConnectionDone()))
        self.flushed()
        self.assertEqual((self.results, self.reports), ([0], []))
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_waitIsBounded(self) -> None:
        """
        A server that never stops talking (a busy room) does not keep the
        client for ever: it closes after ``TLS_WAIT_FACTOR`` periods.
        """
        self.terminal.readConnectionLost()
        for _ in range(TLS_WAIT_FACTOR * 2 - 1):
            self.clock.advance(0.5)
            self.network.dataReceived(b"chatter\r\n")
        self.assertFalse(self.wire.disconnecting)
        self.clock.advance(0.5)
        self.assertTrue(self.wire.disconnecting)


class HandshakeTests(HostileTestCase):
    """A door's connection on TLS, before and after the handshake."""

    def test_pausedBeforeHandshakeKeepsReading(self) -> None:
        """
        Twisted's TLS pauses its producer while it buffers what a door
        writes before the handshake (the chat's welcome): the connection
        keeps reading, or the handshake could never end.  After the
        handshake, a pause is backpressure again and holds input.
        """
        factory = self.chat()
        transport = HostileTransport()
        directlyProvides(transport, ISSLTransport)
        peer = Peer(factory, transport=transport)
        self.assertTrue(peer.protocol.handshaking)
        peer.protocol.pauseProducing()
        self.assertTrue(peer.reading)
        peer.protocol.resumeProducing()
        peer.protocol.handshakeCompleted()
        self.assertFalse(peer.protocol.handshaking)
        peer.protocol.pauseProducing()
        self.assertFalse(peer.reading)

    def test_plainTCPNeverHandshakes(self) -> None:
        """A connection that is not TLS holds input on the first pause."""
        peer = Peer(self.chat())
        self.assertFalse(peer.protocol.handshaking)
        peer.protocol.pauseProducing()
        self.assertFalse(peer.reading)


class HandshakeDeadlineTests(SynchronousTestCase):
    """
    A TLS handshake that never completes (``--tls`` against a plain-text
    port, whose server waits for a line) ends the client with a message
    instead of a silent wait for ever.
    """

    def harness(self, wire: StringTransport, timeout: float = 5.0) -> SessionHarness:
        self.clock = Clock()
        harness = SessionHarness(network_transport=wire, clock=self.clock)
        harness.network = NetworkProtocol(harness.session, self.clock, timeout)
        harness.connect()
        return harness

    def test_noHandshakeEndsTheClient(self) -> None:
        """
        No handshake in ``--tls-timeout`` seconds: the connection is aborted
        and the client exits 1 saying what is likely wrong.
        """
        wire = TLSTransport()
        harness = self.harness(wire)
        self.clock.advance(4.9)
        self.assertFalse(wire.disconnecting)
        self.clock.advance(0.1)
        self.assertTrue(wire.disconnecting)
        harness.network.connectionLost(Failure(neterror.ConnectionAborted()))
        harness.stdioFlushed()
        self.assertEqual(harness.results, [1])
        (report,) = harness.reports
        self.assertIn("no TLS handshake from the server in 5 s", report)
        self.assertIn("leave out --tls", report)

    def test_handshakeCancelsTheDeadline(self) -> None:
        """A completed handshake leaves nothing scheduled, and nothing ends."""
        wire = TLSTransport()
        harness = self.harness(wire)
        harness.network.handshakeCompleted()
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.clock.advance(60)
        self.assertFalse(wire.disconnecting)
        self.assertEqual(harness.results, [])

    def test_plainConnectionHasNoDeadline(self) -> None:
        """A plain TCP connection does no handshake and gets no deadline."""
        self.harness(StringTransport())
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_zeroWaitsForEver(self) -> None:
        """``--tls-timeout 0`` sets no deadline."""
        self.harness(TLSTransport(), timeout=0)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_realClientAgainstPlainPort(self) -> None:
        """
        The real ``chatservice-client --tls`` against a port that accepts
        and never answers (as a plain-text chat waiting for a line): exit 1
        with the message, after ``--tls-timeout``, not a hang.
        """
        listener = socket.socket()
        self.addCleanup(listener.close)
        listener.bind((LOOPBACK, 0))
        listener.listen(4)
        port = listener.getsockname()[1]
        result = run(
            [
                script("chatservice-client"),
                "--tls",
                "--tls-timeout",
                "0.5",
                f"{LOOPBACK}:{port}",
            ],
            input=b"hello\n",
        )
        err = result.stderr.decode("utf-8", "replace")
        self.assertEqual(result.returncode, 1, err)
        self.assertIn("no TLS handshake from the server in 0.5 s", err)


class TLSServerTests(SynchronousTestCase):
    """Every door on ``ssl:``, the real client and Python's ``ssl`` against it."""

    def setUp(self) -> None:
        self.directory = temp_dir(self)
        self.ca = Authority(self.directory)
        good = self.ca.server("good")
        elsewhere = self.ca.server("elsewhere", ("chat.example.test",))
        expired = self.ca.server("expired", expired=True)
        strangers = self.directory / "stranger"
        strangers.mkdir()
        self.stranger_ca = Authority(strangers, "a CA nobody trusts")
        credentials = self.directory / "credentials"
        write_credentials(credentials, {"root": fast_hash("s3cret")})
        self.password = self.directory / "password"
        self.password.write_text("s3cret\n", encoding="utf-8")
        self.ports = {
            door: free_port() for door in ("chat", "irc", "admin", "echo", "upper")
        }
        files: dict[str, ServerFiles] = {
            "chat": good,
            "irc": good,
            "admin": good,
            "echo": elsewhere,
            "upper": expired,
        }
        args: list[str | Path] = [script("twistd"), "-n", "--pidfile=", "chatservice"]
        for door, port in self.ports.items():
            args += [f"--{door}", files[door].endpoint(port)]
        args += ["--credentials", credentials, "--history", "none"]
        self.server = Process(self, args, self.directory)
        for door in self.ports:
            self.server.wait_for_output(rf"{door} service listening on ")

    def client(
        self, door: str, *options: str, lines: str = "", host: str = "localhost"
    ) -> tuple[int, str, str]:
        result = run(
            [
                script("chatservice-client"),
                "--tls-quiet",
                QUIET,
                *options,
                f"{host}:{self.ports[door]}",
            ],
            input=lines.encode("utf-8"),
        )
        return (
            result.returncode,
            result.stdout.decode("utf-8", "replace"),
            result.stderr.decode("utf-8", "replace"),
        )

    def test_chatOverTLS(self) -> None:
        """
        The chat over ``ssl:``, the certificate checked against ``--ca``:
        the reply to the last piped line arrives although TLS cannot be
        half-closed, and the client exits 0 (the known gap, closed).
        """
        code, out, err = self.client(
            "chat", "--ca", str(self.ca.path), lines="alice\nhello\n"
        )
        self.assertEqual((code, err), (0, ""), out)
        self.assertIn("--- you are alice; you are in #lobby", out)
        self.assertTrue(out.endswith("#lobby <alice> hello\n"), out)

    def test_ircOverTLS(self) -> None:
        """
        The IRC door on ``ssl:`` (6697 in production) with Python's ``ssl``
        module verifying the certificate and the name: registration gets
        the welcome numeric.
        """
        context = ssl.create_default_context(cafile=str(self.ca.path))
        with (
            socket.create_connection(
                (LOOPBACK, self.ports["irc"]), SOCKET_TIMEOUT
            ) as raw,
            context.wrap_socket(raw, server_hostname="localhost") as tls,
        ):
            tls.sendall(b"NICK bob\r\nUSER bob 0 * :Bob\r\n")
            received = b""
            while b" 001 bob " not in received:
                chunk = tls.recv(4096)
                self.assertTrue(chunk, f"closed before the welcome: {received!r}")
                received += chunk
            tls.sendall(b"QUIT :bye\r\n")

    def test_ircOverTLSWithClient(self) -> None:
        """``chatservice-client --tls`` works with the IRC door too (by address)."""
        code, out, err = self.client(
            "irc",
            "--ca",
            str(self.ca.path),
            lines="NICK carol\nUSER carol 0 * :Carol\nQUIT :bye\n",
            host="127.0.0.1",
        )
        self.assertEqual((code, err), (0, ""), out)
        self.assertIn(" 001 carol ", out)

    def test_adminConsoleOverTLS(self) -> None:
        """The admin console on ``ssl:``: log in with ``--admin``, run ``stats``."""
        code, out, err = self.client(
            "admin",
            "--ca",
            str(self.ca.path),
            "--admin",
            "--user",
            "root",
            "--password-file",
            str(self.password),
            lines="stats\n",
        )
        self.assertEqual((code, err), (0, ""), out)
        self.assertIn("uptime", out)

    def test_unknownAuthority(self) -> None:
        """
        A certificate signed by a CA the client does not trust (the
        system's authorities without ``--ca``, or another CA's file) is
        refused, saying so and how to trust it.
        """
        for options in (["--tls"], ["--ca", str(self.stranger_ca.path)]):
            code, out, err = self.client("chat", *options, lines="alice\n")
            self.assertEqual(code, 1, (options, out, err))
            self.assertIn("signed by an authority that is not trusted", err)
            self.assertIn("--ca FILE", err)
            self.assertNotIn("alice", out)

    def test_wrongName(self) -> None:
        """A certificate for another name is refused, naming both."""
        code, out, err = self.client("echo", "--ca", str(self.ca.path), lines="hi\n")
        self.assertEqual(code, 1, (out, err))
        self.assertIn(
            "the server's certificate is for chat.example.test, not localhost", err
        )

    def test_expired(self) -> None:
        """An expired certificate is refused, with the date it ended."""
        code, out, err = self.client("upper", "--ca", str(self.ca.path), lines="hi\n")
        self.assertEqual(code, 1, (out, err))
        self.assertIn("the server's certificate has expired (valid until ", err)


class OptionTests(SynchronousTestCase):
    """``--tls`` and ``--ca`` mistakes are usage errors."""

    def test_tlsNeedsHostPort(self) -> None:
        """``--tls`` with an endpoint string is refused: that string says its own."""
        result = run([script("chatservice-client"), "--tls", "unix:/nowhere.sock"])
        self.assertEqual(result.returncode, 2, describe_run(result))
        self.assertIn(b"--tls takes HOST:PORT", result.stderr)

    def test_unreadableCA(self) -> None:
        """A ``--ca`` file that cannot be read, or holds no certificate, is named."""
        directory = temp_dir(self)
        empty = directory / "empty.pem"
        empty.write_text("no certificate here\n", encoding="utf-8")
        for path, reason in (
            (directory / "missing.pem", b"cannot read --ca"),
            (empty, b"has no PEM certificate"),
        ):
            result = run(
                [script("chatservice-client"), "--ca", str(path), "localhost:1"]
            )
            self.assertEqual(result.returncode, 2, describe_run(result))
            self.assertIn(reason, result.stderr)
