"""
The IRC door: the same rooms and people as the native door, reached from
irssi, WeeChat, HexChat or any IRC library (``docs/irc.rst``).

:class:`IRCProtocol` is a hub :class:`~chatservice.chat.model.Member`
on :class:`~chatservice.doors.member.MemberProtocol`, so a
:class:`~chatservice.doors.line.LineProtocol` (line framing, UTF-8, flood
control, the send queue, closing: the connection policy every door
shares).  It parses IRC messages (:mod:`.message`), calls the
:class:`~chatservice.chat.hub.Hub` (:mod:`.commands`), and shows events
and typed errors as :mod:`.render` says.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from twisted.internet.interfaces import IReactorTime
from twisted.python.failure import Failure

from chatservice import __version__
from chatservice.chat import events
from chatservice.chat.errors import Banned, ChatError, Refused
from chatservice.chat.hub import Hub
from chatservice.chat.model import Session
from chatservice.chat.names import MAX_NICK_LENGTH, MAX_ROOM_LENGTH
from chatservice.conn.limits import Limits
from chatservice.doors.door import (
    Door,
    DoorContext,
    history_count,
    seconds,
)
from chatservice.doors.irc import render as r
from chatservice.doors.irc import who  # noqa: F401  (adds WHO and WHOIS)
from chatservice.doors.irc.commands import CAPABILITIES, dispatch, joined, lusers, motd
from chatservice.doors.irc.history import DEFAULT_MAX as DEFAULT_CHATHISTORY_MAX
from chatservice.doors.irc.message import (
    MAX_MESSAGE,
    MAX_TAGS,
    BadMessageError,
    format_message,
    parse,
)
from chatservice.doors.irc.render import Numeric, Style, numeric_for
from chatservice.doors.line import LineFactory
from chatservice.doors.member import MemberProtocol
from chatservice.doors.operations import Operations

if TYPE_CHECKING:
    from chatservice.doors.line import Authenticator

__all__ = ["CAPABILITIES", "DOOR", "IRCFactory", "IRCProtocol", "IRCSettings"]


@dataclass(frozen=True)
class IRCSettings:
    """What the IRC door needs beyond the shared line limits."""

    #: The server's name in numerics, PING/PONG, WHO and WHOIS.
    server_name: str = "chatservice"
    #: The password PASS must give (``None``: none asked).
    password: str | None = None
    #: Seconds a new connection has to register (0: no limit).
    registration_timeout: float = 60.0
    #: Seconds of silence before the server pings a client; as many again
    #: without an answer and it is closed.
    ping_interval: float = 120.0
    #: Lines of the message of the day.
    motd: tuple[str, ...] = ()
    #: Channels joined on registration (none: IRC clients auto-join).
    auto_join: tuple[str, ...] = ()
    #: The network's name in ISUPPORT.
    network: str = "chatservice"
    #: Messages one ``CHATHISTORY`` gives at most (ISUPPORT ``CHATHISTORY``).
    chathistory_max: int = DEFAULT_CHATHISTORY_MAX


class IRCProtocol(MemberProtocol):
    """One IRC client: a :class:`Member` of the hub."""

    factory: IRCFactory
    session: Session | None = None
    flood_controlled = True
    registered = False
    #: The capabilities the client asked for (shared empty set until then:
    #: memory per client).
    caps: frozenset[str] = frozenset()
    _wanted: str | None = None
    #: What ``USER`` gave: the user name (made safe) and the real name.
    user_name: str | None = None
    real_name: str | None = None
    _password: str | None = None
    _cap_open = False
    _claiming = False
    _ping_sent = False

    def connectionMade(self) -> None:
        # Tags may come before the 512 bytes of a message (IRCv3); the
        # message part is checked in lineReceived (417).
        self.MAX_LENGTH = MAX_TAGS + MAX_MESSAGE
        self.admitConnection()

    # Life cycle

    def connectionAdmitted(self) -> None:
        self.style = self.factory.styles[0]
        refusal = self.joinHub()
        if refusal is not None:
            if isinstance(refusal, Banned):
                self.refuse(numeric_for(refusal))
            self.close(str(refusal), error=True)
            return
        self.notice("*** Welcome to chatservice; please register (NICK, USER)")

    late_message = "Registration timed out ({timeout:g} s)"

    def timeoutConnection(self) -> None:
        """Silent for the ping interval: ping it; silent again: close it."""
        if self._ping_sent or not self.registered:
            interval = self.factory.settings.ping_interval
            self.close(f"Ping timeout: {interval:g} seconds", error=True)
            return
        self._ping_sent = True
        self.queue(f"PING :{self.factory.settings.server_name}\r\n".encode())
        factory = self.factory
        self.last_input = factory.clock.seconds()
        # The sweep counts on a timed-out connection closing; this one
        # waits for its PONG: make sure a sweep comes back for it.
        factory.clock.callLater(0, factory.idle.watch)

    # Output

    @property
    def nick(self) -> str:
        """The client's nickname, ``*`` before it has one."""
        if self.session is not None and self.session.nick is not None:
            return self.session.nick
        return "*"

    def send(self, command: str, *params: str, prefix: str | None = None) -> None:
        """Send one message, from the server unless ``prefix`` says otherwise."""
        if prefix is None:
            prefix = self.factory.settings.server_name
        # Text, and every numeric's last parameter, as trailing: what
        # clients expect (a NAMES list of one nick is still a list).
        text = command.isdigit() or command in ("NOTICE", "ERROR", "MODE", "PONG")
        self.sendText(format_message(prefix, command, *params, trailing=text))

    def numeric(self, code: str, *params: str) -> None:
        """Send a numeric reply to the client."""
        self.send(code, self.nick, *params)

    def refuse(self, numeric: Numeric) -> None:
        self.numeric(numeric.code, *numeric.params, numeric.text)

    def notice(self, text: str) -> None:
        self.send("NOTICE", self.nick, text)

    def sendError(self, message: str) -> None:
        self.notice(message)

    def sendFarewell(self, message: str, error: bool) -> None:
        self.send(
            "ERROR", f"Closing Link: {self.host or 'local'} ({message})", prefix=""
        )

    def invalidEncoding(self, line: bytes, error: UnicodeDecodeError) -> None:
        self.notice(
            f"invalid UTF-8 (byte 0x{line[error.start]:02x} at position "
            f"{error.start}); line ignored, please send UTF-8"
        )

    # The hub's side (Member)

    def deliver(self, event: events.Event) -> None:
        if self.closing:
            return
        style = self.style
        if type(event) is events.RoomMessage:
            # The commonest event, delivered to every member of a channel:
            # the match below, taken in one step.
            session = self.session
            if (
                session is None
                or event.nick != session.nick
                or "echo-message" in self.caps
            ):
                self.queue(event.encoded(style.wire, style.encode))
            return
        me = self.session.nick if self.session is not None else None
        echo = "echo-message" in self.caps
        match event:
            case events.RoomMessage(nick=nick) if nick == me and not echo:
                return
            case events.RoomMessages(messages=messages) if (
                not echo and me in self.factory.speakers(event)
            ):
                others = [m for m in messages if m.nick != me]
                self.queue(
                    b"".join(m.encoded(style.wire, style.encode) for m in others)
                )
                return
            case events.PrivateMessage(sender=sender, recipient=recipient) if (
                sender == me and recipient != me and not echo
            ):
                return
            case events.Kicked(nick=nick) if nick == me:
                return  # its ERROR says why (disconnect)
            case events.Announcement(text=text, by=by) if not self.registered:
                # Before 001 the client's nick is "*": its own NOTICE line.
                server = self.factory.settings.server_name
                line = format_message(server, "NOTICE", "*", f"*** {by}: {text}")
                self.queue(line.encode("utf-8") + b"\r\n")
                return
        self.queue(event.encoded(style.wire, style.encode))

    def disconnect(self, reason: str) -> None:
        self.session = None  # the hub has let go of it already
        self.close(reason, error=True)

    # Input

    def lineReceived(self, line: bytes) -> None:
        self._ping_sent = False
        tags = line.split(b" ", 1)[0] if line.startswith(b"@") else b""
        # Either part too long: the tags (with their space) past MAX_TAGS,
        # or the message past MAX_MESSAGE (its CR LF counted).
        message = len(line) - len(tags) - (1 if tags else 0) + 2
        if len(tags) + 1 > MAX_TAGS or message > MAX_MESSAGE:
            self.numeric(r.ERR_INPUTTOOLONG, "Input line was too long")
            return
        super().lineReceived(line)

    def textReceived(self, text: str) -> None:
        if self.session is None or not text.strip():
            return
        try:
            message = parse(text)
        except BadMessageError:
            self.notice("message ignored: NUL, CR or LF inside it")
            return
        dispatch(self, message)

    # Registration

    def try_register(self) -> None:
        """Register once NICK and USER are in and CAP negotiation is over."""
        if self.registered or self._claiming or self.session is None:
            return
        if self._cap_open or self._wanted is None or self.user_name is None:
            return
        password = self.factory.settings.password
        if password is not None and self._password != password:
            self.numeric(r.ERR_PASSWDMISMATCH, "Password incorrect")
            self.close("Bad password", error=True)
            return
        wanted, self._wanted = self._wanted, None
        self._claiming = True
        claim = self.factory.hub.set_nick(self.session, wanted, join_default=False)
        self.awaitResult(claim, self._welcome, self._nick_refused)

    def _nick_refused(self, failure: Failure) -> None:
        self._claiming = False
        failure.trap(ChatError)
        error = failure.value
        assert isinstance(error, ChatError)
        if isinstance(error, Refused):
            # Every place was taken while this client registered.
            self.noteRefusal(error)
            self.close(str(error), error=True)
            return
        self.refuse(numeric_for(error, "NICK"))

    def _welcome(self, nick: str) -> None:
        self._claiming = False
        if not self.register():  # every place taken meanwhile: closing
            return
        self.registered = True
        factory = self.factory
        settings = factory.settings
        server = settings.server_name
        self.numeric(
            r.RPL_WELCOME, f"Welcome to the {settings.network} IRC door, {nick}"
        )
        self.numeric(
            r.RPL_YOURHOST, f"Your host is {server}, running chatservice-{__version__}"
        )
        self.numeric(r.RPL_CREATED, "This server was created at start-up")
        self.numeric(r.RPL_MYINFO, server, f"chatservice-{__version__}", "io", "no")
        for tokens in factory.isupport():
            self.numeric(r.RPL_ISUPPORT, *tokens, "are supported by this server")
        lusers(self)
        motd(self)
        hub = factory.hub
        for room in settings.auto_join:
            try:
                hub.join(self.session_, room)
            except ChatError as error:
                self.refuse(numeric_for(error, "JOIN"))
            else:
                joined(self, hub.room(room))

    @property
    def session_(self) -> Session:
        """The session, which a command handler knows is there."""
        assert self.session is not None
        return self.session


