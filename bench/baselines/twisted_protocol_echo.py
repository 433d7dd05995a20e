"""
Baseline: the cheapest Twisted echo there is, a raw ``Protocol`` that writes
back every read as it came (``transport.write(data)``), with no framing.

``--upper`` upper-cases each read as bytes (ASCII only): the least work an
uppercase service can do.

Usage: ``python bench/baselines/twisted_protocol_echo.py PORT [--upper]``
(listens on 127.0.0.1 only).
"""

from __future__ import annotations

import sys

from twisted.internet import protocol, reactor


class Echo(protocol.Protocol):
    def dataReceived(self, data: bytes) -> None:
        self.transport.write(data)


class Upper(protocol.Protocol):
    def dataReceived(self, data: bytes) -> None:
        self.transport.write(data.upper())


def main(argv: list[str]) -> None:
    port = int(argv[1])
    factory = protocol.Factory.forProtocol(Upper if "--upper" in argv else Echo)
    reactor.listenTCP(port, factory, interface="127.0.0.1")
    reactor.run()


if __name__ == "__main__":
    main(sys.argv)
