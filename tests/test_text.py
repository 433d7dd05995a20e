"""Tests for :mod:`chatservice.text`: text from strangers made safe to show."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from chatservice.chat.text import visible

#: The bidirectional controls that must be shown, not obeyed.
BIDI = "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"


class VisibleTests(SynchronousTestCase):
    """visible(): control characters, escapes and bidi marks made visible."""

    def test_plainUnchanged(self) -> None:
        """Ordinary text in any script, emoji and punctuation pass unchanged."""
        for text in (
            "hello, world!",
            "张三 Иван Ελένη",
            "caf\u00e9 \u2603 😀",
            "^[ ok",
            "",
        ):
            self.assertEqual(visible(text), text)

    def test_escapeSequence(self) -> None:
        """An ANSI escape sequence arrives in caret notation, inert."""
        self.assertEqual(visible("\x1b[31mred\x1b[0m"), "^[[31mred^[[0m")
        self.assertEqual(visible("\x1b]0;title\x07"), "^[]0;title^G")

    def test_c0Controls(self) -> None:
        """Every C0 control is shown as ``^`` and a letter, tab and CR too."""
        shown = visible("".join(chr(code) for code in range(0x20)))
        self.assertEqual(shown, "".join("^" + chr(code + 0x40) for code in range(0x20)))
        self.assertEqual(visible("a\tb\rc\nd\x00"), "a^Ib^Mc^Jd^@")

    def test_delete(self) -> None:
        """DEL is shown as ``^?``."""
        self.assertEqual(visible("x\x7fy"), "x^?y")

    def test_c1Controls(self) -> None:
        """C1 controls (0x80 to 0x9F, like the one-byte CSI) are shown by code."""
        for code in range(0x80, 0xA0):
            self.assertEqual(visible(chr(code)), f"<U+{code:04X}>")
        self.assertEqual(visible("\x9b31m"), "<U+009B>31m")

    def test_bidiControls(self) -> None:
        """Bidirectional marks, embeddings, overrides and isolates are shown."""
        for char in BIDI:
            self.assertEqual(visible(f"a{char}b"), f"a<U+{ord(char):04X}>b")
        self.assertEqual(visible("\u202etxt.exe"), "<U+202E>txt.exe")

    def test_latin1NotControls(self) -> None:
        """Printable characters right after the C1 range are left alone."""
        self.assertEqual(visible("\u00a0\u00e9\u00ff"), "\u00a0\u00e9\u00ff")

    @settings(max_examples=300, database=None)
    @given(st.text())
    def test_idempotentAndClean(self, text: str) -> None:
        """
        For any text, the result holds no control or bidi character, and
        making it visible again changes nothing.
        """
        shown = visible(text)
        for char in shown:
            code = ord(char)
            self.assertFalse(code < 0x20 or 0x7F <= code <= 0x9F, repr(shown))
            self.assertNotIn(char, BIDI)
        self.assertEqual(visible(shown), shown)
