"""Tests for :mod:`chatservice.text`: text from strangers made safe to show."""

from __future__ import annotations

import unicodedata

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from chatservice.chat.text import KEPT_FORMAT, visible


def of_category(*categories: str) -> list[str]:
    """Every code point of these Unicode categories (Python's Unicode data)."""
    return [
        chr(code)
        for code in range(0x110000)
        if unicodedata.category(chr(code)) in categories
    ]


#: Every control, format, line separator and paragraph separator character.
CONTROL_AND_FORMAT = of_category("Cc", "Cf", "Zl", "Zp")

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

    def test_everyControlAndFormatCharacter(self) -> None:
        """
        Every character of categories Cc, Cf, Zl and Zp (taken from the
        Unicode data, so a newer Unicode's are checked too) is shown as a
        visible stand-in made of printable ASCII, except the few format
        characters kept on purpose; none of them is ever left raw by
        accident.
        """
        self.assertGreater(len(CONTROL_AND_FORMAT), 200)
        for char in CONTROL_AND_FORMAT:
            shown = visible(f"a{char}b")
            if char in KEPT_FORMAT:
                self.assertEqual(shown, f"a{char}b")
            else:
                self.assertNotEqual(shown, f"a{char}b", f"U+{ord(char):04X}")
                self.assertTrue(shown.isascii() and shown.isprintable(), shown)

    def test_keptFormatCharacters(self) -> None:
        """
        The format characters kept are few, all of category Cf: the
        zero-width non-joiner and joiner (an emoji family, a Persian word)
        and the visible prepended concatenation marks.
        """
        for char in KEPT_FORMAT:
            self.assertEqual(unicodedata.category(char), "Cf")
        family = "\U0001f468\u200d\U0001f469\u200d\U0001f467"
        self.assertEqual(visible(family), family)
        self.assertEqual(
            visible("\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645"),
            "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645",
        )
        self.assertEqual(visible("\u0600\u0661\u0662"), "\u0600\u0661\u0662")
        self.assertLessEqual(len(KEPT_FORMAT), 16)

    def test_invisibleAndSeparators(self) -> None:
        """
        The characters the review found passing raw are shown by code: the
        zero-width space, the line and paragraph separators (a line break on
        some terminals), the byte order mark and the soft hyphen.
        """
        self.assertEqual(
            visible("a\u200bb\u2028c\u2029d\ufeffe\u00adf"),
            "a<U+200B>b<U+2028>c<U+2029>d<U+FEFF>e<U+00AD>f",
        )
        self.assertEqual(visible("\U000e0041\U000e0042"), "<U+E0041><U+E0042>")

    def test_latin1NotControls(self) -> None:
        """Printable characters right after the C1 range are left alone."""
        self.assertEqual(visible("\u00a0\u00e9\u00ff"), "\u00a0\u00e9\u00ff")

    @settings(max_examples=300, database=None)
    @given(st.text())
    def test_idempotentAndClean(self, text: str) -> None:
        """
        For any text, the result holds no control, format or separator
        character but those kept on purpose, and making it visible again
        changes nothing.
        """
        shown = visible(text)
        for char in shown:
            category = unicodedata.category(char)
            if category in ("Cc", "Cf", "Zl", "Zp"):
                self.assertIn(char, KEPT_FORMAT, repr(shown))
        self.assertEqual(visible(shown), shown)
