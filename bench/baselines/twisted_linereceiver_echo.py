"""
Baseline: the echo server of the Twisted documentation, a ``LineReceiver``
that answers each line with ``sendLine`` (one ``transport.write`` per line).

``--upper`` answers ``line.decode().upper().encode()`` instead, the same
Unicode work as chatservice's uppercase service.

Usage: ``python bench/baselines/twisted_linereceiver_echo.py PORT [--upper]``
(listens on 127.0.0.1 only).
"""

from __future__ import annotations

import sys

from twisted.internet import protocol, reactor
from twisted.protocols.basic import LineReceiver


class Echo(LineReceiver):
    def lineReceived(self, line: bytes) -> None:
        self.sendLine(line)


class Upper(LineReceiver):
    def lineReceived(self, line: bytes) -> None:
        self.sendLine(line.decode("utf-8").upper().encode("utf-8"))


def main(argv: list[str]) -> None:
    port = int(argv[1])
    factory = protocol.Factory.forProtocol(Upper if "--upper" in argv else Echo)
    reactor.listenTCP(port, factory, interface="127.0.0.1")
    reactor.run()


if __name__ == "__main__":
    main(sys.argv)
