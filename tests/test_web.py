"""
The web door up close, in memory (:class:`chatservice.testing.Network`, a
``Clock``): the JSON protocol and every bad input a page (or anyone) can
send over the WebSocket, and the HTTP side: the page, its headers, 404,
405, the Origin check, caching.  The chat's behaviour through the door is
``tests/test_web_behaviour.py``; the page in a browser
``tests/test_web_browser.py``.
"""

from __future__ import annotations

import json
import re
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.internet.address import IPv4Address, UNIXAddress
from twisted.internet.protocol import Protocol
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from chatservice.chat import events
from chatservice.chat.errors import NickInUse
from chatservice.conn.limits import Limits
from chatservice.doors.web import messages
from chatservice.doors.web.messages import BadMessageError, parse
from chatservice.doors.web.protocol import WebFactory, WebMember, WebSettings
from chatservice.doors.web.site import STATIC_FILES, WebSite, read_static
from chatservice.stores.memory import MemoryHistoryStore
from chatservice.testing import Connection, FakeAuthenticator, Network, turn_hub
from tests.web_client import JSONClient, connect_memory


class ParseTests(SynchronousTestCase):
    """:func:`messages.parse`: what a page may send, and what it may not."""

    def assertBad(self, text: str, code: str, says: str) -> None:
        with self.assertRaises(BadMessageError) as caught:
            parse(text)
        self.assertEqual(caught.exception.code, code)
        self.assertIn(says, caught.exception.text)

    def test_wellFormed(self) -> None:
        """A message of a known type with its fields is taken, extra fields ignored."""
        request = parse('{"type": "say", "room": "lobby", "text": "hi", "x": 1}')
        self.assertEqual(request.type, "say")
        self.assertEqual(request.fields, {"room": "lobby", "text": "hi"})

    def test_optionalField(self) -> None:
        """An optional field may be left out."""
        self.assertEqual(
            parse('{"type": "input", "text": "hi"}').fields, {"text": "hi"}
        )

    def test_notJSON(self) -> None:
        """Text that is not JSON is refused as such."""
        self.assertBad("{nope", "bad-json", "not JSON")

    def test_nestedTooDeeply(self) -> None:
        """Nesting past the parser's depth is refused, not a crash."""
        self.assertBad("[" * 100_000, "bad-json", "nested too deeply")

    def test_loneSurrogate(self) -> None:
        """A string with a lone surrogate (``\\ud800``) is not text: refused."""
        self.assertBad(
            '{"type": "say", "room": "lobby", "text": "a\\ud800b"}',
            "bad-field",
            "not valid Unicode",
        )

    def test_notAnObject(self) -> None:
        """JSON that is not an object (a list, a string, a number) is refused."""
        for text in ("[1, 2]", '"say"', "42", "null"):
            self.assertBad(text, "bad-message", "JSON object")

    def test_noType(self) -> None:
        """An object without a string ``type`` is refused."""
        self.assertBad('{"text": "hi"}', "bad-message", '"type"')
        self.assertBad('{"type": 3}', "bad-message", '"type"')

    def test_unknownType(self) -> None:
        """An unknown type is refused, naming the known ones."""
        self.assertBad('{"type": "hack"}', "unknown-type", "known: ")

    def test_missingField(self) -> None:
        """A required field left out is named."""
        self.assertBad('{"type": "say", "room": "lobby"}', "bad-field", '"text"')

    def test_wrongFieldTypes(self) -> None:
        """A field of the wrong JSON type is named, booleans not taken as numbers."""
        self.assertBad('{"type": "nick", "nick": 5}', "bad-field", "string")
        self.assertBad(
            '{"type": "say", "room": "a", "text": "b", "action": 1}',
            "bad-field",
            "bool",
        )
        self.assertBad(
            '{"type": "history", "room": "a", "count": true}', "bad-field", "integer"
        )
        self.assertBad('{"type": "msg", "to": ["bob"], "text": "x"}', "bad-field", "to")


