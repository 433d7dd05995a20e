"""
The IRC door's commands: one function per command, each given the
connection and the parsed message, each calling the hub and answering
with numerics (``docs/irc.rst`` lists them and their native equivalents).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from chatservice.chat.errors import ChatError, NickInUse, NoSuchNick
from chatservice.chat.model import Room, Session
from chatservice.chat.names import check_nick, fold
from chatservice.chat.text import visible
from chatservice.doors.irc import render as r
from chatservice.doors.irc.message import Message, cut
from chatservice.doors.irc.render import numeric_for

if TYPE_CHECKING:
    from chatservice.doors.irc.protocol import IRCProtocol

Handler = Callable[["IRCProtocol", Message], None]

#: The capabilities the door offers (``docs/irc.rst``); ``draft/chathistory``
#: only with a history store (:attr:`IRCFactory.capabilities`).
CAPABILITIES = (
    "batch",
    "draft/chathistory",
    "echo-message",
    "message-tags",
    "multi-prefix",
    "server-time",
    "userhost-in-names",
)

#: Commands before registration, and those that need it.
_BEFORE: dict[str, Handler] = {}
_AFTER: dict[str, Handler] = {}
#: Parameters each command needs at least.
_NEEDS: dict[str, int] = {}


def command(
    name: str, needs: int = 0, registered: bool = True
) -> Callable[[Handler], Handler]:
    def add(handler: Handler) -> Handler:
        _AFTER[name] = handler
        if not registered:
            _BEFORE[name] = handler
        _NEEDS[name] = needs
        return handler

    return add


def dispatch(connection: IRCProtocol, message: Message) -> None:
    """Run one message's command, answering refusals with their numerics."""
    name = message.command
    table = _AFTER if connection.registered else _BEFORE
    handler = table.get(name)
    if handler is None:
        if name in _AFTER:
            connection.send(r.ERR_NOTREGISTERED, "*", "You have not registered")
        else:
            connection.numeric(r.ERR_UNKNOWNCOMMAND, name, "Unknown command")
        return
    if len(message.params) < _NEEDS[name]:
        if name == "NICK":
            connection.numeric(r.ERR_NONICKNAMEGIVEN, "No nickname given")
        else:
            connection.numeric(r.ERR_NEEDMOREPARAMS, name, "Not enough parameters")
        return
    try:
        handler(connection, message)
    except ChatError as error:
        if name != "NOTICE":  # never an automatic reply to a NOTICE
            connection.refuse(numeric_for(error, name))


#: The longest user name and real name kept from ``USER`` (ISUPPORT
#: ``USERLEN``; a longer real name is cut).
MAX_USER_NAME = 16
MAX_REAL_NAME = 100


def _room_of(target: str) -> str:
    """A channel's room name (``#lobby`` is ``lobby``)."""
    return target[1:] if target.startswith("#") else target


# Registration


@command("CAP", 1, registered=False)
def cap(connection: IRCProtocol, message: Message) -> None:
    sub = message.params[0].upper()
    nick = connection.nick
    if sub == "LS":
        if not connection.registered:
            connection._cap_open = True
        connection.send("CAP", nick, "LS", " ".join(connection.factory.capabilities))
    elif sub == "LIST":
        connection.send("CAP", nick, "LIST", " ".join(sorted(connection.caps)))
    elif sub == "REQ":
        if not connection.registered:
            connection._cap_open = True
        wanted = message.params[1] if len(message.params) > 1 else ""
        asked = wanted.split()
        offered = connection.factory.capabilities
        if asked and all(c.removeprefix("-") in offered for c in asked):
            caps = set(connection.caps)
            for c in asked:
                if c.startswith("-"):
                    caps.discard(c[1:])
                else:
                    caps.add(c)
            connection.caps = frozenset(caps)
            connection.style = connection.factory.style_for(connection.caps)
            connection.send("CAP", nick, "ACK", wanted)
        else:
            connection.send("CAP", nick, "NAK", wanted)
    elif sub == "END":
        connection._cap_open = False
        connection.try_register()
    else:
        connection.numeric(r.ERR_INVALIDCAPCMD, sub, "Invalid CAP command")


