"""
Text from strangers, made safe to show: no terminal escape sequence, control
character or bidirectional override from one user reaches another's screen
raw.
"""

from __future__ import annotations

import re

# C0 controls (tab included: it can misalign a transcript), DEL, C1 controls,
# and the invisible bidirectional marks, embeddings, overrides and isolates
# that can make a line read differently from what it says.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def _show(match: re.Match[str]) -> str:
    code = ord(match.group())
    if code < 0x20:
        return "^" + chr(code + 0x40)
    if code == 0x7F:
        return "^?"
    return f"<U+{code:04X}>"


def visible(text: str) -> str:
    """
    Replace every control character with a visible stand-in: ``ESC`` becomes
    ``^[``, ``DEL`` ``^?``, a C1 control or bidi override ``<U+202E>``.
    """
    return _UNSAFE.sub(_show, text)
