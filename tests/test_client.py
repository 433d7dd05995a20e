"""
Tests for :mod:`chatservice.client`: endpoint parsing, rendering, the two
line protocols and the session over ``StringTransport``, the command line,
and the real command against a real server.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from io import StringIO
from pathlib import Path
from typing import Any

from twisted.internet import error as neterror
from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.endpoints import (
    HostnameEndpoint,
    SSL4ClientEndpoint,
    TCP4ClientEndpoint,
    UNIXClientEndpoint,
)
from twisted.internet.interfaces import IListeningPort
from twisted.internet.protocol import ProcessProtocol
from twisted.internet.testing import MemoryReactor, StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase, TestCase

import chatservice
from chatservice import client
from chatservice.chat.text import visible
from chatservice.client import (
    EndpointError,
    HostPort,
    LoginError,
    NetworkProtocol,
    Renderer,
    Session,
    TerminalProtocol,
    choose_color,
    colorize,
    make_endpoint,
    nick_color,
    parse_endpoint,
)
from chatservice.doors.upper import UpperFactory

ESC = "\x1b"


def known(*names: str):
    return lambda: frozenset(names)


class HalfCloseTransport(StringTransport):
    """A ``StringTransport`` that can half-close, like TCP and UNIX sockets."""

    writeClosed = False

    def loseWriteConnection(self):
        self.writeClosed = True


class ParseEndpointTests(SynchronousTestCase):
    """:func:`parse_endpoint` and :func:`make_endpoint`."""

    def test_barePort(self):
        """A bare port number means that port on localhost."""
        self.assertEqual(parse_endpoint("12000"), HostPort("localhost", 12000))

    def test_hostPort(self):
        """HOST:PORT gives a host name or address and a port."""
        self.assertEqual(
            parse_endpoint("localhost:12000"), HostPort("localhost", 12000)
        )
        self.assertEqual(parse_endpoint("127.0.0.1:6667"), HostPort("127.0.0.1", 6667))
        self.assertEqual(
            parse_endpoint("chat.example.org:5001"),
            HostPort("chat.example.org", 5001),
        )

    def test_bracketedIPv6(self):
        """[V6]:PORT gives the IPv6 address without its brackets."""
        self.assertEqual(parse_endpoint("[::1]:6666"), HostPort("::1", 6666))
        self.assertEqual(
            parse_endpoint("[fe80::1%eth0]:80"), HostPort("fe80::1%eth0", 80)
        )

    def test_surroundingBlanks(self):
        """Blanks around the argument are ignored."""
        self.assertEqual(parse_endpoint(" 12000 \n"), HostPort("localhost", 12000))

    def test_endpointStrings(self):
        """Twisted endpoint strings are returned unchanged, for clientFromString."""
        for text in (
            "tcp:host=localhost:port=12000",
            "tcp:localhost:12000",
            "unix:path=/x.sock",
            "unix:/x.sock",
            "ssl:host=example.org:port=443",
        ):
            self.assertEqual(parse_endpoint(text), text)

    def test_typeNameBeforeDigits(self):
        """
        NAME:DIGITS is an endpoint string when NAME is an endpoint type (a
        socket file named 1234), a host and port otherwise.
        """
        self.assertEqual(parse_endpoint("unix:1234", known("unix")), "unix:1234")
        self.assertEqual(parse_endpoint("UNIX:1234", known("unix")), "UNIX:1234")
        self.assertEqual(
            parse_endpoint("unix:1234", known("tcp")), HostPort("unix", 1234)
        )

    def test_knownTypes(self):
        """The built-in types and the endpoint plugins are known."""
        types = client.endpoint_types()
        self.assertTrue({"tcp", "unix", "ssl", "tls"} <= types)

    def test_badPorts(self):
        """Port 0 and ports over 65535 are refused with a reason."""
        for text in ("0", "70000", "localhost:0", "[::1]:65536"):
            with self.assertRaises(EndpointError) as caught:
                parse_endpoint(text)
            self.assertIn("port must be 1 to 65535", str(caught.exception))

    def test_unbracketedIPv6(self):
        """An IPv6 address without brackets is refused with the fix."""
        with self.assertRaises(EndpointError) as caught:
            parse_endpoint("::1:6666")
        self.assertIn("[::1]:6666", str(caught.exception))

    def test_empty(self):
        """An empty argument, or empty brackets, is refused."""
        for text in ("", "   ", "[]:80"):
            self.assertRaises(EndpointError, parse_endpoint, text)

    def test_makeHostPort(self):
        """HOST:PORT forms connect with a HostnameEndpoint (IPv4 and IPv6)."""
        reactor = MemoryReactor()
        for text in ("12000", "localhost:12000", "[::1]:6666"):
            self.assertIsInstance(make_endpoint(reactor, text), HostnameEndpoint)

    def test_makeFromString(self):
        """Endpoint strings go through clientFromString."""
        reactor = MemoryReactor()
        self.assertIsInstance(
            make_endpoint(reactor, "tcp:host=localhost:port=12000"),
            TCP4ClientEndpoint,
        )
        self.assertIsInstance(
            make_endpoint(reactor, "unix:path=/x.sock"), UNIXClientEndpoint
        )
        self.assertIsInstance(
            make_endpoint(reactor, "unix:/x.sock"), UNIXClientEndpoint
        )
        self.assertIsInstance(
            make_endpoint(reactor, "ssl:host=localhost:port=6697"),
            SSL4ClientEndpoint,
        )

    def test_makeErrors(self):
        """Bad endpoint strings give one-line reasons naming the argument."""
        reactor = MemoryReactor()
        for text, reason in (
            ("foo:bar", "Unknown endpoint type"),
            ("tcp:", "missing"),
            ("tcp:localhost:port=x", "invalid literal"),
            ("tcp:localhost:1:nonsense=1", "unexpected keyword argument"),
            ("ssl:localhost:1:certKey=no-such-file.pem", "No such file"),
        ):
            with self.assertRaises(EndpointError) as caught:
                make_endpoint(reactor, text)
            message = str(caught.exception)
            self.assertIn(repr(text), message)
            self.assertIn(reason, message)
            self.assertNotIn("\n", message)


class DescribeConnectErrorTests(SynchronousTestCase):
    """:func:`client.describe_connect_error`."""

    def test_refused(self):
        """A refused connection says so, in lower case, without a final stop."""
        problem = neterror.ConnectionRefusedError(111, "Connection refused")
        self.assertEqual(client.describe_connect_error(problem), "connection refused")
        self.assertEqual(
            client.describe_connect_error(neterror.ConnectionRefusedError()),
            "connection was refused by other side",
        )

    def test_dns(self):
        """An unknown host is 'host not found'."""
        problem = neterror.DNSLookupError("no results")
        self.assertEqual(client.describe_connect_error(problem), "host not found")

    def test_timeout(self):
        """A timed-out attempt is 'timed out'."""
        problem = neterror.TimeoutError()
        self.assertEqual(client.describe_connect_error(problem), "timed out")

    def test_other(self):
        """Anything else is its own text, or its class name."""
        self.assertEqual(client.describe_connect_error(ValueError("Odd.")), "odd")
        self.assertEqual(client.describe_connect_error(ValueError()), "ValueError")


class VisibleTests(SynchronousTestCase):
    """:func:`visible`."""

    def test_escape(self):
        """ESC, BEL and the other C0 controls are shown in caret notation."""
        self.assertEqual(visible("\x1b[2J\x07\t\x00"), "^[[2J^G^I^@")

    def test_delAndC1(self):
        """DEL is ^? and C1 controls (CSI 0x9b) are shown by code point."""
        self.assertEqual(visible("a\x7fb\x9bc"), "a^?b<U+009B>c")

    def test_bidi(self):
        """Bidirectional overrides cannot reorder what is shown."""
        self.assertEqual(visible("abc\u202edef"), "abc<U+202E>def")

    def test_plainTextUnchanged(self):
        """Printable text of any script is unchanged."""
        text = "Grüße, 张三 — Иван 👋 <bob> *** #room"
        self.assertEqual(visible(text), text)


class ChooseColorTests(SynchronousTestCase):
    """:func:`choose_color`."""

    def test_auto(self):
        """auto colours a terminal, not a pipe."""
        self.assertTrue(choose_color("auto", True, {}))
        self.assertFalse(choose_color("auto", False, {}))

    def test_noColor(self):
        """auto honours NO_COLOR when it is set and not empty."""
        self.assertFalse(choose_color("auto", True, {"NO_COLOR": "1"}))
        self.assertTrue(choose_color("auto", True, {"NO_COLOR": ""}))

    def test_dumbTerminal(self):
        """auto does not colour a dumb terminal."""
        self.assertFalse(choose_color("auto", True, {"TERM": "dumb"}))

    def test_alwaysAndNever(self):
        """always and never win over the terminal test and NO_COLOR."""
        self.assertTrue(choose_color("always", False, {"NO_COLOR": "1"}))
        self.assertFalse(choose_color("never", True, {}))


class ColorizeTests(SynchronousTestCase):
    """:func:`colorize` for each line form of the chat wire format."""

    def nick(self, nick):
        return f"{ESC}[1;{nick_color(nick)}m{nick}{ESC}[0m"

    def test_roomMessage(self):
        """#ROOM <NICK> TEXT: room cyan, nick bold in its colour, text plain."""
        self.assertEqual(
            colorize("#lobby <alice> hello there"),
            f"{ESC}[36m#lobby{ESC}[0m <{self.nick('alice')}> hello there",
        )

    def test_roomAction(self):
        """#ROOM * NICK TEXT: room cyan, nick bold in its colour."""
        self.assertEqual(
            colorize("#lobby * alice waves"),
            f"{ESC}[36m#lobby{ESC}[0m * {self.nick('alice')} waves",
        )

    def test_privateReceived(self):
        """*NICK* TEXT: magenta, the nick bold in its colour."""
        self.assertEqual(
            colorize("*bob* psst"),
            f"{ESC}[35m*{ESC}[0m{self.nick('bob')}{ESC}[35m* psst{ESC}[0m",
        )

    def test_privateSent(self):
        """-> *NICK* TEXT: magenta, the nick bold in its colour."""
        self.assertEqual(
            colorize("-> *bob* hi"),
            f"{ESC}[35m-> *{ESC}[0m{self.nick('bob')}{ESC}[35m* hi{ESC}[0m",
        )

    def test_roomNotice(self):
        """#ROOM -NICK- TEXT: room cyan, nick bold in its colour."""
        self.assertEqual(
            colorize("#lobby -alice- deploy at five"),
            f"{ESC}[36m#lobby{ESC}[0m -{self.nick('alice')}- deploy at five",
        )

    def test_privateNotices(self):
        """-NICK- TEXT and -> -NICK- TEXT: magenta, the nick bold in its colour."""
        self.assertEqual(
            colorize("-bob- build done"),
            f"{ESC}[35m-{ESC}[0m{self.nick('bob')}{ESC}[35m- build done{ESC}[0m",
        )
        self.assertEqual(
            colorize("-> -bob- thanks"),
            f"{ESC}[35m-> -{ESC}[0m{self.nick('bob')}{ESC}[35m- thanks{ESC}[0m",
        )

    def test_notice(self):
        """-!- TEXT: dim green."""
        self.assertEqual(
            colorize("-!- alice joined #lobby"),
            f"{ESC}[2;32m-!- alice joined #lobby{ESC}[0m",
        )

    def test_announcement(self):
        """*** TEXT: bold yellow, and not taken for a private message."""
        self.assertEqual(
            colorize("*** Server shutting down"),
            f"{ESC}[1;33m*** Server shutting down{ESC}[0m",
        )

    def test_error(self):
        """!!! TEXT: red."""
        self.assertEqual(
            colorize("!!! no such room"), f"{ESC}[31m!!! no such room{ESC}[0m"
        )

    def test_reply(self):
        """--- TEXT (command replies) stays plain."""
        self.assertEqual(colorize("--- 3 users"), "--- 3 users")

    def test_other(self):
        """A line of no known form is unchanged."""
        for text in ("HELLO", "", "#", "#lobby", "*", "-> x", "<bob> hi"):
            self.assertEqual(colorize(text), text)

    def test_nickColorStable(self):
        """A nick always gets the same colour (no per-run hash seed)."""
        self.assertEqual(nick_color("alice"), nick_color("alice"))
        self.assertIn(nick_color("alice"), client.NICK_COLORS)
        # crc32, not hash(): the same in every run and on every machine.
        self.assertEqual((nick_color("alice"), nick_color("bob")), ("96", "93"))


