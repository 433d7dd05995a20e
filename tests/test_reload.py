"""
SIGHUP (``chatservice.reload``): the message of the day, the credentials
file and the limits reloaded from the ``--config`` file while the chat
runs, anything else left until a restart, a broken file refused with
nothing changed; ``ConnectionFactory.set_limits`` applying new limits to
the connections already there; and a real ``twistd`` reloading on a real
SIGHUP.
"""

from __future__ import annotations

import signal
import sys
from pathlib import Path
from typing import Any

from twisted.internet.testing import MemoryReactorClock
from twisted.logger import LogEvent, capturedLogs
from twisted.trial.unittest import SynchronousTestCase

from chatservice import tap
from chatservice.auth.credentials import write_credentials
from chatservice.auth.hashing import hash_password
from chatservice.doors.irc.protocol import IRCFactory
from chatservice.doors.native.protocol import ChatFactory
from chatservice.doors.web import DEFAULT_WEB_IDLE_TIMEOUT
from chatservice.doors.web.site import WebSite
from chatservice.reload import Reload, Reloader, ReloadService
from chatservice.service import ChatService, ListeningService
from chatservice.testing import Network
from tests.support import (
    Process,
    chat_twistd,
    connect,
    free_port,
    receive_until,
    temp_dir,
)
from tests.test_hostile import HostileTestCase, Peer
from tests.test_web import RawHTTP

FAST_LN = 4


class ReloadTestCase(SynchronousTestCase):
    """A chat built from a configuration file in a directory of its own."""

    #: The file's options besides the message of the day.
    base = (
        'chat = "tcp:6666:interface=127.0.0.1"\n'
        'irc = "tcp:6667:interface=127.0.0.1"\n'
        'history = "none"\n'
    )

    def setUp(self) -> None:
        self.directory = temp_dir(self)
        self.motd = self.directory / "motd.txt"
        self.motd.write_text("first\n", encoding="utf-8")
        self.config = self.directory / "chat.toml"

    def start(self, extra: str = "", *argv: str) -> None:
        self.write(extra)
        options = tap.Options()
        options.parseOptions(["--config", str(self.config), *argv])
        self.reactor = MemoryReactorClock()
        chat = tap.makeService(options, self.reactor)
        assert isinstance(chat, ChatService)
        self.chat = chat
        self.reloader = Reloader(options, chat, self.reactor, tap.DOORS)

    def write(self, extra: str = "") -> None:
        self.config.write_text(
            f"{self.base}motd-file = {str(self.motd)!r}\n{extra}", encoding="utf-8"
        )

    def factory(self, kind: type[Any]) -> Any:
        (found,) = {
            id(s.factory): s.factory
            for s in self.chat
            if isinstance(s, ListeningService) and isinstance(s.factory, kind)
        }.values()
        return found

    def reload(self) -> tuple[Reload | None, list[LogEvent]]:
        with capturedLogs() as events:
            result = self.reloader.reload()
        return result, [
            e for e in events if e.get("log_namespace", "").endswith("Reloader")
        ]


