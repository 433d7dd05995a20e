"""
JSON logs for log shippers: ``twistd --logger=chatservice.logs.json_observer``.

twistd's ``--logger`` takes the fully-qualified name of a callable that
makes the log observer; :func:`json_observer` is one: every event as one
JSON object per line on standard output (which ``twistd -n`` under systemd
sends to the journal, or to a file or pipe), with all its structured
fields (``service``, ``peer``, ``address``, ``reloaded``, ...) as Twisted's
``eventAsJSON`` writes them, plus ``text`` and ``level`` for people and
shippers (``docs/deployment.rst``).
"""

from __future__ import annotations

import sys
from typing import IO

from twisted.logger import FileLogObserver, LogEvent, eventAsJSON, eventAsText


def event_line(event: LogEvent) -> str:
    """
    One event as a line of JSON: Twisted's ``eventAsJSON`` (``log_format``,
    ``log_level``, ``log_namespace``, ``log_time`` and every field, so that
    ``twisted.logger.eventsFromJSONLogFile(file, recordSeparator=None)``
    reads it back), with ``text`` (the message as the text log shows it,
    traceback included) and ``level`` (``info``, ``error``...) added unless
    the event has fields of those names.
    """
    level = event.get("log_level")
    added = {
        "text": eventAsText(event, includeTimestamp=False, includeSystem=False),
        "level": getattr(level, "name", None),
    }
    return eventAsJSON({**added, **event}) + "\n"


def json_observer(output: IO[str] | None = None) -> FileLogObserver:
    """
    An observer writing each event as :func:`event_line` to ``output``,
    standard output unless given.  No RFC 7464 record separator: one
    object per line, as log shippers read them.
    """
    # Standard output as it is now: twistd then redirects sys.stdout into
    # the log itself, and writing there would loop.
    return FileLogObserver(output if output is not None else sys.stdout, event_line)
