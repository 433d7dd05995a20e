"""
How the IRC door shows the chat: events as IRC messages, the core's typed
errors as numerics (``docs/irc.rst``).

An event is rendered once per *style* (the server's name and which tags
its recipients asked for with ``CAP``), whatever the number of
recipients: :meth:`Style.encode` is what ``Event.encoded`` caches.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from chatservice.chat import errors, events
from chatservice.doors.irc.message import MAX_MESSAGE, format_message, format_time


def mask(nick: str, host: str) -> str:
    """The prefix of what a member does: ``nick!nick@host``."""
    return f"{nick}!{nick}@{host}"


def action(text: str) -> str:
    """A text as a CTCP ``ACTION`` (``/me``)."""
    return f"\x01ACTION {text}\x01"


#: The fewest bytes of text a piece of a split message holds, however long
#: the prefix and the target (they are bounded well below 512 bytes).
MIN_PIECE = 64


def pieces(text: str, budget: int) -> list[str]:
    """
    ``text`` cut into pieces of at most ``budget`` bytes of UTF-8, at a
    space in the second half of a piece when there is one (the space ends
    the piece), else between two characters: nothing is lost, and joined
    they are ``text`` again.
    """
    data = text.encode("utf-8")
    budget = max(budget, MIN_PIECE)
    if len(data) <= budget:
        return [text]
    cut_into: list[str] = []
    while len(data) > budget:
        cut = budget
        while data[cut] & 0xC0 == 0x80:  # inside a character: back off
            cut -= 1
        space = data.rfind(b" ", budget // 2, cut)
        if space >= 0:
            cut = space + 1
        cut_into.append(data[:cut].decode("utf-8"))
        data = data[cut:]
    cut_into.append(data.decode("utf-8"))
    return cut_into


#: The reason of a ``QUIT`` that shows a kick (``Kicked`` has no room: the
#: kicked member leaves the whole chat, as with ``KILL``).
KICKED = "Kicked by {by}"


@dataclass(frozen=True)
class Style:
    """One way of rendering events: a server, and the tags asked for."""

    server: str
    server_time: bool = False
    msgid: bool = False
    #: The wire name under which events keep their encoded lines.
    wire: str = field(init=False)

    def __post_init__(self) -> None:
        tags = ("t" if self.server_time else "") + ("m" if self.msgid else "")
        object.__setattr__(self, "wire", f"irc/{self.server}/{tags}")

    def tags(self, event: events.Event) -> str:
        """The tags one event carries in this style (``""``: none)."""
        tags = []
        if self.msgid and event.id:
            tags.append(f"msgid={event.id}")
        if self.server_time and event.at:
            tags.append(f"time={format_time(event.at)}")
        return ";".join(tags)

    def line(self, event: events.Event, prefix: str, command: str, *params: str) -> str:
        # Text (a message, a reason, a topic) as trailing; a lone channel not.
        text = command in ("PRIVMSG", "NOTICE", "TOPIC", "QUIT") or len(params) > 1
        tags = self.tags(event)
        line = format_message(prefix, command, *params, tags=tags, trailing=text)
        return line + "\r\n"

    def said(
        self,
        event: events.Event,
        prefix: str,
        command: str,
        target: str,
        text: str,
        is_action: bool = False,
    ) -> str:
        """A text said to ``target`` (:func:`said_lines`), terminated."""
        first = self.tags(event)
        later = self.later_tags(event, first)
        lines = said_lines(prefix, command, target, text, is_action, first, later)
        return "".join(line + "\r\n" for line in lines)

    def later_tags(self, event: events.Event, first: str) -> str:
        """
        The tags of the second and later pieces of a text, whose first
        piece has ``first``: the same but for the ``msgid``.
        """
        if not (self.msgid and event.id):
            return first
        return Style(self.server, self.server_time).tags(event)

    def render(self, event: events.Event) -> str:
        """The message(s), terminated, that show an event to every recipient."""
        host = self.server
        match event:
            case events.RoomMessage(room=room, nick=nick, text=text):
                command = "NOTICE" if event.notice else "PRIVMSG"
                is_action = event.action and not event.notice
                return self.said(
                    event, mask(nick, host), command, f"#{room}", text, is_action
                )
            case events.RoomMessages(messages=messages):
                return "".join(self.render(message) for message in messages)
            case events.PrivateMessage(
                sender=sender, recipient=recipient, text=text, notice=notice
            ):
                command = "NOTICE" if notice else "PRIVMSG"
                return self.said(event, mask(sender, host), command, recipient, text)
            case events.Joined(room=room, nick=nick):
                return self.line(event, mask(nick, host), "JOIN", f"#{room}")
            case events.Parted(room=room, nick=nick, reason=reason):
                params = (f"#{room}", reason) if reason else (f"#{room}",)
                return self.line(event, mask(nick, host), "PART", *params)
            case events.Quit(nick=nick, reason=reason):
                why = f"Quit: {reason}" if reason else "Quit"
                return self.line(event, mask(nick, host), "QUIT", why)
            case events.NickChanged(old=old, new=new):
                return self.line(event, mask(old, host), "NICK", new)
            case events.TopicChanged(room=room, nick=nick, topic=topic):
                return self.line(event, mask(nick, host), "TOPIC", f"#{room}", topic)
            case events.Kicked(nick=nick, by=by, reason=reason):
                why = KICKED.format(by=by) + (f" ({reason})" if reason else "")
                return self.line(event, mask(nick, host), "QUIT", why)
            case events.Announcement(text=text, by=by):
                return self.line(
                    event, host, "NOTICE", "*", f"*** Global notice from {by}: {text}"
                )
        raise TypeError(f"no IRC format for {event!r}")

    def encode(self, event: events.Event) -> bytes:
        """What ``Event.encoded`` keeps: the event's message(s), UTF-8."""
        return self.render(event).encode("utf-8")


