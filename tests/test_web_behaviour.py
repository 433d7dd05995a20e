"""
The chat's behaviour (:mod:`tests.behaviour`) through the web door: a
:class:`WebDriver` that speaks the door's JSON (``docs/web.rst``) over a
real WebSocket client (autobahn's) on in-memory connections, through the
door's HTTP site and its upgrade at ``/ws``.

Events are recognised by their JSON fields and refusals by the core's
error type name (``"error": "NickInUse"``) and facts, never by their text.
"""

from __future__ import annotations

from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from chatservice.chat.errors import ChatError
from chatservice.doors.web.protocol import WebFactory, WebSettings
from chatservice.doors.web.site import WebSite
from chatservice.testing import Connection, Network
from tests.behaviour import ChatBehaviourTests
from tests.web_client import JSONClient, connect_memory

WebClient = Connection[JSONClient]


class WebDriver:
    """The web door, driven by JSON (a :class:`~tests.behaviour.DoorDriver`)."""

    def __init__(self, site: WebSite, network: Network) -> None:
        self.site = site
        self.network = network

    def send(self, client: WebClient, **message: Any) -> None:
        """Send one message, read by the server at once."""
        client.client.send(**message)
        client.push()

    def typed(self, client: WebClient, text: str) -> None:
        """A line typed in the page's input box."""
        self.send(client, type="input", text=text)

    # Actions

    def connect(self) -> WebClient:
        connection = connect_memory(self.network, self.site)
        for _ in range(3):  # the HTTP upgrade: request, then answer
            connection.push()
        assert connection.client.opened, "the WebSocket did not open"
        return connection

    def register(self, client: WebClient, nick: str) -> None:
        self.send(client, type="nick", nick=nick)

    def join(self, client: WebClient, room: str) -> None:
        self.send(client, type="join", room=room)

    def part(self, client: WebClient, room: str, reason: str) -> None:
        self.send(client, type="part", room=room, reason=reason)

    def say(self, client: WebClient, room: str, text: str) -> None:
        self.send(client, type="say", room=room, text=text)

    def whisper(self, client: WebClient, nick: str, text: str) -> None:
        self.send(client, type="msg", to=nick, text=text)

    def notice(self, client: WebClient, room: str, text: str) -> None:
        self.send(client, type="say", room=room, text=text, notice=True)

    def private_notice(self, client: WebClient, nick: str, text: str) -> None:
        self.send(client, type="msg", to=nick, text=text, notice=True)

    def quit(self, client: WebClient, reason: str) -> None:
        self.typed(client, f"/quit {reason}")

    def oper(self, client: WebClient, account: str, password: str) -> None:
        self.typed(client, f"/oper {account} {password}")

    def kick(self, client: WebClient, nick: str, reason: str) -> None:
        self.typed(client, f"/kick {nick} {reason}")

    def stop_reading(self, client: WebClient) -> None:
        client.stop_reading()

    # What a client saw

    def take(self, client: WebClient) -> list[Any]:
        return client.client.take()

    def disconnected(self, client: WebClient) -> bool:
        return client.closed

    # Recognisers

    def is_registered(self, seen: Any, nick: str) -> bool:
        return bool(seen.get("type") == "registered" and seen.get("nick") == nick)

    def is_operator(self, seen: Any, account: str) -> bool:
        return seen.get("type") == "reply" and f"operator (as {account})" in seen.get(
            "text", ""
        )

    def is_message(self, seen: Any, room: str, nick: str, text: str) -> bool:
        return _has(
            seen, "message", room=room, nick=nick, text=text, action=False, notice=False
        )

    def is_private(self, seen: Any, sender: str, recipient: str, text: str) -> bool:
        facts = {"from": sender, "to": recipient, "text": text, "notice": False}
        return _has(seen, "private", **facts)

    def is_notice(self, seen: Any, room: str, nick: str, text: str) -> bool:
        return _has(
            seen, "message", room=room, nick=nick, text=text, action=False, notice=True
        )

    def is_private_notice(
        self, seen: Any, sender: str, recipient: str, text: str
    ) -> bool:
        facts = {"from": sender, "to": recipient, "text": text, "notice": True}
        return _has(seen, "private", **facts)

    def is_joined(self, seen: Any, room: str, nick: str) -> bool:
        return _has(seen, "joined", room=room, nick=nick)

    def is_parted(self, seen: Any, room: str, nick: str, reason: str) -> bool:
        return _has(seen, "parted", room=room, nick=nick, reason=reason)

    def is_quit(self, seen: Any, nick: str, reason: str | None = None) -> bool:
        if reason is None:
            return _has(seen, "quit", nick=nick)
        return _has(seen, "quit", nick=nick, reason=reason)

    def is_kicked(self, seen: Any, nick: str, by: str, reason: str) -> bool:
        return _has(seen, "kicked", nick=nick, by=by, reason=reason)

    def is_error(self, seen: Any, kind: type[ChatError], **facts: object) -> bool:
        return _has(seen, "error", error=kind.__name__, **facts)

    def is_farewell(self, seen: Any, reason: str) -> bool:
        return seen.get("type") == "bye" and reason in seen.get("text", "")


def _has(seen: Any, kind: str, **fields: object) -> bool:
    """Whether a message is of ``kind`` with these fields."""
    return (
        isinstance(seen, dict)
        and seen.get("type") == kind
        and all(seen.get(name) == value for name, value in fields.items())
    )


class WebBehaviourTests(ChatBehaviourTests, SynchronousTestCase):
    """The chat's behaviour through the web door."""

    def makeDriver(self) -> WebDriver:
        factory = WebFactory(
            self.hub,
            self.limits,
            self.clock,
            # In memory the door's address is no IP address: /oper is let
            # through as on a loopback door (tests/test_web.py checks the rule).
            settings=WebSettings(allow_plain_oper=True),
            authenticator=self.authenticator,
        )
        return WebDriver(WebSite(factory), self.network)
