"""
The attack's fresh clients (``bench/fresh.py``): what each says at its
door and how it reads being let in or refused, on the servers' own words.
"""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

BENCH = Path(__file__).resolve().parent.parent / "bench"
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))

# bench/ is scripts, not a package: import them as bench/run.py does.
fresh: Any = importlib.import_module("fresh")


def unmasked(frame: bytes) -> bytes:
    """The payload of one masked client frame under 126 bytes."""
    length = frame[1] & 0x7F
    mask, body = frame[2:6], frame[6 : 6 + length]
    return bytes(byte ^ mask[i % 4] for i, byte in enumerate(body))


class DialogueTests(SynchronousTestCase):
    """:class:`fresh.Dialogue` at each door."""

    def test_chat(self) -> None:
        """The nickname; the greeting is not yet in, ``--- you are`` is."""
        dialogue = fresh.Dialogue("chat", "f0000001")
        self.assertEqual(dialogue.hello(), b"f0000001\r\n")
        self.assertEqual(dialogue.read(b"Welcome! Choose a nickname:\r\n"), (None, b""))
        self.assertEqual(dialogue.read(b"--- you are f0000001; you"), (True, b""))

    def test_echoRefused(self) -> None:
        """A line; a ``!!!`` line is a refusal, quoted."""
        dialogue = fresh.Dialogue("echo", "f0000002")
        self.assertEqual(dialogue.hello(), b"hello f0000002\r\n")
        admitted, said = dialogue.read(b"!!! server full\r\nmore")
        self.assertEqual((admitted, said), (False, b"!!! server full\r"))
        echoed = fresh.Dialogue("echo", "f0000002")
        self.assertEqual(echoed.read(b"hello f0000002\r\n"), (True, b""))

    def test_irc(self) -> None:
        """``NICK`` and ``USER``; in at ``001``, refused at ``ERROR``."""
        dialogue = fresh.Dialogue("irc", "f0000003")
        self.assertEqual(
            dialogue.hello(), b"NICK f0000003\r\nUSER f0000003 0 * :fresh\r\n"
        )
        self.assertEqual(dialogue.read(b":chat 001 f0000003 :Welcome\r\n"), (True, b""))
        refused = fresh.Dialogue("irc", "f0000003")
        admitted, _said = refused.read(b"ERROR :Closing Link: 127.3.0.1 (full)\r\n")
        self.assertIs(admitted, False)

    def test_webUpgradeThenNick(self) -> None:
        """
        The upgrade; at ``101``, a masked ``nick`` message; in at
        ``registered``, even when the 101 and the frame come in pieces.
        """
        dialogue = fresh.Dialogue("web", "f0000004")
        self.assertIn(b"Upgrade: websocket", dialogue.hello())
        self.assertEqual(dialogue.read(b"HTTP/1.1 101 Switching"), (None, b""))
        admitted, reply = dialogue.read(b" Protocols\r\nUpgrade: websocket\r\n\r\n")
        self.assertIsNone(admitted)
        self.assertEqual(
            json.loads(unmasked(reply)), {"type": "nick", "nick": "f0000004"}
        )
        self.assertEqual(dialogue.read(b'\x81\x20{"type": "reg'), (None, b""))
        self.assertEqual(dialogue.read(b'istered", "nick": "f0000004"}'), (True, b""))

    def test_webRefused(self) -> None:
        """A status other than 101 is a refusal, quoted."""
        dialogue = fresh.Dialogue("web", "f0000005")
        admitted, said = dialogue.read(
            b"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\n\r\nfull"
        )
        self.assertEqual((admitted, said), (False, b"HTTP/1.1 503 Service Unavailable"))