class IRCFactory(LineFactory):
    """Builds :class:`IRCProtocol` connections to one :class:`Hub`."""

    protocol = IRCProtocol
    name = "irc"
    shutdown_message = "Server shutting down"

    def __init__(
        self,
        hub: Hub,
        limits: Limits | None = None,
        clock: IReactorTime | None = None,
        *,
        settings: IRCSettings | None = None,
        authenticator: Authenticator | None = None,
        operations: Operations | None = None,
    ) -> None:
        self.settings = settings if settings is not None else IRCSettings()
        limits = replace(
            limits or Limits(),
            max_clients=0,
            idle_timeout=self.settings.ping_interval,
            registration_timeout=self.settings.registration_timeout,
        )
        super().__init__(limits, clock)
        self.hub = hub
        self.sync = hub.flush
        # Nothing is sent ahead of the history's commit of it.
        self.gate = hub.gate
        self.authenticator = authenticator
        self.operations = operations if operations is not None else Operations(hub)
        server = self.settings.server_name
        #: Every way of rendering events, by (server-time, msgid).
        self.styles = [
            Style(server, time, msgid)
            for time in (False, True)
            for msgid in (False, True)
        ]
        #: The last batch :meth:`speakers` was asked about, and its answer.
        self._speakers_of: events.RoomMessages | None = None
        self._speakers: frozenset[str] = frozenset()

    def speakers(self, batch: events.RoomMessages) -> frozenset[str]:
        """
        The nicknames that said the messages of ``batch``.  Each recipient
        asks in turn (a member does not see its own messages without
        echo-message): worked out once per batch, not once per recipient.
        """
        if batch is not self._speakers_of:
            self._speakers = frozenset(message.nick for message in batch.messages)
            self._speakers_of = batch
        return self._speakers

    @property
    def capabilities(self) -> tuple[str, ...]:
        """What ``CAP LS`` offers: chat history only if the chat keeps it."""
        if self.hub.store is None:
            return tuple(c for c in CAPABILITIES if c != "draft/chathistory")
        return CAPABILITIES

    def style_for(self, caps: frozenset[str]) -> Style:
        """How events are rendered for a client that asked for ``caps``."""
        index = 2 * ("server-time" in caps) + ("message-tags" in caps)
        return self.styles[index]

    def isupport(self) -> list[tuple[str, ...]]:
        """
        The ISUPPORT tokens, in lines of at most a dozen (a message has at
        most 15 parameters: the nick, 13 tokens at most, the text).
        """
        config = self.hub.config
        tokens: tuple[str, ...] = (
            "CASEMAPPING=rfc8265",
            f"CHANLIMIT=#:{config.max_rooms_per_member}",
            "CHANMODES=b,,,n",
            f"CHANNELLEN={MAX_ROOM_LENGTH + 1}",
            "CHANTYPES=#",
            f"NETWORK={self.settings.network}",
            f"NICKLEN={MAX_NICK_LENGTH}",
            "PREFIX=(o)@",
            "SAFELIST",
            "TARGMAX=PRIVMSG:4,NOTICE:4,JOIN:,PART:,NAMES:1,WHOIS:1,KICK:1",
            f"TOPICLEN={config.max_topic_length}",
            "WHOX",
        )
        if self.hub.store is not None:
            tokens = (
                f"CHATHISTORY={self.settings.chathistory_max}",
                *tokens,
                "MSGREFTYPES=msgid,timestamp",
            )
        return [tokens[i : i + 12] for i in range(0, len(tokens), 12)]


