"""
``chatservice-client``: a line client for the chatservice front ends.

It joins a terminal (or a pipe) to one connection, full duplex: every line
read from standard input is sent as soon as it is complete, every line from
the server is printed as soon as it arrives.  The pieces are small and
tested separately:

- :func:`parse_endpoint` and :func:`make_endpoint` turn ``HOST:PORT``,
  ``[V6]:PORT``, a bare ``PORT`` or a Twisted client endpoint string into an
  endpoint;
- :func:`visible`, :func:`choose_color` and :class:`Renderer` turn a line
  of the chat wire format into what is printed;
- :class:`NetworkProtocol` (the connection) and :class:`TerminalProtocol`
  (standard input and output) only frame lines and report to
- :class:`Session`, which forwards lines, half-closes the connection when
  the input ends, and decides the exit status;
- :func:`main` parses the command line, asks the admin password before the
  reactor starts, and runs everything with :func:`twisted.internet.task.react`.
"""

from __future__ import annotations

import argparse
import getpass
import os
import re
import sys
import warnings
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any, Literal, NoReturn, Protocol

from twisted.internet import error as neterror
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import (
    HostnameEndpoint,
    clientFromString,
    connectProtocol,
)
from twisted.internet.interfaces import (
    IDelayedCall,
    IHalfCloseableProtocol,
    IPushProducer,
    IReactorTime,
    IStreamClientEndpoint,
    IStreamClientEndpointStringParserWithReactor,
)
from twisted.internet.protocol import connectionDone
from twisted.plugin import getPlugins
from twisted.protocols.basic import LineReceiver
from twisted.python.failure import Failure
from zope.interface import implementer

from chatservice import __version__
from chatservice.chat.text import visible
from chatservice.conn.peers import is_tls
from chatservice.doors.answers import is_quit_word

PROG = "chatservice-client"

#: Exit statuses.
EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

#: Longest line accepted from the server or from standard input, in bytes.
MAX_LINE_LENGTH = 1 << 20

#: Host of a bare ``PORT``.
DEFAULT_HOST = "localhost"

#: Seconds the server must be quiet, after the input ended on a TLS
#: connection (which cannot be half-closed), before the client closes; and
#: how many such periods it waits at most in all (a busy room never is).
DEFAULT_TLS_QUIET = 1.0
TLS_WAIT_FACTOR = 10

ColorMode = Literal["auto", "always", "never"]


# Endpoints


class EndpointError(ValueError):
    """The endpoint argument cannot be used; the message says why."""


@dataclass(frozen=True)
class HostPort:
    """A ``HOST:PORT`` destination, connected with a ``HostnameEndpoint``."""

    host: str
    port: int


_BARE_PORT = re.compile(r"[0-9]+")
_BRACKETED = re.compile(r"\[([^\[\]]*)\]:([0-9]+)")
_HOST_PORT = re.compile(r"([^:\[\]=\s]+):([0-9]+)")
_UNBRACKETED_V6 = re.compile(r"([0-9A-Fa-f.]*:[0-9A-Fa-f.:]*):([0-9]+)")
_BUILTIN_TYPES = frozenset({"tcp", "ssl", "unix"})


def endpoint_types() -> frozenset[str]:
    """Every Twisted client endpoint type name known here (``tcp``, ``tls``...)."""
    plugins = getPlugins(IStreamClientEndpointStringParserWithReactor)
    return _BUILTIN_TYPES | {str(plugin.prefix).lower() for plugin in plugins}


def _port(text: str, whole: str) -> int:
    port = int(text)
    if not 0 < port < 65536:
        raise EndpointError(f"invalid endpoint {whole!r}: port must be 1 to 65535")
    return port


def parse_endpoint(
    text: str, known_types: Callable[[], frozenset[str]] = endpoint_types
) -> HostPort | str:
    """
    Read the endpoint argument: a :class:`HostPort` for ``PORT``
    (on localhost), ``HOST:PORT`` and ``[IPV6]:PORT``, or else the text
    itself, a Twisted client endpoint string for :func:`clientFromString`.

    ``NAME:DIGITS`` is an endpoint string when ``NAME`` is an endpoint type
    (``unix:1234`` is a socket file named ``1234``), else a host and a port.
    """
    whole = text
    text = text.strip()
    if not text:
        raise EndpointError("empty endpoint")
    if _BARE_PORT.fullmatch(text):
        return HostPort(DEFAULT_HOST, _port(text, whole))
    match = _BRACKETED.fullmatch(text)
    if match is not None:
        host = match.group(1)
        if not host:
            raise EndpointError(f"invalid endpoint {whole!r}: empty host")
        return HostPort(host, _port(match.group(2), whole))
    match = _HOST_PORT.fullmatch(text)
    if match is not None and match.group(1).lower() not in known_types():
        return HostPort(match.group(1), _port(match.group(2), whole))
    match = _UNBRACKETED_V6.fullmatch(text)
    if match is not None:
        raise EndpointError(
            f"invalid endpoint {whole!r}: put an IPv6 address in brackets, "
            f"as in [{match.group(1)}]:{match.group(2)}"
        )
    return text


