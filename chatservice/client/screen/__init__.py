"""
The full-screen ``chatservice-client``, used when standard input and output
are a terminal: the conversation above, a status line, the input line at
the bottom (``docs/client.rst``).

Built on ``prompt_toolkit`` running on Twisted's asyncio reactor, and
imported only then.  The pieces, each testable without a terminal:

- :class:`ChatView` (:mod:`~chatservice.client.screen.view`, the screen
  model): reads every server line, keeps one scrollback per room, private
  conversation and the server itself, the unread counts, topics, members,
  one's own nickname, and renders what the screen shows;
- :class:`InputHistory` and :class:`ChatCompleter`
  (:mod:`~chatservice.client.screen.inputline`): the input line's history
  (kept in the state directory, secrets left out) and Tab completion;
- :class:`Screen` (:mod:`~chatservice.client.screen.app`): the
  ``prompt_toolkit`` application (layout and keys), and
  :func:`run_screen`, which runs it;
- :class:`Connection` (:mod:`~chatservice.client.screen.reconnect`): the
  connection through Twisted's ``ClientService`` (reconnects with backoff,
  takes back the nickname and the rooms).
"""

from __future__ import annotations

from chatservice.client.screen.app import STYLE, Screen, run_screen
from chatservice.client.screen.inputline import (
    COMMANDS,
    ChatCompleter,
    InputHistory,
    history_path,
    state_dir,
)
from chatservice.client.screen.reconnect import MAX_NICK_LENGTH, Connection
from chatservice.client.screen.view import (
    SCROLLBACK,
    SERVER_VIEW,
    ChatView,
    View,
    private_view,
    room_view,
)

__all__ = [
    "COMMANDS",
    "MAX_NICK_LENGTH",
    "SCROLLBACK",
    "SERVER_VIEW",
    "STYLE",
    "ChatCompleter",
    "ChatView",
    "Connection",
    "InputHistory",
    "Screen",
    "View",
    "history_path",
    "private_view",
    "room_view",
    "run_screen",
    "state_dir",
]