@command("PASS", 1, registered=False)
def pass_(connection: IRCProtocol, message: Message) -> None:
    if connection.registered:
        connection.numeric(r.ERR_ALREADYREGISTERED, "You may not reregister")
        return
    # Some clients send a password with spaces unquoted: all of it counts.
    connection._password = " ".join(message.params)


@command("NICK", 1, registered=False)
def nick(connection: IRCProtocol, message: Message) -> None:
    wanted = message.params[0]
    hub = connection.factory.hub
    if not connection.registered:
        # Refused at once, as IRC servers do: invalid, or someone's.  The
        # claim (look-alikes too) comes with registration.
        shown = check_nick(wanted)
        if fold(shown) in hub.nicks:
            raise NickInUse(wanted)
        connection._wanted = wanted
        connection.try_register()
        return
    session = connection.session_

    def refused(failure: object) -> None:
        from twisted.python.failure import Failure

        assert isinstance(failure, Failure)
        failure.trap(ChatError)
        assert isinstance(failure.value, ChatError)
        connection.refuse(numeric_for(failure.value, "NICK"))

    connection.awaitResult(hub.set_nick(session, wanted), lambda _: None, refused)


@command("USER", 4, registered=False)
def user(connection: IRCProtocol, message: Message) -> None:
    if connection.registered or connection.user_name is not None:
        connection.numeric(r.ERR_ALREADYREGISTERED, "You may not reregister")
        return
    if not message.params[3]:  # an empty real name: not enough, as RFC 2812
        connection.numeric(r.ERR_NEEDMOREPARAMS, "USER", "Not enough parameters")
        return
    connection.user_name = user_name_of(message.params[0])
    connection.real_name = visible(message.params[3][:MAX_REAL_NAME])
    connection.try_register()


def user_name_of(given: str) -> str:
    """
    A ``USER``'s user name as others see it (``WHO``, ``WHOIS``, prefixes
    with ``userhost-in-names``): letters, digits and ``._-`` only, at most
    :data:`MAX_USER_NAME` of them; ``~`` when nothing of it is left.
    """
    kept = "".join(c for c in given if c.isascii() and (c.isalnum() or c in "._-"))
    return kept[:MAX_USER_NAME] or "~"


@command("QUIT", registered=False)
def quit_(connection: IRCProtocol, message: Message) -> None:
    reason = message.params[0] if message.params else ""
    connection.leaveHub(reason)
    connection.close(f"Quit: {reason}" if reason else "Quit", error=True)


@command("PING", 1, registered=False)
def ping(connection: IRCProtocol, message: Message) -> None:
    server = connection.factory.settings.server_name
    connection.send("PONG", server, message.params[0])


@command("PONG", registered=False)
def pong(connection: IRCProtocol, message: Message) -> None:
    """Nothing to do: any line resets the ping timer."""


# Rooms


def joined(connection: IRCProtocol, room: Room) -> None:
    """What a client hears once it has joined: the topic, the names."""
    if room.topic:
        connection.numeric(r.RPL_TOPIC, f"#{room.name}", room.topic)
    names_of(connection, room)


@command("JOIN", 1)
def join(connection: IRCProtocol, message: Message) -> None:
    session = connection.session_
    hub = connection.factory.hub
    if message.params[0] == "0":
        for room in list(session.rooms):
            hub.part(session, room.name, "Left all channels")
        return
    for target in message.params[0].split(","):
        if not target:
            continue
        if not target.startswith("#"):
            connection.numeric(r.ERR_NOSUCHCHANNEL, target, "No such channel")
            continue
        try:
            if session.joined(fold(_room_of(target))) is not None:
                continue  # IRC: joining again says nothing
            room = hub.join(session, _room_of(target))
        except ChatError as error:
            connection.refuse(numeric_for(error, "JOIN"))
        else:
            joined(connection, room)


