"""
The IRCv3 ``draft/chathistory`` capability on the IRC door: a client asks
for a channel's history with ``CHATHISTORY`` and gets it in a
``chathistory`` batch (``docs/irc.rst``).

::

    CHATHISTORY LATEST  #room <* | msgid=ID | timestamp=TIME> LIMIT
    CHATHISTORY BEFORE  #room <msgid=ID | timestamp=TIME> LIMIT
    CHATHISTORY AFTER   #room <msgid=ID | timestamp=TIME> LIMIT
    CHATHISTORY AROUND  #room <msgid=ID | timestamp=TIME> LIMIT
    CHATHISTORY BETWEEN #room <msgid=ID | timestamp=TIME> <...> LIMIT

Every bound is excluded (but the message ``AROUND`` is centred on); the
messages come oldest first, each with its original ``msgid`` and
``server-time`` tags (for a client that asked for those capabilities).
What cannot be answered gets an IRCv3 standard reply
(``FAIL CHATHISTORY CODE ... :why``).  Rooms are public: any channel's
history may be asked for, as with the native door's ``/history``.
Private messages are never replayed: a nickname as target gets an empty
batch.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Callable
from itertools import count
from typing import TYPE_CHECKING

from twisted.internet.defer import Deferred
from twisted.python.failure import Failure

from chatservice.chat import events
from chatservice.chat.errors import InvalidRoom
from chatservice.chat.names import check_room
from chatservice.doors.irc.commands import command
from chatservice.doors.irc.message import Message, format_message
from chatservice.doors.irc.render import mask, said_lines
from chatservice.stores.base import Position, UnknownMessageError

if TYPE_CHECKING:
    from chatservice.doors.irc.protocol import IRCProtocol

#: Messages one ``CHATHISTORY`` gives at most unless told (ISUPPORT
#: ``CHATHISTORY=``; ``--irc-chathistory-max``).
DEFAULT_MAX = 500

SUBCOMMANDS = ("LATEST", "BEFORE", "AFTER", "AROUND", "BETWEEN")

_TIMESTAMP = re.compile(r"(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.(\d{1,6}))?Z")

#: Batch references, unique in the process (a client sees a few).
_batches = count(1)

Page = Deferred[list[events.RoomMessage]]


class BadReference(ValueError):  # noqa: N818 -- what the FAIL reply says
    """A message reference that is neither ``msgid=`` nor ``timestamp=``."""


def parse_timestamp(text: str) -> float:
    """``YYYY-MM-DDThh:mm:ss.sssZ`` (UTC) as seconds since the epoch."""
    found = _TIMESTAMP.fullmatch(text)
    if found is None:
        raise BadReference(text)
    year, month, day, hour, minute, second = (int(g) for g in found.groups()[:6])
    fraction = found.group(7) or "0"
    try:
        whole = calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0))
        if not (1 <= month <= 12 and 1 <= day <= 31 and hour < 24 and minute < 60):
            raise ValueError(text)
    except (ValueError, OverflowError):
        raise BadReference(text) from None
    return whole + float(f"0.{fraction}")


def parse_reference(text: str, star: bool = False) -> Position | None:
    """A ``msgid=``/``timestamp=`` reference; ``*`` (``None``) if allowed."""
    if star and text == "*":
        return None
    kind, _, value = text.partition("=")
    if kind == "msgid" and value:
        return Position(id=value)
    if kind == "timestamp":
        return Position(at=parse_timestamp(value))
    raise BadReference(text)


def fail(connection: IRCProtocol, code: str, *context: str) -> None:
    """An IRCv3 standard reply refusing a ``CHATHISTORY``."""
    *params, why = context
    server = connection.factory.settings.server_name
    line = format_message(
        server, "FAIL", "CHATHISTORY", code, *params, why, trailing=True
    )
    connection.sendText(line)


@command("CHATHISTORY")
def chathistory(connection: IRCProtocol, message: Message) -> None:
    params = message.params
    sub = params[0].upper() if params else "*"
    if params and sub not in SUBCOMMANDS:
        fail(connection, "UNKNOWN_COMMAND", params[0], "Unknown command")
        return
    needed = 5 if sub == "BETWEEN" else 4
    if len(params) < needed:
        fail(connection, "NEED_MORE_PARAMS", sub, "Missing parameters")
        return
    target, *references, limit = params[1:needed]
    # ASCII digits: str.isdigit() also takes "²", which int() refuses.
    if not (limit.isascii() and limit.isdigit()) or int(limit) < 1:
        fail(connection, "INVALID_PARAMS", sub, f"Invalid limit {limit!r}")
        return
    try:
        bounds = [
            parse_reference(text, star=sub == "LATEST" and n == 0)
            for n, text in enumerate(references)
        ]
    except BadReference as error:
        fail(
            connection,
            "INVALID_PARAMS",
            sub,
            f"Invalid message reference {error.args[0]!r}: give msgid=ID, "
            "timestamp=YYYY-MM-DDThh:mm:ss.sssZ" + (" or *" if sub == "LATEST" else ""),
        )
        return
    if not target.startswith("#"):
        # Private messages are never replayed (docs/history.rst).
        send_batch(connection, target, [])
        return
    wanted = min(int(limit), connection.factory.settings.chathistory_max)
    try:
        check_room(target[1:])
    except InvalidRoom as error:
        fail(connection, "INVALID_TARGET", sub, target, f"Bad channel: {error.detail}")
        return
    read = _query(connection, sub, target[1:], bounds, wanted)

    def failed(failure: Failure) -> None:
        if failure.check(UnknownMessageError):
            send_batch(connection, target, [])  # pruned, or never said here
            return
        connection.log.failure("CHATHISTORY {target}", failure, target=target)
        fail(
            connection, "MESSAGE_ERROR", sub, target, "Messages could not be retrieved"
        )

    connection.awaitResult(
        read, lambda messages: send_batch(connection, target, messages), failed
    )


def _query(
    connection: IRCProtocol,
    sub: str,
    room: str,
    bounds: list[Position | None],
    wanted: int,
) -> Page:
    """The page a subcommand asks for."""
    hub = connection.factory.hub

    def page(
        n: int,
        after: Position | None = None,
        before: Position | None = None,
        latest: bool = True,
    ) -> Page:
        return hub.history_page(room, n, after=after, before=before, latest=latest)

    match sub, bounds:
        case "LATEST", [after]:
            return page(wanted, after=after)
        case "BEFORE", [before]:
            return page(wanted, before=before)
        case "AFTER", [after]:
            return page(wanted, after=after, latest=False)
        case "AROUND", [centre]:
            assert centre is not None
            return _around(page, centre, wanted)
        case "BETWEEN", [first, second]:
            # Counted from the first bound, whichever is older: if it is
            # the newer one, "after first, before second" is empty.
            def backwards(
                messages: list[events.RoomMessage],
            ) -> Page | list[events.RoomMessage]:
                if messages:
                    return messages
                return page(wanted, after=second, before=first)

            forwards = page(wanted, after=first, before=second, latest=False)
            return forwards.addCallback(backwards)
    raise AssertionError(f"CHATHISTORY {sub} {bounds}")


def _around(page: Callable[..., Page], centre: Position, wanted: int) -> Page:
    """
    About half the messages before ``centre``, then the message there (a
    msgid) and those after it: the second page starts right after the
    last message before the centre.
    """
    before_count = wanted // 2

    def rest(before: list[events.RoomMessage]) -> Page:
        anchor = Position(id=before[-1].id) if before else None
        kept = before[-before_count:] if before_count else []
        after = page(wanted - len(kept), after=anchor, latest=False)
        return after.addCallback(lambda later: kept + later)

    return page(max(before_count, 1), before=centre).addCallback(rest)


def send_batch(
    connection: IRCProtocol, target: str, messages: list[events.RoomMessage]
) -> None:
    """The messages in a ``chathistory`` batch (plain lines without ``batch``)."""
    style = connection.style
    server = connection.factory.settings.server_name
    batched = "batch" in connection.caps
    reference = f"h{next(_batches)}"
    lines = []
    if batched:
        lines.append(
            format_message(server, "BATCH", f"+{reference}", "chathistory", target)
        )
    for said in messages:
        tags = style.tags(said)
        later = style.later_tags(said, tags)
        if batched:
            tags, later = (
                f"batch={reference};{t}" if t else f"batch={reference}"
                for t in (tags, later)
            )
        command = "NOTICE" if said.notice else "PRIVMSG"
        lines.extend(
            said_lines(
                mask(said.nick, server),
                command,
                f"#{said.room}",
                said.text,
                said.action and not said.notice,
                tags,
                later,
            )
        )
    if batched:
        lines.append(format_message(server, "BATCH", f"-{reference}"))
    for line in lines:
        connection.sendText(line)
