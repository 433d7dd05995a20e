"""
The full screen's input line: :class:`InputHistory` (kept in the state
directory, secrets left out) and :class:`ChatCompleter` (Tab completion of
commands, rooms and nicknames).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

from prompt_toolkit.completion import CompleteEvent, Completer, Completion
from prompt_toolkit.document import Document
from prompt_toolkit.history import FileHistory

from chatservice.client.screen.view import ChatView, name_key

#: The chat's commands, for Tab completion (``docs/protocol.rst``).
COMMANDS = [
    "/nick",
    "/join",
    "/part",
    "/rooms",
    "/list",
    "/who",
    "/names",
    "/topic",
    "/me",
    "/msg",
    "/m",
    "/query",
    "/whois",
    "/quit",
    "/exit",
    "/help",
    "/oper",
    "/history",
    "/broadcast",
    "/kick",
    "/ban",
    "/unban",
    "/bans",
    "/limit",
    "/stats",
]


#: Typed lines never saved in the history file: they hold a password.
_SECRET = re.compile(r"\s*(/oper\s|login\s)", re.IGNORECASE)


def state_dir(environ: Mapping[str, str]) -> Path:
    """``$XDG_STATE_HOME/chatservice`` (default ``~/.local/state/chatservice``)."""
    base = environ.get("XDG_STATE_HOME") or ""
    root = Path(base) if os.path.isabs(base) else Path.home() / ".local" / "state"
    return root / "chatservice"


def history_path(environ: Mapping[str, str]) -> Path:
    """Where the input history is kept across runs."""
    return state_dir(environ) / "history"


class InputHistory(FileHistory):
    """
    The input history in a file (``prompt_toolkit``'s format), without the
    lines that carry a password (``/oper NAME PASSWORD``, ``login ...``).
    """

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        super().__init__(str(path))

    def store_string(self, string: str) -> None:
        if _SECRET.match(string) is None:
            super().store_string(string)


class ChatCompleter(Completer):
    """Tab completion: commands at the start of the line, else nicknames."""

    def __init__(self, view: ChatView) -> None:
        self.chat = view

    def get_completions(
        self, document: Document, complete_event: CompleteEvent
    ) -> Iterable[Completion]:
        before = document.text_before_cursor
        word = before.split(" ")[-1]
        at_start = " " not in before.lstrip()
        if at_start and word.startswith("/"):
            for command in COMMANDS:
                if command.startswith(word.lower()):
                    yield Completion(command + " ", -len(word))
            return
        if word.startswith("#"):
            for room in self.chat.joined_rooms():
                if name_key(room).startswith(name_key(word)):
                    yield Completion(room + " ", -len(word))
            return
        if not word:
            return
        suffix = ": " if at_start else " "
        for nick in self.chat.nicks():
            if name_key(nick).startswith(name_key(word)):
                yield Completion(nick + suffix, -len(word))