def make_endpoint(
    reactor: Any, text: str, *, tls: bool = False, ca_file: str | None = None
) -> IStreamClientEndpoint:
    """
    The client endpoint for the endpoint argument, or :class:`EndpointError`
    with a one-line reason.  With ``tls``, ``HOST:PORT`` is reached over
    TLS, the certificate checked against ``ca_file`` (else the system's
    authorities) and the host name (:mod:`chatservice.clienttls`).
    """
    parsed = parse_endpoint(text)
    if tls:
        if not isinstance(parsed, HostPort):
            raise EndpointError(
                f"--tls takes HOST:PORT or PORT, not the endpoint string {text!r} "
                "(ssl: and tls: endpoint strings say their own TLS options)"
            )
        from chatservice.clienttls import CAFileError, VerifiedTLSEndpoint, load_trust

        try:
            trust = load_trust(ca_file)
        except CAFileError as problem:
            raise EndpointError(str(problem)) from None
        return VerifiedTLSEndpoint(reactor, parsed.host, parsed.port, trust)
    if isinstance(parsed, HostPort):
        endpoint: IStreamClientEndpoint = HostnameEndpoint(
            reactor, parsed.host, parsed.port
        )
        return endpoint
    try:
        endpoint = clientFromString(reactor, parsed)
    except Exception as problem:
        # Anything: a parser's ValueError or TypeError, a missing key file's
        # OSError, OpenSSL's complaint about a certificate...
        reason = str(problem) or type(problem).__name__
        if isinstance(problem, TypeError):
            # "TCP4ClientEndpoint.__init__() missing 1 required ... 'port'"
            found = re.search(r"(missing|unexpected).*", reason)
            reason = found.group() if found else reason
        raise EndpointError(f"invalid endpoint {text!r}: {reason}") from None
    return endpoint


def describe_connect_error(problem: BaseException) -> str:
    """A short reason for a failed or lost connection."""
    from chatservice.clienttls import CertificateError

    if isinstance(problem, CertificateError):
        return f"TLS: {problem}"
    if isinstance(problem, neterror.DNSLookupError):
        return "host not found"
    if isinstance(problem, neterror.TimeoutError | TimeoutError):
        return "timed out"
    reason = ""
    if isinstance(problem, neterror.ConnectError):
        # The OS's words ("Connection refused"), without Twisted's preamble.
        if problem.args and problem.args[0]:
            reason = str(problem.args[0])
        elif isinstance(problem.osError, str):
            reason = problem.osError
    reason = (reason or str(problem)).strip().rstrip(".")
    if not reason:
        return type(problem).__name__
    return reason[:1].lower() + reason[1:]


# Rendering


def choose_color(mode: ColorMode, isatty: bool, environ: Mapping[str, str]) -> bool:
    """
    Whether to colour: ``always``, ``never``, or (``auto``) when standard
    output is a terminal, ``NO_COLOR`` is unset or empty and ``TERM`` is not
    ``dumb``.
    """
    if mode == "always":
        return True
    if mode == "never":
        return False
    return isatty and not environ.get("NO_COLOR") and environ.get("TERM") != "dumb"


RESET = "\x1b[0m"
CYAN = "36"
MAGENTA = "35"
RED = "31"
BOLD = "1"
NOTICE = "2;32"
ANNOUNCEMENT = "1;33"
#: Nick colours; the one for a nick is chosen by a stable hash of it.
NICK_COLORS = ("31", "32", "33", "34", "35", "36", "91", "92", "93", "94", "95", "96")


def sgr(codes: str, text: str) -> str:
    """``text`` in the given ANSI SGR attributes, reset afterwards."""
    return f"\x1b[{codes}m{text}{RESET}" if text else text


def nick_color(nick: str) -> str:
    """The SGR colour of a nick: the same in every run and for every user."""
    return NICK_COLORS[zlib.crc32(nick.encode("utf-8")) % len(NICK_COLORS)]


