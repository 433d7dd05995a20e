"""
The chat's native door: the line protocol ``nc``, ``telnet`` and
``chatservice-client`` speak.  A thin adapter between lines and the
:class:`~chatservice.chat.hub.Hub`: it parses ``/commands``, calls the hub,
and shows events and refusals as :mod:`~chatservice.doors.native.render`
says; ``docs/protocol.rst`` documents the wire format.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, ClassVar

from twisted.internet.interfaces import IReactorTime
from twisted.python.failure import Failure

from chatservice.chat import events
from chatservice.chat.durations import format_duration
from chatservice.chat.errors import ChatError, Refused, UsageError
from chatservice.chat.hub import Hub
from chatservice.chat.model import Session
from chatservice.chat.names import MAX_NICK_LENGTH, check_room, fold
from chatservice.chat.text import visible
from chatservice.conn.connection import HOLD_REPLAY
from chatservice.conn.limits import Limits
from chatservice.doors.door import Door, DoorContext, seconds
from chatservice.doors.line import LineFactory
from chatservice.doors.member import MemberProtocol
from chatservice.doors.native.render import (
    ANNOUNCEMENT,
    NOTICE,
    REPLY,
    TIMED_WIRE,
    WIRE,
    encode,
    encode_timed,
    render_error,
    time_tag,
)
from chatservice.doors.operations import COMMANDS as OPERATOR_COMMANDS
from chatservice.doors.operations import Operations

if TYPE_CHECKING:
    from chatservice.doors.line import Authenticator


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
    "history": Command(
        "[ROOM] [N]",
        "show the last N messages of a room (default: current)",
        "do_history",
    ),
    "timestamps": Command(
        "[on|off]",
        "start each line of what happens with its time: @time=... (UTC)",
        "do_timestamps",
    ),
}
#: Commands /help lists only when the server keeps history.
_HISTORY_COMMANDS = frozenset({"history"})
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

    #: Seconds a new connection has to choose a nickname (0: no limit); the
    #: chat's registration deadline (``Limits.registration_timeout``).
    nick_timeout: float = 20.0
    #: Lines shown after the greeting (the message of the day).
    motd: tuple[str, ...] = ()
    #: Messages of a room replayed to a member who joins it (0: none), when
    #: the hub has a store; also what ``/history`` shows unless told.
    replay: int = 50


#: What ``/history`` shows at most, and unless told when replay is off.
MAX_HISTORY = 500
DEFAULT_HISTORY = 50


class _Replay:
    """A replay being read: deliveries to the member wait behind it."""

    __slots__ = ("data",)

    def __init__(self) -> None:
        #: Its lines, once read.
        self.data: bytes | None = None


class ChatProtocol(MemberProtocol):
    """One chat client on the line protocol: a :class:`Member` of the hub."""

    factory: ChatFactory
    session: Session | None = None
    flood_controlled = True
    commands: ClassVar[dict[str, Command]] = COMMANDS
    #: The door's name in history (where a message was said).
    door_name: ClassVar[str] = "chat"
    #: Whether event lines start with their time (``/timestamps on``).
    timestamps: bool = False
    #: While a replay is being read: what is delivered meanwhile, in order
    #: behind it (``None``: nothing waits).
    _behind: list[bytes | _Replay] | None = None

    # Life cycle

    def connectionAdmitted(self) -> None:
        factory = self.factory
        refusal = self.joinHub()
        if refusal is not None:
            self.close(render_error(refusal), error=True)
            return
        self.sendText(
            f"{NOTICE}Welcome to chatservice! Choose a nickname: type it, or "
            "/nick NAME. /help lists commands."
        )
        for line in factory.settings.motd:
            self.sendText(f"{NOTICE}{visible(line)}")

    late_message = "no nickname chosen within {timeout:g} s; closing"

    # The hub's side (Member)

    def deliver(self, event: events.Event) -> None:
        if self.closing:
            return  # nothing follows a closing connection's last line
        if isinstance(event, events.PrivateMessage):
            data = self._private_line(event)  # worded for sender or recipient
        elif self.timestamps:
            data = event.encoded(TIMED_WIRE, encode_timed)
        else:
            data = event.encoded(WIRE, encode)
        if self._behind is not None:
            self._behind.append(data)  # a replay is being read: after it
            return
        # Queued: one write per recipient for everything the reactor turn
        # delivers to it; the send-queue limit applies.
        self.queue(data)

    # History

    def _replay(self, room: str, count: int, footer: bool = False) -> None:
        """
        Show the last ``count`` messages of a room, marked as history.  What
        is delivered to this member until they have been read waits behind
        them, and lines the client sends wait too: nothing is lost or shown
        twice at the boundary, since the store answers with every message
        said before this call and none after.  ``footer``: end with a
        reply line (``/history``).
        """
        hub = self.factory.hub
        if count <= 0:
            return
        replay = _Replay()
        if self._behind is None:
            self._behind = []
        self._behind.append(replay)

        def arrived(messages: list[events.RoomMessage]) -> None:
            data = b""
            if messages:
                data = events.History(room, tuple(messages)).encoded(WIRE, encode)
            if footer:
                plural = "s" if len(messages) != 1 else ""
                data += (
                    f"{REPLY}end of history of #{room} ({len(messages)} "
                    f"message{plural})\r\n"
                ).encode()
            replay.data = data
            self._release_behind()

        def failed(failure: Failure) -> None:
            self.log.failure("history of #{room}", failure, room=room)
            replay.data = f"!!! the history of #{room} cannot be read now\r\n".encode()
            self._release_behind()

        result = hub.history(room, count)
        result.addCallbacks(arrived, failed)
        if replay.data is None:
            self.holdInput(HOLD_REPLAY)

    def _release_behind(self) -> None:
        behind = self._behind
        while behind:
            first = behind[0]
            if isinstance(first, _Replay):
                if first.data is None:
                    return  # still being read
                data = first.data
            else:
                data = first
            del behind[0]
            if data and not self.closing:
                self.queue(data)
        self._behind = None
        self.releaseInput(HOLD_REPLAY)

    def _private_line(self, event: events.PrivateMessage) -> bytes:
        mine = self.session is not None and self.session.nick == event.recipient
        if mine:
            line = f"*{event.sender}* {event.text}\r\n"
        else:
            line = f"-> *{event.recipient}* {event.text}\r\n"
        if self.timestamps:
            line = time_tag(event.at) + line
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
            self.sendError(render_error(error))

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
            self.sendError(render_error(error))

    def reply(self, text: str) -> None:
        """Answer a command."""
        self.sendText(REPLY + text)

    def _choose_nick(self, wanted: str) -> None:
        assert self.session is not None
        first = self.session.nick is None
        before = self.session.nick

        def chosen(nick: str) -> None:
            if nick == before:
                self.reply(f"you are {nick} already")
            if first:
                # Off the strangers' budget (the hub counts the chat's clients).
                self.register()
                room = self.factory.hub.default_room
                self.reply(f"you are {nick}; you are in #{room}")
                self._join_replay(room)

        # Claimed through the backend: lines sent meanwhile wait for it.
        claim = self.factory.hub.set_nick(self.session, wanted)
        self.awaitResult(claim, chosen, self._refused)

    def _refused(self, failure: Failure) -> None:
        failure.trap(ChatError)
        error = failure.value
        assert isinstance(error, ChatError)
        if isinstance(error, Refused):
            # Every place was taken while this client chose its nickname.
            self.close(render_error(error), error=True)
            return
        self.sendError(render_error(error))

    # Commands

    def do_nick(self, args: str, name: str) -> None:
        if not args:
            raise UsageError(
                f"usage: /nick NAME (at most {MAX_NICK_LENGTH} characters)"
            )
        self._choose_nick(args)

    def do_join(self, args: str, name: str) -> None:
        if not args:
            raise UsageError("usage: /join ROOM")
        assert self.session is not None
        already = len(self.session.rooms)
        room = self.factory.hub.join(self.session, args.split()[0])
        if len(self.session.rooms) == already:
            self.reply(f"now talking in #{room.name}")
        if room.topic:
            self.reply(f"topic of #{room.name}: {room.topic}")
        if len(self.session.rooms) > already:
            self._join_replay(room.name)

    def _join_replay(self, room: str) -> None:
        if self.factory.hub.store is not None:
            self._replay(room, self.factory.settings.replay)

    def do_history(self, args: str, name: str) -> None:
        assert self.session is not None
        hub = self.factory.hub
        count = self.factory.settings.replay or DEFAULT_HISTORY
        room_name: str | None = None
        for word in args.split():
            if word.isdigit():
                count = min(int(word), MAX_HISTORY)
            elif room_name is None:
                room_name = word
            else:
                raise UsageError("usage: /history [ROOM] [N]")
        if hub.store is None:
            self.reply("this server keeps no history")
            return
        if room_name is None:
            shown = hub.who(self.session).name
        else:
            shown = check_room(room_name)
            existing = hub.rooms.get(fold(shown))
            if existing is not None:
                shown = existing.name
        self._replay(shown, max(count, 1), footer=True)

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
            raise UsageError("usage: /me ACTION")
        assert self.session is not None
        self.factory.hub.say(self.session, args, action=True)

    def do_msg(self, args: str, name: str) -> None:
        nick, _, text = args.partition(" ")
        if not nick or not text.strip():
            raise UsageError("usage: /msg NICK TEXT")
        assert self.session is not None
        self.factory.hub.whisper(self.session, nick, text)

    def do_whois(self, args: str, name: str) -> None:
        if not args:
            raise UsageError("usage: /whois NICK")
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
        self.leaveHub(args)
        self.close(f"{NOTICE}Goodbye.")

    def do_help(self, args: str, name: str) -> None:
        wanted = args.lstrip("/").lower()
        if wanted:
            command = self.commands.get(_ALIASES.get(wanted, wanted))
            if command is None:
                raise UsageError(f"no command /{wanted}; /help lists commands")
            self.reply(f"/{wanted} {command.args}".rstrip() + f": {command.help}")
            return
        self.reply("A line not starting with / is said to your current room.")
        self.reply("Start it with // to say a line that starts with /.")
        keeps = self.factory.hub.store is not None
        for command_name, command in self.commands.items():
            if command_name in _HISTORY_COMMANDS and not keeps:
                continue
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

    def do_timestamps(self, args: str, name: str) -> None:
        setting = args.strip().lower()
        if setting not in ("", "on", "off"):
            raise UsageError("usage: /timestamps [on|off]")
        if setting:
            self.timestamps = setting == "on"
        self.reply(f"timestamps {'on' if self.timestamps else 'off'}")

    def do_oper(self, args: str, name: str) -> None:
        account, _, password = args.partition(" ")
        if not account or not password:
            raise UsageError("usage: /oper NAME PASSWORD")
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
        settings = settings if settings is not None else ChatSettings()
        super().__init__(
            replace(
                limits or Limits(),
                max_clients=0,
                registration_timeout=settings.nick_timeout,
            ),
            clock,
        )
        self.hub = hub
        # Every reply waits for the room messages said before it.
        self.sync = hub.flush
        # Nothing is sent ahead of the history's commit of it.
        self.gate = hub.gate
        self.settings = settings if settings is not None else ChatSettings()
        self.authenticator = authenticator
        self.operations = operations if operations is not None else Operations(hub)


def read_motd(path: str) -> tuple[str, ...]:
    """The lines of a message-of-the-day file (UTF-8)."""
    with open(path, encoding="utf-8") as motd:
        return tuple(motd.read().splitlines())


_DEFAULT_SETTINGS = ChatSettings()
#: Chat users lurk; they are not cut off as soon as echo clients.
DEFAULT_CHAT_IDLE_TIMEOUT = 3600.0


def _check(options: Any) -> None:
    from twisted.python import usage

    options.motd = ()
    if options["motd-file"]:
        try:
            options.motd = read_motd(options["motd-file"])
        except (OSError, UnicodeDecodeError) as error:
            raise usage.UsageError(f"--motd-file: {error}") from None


def _build(context: DoorContext) -> ChatFactory:
    options, chat = context.options, context.chat
    return ChatFactory(
        chat.hub,
        replace(context.limits, idle_timeout=options["chat-idle-timeout"]),
        context.reactor,
        settings=ChatSettings(
            nick_timeout=options["nick-timeout"],
            motd=options.motd,
            replay=options["history-replay"],
        ),
        authenticator=chat.authenticator,
        operations=chat.operations,
    )


DOOR = Door(
    name="chat",
    summary="the chat service",
    default_endpoint="tcp:6666",
    build=_build,
    parameters=[
        [
            "motd-file",
            None,
            None,
            "File whose lines greet every chat client [default: none].",
        ],
        [
            "nick-timeout",
            None,
            _DEFAULT_SETTINGS.nick_timeout,
            "Seconds a chat client has to choose a nickname (0: no limit).",
            seconds,
        ],
        [
            "chat-idle-timeout",
            None,
            DEFAULT_CHAT_IDLE_TIMEOUT,
            "Seconds without input before a chat client is closed (0: never).",
            seconds,
        ],
    ],
    check=_check,
)