class RendererTests(SynchronousTestCase):
    """:class:`Renderer`: pipe and terminal output."""

    def test_pipeExact(self):
        """In a pipe, every line is printed exactly as received."""
        renderer = Renderer.for_output("auto", False, {})
        for line in (
            b"#lobby <alice> hi",
            b"*** shutdown",
            b"\x1b[31mraw\x07",
            "Grüße".encode(),
        ):
            self.assertEqual(renderer.render(line), line.decode())

    def test_pipeInvalidUTF8(self):
        """In a pipe, bytes that are not UTF-8 are replaced, not fatal."""
        renderer = Renderer.for_output("auto", False, {})
        self.assertEqual(renderer.render(b"a\xffb"), "a\ufffdb")

    def test_terminalColors(self):
        """On a terminal, chat lines are coloured."""
        renderer = Renderer.for_output("auto", True, {})
        self.assertEqual(renderer.render(b"!!! no"), f"{ESC}[31m!!! no{ESC}[0m")

    def test_terminalNeutralises(self):
        """On a terminal, the server's escapes are shown, never obeyed."""
        renderer = Renderer.for_output("auto", True, {})
        rendered = renderer.render(b"#r <x\x1b[2J> \x1b]0;title\x07")
        self.assertNotIn("\x07", rendered)
        self.assertIn("^[[2J", rendered)
        self.assertIn("^[]0;title^G", rendered)
        # Only our own SGR sequences remain.
        self.assertEqual(
            rendered.replace(f"{ESC}[0m", "").count(ESC),
            rendered.count(f"{ESC}[36m") + rendered.count(f"{ESC}[1;"),
        )

    def test_noColorStillNeutralises(self):
        """With NO_COLOR, a terminal gets no colour but still no raw escapes."""
        renderer = Renderer.for_output("auto", True, {"NO_COLOR": "1"})
        self.assertEqual(renderer.render(b"!!! \x1b[5mx"), "!!! ^[[5mx")

    def test_colorAlwaysInPipe(self):
        """--color=always colours a pipe too, and neutralises escapes there."""
        renderer = Renderer.for_output("always", False, {})
        self.assertEqual(renderer.render(b"*** \x1b"), f"{ESC}[1;33m*** ^[{ESC}[0m")


