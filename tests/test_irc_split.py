"""
Texts too long for one IRC message: what the IRC door sends stays within
512 bytes a message (CR LF included, tags not), however long the text and
the sender's prefix, by cutting the text into several messages that join
back into it (``chatservice.doors.irc.render``: ``pieces``, ``said_lines``).
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from chatservice.chat import events
from chatservice.doors.irc.message import MAX_MESSAGE, parse, split_tags
from chatservice.doors.irc.render import Style, pieces, said_lines
from tests.test_irc import SERVER, IRCCase


def message_bytes(line: str) -> int:
    """Bytes of a sent line without its tags, its CR LF counted."""
    return len(split_tags(line.removesuffix("\r\n"))[1].encode("utf-8")) + 2


class PiecesTests(SynchronousTestCase):
    """Cutting a text into pieces of at most so many bytes."""

    def test_shortTextWhole(self) -> None:
        """A text that fits is one piece, itself."""
        self.assertEqual(pieces("hello", 100), ["hello"])

    def test_cutAtSpace(self) -> None:
        """A piece ends after a space in its second half when there is one."""
        text = "word " * 40  # 200 bytes
        cut = pieces(text, 64)
        self.assertEqual("".join(cut), text)
        self.assertTrue(all(piece.endswith(" ") for piece in cut[:-1]), cut)
        self.assertTrue(all(len(piece.encode()) <= 64 for piece in cut))

    def test_neverInsideACharacter(self) -> None:
        """Without spaces, a piece ends between two characters, never inside one."""
        text = "é" * 100 + "€" * 100 + "😀" * 50
        cut = pieces(text, 65)
        self.assertEqual("".join(cut), text)
        self.assertTrue(all(len(piece.encode()) <= 65 for piece in cut))

    @given(st.text(min_size=0, max_size=2000), st.integers(min_value=64, max_value=600))
    def test_joinedBack(self, text: str, budget: int) -> None:
        """Any text, cut at any budget, joins back into itself, each piece within it."""
        cut = pieces(text, budget)
        self.assertEqual("".join(cut), text)
        self.assertTrue(all(len(piece.encode("utf-8")) <= budget for piece in cut))
        self.assertTrue(all(cut) or cut == [""])


class SaidLinesTests(SynchronousTestCase):
    """A text said as IRC messages."""

    prefix = "n" * 30 + "!" + "n" * 30 + "@" + "irc.example.org"

    def test_withinTheLimit(self) -> None:
        """
        Every message is at most 512 bytes with its CR LF, tags left out;
        the first has the msgid, the others only the time; the texts join
        back into what was said.
        """
        text = "x" * 1800
        lines = said_lines(
            self.prefix, "PRIVMSG", "#room", text, False, "msgid=a;time=t", "time=t"
        )
        self.assertGreater(len(lines), 3)
        self.assertTrue(all(message_bytes(line) <= MAX_MESSAGE for line in lines))
        self.assertEqual(max(message_bytes(line) for line in lines), MAX_MESSAGE)
        parsed = [parse(line) for line in lines]
        self.assertEqual(parsed[0].tags, {"msgid": "a", "time": "t"})
        self.assertEqual(
            [m.tags for m in parsed[1:]], [{"time": "t"}] * (len(lines) - 1)
        )
        self.assertEqual("".join(m.params[1] for m in parsed), text)

    def test_actionEachPiece(self) -> None:
        """A long action is several actions, each a whole CTCP ``ACTION``."""
        text = "waves " * 200
        lines = said_lines(self.prefix, "PRIVMSG", "#room", text, True, "", "")
        bodies = [parse(line).params[1] for line in lines]
        self.assertTrue(
            all(b.startswith("\x01ACTION ") and b.endswith("\x01") for b in bodies)
        )
        self.assertTrue(all(message_bytes(line) <= MAX_MESSAGE for line in lines))
        self.assertEqual("".join(b[8:-1] for b in bodies), text)

    def test_styleKeepsOneLineWhenItFits(self) -> None:
        """A message that fits is rendered as one line, as before."""
        style = Style(SERVER, server_time=True, msgid=True)
        said = events.RoomMessage("a", "bob", "hi", id="i1", at=1.7e9, door="chat")
        lines = style.render(said).split("\r\n")
        self.assertEqual(len(lines), 2)  # the line and what follows its CR LF
        self.assertEqual(parse(lines[0]).tags["msgid"], "i1")


class RelayedTests(IRCCase):
    """Long texts from the other doors, and relayed IRC ones, on the wire."""

    def raw(self, client_lines: list[str]) -> list[str]:
        return [line for line in client_lines if " PRIVMSG " in line]

    def test_nativeLongLine(self) -> None:
        """
        A native user's 1500-byte line reaches an IRC member as several
        PRIVMSGs, each within 512 bytes, that join back into it.
        """
        irc = self.registered("ircy")
        irc.send("JOIN #lobby")
        irc.take()
        native = self.native_client("nat")
        irc.take()
        text = "long " * 300
        native.client.sendLine(text.strip().encode())
        native.push()
        self.network.settle()
        lines = self.raw(irc.connection.client.take())
        self.assertGreater(len(lines), 2)
        self.assertTrue(all(message_bytes(line) <= MAX_MESSAGE for line in lines))
        self.assertEqual("".join(parse(line).params[1] for line in lines), text.strip())

    def test_relayedIrcMessage(self) -> None:
        """
        A 510-byte message an IRC client sent, relayed with the sender's
        prefix in front, still reaches the others within 512 bytes a
        message, and whole.
        """
        alice, bob = self.registered("alice"), self.registered("bob")
        for client in (alice, bob):
            client.send("JOIN #a")
        alice.take()
        bob.take()
        head = "PRIVMSG #a :"
        text = "z" * (510 - len(head))
        alice.send(head + text)
        self.network.settle()
        lines = self.raw(bob.connection.client.take())
        self.assertEqual(len(lines), 2)
        self.assertTrue(all(message_bytes(line) <= MAX_MESSAGE for line in lines))
        self.assertEqual("".join(parse(line).params[1] for line in lines), text)
