"""
:class:`Connection`, the connection behind the full screen: a
:class:`~chatservice.client.protocols.NetworkProtocol` through Twisted's
``ClientService``, which reconnects with backoff; after a reconnection it
takes back the nickname and the rooms.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.application.internet import ClientService, backoffPolicy
from twisted.internet import error as neterror
from twisted.internet.interfaces import IStreamClientEndpoint
from twisted.internet.protocol import Factory
from twisted.python.failure import Failure

from chatservice.client.endpoints import describe_connect_error
from chatservice.client.exits import EXIT_FAILURE, EXIT_OK
from chatservice.client.protocols import (
    TLS_HANDSHAKE_TIMEOUT,
    NetworkProtocol,
    is_quit_line,
)
from chatservice.client.screen.view import ChatView

#: The longest nickname the chat accepts (``docs/protocol.rst``).
MAX_NICK_LENGTH = 24

#: The server's last words to a client it kicks or bans (``docs/protocol.rst``).
_SENT_AWAY = (b"!!! disconnected: ", b"!!! you are banned")


#: What the server answers ``/timestamps on`` with (or, before it had the
#: command, refuses it with): not shown.
_TIMESTAMPS_ANSWERS = (
    b"--- timestamps on",
    b"!!! unknown command /timestamps; /help lists commands",
)


class Connection:
    """
    The connection behind the screen.  With ``reconnect``, a
    ``ClientService`` reconnects with backoff once a connection was made,
    then takes back the nickname and rejoins the rooms (the current one
    last, so it stays current); without, the first loss ends the client.
    ``finish`` is told the exit status and a message, once.
    """

    def __init__(
        self,
        chat: ChatView,
        endpoint: IStreamClientEndpoint,
        name: str,
        finish: Callable[[int, str | None], None],
        *,
        refresh: Callable[[], None] = lambda: None,
        login: bytes | None = None,
        reconnect: bool = True,
        reactor: Any = None,
        max_delay: float = 30.0,
        tls_timeout: float = TLS_HANDSHAKE_TIMEOUT,
    ) -> None:
        self.chat = chat
        self.endpoint = endpoint
        self.name = name
        self._finish = finish
        self.refresh = refresh
        self.login = login
        self.reconnect = reconnect
        self.protocol: NetworkProtocol | None = None
        self.quit_sent = False
        self.ended = False
        self.ever_connected = False
        #: The rooms to rejoin after a reconnection, and the one to end in.
        self.rejoin: list[str] = []
        self.rejoin_current: str | None = None
        #: The nickname asked for after a reconnection, until it is granted.
        self.reclaiming: str | None = None
        #: Why the server sent one away (a kick, a ban): then no reconnection.
        self.sent_away: str | None = None
        self.service = ClientService(
            endpoint,
            Factory.forProtocol(lambda: NetworkProtocol(self, reactor, tls_timeout)),
            retryPolicy=backoffPolicy(initialDelay=0.5, maxDelay=max_delay),
            clock=reactor,
        )

    def start(self) -> None:
        """Connect; a first connection that fails ends the client."""
        self.service.startService()
        first = self.service.whenConnected(failAfterFailures=1)
        first.addErrback(self._first_failed)

    def _first_failed(self, failure: Failure) -> None:
        if not self.ended and not self.ever_connected:
            problem = failure.value or neterror.ConnectError()
            self.finish(
                EXIT_FAILURE,
                f"cannot connect to {self.name}: {describe_connect_error(problem)}",
            )

    def networkConnected(self, protocol: NetworkProtocol) -> None:
        """A connection is made: log in, or take back nickname and rooms."""
        if self.ended:
            protocol.transport.loseConnection()
            return
        again = self.ever_connected
        self.ever_connected = True
        self.protocol = protocol
        self.chat.state = "connected"
        if self.login is not None:
            protocol.sendLine(self.login)
        else:
            # Every event line with the server's time (its reply not shown).
            self.asked_timestamps = True
            protocol.sendLine(b"/timestamps on")
            if again and self.chat.nick is not None:
                self._take_back(protocol)
        self.refresh()

    def _take_back(self, protocol: NetworkProtocol) -> None:
        """After a reconnection: the nickname first (the rooms once it is ours)."""
        self.reclaiming = self.chat.nick
        protocol.sendLine(f"/nick {self.reclaiming}".encode())

    def _rejoin(self, protocol: NetworkProtocol) -> None:
        """Rejoin the rooms, the current one last so that it stays current."""
        current = self.rejoin_current
        rooms = [room for room in self.rejoin if room != current]
        for room in rooms + ([current] if current else []):
            protocol.sendLine(f"/join {room}".encode())

    def _reclaim(self, protocol: NetworkProtocol, line: bytes) -> None:
        """
        While taking the nickname back: once it is ours, rejoin; if it is
        still taken (the server has not yet seen the old connection go), try
        it with ``_`` added, as IRC clients do.
        """
        if line.startswith(b"--- you are "):
            self.reclaiming = None
            self._rejoin(protocol)
        elif line.startswith(b"!!! the nickname ") and line.endswith(b" is taken"):
            wanted = f"{self.reclaiming}_"
            if len(wanted) > MAX_NICK_LENGTH:
                self.reclaiming = None
                self.chat.note("-!- choose a nickname: /nick NAME")
                return
            self.reclaiming = wanted
            protocol.sendLine(f"/nick {wanted}".encode())

    #: Whether the answer to ``/timestamps on`` is still to come.
    asked_timestamps = False

    def serverLine(self, line: bytes) -> None:
        """A line from the server: to the screen model."""
        if self.asked_timestamps and line in _TIMESTAMPS_ANSWERS:
            self.asked_timestamps = False
            return
        self.chat.server_line(line)
        if line.startswith(_SENT_AWAY):
            self.sent_away = line[4:].decode("utf-8", errors="replace")
        protocol = self.protocol
        if protocol is not None and self.reclaiming is not None:
            self._reclaim(protocol, line)
        room = self.chat.just_joined
        if room is not None and protocol is not None:
            # Who is there, for the completion of nicknames.
            protocol.sendLine(f"/who {room}".encode())
        self.refresh()

    def send(self, line: str) -> None:
        """Send a typed line (a quit word ends the client when the server closes)."""
        if self.protocol is None:
            self.chat.note("!!! not connected; the line was not sent")
            self.refresh()
            return
        if is_quit_line(line.encode("utf-8")):
            self.quit_sent = True
        self.protocol.sendLine(line.encode("utf-8"))

    def networkLost(self, reason: Failure) -> None:
        """The connection is gone: reconnect (ClientService does), or end."""
        self.protocol = None
        if self.ended:
            return
        if self.quit_sent:
            self.finish(EXIT_OK)
            return
        if self.sent_away is not None:
            # Kicked or banned: coming straight back would fight the operator.
            self.finish(EXIT_FAILURE, f"closed by server: {self.sent_away}")
            return
        if reason.check(neterror.ConnectionDone) is not None:
            why = "connection closed by server"
        else:
            problem = reason.value or neterror.ConnectionLost()
            why = f"connection lost: {describe_connect_error(problem)}"
        self.rejoin = self.chat.joined_rooms()
        self.rejoin_current = self.chat.current_room() or (
            self.rejoin[-1] if self.rejoin else None
        )
        self.chat.disconnected()
        if not self.reconnect:
            self.finish(EXIT_FAILURE, why)
            return
        self.chat.state = f"disconnected ({why}); reconnecting"
        self.chat.note(f"-!- {why}; reconnecting")
        self.refresh()

    def finish(self, code: int, message: str | None = None) -> None:
        """End the client (the first call wins): stop reconnecting, close."""
        if self.ended:
            return
        self.ended = True
        self.chat.state = "closed"
        self.service.stopService()
        self._finish(code, message)
