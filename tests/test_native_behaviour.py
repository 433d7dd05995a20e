"""
The chat's behaviour (:mod:`tests.behaviour`) through the native door: a
:class:`NativeDriver` that speaks its lines (``docs/protocol.rst``) on
in-memory connections (:mod:`chatservice.testing`).

What the door shows is recognised through its own renderers where it has
them: :func:`~chatservice.doors.native.render.render` for events and
:func:`~chatservice.doors.native.render.render_error` for refusals, so no
wording is written down twice.
"""

from __future__ import annotations

import inspect
import re
from dataclasses import dataclass
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from chatservice.chat import errors, events
from chatservice.chat.errors import ChatError
from chatservice.doors.line import ERROR_PREFIX
from chatservice.doors.native.protocol import ChatFactory
from chatservice.doors.native.render import (
    REPLY,
    private_line,
    render,
    render_error,
)
from chatservice.testing import Connection, LineClient, Network
from tests.behaviour import ChatBehaviourTests

#: Stands for a fact a recogniser does not know: any text matches it.
ANY = "\x00"


def like(text: str) -> re.Pattern[str]:
    """A pattern for ``text``, in which each :data:`ANY` matches any text."""
    return re.compile(re.escape(text).replace(re.escape(ANY), ".+?"))


def error_line(kind: type[ChatError], facts: dict[str, object]) -> str | None:
    """
    The line the native door refuses with, for an error of ``kind`` with
    these facts and :data:`ANY` for the others; ``None`` when ``kind``
    cannot be rendered without knowing them all (a ban's duration).
    """
    names = inspect.signature(kind).parameters
    unknown = set(facts) - set(names)
    if unknown:
        raise TypeError(f"{kind.__name__} has no fact {', '.join(sorted(unknown))}")
    arguments: dict[str, Any] = {name: facts.get(name, ANY) for name in names}
    try:
        return ERROR_PREFIX + render_error(kind(**arguments))
    except TypeError:
        return None


def _kinds() -> dict[type[ChatError], tuple[re.Pattern[str], int]]:
    """Each kind of refusal: its line's pattern, and how much of it is fixed."""
    kinds = {}
    for kind in vars(errors).values():
        if isinstance(kind, type) and issubclass(kind, ChatError):
            line = error_line(kind, {})
            if line is not None:
                kinds[kind] = (like(line), len(line.replace(ANY, "")))
    return kinds


#: Every kind of refusal the native door can be recognised by.
KINDS = _kinds()


def kinds_of(line: str) -> set[type[ChatError]]:
    """
    The kinds of refusal a line can be: those whose pattern it matches with
    the most fixed text.  A refusal shown as its bare detail
    (``InvalidNick``, ``UsageError``) is only "an error with no text of its
    own": in this door those kinds look alike.
    """
    matches = [(fixed, kind) for kind, (p, fixed) in KINDS.items() if p.fullmatch(line)]
    best = max((fixed for fixed, _ in matches), default=None)
    return {kind for fixed, kind in matches if fixed == best}


#: The door's answers to registering and to operator logins
#: (:class:`~chatservice.doors.native.protocol.ChatProtocol`).
REGISTERED = REPLY + "you are {nick}; you are in #{room}"
OPERATOR = REPLY + "you are now an operator (as {account}); /help lists your commands"
#: Its answers that say which room plain lines now go to.
CURRENT_ROOM = re.compile(
    re.escape(REPLY) + r"(?:you are \S+; you are in|now talking in) #(\S+)"
)


@dataclass
class NativeClient:
    """One client of the native door."""

    connection: Connection[LineClient]
    #: The room its plain lines go to, as far as the door has said.
    current: str | None = None


