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
from chatservice.chat.errors import ChatError, UsageError
from chatservice.chat.hub import Hub
from chatservice.chat.model import Session
from chatservice.chat.names import fold
from chatservice.chat.text import visible
from chatservice.conn.connection import HOLD_REPLAY
from chatservice.conn.limits import Limits
from chatservice.doors.commands import (
    ChatCommands,
)
from chatservice.doors.door import Door, DoorContext, seconds
from chatservice.doors.line import LineFactory
from chatservice.doors.member import HubFactory, MemberProtocol, member_limits
from chatservice.doors.native.render import (
    ANNOUNCEMENT,
    NOTICE,
    REPLY,
    TIMED_WIRE,
    WIRE,
    encode,
    encode_timed,
    private_line,
    render_error,
    time_tag,
)
from chatservice.doors.operations import Operations

if TYPE_CHECKING:
    from chatservice.doors.line import Authenticator


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


class _Replay:
    """A replay being read: deliveries to the member wait behind it."""

    __slots__ = ("data",)

    def __init__(self) -> None:
        #: Its lines, once read.
        self.data: bytes | None = None


class ChatProtocol(ChatCommands, MemberProtocol):
    """One chat client on the line protocol: a :class:`Member` of the hub."""

    factory: ChatFactory
    session: Session | None = None
    flood_controlled = True
    goodbye = f"{NOTICE}Goodbye."
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

    def replay(self, room: str, count: int, footer: bool = False) -> None:
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
        # Asked first: the hub delivers what it collected before it reads
        # (a line this member said in the same read comes before the
        # history that holds it); what is delivered from here on waits.
        result = hub.history(room, count)
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
        line = private_line(event, received=mine) + "\r\n"
        if self.timestamps:
            line = time_tag(event.at) + line
        return line.encode("utf-8")

    def disconnect(self, reason: str) -> None:
        self.session = None  # the hub has let go of it already
        self.close(f"disconnected: {reason}", error=True)

    # Input

    def textReceived(self, text: str) -> None:
        self.typed(text)

    def reply(self, text: str) -> None:
        """Answer a command."""
        self.sendText(REPLY + text)

    def sendChatError(self, error: ChatError) -> None:
        self.sendError(render_error(error))

    def closeRefused(self, error: ChatError) -> None:
        self.close(render_error(error), error=True)

    def nickChosen(self, nick: str, first: bool) -> None:
        if first:
            hub = self.factory.hub
            room = hub.default_room
            self.reply(f"you are {nick}; you are in #{room}")
            # As /join shows it: the topic, then what was said.
            joined = hub.rooms.get(fold(room))
            if joined is not None and joined.topic:
                self.reply(f"topic of #{joined.name}: {joined.topic}")
            self.joinReplay(room)

    def do_timestamps(self, args: str, name: str) -> None:
        setting = args.strip().lower()
        if setting not in ("", "on", "off"):
            raise UsageError("usage: /timestamps [on|off]")
        if setting:
            self.timestamps = setting == "on"
        self.reply(f"timestamps {'on' if self.timestamps else 'off'}")


class ChatFactory(HubFactory, LineFactory):
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
        settings = settings if settings is not None else ChatSettings()
        super().__init__(member_limits(limits, settings.nick_timeout), clock)
        self.settings = settings
        self.joinChat(hub, authenticator, operations)


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