class SessionHarness:
    """A session joined to two StringTransports, as ``run`` joins them."""

    def __init__(self, renderer=None, login=None, network_transport=None, clock=None):
        self.reports: list[str] = []
        self.session = Session(
            renderer or Renderer(),
            self.reports.append,
            login=login,
            clock=clock,
            tls_quiet=1.0,
        )
        self.results: list[int] = []
        self.session.done.addCallback(self.results.append)
        self.terminal = TerminalProtocol(self.session)
        self.stdio = StringTransport()
        self.terminal.makeConnection(self.stdio)
        self.network = NetworkProtocol(self.session)
        self.wire = network_transport or HalfCloseTransport()

    def connect(self):
        self.network.makeConnection(self.wire)

    def serverCloses(self, reason=None):
        self.network.connectionLost(
            Failure(reason if reason is not None else neterror.ConnectionDone())
        )

    def stdioFlushed(self):
        """What StandardIO does once it has flushed after loseConnection."""
        assert self.stdio.disconnecting
        self.terminal.connectionLost(Failure(neterror.ConnectionDone()))


class SessionTests(SynchronousTestCase):
    """The network and terminal protocols, and the session between them."""

    def test_inputWaitsForConnection(self):
        """Standard input is paused until the connection is up."""
        harness = SessionHarness()
        self.assertEqual(harness.stdio.producerState, "paused")
        harness.connect()
        self.assertEqual(harness.stdio.producerState, "producing")

    def test_linesSentWithCRLF(self):
        """Typed lines are sent at once, each ending in \\r\\n."""
        harness = SessionHarness()
        harness.connect()
        harness.terminal.dataReceived(b"hello\n")
        self.assertEqual(harness.wire.value(), b"hello\r\n")
        harness.terminal.dataReceived(b"wor")
        self.assertEqual(harness.wire.value(), b"hello\r\n")
        harness.terminal.dataReceived(b"ld\r\nagain\n")
        self.assertEqual(harness.wire.value(), b"hello\r\nworld\r\nagain\r\n")

    def test_serverLinesPrinted(self):
        """Server lines are printed as they arrive, one per line."""
        harness = SessionHarness()
        harness.connect()
        harness.network.dataReceived(b"A\r\n")
        self.assertEqual(harness.stdio.value(), b"A\n")

    def test_linesSplitAcrossReads(self):
        """A line split across reads, even inside \\r\\n, is printed whole."""
        harness = SessionHarness()
        harness.connect()
        for chunk in (b"HEL", b"LO\r", b"\nWOR", b"LD", b"\r\n"):
            harness.network.dataReceived(chunk)
        self.assertEqual(harness.stdio.value(), b"HELLO\nWORLD\n")

    def test_characterSplitAcrossReads(self):
        """A UTF-8 character split across reads arrives intact."""
        harness = SessionHarness()
        harness.connect()
        data = "Grüße\r\n".encode()
        harness.network.dataReceived(data[:3])
        harness.network.dataReceived(data[3:])
        self.assertEqual(harness.stdio.value(), "Grüße\n".encode())

    def test_bareNewlineAndCRLF(self):
        """Both \\n and \\r\\n end a server line; no \\r is printed."""
        harness = SessionHarness()
        harness.connect()
        harness.network.dataReceived(b"one\ntwo\r\nthree\n\r\n")
        self.assertEqual(harness.stdio.value(), b"one\ntwo\nthree\n\n")

    def test_renderedOnTerminal(self):
        """Server lines go through the renderer."""
        harness = SessionHarness(renderer=Renderer(color=True, safe=True))
        harness.connect()
        harness.network.dataReceived(b"!!! \x1bx\r\n")
        self.assertEqual(harness.stdio.value(), f"{ESC}[31m!!! ^[x{ESC}[0m\n".encode())

    def test_endOfInputHalfCloses(self):
        """
        At the end of the input the last, unterminated line is sent and the
        connection half-closed; it stays open for the replies.
        """
        harness = SessionHarness()
        harness.connect()
        harness.terminal.dataReceived(b"a\nb")
        harness.terminal.readConnectionLost()
        self.assertEqual(harness.wire.value(), b"a\r\nb\r\n")
        self.assertTrue(harness.wire.writeClosed)
        self.assertFalse(harness.wire.disconnecting)
        self.assertIsNone(harness.wire.producer)
        harness.network.dataReceived(b"A\r\nB\r\n")
        self.assertEqual(harness.stdio.value(), b"A\nB\n")
        self.assertEqual(harness.results, [])

    def test_endOfInputThenServerCloses(self):
        """Stdin EOF, half-close, replies, server closes: exit 0, no message."""
        harness = SessionHarness()
        harness.connect()
        harness.terminal.dataReceived(b"a\nb\n")
        harness.terminal.readConnectionLost()
        harness.network.dataReceived(b"A\r\nB\r\n")
        harness.serverCloses()
        # Standard output is flushed before the session ends.
        self.assertTrue(harness.stdio.disconnecting)
        self.assertIsNone(harness.stdio.producer)
        self.assertEqual(harness.results, [])
        harness.stdioFlushed()
        self.assertEqual(harness.results, [0])
        self.assertEqual(harness.reports, [])
        self.assertEqual(harness.stdio.value(), b"A\nB\n")

    def test_prematureClose(self):
        """The server closing while the user goes on: exit 1, with a message."""
        harness = SessionHarness()
        harness.connect()
        harness.terminal.dataReceived(b"hello\n")
        harness.serverCloses()
        harness.stdioFlushed()
        self.assertEqual(harness.results, [1])
        self.assertEqual(
            harness.reports, ["chatservice-client: connection closed by server"]
        )

    def test_connectionLostAfterEndOfInput(self):
        """A connection reset after the input ended may have lost replies: 1."""
        harness = SessionHarness()
        harness.connect()
        harness.terminal.readConnectionLost()
        harness.serverCloses(neterror.ConnectionLost())
        harness.stdioFlushed()
        self.assertEqual(harness.results, [1])
        self.assertEqual(len(harness.reports), 1)
        self.assertTrue(
            harness.reports[0].startswith("chatservice-client: connection lost: ")
        )

    def test_quitWords(self):
        """After exit, quit, q (any case) or /quit, the server closing is 0."""
        for word in (b"exit", b"QUIT", b"q", b" Quit ", b"/quit bye all"):
            harness = SessionHarness()
            harness.connect()
            harness.terminal.dataReceived(word + b"\n")
            harness.network.dataReceived(b"Goodbye.\r\n")
            harness.serverCloses()
            harness.stdioFlushed()
            self.assertEqual(harness.results, [0], word)
            self.assertEqual(harness.reports, [])

    def test_quitThenReset(self):
        """After a quit word even a reset connection (unread input) is 0."""
        harness = SessionHarness()
        harness.connect()
        harness.terminal.dataReceived(b"quit\nmore\n")
        harness.serverCloses(neterror.ConnectionLost())
        harness.stdioFlushed()
        self.assertEqual(harness.results, [0])

    def test_notQuitWords(self):
        """Lines merely containing a quit word do not count."""
        harness = SessionHarness()
        harness.connect()
        harness.terminal.dataReceived(b"quitting now\nexit stage left\n/msg q hi\n")
        harness.serverCloses()
        harness.stdioFlushed()
        self.assertEqual(harness.results, [1])

    def test_adminLogin(self):
        """In admin mode the login line is the first line sent."""
        harness = SessionHarness(login=b"login root s3cret")
        self.assertEqual(harness.wire.value(), b"")
        harness.terminal.dataReceived(b"who\n")
        harness.connect()
        harness.terminal.dataReceived(b"who\n")
        self.assertEqual(harness.wire.value(), b"login root s3cret\r\nwho\r\n")

    def test_connectFailed(self):
        """A failed connection: exit 1, one line naming the endpoint."""
        harness = SessionHarness()
        harness.session.connectFailed(
            "localhost:1", neterror.ConnectionRefusedError(111, "Connection refused")
        )
        harness.stdioFlushed()
        self.assertEqual(harness.results, [1])
        self.assertEqual(
            harness.reports,
            ["chatservice-client: cannot connect to localhost:1: connection refused"],
        )

    def test_outputClosed(self):
        """When nobody reads the output any more, the client closes and ends."""
        harness = SessionHarness()
        harness.connect()
        harness.terminal.writeConnectionLost()
        self.assertTrue(harness.wire.disconnecting)
        self.assertEqual(harness.results, [1])
        self.assertEqual(harness.reports, [])

    def test_interrupted(self):
        """Ctrl-C (the reactor stopping) ends the session with 130 at once."""
        harness = SessionHarness()
        harness.connect()
        harness.session.interrupted()
        self.assertEqual(harness.results, [130])
        self.assertEqual(harness.reports, [])

    def test_interruptedAfterFinish(self):
        """The reactor stopping after a normal end keeps the status."""
        harness = SessionHarness()
        harness.connect()
        harness.terminal.readConnectionLost()
        harness.serverCloses()
        harness.stdioFlushed()
        harness.session.interrupted()
        self.assertEqual(harness.results, [0])

    def test_noHalfClose(self):
        """
        A transport that cannot half-close (TLS) is closed at the end of the
        input, and the status says replies may be missing.
        """
        harness = SessionHarness(network_transport=StringTransport())
        harness.connect()
        harness.terminal.dataReceived(b"a")
        harness.terminal.readConnectionLost()
        self.assertEqual(harness.wire.value(), b"a\r\n")
        self.assertTrue(harness.wire.disconnecting)
        harness.serverCloses()
        harness.stdioFlushed()
        self.assertEqual(harness.results, [1])
        self.assertIn("TLS", harness.reports[0])

    def test_serverLineTooLong(self):
        """A server line over the limit ends the session with a message."""
        harness = SessionHarness()
        harness.connect()
        harness.network.dataReceived(b"x" * (client.MAX_LINE_LENGTH + 2))
        self.assertTrue(harness.wire.disconnecting)
        harness.stdioFlushed()
        self.assertEqual(harness.results, [1])
        self.assertIn("over", harness.reports[0])

    def test_flowControl(self):
        """
        Each side pauses the other's reading when it cannot keep up, and a
        transport going away does not stop the other side.
        """
        harness = SessionHarness()
        harness.connect()
        of_stdin, of_network = harness.wire.producer, harness.stdio.producer
        assert of_stdin is not None and of_network is not None
        of_stdin.pauseProducing()
        self.assertEqual(harness.stdio.producerState, "paused")
        of_stdin.resumeProducing()
        self.assertEqual(harness.stdio.producerState, "producing")
        of_network.pauseProducing()
        self.assertEqual(harness.wire.producerState, "paused")
        of_network.stopProducing()
        self.assertFalse(harness.wire.disconnecting)