class RenderTests(SynchronousTestCase):
    """How events and errors look in JSON."""

    def test_roomMessage(self) -> None:
        """A room message carries its id, the server's time, room, nick, text."""
        event = events.RoomMessage("lobby", "bob", "<b>hi</b>", id="n.1", at=12.5)
        (text,) = messages.encode(event)
        self.assertEqual(
            json.loads(text),
            {
                "type": "message",
                "id": "n.1",
                "at": 12.5,
                "room": "lobby",
                "nick": "bob",
                "text": "<b>hi</b>",
                "action": False,
                "notice": False,
            },
        )

    def test_notices(self) -> None:
        """A room notice and a private notice say so; a message says it is none."""
        (room,) = messages.render(events.RoomMessage("r", "a", "x", notice=True))
        self.assertEqual(
            (room["type"], room["notice"], room["action"]), ("message", True, False)
        )
        (private,) = messages.render(events.PrivateMessage("a", "b", "x", True))
        self.assertEqual((private["type"], private["notice"]), ("private", True))
        (plain,) = messages.render(events.PrivateMessage("a", "b", "x"))
        self.assertFalse(plain["notice"])

    def test_batch(self) -> None:
        """Several messages of a turn are one JSON message each, in order."""
        batch = events.RoomMessages(
            "lobby",
            (
                events.RoomMessage("lobby", "a", "1"),
                events.RoomMessage("lobby", "b", "2"),
            ),
        )
        self.assertEqual([m["text"] for m in messages.render(batch)], ["1", "2"])

    def test_everyEvent(self) -> None:
        """Every kind of event has a JSON form with a type of its own."""
        kinds = {
            messages.render(event)[0]["type"]
            for event in (
                events.PrivateMessage("a", "b", "x"),
                events.Joined("r", "a"),
                events.Parted("r", "a", "bye"),
                events.Quit("a"),
                events.NickChanged("a", "b"),
                events.TopicChanged("r", "a", "t"),
                events.Kicked("a", "op", "why"),
                events.Announcement("x", "op"),
                events.History("r", ()),
            )
        }
        self.assertEqual(len(kinds), 9)

    def test_errorFacts(self) -> None:
        """A refusal names the core's error type and carries its facts."""
        self.assertEqual(
            messages.render_error(NickInUse("bob")),
            {
                "type": "error",
                "error": "NickInUse",
                "text": "the nickname bob is taken",
                "nick": "bob",
            },
        )


class RawHTTP(Protocol):
    """A client that sends bytes and keeps the answer."""

    def __init__(self) -> None:
        self.data = b""

    def dataReceived(self, data: bytes) -> None:
        self.data += data

    def response(self) -> tuple[int, dict[str, str], bytes]:
        """Status code, headers (lower-case names), body."""
        head, _, body = self.data.partition(b"\r\n\r\n")
        status, *lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        return int(status.split()[1]), headers, body


class DoorTestCase(SynchronousTestCase):
    """A web door on a hub, in memory."""

    limits = Limits(flood_burst=10, flood_rate=4, max_line_length=100)
    settings = WebSettings(allow_plain_oper=True, max_message=1024, ping_interval=30)
    allowed_origins: tuple[str, ...] = ()

    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(1000)
        self.hub = turn_hub(self.clock)
        self.network = Network(self.clock)
        self.authenticator = FakeAuthenticator()
        self.factory = WebFactory(
            self.hub,
            self.limits,
            self.clock,
            settings=self.settings,
            authenticator=self.authenticator,
        )
        self.site = WebSite(self.factory, self.allowed_origins)

    def http(self, request: str) -> tuple[int, dict[str, str], bytes]:
        """One raw HTTP request's response."""
        client = RawHTTP()
        connection = self.network.connect(self.site, client)
        assert client.transport is not None
        client.transport.write(request.encode("latin-1"))
        self.network.settle()
        del connection
        return client.response()

    def get(self, path: str, *headers: str) -> tuple[int, dict[str, str], bytes]:
        extra = "".join(f"{header}\r\n" for header in headers)
        return self.http(f"GET {path} HTTP/1.1\r\nHost: chat.test\r\n{extra}\r\n")

    def page(self, origin: str | None = None) -> Connection[JSONClient]:
        """A page's WebSocket, open."""
        connection = connect_memory(self.network, self.site, origin=origin)
        self.network.settle()
        return connection

    def member(self, nick: str) -> Connection[JSONClient]:
        """A page registered as ``nick``, what it saw so far dropped."""
        connection = self.page()
        self.assertTrue(connection.client.opened)
        connection.client.send(type="nick", nick=nick)
        self.network.settle()
        seen = connection.client.take()
        self.assertIn({"type": "registered", "nick": nick, "room": "lobby"}, seen)
        return connection

    def exchange(self, connection: Connection[JSONClient], **message: Any) -> list[Any]:
        """Send one message; what came back."""
        connection.client.send(**message)
        self.network.settle()
        return connection.client.take()

    def errors(self, seen: list[Any]) -> list[str]:
        return [m["error"] for m in seen if m.get("type") == "error"]


