"""
The web door's side of ``twistd chatservice``: ``--web`` (off unless
given) and its options, and the service tree it makes (one hub with the
native door).
"""

from __future__ import annotations

from twisted.application.service import MultiService
from twisted.internet.testing import MemoryReactorClock
from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase

from chatservice import tap
from chatservice.doors.native.protocol import ChatFactory
from chatservice.doors.web.site import WebSite
from chatservice.service import ListeningService
from tests.test_tap_chat import parse


class WebOptionsTests(SynchronousTestCase):
    """``--web`` and the web door's own options."""

    def test_offByDefault(self) -> None:
        """Without ``--web`` the door does not listen."""
        self.assertEqual(parse().endpoints["web"], [])

    def test_endpoints(self) -> None:
        """``--web`` is repeatable, and ``none`` turns it off."""
        options = parse("--web", "tcp:8080", "--web", "unix:web.sock")
        self.assertEqual(options.endpoints["web"], ["tcp:8080", "unix:web.sock"])
        self.assertEqual(parse("--web", "none").endpoints["web"], [])

    def test_allowedOrigins(self) -> None:
        """``--web-allow-origin`` takes comma-separated origins, or ``*``."""
        options = parse("--web-allow-origin", "https://a.example, http://b:8080")
        self.assertEqual(options.web_origins, ("https://a.example", "http://b:8080"))
        self.assertEqual(parse("--web-allow-origin", "*").web_origins, ("*",))
        self.assertEqual(parse().web_origins, ())

    def test_badOrigin(self) -> None:
        """An origin that is not http(s)://... is refused, named."""
        error = self.assertRaises(
            usage.UsageError, parse, "--web-allow-origin", "evil.example"
        )
        self.assertIn("evil.example", str(error))

    def test_maxMessageFloor(self) -> None:
        """``--web-max-message`` below 256 bytes is refused."""
        self.assertRaises(usage.UsageError, parse, "--web-max-message", "10")

    def test_serviceTree(self) -> None:
        """
        ``--web`` adds a listening service whose site's door is on the
        native door's hub, with the web door's own idle timeout and
        settings from the shared options.
        """
        options = parse(
            "--echo", "none", "--upper", "none",
            "--chat", "tcp:7000:interface=127.0.0.1",
            "--web", "tcp:8080:interface=127.0.0.1",
            "--web-idle-timeout", "90",
            "--web-ping-interval", "5",
            "--nick-timeout", "7",
            "--history", "none",
        )  # fmt: skip
        top = tap.makeService(options, MemoryReactorClock())
        assert isinstance(top, MultiService)
        services = {s.factory.name: s for s in top if isinstance(s, ListeningService)}
        self.assertEqual(sorted(services), ["chat", "web"])
        chat, site = services["chat"].factory, services["web"].factory
        assert isinstance(chat, ChatFactory) and isinstance(site, WebSite)
        door = site.door
        self.assertIs(door.hub, chat.hub)
        self.assertEqual(door.limits.idle_timeout, 90)
        self.assertEqual(door.limits.registration_timeout, 7)
        self.assertEqual(door.settings.ping_interval, 5)
        self.assertFalse(door.settings.allow_plain_oper)
