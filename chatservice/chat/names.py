# ruff: noqa: RUF001 - the look-alike table holds look-alike letters on purpose
"""
Nicknames and room names: what is allowed, and when two are the same.

Nicknames may use letters of any script (``张三``, ``Иван``, ``alice``), but
not a mix of scripts within one name (``paypal`` spelt with a Cyrillic a is the
classic impersonation), plus digits, ``_`` and ``-``.  Two nicknames are the
same when their NFKC case-folded forms are equal.
"""

from __future__ import annotations

import unicodedata

from chatservice.chat.errors import InvalidNick, InvalidRoom

MAX_NICK_LENGTH = 24
MAX_ROOM_LENGTH = 32
NICK_PUNCTUATION = frozenset("_-")
ROOM_PUNCTUATION = frozenset("_-.")

# Scripts that are normally written together count as one.  The prolonged
# sound mark (ー) and the iteration and closing marks (々, 〆) are named
# KATAKANA-HIRAGANA... and IDEOGRAPHIC..., but are everyday Japanese letters.
_SCRIPT_FAMILY = {
    "HIRAGANA": "CJK",
    "KATAKANA": "CJK",
    "HANGUL": "CJK",
    "KATAKANA-HIRAGANA": "CJK",
    "IDEOGRAPHIC": "CJK",
}


def fold(name: str) -> str:
    """The form in which two names compare equal (case, width, compatibility)."""
    return unicodedata.normalize("NFKC", name).casefold()


# Letters of other scripts that look like Latin ones (a small part of
# Unicode TR39's confusables, after case folding): two nicknames with the same
# skeleton would look alike on screen, so only one of them may be in use.
_LOOKALIKES = str.maketrans(
    {
        # Cyrillic
        "а": "a", "в": "b", "е": "e", "ё": "e", "һ": "h", "н": "h", "і": "i",
        "ї": "i", "ј": "j", "к": "k", "ӏ": "l", "м": "m", "о": "o", "р": "p",
        "ԛ": "q", "ѕ": "s", "т": "t", "у": "y", "ү": "y", "х": "x", "ԁ": "d",
        "ԝ": "w", "с": "c",
        # Greek
        "α": "a", "β": "b", "ε": "e", "η": "n", "ι": "i", "κ": "k", "ν": "v",
        "ο": "o", "ρ": "p", "τ": "t", "υ": "u", "χ": "x", "ω": "w", "μ": "u",
    }
)  # fmt: skip


def skeleton(name: str) -> str:
    """
    What a name looks like: its folded form with look-alike letters of
    other scripts replaced by the Latin letter they resemble.
    """
    return fold(name).translate(_LOOKALIKES)


def _script(char: str) -> str:
    word = unicodedata.name(char, "UNKNOWN").split(" ", 1)[0]
    return _SCRIPT_FAMILY.get(word, word)


def check_nick(wanted: str) -> str:
    """
    Return the nickname as it will be shown (NFC), or raise
    :class:`~chatservice.chat.errors.InvalidNick` saying what is wrong with it.
    """
    nick = unicodedata.normalize("NFC", wanted.strip())
    if not nick:
        raise InvalidNick(nick, "a nickname cannot be empty")
    if len(nick) > MAX_NICK_LENGTH:
        raise InvalidNick(nick, f"a nickname has at most {MAX_NICK_LENGTH} characters")
    first = nick[0]
    if not (unicodedata.category(first).startswith("L") or first == "_"):
        raise InvalidNick(nick, "a nickname starts with a letter or _")
    scripts = set()
    for char in nick:
        category = unicodedata.category(char)
        if category.startswith("L"):
            scripts.add(_script(char))
        elif not (
            category.startswith("M") or category == "Nd" or char in NICK_PUNCTUATION
        ):
            raise InvalidNick(
                nick, f"a nickname has letters, digits, _ and - only (not {char!r})"
            )
    if len(scripts) > 1:
        names = " and ".join(sorted(s.title() for s in scripts))
        raise InvalidNick(nick, f"a nickname uses one script, not a mix ({names})")
    return nick


def check_room(wanted: str) -> str:
    """
    Return the room name as it will be shown (without a leading ``#``), or
    raise :class:`~chatservice.chat.errors.InvalidRoom`.
    """
    room = unicodedata.normalize("NFC", wanted.strip()).removeprefix("#")
    if not room:
        raise InvalidRoom(room, "a room name cannot be empty")
    if len(room) > MAX_ROOM_LENGTH:
        raise InvalidRoom(room, f"a room name has at most {MAX_ROOM_LENGTH} characters")
    for char in room:
        category = unicodedata.category(char)
        if not (
            category.startswith(("L", "M"))
            or category == "Nd"
            or char in ROOM_PUNCTUATION
        ):
            raise InvalidRoom(
                room, f"a room name has letters, digits, _ - and . only (not {char!r})"
            )
    return room