def read_password(path: str) -> str:
    """The server password: the first line of a file."""
    with open(path, encoding="utf-8") as file:
        return file.readline().rstrip("\r\n")


def _check(options: Any) -> None:
    from twisted.python import usage

    options.irc_password = options["irc-password"]
    if options["irc-password-file"]:
        if options["irc-password"]:
            raise usage.UsageError(
                "give --irc-password or --irc-password-file, not both"
            )
        try:
            options.irc_password = read_password(options["irc-password-file"])
        except (OSError, UnicodeDecodeError) as error:
            raise usage.UsageError(f"--irc-password-file: {error}") from None
    name = options["irc-server-name"]
    if not name or any(c in name for c in " \r\n\x00:!@"):
        raise usage.UsageError(f"--irc-server-name: not a server name: {name!r}")


def _build(context: DoorContext) -> IRCFactory:
    options, chat = context.options, context.chat
    auto_join = tuple(
        room for room in (options["irc-auto-join"] or "").split(",") if room.strip()
    )
    settings = IRCSettings(
        server_name=options["irc-server-name"],
        password=options.irc_password or None,
        registration_timeout=options["nick-timeout"],
        ping_interval=options["irc-ping-interval"],
        motd=options.motd,
        auto_join=auto_join,
        chathistory_max=options["irc-chathistory-max"],
    )
    return IRCFactory(
        chat.hub,
        context.limits,
        context.reactor,
        settings=settings,
        authenticator=chat.authenticator,
        operations=chat.operations,
    )