@command("PART", 1)
def part(connection: IRCProtocol, message: Message) -> None:
    session = connection.session_
    reason = message.params[1] if len(message.params) > 1 else ""
    for target in message.params[0].split(","):
        try:
            connection.factory.hub.part(session, _room_of(target), reason)
        except ChatError as error:
            connection.refuse(numeric_for(error, "PART"))


def _talk(connection: IRCProtocol, message: Message, notice: bool) -> None:
    session = connection.session_
    hub = connection.factory.hub
    name = message.command
    if not message.params:
        if not notice:
            connection.numeric(r.ERR_NORECIPIENT, f"No recipient given ({name})")
        return
    if len(message.params) < 2 or not message.params[1]:
        if not notice:
            connection.numeric(r.ERR_NOTEXTTOSEND, "No text to send")
        return
    text = message.params[1]
    action = False
    if text.startswith("\x01ACTION ") and not notice:
        text, action = text[8:].rstrip("\x01"), True
    for target in message.params[0].split(",")[:4]:
        try:
            if target.startswith("$"):  # $* or $server: a global notice
                hub.announce(text, hub.require_operator(session, name))
            elif target.startswith("#"):
                room = session.joined(fold(_room_of(target)))
                if room is None:
                    hub.room(_room_of(target))  # NoSuchRoom when there is none
                    if not notice:
                        connection.numeric(
                            r.ERR_CANNOTSENDTOCHAN, target, "Cannot send to channel"
                        )
                    continue
                session.current = room
                hub.say(session, text, action=action, notice=notice)
            else:
                hub.whisper(session, target, text, notice=notice)
        except ChatError as error:
            if not notice:
                connection.refuse(numeric_for(error, name))


@command("PRIVMSG")
def privmsg(connection: IRCProtocol, message: Message) -> None:
    _talk(connection, message, notice=False)


@command("NOTICE")
def notice(connection: IRCProtocol, message: Message) -> None:
    _talk(connection, message, notice=True)


@command("TOPIC", 1)
def topic(connection: IRCProtocol, message: Message) -> None:
    session = connection.session_
    hub = connection.factory.hub
    target = message.params[0]
    room_name = _room_of(target)
    if len(message.params) > 1:
        hub.room(room_name)  # 403 for no such channel, before 442
        limit = hub.config.max_topic_length
        hub.set_topic(session, message.params[1][:limit], room_name)
        return
    room = hub.room(room_name)
    if room.topic:
        connection.numeric(r.RPL_TOPIC, f"#{room.name}", room.topic)
    else:
        connection.numeric(r.RPL_NOTOPIC, f"#{room.name}", "No topic is set")


def _prefixed(session: Session) -> str:
    return ("@" if session.operator is not None else "") + (session.nick or "*")


def names_of(connection: IRCProtocol, room: Room) -> None:
    channel = f"#{room.name}"
    nicks = [_prefixed(s) for s in room.members if s.nick]
    if "userhost-in-names" in connection.caps:
        # nick!user@host, as in every event's prefix (the user is the nick).
        server = connection.factory.settings.server_name
        nicks = [f"{entry}!{entry.lstrip('@')}@{server}" for entry in nicks]
    line: list[str] = []
    # What the line's names take, kept as they come: every join answers
    # with the names of its channel, of thousands of members in a large one.
    size = 0
    for entry in nicks:
        line.append(entry)
        size += len(entry) + 1
        if size > 400:
            connection.numeric(r.RPL_NAMREPLY, "=", channel, " ".join(line))
            line = []
            size = 0
    if line:
        connection.numeric(r.RPL_NAMREPLY, "=", channel, " ".join(line))
    connection.numeric(r.RPL_ENDOFNAMES, channel, "End of /NAMES list")


