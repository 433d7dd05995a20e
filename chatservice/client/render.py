"""
What the line client prints for one line of the chat wire format:
:func:`choose_color` decides whether to colour, :func:`colorize` colours a
line (already made :func:`~chatservice.chat.text.visible`), and
:class:`Renderer` does both for one line from the server.  The full screen
colours its lines with :func:`colorize` too.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from chatservice.chat.text import visible

ColorMode = Literal["auto", "always", "never"]


def choose_color(mode: ColorMode, isatty: bool, environ: Mapping[str, str]) -> bool:
    """
    Whether to colour: ``always``, ``never``, or (``auto``) when standard
    output is a terminal, ``NO_COLOR`` is unset or empty and ``TERM`` is not
    ``dumb``.
    """
    if mode == "always":
        return True
    if mode == "never":
        return False
    return isatty and not environ.get("NO_COLOR") and environ.get("TERM") != "dumb"


RESET = "\x1b[0m"
CYAN = "36"
MAGENTA = "35"
RED = "31"
BOLD = "1"
NOTICE = "2;32"
ANNOUNCEMENT = "1;33"
#: Nick colours; the one for a nick is chosen by a stable hash of it.
NICK_COLORS = ("31", "32", "33", "34", "35", "36", "91", "92", "93", "94", "95", "96")


def sgr(codes: str, text: str) -> str:
    """``text`` in the given ANSI SGR attributes, reset afterwards."""
    return f"\x1b[{codes}m{text}{RESET}" if text else text


def nick_color(nick: str) -> str:
    """The SGR colour of a nick: the same in every run and for every user."""
    return NICK_COLORS[zlib.crc32(nick.encode("utf-8")) % len(NICK_COLORS)]


def _nick(nick: str) -> str:
    return sgr(f"{BOLD};{nick_color(nick)}", nick)


_ROOM_MESSAGE = re.compile(r"(#\S+) <([^\s>]+)>( .*)?")
_ROOM_ACTION = re.compile(r"(#\S+) \* (\S+)( .*)?")
_ROOM_NOTICE = re.compile(r"(#\S+) -(\S+)-( .*)?")
_PRIVATE_NOTICE = re.compile(r"(-> )?-([^!\s-]\S*)-( .*)?")
_PRIVATE_SENT = re.compile(r"-> \*([^\s*]+)\*( .*)?")
_PRIVATE = re.compile(r"\*([^\s*]+)\*( .*)?")
_PREFIXES = (
    ("*** ", ANNOUNCEMENT),
    ("!!! ", RED),
    ("-!- ", NOTICE),
)


def colorize(text: str) -> str:
    """
    Colour one line of the chat wire format (already made :func:`visible`);
    a line of no known form is returned unchanged.
    """
    for prefix, codes in _PREFIXES:
        if text.startswith(prefix):
            return sgr(codes, text)
    if text.startswith("--- "):
        return text
    match = _ROOM_MESSAGE.fullmatch(text)
    if match is not None:
        room, nick, rest = match.groups()
        return f"{sgr(CYAN, room)} <{_nick(nick)}>{rest or ''}"
    match = _ROOM_ACTION.fullmatch(text)
    if match is not None:
        room, nick, rest = match.groups()
        return f"{sgr(CYAN, room)} * {_nick(nick)}{rest or ''}"
    match = _ROOM_NOTICE.fullmatch(text)
    if match is not None:
        room, nick, rest = match.groups()
        return f"{sgr(CYAN, room)} -{_nick(nick)}-{rest or ''}"
    match = _PRIVATE_NOTICE.fullmatch(text)
    if match is not None:
        sent, nick, rest = match.groups()
        tail = sgr(MAGENTA, "-" + (rest or ""))
        return f"{sgr(MAGENTA, (sent or '') + '-')}{_nick(nick)}{tail}"
    match = _PRIVATE_SENT.fullmatch(text)
    if match is not None:
        nick, rest = match.groups()
        tail = sgr(MAGENTA, "*" + (rest or ""))
        return f"{sgr(MAGENTA, '-> *')}{_nick(nick)}{tail}"
    match = _PRIVATE.fullmatch(text)
    if match is not None:
        nick, rest = match.groups()
        tail = sgr(MAGENTA, "*" + (rest or ""))
        return f"{sgr(MAGENTA, '*')}{_nick(nick)}{tail}"
    return text


@dataclass(frozen=True)
class Renderer:
    """
    Turns one line from the server (without its terminator) into the text
    to print.  ``safe``: make control characters visible (a terminal reads
    the output); ``color``: colour the chat wire format.  With neither, the
    line is printed as received (decoded as UTF-8, invalid bytes replaced).
    """

    color: bool = False
    safe: bool = False

    @classmethod
    def for_output(
        cls, mode: ColorMode, isatty: bool, environ: Mapping[str, str]
    ) -> Renderer:
        """The renderer for an output that is (or is not) a terminal."""
        color = choose_color(mode, isatty, environ)
        return cls(color=color, safe=isatty or color)

    def render(self, line: bytes) -> str:
        text = line.decode("utf-8", errors="replace")
        if self.safe:
            text = visible(text)
        if self.color:
            text = colorize(text)
        return text
