"""
A JSON client of the web door for tests: autobahn's WebSocket client
protocol, keeping every message it receives decoded, on an in-memory
connection (:class:`chatservice.testing.Network`) or a real one.
"""

from __future__ import annotations

import json
from typing import Any

from autobahn.twisted.websocket import WebSocketClientFactory, WebSocketClientProtocol
from twisted.internet.interfaces import IReactorTime

from chatservice.doors.web.site import WebSite
from chatservice.testing import Connection, Network


class JSONClient(WebSocketClientProtocol):
    """Keeps what the door sends; sends JSON objects."""

    def __init__(self) -> None:
        super().__init__()
        #: Every message received, decoded (binary ones as bytes).
        self.received: list[Any] = []
        self.opened = False
        #: The close code the server sent, once closed.
        self.close_code: int | None = None

    def onOpen(self) -> None:
        self.opened = True

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        self.received.append(payload if isBinary else json.loads(payload))

    def onClose(self, wasClean: bool, code: int | None, reason: str | None) -> None:
        self.close_code = code

    def send(self, **message: Any) -> None:
        """Send one JSON object (``type=...`` and its fields)."""
        self.sendMessage(json.dumps(message).encode("utf-8"))

    def send_text(self, text: str) -> None:
        """Send a text message as is (not necessarily JSON)."""
        self.sendMessage(text.encode("utf-8"))

    def take(self) -> list[Any]:
        """The messages received since the last call."""
        taken, self.received = self.received, []
        return taken


def client_factory(
    clock: IReactorTime, url: str = "ws://localhost/ws", origin: str | None = None
) -> WebSocketClientFactory:
    """A factory of :class:`JSONClient` whose timers are all off (the tests' clock)."""
    factory = WebSocketClientFactory(url, origin=origin, reactor=clock)
    factory.protocol = JSONClient
    factory.setProtocolOptions(
        openHandshakeTimeout=0,
        closeHandshakeTimeout=0,
        serverConnectionDropTimeout=0,
        autoPingInterval=0,
    )
    return factory


def connect_memory(
    network: Network, site: WebSite, origin: str | None = None
) -> Connection[JSONClient]:
    """A JSON client connected in memory to the door's site (not pumped yet)."""
    protocol = client_factory(network.clock, origin=origin).buildProtocol(None)
    assert isinstance(protocol, JSONClient)
    return network.connect(site, protocol)