class ReloadTests(ReloadTestCase):
    """What a reload applies, what it leaves, and what it refuses."""

    def test_motdReloaded(self) -> None:
        """
        New lines in the message-of-the-day file greet the chat and IRC
        clients that arrive after the reload.
        """
        self.start()
        chat = self.factory(ChatFactory)
        self.assertEqual(chat.settings.motd, ("first",))
        self.motd.write_text("second\nthird\n", encoding="utf-8")
        result, _ = self.reload()
        self.assertEqual(result, Reload(("motd",), ()))
        self.assertEqual(chat.settings.motd, ("second", "third"))
        self.assertEqual(self.factory(IRCFactory).settings.motd, ("second", "third"))
        peer = Peer(chat, "192.0.2.1")
        self.assertIn("-!- second", peer.take())

    def test_otherMotdFile(self) -> None:
        """Another message-of-the-day file named in the config is read."""
        self.start()
        other = self.directory / "other.txt"
        other.write_text("other\n", encoding="utf-8")
        self.motd = other
        self.write()
        result, _ = self.reload()
        self.assertEqual(result, Reload(("motd-file",), ()))
        self.assertEqual(self.factory(ChatFactory).settings.motd, ("other",))

    def test_limitsReloaded(self) -> None:
        """
        Changed limits reach every door's factory, each keeping its own
        options (the chat's idle timeout and nickname deadline, the IRC
        door's ping interval); the chat's client count is the hub's.
        """
        self.start("max-per-address = 16\nmax-clients = 50\n")
        self.write("max-per-address = 2\nmax-clients = 7\nflood-rate = 1.5\n")
        result, _ = self.reload()
        assert result is not None
        self.assertEqual(
            result.reloaded, ("flood-rate", "max-clients", "max-per-address")
        )
        chat, irc = self.factory(ChatFactory), self.factory(IRCFactory)
        for factory in (chat, irc):
            self.assertEqual(factory.limits.max_per_address, 2)
            self.assertEqual(factory.limits.flood_rate, 1.5)
            self.assertIs(factory.admission.limits, factory.limits)
        self.assertEqual(chat.limits.idle_timeout, 3600.0)
        self.assertEqual(chat.limits.registration_timeout, 20.0)
        self.assertEqual(irc.limits.idle_timeout, 120.0)
        self.assertEqual(self.chat.hub.max_clients, 7)

    def test_webDoorLimitsReloaded(self) -> None:
        """
        Changed limits reach the web door, whose listening factory is a
        ``twisted.web`` Site: its members' factory keeps its own options
        (the page's idle timeout, the nickname deadline), HTTP's request
        timeout follows ``line-timeout``, and a newly lowered per-address
        limit refuses the next HTTP connection from an address at accept.
        """
        self.base += 'web = "tcp:8080:interface=127.0.0.1"\n'
        self.start("max-clients = 50\nmax-per-address = 16\n")
        site = self.factory(WebSite)
        self.write(
            "max-clients = 50\nmax-per-address = 2\nline-timeout = 7\n"
            "max-strangers = 9\n"
        )
        result, _ = self.reload()
        assert result is not None
        self.assertEqual(
            result.reloaded, ("line-timeout", "max-per-address", "max-strangers")
        )
        door = site.door
        self.assertEqual(door.limits.max_per_address, 2)
        self.assertEqual(door.limits.max_strangers, 9)
        self.assertIs(door.admission.limits, door.limits)
        self.assertEqual(door.limits.idle_timeout, DEFAULT_WEB_IDLE_TIMEOUT)
        self.assertEqual(door.limits.registration_timeout, 20.0)
        self.assertEqual(site.timeOut, 7)
        network = Network(self.reactor)
        connections = [
            network.connect(site, RawHTTP(), host="192.0.2.1") for _ in range(3)
        ]
        network.settle()
        self.assertEqual([c.closed for c in connections], [False, False, True])
        status, _, body = connections[2].client.response()
        self.assertEqual(status, 503)
        self.assertIn(b"too many connections from 192.0.2.1 (limit 2)", body)

    def test_unchangedMaxClientsKeepsLimitCommand(self) -> None:
        """A reload that leaves max-clients alone keeps what /limit set."""
        self.start("max-clients = 50\n")
        self.chat.hub.set_max_clients(3)
        self.write("max-clients = 50\nflood-rate = 1\n")
        self.reload()
        self.assertEqual(self.chat.hub.max_clients, 3)

    def test_commandLineStillOverrides(self) -> None:
        """An option given on the command line is not changed by the file."""
        self.start("max-per-address = 5\n", "--max-per-address", "3")
        self.write("max-per-address = 9\n")
        result, _ = self.reload()
        self.assertEqual(result, Reload((), ()))
        self.assertEqual(self.factory(ChatFactory).limits.max_per_address, 3)

    def test_restartNeeded(self) -> None:
        """
        A changed endpoint or door option is reported as needing a restart
        and left as it runs; so is it at the next reload.
        """
        self.start()
        self.base = self.base.replace("tcp:6666", "tcp:7777")
        self.write("history-replay = 5\nnick-timeout = 3\n")
        for _ in range(2):
            result, events = self.reload()
            self.assertEqual(
                result, Reload((), ("chat", "history-replay", "nick-timeout"))
            )
        chat = self.factory(ChatFactory)
        self.assertEqual(chat.settings.replay, 50)
        self.assertEqual(chat.limits.registration_timeout, 20.0)
        self.assertEqual(
            self.reloader.options.endpoints["chat"], ["tcp:6666:interface=127.0.0.1"]
        )
        (event,) = events
        self.assertEqual(
            event["needs_restart"], ["chat", "history-replay", "nick-timeout"]
        )

    def test_logsWhatWasReloaded(self) -> None:
        """One event says what was reloaded, in structured fields and words."""
        self.start()
        self.write("flood-burst = 3\n")
        self.motd.write_text("new\n", encoding="utf-8")
        _, events = self.reload()
        (event,) = events
        self.assertEqual(event["log_level"].name, "info")
        self.assertEqual(event["reloaded"], ["flood-burst", "motd"])
        self.assertEqual(event["needs_restart"], [])
        self.assertEqual(event["config"], str(self.config))
        from twisted.logger import formatEvent

        self.assertIn("reloaded", formatEvent(event))
        self.assertIn("flood-burst, motd", formatEvent(event))

    def test_brokenFileRefused(self) -> None:
        """
        A file that is not TOML, or has a wrong value, is refused with the
        reason logged, and nothing changes: not even the message of the day
        that changed meanwhile.
        """
        self.start()
        chat = self.factory(ChatFactory)
        limits = chat.limits
        self.motd.write_text("not shown\n", encoding="utf-8")
        for broken, reason in [
            ("flood-rate = \n", "not valid TOML"),
            ('flood-rate = "fast"\n', "line 5: flood-rate: 'fast' is not a number"),
            ("flod-rate = 1\n", "'flod-rate' is not an option"),
        ]:
            self.write(broken)
            result, events = self.reload()
            self.assertIsNone(result)
            (event,) = events
            self.assertEqual(event["log_level"].name, "error")
            self.assertIn(reason, event["error"])
            self.assertIs(chat.limits, limits)
            self.assertEqual(chat.settings.motd, ("first",))

    def test_missingMotdRefused(self) -> None:
        """A message-of-the-day file that is gone is refused, nothing changed."""
        self.start("flood-rate = 1\n")
        self.motd.unlink()
        self.write("flood-rate = 2\n")
        result, _ = self.reload()
        self.assertIsNone(result)
        self.assertEqual(self.factory(ChatFactory).limits.flood_rate, 1.0)