class CredentialsTests(SynchronousTestCase):
    """The admin login: user name, password, login line."""

    def test_loginLine(self):
        """The login line is 'login NAME PASSWORD'."""
        self.assertEqual(client.login_line("root", "pa ss"), b"login root pa ss")

    def test_badUser(self):
        """An empty user name or one with blanks is refused."""
        for name in ("", "  ", "two words"):
            self.assertRaises(LoginError, client.check_user, name)

    def test_badPassword(self):
        """An empty password, or one over several lines, is refused."""
        for password in ("", "a\nb", "a\rb"):
            self.assertRaises(LoginError, client.check_password, password)

    def test_asks(self):
        """Without --user and --password-file both are asked for."""
        line = client.ask_credentials(
            None, None, ask_user=lambda: "admin", ask_password=lambda: "pw"
        )
        self.assertEqual(line, b"login admin pw")

    def test_noUserGiven(self):
        """End of input at the Username: prompt is an error."""
        self.assertRaises(
            LoginError,
            client.ask_credentials,
            None,
            None,
            ask_user=lambda: None,
            ask_password=lambda: "pw",
        )

    def test_passwordFile(self):
        """--password-file gives the first line, without its terminator."""
        handle, name = tempfile.mkstemp(prefix="chatservice-test-")
        os.close(handle)
        self.addCleanup(os.remove, name)
        path = Path(name)
        path.write_bytes(b"s3cret\r\nignored\n")
        asked = []

        def ask_password():
            asked.append(True)
            return "x"

        line = client.ask_credentials("root", str(path), ask_password=ask_password)
        self.assertEqual(line, b"login root s3cret")
        self.assertEqual(asked, [])

    def test_missingPasswordFile(self):
        """An unreadable password file is a one-line error naming it."""
        with self.assertRaises(LoginError) as caught:
            client.read_password_file("no-such-file")
        self.assertIn("'no-such-file'", str(caught.exception))

    def test_readLineFromFd(self):
        """The user name is read byte by byte: the rest stays for the session."""
        read, write = os.pipe()
        self.addCleanup(os.close, read)
        os.write(write, b"alice\r\nwho\n")
        os.close(write)
        self.assertEqual(client.read_line_from_fd(read), "alice")
        self.assertEqual(os.read(read, 100), b"who\n")

    def test_readLineFromFdEnd(self):
        """End of input gives None, or the unterminated last line."""
        read, write = os.pipe()
        self.addCleanup(os.close, read)
        os.write(write, b"bob")
        os.close(write)
        self.assertEqual(client.read_line_from_fd(read), "bob")
        self.assertIsNone(client.read_line_from_fd(read))