def _nick(nick: str) -> str:
    return sgr(f"{BOLD};{nick_color(nick)}", nick)


_ROOM_MESSAGE = re.compile(r"(#\S+) <([^\s>]+)>( .*)?")
_ROOM_ACTION = re.compile(r"(#\S+) \* (\S+)( .*)?")
_ROOM_NOTICE = re.compile(r"(#\S+) -(\S+)-( .*)?")
_PRIVATE_NOTICE = re.compile(r"(-> )?-([^!\s-]\S*)-( .*)?")
_PRIVATE_SENT = re.compile(r"-> \*([^\s*]+)\*( .*)?")
_PRIVATE = re.compile(r"\*([^\s*]+)\*( .*)?")
_PREFIXES = (
    ("*** ", ANNOUNCEMENT),
    ("!!! ", RED),
    ("-!- ", NOTICE),
)


def colorize(text: str) -> str:
    """
    Colour one line of the chat wire format (already made :func:`visible`);
    a line of no known form is returned unchanged.
    """
    for prefix, codes in _PREFIXES:
        if text.startswith(prefix):
            return sgr(codes, text)
    if text.startswith("--- "):
        return text
    match = _ROOM_MESSAGE.fullmatch(text)
    if match is not None:
        room, nick, rest = match.groups()
        return f"{sgr(CYAN, room)} <{_nick(nick)}>{rest or ''}"
    match = _ROOM_ACTION.fullmatch(text)
    if match is not None:
        room, nick, rest = match.groups()
        return f"{sgr(CYAN, room)} * {_nick(nick)}{rest or ''}"
    match = _ROOM_NOTICE.fullmatch(text)
    if match is not None:
        room, nick, rest = match.groups()
        return f"{sgr(CYAN, room)} -{_nick(nick)}-{rest or ''}"
    match = _PRIVATE_NOTICE.fullmatch(text)
    if match is not None:
        sent, nick, rest = match.groups()
        tail = sgr(MAGENTA, "-" + (rest or ""))
        return f"{sgr(MAGENTA, (sent or '') + '-')}{_nick(nick)}{tail}"
    match = _PRIVATE_SENT.fullmatch(text)
    if match is not None:
        nick, rest = match.groups()
        tail = sgr(MAGENTA, "*" + (rest or ""))
        return f"{sgr(MAGENTA, '-> *')}{_nick(nick)}{tail}"
    match = _PRIVATE.fullmatch(text)
    if match is not None:
        nick, rest = match.groups()
        tail = sgr(MAGENTA, "*" + (rest or ""))
        return f"{sgr(MAGENTA, '*')}{_nick(nick)}{tail}"
    return text


@dataclass(frozen=True)
class Renderer:
    """
    Turns one line from the server (without its terminator) into the text
    to print.  ``safe``: make control characters visible (a terminal reads
    the output); ``color``: colour the chat wire format.  With neither, the
    line is printed as received (decoded as UTF-8, invalid bytes replaced).
    """

    color: bool = False
    safe: bool = False

    @classmethod
    def for_output(
        cls, mode: ColorMode, isatty: bool, environ: Mapping[str, str]
    ) -> Renderer:
        """The renderer for an output that is (or is not) a terminal."""
        color = choose_color(mode, isatty, environ)
        return cls(color=color, safe=isatty or color)

    def render(self, line: bytes) -> str:
        text = line.decode("utf-8", errors="replace")
        if self.safe:
            text = visible(text)
        if self.color:
            text = colorize(text)
        return text


# Protocols


class Transport(Protocol):
    """What the client uses of a connection's or of stdio's transport."""

    def write(self, data: bytes) -> None: ...
    def loseConnection(self) -> None: ...
    def registerProducer(self, producer: Any, streaming: bool) -> None: ...
    def unregisterProducer(self) -> None: ...
    def pauseProducing(self) -> None: ...
    def resumeProducing(self) -> None: ...


@implementer(IPushProducer)
class FlowControl:
    """
    Lets one side pause and resume the other's reading (the side that
    cannot write fast enough), and nothing more: a transport that goes away
    calls ``stopProducing`` on its producer, but ending the session is the
    :class:`Session`'s decision.
    """

    def __init__(self, target: Transport) -> None:
        self.target = target

    def pauseProducing(self) -> None:
        self.target.pauseProducing()

    def resumeProducing(self) -> None:
        self.target.resumeProducing()

    def stopProducing(self) -> None:
        pass


#: What every line sent to the server ends with.
LINE_END = b"\r\n"