class CredentialsReloadTests(ReloadTestCase):
    """The credentials file, read again or switched."""

    def users(self, name: str, *users: str) -> Path:
        path = self.directory / name
        write_credentials(
            path, {user: hash_password("pw", ln=FAST_LN) for user in users}
        )
        return path

    def checker(self) -> Any:
        checker = self.reloader._checker()
        assert checker is not None
        return checker

    def test_switchedAndRead(self) -> None:
        """Another credentials file in the config is used from the reload on."""
        first = self.users("first", "alice")
        second = self.users("second", "bob", "carol")
        self.start(f"credentials = {str(first)!r}\n")
        self.write(f"credentials = {str(second)!r}\n")
        result, _ = self.reload()
        assert result is not None
        self.assertIn("credentials", result.reloaded)
        self.assertEqual(self.checker().path, str(second))
        self.assertEqual(set(self.checker().users()), {"bob", "carol"})

    def test_invalidNewFileRefused(self) -> None:
        """A new credentials file that is not valid refuses the reload."""
        first = self.users("first", "alice")
        broken = self.directory / "broken"
        broken.write_text("alice no-hash-here\n", encoding="utf-8")
        self.start(f"credentials = {str(first)!r}\n")
        self.write(f"credentials = {str(broken)!r}\nflood-rate = 1\n")
        result, events = self.reload()
        self.assertIsNone(result)
        self.assertIn("reload refused", events[0]["log_format"])
        self.assertEqual(self.checker().path, str(first))
        self.assertEqual(self.factory(ChatFactory).limits.flood_rate, 5.0)

    def test_turningOnNeedsRestart(self) -> None:
        """Credentials where there were none need a restart."""
        self.start()
        self.write(f"credentials = {str(self.users('new', 'alice'))!r}\n")
        result, _ = self.reload()
        self.assertEqual(result, Reload((), ("credentials",)))