class MainTests(SynchronousTestCase):
    """:func:`client.main` before the reactor runs."""

    def setUp(self):
        self.stderr = StringIO()
        self.patch(sys, "stderr", self.stderr)

    def assertUsageError(self, argv, text):
        self.assertEqual(client.main(argv), 2)
        lines = self.stderr.getvalue().splitlines()
        self.assertEqual(len(lines), 1, lines)
        self.assertTrue(lines[0].startswith("chatservice-client: error: "))
        self.assertIn(text, lines[0])

    def test_badEndpoint(self):
        """A bad endpoint string: one-line usage error, status 2."""
        self.assertUsageError(["foo:bar"], "'foo:bar'")

    def test_badPort(self):
        """A bad port: one-line usage error, status 2."""
        self.assertUsageError(["localhost:99999"], "port must be")

    def test_missingEndpoint(self):
        """No endpoint: one-line usage error, status 2."""
        with self.assertRaises(SystemExit) as caught:
            client.main([])
        self.assertEqual(caught.exception.code, 2)
        self.assertEqual(len(self.stderr.getvalue().splitlines()), 1)

    def test_userWithoutAdmin(self):
        """--user and --password-file need --admin."""
        self.assertUsageError(["--user", "x", "12000"], "--admin")

    def test_badPasswordFile(self):
        """An unreadable --password-file: one line, status 2, no connection."""
        self.assertUsageError(
            ["--admin", "--user", "root", "--password-file", "no-such", "6667"],
            "no-such",
        )

    def test_help(self):
        """--help documents the endpoint forms, admin mode and exit status."""
        stdout = StringIO()
        self.patch(sys, "stdout", stdout)
        with self.assertRaises(SystemExit) as caught:
            client.main(["--help"])
        self.assertEqual(caught.exception.code, 0)
        text = " ".join(stdout.getvalue().split())
        for expected in (
            "HOST:PORT",
            "unix:path=",
            "--admin",
            "--user",
            "--password-file",
            "--color",
            "NO_COLOR",
            "Exit status",
        ):
            self.assertIn(expected, text)