def _strip_cr(line: bytes) -> bytes:
    return line[:-1] if line.endswith(b"\r") else line


def is_quit_line(line: bytes) -> bool:
    """Whether a line typed by the user ends the session (``quit``, ``/quit``)."""
    return is_quit_word(line) or line.lstrip().lower().startswith(b"/quit")


class NetworkSide(Protocol):
    """
    What a :class:`NetworkProtocol` reports to: the :class:`Session`, or
    the full screen's ``chatservice.screen.Connection``.
    """

    def networkConnected(self, network: NetworkProtocol) -> None: ...
    def serverLine(self, line: bytes) -> None: ...
    def networkLost(self, reason: Failure) -> None: ...
    def finish(self, code: int, message: str | None = None) -> None: ...


class NetworkProtocol(LineReceiver):
    """
    The connection to the server: lines end with ``\\n`` or ``\\r\\n`` on
    the way in and with ``\\r\\n`` on the way out; everything else is the
    :class:`Session`'s business.
    """

    delimiter = b"\n"
    MAX_LENGTH = MAX_LINE_LENGTH
    transport: Transport  # type: ignore[assignment]

    def __init__(self, session: NetworkSide) -> None:
        self.session = session

    def connectionMade(self) -> None:
        self.session.networkConnected(self)

    def lineReceived(self, line: bytes) -> None:
        self.session.serverLine(_strip_cr(line))

    def lineLengthExceeded(self, line: bytes) -> None:
        self.clearLineBuffer()
        self.session.finish(
            EXIT_FAILURE, f"the server sent a line over {self.MAX_LENGTH} bytes"
        )

    def sendLine(self, line: bytes) -> None:
        self.transport.write(line + LINE_END)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.session.networkLost(reason)


@implementer(IHalfCloseableProtocol)
class TerminalProtocol(LineReceiver):
    """
    Standard input and output (``StandardIO``): lines in, rendered lines
    out.  It is half-closeable, so that the end of the input leaves the
    output open for the replies still to come.
    """

    delimiter = b"\n"
    MAX_LENGTH = MAX_LINE_LENGTH
    transport: Transport  # type: ignore[assignment]
    #: False once standard output can no longer be written.
    writable = True
    #: True once standard input has ended.
    input_ended = False

    def __init__(self, session: Session) -> None:
        self.session = session

    def connectionMade(self) -> None:
        self.session.terminalConnected(self)

    def lineReceived(self, line: bytes) -> None:
        self.session.userLine(_strip_cr(line))

    def lineLengthExceeded(self, line: bytes) -> None:
        self.clearLineBuffer()
        self.session.finish(
            EXIT_FAILURE, f"input line over {self.MAX_LENGTH} bytes; not sent"
        )

    def show(self, text: str) -> None:
        """Print one line."""
        if self.writable:
            self.transport.write(text.encode("utf-8") + b"\n")

    def readConnectionLost(self) -> None:
        """Standard input ended: send its last line, even unterminated."""
        self.input_ended = True
        last = _strip_cr(self.clearLineBuffer())
        if last:
            self.session.userLine(last)
        self.session.inputEnded()

    def writeConnectionLost(self) -> None:
        """Standard output was closed (say, ``| head -1``)."""
        self.writable = False
        self.session.outputClosed()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.writable = False
        self.session.terminalLost()


