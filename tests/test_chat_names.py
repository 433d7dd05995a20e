# ruff: noqa: RUF001 - look-alike and fullwidth letters on purpose
"""
Tests for :mod:`chatservice.chat.names`: which nicknames and room names are
allowed, how they are shown, and when two are the same.
"""

from __future__ import annotations

import itertools
import string
import unicodedata

from twisted.trial.unittest import SynchronousTestCase

from chatservice.chat import names
from chatservice.chat.errors import ChatError, InvalidNick
from chatservice.chat.names import (
    MAX_NICK_LENGTH,
    MAX_ROOM_LENGTH,
    check_nick,
    check_room,
    fold,
    skeleton,
)
from chatservice.doors.native.render import render_error


class FoldTests(SynchronousTestCase):
    """fold: the form in which two names compare equal."""

    def test_case(self) -> None:
        """Case does not matter, in any script."""
        self.assertEqual(fold("Alice"), fold("ALICE"))
        self.assertEqual(fold("Иван"), fold("иВАН"))
        self.assertEqual(fold("ΕΛΈΝΗ"), fold("ελένη"))

    def test_width(self) -> None:
        """Fullwidth and halfwidth forms fold to the ordinary ones."""
        self.assertEqual(fold("ａｌｉｃｅ"), "alice")
        self.assertEqual(fold("ＡＬＩＣＥ"), "alice")
        self.assertEqual(fold("ｱｲｳ"), "アイウ")

    def test_compatibility(self) -> None:
        """Ligatures and composed/decomposed accents fold alike."""
        self.assertEqual(fold("ﬁona"), "fiona")
        self.assertEqual(fold("Zoe\u0308"), fold("Zo\u00eb"))

    def test_casefoldNotLower(self) -> None:
        """Folding is full case folding (``ß`` matches ``SS``), not lower()."""
        self.assertEqual(fold("Straße"), fold("STRASSE"))

    def test_differentNames(self) -> None:
        """Names that differ in letters stay different."""
        self.assertNotEqual(fold("alice"), fold("alicia"))
        self.assertNotEqual(fold("张三"), fold("张四"))


#: Unicode's Default_Ignorable_Code_Point ranges (DerivedCoreProperties.txt,
#: Unicode 14 to 16): what a renderer may show as nothing at all.
DEFAULT_IGNORABLE = [
    (0x00AD, 0x00AD), (0x034F, 0x034F), (0x061C, 0x061C), (0x115F, 0x1160),
    (0x17B4, 0x17B5), (0x180B, 0x180F), (0x200B, 0x200F), (0x202A, 0x202E),
    (0x2060, 0x206F), (0x3164, 0x3164), (0xFE00, 0xFE0F), (0xFEFF, 0xFEFF),
    (0xFFA0, 0xFFA0), (0xFFF0, 0xFFF8), (0x1BCA0, 0x1BCA3), (0x1D173, 0x1D17A),
    (0xE0000, 0xE0FFF),
]  # fmt: skip


def default_ignorable() -> list[str]:
    """Every assigned default-ignorable code point."""
    return [
        chr(code)
        for first, last in DEFAULT_IGNORABLE
        for code in range(first, last + 1)
        if unicodedata.category(chr(code)) != "Cn"
    ]


def named(*words: str) -> list[str]:
    """Every character whose Unicode name contains one of ``words``."""
    return [
        chr(code)
        for code in range(0x110000)
        if any(word in unicodedata.name(chr(code), "") for word in words)
    ]


class SkeletonTests(SynchronousTestCase):
    """skeleton: what a name looks like on screen."""

    def test_cyrillic(self) -> None:
        """Cyrillic letters that look Latin have the Latin skeleton."""
        self.assertEqual(skeleton("аӏісе"), "alice")
        self.assertEqual(skeleton("саре"), skeleton("cape"))
        self.assertEqual(skeleton("РОР"), "pop")

    def test_greek(self) -> None:
        """Greek letters that look Latin have the Latin skeleton."""
        self.assertEqual(skeleton("ορα"), "opa")
        self.assertEqual(skeleton("κατε"), "kate")

    def test_fullwidth(self) -> None:
        """Full-width forms, Latin or look-alike, look like the ordinary ones."""
        self.assertEqual(skeleton("ｃａｐｅ"), skeleton("саре"))
        self.assertEqual(skeleton("ＡＬＩＣＥ"), "alice")

    def test_differentStaysDifferent(self) -> None:
        """Letters that do not look alike keep names apart."""
        self.assertNotEqual(skeleton("Иван"), skeleton("ivan"))
        self.assertNotEqual(skeleton("alice"), skeleton("alicia"))


