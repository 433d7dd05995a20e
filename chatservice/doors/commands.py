"""
The chat's ``/commands``, shared by every door where people type them: the
native door's lines and the web door's input box.  :class:`ChatCommands`
is a mixin for a door's member connection; it parses a command, calls the
:class:`~chatservice.chat.hub.Hub` and answers through a few methods the
door supplies (:meth:`~ChatCommands.reply`, :meth:`~ChatCommands.sendChatError`,
:meth:`~ChatCommands.replay`...), so a door decides how an answer looks
and never how a command works.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from twisted.python.failure import Failure

from chatservice.chat.durations import format_duration
from chatservice.chat.errors import ChatError, Refused, UsageError
from chatservice.chat.model import Session
from chatservice.chat.names import MAX_NICK_LENGTH, check_room, fold
from chatservice.doors.operations import COMMANDS as OPERATOR_COMMANDS

if TYPE_CHECKING:
    pass


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
    "notice": Command(
        "#ROOM|NICK TEXT",
        "send a notice to a room you are in, or to a nick (never answered)",
        "do_notice",
    ),
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


#: What ``/history`` shows at most, and unless told when replay is off.
MAX_HISTORY = 500
DEFAULT_HISTORY = 50


class ChatCommands:
    """
    The ``/commands`` of a chat door's connection (see the module's
    description).  It expects ``session``, ``factory`` (with ``hub``,
    ``settings``, ``authenticator`` and ``operations``) and the connection
    policy's ``awaitResult``, ``register``, ``close``, ``leaveHub`` and
    ``noteRefusal``.
    """

    session: Session | None
    factory: Any
    #: HubMember's, declared only: a method here would come first.
    noteRefusal: Callable[[Refused], None]
    commands: ClassVar[dict[str, Command]] = COMMANDS
    #: What ``/quit`` says last.
    goodbye: ClassVar[str] = "Goodbye."

    # What the door supplies

    def reply(self, text: str) -> None:
        """Answer a command."""
        raise NotImplementedError

    def sendChatError(self, error: ChatError) -> None:
        """Tell the client a request was refused."""
        raise NotImplementedError

    def replay(self, room: str, count: int, footer: bool = False) -> None:
        """Show the last ``count`` messages of a room (``footer``: /history)."""
        raise NotImplementedError

    def nickChosen(self, nick: str, first: bool) -> None:
        """The hub gave the client ``nick`` (``first``: it has registered)."""
        raise NotImplementedError

    # The policy's (chatservice.conn.connection.Connection, doors.member)

    host: str | None
    checkLogin: Callable[..., None]
    awaitResult: Callable[..., None]
    register: Callable[[], bool]
    close: Callable[..., None]
    leaveHub: Callable[[str], None]

    def typed(self, text: str) -> None:
        """
        A line as typed: a ``/command``, a line said to the current room
        (``//`` says one starting with ``/``), or, before registering, the
        nickname wanted.
        """
        session = self.session
        if session is None:
            return
        if text.startswith("/") and not text.startswith("//"):
            name, _, args = text[1:].partition(" ")
            self.runCommand(name.lower(), args.strip())
            return
        if text.startswith("//"):
            text = text[1:]  # "//x" says "/x"
        elif not text.strip():
            return  # empty lines are ignored, before registration too
        try:
            if session.nick is None:
                self.chooseNick(text)
            elif text.strip():
                self.factory.hub.say(session, text)
        except ChatError as error:
            self.sendChatError(error)

    def runCommand(self, name: str, args: str) -> None:
        """Run ``/name args``; a refusal is told to the client."""
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
            self.sendChatError(
                UsageError(f"unknown command /{name}; /help lists commands")
            )
            return
        try:
            getattr(self, command.method)(args, name=resolved)
        except ChatError as error:
            self.sendChatError(error)

    def chooseNick(self, wanted: str) -> None:
        """Ask the hub for a nickname (the first registers the client)."""
        assert self.session is not None
        first = self.session.nick is None
        before = self.session.nick

        def chosen(nick: str) -> None:
            if nick == before:
                self.reply(f"you are {nick} already")
            if first:
                # Off the strangers' budget (the hub counts the chat's clients).
                self.register()
            self.nickChosen(nick, first)

        # Claimed through the backend: lines sent meanwhile wait for it.
        claim = self.factory.hub.set_nick(self.session, wanted)
        self.awaitResult(claim, chosen, self._refused)

    def closeRefused(self, error: ChatError) -> None:
        """Close a connection the hub will not take, saying why."""
        raise NotImplementedError

    def _refused(self, failure: Failure) -> None:
        failure.trap(ChatError)
        error = failure.value
        assert isinstance(error, ChatError)
        if isinstance(error, Refused):
            # Every place was taken while this client chose its nickname.
            self.noteRefusal(error)
            self.closeRefused(error)
            return
        self.sendChatError(error)

    # Commands

    def do_nick(self, args: str, name: str) -> None:
        if not args:
            raise UsageError(
                f"usage: /nick NAME (at most {MAX_NICK_LENGTH} characters)"
            )
        self.chooseNick(args)

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
            self.joinReplay(room.name)

    def joinReplay(self, room: str) -> None:
        """Replay a room's history to a member who joined it (with a store)."""
        if self.factory.hub.store is not None:
            self.replay(room, self.factory.settings.replay)

    def do_history(self, args: str, name: str) -> None:
        assert self.session is not None
        hub = self.factory.hub
        count = self.factory.settings.replay or DEFAULT_HISTORY
        room_name: str | None = None
        for word in args.split():
            # ASCII digits: str.isdigit() also takes "²", which int() refuses.
            if word.isascii() and word.isdigit():
                count = min(int(word), MAX_HISTORY)
                if count == 0:
                    # Not one message, as "at least one" made of it.
                    raise UsageError(
                        f"usage: /history [ROOM] [N] (N from 1 to {MAX_HISTORY})"
                    )
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
        # With replay off, the default count is DEFAULT_HISTORY, not 0.
        self.replay(shown, count, footer=True)

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

    def do_notice(self, args: str, name: str) -> None:
        target, _, text = args.partition(" ")
        if not target or not text.strip():
            raise UsageError("usage: /notice #ROOM TEXT or /notice NICK TEXT")
        assert self.session is not None
        hub = self.factory.hub
        if target.startswith("#"):
            hub.say(self.session, text, notice=True, room_name=target)
        else:
            hub.whisper(self.session, target, text, notice=True)

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
        self.close(self.goodbye)

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