class Session:
    """
    One run of the client: forwards lines both ways, half-closes the
    connection when the input ends, and decides the exit status.

    The status: 0 when the server closes after the input ended or after the
    user sent a quit word; 1, with a one-line message on standard error,
    when the connection fails or the server closes first.  :attr:`done`
    fires with it once standard output is flushed.
    """

    def __init__(
        self,
        renderer: Renderer,
        report: Callable[[str], None],
        *,
        login: bytes | None = None,
        clock: IReactorTime | None = None,
        tls_quiet: float = DEFAULT_TLS_QUIET,
    ) -> None:
        self.renderer = renderer
        self.report = report
        self.login = login
        #: For the wait after the input ends on TLS (none: close at once).
        self.clock = clock
        self.tls_quiet = tls_quiet
        self._quiet_call: IDelayedCall | None = None
        self._quiet_deadline = 0.0
        self.network: NetworkProtocol | None = None
        self.terminal: TerminalProtocol | None = None
        self.network_lost = False
        self.terminal_lost = False
        self.input_ended = False
        self.quit_sent = False
        #: True when the input ended on a connection that cannot half-close.
        self.half_close_failed = False
        self.exit_code: int | None = None
        self.done: Deferred[int] = Deferred()
        self._network_producing = False
        self._terminal_producing = False

    # The terminal side

    def terminalConnected(self, terminal: TerminalProtocol) -> None:
        """Standard input waits until the connection is up."""
        self.terminal = terminal
        if self.network is None and not self.network_lost:
            terminal.transport.pauseProducing()

    def userLine(self, line: bytes) -> None:
        """Send a line typed (or piped) by the user."""
        if self.network is None or self.network_lost or self.exit_code is not None:
            return
        if is_quit_line(line):
            self.quit_sent = True
        self.network.sendLine(line)

    def inputEnded(self) -> None:
        """
        No more input: half-close the connection, so that the server answers
        what it got and then closes.
        """
        self.input_ended = True
        network = self.network
        if network is None or self.network_lost or self.exit_code is not None:
            return
        if self._network_producing:
            self._network_producing = False
            network.transport.unregisterProducer()
        half_close = getattr(network.transport, "loseWriteConnection", None)
        if half_close is None or is_tls(network.transport):
            # Twisted's TLS cannot half-close: the server would see its
            # connection lost, not its input ended, and drop the replies
            # still to come.  Wait for them instead, until the server has
            # been quiet for a while (or closes, after a quit word).
            if self.clock is None:
                self.half_close_failed = True
                network.transport.loseConnection()
                return
            self._quiet_deadline = self.clock.seconds() + TLS_WAIT_FACTOR * max(
                self.tls_quiet, 0.0
            )
            self._quiet_call = self.clock.callLater(self.tls_quiet, self._quietEnded)
        else:
            half_close()

    def _stillTalking(self) -> None:
        """A line from the server while waiting for it to be quiet."""
        call = self._quiet_call
        if call is not None and call.active() and self.clock is not None:
            wait = min(self.tls_quiet, self._quiet_deadline - self.clock.seconds())
            call.reset(max(wait, 0.0))

    def _quietEnded(self) -> None:
        """The server was quiet (or talked too long) after the input ended."""
        self._quiet_call = None
        self.finish(EXIT_OK)

    def outputClosed(self) -> None:
        """Nobody reads the output any more: stop, quietly."""
        self._terminal_producing = False
        self.finish(EXIT_FAILURE)

    def terminalLost(self) -> None:
        self.terminal_lost = True
        self._terminal_producing = False
        if self.exit_code is None:
            self.finish(EXIT_FAILURE)
        self._fire()

    # The network side

    def networkConnected(self, network: NetworkProtocol) -> None:
        """The connection is up: log in if asked to, then read the input."""
        self.network = network
        if self.exit_code is not None:
            network.transport.loseConnection()
            return
        if self.login is not None:
            network.sendLine(self.login)
        terminal = self.terminal
        if terminal is not None and not self.terminal_lost:
            # Each side stops reading while the other cannot keep up.
            network.transport.registerProducer(FlowControl(terminal.transport), True)
            self._network_producing = True
            terminal.transport.registerProducer(FlowControl(network.transport), True)
            self._terminal_producing = True
            terminal.transport.resumeProducing()

    def serverLine(self, line: bytes) -> None:
        """Print a line from the server."""
        if self.terminal is not None and self.exit_code is None:
            self.terminal.show(self.renderer.render(line))
        self._stillTalking()

    def networkLost(self, reason: Failure) -> None:
        """The server closed the connection, or it was lost."""
        self.network_lost = True
        self._network_producing = False
        if self.exit_code is not None:
            return
        clean = reason.check(neterror.ConnectionDone) is not None
        if self.half_close_failed and not self.quit_sent:
            self.finish(
                EXIT_FAILURE,
                "end of input: a TLS connection cannot be half-closed, "
                "so replies to the last lines may be missing",
            )
        elif self.quit_sent or (self.input_ended and clean):
            self.finish(EXIT_OK)
        elif clean:
            self.finish(EXIT_FAILURE, "connection closed by server")
        else:
            problem = reason.value or neterror.ConnectionLost()
            self.finish(
                EXIT_FAILURE, f"connection lost: {describe_connect_error(problem)}"
            )

    def connectFailed(self, endpoint: str, problem: BaseException) -> None:
        """The connection could not be made."""
        self.network_lost = True
        self.finish(
            EXIT_FAILURE,
            f"cannot connect to {endpoint}: {describe_connect_error(problem)}",
        )

    # The end

    def finish(self, code: int, message: str | None = None) -> None:
        """
        End with this status (the first call wins): report, close the
        connection, flush standard output, then fire :attr:`done`.
        """
        if self.exit_code is not None:
            return
        self.exit_code = code
        if self._quiet_call is not None and self._quiet_call.active():
            self._quiet_call.cancel()
        self._quiet_call = None
        if message is not None:
            self.report(f"{PROG}: {message}")
        network, terminal = self.network, self.terminal
        if network is not None and not self.network_lost:
            if self._network_producing:
                self._network_producing = False
                network.transport.unregisterProducer()
            network.transport.loseConnection()
        if terminal is not None and not self.terminal_lost:
            if self._terminal_producing:
                # A paused producer would hold the output open.
                self._terminal_producing = False
                terminal.transport.unregisterProducer()
            if terminal.writable:
                # done fires from terminalLost, once the output is flushed.
                terminal.transport.loseConnection()
                return
        self._fire()

    def interrupted(self) -> None:
        """The reactor is stopping (Ctrl-C, SIGTERM): end at once, quietly."""
        if self.exit_code is None:
            self.exit_code = EXIT_INTERRUPTED
        self._fire()

    def _fire(self) -> None:
        if self.exit_code is not None and not self.done.called:
            self.done.callback(self.exit_code)


