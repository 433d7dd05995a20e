"""
The chat's behaviour (:mod:`tests.behaviour`) through the IRC door: an
:class:`IRCDriver` that speaks IRC (``docs/irc.rst``) on in-memory
connections (:mod:`chatservice.testing`).

The driver registers as IRC clients do (``CAP REQ :echo-message``, so that
a client sees its own messages as the suite expects; ``NICK``; ``USER``;
``CAP END``), and the door is set to auto-join the default room, as the
suite's chat does.  What the door shows is parsed with the door's own
parser; refusals are recognised by their numerics
(:func:`~chatservice.doors.irc.render.numeric_for`), never by their text.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from twisted.trial.unittest import SynchronousTestCase

from chatservice.chat import errors
from chatservice.chat.errors import ChatError
from chatservice.doors.irc.message import Message, parse
from chatservice.doors.irc.protocol import IRCFactory, IRCSettings
from chatservice.doors.irc.render import KICKED, numeric_for
from chatservice.testing import Connection, LineClient, Network
from tests.behaviour import ChatBehaviourTests

SERVER = "irc.test"

#: One instance of each kind of error the suite asks about, to learn its
#: numeric from the door's own table (the facts do not change the code).
_SAMPLES: dict[type[ChatError], ChatError] = {
    errors.NickInUse: errors.NickInUse("x"),
    errors.NickLookalike: errors.NickLookalike("x", "y"),
    errors.InvalidNick: errors.InvalidNick("x", "bad"),
    errors.NoSuchNick: errors.NoSuchNick("x"),
    errors.NotOperator: errors.NotOperator("KICK"),
    errors.NotInRoom: errors.NotInRoom("x"),
    errors.NoSuchRoom: errors.NoSuchRoom("x"),
}


@dataclass
class IRCClient:
    """One client of the IRC door."""

    connection: Connection[LineClient]
    registering: bool = True
    received: list[Message] = field(default_factory=list)


def nick_of(message: Message) -> str:
    """The nickname in a message's prefix (``nick!user@host``)."""
    return message.prefix.split("!", 1)[0]


