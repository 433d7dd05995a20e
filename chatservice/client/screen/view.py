"""
:class:`ChatView`, the full screen's model: it reads every server line,
keeps one scrollback (:class:`View`) per room, private conversation and the
server itself, the unread counts, topics, members and one's own nickname,
and renders what the screen shows.  No terminal needed.
"""

from __future__ import annotations

import calendar
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from prompt_toolkit.formatted_text import ANSI, StyleAndTextTuples, to_formatted_text

from chatservice.chat.text import visible
from chatservice.client.render import colorize

#: Lines kept per view.
SCROLLBACK = 5000

#: The view of what belongs to no room (the greeting, replies, errors).
SERVER_VIEW = ""


#: The server's time at the start of an event line (``/timestamps on``).
_TIME_TAG = re.compile(r"@time=(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?Z ")


#: A room's line: a message (<nick>), an action (* nick) or a notice (-nick-).
_ROOM_LINE = re.compile(r"#(\S+) (?:<([^\s>]+)>|\* (\S+)|-(\S+)-)( .*)?")
_HISTORY_LINE = re.compile(
    r"#(\S+) \[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)\] (<[^\s>]+>|\* \S+|-\S+-)( .*)?"
)
#: A private message (*nick*) or notice (-nick-), received or sent (->).
_PRIVATE = re.compile(r"(-> )?(?:\*([^\s*]+)\*|-([^!\s-]\S*)-)( .*)?")
_JOINED = re.compile(r"-!- (\S+) has joined #(\S+)")
_LEFT = re.compile(r"-!- (\S+) has left #(\S+)")
_QUIT = re.compile(r"-!- (\S+) has quit")
_KICKED = re.compile(r"-!- (\S+) was kicked by ")
_RENAMED = re.compile(r"-!- (\S+) is now known as (\S+)")
_TOPIC_SET = re.compile(r"-!- \S+ changed the topic of #(\S+) to: (.*)")
_TOPIC_CLEARED = re.compile(r"-!- \S+ cleared the topic of #(\S+)")
_TOPIC_REPLY = re.compile(r"--- topic of #(\S+): (.*)")
_YOU_ARE = re.compile(r"--- you are (\S+)(?:; you are in #(\S+)| already)")
_NOW_TALKING = re.compile(r"--- now talking in #(\S+)")
_WHO_REPLY = re.compile(r"--- #(\S+) \(\d+\): ?(.*)")


def name_key(name: str) -> str:
    """How nicknames and room names compare here: case folded."""
    return name.casefold()


def room_view(room: str) -> str:
    """The view key of a room (``#lobby``)."""
    return "#" + name_key(room)


def private_view(nick: str) -> str:
    """The view key of a private conversation (``*bob``)."""
    return "*" + name_key(nick)


@dataclass
class View:
    """One scrollback: a room, a private conversation, or the server's."""

    title: str
    lines: list[StyleAndTextTuples] = field(default_factory=list)
    unread: int = 0
    highlighted: bool = False
    topic: str = ""
    members: dict[str, str] = field(default_factory=dict)
    joined: bool = False

    def add(self, line: StyleAndTextTuples) -> None:
        self.lines.append(line)
        del self.lines[:-SCROLLBACK]


def _clock_text(at: float) -> str:
    return time.strftime("%H:%M", time.localtime(at))