class CheckNickTests(SynchronousTestCase):
    """check_nick: what a nickname may be."""

    def assertRefused(self, wanted: str, message: str) -> None:
        error = self.assertRaises(ChatError, check_nick, wanted)
        self.assertEqual(render_error(error), message, wanted)

    def test_anyScript(self) -> None:
        """Nicknames of one script are accepted, whatever the script."""
        for nick in (
            "alice",
            "张三",
            "Иван",
            "Ελένη",
            "김민준",
            "さくら",
            "محمد",
            "דוד",
            "देवनागरी",
            "สมชาย",
            "François",
            "ａｌｉｃｅ",
        ):
            self.assertEqual(check_nick(nick), nick)

    def test_japanese(self) -> None:
        """
        Japanese names mixing kanji and kana, with the long-vowel mark ``ー``
        or the iteration mark ``々``, are one script.
        """
        for nick in ("佐々木", "ラーメン", "東京タワー", "山田はなこ"):
            self.assertEqual(check_nick(nick), nick)

    def test_mixedScripts(self) -> None:
        """A nickname mixing scripts is refused, naming them."""
        self.assertRefused(
            "p\u0430ypal", "a nickname uses one script, not a mix (Cyrillic and Latin)"
        )
        self.assertRefused(
            "\u03b1lice", "a nickname uses one script, not a mix (Greek and Latin)"
        )
        self.assertRefused(
            "张alice", "a nickname uses one script, not a mix (Cjk and Latin)"
        )

    def test_digitsAndPunctuation(self) -> None:
        """Digits, ``_`` and ``-`` may follow the first letter, in any script."""
        for nick in ("bob2", "bob_the-builder", "Иван_2", "_hidden", "x-1-2"):
            self.assertEqual(check_nick(nick), nick)

    def test_combiningMarks(self) -> None:
        """Combining marks are allowed after a letter; the result is shown NFC."""
        self.assertEqual(check_nick("Zoe\u0308"), "Zo\u00eb")

    def test_defaultIgnorableRefused(self) -> None:
        """
        No default-ignorable code point (Unicode's list, not ours) is part of
        a nickname, at its end (an invisible suffix: ``alice`` + U+034F next
        to ``alice``), inside it, or alone: each is refused, naming it by its
        code point.
        """
        ignorable = default_ignorable()
        self.assertIn("\u034f", ignorable)
        self.assertIn("\ufe00", ignorable)
        for char in ignorable:
            for wanted in (f"alice{char}", f"al{char}ice", char):
                error = self.assertRaises(ChatError, check_nick, wanted)
                shown = render_error(error)
                self.assertNotIn(char, shown, wanted)

    def test_invisibleSuffixNamed(self) -> None:
        """
        The refusal of an invisible suffix says which character it is and
        why: it cannot be seen, so it is named by its code point.
        """
        self.assertRefused(
            "alice\u034f", "a nickname cannot contain U+034F (an invisible character)"
        )
        self.assertRefused(
            "alice\U000e0100",
            "a nickname cannot contain U+E0100 (an invisible character)",
        )

    def test_fillersRefused(self) -> None:
        """
        Every filler (the Hangul fillers U+3164, U+115F, U+1160, U+FFA0 and
        any other character Unicode names a filler) and every variation
        selector is refused, alone or after a letter; so is a lone Hangul
        jamo (``ㅋ``), which RFC 8266 refuses as a conjoining jamo.
        """
        fillers = named("FILLER", "VARIATION SELECTOR")
        for code in (0x3164, 0x115F, 0x1160, 0xFFA0, 0xFE0F, 0xE01EF):
            self.assertIn(chr(code), fillers)
        for char in fillers:
            for wanted in (char, f"x{char}", f"{char}x"):
                self.assertRaises(ChatError, check_nick, wanted)
        self.assertRefused(
            "ㅋㅋ",
            "a nickname cannot contain U+314B (a conjoining Hangul jamo)",
        )
        self.assertRefused(
            "\u3164",
            "a nickname cannot contain U+3164 (a filler)",
        )

    def test_loneCombiningMarksRefused(self) -> None:
        """
        A combining mark (every character of categories Mn, Mc and Me) that
        follows no letter, after ``_``, ``-`` or a digit, is refused; after a
        letter, the same marks are letters' accents.
        """
        marks = [
            chr(code)
            for code in range(0x110000)
            if unicodedata.category(chr(code)) in ("Mn", "Mc", "Me")
        ]
        self.assertGreater(len(marks), 2000)
        for mark in marks:
            for wanted in (f"_{mark}", f"a-{mark}", f"a1{mark}"):
                self.assertRaises(ChatError, check_nick, wanted)
        self.assertRefused("_\u0301", "a combining mark follows a letter (not U+0301)")
        self.assertEqual(check_nick("e\u0302\u0301"), "\u1ebf")

    def test_plainNicknamesAsTheFullCheckSays(self) -> None:
        """
        Nicknames of ASCII letters, digits, _ and - (the ones the short cut
        of check_nick takes) are exactly the ones the full checks accept
        unchanged: every such name of one or two characters, every 13th of
        three, and longer ones; a name with any other character still gets
        the full checks.
        """
        alphabet = string.ascii_letters + string.digits + "_-"
        short = [
            "".join(c) for n in (1, 2) for c in itertools.product(alphabet, repeat=n)
        ]
        three = ["".join(c) for c in itertools.product(alphabet, repeat=3)][::13]
        longer = ["r00042", "Alice_-", "_9", "x" * MAX_NICK_LENGTH]
        for name in short + three + longer:
            try:
                expected: str | None = names._check_any_nick(name)
            except InvalidNick:
                expected = None
            try:
                found: str | None = check_nick(name)
            except InvalidNick:
                found = None
            self.assertEqual(found, expected, name)
        self.assertRaises(InvalidNick, check_nick, "ab\u200bc")

    def test_strip(self) -> None:
        """Blanks around a nickname are dropped."""
        self.assertEqual(check_nick("  alice \t"), "alice")

    def test_empty(self) -> None:
        """An empty or blank nickname is refused."""
        self.assertRefused("", "a nickname cannot be empty")
        self.assertRefused(" \t ", "a nickname cannot be empty")

    def test_length(self) -> None:
        """At most 24 characters."""
        self.assertEqual(MAX_NICK_LENGTH, 24)
        self.assertEqual(check_nick("x" * 24), "x" * 24)
        self.assertRefused("x" * 25, "a nickname has at most 24 characters")
        self.assertEqual(check_nick("张" * 24), "张" * 24)
        self.assertRefused("张" * 25, "a nickname has at most 24 characters")

    def test_firstCharacter(self) -> None:
        """A nickname starts with a letter or ``_``."""
        for wanted in ("1abc", "-abc", "\u0308abc", "٣abc"):
            self.assertRefused(wanted, "a nickname starts with a letter or _")

    def test_forbiddenCharacters(self) -> None:
        """
        Spaces, the markers of the line protocol (``< > * #``), other
        punctuation, symbols and every control or format character are
        refused, shown escaped in the message.
        """
        for char in " <>*#!@.:/\\'\"\x00\x1b\x7f\x9b\u200b\u200e\u202e\u2066\ufeff😀":
            error = self.assertRaises(ChatError, check_nick, f"ab{char}c")
            self.assertEqual(
                render_error(error),
                f"a nickname has letters, digits, _ and - only (not {char!r})",
            )
            self.assertNotIn("\x1b", render_error(error))

    def test_nfc(self) -> None:
        """
        The nickname is shown in NFC, so that the same name typed composed or
        decomposed is shown the same.
        """
        decomposed = unicodedata.normalize("NFD", "Ελένη")
        self.assertNotEqual(decomposed, "Ελένη")
        self.assertEqual(check_nick(decomposed), "Ελένη")