# Command line


class _Parser(argparse.ArgumentParser):
    """Usage errors in one line (``chatservice-client: error: ...``)."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see --help)\n")


def _seconds(text: str) -> float:
    """A number of seconds for an option: finite, 0 or more."""
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``chatservice-client``."""
    parser = _Parser(
        prog=PROG,
        description=(
            "Connect to a chatservice server (echo, uppercase, chat or admin "
            "console) and exchange lines: every line read from standard input "
            "is sent, every line from the server is printed. When standard "
            "input ends, the client sends what is left, half-closes the "
            "connection, prints the remaining replies and exits."
        ),
        epilog=(
            "ENDPOINT is HOST:PORT (localhost:12000, [::1]:6666), a bare PORT "
            "(on localhost), or a Twisted client endpoint string "
            "(tcp:host=HOST:port=PORT, unix:path=/x.sock or unix:/x.sock, "
            "ssl:host=HOST:port=PORT:caCertsDir=DIR, tls:HOST:PORT). "
            "Typing exit, quit, q (any case) or a line starting with /quit "
            "asks the server to end the session. "
            "On a terminal, lines of the chat format are coloured (unless "
            "NO_COLOR is set) and control characters from the server are shown "
            "as ^[ and the like; in a pipe, lines are printed as received. "
            "Exit status: 0 when the server closes after the input ended or "
            "after a quit word; 1 when the connection fails or the server "
            "closes first; 2 for a usage error; 130 when interrupted."
        ),
    )
    parser.add_argument("endpoint", metavar="ENDPOINT", help="where to connect")
    parser.add_argument(
        "--color",
        choices=("auto", "always", "never"),
        default="auto",
        help=(
            "colour the chat format: auto (default) when standard output is "
            "a terminal and NO_COLOR is not set, always, or never"
        ),
    )
    screen = parser.add_argument_group(
        "full screen",
        "When standard input and output are a terminal, the client shows a "
        "full screen: the conversation, a status line and the input line "
        "(see docs/client.rst for the keys). Piped use is unchanged.",
    )
    screen.add_argument(
        "--no-screen",
        action="store_true",
        help="on a terminal too, read and print plain lines as in a pipe",
    )
    screen.add_argument(
        "--no-reconnect",
        action="store_true",
        help="end when the connection drops instead of reconnecting",
    )
    screen.add_argument(
        "--no-bell",
        action="store_true",
        help="no terminal bell when your nickname is mentioned",
    )
    tls = parser.add_argument_group(
        "TLS",
        "With --tls, HOST:PORT is reached over TLS and the server's "
        "certificate is checked: signed by an authority the system trusts "
        "(or one of --ca FILE), valid now, and for HOST. A certificate that "
        "fails is refused with the reason. TLS cannot be half-closed: when "
        "the input ends, the client waits for the server's replies until it "
        "has been quiet for --tls-quiet seconds (10 times that at most), "
        "then closes.",
    )
    tls.add_argument(
        "--tls", action="store_true", help="connect over TLS, verifying the server"
    )
    tls.add_argument(
        "--ca",
        metavar="FILE",
        help="trust the certificates of this PEM file (a private CA, or a "
        "self-signed server certificate) instead of the system's; implies --tls",
    )
    tls.add_argument(
        "--tls-quiet",
        metavar="SECONDS",
        type=_seconds,
        default=DEFAULT_TLS_QUIET,
        help=f"after the input ends on TLS, close once the server has been "
        f"quiet this long (default {DEFAULT_TLS_QUIET:g})",
    )
    admin = parser.add_argument_group(
        "admin console",
        "With --admin, the first line sent is 'login NAME PASSWORD'; the name "
        "is asked for (Username:) unless --user is given, the password is "
        "asked for without echo unless --password-file is given. Both are "
        "asked before connecting.",
    )
    admin.add_argument(
        "--admin",
        action="store_true",
        help="log in to the admin console (usually unix:admin.sock)",
    )
    admin.add_argument("--user", metavar="NAME", help="admin user name")
    admin.add_argument(
        "--password-file",
        metavar="FILE",
        help="read the admin password from the first line of FILE (for scripts)",
    )
    parser.add_argument(
        "--version", action="version", version=f"%(prog)s {__version__}"
    )
    return parser


