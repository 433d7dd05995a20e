"""
The echo service: every line comes back as it was, optionally prefixed with
the server's time (the classic ``ctime() + ' ' + data`` exercise).
"""

from __future__ import annotations

import time

from twisted.internet.interfaces import IReactorTime

from chatservice.conn.limits import Limits
from chatservice.doors.answers import (
    crlf,
    has_quit_line,
    is_quit_word,
    plain_lines,
)
from chatservice.doors.door import Door, DoorContext
from chatservice.doors.line import LineFactory, LineProtocol


class EchoProtocol(LineProtocol):
    """Sends every line back byte for byte; ``exit``/``quit``/``q`` ends."""

    factory: EchoFactory
    fast_answers = True
    first_line_registers = True
    late_message = "no line within {timeout:g} s; closing connection"

    def answerLines(self, lines: bytes) -> bytes | None:
        """Every line back at once, ``\r\n``-terminated, unless one quits."""
        if self.factory.timestamp:
            return None
        if plain_lines(lines):
            return lines  # the usual case, one regex pass
        if has_quit_line(lines):
            return None
        return crlf(lines)

    def lineReceived(self, line: bytes) -> None:
        # Bytes, not text: an echo returns even invalid UTF-8 unchanged.
        if is_quit_word(line):
            self.close("Goodbye.")
        elif self.factory.timestamp:
            stamp = time.ctime(self.factory.clock.seconds()).encode("ascii")
            self.sendLine(stamp + b" " + line)
        else:
            self.sendLine(line)


class EchoFactory(LineFactory):
    """Builds :class:`EchoProtocol` connections."""

    protocol = EchoProtocol
    name = "echo"

    def __init__(
        self,
        limits: Limits | None = None,
        clock: IReactorTime | None = None,
        *,
        timestamp: bool = False,
    ) -> None:
        super().__init__(limits, clock)
        self.timestamp = timestamp


def _build(context: DoorContext) -> EchoFactory:
    return EchoFactory(
        context.limits,
        context.reactor,
        timestamp=bool(context.options["echo-timestamp"]),
    )


DOOR = Door(
    name="echo",
    summary="the echo service",
    default_endpoint="tcp:5001",
    build=_build,
    client_speaks_first=True,
    flags=[
        ["echo-timestamp", None, "Prefix every echoed line with the server's time."]
    ],
)