DOOR = Door(
    name="irc",
    summary="the IRC door (docs/irc.rst)",
    default_endpoint="none",
    build=_build,
    parameters=[
        [
            "irc-server-name",
            None,
            socket.gethostname() or "chatservice",
            "The IRC door's server name (numerics, PING, WHOIS) "
            "[default: the host name].",
        ],
        [
            "irc-password",
            None,
            None,
            "Password IRC clients must give with PASS (visible in ps: prefer "
            "--irc-password-file) [default: none].",
        ],
        [
            "irc-password-file",
            None,
            None,
            "File whose first line is the password IRC clients give with PASS "
            "[default: none].",
        ],
        [
            "irc-ping-interval",
            None,
            IRCSettings.ping_interval,
            "Seconds of silence before an IRC client is pinged; as long again "
            "without an answer and it is closed.",
            seconds,
        ],
        [
            "irc-auto-join",
            None,
            None,
            "Channels (comma-separated) every IRC client joins on registration "
            "[default: none; IRC clients auto-join themselves].",
        ],
        [
            "irc-chathistory-max",
            None,
            DEFAULT_CHATHISTORY_MAX,
            "Messages one IRCv3 CHATHISTORY request gives at most "
            "(ISUPPORT CHATHISTORY).",
            history_count,
        ],
    ],
    check=_check,
)