def read_line_from_fd(fd: int = 0) -> str | None:
    """
    One line from a file descriptor, read a byte at a time so that nothing
    after it is taken from the input the session will read.  ``None`` at
    end of input.
    """
    data = bytearray()
    while True:
        byte = os.read(fd, 1)
        if not byte:
            return data.decode("utf-8", errors="replace") if data else None
        if byte == b"\n":
            return data.decode("utf-8", errors="replace").rstrip("\r")
        data += byte


class LoginError(Exception):
    """The admin credentials cannot be used; the message says why."""


def check_user(name: str) -> str:
    """An admin user name: not empty, no blank inside."""
    name = name.strip()
    if not name or any(char.isspace() for char in name):
        raise LoginError(f"invalid user name {name!r}")
    return name


def check_password(password: str) -> str:
    """An admin password: not empty, on one line."""
    if not password:
        raise LoginError("empty password")
    if any(char in password for char in "\r\n\0"):
        raise LoginError("the password must be on one line")
    return password


def read_password_file(path: str) -> str:
    """The first line of a password file, without its terminator."""
    try:
        with open(path, "rb") as file:
            first = file.readline()
    except OSError as problem:
        raise LoginError(
            f"cannot read password file {path!r}: {problem.strerror or problem}"
        ) from None
    try:
        text = first.decode("utf-8")
    except UnicodeDecodeError:
        raise LoginError(f"password file {path!r} is not UTF-8") from None
    return text.rstrip("\r\n")


def login_line(user: str, password: str) -> bytes:
    """The admin console's first line."""
    return f"login {check_user(user)} {check_password(password)}".encode()


def ask_credentials(
    user: str | None,
    password_file: str | None,
    *,
    ask_user: Callable[[], str | None] | None = None,
    ask_password: Callable[[], str] | None = None,
) -> bytes:
    """
    Build the login line, asking what the options do not give.  Runs before
    the reactor: asking blocks.
    """
    if user is None:
        if ask_user is None:
            ask_user = _ask_user
        user = ask_user()
        if user is None:
            raise LoginError("no user name given")
    user = check_user(user)
    if password_file is not None:
        password = read_password_file(password_file)
    else:
        if ask_password is None:
            ask_password = _ask_password
        password = ask_password()
    return login_line(user, password)


def _ask_user() -> str | None:
    sys.stderr.write("Username: ")
    sys.stderr.flush()
    return read_line_from_fd(0)


def _ask_password() -> str:
    with warnings.catch_warnings():
        # Without a terminal getpass would read (and echo) standard input.
        warnings.simplefilter("error", getpass.GetPassWarning)
        try:
            return getpass.getpass("Password: ")
        except getpass.GetPassWarning:
            raise LoginError(
                "no terminal to ask the password; use --password-file"
            ) from None


@dataclass(frozen=True)
class Config:
    """What :func:`run` needs, once the command line is read."""

    #: The endpoint argument as given, for messages.
    name: str
    endpoint: IStreamClientEndpoint
    color: ColorMode = "auto"
    login: bytes | None = None
    #: The full-screen client (standard input and output are a terminal).
    screen: bool = False
    #: Reconnect when the connection drops (full screen only).
    reconnect: bool = True
    #: Ring the terminal bell when one's nickname is mentioned.
    bell: bool = True
    #: After the input ends on TLS: how long the server must be quiet.
    tls_quiet: float = DEFAULT_TLS_QUIET


def _report(line: str) -> None:
    try:
        sys.stderr.write(line + "\n")
        sys.stderr.flush()
    except OSError:
        pass


