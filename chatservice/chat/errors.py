"""
What the core refuses, one type per reason, with the facts as fields.

Every door renders these its own way: the native door as ``!!!`` lines
(:func:`chatservice.doors.native.render.render_error`), an IRC door as
numerics, a WebSocket door as error codes.  ``str(error)`` is a plain
English description for logs and for doors with nothing better to say.
"""

from __future__ import annotations


class ChatError(Exception):
    """A request the core refuses; subclasses say why, with fields."""

    def __init__(self, description: str) -> None:
        super().__init__(description)

    def __str__(self) -> str:
        return str(self.args[0])


# Registration and nicknames


class NickRequired(ChatError):
    """The command needs a registered member (a nickname) first."""

    def __init__(self) -> None:
        super().__init__("choose a nickname first")


class InvalidNick(ChatError):
    """Not a valid nickname; ``detail`` says what is wrong with it."""

    def __init__(self, nick: str, detail: str) -> None:
        super().__init__(detail)
        self.nick = nick
        self.detail = detail


class NickInUse(ChatError):
    """Another member has this nickname."""

    def __init__(self, nick: str) -> None:
        super().__init__(f"the nickname {nick} is taken")
        self.nick = nick


class NickLookalike(ChatError):
    """The nickname looks like another member's (``other``)."""

    def __init__(self, nick: str, other: str) -> None:
        super().__init__(f"the nickname {nick} looks too much like {other}")
        self.nick = nick
        self.other = other


class NoSuchNick(ChatError):
    """Nobody has this nickname."""

    def __init__(self, nick: str) -> None:
        super().__init__(f"no such nickname: {nick}")
        self.nick = nick


# Rooms


class InvalidRoom(ChatError):
    """Not a valid room name; ``detail`` says what is wrong with it."""

    def __init__(self, room: str, detail: str) -> None:
        super().__init__(detail)
        self.room = room
        self.detail = detail


class NoSuchRoom(ChatError):
    """No room has this name."""

    def __init__(self, room: str) -> None:
        super().__init__(f"no such room: #{room}")
        self.room = room


class NoCurrentRoom(ChatError):
    """The member is in no room, and the command needs one."""

    def __init__(self) -> None:
        super().__init__("you are in no room")


class NotInRoom(ChatError):
    """The member is not in the room the command names."""

    def __init__(self, room: str) -> None:
        super().__init__(f"you are not in #{room}")
        self.room = room


class TooManyRooms(ChatError):
    """The member is in ``limit`` rooms already (``max_rooms_per_member``)."""

    def __init__(self, count: int, limit: int) -> None:
        super().__init__(f"you are in {count} rooms already (limit {limit})")
        self.count = count
        self.limit = limit


class RoomLimitReached(ChatError):
    """The server has as many rooms as it may (``ChatConfig.max_rooms``)."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"the server has {limit} rooms (its limit)")
        self.limit = limit


class TopicTooLong(ChatError):
    """A topic longer than ``ChatConfig.max_topic_length``."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"a topic has at most {limit} characters")
        self.limit = limit


# Operators and administration


class NotOperator(ChatError):
    """A privileged ``command`` (as the door names it) from a non-operator."""

    def __init__(self, command: str) -> None:
        super().__init__(f"{command} needs operator rights")
        self.command = command


class NoSuchBan(ChatError):
    """No ban matches ``target``."""

    def __init__(self, target: str) -> None:
        super().__init__(f"no ban on {target}")
        self.target = target


class InvalidLimit(ChatError):
    """A client limit below 0."""

    def __init__(self, limit: int) -> None:
        super().__init__("the client limit is 0 (none) or more")
        self.limit = limit


class InvalidDuration(ChatError):
    """Text that is not a duration (``30s``, ``10m``, ``forever`` ...)."""

    def __init__(self, text: str) -> None:
        super().__init__(f"not a duration: {text}")
        self.text = text


class UsageError(ChatError):
    """A command given the wrong arguments; ``usage`` is the door's own text."""

    def __init__(self, usage: str) -> None:
        super().__init__(usage)
        self.usage = usage


# Connections


class Refused(ChatError):
    """A connection the core will not take."""


class ServerFull(Refused):
    """The chat has ``limit`` clients already."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"server full ({limit} client{'s' if limit != 1 else ''})")
        self.limit = limit


class Banned(Refused):
    """
    The address (or, for :class:`NickBanned`, the nickname) is banned for
    ``remaining`` more seconds (``None``: until unbanned), for ``reason``.
    """

    def __init__(self, remaining: float | None, reason: str) -> None:
        super().__init__("you are banned")
        self.remaining = remaining
        self.reason = reason


class NickBanned(ChatError):
    """The nickname is banned for ``remaining`` more seconds, for ``reason``."""

    def __init__(self, nick: str, remaining: float | None, reason: str) -> None:
        super().__init__(f"the nickname {nick} is banned")
        self.nick = nick
        self.remaining = remaining
        self.reason = reason


class Unavailable(ChatError):
    """
    What the chat's nodes share (Redis) cannot be reached just now: what
    needs it (a new nickname) is refused until it is back.
    """

    def __init__(self) -> None:
        super().__init__("the chat is temporarily unavailable; please try again soon")
