"""
The web door's HTTP side (``twisted.web``): the page's static files, the
WebSocket at ``/ws``, and nothing else.

- ``/`` is the page; its script and style sheet are files of their own
  (package data, ``static/``): the Content-Security-Policy allows no inline
  script or style, nothing from elsewhere, and WebSocket connections only
  to this door.
- Every response carries the security headers (:data:`SECURITY_HEADERS`);
  static files an ``ETag`` and ``Cache-Control: no-cache`` (revalidated,
  so a new version shows after a restart, 304 when unchanged).
- Any other path is a 404, any method other than GET or HEAD a 405.
- ``/ws`` checks the ``Origin`` (the page's own unless allowed by
  ``--web-allow-origin``: another site's page must not chat as its
  visitor), has wsproto answer the upgrade (a refusal is an HTTP answer
  of the door's own, saying why) and hands the connection over to the
  WebSocket (:class:`~chatservice.doors.web.wire.WebWire`).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from functools import partial
from importlib import resources
from typing import Any
from urllib.parse import urlsplit

from twisted.internet.defer import Deferred
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request, Site

from chatservice.conn.limits import Limits
from chatservice.doors.web.gate import WebChannel
from chatservice.doors.web.protocol import WebFactory
from chatservice.doors.web.wire import UPGRADE_REQUIRED, UpgradeRefusedError, accept

#: The files of the page, by path, with their media types.
STATIC_FILES = {
    "index.html": "text/html; charset=utf-8",
    "chat.js": "text/javascript; charset=utf-8",
    "chat.css": "text/css; charset=utf-8",
}

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
}

#: A Host header that may go into the CSP as is (a name or address, a port).
_HOST = re.compile(r"[A-Za-z0-9.\-]+(:[0-9]{1,5})?|\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?")


def content_security_policy(host: str | None) -> str:
    """
    Nothing but this door's own files, and WebSocket connections to it
    (``'self'`` covers ``ws:`` in current browsers; the door's own
    ``ws://`` and ``wss://`` are named for the others).
    """
    connect = "'self'"
    if host is not None and _HOST.fullmatch(host):
        connect += f" ws://{host} wss://{host}"
    return (
        "default-src 'none'; script-src 'self'; style-src 'self'; "
        f"img-src 'self'; connect-src {connect}; base-uri 'none'; "
        "form-action 'none'; frame-ancestors 'none'"
    )


def secure(request: Request) -> None:
    """Set the headers every response of the door carries."""
    for name, value in SECURITY_HEADERS.items():
        request.setHeader(name, value)
    host = request.getHeader("host")
    request.setHeader("Content-Security-Policy", content_security_policy(host))


class DoorResource(Resource):
    """A resource of the door: GET and HEAD only, headers always set."""

    allowedMethods = (b"GET", b"HEAD")

    def render(self, request: Request) -> bytes | int:
        secure(request)
        if request.method not in self.allowedMethods:
            request.setResponseCode(405)
            request.setHeader("Allow", "GET, HEAD")
            request.setHeader("Content-Type", "text/plain; charset=utf-8")
            return b"method not allowed: this door only answers GET\n"
        result: bytes | int = super().render(request)
        return result

    def render_HEAD(self, request: Request) -> bytes | int:
        return self.render_GET(request)

    def render_GET(self, request: Request) -> bytes | int:
        raise NotImplementedError


class NotFound(DoorResource):
    """Every path the door does not have."""

    isLeaf = True

    def render_GET(self, request: Request) -> bytes:
        request.setResponseCode(404)
        request.setHeader("Content-Type", "text/plain; charset=utf-8")
        return b"not found: this door serves the chat page at / and /ws\n"


class StaticFile(DoorResource):
    """One file of the page, read once, revalidated by its ETag."""

    isLeaf = True

    def __init__(self, data: bytes, media_type: str) -> None:
        super().__init__()
        self.data = data
        self.media_type = media_type
        self.etag = '"' + hashlib.sha256(data).hexdigest()[:32] + '"'

    def render_GET(self, request: Request) -> bytes:
        if request.postpath not in ([], [b""]):
            return NotFound().render_GET(request)
        request.setHeader("Content-Type", self.media_type)
        request.setHeader("Cache-Control", "no-cache")
        request.setHeader("ETag", self.etag)
        if request.getHeader("if-none-match") == self.etag:
            request.setResponseCode(304)
            return b""
        return self.data


def read_static(name: str) -> bytes:
    """A file of the page, from the package's data."""
    return (
        resources.files("chatservice.doors.web").joinpath("static", name).read_bytes()
    )


def origin_allowed(request: Request, allowed: Iterable[str]) -> bool:
    """
    Whether a WebSocket may be opened from the page that asks: no
    ``Origin`` (not a browser, which always sends one), this door's own
    origin, or one of ``allowed`` (``*``: any).
    """
    origin = request.getHeader("origin")
    if origin is None:
        return True
    allowed = set(allowed)
    if "*" in allowed or origin in allowed:
        return True
    host = request.getHeader("host")
    scheme = "https" if request.isSecure() else "http"
    return host is not None and same_place(origin, scheme, host)


_DEFAULT_PORTS = {"http": 80, "https": 443}


def same_place(origin: str, scheme: str, host: str) -> bool:
    """
    Whether an ``Origin`` is ``scheme://host`` (names in any case, a
    default port said or not: browsers leave out ``:80``, some clients not).
    """
    try:
        theirs = urlsplit(origin)
        ours = urlsplit(f"{scheme}://{host}")
        their_port = theirs.port or _DEFAULT_PORTS.get(theirs.scheme)
        our_port = ours.port or _DEFAULT_PORTS[scheme]
    except ValueError:
        return False
    return (
        theirs.scheme == scheme
        and theirs.hostname is not None
        and theirs.hostname == ours.hostname
        and their_port == our_port
        and not (theirs.path or theirs.query or theirs.username)
    )


class WebSocketResource(DoorResource):
    """``/ws``: checks the upgrade and its origin, then hands over the connection."""

    isLeaf = True

    def __init__(self, door: WebFactory, allowed_origins: Iterable[str]) -> None:
        super().__init__()
        self.door = door
        self.allowed_origins = tuple(allowed_origins)

    def render_HEAD(self, request: Request) -> bytes:
        return self._refuse(request, 400, "a WebSocket is opened with GET")

    def render_GET(self, request: Request) -> bytes | int:
        upgrade = (request.getHeader("upgrade") or "").lower()
        if upgrade != "websocket" or request.postpath not in ([], [b""]):
            return self._refuse(request, 400, "expected a WebSocket upgrade")
        if not origin_allowed(request, self.allowed_origins):
            return self._refuse(
                request,
                403,
                f"origin {request.getHeader('origin')} may not open this chat "
                "(the server's --web-allow-origin adds origins)",
            )
        channel = request.channel
        transport: Any = channel.transport
        if transport is None:
            return self._refuse(request, 400, "the connection is gone")
        headers = [
            (name, value)
            for name, values in request.requestHeaders.getAllRawHeaders()
            for value in values
        ]
        try:
            ws, answer = accept(headers, request.uri)
        except UpgradeRefusedError as refused:
            # The client asked for a WebSocket, not this: answered, closed.
            for name, value in refused.headers:
                request.responseHeaders.addRawHeader(name, value)
            request.setHeader("Connection", "close")
            channel.persistent = False
            return self._refuse(
                request,
                refused.status,
                f"WebSocket upgrade refused: {refused.why}",
                # Twisted has no reason phrase of its own for 426.
                b"Upgrade Required" if refused.status == UPGRADE_REQUIRED else None,
            )
        wire = self.door.buildWire(ws)
        if isinstance(channel, WebChannel):
            # The connection's admission goes on with the WebSocket: its
            # member takes the place (WebFactory.admit), deadline running.
            wire.visitor = channel.visitor
        # The connection is the WebSocket's from now on: the HTTP channel
        # lets go of it (its producer registration and timeout), and is
        # left to the garbage collector with this unfinished request.
        channel.setTimeout(None)
        transport.unregisterProducer()  # a no-op when none is registered
        channel.transport = None
        if hasattr(transport, "wrappedProtocol"):  # TLS
            transport.wrappedProtocol = wire
        else:
            transport.protocol = wire
        transport.write(answer)  # the 101, then the page's member says hello
        wire.makeConnection(transport)
        transport.resumeProducing()  # HTTPChannel paused it for the request
        return NOT_DONE_YET

    def _refuse(
        self, request: Request, code: int, why: str, phrase: bytes | None = None
    ) -> bytes:
        request.setResponseCode(code, phrase)
        request.setHeader("Content-Type", "text/plain; charset=utf-8")
        return why.encode("utf-8") + b"\n"


class WebRoot(DoorResource):
    """``/``: the page, its two files, ``/ws``; anything else is not found."""

    def __init__(self, door: WebFactory, allowed_origins: Iterable[str]) -> None:
        super().__init__()
        self.files = {
            name.encode(): StaticFile(read_static(name), media_type)
            for name, media_type in STATIC_FILES.items()
        }
        self.websocket = WebSocketResource(door, allowed_origins)

    def getChild(self, path: bytes, request: Request) -> Resource:
        if path == b"":
            return self.files[b"index.html"]
        if path == b"ws":
            return self.websocket
        return self.files.get(path) or NotFound()

    def render_GET(self, request: Request) -> bytes:
        return self.files[b"index.html"].render_GET(request)


class WebSite(Site):
    """The web door's factory (a ``DoorFactory``): HTTP, upgraded to WebSocket."""

    noisy = False

    def __init__(self, door: WebFactory, allowed_origins: Iterable[str] = ()) -> None:
        # HTTP's timeout is the time a request has to arrive whole, from
        # the connection or the previous response (chatservice.doors.web.gate).
        super().__init__(
            WebRoot(door, allowed_origins),
            timeout=door.limits.line_timeout or None,
            reactor=door.clock,
        )
        # Every connection is admitted by the door when it is made.  (Twisted
        # types ``protocol`` as its own HTTP/2-switching proxy; any callable
        # making a channel is what ServerFactory.buildProtocol calls.)
        self.protocol = partial(WebChannel, door)  # type: ignore[method-assign,assignment]
        self.door = door
        self.name = door.name
        # No access log: the chat logs members, not every page load.
        self.logFile: Any = None

    @property
    def limits(self) -> Limits:
        """The door's limits: its members' and its HTTP connections'."""
        return self.door.limits

    def set_limits(self, limits: Limits) -> None:
        """
        Limits changed at run time (a reload): the door applies them to its
        members and its HTTP connections alike
        (:meth:`~chatservice.conn.factory.ConnectionFactory.set_limits`);
        HTTP's request timeout (``--line-timeout``) to connections made from
        now on.
        """
        self.door.set_limits(limits)
        self.timeOut = limits.line_timeout or None

    def log(self, request: Any) -> None:
        """No access log line per request."""

    def closeAll(self, message: str | None = None) -> Deferred[None]:
        """Say goodbye to every page connected; fires once all are gone."""
        return self.door.closeAll(message)