class HTTPTests(DoorTestCase):
    """The HTTP side: page, files, headers, 404, 405."""

    def test_page(self) -> None:
        """``/`` is the page, as HTML, with its script and style as files."""
        status, headers, body = self.get("/")
        self.assertEqual(status, 200)
        self.assertEqual(headers["content-type"], "text/html; charset=utf-8")
        self.assertEqual(body, read_static("index.html"))
        self.assertIn(b'<script src="chat.js"', body)
        for name, media_type in STATIC_FILES.items():
            status, headers, body = self.get(f"/{name}")
            self.assertEqual((status, headers["content-type"]), (200, media_type))
            self.assertEqual(body, read_static(name))

    def test_noInlineScriptOrStyle(self) -> None:
        """The page has no inline script, style or handler (the CSP forbids them)."""
        html = read_static("index.html").decode()
        self.assertNotIn("<style", html)
        self.assertIsNone(re.search(r"<[^>]*\s(on[a-z]+|style)\s*=", html))
        scripts = re.findall(r"<script([^>]*)>(.*?)</script>", html, re.DOTALL)
        self.assertEqual(
            [
                (attributes, body)
                for attributes, body in scripts
                if "src=" not in attributes or body.strip()
            ],
            [],
        )
        self.assertEqual(len(scripts), 1)

    def test_securityHeaders(self) -> None:
        """Every response, a 404 too, carries the strict CSP and the other headers."""
        for path in ("/", "/chat.js", "/nothing"):
            _, headers, _ = self.get(path)
            csp = headers["content-security-policy"]
            self.assertIn("default-src 'none'", csp)
            self.assertIn("script-src 'self';", csp)
            self.assertIn("style-src 'self';", csp)
            self.assertIn("frame-ancestors 'none'", csp)
            self.assertIn("connect-src 'self' ws://chat.test wss://chat.test;", csp)
            self.assertNotIn("unsafe-inline", csp)
            self.assertEqual(headers["x-content-type-options"], "nosniff")
            self.assertEqual(headers["referrer-policy"], "no-referrer")
            self.assertEqual(headers["x-frame-options"], "DENY")

    def test_hostileHostNotInPolicy(self) -> None:
        """A Host header that is not a plain host name stays out of the CSP."""
        _, headers, _ = self.http(
            "GET / HTTP/1.1\r\nHost: evil.test; script-src *\r\n\r\n"
        )
        self.assertEqual(headers["content-security-policy"].count("script-src"), 1)
        self.assertNotIn("evil", headers["content-security-policy"])

    def test_caching(self) -> None:
        """Static files are revalidated by ETag: unchanged, a 304 without a body."""
        status, headers, _ = self.get("/chat.js")
        self.assertEqual(headers["cache-control"], "no-cache")
        etag = headers["etag"]
        status, _, body = self.get("/chat.js", f"If-None-Match: {etag}")
        self.assertEqual((status, body), (304, b""))
        status, _, _ = self.get("/chat.js", 'If-None-Match: "other"')
        self.assertEqual(status, 200)

    def test_unknownPaths(self) -> None:
        """Any other path is a 404, with a line saying what the door serves."""
        for path in (
            "/nothing",
            "/chat.js/more",
            "/ws/more",
            "/../setup.cfg",
            "/static",
        ):
            status, _, body = self.get(path)
            self.assertEqual(status, 404 if path != "/ws/more" else 400, path)
            self.assertTrue(body)

    def test_otherMethods(self) -> None:
        """Methods other than GET (and HEAD) get a 405 saying GET."""
        for method in ("POST", "PUT", "DELETE", "OPTIONS", "BREW"):
            status, headers, _ = self.http(
                f"{method} / HTTP/1.1\r\nHost: chat.test\r\nContent-Length: 0\r\n\r\n"
            )
            self.assertEqual(status, 405, method)
            self.assertEqual(headers["allow"], "GET, HEAD")

    def test_head(self) -> None:
        """HEAD answers as GET, without the body."""
        status, headers, body = self.http("HEAD / HTTP/1.1\r\nHost: chat.test\r\n\r\n")
        self.assertEqual((status, body), (200, b""))
        self.assertIn("content-security-policy", headers)

    def test_plainGetOfWebSocket(self) -> None:
        """``/ws`` without an upgrade is a clear 400, not a hang."""
        status, _, body = self.get("/ws")
        self.assertEqual(status, 400)
        self.assertIn(b"WebSocket", body)


