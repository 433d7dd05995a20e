# ruff: noqa: RUF001 - the look-alike table holds look-alike letters on purpose
"""
Nicknames and room names: what is allowed, and when two are the same.

Nicknames may use letters of any script (``张三``, ``Иван``, ``alice``), but
not a mix of scripts within one name (``paypal`` spelt with a Cyrillic a is the
classic impersonation), plus digits, ``_`` and ``-``.  Two nicknames are the
same when their NFKC case-folded forms are equal.

Every nickname, and every room name, is also a valid nickname of the
published profile, RFC 8266 (PRECIS Nickname, checked by ``precis-i18n``):
no default-ignorable code point (the combining grapheme joiner, variation
selectors, zero-width characters), no Hangul conjoining jamo.  No filler
either (a character Unicode names a filler: blank on screen).  A combining
mark follows a letter (or another mark on one).  So ``#lobby`` followed by
a variation selector is no second ``#lobby``.
"""

from __future__ import annotations

import functools
import unicodedata

import precis_i18n

from chatservice.chat.errors import InvalidNick, InvalidRoom

#: RFC 8266's Nickname profile, case preserved (only its refusals are used:
#: a nickname is shown as typed, in NFC).
_PRECIS_NICKNAME = precis_i18n.get_profile("NicknameCasePreserved")

#: Why RFC 8266 refuses a character, in words (by precis-i18n's reason).
_PRECIS_REASONS = {
    "precis_ignorable_properties": "an invisible character",
    "old_hangul_jamo": "a conjoining Hangul jamo",
    "unassigned": "an unassigned code point",
}

MAX_NICK_LENGTH = 24
MAX_ROOM_LENGTH = 32
NICK_PUNCTUATION = frozenset("_-")
#: Nicknames most clients choose: ASCII letters, digits, ``_`` and ``-``,
#: starting with a letter or ``_``.  Such a name passes every check of
#: :func:`check_nick` (one script, no mark or filler, and RFC 8266 allows
#: printable ASCII): it skips them, a sixth of a registration's CPU.
_PLAIN_NICK_START = frozenset("_abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
_PLAIN_NICK_CHARS = _PLAIN_NICK_START | frozenset("0123456789-")
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


def _precis_refusal(name: str, kind: str) -> str | None:
    """Why RFC 8266's Nickname profile refuses ``name``, or ``None``."""
    try:
        _PRECIS_NICKNAME.enforce(name)
    except UnicodeEncodeError as error:
        reason = error.reason.rsplit("/", 1)[-1]
        # Name the character as typed: the error's index is in the mapped form.
        char = next((c for c in name if _precis_refuses(c)), error.object[error.start])
        why = _PRECIS_REASONS.get(reason, "not allowed in names by RFC 8266")
        return f"{kind} cannot contain {_code(char)} ({why})"
    return None


def _unseen(name: str, kind: str) -> str | None:
    """
    Why ``name`` (``kind``: "a nickname", "a room name") could look like
    another name or like nothing, or ``None``: a filler, a combining mark on
    no letter, or what RFC 8266 refuses (default-ignorable code points,
    conjoining Hangul jamo).
    """
    after_letter = False
    for char in name:
        if "FILLER" in unicodedata.name(char, ""):
            # Blank on screen (Hangul, Khitan): a letter or mark by category.
            return f"{kind} cannot contain {_code(char)} (a filler)"
        category = unicodedata.category(char)
        if category.startswith("L"):
            after_letter = True
        elif category.startswith("M"):
            if not after_letter:
                return f"a combining mark follows a letter (not {_code(char)})"
        else:
            after_letter = False
    return _precis_refusal(name, kind)


def _code(char: str) -> str:
    """A character that may be invisible, named so that it can be seen."""
    return f"U+{ord(char):04X}"


def _precis_refuses(char: str) -> bool:
    try:
        _PRECIS_NICKNAME.enforce(char)
    except UnicodeEncodeError:
        return True
    return False


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
    if nick[0] in _PLAIN_NICK_START and _PLAIN_NICK_CHARS.issuperset(nick):
        return nick
    return _check_any_nick(nick)


def _check_any_nick(nick: str) -> str:
    """The checks of :func:`check_nick` for any (NFC, stripped) name."""
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
    refusal = _unseen(nick, "a nickname")
    if refusal is not None:
        raise InvalidNick(nick, refusal)
    if len(scripts) > 1:
        names = " and ".join(sorted(s.title() for s in scripts))
        raise InvalidNick(nick, f"a nickname uses one script, not a mix ({names})")
    return nick


# Every join checks its room's name, and most joins name a room already
# checked (the default room at every registration): remembered, the PRECIS
# check costs nothing the second time.  Refusals are not remembered.
@functools.lru_cache(maxsize=4096)
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
    refusal = _unseen(room, "a room name")
    if refusal is not None:
        raise InvalidRoom(room, refusal)
    return room
