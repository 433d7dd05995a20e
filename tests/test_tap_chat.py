"""
The chat and admin-console side of ``twistd chatservice``'s options and
service tree: the chat's endpoint and settings, and the rules that keep the
admin console private and behind credentials.
"""

from __future__ import annotations

from twisted.application.service import MultiService
from twisted.internet.testing import MemoryReactorClock
from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase

from chatservice import tap
from chatservice.doors.admin import AdminFactory
from chatservice.doors.native.protocol import ChatFactory
from chatservice.service import ListeningService
from tests.support import temp_dir


def parse(*args: str) -> tap.Options:
    options = tap.Options()
    options.parseOptions(list(args))
    return options


class ChatOptionsTests(SynchronousTestCase):
    """The chat's own options."""

    def test_defaults(self) -> None:
        """The chat listens on tcp:6666; the admin console is off."""
        options = parse()
        self.assertEqual(options.endpoints["chat"], ["tcp:6666"])
        self.assertEqual(options.endpoints["admin"], [])
        self.assertEqual(options["default-room"], "lobby")
        self.assertEqual(options["nick-timeout"], 20.0)
        self.assertEqual(options["chat-idle-timeout"], 3600.0)
        self.assertEqual(options.motd, ())

    def test_chatOff(self) -> None:
        """``--chat none`` turns the chat off."""
        self.assertEqual(parse("--chat", "none").endpoints["chat"], [])

    def test_invalidDefaultRoom(self) -> None:
        """A default room that is not a valid room name is a usage error."""
        error = self.assertRaises(usage.UsageError, parse, "--default-room", "a b")
        self.assertIn("--default-room", str(error))

    def test_motdFile(self) -> None:
        """The message of the day is read from its file, line by line."""
        path = temp_dir(self) / "motd"
        path.write_text("Welcome!\nBe kind.\n", encoding="utf-8")
        self.assertEqual(parse("--motd-file", str(path)).motd, ("Welcome!", "Be kind."))

    def test_missingMotdFile(self) -> None:
        """A message-of-the-day file that cannot be read is a usage error."""
        missing = str(temp_dir(self) / "missing")
        error = self.assertRaises(usage.UsageError, parse, "--motd-file", missing)
        self.assertIn("--motd-file", str(error))

    def test_maxRoomsAtLeastOne(self) -> None:
        """
        ``--max-rooms 0`` is refused when the options are parsed: the
        default room must be able to exist, or a registered client would
        hold a nickname in no room.  1 is enough.
        """
        error = self.assertRaises(usage.UsageError, parse, "--max-rooms", "0")
        self.assertIn("--max-rooms must be at least 1", str(error))
        self.assertEqual(parse("--max-rooms", "1")["max-rooms"], 1)

    def test_roomsPerClientAtLeastOne(self) -> None:
        """A client must be allowed the default room at least."""
        self.assertRaises(usage.UsageError, parse, "--max-rooms-per-client", "0")

    def test_floodBurstAtLeastOne(self) -> None:
        """With flood control on, a burst of 0 would hold every client forever."""
        self.assertRaises(usage.UsageError, parse, "--flood-burst", "0")
        self.assertEqual(
            parse("--flood-burst", "0", "--flood-rate", "0").limits.flood_rate, 0
        )


class AdminOptionsTests(SynchronousTestCase):
    """The admin console stays private and behind credentials."""

    def test_needsCredentials(self) -> None:
        """``--admin`` without ``--credentials`` is refused."""
        error = self.assertRaises(usage.UsageError, parse, "--admin", "unix:a.sock")
        self.assertIn("--credentials", str(error))

    def test_privateEndpointsAccepted(self) -> None:
        """UNIX sockets, loopback TCP (v4, v6, by name) and TLS are accepted."""
        for endpoint in (
            "unix:admin.sock",
            "tcp:6667:interface=127.0.0.1",
            "tcp:6667:interface=127.1.2.3",
            "tcp6:6667:interface=\\:\\:1",
            "tcp:6667:interface=localhost",
        ):
            options = parse("--admin", endpoint, "--credentials", "passwd")
            self.assertEqual(options.endpoints["admin"], [endpoint])
        self.assertTrue(tap.is_private_endpoint("ssl:6697:privateKey=k.pem"))

    def test_publicEndpointsRefused(self) -> None:
        """Plain TCP beyond loopback is refused, naming the override."""
        for endpoint in (
            "tcp:6667",
            "tcp:6667:interface=0.0.0.0",
            "tcp:6667:interface=192.168.1.5",
            "tcp6:6667:interface=\\:\\:",
            # Twisted listens on the last interface= given, not the first.
            "tcp:6667:interface=127.0.0.1:interface=0.0.0.0",
            # The interface as a positional field.
            "tcp:6667:0.0.0.0",
            "tcp:6667:interface=127.0.0.1=x",
        ):
            error = self.assertRaises(
                usage.UsageError, parse, "--admin", endpoint, "--credentials", "p"
            )
            self.assertIn("--admin-allow-remote", str(error))

    def test_lastInterfaceCounts(self) -> None:
        """
        Of several ``interface=``, the last one is judged, as Twisted
        listens on it: loopback last is private, loopback first is not.
        """
        self.assertTrue(
            tap.is_private_endpoint("tcp:6667:interface=0.0.0.0:interface=127.0.0.1")
        )
        self.assertFalse(
            tap.is_private_endpoint("tcp:6667:interface=127.0.0.1:interface=0.0.0.0")
        )
        self.assertTrue(tap.is_private_endpoint("tcp:port=6667:interface=\\:\\:1"))

    def test_override(self) -> None:
        """``--admin-allow-remote`` lets an operator listen anywhere on purpose."""
        options = parse(
            "--admin", "tcp:6667", "--credentials", "p", "--admin-allow-remote"
        )
        self.assertEqual(options.endpoints["admin"], ["tcp:6667"])


