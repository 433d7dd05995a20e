"""
Durations as people type and read them: ``10m``, ``1h30m``, ``5 minutes``,
``forever``; used for bans by every door.
"""

from __future__ import annotations

from chatservice.chat.errors import InvalidDuration


def format_duration(seconds: float) -> str:
    """``90`` → ``1m30s``: a short human duration."""
    seconds = max(0, int(seconds + 0.5))
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            parts.append(f"{seconds // size}{unit}")
            seconds %= size
    if seconds or not parts:
        parts.append(f"{seconds}s")
    return "".join(parts)


#: Unit words a plain number may be followed by (``5 minutes``).
DURATION_WORDS = {
    **dict.fromkeys(("s", "sec", "secs", "second", "seconds"), "s"),
    **dict.fromkeys(("m", "min", "mins", "minute", "minutes"), "m"),
    **dict.fromkeys(("h", "hr", "hrs", "hour", "hours"), "h"),
    **dict.fromkeys(("d", "day", "days"), "d"),
    **dict.fromkeys(("w", "week", "weeks"), "w"),
}


#: The longest duration (100 years): longer is ``forever``.
MAX_DURATION = 100 * 365 * 86400
#: The units of :func:`parse_duration`, in seconds.
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_DIGITS = frozenset("0123456789")
_DURATION_CHARS = _DIGITS | frozenset(_UNITS)


def take_duration(text: str) -> tuple[float | None, str] | None:
    """
    A duration at the start of ``text`` (``10m``, ``forever``, or a number
    and a unit word: ``5 minutes``) and the rest of the text; ``None`` when
    ``text`` does not start with one.  A first word made of digits and
    units only that is no duration (longer than :data:`MAX_DURATION`,
    ``5mm``) is :class:`InvalidDuration`, not a reason's first word.
    """
    first, _, rest = text.strip().partition(" ")
    if first.isascii() and first.isdigit():
        word, _, after = rest.strip().partition(" ")
        unit = DURATION_WORDS.get(word.lower())
        if unit is not None:
            first, rest = first + unit, after
    try:
        return parse_duration(first), rest
    except InvalidDuration:
        if first and first[0] in _DIGITS and set(first.lower()) <= _DURATION_CHARS:
            raise
        return None


def parse_duration(text: str) -> float | None:
    """
    ``30s``, ``10m``, ``2h``, ``1d``, ``1h30m`` or plain seconds; ``0``,
    ``forever`` or ``permanent`` mean until unbanned (``None``).
    """
    text = text.strip().lower()
    if text in ("0", "forever", "permanent", "perm"):
        return None
    total = 0
    number = ""
    for char in text:
        if char in _DIGITS:
            number += char
            if len(number) > 12:  # past any unit's 100 years (and int()'s cap)
                raise InvalidDuration(text)
        elif char in _UNITS and number:
            total += int(number) * _UNITS[char]
            number = ""
        else:
            raise InvalidDuration(text)
    if number:
        total += int(number)
    if total <= 0 or total > MAX_DURATION:
        raise InvalidDuration(text)
    return float(total)