class NativeDriver:
    """The native door, driven by its lines (a :class:`~tests.behaviour.DoorDriver`)."""

    def __init__(self, factory: ChatFactory, network: Network) -> None:
        self.factory = factory
        self.network = network

    def send(self, client: NativeClient, line: str) -> None:
        """Send a line, read by the server at once."""
        client.connection.client.sendLine(line.encode("utf-8"))
        client.connection.push()

    # Actions

    def connect(self) -> NativeClient:
        return NativeClient(self.network.connect(self.factory, LineClient()))

    def register(self, client: NativeClient, nick: str) -> None:
        self.send(client, f"/nick {nick}")

    def join(self, client: NativeClient, room: str) -> None:
        self.send(client, f"/join #{room}")
        client.current = room

    def part(self, client: NativeClient, room: str, reason: str) -> None:
        self.send(client, f"/part #{room} {reason}")
        if client.current == room:
            client.current = None  # the door says which room is current now

    def say(self, client: NativeClient, room: str, text: str) -> None:
        if client.current != room:
            self.join(client, room)  # switches to a room the client is in
        self.send(client, "/" + text if text.startswith("/") else text)

    def whisper(self, client: NativeClient, nick: str, text: str) -> None:
        self.send(client, f"/msg {nick} {text}")

    def notice(self, client: NativeClient, room: str, text: str) -> None:
        self.send(client, f"/notice #{room} {text}")

    def private_notice(self, client: NativeClient, nick: str, text: str) -> None:
        self.send(client, f"/notice {nick} {text}")

    def quit(self, client: NativeClient, reason: str) -> None:
        self.send(client, f"/quit {reason}")

    def oper(self, client: NativeClient, account: str, password: str) -> None:
        self.send(client, f"/oper {account} {password}")

    def kick(self, client: NativeClient, nick: str, reason: str) -> None:
        self.send(client, f"/kick {nick} {reason}")

    def stop_reading(self, client: NativeClient) -> None:
        client.connection.stop_reading()

    # What a client saw

    def take(self, client: NativeClient) -> list[str]:
        lines = client.connection.client.take()
        for line in lines:
            current = CURRENT_ROOM.fullmatch(line)
            if current is not None:
                client.current = current.group(1)
        return lines

    def disconnected(self, client: NativeClient) -> bool:
        return client.connection.closed

    # Recognisers

    def is_registered(self, seen: str, nick: str) -> bool:
        return like(REGISTERED.format(nick=nick, room=ANY)).fullmatch(seen) is not None

    def is_operator(self, seen: str, account: str) -> bool:
        return seen == OPERATOR.format(account=account)

    def is_message(self, seen: str, room: str, nick: str, text: str) -> bool:
        return seen == render(events.RoomMessage(room, nick, text))

    def is_private(self, seen: str, sender: str, recipient: str, text: str) -> bool:
        # The recipient's line names the sender, the sender's copy the
        # recipient (docs/protocol.rst).
        return seen in (f"*{sender}* {text}", f"-> *{recipient}* {text}")

    def is_notice(self, seen: str, room: str, nick: str, text: str) -> bool:
        return seen == render(events.RoomMessage(room, nick, text, notice=True))

    def is_private_notice(
        self, seen: str, sender: str, recipient: str, text: str
    ) -> bool:
        sent = events.PrivateMessage(sender, recipient, text, notice=True)
        return seen in (private_line(sent, True), private_line(sent, False))

    def is_joined(self, seen: str, room: str, nick: str) -> bool:
        return seen == render(events.Joined(room, nick))

    def is_parted(self, seen: str, room: str, nick: str, reason: str) -> bool:
        return seen == render(events.Parted(room, nick, reason))

    def is_quit(self, seen: str, nick: str, reason: str | None = None) -> bool:
        if reason is not None:
            return seen == render(events.Quit(nick, reason))
        return seen == render(events.Quit(nick)) or bool(
            like(render(events.Quit(nick, ANY))).fullmatch(seen)
        )

    def is_kicked(self, seen: str, nick: str, by: str, reason: str) -> bool:
        return seen == render(events.Kicked(nick, by, reason))

    def is_error(self, seen: str, kind: type[ChatError], **facts: object) -> bool:
        if kind not in kinds_of(seen):
            return False
        line = error_line(kind, facts)
        return line is not None and like(line).fullmatch(seen) is not None

    def is_farewell(self, seen: str, reason: str) -> bool:
        return seen.startswith(ERROR_PREFIX) and reason in seen


class NativeBehaviourTests(ChatBehaviourTests, SynchronousTestCase):
    """The chat's behaviour through the native door."""

    def makeDriver(self) -> NativeDriver:
        factory = ChatFactory(
            self.hub, self.limits, self.clock, authenticator=self.authenticator
        )
        return NativeDriver(factory, self.network)
