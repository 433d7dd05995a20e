"""
The web door: a chat page served by ``twisted.web`` and its WebSocket at
``/ws`` (``docs/web.rst``), in the same rooms as the native and IRC doors.

- :mod:`.messages`: the JSON protocol (requests in, events out);
- :mod:`.protocol`: a page's connection, a hub member on the shared
  connection policy;
- :mod:`.wire`: its WebSocket (wsproto: the handshake, framing, closing);
- :mod:`.site`: the HTTP side (static files, headers, the upgrade);
- ``static/``: the page (HTML, CSS, JavaScript; no build step).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from chatservice.doors.door import Door, DoorContext, positive_int, seconds
from chatservice.doors.web.protocol import WebFactory, WebSettings
from chatservice.doors.web.site import WebSite

__all__ = ["DOOR", "WebFactory", "WebSettings", "WebSite"]

_DEFAULTS = WebSettings()
#: People leave a chat page open; they are not cut off as soon as echo clients.
DEFAULT_WEB_IDLE_TIMEOUT = 3600.0


def _check(options: Any) -> None:
    from twisted.python import usage

    given = options["web-allow-origin"] or ""
    options.web_origins = tuple(o.strip() for o in given.split(",") if o.strip())
    for origin in options.web_origins:
        if origin != "*" and not origin.startswith(("http://", "https://")):
            raise usage.UsageError(
                f"--web-allow-origin {origin!r}: expected http://HOST[:PORT], "
                "https://HOST[:PORT] or *"
            )
    if options["web-max-message"] < 256:
        raise usage.UsageError("--web-max-message must be at least 256 bytes")


def _build(context: DoorContext) -> WebSite:
    options, chat = context.options, context.chat
    factory = WebFactory(
        chat.hub,
        replace(context.limits, idle_timeout=options["web-idle-timeout"]),
        context.reactor,
        settings=WebSettings(
            nick_timeout=options["nick-timeout"],
            replay=options["history-replay"],
            max_message=options["web-max-message"],
            ping_interval=options["web-ping-interval"],
            allow_plain_oper=bool(options["web-allow-plain-oper"]),
        ),
        authenticator=chat.authenticator,
        operations=chat.operations,
    )
    return WebSite(factory, options.web_origins)


DOOR = Door(
    name="web",
    summary="the web door: the chat page and its WebSocket (docs/web.rst)",
    default_endpoint="none",
    build=_build,
    client_speaks_first=True,
    flags=[
        [
            "web-allow-plain-oper",
            None,
            "Allow /oper from the page over plain HTTP beyond loopback (the "
            "password crosses the network readable; prefer an ssl: endpoint).",
        ],
    ],
    parameters=[
        [
            "web-allow-origin",
            None,
            None,
            "Origins (comma-separated: https://school.example,http://host:8080, "
            "or *) whose pages may open the chat's WebSocket besides the "
            "door's own page [default: none].",
        ],
        [
            "web-max-message",
            None,
            _DEFAULTS.max_message,
            "Largest WebSocket message a page may send, in bytes; a larger one "
            "closes its connection.",
            positive_int,
        ],
        [
            "web-ping-interval",
            None,
            _DEFAULTS.ping_interval,
            "Seconds between WebSocket pings; a page that has not answered "
            "by the next one is closed (0: no pings).",
            seconds,
        ],
        [
            "web-idle-timeout",
            None,
            DEFAULT_WEB_IDLE_TIMEOUT,
            "Seconds without a message from a page before it is closed (0: never).",
            seconds,
        ],
    ],
    check=_check,
)