class OriginTests(DoorTestCase):
    """Which pages may open the WebSocket."""

    allowed_origins = ("https://school.example",)

    def test_sameOrigin(self) -> None:
        """The door's own page (its Host) may."""
        self.assertTrue(self.page(origin="http://localhost").client.opened)

    def test_allowedOrigin(self) -> None:
        """An origin given with ``--web-allow-origin`` may."""
        self.assertTrue(self.page(origin="https://school.example").client.opened)

    def test_otherOrigin(self) -> None:
        """Another site's page may not: 403, no member, the reason said."""
        for origin in ("http://evil.example", "https://localhost", "null"):
            connection = self.page(origin=origin)
            self.assertFalse(connection.client.opened, origin)
        self.assertEqual(self.factory.connections, set())
        status, _, body = self.get(
            "/ws",
            "Upgrade: websocket",
            "Connection: Upgrade",
            "Sec-WebSocket-Version: 13",
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
            "Origin: http://evil.example",
        )
        self.assertEqual(status, 403)
        self.assertIn(b"--web-allow-origin", body)


class BadInputTests(DoorTestCase):
    """Every bad input over the WebSocket: a clear error, and the page goes on."""

    def assertStillWorks(self, connection: Connection[JSONClient]) -> None:
        seen = self.exchange(connection, type="ping")
        self.assertEqual(seen, [{"type": "pong"}])

    def test_malformedJSON(self) -> None:
        """Text that is not JSON gets ``bad-json``."""
        page = self.member("alice")
        page.client.send_text("{nope")
        self.network.settle()
        self.assertEqual(self.errors(page.client.take()), ["bad-json"])
        self.assertStillWorks(page)

    def test_unknownType(self) -> None:
        """An unknown type gets ``unknown-type``."""
        page = self.member("alice")
        self.assertEqual(
            self.errors(self.exchange(page, type="rm -rf")), ["unknown-type"]
        )
        self.assertStillWorks(page)

    def test_wrongFieldType(self) -> None:
        """A field of the wrong type gets ``bad-field``, and nothing is said."""
        page, other = self.member("alice"), self.member("bob")
        seen = self.exchange(page, type="say", room="lobby", text=["x"])
        self.assertEqual(self.errors(seen), ["bad-field"])
        self.assertEqual(other.client.take(), [])
        self.assertStillWorks(page)

    def test_binaryFrame(self) -> None:
        """A binary message gets ``binary``: the door speaks JSON text."""
        page = self.member("alice")
        page.client.sendMessage(b"\x00\xff", isBinary=True)
        self.network.settle()
        self.assertEqual(self.errors(page.client.take()), ["binary"])
        self.assertStillWorks(page)

    def test_invalidUTF8(self) -> None:
        """A text message that is not UTF-8 closes the WebSocket (RFC 6455: 1007)."""
        page = self.member("alice")
        page.client.sendMessage(b"\xff\xfe", isBinary=False)
        self.network.settle()
        self.assertTrue(page.closed)
        self.assertEqual(page.client.close_code, 1007)

    def test_textTooLong(self) -> None:
        """A text over the line limit gets ``too-long`` and is not said."""
        page, other = self.member("alice"), self.member("bob")
        seen = self.exchange(page, type="say", room="lobby", text="x" * 101)
        self.assertEqual(self.errors(seen), ["too-long"])
        self.assertEqual(other.client.take(), [])
        self.assertStillWorks(page)

    def test_oversizedMessage(self) -> None:
        """A message over ``--web-max-message`` closes the connection with 1009."""
        page = self.member("alice")
        page.client.send(type="say", room="lobby", text="x" * 2000)
        self.network.settle()
        self.assertTrue(page.closed)
        self.assertEqual(page.client.close_code, 1009)
        self.assertEqual(self.factory.connections, set())
        self.assertEqual(self.hub.nicks, {})

    def test_chatRefusal(self) -> None:
        """A refusal of the core is its typed error: saying in a room not joined."""
        page = self.member("alice")
        seen = self.exchange(page, type="say", room="games", text="hi")
        self.assertEqual(seen[0]["error"], "NotInRoom")
        seen = self.exchange(page, type="join", room="bad room!")
        self.assertEqual(self.errors(seen), ["InvalidRoom"])

    def test_beforeNickname(self) -> None:
        """Before a nickname, chat requests are refused with ``NickRequired``."""
        page = self.page()
        page.client.take()
        for message in (
            {"type": "say", "room": "lobby", "text": "hi"},
            {"type": "msg", "to": "bob", "text": "hi"},
            {"type": "join", "room": "games"},
        ):
            self.assertEqual(
                self.errors(self.exchange(page, **message)), ["NickRequired"]
            )

    def test_nickTaken(self) -> None:
        """A nickname taken is said so, with the nick, and another may be tried."""
        self.member("alice")
        page = self.page()
        seen = self.exchange(page, type="nick", nick="Alice")
        self.assertEqual(seen[-1]["error"], "NickInUse")
        seen = self.exchange(page, type="nick", nick="alice2")
        self.assertIn({"type": "registered", "nick": "alice2", "room": "lobby"}, seen)