class ChatView:
    """
    The screen model: what each server line does to the views, and what the
    screen shows.  ``clock`` gives the time a live line arrived (the server
    sends a time on history lines only).
    """

    def __init__(
        self,
        server: str,
        *,
        clock: Callable[[], float] = time.time,
        color: bool = True,
    ) -> None:
        self.server = server
        self.clock = clock
        self.color = color
        self.views: dict[str, View] = {SERVER_VIEW: View(server)}
        self.order: list[str] = [SERVER_VIEW]
        self.current = SERVER_VIEW
        self.nick: str | None = None
        self.state = "connecting"
        #: Lines scrolled back from the end in the current view.
        self.scrolled = 0
        #: Whether the last line read mentioned one's nickname (for the bell).
        self.alert = False
        #: The room the last line said one has joined, if it did.
        self.just_joined: str | None = None

    # The views

    def view(self, key: str, title: str) -> View:
        """The view of that key, made on first use."""
        found = self.views.get(key)
        if found is None:
            found = self.views[key] = View(title)
            self.order.append(key)
        return found

    def switch(self, key: str) -> None:
        """Show another view; its unread count and highlight are cleared."""
        if key not in self.views:
            return
        self.current = key
        self.scrolled = 0
        shown = self.views[key]
        shown.unread = 0
        shown.highlighted = False

    def cycle(self, step: int) -> None:
        """Show the next (``1``) or previous (``-1``) view."""
        index = self.order.index(self.current)
        self.switch(self.order[(index + step) % len(self.order)])

    def joined_rooms(self) -> list[str]:
        """The rooms one is in, in the order they were joined."""
        return [
            self.views[key].title
            for key in self.order
            if key.startswith("#") and self.views[key].joined
        ]

    def current_room(self) -> str | None:
        """The room of the current view, if it is a room one is in."""
        shown = self.views[self.current]
        if self.current.startswith("#") and shown.joined:
            return shown.title
        return None

    def disconnected(self) -> None:
        """The connection is gone: one is in no room until rejoined."""
        for shown in self.views.values():
            shown.joined = False
            shown.members.clear()

    def note(self, text: str) -> None:
        """A line of the client itself, in the current view."""
        self.views[self.current].add(self._fragments(text, self.clock(), False, False))

    def is_me(self, nick: str) -> bool:
        return self.nick is not None and name_key(nick) == name_key(self.nick)

    # Server lines

    def server_line(self, raw: bytes) -> None:
        """Read one line from the server (without its terminator)."""
        text = visible(raw.decode("utf-8", errors="replace"))
        at = self.clock()
        stamp = _TIME_TAG.match(text)
        if stamp is not None:
            # The server's time of the event, not the time it arrived.
            whole, fraction = stamp.groups()
            at = calendar.timegm(time.strptime(whole, "%Y-%m-%dT%H:%M:%S"))
            at += float(fraction or 0)
            text = text[stamp.end() :]
        self.alert = False
        self.just_joined = None
        key = self._track(text)
        shown_text = text
        history = _HISTORY_LINE.fullmatch(text)
        if history is not None:
            room, when, who, rest = history.groups()
            shown_text = f"#{room} {who}{rest or ''}"
            at = calendar.timegm(time.strptime(when, "%Y-%m-%d %H:%M:%S"))
        mention = self._mentions(text)
        line = self._fragments(shown_text, at, mention, history is not None)
        if key is None:
            key = self.current
        target = self.views[key]
        target.add(line)
        if key != self.current:
            target.unread += 1
            if mention or key.startswith("*"):
                target.highlighted = True
        elif self.scrolled:
            self.scrolled += 1
        self.alert = mention or (key.startswith("*") and not text.startswith("->"))

    def _mentions(self, text: str) -> bool:
        if self.nick is None:
            return False
        match = _ROOM_LINE.fullmatch(text) or _HISTORY_LINE.fullmatch(text)
        if match is None or match.re is _HISTORY_LINE:
            return False
        speaker = match.group(2) or match.group(3) or match.group(4)
        body = match.group(5) or ""
        if self.is_me(speaker):
            return False
        pattern = r"(?<![\w-])" + re.escape(self.nick) + r"(?![\w-])"
        return re.search(pattern, body, re.IGNORECASE) is not None

    def _fragments(
        self, text: str, at: float, mention: bool, history: bool
    ) -> StyleAndTextTuples:
        body: StyleAndTextTuples = list(
            to_formatted_text(ANSI(colorize(text) if self.color else text))
        )
        stamp = "class:history-time" if history else "class:time"
        line: StyleAndTextTuples = [(stamp, _clock_text(at) + " ")]
        if mention:
            body = [("class:highlight " + style, part) for style, part, *_ in body]
        line.extend(body)
        return line

    def _track(self, text: str) -> str | None:
        """Follow what the line changes; the key of the view it belongs to."""
        for pattern in (_HISTORY_LINE, _ROOM_LINE):
            match = pattern.fullmatch(text)
            if match is not None:
                room = match.group(1)
                view = self.view(room_view(room), "#" + room)
                nick = match.group(2) or match.group(3) or match.group(4)
                if pattern is _ROOM_LINE and nick:
                    view.members.setdefault(name_key(nick), nick)
                return room_view(room)
        match = _PRIVATE.fullmatch(text)
        if match is not None:
            nick = match.group(2) or match.group(3)
            self.view(private_view(nick), "*" + nick)
            return private_view(nick)
        return self._track_notice(text) or self._track_reply(text)

    def _track_notice(self, text: str) -> str | None:
        match = _JOINED.fullmatch(text)
        if match is not None:
            nick, room = match.groups()
            view = self.view(room_view(room), "#" + room)
            view.members[name_key(nick)] = nick
            if self.is_me(nick):
                view.joined = True
                self.just_joined = "#" + room
                self.switch(room_view(room))
            return room_view(room)
        match = _LEFT.fullmatch(text)
        if match is not None:
            nick, room = match.groups()
            view = self.view(room_view(room), "#" + room)
            view.members.pop(name_key(nick), None)
            if self.is_me(nick):
                view.joined = False
            return room_view(room)
        match = _QUIT.match(text) or _KICKED.match(text)
        if match is not None:
            return self._gone(match.group(1))
        match = _RENAMED.fullmatch(text)
        if match is not None:
            old, new = match.groups()
            if self.is_me(old):
                self.nick = new
            where = None
            for key, view in self.views.items():
                if view.members.pop(name_key(old), None) is not None:
                    view.members[name_key(new)] = new
                    where = key if where is None else where
            return None if where is None or len(self._rooms_of(new)) > 1 else where
        match = _TOPIC_SET.fullmatch(text) or _TOPIC_CLEARED.fullmatch(text)
        if match is not None:
            room = match.group(1)
            view = self.view(room_view(room), "#" + room)
            view.topic = match.group(2) if match.lastindex == 2 else ""
            return room_view(room)
        return None

    def _rooms_of(self, nick: str) -> list[str]:
        folded = name_key(nick)
        return [key for key, view in self.views.items() if folded in view.members]

    def _gone(self, nick: str) -> str | None:
        rooms = self._rooms_of(nick)
        for key in rooms:
            self.views[key].members.pop(name_key(nick), None)
        # Shown in its room when it was in one only, else where one looks.
        return rooms[0] if len(rooms) == 1 else None

    def _track_reply(self, text: str) -> str | None:
        match = _YOU_ARE.fullmatch(text)
        if match is not None:
            self.nick = match.group(1)
            room = match.group(2)
            if room is not None:
                view = self.view(room_view(room), "#" + room)
                view.members[name_key(self.nick)] = self.nick
                view.joined = True
                self.just_joined = "#" + room
                self.switch(room_view(room))
            return None
        match = _NOW_TALKING.fullmatch(text)
        if match is not None:
            room = match.group(1)
            self.view(room_view(room), "#" + room)
            self.switch(room_view(room))
            return room_view(room)
        match = _TOPIC_REPLY.fullmatch(text)
        if match is not None:
            room, topic = match.groups()
            view = self.view(room_view(room), "#" + room)
            view.topic = "" if topic == "(none)" else topic
            return room_view(room)
        match = _WHO_REPLY.fullmatch(text)
        if match is not None:
            room, nicks = match.groups()
            view = self.view(room_view(room), "#" + room)
            view.members = {name_key(nick): nick for nick in nicks.split()}
            return room_view(room)
        return None

    # What is typed

    def outgoing(self, line: str) -> str | None:
        """
        The line to send for what was typed in the current view (a plain
        line in a private conversation is a ``/msg``), or ``None`` when it is
        handled here (``/join`` of a room one is in switches to it at once,
        and still tells the server).
        """
        stripped = line.strip()
        words = stripped.split()
        if words and words[0].lower() == "/join" and len(words) > 1:
            key = room_view(words[1].lstrip("#"))
            if key in self.views and self.views[key].joined:
                self.switch(key)
        if self.current.startswith("*") and stripped and not stripped.startswith("/"):
            return f"/msg {self.views[self.current].title[1:]} {line}"
        if self.current.startswith("*") and stripped.startswith("//"):
            return f"/msg {self.views[self.current].title[1:]} {line[1:]}"
        return line

    def nicks(self) -> list[str]:
        """The nicknames known in the current view, for completion."""
        shown = self.views[self.current]
        if self.current.startswith("*"):
            return [shown.title[1:]]
        return sorted(shown.members.values(), key=name_key)

    # What is shown

    def scroll(self, lines: int) -> None:
        """Scroll back (positive) or forward (negative) through the view."""
        total = len(self.views[self.current].lines)
        self.scrolled = max(0, min(total - 1, self.scrolled + lines))

    def visible_lines(self, height: int) -> list[StyleAndTextTuples]:
        """The lines of the current view that fit (at most ``height``)."""
        lines = self.views[self.current].lines
        end = len(lines) - self.scrolled
        return lines[max(0, end - max(height, 1)) : end]

    def title_line(self) -> StyleAndTextTuples:
        """The top line: the view's name and topic."""
        shown = self.views[self.current]
        title = shown.title or self.server
        text = f" {title}: {shown.topic}" if shown.topic else f" {title}"
        if self.current.startswith("#") and not shown.joined:
            text += " (not joined)"
        return [("class:title", text)]

    def status_line(self) -> StyleAndTextTuples:
        """
        The status line: server, nickname, current view, connection state,
        then every view with its number, unread count and marker.
        """
        nick = self.nick or "(no nickname)"
        parts: StyleAndTextTuples = [
            ("class:status", f" {self.server} | {nick} | "),
            ("class:status.state", self.state),
        ]
        if self.scrolled:
            parts.append(("class:status", f" | scrolled back {self.scrolled}"))
        parts.append(("class:status", " |"))
        for number, key in enumerate(self.order, start=1):
            shown = self.views[key]
            label = f" {number}:{'server' if key == SERVER_VIEW else shown.title}"
            if key == self.current:
                parts.append(("class:status.current", label))
            elif shown.highlighted:
                parts.append(("class:status.highlight", f"{label}({shown.unread})!"))
            elif shown.unread:
                parts.append(("class:status.unread", f"{label}({shown.unread})"))
            else:
                parts.append(("class:status", label))
        return parts
