"""
The uppercase service (Kurose & Ross's TCPServer.py, done properly): every
line comes back upper-cased, as many lines per connection as the client
sends, with Unicode's full case mapping (``straße`` becomes ``STRASSE``).
"""

from __future__ import annotations

from chatservice.doors.answers import (
    crlf,
    has_quit_line,
    is_quit_word,
    plain_lines,
)
from chatservice.doors.door import Door, DoorContext
from chatservice.doors.line import LineFactory, LineProtocol


class UpperProtocol(LineProtocol):
    """Sends every line back upper-cased; ``exit``/``quit``/``q`` ends."""

    fast_answers = True
    first_line_registers = True
    late_message = "no line within {timeout:g} s; closing connection"

    def answerLines(self, lines: bytes) -> bytes | None:
        """
        Every line upper-cased at once (case mapping does not depend on the
        neighbouring lines), unless one quits or is not UTF-8.
        """
        if lines.isascii() and plain_lines(lines):
            return lines.upper()  # the usual case: one regex pass, then C
        if has_quit_line(lines):
            return None
        if lines.isascii():
            return crlf(lines.upper())  # bytes.upper() is right for ASCII
        try:
            text = lines.decode("utf-8")
        except UnicodeDecodeError:
            return None
        return text.upper().replace("\r\n", "\n").replace("\n", "\r\n").encode()

    def lineReceived(self, line: bytes) -> None:
        if is_quit_word(line):
            self.close("Goodbye.")
        else:
            super().lineReceived(line)

    def textReceived(self, text: str) -> None:
        self.sendText(text.upper())


class UpperFactory(LineFactory):
    """Builds :class:`UpperProtocol` connections."""

    protocol = UpperProtocol
    name = "upper"


def _build(context: DoorContext) -> UpperFactory:
    return UpperFactory(context.limits, context.reactor)


DOOR = Door(
    name="upper",
    summary="the uppercase service",
    default_endpoint="tcp:12000",
    build=_build,
    client_speaks_first=True,
)
