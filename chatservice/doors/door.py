"""
What ``chatservice.tap`` needs to know of a door to offer it on the command
line and build it: a :class:`Door` description.  Each door module has one
(``DOOR``); ``tap.DOORS`` lists them, and the options ``--<door> ENDPOINT``
(repeatable, ``none`` to turn it off) and each door's own come from there.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IAddress, IProtocol, IReactorTime

from chatservice.chat.hub import Hub
from chatservice.conn.connection import Authenticator
from chatservice.conn.limits import Limits
from chatservice.doors.operations import Operations

#: The value of an endpoint option that turns its door off.
OFF = "none"


class DoorFactory(Protocol):
    """What a door's factory is to its listening services."""

    #: The door's name, in logs.
    name: str

    def buildProtocol(self, addr: IAddress) -> IProtocol | None:
        """A connection's protocol (``IProtocolFactory``)."""

    def doStart(self) -> None:
        """Started listening (``IProtocolFactory``)."""

    def doStop(self) -> None:
        """Stopped listening (``IProtocolFactory``)."""

    def closeAll(self, message: str | None = None) -> Deferred[None]:
        """Say goodbye to every connection; fires once all are gone."""


class LimitedFactory(DoorFactory, Protocol):
    """A door's factory, with the limits it applies (what a door builds)."""

    @property
    def limits(self) -> Limits:
        """The door's limits (a reload replaces them: ``set_limits``)."""


class Chat(Protocol):
    """The chat every door shares (a :class:`chatservice.service.ChatService`)."""

    @property
    def hub(self) -> Hub: ...

    @property
    def operations(self) -> Operations: ...

    @property
    def authenticator(self) -> Authenticator | None: ...


@dataclass(frozen=True)
class DoorContext:
    """What a door's factory is built from, shared by every door of a service."""

    #: The reactor: clock and network.
    reactor: IReactorTime
    #: The parsed command line (``chatservice.tap.Options``): each door
    #: reads its own options there.
    options: Any
    #: The limits every door shares.
    limits: Limits
    #: The chat: hub, operations, authenticator.
    chat: Chat


@dataclass(frozen=True)
class Door:
    """One door of the chat (or one of the small line services)."""

    #: Its name: ``--<name> ENDPOINT`` on the command line, and in logs.
    name: str
    #: What it is, for ``--help``.
    summary: str
    #: Where it listens unless told (``none``: off unless asked for).
    default_endpoint: str
    #: Builds its factory; the door's endpoints share it.
    build: Callable[[DoorContext], LimitedFactory]
    #: Privileged (the admin console): it listens only where no one else
    #: can reach it in plain text (a UNIX socket, loopback, ``ssl:``)
    #: unless ``--<name>-allow-remote`` is given.
    private: bool = False
    #: It logs people in: ``--credentials`` is required with it.
    needs_credentials: bool = False
    #: Its own options, in ``twisted.python.usage`` form.
    flags: Sequence[Sequence[Any]] = field(default_factory=tuple)
    parameters: Sequence[Sequence[Any]] = field(default_factory=tuple)
    #: Checks its options once parsed (raises ``usage.UsageError``).
    check: Callable[[Any], None] | None = None
    #: Its clients speak first (the server says nothing before their first
    #: bytes): its TCP endpoints have the kernel accept a connection only
    #: once they have come (``--defer-accept``).
    client_speaks_first: bool = False


# Option values, shared by every door's options.


def positive_int(value: str) -> int:
    """A count: a whole number, 0 or more (twistd names the option)."""
    try:
        number = int(value)
    except ValueError:
        number = -1
    if number < 0:
        raise ValueError(f"{value!r} is not a whole number of 0 or more")
    if number > sys.maxsize:
        # A count the C side takes (a deque's maxlen, an SQLite integer)
        # fits in a ssize_t: past it, OverflowError far from the option.
        raise ValueError(f"{value!r} is too large (at most {sys.maxsize})")
    return number


#: The most messages one read of the history may be asked for
#: (``--history-replay``, ``--irc-chathistory-max``): a count the store
#: hands to SQLite must fit in its 64-bit integers, and no replay of more
#: is of use to anyone.
MAX_HISTORY_READ = 100_000


def history_count(value: str) -> int:
    """Messages read at once: a whole number, 0 to :data:`MAX_HISTORY_READ`."""
    try:
        number = int(value)
    except ValueError:
        number = -1
    if not 0 <= number <= MAX_HISTORY_READ:
        raise ValueError(
            f"{value!r} is not a whole number of messages from 0 to {MAX_HISTORY_READ}"
        )
    return number


def seconds(value: str) -> float:
    """A duration in seconds: a finite number, 0 or more."""
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if not (math.isfinite(number) and number >= 0):
        raise ValueError(f"{value!r} is not a number of seconds, 0 or more")
    return number
