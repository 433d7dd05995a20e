# ruff: noqa: RUF001 - look-alike and fullwidth letters on purpose
"""
Tests for :mod:`chatservice.chat.names`: which nicknames and room names are
allowed, how they are shown, and when two are the same.
"""

from __future__ import annotations

import unicodedata

from twisted.trial.unittest import SynchronousTestCase

from chatservice.chat.errors import ChatError
from chatservice.chat.names import (
    MAX_NICK_LENGTH,
    MAX_ROOM_LENGTH,
    check_nick,
    check_room,
    fold,
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

    def test_forbiddenCharacters(self) -> None:
        """Spaces, ``>``, a second ``#``, controls and symbols are refused."""
        for char in " ><#*!\x00\x1b\x7f\u202e😀":
            error = self.assertRaises(ChatError, check_room, f"a{char}b")
            self.assertEqual(
                render_error(error),
                f"a room name has letters, digits, _ - and . only (not {char!r})",
            )