@command("NAMES")
def names(connection: IRCProtocol, message: Message) -> None:
    hub = connection.factory.hub
    targets = message.params[0].split(",") if message.params else []
    if not targets:
        connection.numeric(r.RPL_ENDOFNAMES, "*", "End of /NAMES list")
        return
    for target in targets:
        try:
            names_of(connection, hub.room(_room_of(target)))
        except ChatError:
            connection.numeric(r.RPL_ENDOFNAMES, target, "End of /NAMES list")


@command("LIST")
def list_(connection: IRCProtocol, message: Message) -> None:
    connection.numeric(r.RPL_LISTSTART, "Channel", "Users  Name")
    for room in connection.factory.hub.all_rooms():
        connection.numeric(
            r.RPL_LIST, f"#{room.name}", str(len(room.members)), room.topic
        )
    connection.numeric(r.RPL_LISTEND, "End of /LIST")


@command("MODE", 1)
def mode(connection: IRCProtocol, message: Message) -> None:
    session = connection.session_
    hub = connection.factory.hub
    target = message.params[0]
    changes = message.params[1] if len(message.params) > 1 else ""
    if target.startswith("#"):
        room = hub.room(_room_of(target))
        channel = f"#{room.name}"
        if not changes:
            connection.numeric(r.RPL_CHANNELMODEIS, channel, "+n")
            connection.numeric(r.RPL_CREATIONTIME, channel, str(int(room.created_at)))
            return
        letters = changes.lstrip("+-")
        if letters == "b":
            connection.numeric(r.RPL_ENDOFBANLIST, channel, "End of channel ban list")
            return
        adding = True
        for letter in changes:
            if letter in "+-":
                adding = letter == "+"
            elif letter == "n" and adding:
                continue  # +n is always set: nothing changes, nothing to say
            elif letter == "o":
                connection.numeric(
                    r.ERR_CHANOPRIVSNEEDED,
                    channel,
                    "Channel operators are the server's operators (OPER)",
                )
                return
            else:
                text = "is fixed (+n)" if letter == "n" else "is an unknown mode"
                connection.numeric(r.ERR_UNKNOWNMODE, letter, text)
                return
        return
    if fold(target) != fold(session.nick or ""):
        if fold(target) not in hub.nicks:
            raise NoSuchNick(target)
        connection.numeric(r.ERR_USERSDONTMATCH, "Cant change mode for other users")
        return
    if not changes:
        connection.numeric(r.RPL_UMODEIS, "+o" if session.operator else "+")
        return
    for letter in changes:
        if letter not in "+-iw":  # i and w: accepted, and nothing to do
            connection.numeric(r.ERR_UMODEUNKNOWNFLAG, "Unknown MODE flag")
            return


# Operators


@command("OPER", 2)
def oper(connection: IRCProtocol, message: Message) -> None:
    authenticator = connection.factory.authenticator
    if authenticator is None:
        connection.numeric(r.ERR_PASSWDMISMATCH, "This server has no operators")
        return
    account, password = message.params[0], message.params[1]

    def granted(avatar: object) -> None:
        name = str(getattr(avatar, "name", account))
        connection.factory.hub.grant_operator(connection.session_, name)
        connection.numeric(r.RPL_YOUREOPER, f"You are now an IRC operator (as {name})")
        connection.send("MODE", connection.nick, "+o", prefix=connection.nick)

    def failed(failure: object) -> None:
        connection.numeric(r.ERR_PASSWDMISMATCH, "Password incorrect")

    connection.awaitResult(
        authenticator.login(account, password, connection.host), granted, failed
    )


def _kick(connection: IRCProtocol, command_name: str, nick: str, reason: str) -> None:
    hub = connection.factory.hub
    by = hub.require_operator(connection.session_, command_name)
    hub.kick(nick, by, reason)


