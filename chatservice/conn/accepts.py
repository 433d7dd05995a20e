"""
How many connections a listening port accepts in one reactor turn
(``--max-accepts-per-turn``, ``docs/limits.rst``, *Connection storms*).

Twisted's stream port (``tcp.Port``: the ``tcp:``, ``tcp6:``, ``ssl:`` and
``unix:`` endpoints and sockets from systemd) accepts up to
``numberAccepts`` connections each time its socket is readable, starting at
100 and growing by 20 each time a batch is full.  A storm of thousands of
connections is then taken in a few long turns, each of which builds,
admits and evicts hundreds of strangers before the reactor reads anything
else: the members' chat waits for them.  Capping the batch spreads the
storm over short turns, the members' reads in between; the kernel's listen
backlog (``tap.DEFAULT_BACKLOG``) holds what waits.

The cap is read from the door's limits at every batch, so a reload
(``set_limits``) applies it at the next one.

A door whose clients speak first (echo, uppercase, the web door's HTTP,
any TLS endpoint's handshake) has the kernel accept a connection only once
its first bytes have come (``--defer-accept``, Linux's
``TCP_DEFER_ACCEPT``): a storm of connections that stay silent waits in the
kernel, at no cost to the server, instead of in the accept queue in front
of the clients that speak.
"""

from __future__ import annotations

import math
import socket
from collections.abc import Callable

from twisted.internet import tcp
from twisted.internet.interfaces import IListeningPort

#: ``--defer-accept``: as long as a stranger has to register
#: (``--registration-timeout``, ``--nick-timeout``), which a connection
#: silent that long would not have done anyway.
DEFAULT_DEFER_ACCEPT = 20.0
#: The most ``--defer-accept`` takes: an hour is far beyond any deadline
#: to register, and a larger number does not fit the socket option's C
#: ``int`` (``setsockopt`` raised at start-up, the port already open).
MAX_DEFER_ACCEPT = 3600.0


class AcceptCap:
    """
    Keeps a listening port's accept batch at most ``cap()`` connections
    (0: Twisted's own growth, uncapped).  It stands in for the port's
    ``doRead``, what the reactor calls when the socket is readable: Twisted
    creates the port inside the endpoint, so a subclass could not be chosen
    for every kind of endpoint.
    """

    def __init__(self, port: tcp.Port, cap: Callable[[], int]) -> None:
        self.port = port
        self.cap = cap
        self._accept = port.doRead
        # The instance's attribute wins over the class's method.
        port.doRead = self.doRead  # type: ignore[method-assign]

    def doRead(self) -> None:
        """Accept one batch of at most ``cap()`` connections."""
        cap = self.cap()
        if cap > 0 and self.port.numberAccepts > cap:
            self.port.numberAccepts = cap
        self._accept()


def cap_accepts(port: IListeningPort, cap: Callable[[], int]) -> AcceptCap | None:
    """
    Cap ``port``'s accepts per turn when it is one of Twisted's stream ports
    (:class:`AcceptCap`); ``None`` for any other port, as it is.
    """
    if not isinstance(port, tcp.Port):
        return None
    return AcceptCap(port, cap)


def defer_accepts(port: IListeningPort, seconds: float) -> bool:
    """
    Have the kernel hold each new connection to ``port`` until its first
    bytes arrive, for up to about ``seconds`` (``TCP_DEFER_ACCEPT``, which
    Linux rounds up to its ``SYN-ACK`` retransmissions: 1, 3, 7, 15, 31, 63,
    127 s, then steps of 120 s; a connection silent for longer is accepted
    then, or dropped at the last retransmission).  ``False`` where it does
    not apply: no seconds, a port that is not one of Twisted's stream ports
    over TCP (a UNIX socket), or a system without the option.
    """
    option = getattr(socket, "TCP_DEFER_ACCEPT", None)
    if seconds <= 0 or option is None or not isinstance(port, tcp.Port):
        return False
    listening = getattr(port, "socket", None)
    if listening is None or listening.family not in (socket.AF_INET, socket.AF_INET6):
        return False
    listening.setsockopt(socket.IPPROTO_TCP, option, math.ceil(seconds))
    return True
