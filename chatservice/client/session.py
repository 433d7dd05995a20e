"""
:class:`Session`, one run of the line client: it forwards lines between
the connection and standard input and output, half-closes the connection
when the input ends (on TLS, which cannot half-close, waits for the server
to be quiet instead), and decides the exit status.
"""

from __future__ import annotations

from collections.abc import Callable

from twisted.internet import error as neterror
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.python.failure import Failure

from chatservice.client.endpoints import describe_connect_error
from chatservice.client.exits import EXIT_FAILURE, EXIT_INTERRUPTED, EXIT_OK, PROG
from chatservice.client.protocols import (
    FlowControl,
    NetworkProtocol,
    TerminalProtocol,
    is_quit_line,
)
from chatservice.client.render import Renderer
from chatservice.conn.peers import is_tls

#: Seconds the server must be quiet, after the input ended on a TLS
#: connection (which cannot be half-closed), before the client closes; and
#: how many such periods it waits at most in all (a busy room never is).
DEFAULT_TLS_QUIET = 1.0
TLS_WAIT_FACTOR = 10


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
