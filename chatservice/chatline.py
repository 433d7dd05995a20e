"""
The chat's native line protocol: what ``nc``, ``telnet`` and
``chatservice-client`` speak.  A thin adapter between lines and the
:class:`~chatservice.chat.core.Hub`; ``docs/protocol.rst`` documents the
wire format.

Every server line starts with a marker saying what it is::

    #ROOM <NICK> TEXT        a message in a room
    #ROOM * NICK TEXT        an action (/me) in a room
    *NICK* TEXT              a private message to you
    -> *NICK* TEXT           a private message you sent
    -!- TEXT                 a notice: joins, parts, renames, topics, kicks
    *** TEXT                 an announcement to everyone, shutdown
    --- TEXT                 the answer to a command
    !!! TEXT                 an error
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, ClassVar

from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.python.failure import Failure

from chatservice.chat import events
from chatservice.chat.core import Hub, Session, format_duration
from chatservice.chat.errors import ChatError, RefusedError
from chatservice.chat.names import MAX_NICK_LENGTH
from chatservice.limits import Limits
from chatservice.lines import (
    ANNOUNCEMENT_PREFIX,
    REPLY_PREFIX,
    LineFactory,
    LineProtocol,
)
from chatservice.operations import COMMANDS as OPERATOR_COMMANDS
from chatservice.operations import Operations
from chatservice.text import visible

if TYPE_CHECKING:
    from chatservice.auth import Authenticator

NOTICE = "-!- "
ANNOUNCEMENT = ANNOUNCEMENT_PREFIX
REPLY = REPLY_PREFIX


def render(event: events.Event) -> str:
    """The line that shows an event to every recipient alike."""
    match event:
        case events.RoomMessage(room=room, nick=nick, text=text, action=False):
            return f"#{room} <{nick}> {text}"
        case events.RoomMessage(room=room, nick=nick, text=text):
            return f"#{room} * {nick} {text}"
        case events.Joined(room=room, nick=nick):
            return f"{NOTICE}{nick} has joined #{room}"
        case events.Parted(room=room, nick=nick, reason=reason):
            return f"{NOTICE}{nick} has left #{room}{_because(reason)}"
        case events.Quit(nick=nick, reason=reason):
            return f"{NOTICE}{nick} has quit{_because(reason)}"
        case events.NickChanged(old=old, new=new):
            return f"{NOTICE}{old} is now known as {new}"
        case events.TopicChanged(room=room, nick=nick, topic=""):
            return f"{NOTICE}{nick} cleared the topic of #{room}"
        case events.TopicChanged(room=room, nick=nick, topic=topic):
            return f"{NOTICE}{nick} changed the topic of #{room} to: {topic}"
        case events.Kicked(nick=nick, by=by, reason=reason):
            return f"{NOTICE}{nick} was kicked by {by}{_because(reason)}"
        case events.Announcement(text=text, by=by):
            return f"{ANNOUNCEMENT}{by}: {text}"
    raise TypeError(f"no line format for {event!r}")


def _because(reason: str) -> str:
    return f" ({reason})" if reason else ""


def encode(event: events.Event) -> bytes:
    """
    An event's line (or lines, for several room messages), terminated and
    encoded: made once per event, whatever the number of recipients.
    """
    if isinstance(event, events.RoomMessages):
        return "".join(render(m) + "\r\n" for m in event.messages).encode("utf-8")
    return (render(event) + "\r\n").encode("utf-8")


@dataclass(frozen=True)
class Command:
    """One ``/command``: its arguments, help, and handler method."""

    args: str
    help: str
    method: str
    operator: bool = False


_USER_COMMANDS: dict[str, Command] = {
    "nick": Command("NAME", "choose or change your nickname", "do_nick"),
    "join": Command("ROOM", "join a room (created if new) and talk there", "do_join"),
    "part": Command("[ROOM [REASON]]", "leave a room (default: current)", "do_part"),
    "rooms": Command("", "list rooms with member counts and topics", "do_rooms"),
    "who": Command("[ROOM]", "list the members of a room", "do_who"),
    "topic": Command(
        "[TEXT|-]", "show, set, or (with -) clear the current room's topic", "do_topic"
    ),
    "me": Command("ACTION", "say an action: /me waves", "do_me"),
    "msg": Command("NICK TEXT", "send a private message", "do_msg"),
    "whois": Command("NICK", "show a user's rooms and idle time", "do_whois"),
    "quit": Command("[MESSAGE]", "leave the chat", "do_quit"),
    "help": Command("[COMMAND]", "list commands, or explain one", "do_help"),
    "oper": Command("NAME PASSWORD", "log in as an operator", "do_oper"),
}
_ALIASES = {"list": "rooms", "names": "who", "m": "msg", "query": "msg", "exit": "quit"}
COMMANDS: dict[str, Command] = {
    **_USER_COMMANDS,
    **{
        name: Command(args, text, "do_operator", operator=True)
        for name, (args, text) in OPERATOR_COMMANDS.items()
    },
}


@dataclass(frozen=True)
class ChatSettings:
    """What the chat front end needs beyond the shared line limits."""

    #: Seconds a new connection has to choose a nickname (0: no limit).
    nick_timeout: float = 60.0
    #: Lines shown after the greeting (the message of the day).
    motd: tuple[str, ...] = ()


class ChatProtocol(LineProtocol):
    """One chat client on the line protocol: a :class:`Member` of the hub."""

    factory: ChatFactory
    session: Session | None = None
    _nick_timer: IDelayedCall | None = None
    flood_controlled = True
    commands: ClassVar[dict[str, Command]] = COMMANDS

    # Life cycle

    def connectionAdmitted(self) -> None:
        factory = self.factory
        # Chat lines are small and should leave at once: no Nagle delay.
        set_no_delay = getattr(self.transport, "setTcpNoDelay", None)
        if set_no_delay is not None:
            set_no_delay(True)
        try:
            self.session = factory.hub.connect(self, self.host)
        except RefusedError as refusal:
            self.close(refusal.message, error=True)
            return
        self.sendText(
            f"{NOTICE}Welcome to chatservice! Choose a nickname: type it, or "
            "/nick NAME. /help lists commands."
        )
        for line in factory.settings.motd:
            self.sendText(f"{NOTICE}{visible(line)}")
        timeout = factory.settings.nick_timeout
        if timeout > 0:
            self._nick_timer = factory.clock.callLater(timeout, self._nick_timed_out)

    def _nick_timed_out(self) -> None:
        self._nick_timer = None
        if self.session is not None and self.session.nick is None:
            timeout = self.factory.settings.nick_timeout
            self.close(f"no nickname chosen within {timeout:g} s; closing", error=True)

    def connectionClosed(self, reason: Failure) -> None:
        if self._nick_timer is not None and self._nick_timer.active():
            self._nick_timer.cancel()
        self._nick_timer = None
        if self.session is not None:
            self.factory.hub.disconnect(self.session, self.lost_reason)
            self.session = None

    def endOfInput(self) -> None:
        self._leave("end of input")
        self.close()

    # The hub's side (Member)

    def deliver(self, event: events.Event) -> None:
        if self.closing:
            return  # nothing follows a closing connection's last line
        if isinstance(event, events.PrivateMessage):
            data = self._private_line(event)  # worded for sender or recipient
        else:
            data = event.encoded("line", encode)
        # Queued: one write per recipient for everything the reactor turn
        # delivers to it; the send-queue limit applies.
        self.queue(data)

    def _private_line(self, event: events.PrivateMessage) -> bytes:
        mine = self.session is not None and self.session.nick == event.recipient
        if mine:
            line = f"*{event.sender}* {event.text}\r\n"
        else:
            line = f"-> *{event.recipient}* {event.text}\r\n"
        return line.encode("utf-8")

    def disconnect(self, reason: str) -> None:
        self.session = None  # the hub has let go of it already
        self.close(f"disconnected: {reason}", error=True)

    # Input

    def textReceived(self, text: str) -> None:
        session = self.session
        if session is None:
            return
        if text.startswith("/") and not text.startswith("//"):
            name, _, args = text[1:].partition(" ")
            self._command(name.lower(), args.strip())
            return
        if text.startswith("//"):
            text = text[1:]  # "//x" says "/x"
        elif not text.strip():
            return  # empty lines are ignored, before registration too
        try:
            if session.nick is None:
                self._choose_nick(text)
            elif text.strip():
                self.factory.hub.say(session, text)
        except ChatError as error:
            self.sendError(error.message)

    def _command(self, name: str, args: str) -> None:
        resolved = _ALIASES.get(name, name)
        own = self.commands.get(name)
        if (
            own is not None
            and own.operator
            and self.session is not None
            and self.session.operator is not None
        ):
            resolved = name  # an operator's /list lists connections, not rooms
        command = self.commands.get(resolved)
        if command is None:
            self.sendError(f"unknown command /{name}; /help lists commands")
            return
        try:
            getattr(self, command.method)(args, name=resolved)
        except ChatError as error:
            self.sendError(error.message)

    def sendLine(self, line: bytes) -> None:
        # Room messages said before this line reach this member before it.
        self.factory.hub.flush()
        super().sendLine(line)

    def beforeClose(self) -> None:
        # While it can still be delivered to: what was said before it was
        # closed is for it too.
        self.factory.hub.flush()

    def reply(self, text: str) -> None:
        """Answer a command."""
        self.sendText(REPLY + text)

    def _choose_nick(self, wanted: str) -> None:
        assert self.session is not None
        first = self.session.nick is None
        before = self.session.nick
        nick = self.factory.hub.set_nick(self.session, wanted)
        if nick == before:
            self.reply(f"you are {nick} already")
        if first:
            if self._nick_timer is not None and self._nick_timer.active():
                self._nick_timer.cancel()
            self._nick_timer = None
            self.reply(f"you are {nick}; you are in #{self.factory.hub.default_room}")

    # Commands

    def do_nick(self, args: str, name: str) -> None:
        if not args:
            raise ChatError(f"usage: /nick NAME (at most {MAX_NICK_LENGTH} characters)")
        self._choose_nick(args)

    def do_join(self, args: str, name: str) -> None:
        if not args:
            raise ChatError("usage: /join ROOM")
        assert self.session is not None
        already = len(self.session.rooms)
        room = self.factory.hub.join(self.session, args.split()[0])
        if len(self.session.rooms) == already:
            self.reply(f"now talking in #{room.name}")
        if room.topic:
            self.reply(f"topic of #{room.name}: {room.topic}")

    def do_part(self, args: str, name: str) -> None:
        assert self.session is not None
        room_name, _, reason = args.partition(" ")
        self.factory.hub.part(self.session, room_name or None, reason.strip())
        current = self.session.current
        if current is not None:
            self.reply(f"now talking in #{current.name}")
        else:
            self.reply("you are in no room; /join ROOM to talk")

    def do_rooms(self, args: str, name: str) -> None:
        rooms = self.factory.hub.all_rooms()
        self.reply(f"{len(rooms)} room{'s' if len(rooms) != 1 else ''}")
        for room in rooms:
            topic = f": {room.topic}" if room.topic else ""
            self.reply(f"#{room.name} ({len(room.members)}){topic}")

    def do_who(self, args: str, name: str) -> None:
        assert self.session is not None
        room = self.factory.hub.who(self.session, args.split()[0] if args else None)
        nicks = room.nicks()
        self.reply(f"#{room.name} ({len(nicks)}): {' '.join(nicks)}")

    def do_topic(self, args: str, name: str) -> None:
        assert self.session is not None
        hub = self.factory.hub
        if args == "-":
            hub.set_topic(self.session, "")
            return
        if args:
            hub.set_topic(self.session, args)
            return
        room = hub.who(self.session)
        self.reply(f"topic of #{room.name}: {room.topic or '(none)'}")

    def do_me(self, args: str, name: str) -> None:
        if not args:
            raise ChatError("usage: /me ACTION")
        assert self.session is not None
        self.factory.hub.say(self.session, args, action=True)

    def do_msg(self, args: str, name: str) -> None:
        nick, _, text = args.partition(" ")
        if not nick or not text.strip():
            raise ChatError("usage: /msg NICK TEXT")
        assert self.session is not None
        self.factory.hub.whisper(self.session, nick, text)

    def do_whois(self, args: str, name: str) -> None:
        if not args:
            raise ChatError("usage: /whois NICK")
        assert self.session is not None
        hub = self.factory.hub
        target = hub.find(args.split()[0])
        now = hub.clock()
        rooms = " ".join(f"#{r.name}" for r in target.rooms) or "no rooms"
        idle = format_duration(now - target.last_active)
        age = format_duration(now - target.connected_at)
        line = f"{target.nick}: in {rooms}, idle {idle}, connected {age} ago"
        if target.operator:
            line += ", operator"
        if self.session.operator:
            line += f", from {target.address or 'local'}"
        self.reply(line)

    def do_quit(self, args: str, name: str) -> None:
        self._leave(args)
        self.close(f"{NOTICE}Goodbye.")

    def _leave(self, reason: str) -> None:
        if self.session is not None:
            self.factory.hub.disconnect(self.session, reason)
            self.session = None

    def do_help(self, args: str, name: str) -> None:
        wanted = args.lstrip("/").lower()
        if wanted:
            command = self.commands.get(_ALIASES.get(wanted, wanted))
            if command is None:
                raise ChatError(f"no command /{wanted}; /help lists commands")
            self.reply(f"/{wanted} {command.args}".rstrip() + f": {command.help}")
            return
        self.reply("A line not starting with / is said to your current room.")
        self.reply("Start it with // to say a line that starts with /.")
        for command_name, command in self.commands.items():
            if not command.operator:
                self.reply(
                    f"/{command_name} {command.args}".rstrip() + f": {command.help}"
                )
        self.reply("Operators (after /oper) also have:")
        for command_name, command in self.commands.items():
            if command.operator:
                self.reply(
                    f"/{command_name} {command.args}".rstrip() + f": {command.help}"
                )

    def do_oper(self, args: str, name: str) -> None:
        account, _, password = args.partition(" ")
        if not account or not password:
            raise ChatError("usage: /oper NAME PASSWORD")
        authenticator = self.factory.authenticator
        if authenticator is None:
            raise ChatError(
                "this server has no operators (started without --credentials)"
            )
        self.checkLogin(authenticator, account, password, self.host, self._opered)

    def _opered(self, account: str) -> None:
        assert self.session is not None
        self.factory.hub.grant_operator(self.session, account)
        self.reply(f"you are now an operator (as {account}); /help lists your commands")

    def do_operator(self, args: str, name: str) -> None:
        assert self.session is not None
        by = self.factory.hub.require_operator(self.session, f"/{name}")
        for line in self.factory.operations.run(name, args, by):
            self.reply(line)


class ChatFactory(LineFactory):
    """Builds :class:`ChatProtocol` connections to one :class:`Hub`."""

    protocol = ChatProtocol
    name = "chat"
    shutdown_message = f"{ANNOUNCEMENT}Server shutting down. Goodbye."

    def __init__(
        self,
        hub: Hub,
        limits: Limits | None = None,
        clock: IReactorTime | None = None,
        *,
        settings: ChatSettings | None = None,
        authenticator: Authenticator | None = None,
        operations: Operations | None = None,
    ) -> None:
        # The hub counts clients (its limit changes at run time with /limit);
        # this factory still limits connections per address.
        super().__init__(replace(limits or Limits(), max_clients=0), clock)
        self.hub = hub
        self.settings = settings if settings is not None else ChatSettings()
        self.authenticator = authenticator
        self.operations = operations if operations is not None else Operations(hub)


def read_motd(path: str) -> tuple[str, ...]:
    """The lines of a message-of-the-day file (UTF-8)."""
    with open(path, encoding="utf-8") as motd:
        return tuple(motd.read().splitlines())