class CheckRoomTests(SynchronousTestCase):
    """check_room: what a room name may be."""

    def assertRefused(self, wanted: str, message: str) -> None:
        error = self.assertRaises(ChatError, check_room, wanted)
        self.assertEqual(render_error(error), message, wanted)

    def test_hashOptional(self) -> None:
        """A leading ``#`` is not part of the name; blanks are dropped."""
        self.assertEqual(check_room("#games"), "games")
        self.assertEqual(check_room("games"), "games")
        self.assertEqual(check_room("  #games  "), "games")

    def test_allowed(self) -> None:
        """Letters of any script (mixed too), digits, ``_``, ``-`` and ``.``."""
        for name in ("lobby", "v1.2", "a_b-c", "чат", "聊天室", "café-Ελλάδα", "1"):
            self.assertEqual(check_room(name), name)

    def test_empty(self) -> None:
        """An empty name, or ``#`` alone, is refused."""
        self.assertRefused("", "a room name cannot be empty")
        self.assertRefused("#", "a room name cannot be empty")
        self.assertRefused("  # ", "a room name cannot be empty")

    def test_length(self) -> None:
        """At most 32 characters, not counting the ``#``."""
        self.assertEqual(MAX_ROOM_LENGTH, 32)
        self.assertEqual(check_room("#" + "r" * 32), "r" * 32)
        self.assertRefused("r" * 33, "a room name has at most 32 characters")

    def test_invisibleRefused(self) -> None:
        """
        A room name that would look like another or like nothing is refused
        as a nickname would be: with a default-ignorable code point (every
        one of Unicode's list) or a filler anywhere, or a combining mark on
        no letter (``1`` + U+0301).
        """
        for char in default_ignorable() + named("FILLER"):
            for wanted in (f"lobby{char}", f"lo{char}bby"):
                self.assertRaises(ChatError, check_room, wanted)
        self.assertRefused(
            "lobby\ufe0f", "a room name cannot contain U+FE0F (an invisible character)"
        )
        self.assertRefused("\u3164", "a room name cannot contain U+3164 (a filler)")
        self.assertRefused("1\u0301", "a combining mark follows a letter (not U+0301)")
        self.assertEqual(check_room("café-1.2"), "café-1.2")

    def test_forbiddenCharacters(self) -> None:
        """Spaces, ``>``, a second ``#``, controls and symbols are refused."""
        for char in " ><#*!\x00\x1b\x7f\u202e😀":
            error = self.assertRaises(ChatError, check_room, f"a{char}b")
            self.assertEqual(
                render_error(error),
                f"a room name has letters, digits, _ - and . only (not {char!r})",
            )