def wrap(text: str, is_action: bool) -> str:
    return action(text) if is_action else text


def said_lines(
    prefix: str,
    command: str,
    target: str,
    text: str,
    is_action: bool,
    tags: str,
    later_tags: str,
) -> list[str]:
    """
    A text said to ``target`` in as many messages (unterminated) as it takes
    to keep each within 512 bytes with its prefix and CR LF: a relayed
    message is longer than what its sender wrote, and the other doors allow
    longer lines.  The first has ``tags``; the others ``later_tags``, which
    leave out the ``msgid``, so that a client does not take them for copies
    of the first.
    """
    overhead = len(format_message(prefix, command, target, "", trailing=True))
    overhead += 2 + (len(action("")) if is_action else 0)  # CR LF, CTCP
    return [
        format_message(
            prefix,
            command,
            target,
            wrap(piece, is_action),
            tags=later_tags if n else tags,
            trailing=True,
        )
        for n, piece in enumerate(pieces(text, MAX_MESSAGE - overhead))
    ]


# Numerics (RFC 1459/2812, and the IRCv3 and modern-ircd ones clients know).
RPL_WELCOME = "001"
RPL_YOURHOST = "002"
RPL_CREATED = "003"
RPL_MYINFO = "004"
RPL_ISUPPORT = "005"
RPL_UMODEIS = "221"
RPL_LUSERCLIENT = "251"
RPL_LUSEROP = "252"
RPL_LUSERCHANNELS = "254"
RPL_LUSERME = "255"
RPL_LOCALUSERS = "265"
RPL_GLOBALUSERS = "266"
RPL_AWAY = "301"
RPL_USERHOST = "302"
RPL_ISON = "303"
RPL_WHOISUSER = "311"
RPL_WHOISSERVER = "312"
RPL_WHOISOPERATOR = "313"
RPL_ENDOFWHO = "315"
RPL_WHOISIDLE = "317"
RPL_ENDOFWHOIS = "318"
RPL_WHOISCHANNELS = "319"
RPL_LISTSTART = "321"
RPL_LIST = "322"
RPL_LISTEND = "323"
RPL_CHANNELMODEIS = "324"
RPL_CREATIONTIME = "329"
RPL_NOTOPIC = "331"
RPL_TOPIC = "332"
RPL_WHOREPLY = "352"
#: WHOX's reply: the fields asked for.
RPL_WHOSPCRPL = "354"
RPL_NAMREPLY = "353"
RPL_ENDOFNAMES = "366"
RPL_ENDOFBANLIST = "368"
RPL_MOTD = "372"
RPL_MOTDSTART = "375"
RPL_ENDOFMOTD = "376"
RPL_YOUREOPER = "381"
ERR_UNKNOWNERROR = "400"
ERR_NOSUCHNICK = "401"
ERR_NOSUCHCHANNEL = "403"
ERR_CANNOTSENDTOCHAN = "404"
ERR_TOOMANYCHANNELS = "405"
ERR_INVALIDCAPCMD = "410"
ERR_NORECIPIENT = "411"
ERR_NOTEXTTOSEND = "412"
ERR_INPUTTOOLONG = "417"
ERR_UNKNOWNCOMMAND = "421"
ERR_NOMOTD = "422"
ERR_NONICKNAMEGIVEN = "431"
ERR_ERRONEUSNICKNAME = "432"
ERR_NICKNAMEINUSE = "433"
ERR_USERNOTINCHANNEL = "441"
ERR_NOTONCHANNEL = "442"
ERR_NOTREGISTERED = "451"
ERR_NEEDMOREPARAMS = "461"
ERR_ALREADYREGISTERED = "462"
ERR_PASSWDMISMATCH = "464"
ERR_YOUREBANNEDCREEP = "465"
ERR_UNKNOWNMODE = "472"
ERR_NOPRIVILEGES = "481"
ERR_CHANOPRIVSNEEDED = "482"
ERR_UMODEUNKNOWNFLAG = "501"
ERR_USERSDONTMATCH = "502"


