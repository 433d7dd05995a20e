"""
The uppercase service (Kurose & Ross's TCPServer.py, done properly): every
line comes back upper-cased, as many lines per connection as the client
sends, with Unicode's full case mapping (``straße`` becomes ``STRASSE``).
"""

from __future__ import annotations

from chatservice.lines import LineFactory, LineProtocol, is_quit_word


class UpperProtocol(LineProtocol):
    """Sends every line back upper-cased; ``exit``/``quit``/``q`` ends."""

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
