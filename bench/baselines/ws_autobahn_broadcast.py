"""
Baseline: a WebSocket broadcast server on autobahn (Twisted), the library
the web door is built on, written as autobahn's documentation does it: each
broadcast framed once (``prepareMessage``) and sent to every member
(``sendPreparedMessage``), one write per member per message.  It speaks
``ws_chat.py``'s JSON at ``/ws``.

Usage: ``python bench/baselines/ws_autobahn_broadcast.py PORT`` (127.0.0.1).
"""

from __future__ import annotations

import sys
from typing import Any

from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol
from twisted.internet import reactor
from ws_chat import Room

room = Room()


class Broadcast(WebSocketServerProtocol):  # type: ignore[misc]
    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        answer, said = room.received(self, payload.decode("utf-8"))
        if answer is not None:
            self.sendMessage(answer.encode("utf-8"))
        if said is not None:
            prepared = self.factory.prepareMessage(said.encode("utf-8"))
            for member in room.members:
                member.sendPreparedMessage(prepared)

    def onClose(self, wasClean: bool, code: Any, reason: Any) -> None:
        room.left(self)


def main() -> None:
    factory = WebSocketServerFactory()
    factory.protocol = Broadcast
    # No pings or handshake timers (the load test has none either).
    factory.setProtocolOptions(autoPingInterval=0, openHandshakeTimeout=0)
    reactor.listenTCP(int(sys.argv[1]), factory, interface="127.0.0.1")  # type: ignore[attr-defined]
    reactor.run()  # type: ignore[attr-defined]


if __name__ == "__main__":
    main()