#: Any text, lone surrogates included (JSON can carry them: "\\ud800").
TEXT = st.text(st.characters(exclude_categories=()), max_size=30) | st.sampled_from(
    ["\ud800", "a\udfffb", "<img src=x onerror=alert(1)>", "\x1b[2J", "/quit"]
)
#: Any JSON value: what a page (or anyone) might send, well-formed or not.
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | TEXT,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
#: Objects shaped like requests: a known type, fields of any kind.
REQUESTS = st.fixed_dictionaries(
    {"type": st.sampled_from(sorted(messages.CLIENT_MESSAGES))},
    optional={
        name: st.one_of(TEXT, st.sampled_from(["lobby", "fuzz", "other"]), JSON)
        for name in ("nick", "text", "room", "to", "topic", "reason", "count")
    },
)


class FuzzTests(DoorTestCase):
    """Whatever a page sends, it gets an answer or nothing, and the door goes on."""

    limits = Limits(flood_rate=0, max_line_length=100)

    @settings(
        max_examples=150,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture],
    )
    @given(
        st.lists(
            st.text(max_size=60) | JSON.map(json.dumps) | REQUESTS.map(json.dumps),
            max_size=6,
        )
    )
    def test_anythingSent(self, sent: list[str]) -> None:
        """
        Random text, random JSON and random requests: no internal error,
        every answer is JSON of a known type, and the page still answers
        a ping afterwards.
        """
        self.setUp()
        page = self.member("fuzz")
        self.member("other")
        page.client.take()
        for text in sent:
            page.client.send_text(text)
        self.network.settle()
        seen = page.client.take()
        known = {
            "error",
            "reply",
            "message",
            "joined",
            "parted",
            "room",
            "history",
            "registered",
            "renamed",
            "topic",
            "private",
            "pong",
            "bye",
            "quit",
        }
        self.assertEqual([m for m in seen if m.get("type") not in known], [])
        self.assertNotIn("internal-error", self.errors(seen))
        if not page.closed:
            self.assertEqual(self.exchange(page, type="ping")[-1], {"type": "pong"})


