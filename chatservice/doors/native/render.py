"""
How the native door shows the chat: one line per event, one line per error.
Every line starts with a marker saying what it is (``docs/protocol.rst``)::

    #ROOM <NICK> TEXT        a message in a room
    #ROOM * NICK TEXT        an action (/me) in a room
    #ROOM -NICK- TEXT        a notice (/notice, IRC's NOTICE) in a room
    #ROOM [TIME] <NICK> TEXT history: a message said before (replay, /history)
    #ROOM [TIME] * NICK TEXT history: an action
    #ROOM [TIME] -NICK- TEXT history: a notice
    *NICK* TEXT              a private message to you
    -> *NICK* TEXT           a private message you sent
    -NICK- TEXT              a private notice to you
    -> -NICK- TEXT           a private notice you sent
    -!- TEXT                 a notice: joins, parts, renames, topics, kicks
    *** TEXT                 an announcement to everyone, shutdown
    --- TEXT                 the answer to a command
    !!! TEXT                 an error
"""

from __future__ import annotations

import time

from chatservice.chat import errors, events
from chatservice.chat.administration import ban_terms
from chatservice.doors.line import ANNOUNCEMENT_PREFIX, REPLY_PREFIX

NOTICE = "-!- "
ANNOUNCEMENT = ANNOUNCEMENT_PREFIX
REPLY = REPLY_PREFIX
#: The wire name under which events keep their encoded lines.
WIRE = "line"


def render(event: events.Event) -> str:
    """The line that shows an event to every recipient alike."""
    match event:
        case events.RoomMessage(room=room, text=text):
            return f"#{room} {speaker(event)} {text}"
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


def history_time(at: float) -> str:
    """When a message of the history was said: UTC, to the second."""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(at))


def render_history(message: events.RoomMessage) -> str:
    """
    A message said before, as replayed: its room, its original time (UTC)
    in brackets, then the nick and text as live.
    """
    when = history_time(message.at)
    return f"#{message.room} [{when}] {speaker(message)} {message.text}"


def speaker(message: events.RoomMessage) -> str:
    """Who said a room message, and how: ``<NICK>``, ``* NICK``, ``-NICK-``."""
    if message.notice:
        return f"-{message.nick}-"
    if message.action:
        return f"* {message.nick}"
    return f"<{message.nick}>"


def private_line(message: events.PrivateMessage, received: bool) -> str:
    """
    A private message (or notice) as its recipient sees it (``received``),
    or as the sender's copy: ``*NICK* TEXT``, ``-> *NICK* TEXT``; a notice
    ``-NICK- TEXT``, ``-> -NICK- TEXT``.
    """
    mark = "-" if message.notice else "*"
    if received:
        return f"{mark}{message.sender}{mark} {message.text}"
    return f"-> {mark}{message.recipient}{mark} {message.text}"


def _because(reason: str) -> str:
    return f" ({reason})" if reason else ""


def encode(event: events.Event) -> bytes:
    """
    An event's line (or lines, for several room messages), terminated and
    encoded: made once per event, whatever the number of recipients.
    """
    if isinstance(event, events.RoomMessages):
        return "".join(render(m) + "\r\n" for m in event.messages).encode("utf-8")
    if isinstance(event, events.History):
        lines = (render_history(m) + "\r\n" for m in event.messages)
        return "".join(lines).encode("utf-8")
    return (render(event) + "\r\n").encode("utf-8")


def render_error(error: errors.ChatError) -> str:
    """The text of a refusal, after the ``!!!`` marker, with the command to try."""
    match error:
        case errors.NickRequired():
            return "choose a nickname first: /nick NAME"
        case errors.NoCurrentRoom():
            return "you are in no room; /join ROOM"
        case errors.TooManyRooms(count=count, limit=limit):
            return f"you are in {count} rooms already (limit {limit}); /part one first"
        case errors.RoomLimitReached(limit=limit):
            return f"the server has {limit} rooms (its limit); join an existing one"
        case errors.NotOperator(command=command):
            return f"{command} needs operator rights (/oper NAME PASSWORD)"
        case errors.InvalidDuration(text=text):
            return (
                f"not a duration: {text} "
                "(try 30s, 10m, 2h, 1d, forever; at most 100 years)"
            )
        case errors.ServerFull(limit=limit):
            plural = "s" if limit != 1 else ""
            return f"server full ({limit} client{plural}); please try again later"
        case errors.Banned(remaining=remaining, reason=reason):
            return "you are banned" + ban_terms(remaining, reason)
        case errors.NickBanned(nick=nick, remaining=remaining, reason=reason):
            return f"the nickname {nick} is banned" + ban_terms(remaining, reason)
    # The rest say it all already: "the nickname bob is taken",
    # "no such room: #games", a name's own rule, a usage line.
    return str(error)


#: The wire name of lines that carry their event's time (``/timestamps``).
TIMED_WIRE = "line+time"


def time_tag(at: float) -> str:
    """``@time=2026-12-01T23:47:00.123Z `` (UTC, milliseconds), IRCv3's form."""
    whole = int(at)
    millis = round((at - whole) * 1000)
    if millis == 1000:
        whole, millis = whole + 1, 0
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole))
    return f"@time={stamp}.{millis:03d}Z "


def encode_timed(event: events.Event) -> bytes:
    """
    :func:`encode`, every line starting with the time its event happened
    (for ``/timestamps on``): made once per event, like the plain lines.
    """
    if isinstance(event, events.RoomMessages):
        return "".join(
            time_tag(m.at) + render(m) + "\r\n" for m in event.messages
        ).encode("utf-8")
    return (time_tag(event.at) + render(event) + "\r\n").encode("utf-8")