class _Collect(ProcessProtocol):
    """Feeds a child its input and collects its output and status."""

    def __init__(self, stdin):
        self.stdin = stdin
        self.out = b""
        self.err = b""
        self.ended: Deferred[tuple[bytes, bytes, int]] = Deferred(lambda _: self.kill())

    def kill(self):
        assert self.transport is not None
        with contextlib.suppress(neterror.ProcessExitedAlready):
            self.transport.signalProcess("KILL")

    def connectionMade(self):
        assert self.transport is not None
        self.transport.write(self.stdin)
        self.transport.closeStdin()

    def outReceived(self, data):
        self.out += data

    def errReceived(self, data):
        self.err += data

    def processEnded(self, reason):
        if not self.ended.called:
            self.ended.callback((self.out, self.err, reason.value.exitCode))


class CommandTests(TestCase):
    """The real command, as a child process, against a real server."""

    timeout = 60

    def listen(self) -> IListeningPort:
        """The real uppercase service, on a free loopback port."""
        from twisted.internet import reactor

        factory: Any = UpperFactory()  # a Factory; the stubs want a ServerFactory
        return reactor.listenTCP(0, factory, interface="127.0.0.1")

    def portNumber(self, port: IListeningPort) -> int:
        address = port.getHost()
        assert isinstance(address, IPv4Address)
        return address.port

    def runClient(self, *args, stdin=b""):
        from twisted.internet import reactor

        root = str(Path(chatservice.__file__).resolve().parent.parent)
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            [root, *filter(None, [env.get("PYTHONPATH")])]
        )
        collect = _Collect(stdin)
        argv = [sys.executable, "-m", "chatservice.client", *args]
        reactor.spawnProcess(collect, sys.executable, argv, env=env)
        collect.ended.addTimeout(45, reactor)
        return collect.ended

    @inlineCallbacks
    def test_pipe(self):
        """
        'a\\nb\\n' piped to the client of the uppercase service prints exactly
        'A\\nB\\n' and exits 0 once every reply has arrived.
        """

        port = self.listen()
        self.addCleanup(port.stopListening)
        out, err, code = yield self.runClient(
            f"127.0.0.1:{self.portNumber(port)}", stdin=b"a\nb\n"
        )
        self.assertEqual((out, err, code), (b"A\nB\n", b"", 0))

    @inlineCallbacks
    def test_refused(self):
        """A refused connection: status 1, one line naming the endpoint."""

        port = self.listen()
        number = self.portNumber(port)
        yield port.stopListening()
        out, err, code = yield self.runClient(f"127.0.0.1:{number}", stdin=b"a\n")
        self.assertEqual(code, 1)
        self.assertEqual(out, b"")
        lines = err.decode().splitlines()
        self.assertEqual(len(lines), 1, lines)
        self.assertIn(f"127.0.0.1:{number}", lines[0])
        self.assertTrue(lines[0].startswith("chatservice-client: cannot connect"))