class ConversationTests(DoorTestCase):
    """The JSON protocol in use."""

    def test_inputLines(self) -> None:
        """Typed lines go through the native door's commands: /who, /me, //x."""
        page, other = self.member("alice"), self.member("bob")
        page.client.take()
        seen = self.exchange(page, type="input", text="/who")
        self.assertEqual(seen, [{"type": "reply", "text": "#lobby (2): alice bob"}])
        self.exchange(page, type="input", text="/me waves")
        self.exchange(page, type="input", text="//not a command", room="lobby")
        said = [(m["text"], m["action"]) for m in other.client.take()]
        self.assertEqual(said, [("waves", True), ("/not a command", False)])
        seen = self.exchange(page, type="input", text="/nonsense")
        self.assertIn("unknown command /nonsense", seen[0]["text"])

    def test_notices(self) -> None:
        """
        A page sends a notice to a room (``say`` with ``notice``) or a
        member (``msg`` with ``notice``), or types ``/notice``; every side
        gets it with ``"notice": true``; an action and a notice at once is
        refused (``UsageError``) and sends nothing.
        """
        page, other = self.member("alice"), self.member("bob")
        other.client.take()
        self.exchange(page, type="say", room="lobby", text="one", notice=True)
        self.exchange(page, type="msg", to="bob", text="two", notice=True)
        self.exchange(page, type="input", text="/notice #lobby three")
        self.exchange(page, type="input", text="/notice bob four")
        self.exchange(page, type="say", room="lobby", text="five")
        seen = other.client.take()
        self.assertEqual(
            [(m["type"], m["text"], m["notice"]) for m in seen],
            [
                ("message", "one", True),
                ("private", "two", True),
                ("message", "three", True),
                ("private", "four", True),
                ("message", "five", False),
            ],
        )
        both = self.exchange(
            page, type="say", room="lobby", text="x", action=True, notice=True
        )
        self.assertEqual(self.errors(both), ["UsageError"])
        self.assertEqual(other.client.take(), [])
        bad = self.exchange(page, type="say", room="lobby", text="x", notice="yes")
        self.assertEqual(self.errors(bad), ["bad-field"])

    def test_noticeInHistory(self) -> None:
        """A notice replayed on joining a room carries ``"notice": true``."""
        self.hub.store = MemoryHistoryStore(50, clock=self.clock.seconds)
        bob = self.member("bob")
        self.exchange(bob, type="join", room="games")
        self.exchange(bob, type="say", room="games", text="heads up", notice=True)
        self.exchange(bob, type="say", room="games", text="plain")
        seen = self.exchange(self.member("alice"), type="join", room="games")
        (history,) = [m for m in seen if m["type"] == "history"]
        self.assertEqual(
            [(m["text"], m["notice"]) for m in history["messages"]],
            [("heads up", True), ("plain", False)],
        )

    def test_roomOnJoin(self) -> None:
        """Joining a room answers with its topic and members."""
        page, other = self.member("alice"), self.member("bob")
        self.exchange(other, type="join", room="games")
        self.exchange(other, type="topic", room="games", topic="chess")
        seen = self.exchange(page, type="join", room="Games")
        self.assertIn(
            {
                "type": "room",
                "room": "games",
                "topic": "chess",
                "members": ["alice", "bob"],
            },
            seen,
        )

    def test_historyOnJoin(self) -> None:
        """With a store, joining a room shows its last messages (ids and times)."""
        self.hub.store = MemoryHistoryStore(50, clock=self.clock.seconds)
        bob = self.member("bob")
        self.exchange(bob, type="join", room="games")
        self.exchange(bob, type="say", room="games", text="said before")
        page = self.member("alice")
        seen = self.exchange(page, type="join", room="games")
        (history,) = [m for m in seen if m["type"] == "history"]
        self.assertEqual([m["text"] for m in history["messages"]], ["said before"])
        self.assertEqual(history["messages"][0]["at"], 1000.0)

    def test_olderHistory(self) -> None:
        """
        A page scrolling up asks for the messages before the oldest it
        shows, and gets them with what it asked (to know where they go).
        """
        self.hub.store = MemoryHistoryStore(50, clock=self.clock.seconds)
        bob = self.member("bob")
        for n in range(5):
            self.exchange(bob, type="say", room="lobby", text=f"m{n}")
        (latest,) = self.exchange(bob, type="history", room="lobby", count=1)
        (oldest_shown,) = latest["messages"]
        self.assertEqual(oldest_shown["text"], "m4")
        (older,) = self.exchange(
            bob, type="history", room="lobby", before=oldest_shown["id"], count=2
        )
        self.assertEqual([m["text"] for m in older["messages"]], ["m2", "m3"])
        self.assertEqual((older["before"], older["count"]), (oldest_shown["id"], 2))
        seen = self.exchange(bob, type="history", room="games", before="x")
        self.assertEqual(self.errors(seen), ["NotInRoom"])

    def test_ownMessageBeforeHistoryInOneRead(self) -> None:
        """
        A ``say`` and a ``history`` request arriving in one read are
        answered in that order: the message first, then the history that
        holds it.
        """
        self.hub.store = MemoryHistoryStore(50, clock=self.clock.seconds)
        bob = self.member("bob")
        bob.client.send(type="say", room="lobby", text="fresh")
        bob.client.send(type="history", room="lobby", count=1)
        self.network.settle()
        seen = bob.client.take()
        self.assertEqual([m["type"] for m in seen], ["message", "history"])
        self.assertEqual(seen[0]["text"], "fresh")
        self.assertEqual([m["text"] for m in seen[1]["messages"]], ["fresh"])

    def test_framedOnce(self) -> None:
        """A room message is framed once for all its recipients."""
        pages = [self.member(f"user{n}") for n in range(3)]
        delivered: list[events.Event] = []
        original = WebMember.deliver

        def spy(member: WebMember, event: events.Event) -> None:
            delivered.append(event)
            original(member, event)

        self.patch(WebMember, "deliver", spy)
        self.exchange(pages[0], type="say", room="lobby", text="hello")
        frames = {id(e._wire["websocket"]) for e in delivered}
        self.assertEqual(len(delivered), 3)
        self.assertEqual(len(frames), 1)