def _usage_error(message: str, *, hint: bool = True) -> int:
    _report(f"{PROG}: error: {message}" + (" (see --help)" if hint else ""))
    return EXIT_USAGE


def _isatty(fd: int) -> bool:
    try:
        return os.isatty(fd)
    except OSError:
        return False


async def run(reactor: Any, config: Config) -> None:
    """
    Connect and exchange lines until the session ends; a non-zero status
    leaves as ``SystemExit``, which :func:`~twisted.internet.task.react`
    turns into the exit status.
    """
    if config.screen:
        from chatservice.screen import run_screen

        status = await run_screen(
            reactor,
            config.name,
            config.endpoint,
            color=choose_color(config.color, True, os.environ),
            login=config.login,
            reconnect=config.reconnect,
            bell=config.bell,
            report=_report,
            environ=os.environ,
        )
        if status:
            raise SystemExit(status)
        return
    from twisted.internet.stdio import StandardIO

    renderer = Renderer.for_output(config.color, _isatty(1), os.environ)
    session = Session(
        renderer,
        _report,
        login=config.login,
        clock=reactor,
        tls_quiet=config.tls_quiet,
    )
    # Ctrl-C stops the reactor; the session then ends with 130.
    reactor.addSystemEventTrigger("before", "shutdown", session.interrupted)
    StandardIO(TerminalProtocol(session), reactor=reactor)
    try:
        await connectProtocol(config.endpoint, NetworkProtocol(session))
    except Exception as problem:
        session.connectFailed(config.name, problem)
    code = await session.done
    if code:
        raise SystemExit(code)


@contextmanager
def _blocking_restored(fds: Sequence[int] = (0, 1, 2)) -> Iterator[None]:
    """
    ``StandardIO`` makes standard input and output non-blocking, which a
    shell sharing the terminal does not expect: put the flags back.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover (Windows)
        yield
        return
    saved: dict[int, int] = {}
    for fd in fds:
        with suppress(OSError):
            saved[fd] = fcntl.fcntl(fd, fcntl.F_GETFL)
    try:
        yield
    finally:
        for fd, flags in saved.items():
            with suppress(OSError):
                fcntl.fcntl(fd, fcntl.F_SETFL, flags)


def _install_asyncio_reactor() -> bool:
    """
    Install Twisted's asyncio reactor (the full screen runs
    ``prompt_toolkit`` on it); ``False`` if another reactor is installed.
    """
    if "twisted.internet.reactor" in sys.modules:
        from twisted.internet import reactor
        from twisted.internet.asyncioreactor import AsyncioSelectorReactor

        return isinstance(reactor, AsyncioSelectorReactor)
    import asyncio

    from twisted.internet import asyncioreactor

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    asyncioreactor.install(loop)
    return True


def main(argv: Sequence[str] | None = None) -> int:
    """
    The ``chatservice-client`` command.  Returns the status of a usage error
    or of an interrupted prompt; otherwise it runs the reactor and leaves
    with ``SystemExit`` (from :func:`~twisted.internet.task.react`).
    """
    options = build_parser().parse_args(argv)
    if not options.admin and (
        options.user is not None or options.password_file is not None
    ):
        return _usage_error("--user and --password-file need --admin")
    screen = not options.no_screen and _isatty(0) and _isatty(1)
    if screen:
        screen = _install_asyncio_reactor()
    from twisted.internet import reactor

    try:
        endpoint = make_endpoint(
            reactor,
            options.endpoint,
            tls=options.tls or options.ca is not None,
            ca_file=options.ca,
        )
    except EndpointError as problem:
        return _usage_error(str(problem))
    login = None
    if options.admin:
        try:
            login = ask_credentials(options.user, options.password_file)
        except LoginError as problem:
            return _usage_error(str(problem), hint=False)
        except KeyboardInterrupt:
            _report("")
            return EXIT_INTERRUPTED
        except EOFError:
            _report(f"{PROG}: no password given")
            return EXIT_FAILURE
    config = Config(
        options.endpoint,
        endpoint,
        options.color,
        login,
        screen=screen,
        reconnect=not options.no_reconnect,
        bell=not options.no_bell,
        tls_quiet=options.tls_quiet,
    )
    from twisted.internet import task

    with _blocking_restored():
        try:
            task.react(run, (config,), reactor)
        except KeyboardInterrupt:  # before the reactor handles SIGINT
            return EXIT_INTERRUPTED
    return EXIT_OK  # pragma: no cover (react always exits)


if __name__ == "__main__":
    sys.exit(main())