class ChatServiceTreeTests(SynchronousTestCase):
    """What ``makeService`` builds for the chat and the console."""

    def test_adminChecksWhereItListens(self) -> None:
        """
        A plain-text admin endpoint is built loopback-only (it checks the
        address it gets); one allowed remote and the public doors are not,
        nor a TLS one (``is_encrypted_endpoint``: passwords do not cross in
        clear).
        """
        self.assertTrue(tap.is_encrypted_endpoint("ssl:6697:privateKey=k.pem"))
        self.assertFalse(tap.is_encrypted_endpoint("tcp:6697:interface=ssl"))
        passwd = temp_dir(self) / "passwd"
        passwd.write_text("")

        def loopback_only(*args: str) -> dict[str, bool]:
            options = parse("--credentials", str(passwd), *args)
            top = tap.makeService(options, MemoryReactorClock())
            assert isinstance(top, MultiService)
            return {
                s.description: s.loopback_only
                for s in top
                if isinstance(s, ListeningService)
                and s.factory.name in ("admin", "chat")
            }

        plain = "tcp:6667:interface=127.0.0.1"
        self.assertEqual(
            loopback_only("--admin", plain, "--chat", "tcp:7000"),
            {plain: True, "tcp:7000": False},
        )
        self.assertEqual(
            loopback_only("--admin", "tcp:6667", "--admin-allow-remote"),
            {"tcp:6667": False, tap.DEFAULT_ENDPOINTS["chat"]: False},
        )

    def test_chatAndAdminShareOneHub(self) -> None:
        """
        The chat and the console are listening services whose factories work
        on the same hub; the chat's limits are its own (idle timeout) and the
        hub, not the factory, counts its clients.
        """
        passwd = temp_dir(self) / "passwd"
        passwd.write_text("")
        options = parse(
            "--echo", "none", "--upper", "none",
            "--chat", "tcp:7000:interface=127.0.0.1",
            "--admin", "unix:admin.sock",
            "--credentials", str(passwd),
            "--max-clients", "50",
            "--chat-idle-timeout", "120",
        )  # fmt: skip
        top = tap.makeService(options, MemoryReactorClock())
        assert isinstance(top, MultiService)
        services = {s.factory.name: s for s in top if isinstance(s, ListeningService)}
        self.assertEqual(sorted(services), ["admin", "chat"])
        chat, admin = services["chat"].factory, services["admin"].factory
        assert isinstance(chat, ChatFactory) and isinstance(admin, AdminFactory)
        self.assertIs(admin.operations.hub, chat.hub)
        self.assertEqual(chat.hub.max_clients, 50)
        self.assertEqual(chat.limits.max_clients, 0)
        self.assertEqual(chat.limits.idle_timeout, 120)
        self.assertEqual(admin.limits.idle_timeout, options.limits.idle_timeout)
        self.assertIsNotNone(chat.authenticator)

    def test_noCredentialsNoOperators(self) -> None:
        """Without ``--credentials`` the chat has no authenticator."""
        top = tap.makeService(
            parse("--echo", "none", "--upper", "none"), MemoryReactorClock()
        )
        assert isinstance(top, MultiService)
        (service,) = list(top)
        assert isinstance(service, ListeningService)
        assert isinstance(service.factory, ChatFactory)
        self.assertIsNone(service.factory.authenticator)