@dataclass(frozen=True)
class Numeric:
    """A numeric reply: its code, the parameters after the nick, the text."""

    code: str
    params: tuple[str, ...]
    text: str


def numeric_for(error: errors.ChatError, command: str = "") -> Numeric:
    """
    The numeric that refuses a request for this typed error (never from
    its text: the kind and its fields decide).  ``command`` is the IRC
    command refused, for the numerics that name it.
    """
    match error:
        case errors.NickRequired():
            return Numeric(ERR_NOTREGISTERED, (), "You have not registered")
        case errors.NickInUse(nick=nick):
            return Numeric(ERR_NICKNAMEINUSE, (nick,), "Nickname is already in use")
        case errors.NickLookalike(nick=nick, other=other):
            return Numeric(
                ERR_NICKNAMEINUSE, (nick,), f"Nickname looks too much like {other}"
            )
        case errors.InvalidNick(nick=nick, detail=detail):
            return Numeric(
                ERR_ERRONEUSNICKNAME, (nick,), f"Erroneous nickname: {detail}"
            )
        case errors.NickBanned(nick=nick):
            return Numeric(ERR_ERRONEUSNICKNAME, (nick,), "Nickname is banned")
        case errors.NoSuchNick(nick=nick):
            return Numeric(ERR_NOSUCHNICK, (nick,), "No such nick/channel")
        case errors.NoSuchRoom(room=room):
            return Numeric(ERR_NOSUCHCHANNEL, (f"#{room}",), "No such channel")
        case errors.InvalidRoom(room=room, detail=detail):
            return Numeric(ERR_NOSUCHCHANNEL, (f"#{room}",), f"Bad channel: {detail}")
        case errors.NotInRoom(room=room):
            return Numeric(
                ERR_NOTONCHANNEL, (f"#{room}",), "You're not on that channel"
            )
        case errors.TooManyRooms(limit=limit):
            return Numeric(
                ERR_TOOMANYCHANNELS,
                (command,),
                f"You have joined too many channels (limit {limit})",
            )
        case errors.RoomLimitReached(limit=limit):
            return Numeric(
                ERR_TOOMANYCHANNELS, (command,), f"The server has {limit} channels"
            )
        case errors.NotOperator():
            return Numeric(
                ERR_NOPRIVILEGES, (), "Permission Denied- You're not an IRC operator"
            )
        case errors.Banned():
            return Numeric(ERR_YOUREBANNEDCREEP, (), "You are banned from this server")
        case errors.UsageError(usage=usage):
            return Numeric(ERR_NEEDMOREPARAMS, (command,), usage)
    return Numeric(ERR_UNKNOWNERROR, (command or "*",), str(error))