class OperatorRuleTests(DoorTestCase):
    """``/oper`` from a page: only where the password cannot be read on the way."""

    settings = WebSettings()

    def oper_answer(self, host: object) -> list[Any]:
        page = self.member("alice")
        (member,) = self.factory.connections
        assert isinstance(member, WebMember)
        self.patch(member.transport, "getHost", lambda: host)
        account, password = self.authenticator.account, self.authenticator.password
        return self.exchange(page, type="input", text=f"/oper {account} {password}")

    def test_refusedBeyondLoopback(self) -> None:
        """On a plain-HTTP door listening beyond loopback, /oper is refused."""
        seen = self.oper_answer(IPv4Address("TCP", "192.0.2.7", 8080))
        self.assertIn("/oper is refused here", seen[0]["text"])
        self.assertEqual(self.hub.nicks["alice"].operator, None)

    def test_loopback(self) -> None:
        """On loopback it works."""
        seen = self.oper_answer(IPv4Address("TCP", "127.0.0.1", 8080))
        self.assertIn("you are now an operator", seen[-1]["text"])

    def test_unixSocket(self) -> None:
        """On a UNIX socket (behind a local proxy) it works."""
        seen = self.oper_answer(UNIXAddress("/run/chat.sock"))
        self.assertIn("you are now an operator", seen[-1]["text"])


class LivenessTests(DoorTestCase):
    """Pings and idle pages."""

    def test_pingAnswered(self) -> None:
        """A page that answers pings stays."""
        page = self.member("alice")
        for _ in range(4):
            self.clock.advance(30)
            self.network.settle()
        self.assertFalse(page.closed)

    def test_deadPeerClosed(self) -> None:
        """A page that does not answer a ping by the next is closed and quits."""
        page, other = self.member("alice"), self.member("bob")
        self.patch(page.client, "onPing", lambda payload: None)  # gone silent
        self.clock.advance(30)
        self.network.settle()
        self.assertFalse(page.closed)
        self.clock.advance(30)
        self.network.settle()
        self.assertTrue(page.closed)
        quits = [m for m in other.client.take() if m["type"] == "quit"]
        self.assertEqual(quits[0]["nick"], "alice")
        self.assertEqual(quits[0]["reason"], "no answer to ping")

    def test_nickTimeout(self) -> None:
        """A page that chooses no nickname in time is told why and closed."""
        page = self.page()
        self.clock.advance(self.settings.nick_timeout + 1)
        self.network.settle()
        self.assertTrue(page.closed)
        (bye,) = [m for m in page.client.take() if m["type"] == "bye"]
        self.assertIn("no nickname chosen", bye["text"])
        self.assertEqual(page.client.close_code, 4000)

    def test_shutdown(self) -> None:
        """On shutdown every page is told (not an error: it reconnects) and closed."""
        page = self.member("alice")
        done = self.site.closeAll()
        self.network.settle()
        self.successResultOf(done)
        (bye,) = [m for m in page.client.take() if m["type"] == "bye"]
        self.assertEqual((bye["error"], page.client.close_code), (False, 1000))
