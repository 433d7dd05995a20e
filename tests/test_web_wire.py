"""
The web door's WebSocket on wsproto (``chatservice/doors/web/wire.py``):
messages in fragments, the size limit over a whole message, the page's own
close answered, pings from the page, frames that break RFC 6455, and the
one WebSocket object an open connection keeps.
"""

from __future__ import annotations

from typing import Any

from wsproto.connection import Connection as WebSocketConnection

from chatservice.doors.web.protocol import WebMember
from chatservice.doors.web.wire import PING, WebWire, frame
from chatservice.testing import Connection
from tests.test_web import DoorTestCase
from tests.web_client import JSONClient


class FragmentTests(DoorTestCase):
    """A message may come in several frames; the limit is the message's."""

    def test_fragmentedMessage(self) -> None:
        """A message in frames of 7 bytes is read whole, as one request."""
        page = self.member("alice")
        page.client.sendMessage(b'{"type":"ping"}', fragmentSize=7)
        self.network.settle()
        self.assertEqual(page.client.take(), [{"type": "pong"}])

    def test_fragmentedText(self) -> None:
        """A character split between two frames (UTF-8) is read whole."""
        page, other = self.member("alice"), self.member("bob")
        text = '{"type":"say","room":"lobby","text":"caf\u00e9 \u2603"}'
        page.client.sendMessage(text.encode("utf-8"), fragmentSize=3)
        self.network.settle()
        said = [m for m in other.client.take() if m["type"] == "message"]
        self.assertEqual([m["text"] for m in said], ["caf\u00e9 \u2603"])

    def test_fragmentsOverLimit(self) -> None:
        """Frames each under ``--web-max-message`` making a message over it: 1009."""
        page = self.member("alice")
        text = '{"type":"say","room":"lobby","text":"' + "x" * 1100 + '"}'
        page.client.sendMessage(text.encode("utf-8"), fragmentSize=100)
        self.network.settle()
        self.assertTrue(page.closed)
        self.assertEqual(page.client.close_code, 1009)
        self.assertEqual(self.factory.connections, set())

    def test_limitCountsBytes(self) -> None:
        """The limit is in bytes: 400 snowmen (1200 bytes) are over 1024."""
        page = self.member("alice")
        page.client.send(type="say", room="lobby", text="\u2603" * 400)
        self.network.settle()
        self.assertEqual(page.client.close_code, 1009)


class CloseTests(DoorTestCase):
    """Closes started by the page, and frames that break the protocol."""

    def test_pageCloses(self) -> None:
        """The page's close is answered with its code; it quits, others hear it."""
        page, other = self.member("alice"), self.member("bob")
        page.client.sendClose(3001)
        self.network.settle()
        self.assertTrue(page.closed)
        self.assertEqual(page.client.close_code, 3001)
        quits = [m for m in other.client.take() if m["type"] == "quit"]
        self.assertEqual(quits[0]["nick"], "alice")
        self.assertEqual(quits[0]["reason"], "connection closed")
        self.assertEqual(self.factory.connections, {self.server(other)})

    def test_unmaskedFrame(self) -> None:
        """A client frame without a mask is a protocol error: 1002, closed."""
        page = self.member("alice")
        assert page.client.transport is not None
        page.client.transport.write(frame('{"type":"ping"}'))  # a server's frame
        self.network.settle()
        self.assertTrue(page.closed)
        self.assertEqual(page.client.close_code, 1002)
        self.assertEqual(self.hub.nicks, {})

    def test_reservedOpcode(self) -> None:
        """A frame of an opcode RFC 6455 reserves is a protocol error too."""
        page = self.member("alice")
        assert page.client.transport is not None
        page.client.transport.write(b"\x83\x80\x00\x00\x00\x00")  # opcode 3, masked
        self.network.settle()
        self.assertEqual(page.client.close_code, 1002)

    def server(self, connection: Connection[JSONClient]) -> WebMember:
        """The door's member of a connection."""
        wire = connection.pump.serverIO.protocol
        assert isinstance(wire, WebWire) and wire.member is not None
        return wire.member


class PingTests(DoorTestCase):
    """Pings both ways."""

    def test_pageSendsPing(self) -> None:
        """A ping from the page is answered with a pong of the same payload."""
        page = self.member("alice")
        pongs: list[bytes] = []
        self.patch(page.client, "onPong", pongs.append)
        page.client.sendPing(b"are you there")
        self.network.settle()
        self.assertEqual(pongs, [b"are you there"])
        self.assertFalse(page.closed)

    def test_pingFrame(self) -> None:
        """The door's ping is a ping frame without payload (wsproto's framing)."""
        self.assertEqual(PING, b"\x89\x00")


class KeptTests(DoorTestCase):
    """What an open connection keeps: memory per client."""

    def test_handshakeNotKept(self) -> None:
        """
        Once open, the wire keeps wsproto's connection and nothing of the
        handshake (h11's parser, the request); the member keeps no inbox
        while nothing waits in it.
        """
        page = self.member("alice")
        wire: Any = page.pump.serverIO.protocol
        self.assertIsInstance(wire, WebWire)
        self.assertIsInstance(wire._ws, WebSocketConnection)
        self.assertFalse(hasattr(wire, "__dict__"))
        self.assertIsNone(wire.visitor)
        self.assertNotIn("_inbox", vars(wire.member))
