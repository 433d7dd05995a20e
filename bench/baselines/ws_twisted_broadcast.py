"""
Baseline: a WebSocket broadcast server on Twisted's own
``twisted.web.websocket`` (Twisted 26.10, wsproto underneath): a
``WebSocketResource`` at ``/ws`` of a ``Site``, each broadcast sent to
every member with ``sendTextMessage`` (framed per member).  It speaks
``ws_chat.py``'s JSON; connections set ``TCP_NODELAY`` as the door's do.

Usage: ``python bench/baselines/ws_twisted_broadcast.py PORT`` (127.0.0.1).
"""

from __future__ import annotations

import sys
from typing import Any

from twisted.internet import reactor
from twisted.web.resource import Resource
from twisted.web.server import Site
from twisted.web.websocket import WebSocketResource
from ws_chat import Room

room = Room()


class Broadcast:
    transport: Any = None

    def negotiationStarted(self, transport: Any) -> None:
        self.transport = transport

    def negotiationFinished(self) -> None:
        pass

    def textMessageReceived(self, text: str) -> None:
        answer, said = room.received(self, text)
        if answer is not None:
            self.transport.sendTextMessage(answer)
        if said is not None:
            for member in room.members:
                member.transport.sendTextMessage(said)

    def bytesMessageReceived(self, data: bytes) -> None:
        pass

    def pongReceived(self, payload: bytes) -> None:
        pass

    def connectionLost(self, reason: Any) -> None:
        room.left(self)


class Factory:
    def buildProtocol(self, request: Any) -> Broadcast:
        request.channel.transport.setTcpNoDelay(True)
        return Broadcast()


def main() -> None:
    root = Resource()
    root.putChild(b"ws", WebSocketResource(Factory()))
    reactor.listenTCP(int(sys.argv[1]), Site(root), interface="127.0.0.1")  # type: ignore[attr-defined]
    reactor.run()  # type: ignore[attr-defined]


if __name__ == "__main__":
    main()
