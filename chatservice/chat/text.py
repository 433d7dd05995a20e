"""
Text from strangers, made safe to show: no terminal escape sequence, control
character, line or paragraph separator, bidirectional override or invisible
format character from one user reaches another's screen raw.

Decided per character, for the controls (Cc) and for every format (Cf),
line separator (Zl) and paragraph separator (Zp) character:

* shown as a stand-in: C0 controls (tab included: it can misalign a
  transcript), DEL, C1 controls; U+2028 and U+2029 (some terminals break
  the line there: a forged line); the bidirectional marks, embeddings,
  overrides and isolates (U+061C, U+200E, U+200F, U+202A-U+202E,
  U+2066-U+2069: a line that reads differently from what it says); the
  invisible ones that can hide or split a word unseen: the soft hyphen
  U+00AD, the zero-width space U+200B, the word joiner and invisible
  operators U+2060-U+2064, the deprecated format characters U+206A-U+206F,
  U+FEFF (zero-width no-break space, a byte order mark), the Mongolian vowel
  separator U+180E, the interlinear annotation marks U+FFF9-U+FFFB, the
  Egyptian hieroglyph, shorthand and musical format controls (U+13430-
  U+1343F, U+1BCA0-U+1BCA3, U+1D173-U+1D17A) and the tag characters
  U+E0000-U+E007F (invisible ASCII);
* kept: the zero-width non-joiner and joiner U+200C and U+200D (Persian,
  Indic scripts and emoji sequences need them), and the prepended
  concatenation marks U+0600-U+0605, U+06DD, U+070F, U+0890, U+0891,
  U+08E2, U+110BD, U+110CD (visible signs spanning the digits after them).
"""

from __future__ import annotations

import re

#: Format characters that are kept as they are (see above).
KEPT_FORMAT = frozenset(
    "\u200c\u200d\u0600\u0601\u0602\u0603\u0604\u0605\u06dd\u070f"
    "\u0890\u0891\u08e2\U000110bd\U000110cd"
)

_UNSAFE = re.compile(
    "[\x00-\x1f\x7f-\x9f\xad\u061c\u180e\u200b\u200e\u200f\u2028-\u202e"
    "\u2060-\u206f\ufeff\ufff9-\ufffb\U00013430-\U0001343f"
    "\U0001bca0-\U0001bca3\U0001d173-\U0001d17a\U000e0000-\U000e007f]"
)


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
    ``^[``, ``DEL`` ``^?``, a C1 control, bidi override, line separator or
    invisible format character ``<U+202E>``.
    """
    return _UNSAFE.sub(_show, text)