@command("KICK", 2)
def kick(connection: IRCProtocol, message: Message) -> None:
    session = connection.session_
    hub = connection.factory.hub
    channel, nick = message.params[0], message.params[1]
    reason = message.params[2] if len(message.params) > 2 else ""
    room = hub.room(_room_of(channel))
    if session.operator is None:
        connection.numeric(
            r.ERR_CHANOPRIVSNEEDED, f"#{room.name}", "You're not channel operator"
        )
        return
    target = hub.find(nick)
    if room not in target.rooms:
        connection.numeric(
            r.ERR_USERNOTINCHANNEL,
            target.nick or nick,
            f"#{room.name}",
            "They aren't on that channel",
        )
        return
    _kick(connection, "KICK", nick, reason)


@command("KILL", 1)
def kill(connection: IRCProtocol, message: Message) -> None:
    reason = message.params[1] if len(message.params) > 1 else ""
    _kick(connection, "KILL", message.params[0], reason)


@command("WALLOPS", 1)
def wallops(connection: IRCProtocol, message: Message) -> None:
    hub = connection.factory.hub
    by = hub.require_operator(connection.session_, "WALLOPS")
    hub.announce(message.params[0], by)


# Small ones clients send


@command("ISON", 1)
def ison(connection: IRCProtocol, message: Message) -> None:
    nicks = connection.factory.hub.nicks
    wanted = " ".join(message.params).split()
    present = [n for n in wanted if fold(n) in nicks]
    connection.numeric(r.RPL_ISON, " ".join(present))


@command("USERHOST", 1)
def userhost(connection: IRCProtocol, message: Message) -> None:
    hub = connection.factory.hub
    server = connection.factory.settings.server_name
    replies = []
    for wanted in message.params[:5]:
        try:
            target = hub.find(wanted)
        except NoSuchNick:
            continue
        star = "*" if target.operator is not None else ""
        replies.append(f"{target.nick}{star}=+{target.nick}@{server}")
    connection.numeric(r.RPL_USERHOST, " ".join(replies))


@command("LUSERS")
def lusers_command(connection: IRCProtocol, message: Message) -> None:
    lusers(connection)


def lusers(connection: IRCProtocol) -> None:
    hub = connection.factory.hub
    users = len(hub.nicks)
    operators = sum(1 for s in hub.connections() if s.operator is not None)
    connection.numeric(
        r.RPL_LUSERCLIENT, f"There are {users} users and 0 invisible on 1 servers"
    )
    connection.numeric(r.RPL_LUSEROP, str(operators), "operator(s) online")
    connection.numeric(r.RPL_LUSERCHANNELS, str(len(hub.rooms)), "channels formed")
    connection.numeric(r.RPL_LUSERME, f"I have {users} clients and 0 servers")
    # Members here (this node) and in the whole chat (every node), now and
    # at most at once; a chat of several nodes knows only its own peak.
    here, peak = hub.registered, max(hub.stats.members_peak, hub.registered)
    connection.numeric(
        r.RPL_LOCALUSERS,
        str(here),
        str(peak),
        f"Current local users {here}, max {peak}",
    )
    everywhere = max(users, here)
    most = max(peak, everywhere)
    connection.numeric(
        r.RPL_GLOBALUSERS,
        str(everywhere),
        str(most),
        f"Current global users {everywhere}, max {most}",
    )


@command("MOTD")
def motd_command(connection: IRCProtocol, message: Message) -> None:
    motd(connection)


def motd(connection: IRCProtocol) -> None:
    from chatservice.chat.text import visible

    settings = connection.factory.settings
    if not settings.motd:
        connection.numeric(r.ERR_NOMOTD, "MOTD File is missing")
        return
    connection.numeric(
        r.RPL_MOTDSTART, f"- {settings.server_name} Message of the day -"
    )
    for line in settings.motd:
        connection.numeric(r.RPL_MOTD, cut(f"- {visible(line)}", 400))
    connection.numeric(r.RPL_ENDOFMOTD, "End of /MOTD command.")


@command("AWAY")
def away(connection: IRCProtocol, message: Message) -> None:
    """Acknowledged, not kept: nobody is shown as away (docs/irc.rst)."""
    if message.params and message.params[0]:
        connection.numeric("306", "You have been marked as being away")
    else:
        connection.numeric("305", "You are no longer marked as being away")