class SetLimitsTests(HostileTestCase):
    """``ConnectionFactory.set_limits``: new limits, connections already here."""

    def test_admissionAtOnce(self) -> None:
        """A raised per-address limit admits the next client from that address."""
        factory = self.upper(max_per_address=1)
        Peer(factory, "192.0.2.1")
        refused = Peer(factory, "192.0.2.1")
        self.assertTrue(refused.closing)
        factory.set_limits(self.limits(max_per_address=2))
        self.assertFalse(Peer(factory, "192.0.2.1").closing)

    def test_idleTimeoutAtOnce(self) -> None:
        """A shorter idle timeout closes a client already idle that long."""
        factory = self.upper(idle_timeout=600)
        peer = Peer(factory, "192.0.2.1")
        peer.send("hi")
        self.clock.advance(20)
        self.assertFalse(peer.closing)
        factory.set_limits(self.limits(idle_timeout=10))
        self.clock.advance(11)
        self.assertTrue(peer.closing)

    def test_floodControlOnAndOff(self) -> None:
        """
        Flood control turned off stops holding a connected client's input;
        turned on again, it holds a client that floods.
        """
        factory = self.chat(flood_burst=2, flood_rate=1)
        flooder = self.register(factory, "flooder")
        factory.set_limits(self.limits(flood_rate=0))
        flooder.send(*[f"m{n}" for n in range(10)])
        self.assertTrue(flooder.reading)
        self.clock.advance(1)
        factory.set_limits(self.limits(flood_burst=2, flood_rate=1))
        flooder.send(*[f"m{n}" for n in range(10)])
        self.assertFalse(flooder.reading)


class SignalTests(SynchronousTestCase):
    """ReloadService and the SIGHUP handler."""

    def test_handlerInstalledAndRestored(self) -> None:
        """
        Running, the service owns SIGHUP, and a SIGHUP reloads on the
        reactor's thread (``callFromThread``); stopped, the previous handler
        is back.
        """
        previous = signal.getsignal(signal.SIGHUP)
        self.addCleanup(signal.signal, signal.SIGHUP, previous)
        reloads: list[object] = []

        class Recorder:
            def reload(self) -> None:
                reloads.append(self)

        class Threads:
            def callFromThread(self, f: Any, *args: Any) -> None:
                f(*args)

        service = ReloadService(Recorder(), Threads())  # type: ignore[arg-type]
        service.startService()
        handler = signal.getsignal(signal.SIGHUP)
        self.assertNotEqual(handler, previous)
        assert callable(handler)
        handler(signal.SIGHUP, None)
        self.assertEqual(len(reloads), 1)
        service.stopService()
        self.assertEqual(signal.getsignal(signal.SIGHUP), previous)


class PluginTests(SynchronousTestCase):
    """Only twistd's path reloads on SIGHUP."""

    def test_pluginAddsReload(self) -> None:
        """
        The plugin's service has a reload service for the options it was
        given; ``tap.makeService`` (another program embedding the chat)
        has none, and leaves SIGHUP alone.
        """
        from chatservice import plugin

        self.patch(sys, "excepthook", sys.excepthook)
        options = tap.Options()
        options.parseOptions(["--history", "none"])
        names = [service.name for service in tap.makeService(options)]  # type: ignore[attr-defined]
        self.assertNotIn("reload", names)
        top = plugin.makeService(options)
        assert isinstance(top, ChatService)
        reload_service = top.getServiceNamed("reload")
        assert isinstance(reload_service, ReloadService)
        self.assertIs(reload_service.reloader.options, options)
        self.assertIs(reload_service.reloader.chat, top)


class TwistdReloadTests(SynchronousTestCase):
    """A real ``twistd -n chatservice --config`` and a real SIGHUP."""

    def test_sighup(self) -> None:
        """
        SIGHUP makes the running server greet new clients with the new
        message of the day, and log it; a broken file then is refused and
        logged, and the server goes on as it was.
        """
        directory = temp_dir(self)
        motd = directory / "motd.txt"
        motd.write_text("before the reload\n", encoding="utf-8")
        config = directory / "chat.toml"
        config.write_text('motd-file = "motd.txt"\nhistory = "none"\n')
        port = free_port()
        server = Process(self, chat_twistd(port, "--config", "chat.toml"), directory)
        server.wait_for_output(r"chat service listening on")

        def greeting() -> bytes:
            client = connect(self, port)
            return receive_until(client, b"reload\r\n")

        self.assertIn(b"before the reload", greeting())
        motd.write_text("after the reload\n", encoding="utf-8")
        config.write_text('motd-file = "motd.txt"\nhistory = "none"\nflood-rate = 2\n')
        server.popen.send_signal(signal.SIGHUP)
        server.wait_for_output(r"reloaded chat\.toml: flood-rate, motd")
        self.assertIn(b"after the reload", greeting())
        config.write_text('motd-file = "motd.txt"\nflood-rate = "fast"\n')
        server.popen.send_signal(signal.SIGHUP)
        server.wait_for_output(r"reload refused, nothing changed: chat\.toml, line 2")
        self.assertIn(b"after the reload", greeting())
        server.terminate()
        self.assertEqual(server.wait(), -signal.SIGTERM)