class IRCDriver:
    """The IRC door, driven by IRC messages (a :class:`~tests.behaviour.DoorDriver`)."""

    def __init__(self, factory: IRCFactory, network: Network) -> None:
        self.factory = factory
        self.network = network

    def send(self, client: IRCClient, *lines: str) -> None:
        """Send lines, read by the server at once."""
        for line in lines:
            client.connection.client.sendLine(line.encode("utf-8"))
        client.connection.push()

    # Actions

    def connect(self) -> IRCClient:
        return IRCClient(self.network.connect(self.factory, LineClient()))

    def register(self, client: IRCClient, nick: str) -> None:
        if client.registering:
            client.registering = False
            self.send(
                client,
                "CAP REQ :echo-message",
                f"NICK {nick}",
                "USER user 0 * :A user",
                "CAP END",
            )
        else:
            self.send(client, f"NICK {nick}")

    def join(self, client: IRCClient, room: str) -> None:
        self.send(client, f"JOIN #{room}")

    def part(self, client: IRCClient, room: str, reason: str) -> None:
        self.send(client, f"PART #{room} :{reason}")

    def say(self, client: IRCClient, room: str, text: str) -> None:
        self.send(client, f"PRIVMSG #{room} :{text}")

    def whisper(self, client: IRCClient, nick: str, text: str) -> None:
        self.send(client, f"PRIVMSG {nick} :{text}")

    def notice(self, client: IRCClient, room: str, text: str) -> None:
        self.send(client, f"NOTICE #{room} :{text}")

    def private_notice(self, client: IRCClient, nick: str, text: str) -> None:
        self.send(client, f"NOTICE {nick} :{text}")

    def quit(self, client: IRCClient, reason: str) -> None:
        self.send(client, f"QUIT :{reason}")

    def oper(self, client: IRCClient, account: str, password: str) -> None:
        self.send(client, f"OPER {account} {password}")

    def kick(self, client: IRCClient, nick: str, reason: str) -> None:
        self.send(client, f"KILL {nick} :{reason}")

    def stop_reading(self, client: IRCClient) -> None:
        client.connection.stop_reading()

    # What a client saw

    def take(self, client: IRCClient) -> list[Message]:
        return [parse(line) for line in client.connection.client.take()]

    def disconnected(self, client: IRCClient) -> bool:
        return client.connection.closed

    # Recognisers

    def is_registered(self, seen: Message, nick: str) -> bool:
        return seen.command == "001" and seen.params[0] == nick

    def is_operator(self, seen: Message, account: str) -> bool:
        return seen.command == "381" and f"(as {account})" in seen.params[-1]

    def is_message(self, seen: Message, room: str, nick: str, text: str) -> bool:
        return (
            seen.command == "PRIVMSG"
            and nick_of(seen) == nick
            and seen.params == [f"#{room}", text]
        )

    def is_private(self, seen: Message, sender: str, recipient: str, text: str) -> bool:
        return (
            seen.command == "PRIVMSG"
            and nick_of(seen) == sender
            and seen.params == [recipient, text]
        )

    def is_notice(self, seen: Message, room: str, nick: str, text: str) -> bool:
        return (
            seen.command == "NOTICE"
            and nick_of(seen) == nick
            and seen.params == [f"#{room}", text]
        )

    def is_private_notice(
        self, seen: Message, sender: str, recipient: str, text: str
    ) -> bool:
        return (
            seen.command == "NOTICE"
            and nick_of(seen) == sender
            and seen.params == [recipient, text]
        )

    def is_joined(self, seen: Message, room: str, nick: str) -> bool:
        return (
            seen.command == "JOIN"
            and nick_of(seen) == nick
            and seen.params == [f"#{room}"]
        )

    def is_parted(self, seen: Message, room: str, nick: str, reason: str) -> bool:
        return (
            seen.command == "PART"
            and nick_of(seen) == nick
            and seen.params == ([f"#{room}", reason] if reason else [f"#{room}"])
        )

    def is_quit(self, seen: Message, nick: str, reason: str | None = None) -> bool:
        if seen.command != "QUIT" or nick_of(seen) != nick:
            return False
        said = seen.params[0] if seen.params else ""
        if reason is not None:
            return said == f"Quit: {reason}"
        return not said.startswith(KICKED.format(by=""))

    def is_kicked(self, seen: Message, nick: str, by: str, reason: str) -> bool:
        return (
            seen.command == "QUIT"
            and nick_of(seen) == nick
            and seen.params == [KICKED.format(by=by) + f" ({reason})"]
        )

    def is_error(self, seen: Message, kind: type[ChatError], **facts: object) -> bool:
        code = numeric_for(_SAMPLES[kind]).code
        if seen.command != code:
            return False
        # The fact a numeric names comes right after the client's nick;
        # a look-alike names the other nickname in its text.
        for name, value in facts.items():
            if name == "other":
                if str(value) not in seen.params[-1]:
                    return False
            elif len(seen.params) < 2 or seen.params[1] != value:
                return False
        if kind is errors.NickLookalike:
            return "looks" in seen.params[-1]
        if kind is errors.NickInUse:
            return "looks" not in seen.params[-1]
        return True

    def is_farewell(self, seen: Message, reason: str) -> bool:
        return seen.command == "ERROR" and reason in seen.params[-1]


class IRCBehaviourTests(ChatBehaviourTests, SynchronousTestCase):
    """The chat's behaviour through the IRC door."""

    def makeDriver(self) -> IRCDriver:
        settings = IRCSettings(server_name=SERVER, auto_join=(self.hub.default_room,))
        factory = IRCFactory(
            self.hub,
            self.limits,
            self.clock,
            settings=settings,
            authenticator=self.authenticator,
        )
        return IRCDriver(factory, self.network)
