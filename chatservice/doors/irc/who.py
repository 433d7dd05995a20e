"""
``WHO`` and ``WHOIS``: who is in the chat, as IRC clients ask on joining a
channel and on ``/whois``.

``WHO`` answers in two forms.  The classic one (``WHO #a``, ``WHO bo*``,
``WHO #a o`` for operators only) with ``352`` lines; and WHOX, the form
clients that see ``WHOX`` in ISUPPORT send (``WHO #a %tcnf,42``): one
``354`` line per user with just the fields asked for, always in WHOX's own
order (``tcuihsnfdlaor``), the client's token first when it asked for
``t``.  Both end with ``315``.  The user name and real name are what an
IRC client gave in ``USER``; a member of another door has its nickname
for both.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from chatservice.chat.errors import ChatError, NoSuchNick
from chatservice.chat.model import Session
from chatservice.chat.names import fold
from chatservice.doors.irc import render as r
from chatservice.doors.irc.commands import command
from chatservice.doors.irc.message import Message

if TYPE_CHECKING:
    from chatservice.doors.irc.protocol import IRCProtocol

#: The fields WHOX knows, in the order their values are sent whatever the
#: order they were asked in: token, channel, user, IP, host, server, nick,
#: flags, hop count, idle seconds, account, op level, real name.
WHOX_FIELDS = "tcuihsnfdlaor"
#: A WHOX token: a number of up to three digits.
WHOX_TOKEN = re.compile(r"[0-9]{1,3}")
#: What WHOX shows for an address: none is shown, as on networks that cloak
#: them (the host is the server's name, as in ``352``).
HIDDEN_IP = "255.255.255.255"


@dataclass(frozen=True)
class WhoRequest:
    """What one ``WHO`` asked: its mask, and its second parameter read."""

    mask: str
    #: Only operators (``o`` before the ``%``, or the classic ``WHO mask o``).
    operators_only: bool = False
    #: WHOX fields asked for, in :data:`WHOX_FIELDS` order; None: classic.
    fields: str | None = None
    #: The WHOX token, when one was given and is valid.
    token: str | None = None


def parse_who(params: list[str]) -> WhoRequest:
    """``WHO``'s parameters as a request (no mask: every user, ``*``)."""
    mask = params[0] if params else "*"
    if len(params) < 2:
        return WhoRequest(mask)
    options = params[1]
    flags, percent, rest = options.partition("%")
    if not percent:
        return WhoRequest(mask, operators_only="o" in options)
    asked, _, token = rest.partition(",")
    fields = "".join(f for f in WHOX_FIELDS if f in asked)
    valid = token if WHOX_TOKEN.fullmatch(token) else None
    if valid is None:
        # A token asked for but not given, or not a number of 1-3 digits:
        # the reply has no token rather than a stranger's text.
        fields = fields.replace("t", "")
    return WhoRequest(mask, "o" in flags, fields, valid)


def matches(
    connection: IRCProtocol, request: WhoRequest
) -> Iterator[tuple[str, Session]]:
    """The (channel, user) pairs a request lists, each user once."""
    hub = connection.factory.hub
    mask = request.mask
    if mask.startswith("#"):
        try:
            room = hub.room(mask[1:])
        except ChatError:
            return
        found = ((f"#{room.name}", member) for member in room.members)
    else:
        pattern = fold(mask)
        found = (
            (f"#{s.rooms[0].name}" if s.rooms else "*", s)
            for s in hub.connections()
            if s.nick and fnmatch.fnmatchcase(fold(s.nick), pattern)
        )
    for channel, session in found:
        if not request.operators_only or session.operator is not None:
            yield channel, session


def names_of(session: Session) -> tuple[str, str]:
    """
    A user's user name and real name: what an IRC client gave in ``USER``;
    for a member of another door (no ``USER``), its nickname for both.
    """
    nick = session.nick or "*"
    member = session.member
    user = getattr(member, "user_name", None) or nick
    real = getattr(member, "real_name", None) or nick
    return user, real


def flags_of(session: Session) -> str:
    """``H`` (here), and ``*@`` for an operator (of the chat: of every channel)."""
    return "H" + ("*@" if session.operator is not None else "")


def whox_values(
    connection: IRCProtocol, request: WhoRequest, channel: str, session: Session
) -> list[str]:
    """One ``354`` line's values: the fields asked for, in WHOX order."""
    server = connection.factory.settings.server_name
    nick = session.nick or "*"
    user, real = names_of(session)
    idle = int(connection.factory.hub.clock() - session.last_active)
    value = {
        "t": request.token or "",
        "c": channel,
        "u": user,
        "i": HIDDEN_IP,
        "h": server,
        "s": server,
        "n": nick,
        "f": flags_of(session),
        "d": "0",
        "l": str(max(0, idle)),
        "a": "0",  # no accounts: nobody is logged in to one
        "o": "n/a",
        "r": real,
    }
    return [value[field] for field in request.fields or ""]


@command("WHO")
def who(connection: IRCProtocol, message: Message) -> None:
    request = parse_who(message.params)
    server = connection.factory.settings.server_name
    for channel, session in matches(connection, request):
        if request.fields is None:
            user, real = names_of(session)
            connection.numeric(
                r.RPL_WHOREPLY,
                channel,
                user,
                server,
                server,
                session.nick or "*",
                flags_of(session),
                f"0 {real}",
            )
        elif request.fields:
            connection.numeric(
                r.RPL_WHOSPCRPL, *whox_values(connection, request, channel, session)
            )
    connection.numeric(r.RPL_ENDOFWHO, request.mask, "End of /WHO list")


@command("WHOIS", 1)
def whois(connection: IRCProtocol, message: Message) -> None:
    hub = connection.factory.hub
    server = connection.factory.settings.server_name
    wanted = message.params[-1].split(",")[0]
    try:
        target = hub.find(wanted)
    except NoSuchNick:
        connection.numeric(r.ERR_NOSUCHNICK, wanted, "No such nick/channel")
        connection.numeric(r.RPL_ENDOFWHOIS, wanted, "End of /WHOIS list")
        return
    nick = target.nick or wanted
    user, real = names_of(target)
    connection.numeric(r.RPL_WHOISUSER, nick, user, server, "*", real)
    if target.rooms:
        channels = " ".join(
            ("@" if target.operator else "") + f"#{room.name}" for room in target.rooms
        )
        connection.numeric(r.RPL_WHOISCHANNELS, nick, channels)
    connection.numeric(r.RPL_WHOISSERVER, nick, server, "chatservice")
    if target.operator is not None:
        connection.numeric(r.RPL_WHOISOPERATOR, nick, "is an IRC operator")
    now = hub.clock()
    connection.numeric(
        r.RPL_WHOISIDLE,
        nick,
        str(int(now - target.last_active)),
        str(int(target.connected_at)),
        "seconds idle, signon time",
    )
    connection.numeric(r.RPL_ENDOFWHOIS, nick, "End of /WHOIS list")
