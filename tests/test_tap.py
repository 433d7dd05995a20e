"""
Tests for :mod:`chatservice.tap`: the command line of ``twistd chatservice``
for the echo and uppercase services and the shared limits, and the service
tree :func:`makeService` builds from it (on an in-memory reactor: nothing
listens for real here).
"""

from __future__ import annotations

import re
import socket
import sys
from pathlib import Path

from twisted.application.service import IService, MultiService
from twisted.internet.testing import MemoryReactorClock
from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase

from chatservice import service as service_module
from chatservice import tap
from chatservice.conn import fdlimit
from chatservice.conn.limits import Limits
from chatservice.doors.echo import EchoFactory
from chatservice.doors.line import LineFactory
from chatservice.doors.upper import UpperFactory
from chatservice.service import ListeningService

#: ``--max-clients auto`` with the three services on by default.
AUTO_CLIENTS = fdlimit.max_clients_for(fdlimit.hard_limit(), 3, Limits().max_strangers)


def parse(*args: str) -> tap.Options:
    options = tap.Options()
    options.parseOptions(list(args))
    return options


class ConfigTests(SynchronousTestCase):
    """Parsing the command line."""

    def test_defaults(self) -> None:
        """
        Without options, echo listens on tcp:5001, uppercase on tcp:12000,
        with the default limits and no timestamps.
        """
        options = parse()
        self.assertEqual(options.endpoints["echo"], ["tcp:5001"])
        self.assertEqual(options.endpoints["upper"], ["tcp:12000"])
        self.assertEqual(options.limits, Limits(max_clients=AUTO_CLIENTS))
        self.assertFalse(options["echo-timestamp"])

    def test_defaultLimits(self) -> None:
        """The documented default limits."""
        self.assertEqual(
            parse().limits,
            Limits(
                max_line_length=4096,
                idle_timeout=600.0,
                max_clients=AUTO_CLIENTS,
                max_per_address=16,
                close_grace=5.0,
            ),
        )

    def test_limits(self) -> None:
        """Each limit option sets its limit."""
        options = parse(
            "--max-line-length=100",
            "--idle-timeout=2.5",
            "--max-clients=3",
            "--max-per-address=1",
            "--close-grace=0.5",
        )
        self.assertEqual(
            options.limits,
            Limits(
                max_line_length=100,
                idle_timeout=2.5,
                max_clients=3,
                max_per_address=1,
                close_grace=0.5,
            ),
        )

    def test_zeroLimits(self) -> None:
        """0 is accepted where it means no limit (or never, or at once)."""
        options = parse(
            "--idle-timeout=0",
            "--max-clients=0",
            "--max-per-address=0",
            "--close-grace=0",
        )
        self.assertEqual(
            options.limits,
            Limits(idle_timeout=0, max_clients=0, max_per_address=0, close_grace=0),
        )

    def test_echoTimestamp(self) -> None:
        """``--echo-timestamp`` is a flag."""
        self.assertTrue(parse("--echo-timestamp")["echo-timestamp"])

    def test_endpointReplacesDefault(self) -> None:
        """
        Giving a service's endpoint replaces its default; the other
        service keeps its own.
        """
        options = parse("--echo=tcp:7000")
        self.assertEqual(options.endpoints["echo"], ["tcp:7000"])
        self.assertEqual(options.endpoints["upper"], ["tcp:12000"])

    def test_repeatedEndpoints(self) -> None:
        """An endpoint option given several times keeps all, in order."""
        options = parse(
            "--upper",
            "tcp:7001",
            "--echo",
            "tcp:7000:interface=127.0.0.1",
            "--upper=unix:upper.sock",
            "--echo=tcp6:7000:interface=\\:\\:1",
        )
        self.assertEqual(
            options.endpoints["echo"],
            ["tcp:7000:interface=127.0.0.1", "tcp6:7000:interface=\\:\\:1"],
        )
        self.assertEqual(options.endpoints["upper"], ["tcp:7001", "unix:upper.sock"])

    def test_endpointSyntaxes(self) -> None:
        """The documented endpoint forms (other than ``ssl:``) are accepted."""
        for description in [
            "tcp:7000",
            "tcp:7000:interface=127.0.0.1",
            "tcp:port=7000:backlog=10",
            "tcp6:7000",
            "tcp6:7000:interface=\\:\\:1",
            "unix:echo.sock",
            "unix:echo.sock:mode=660",
        ]:
            self.assertEqual(
                parse("--echo", description).endpoints["echo"], [description]
            )

    def test_none(self) -> None:
        """``none``, in any case, turns a service off; the other stays."""
        for value in ["none", "NONE", " None "]:
            options = parse("--echo", value)
            self.assertEqual(options.endpoints["echo"], [], value)
            self.assertEqual(options.endpoints["upper"], ["tcp:12000"], value)
        self.assertEqual(parse("--upper=none").endpoints["upper"], [])

    def test_noneWithEndpoint(self) -> None:
        """``none`` together with an endpoint for the same service is an error."""
        for args in [
            ["--echo=none", "--echo=tcp:7000"],
            ["--upper=tcp:7000", "--upper=none"],
        ]:
            error = self.assertRaises(usage.UsageError, parse, *args)
            self.assertIn("cannot be combined", str(error))

    def test_invalidEndpoint(self) -> None:
        """
        An endpoint string Twisted cannot parse is a usage error that names
        the option and the string.
        """
        for option in ["echo", "upper"]:
            for description in ["", "5001", "foo:1", "tcp:", "tcp:abc", "tcp:1:x=2"]:
                error = self.assertRaises(
                    usage.UsageError, parse, f"--{option}={description}"
                )
                self.assertIn(f"--{option} {description!r}", str(error))
                self.assertIn("not a valid endpoint", str(error))

    def test_invalidNumbers(self) -> None:
        """Negative, non-numeric and NaN limits are usage errors."""
        for argument in [
            "--max-line-length=abc",
            "--max-line-length=-1",
            "--max-clients=-1",
            "--max-clients=1.5",
            "--max-clients=many",
            "--max-per-address=-3",
            "--idle-timeout=-1",
            "--idle-timeout=nan",
            "--idle-timeout=soon",
            "--close-grace=-0.1",
            "--close-grace=nan",
        ]:
            self.assertRaises(usage.UsageError, parse, argument)

    def test_hugeCountsRefused(self) -> None:
        """
        A count past what a C ``ssize_t`` holds is a usage error at once
        (``--redis-replay 10**23`` raised OverflowError from a deque at
        start-up: a traceback); ``sys.maxsize`` itself is a count.
        """
        huge = str(sys.maxsize + 1)
        for option in ("--redis-replay", "--max-rooms", "--flood-burst"):
            error = self.assertRaises(usage.UsageError, parse, option, huge)
            self.assertIn(f"is too large (at most {sys.maxsize})", str(error))
        self.assertEqual(
            parse("--max-per-address", str(sys.maxsize))["max-per-address"],
            sys.maxsize,
        )

    def test_lineLengthMinimum(self) -> None:
        """The line length limit is at least 16 bytes."""
        error = self.assertRaises(usage.UsageError, parse, "--max-line-length=15")
        self.assertIn("at least 16", str(error))
        self.assertEqual(parse("--max-line-length=16").limits.max_line_length, 16)

    def test_help(self) -> None:
        """The help names the echo and uppercase options and their defaults."""
        text = str(tap.Options())
        for expected in [
            "--echo=",
            "tcp:5001",
            "--upper=",
            "tcp:12000",
            "--echo-timestamp",
            "--max-line-length=",
            "--idle-timeout=",
            "--max-clients=",
            "--max-per-address=",
            "--close-grace=",
            "'none'",
        ]:
            self.assertIn(expected, text)

    def test_everyOptionDocumented(self) -> None:
        """``docs/options.rst`` names every option of ``twistd chatservice``."""
        # Every long option: flags, parameters and opt_ methods.
        names = [name.rstrip("=") for name in tap.Options().longOpt]
        doc = Path(__file__).parent.parent / "docs" / "options.rst"
        text = doc.read_text(encoding="utf-8")
        self.assertIn("max-line-length", names)
        documented = set(re.findall(r"--([a-z][a-z-]*[a-z])", text))
        self.assertEqual([name for name in names if name not in documented], [])


def documented_defaults(text: str) -> dict[str, str]:
    """
    Each option's default as ``docs/options.rst`` states it: the second
    column of a table row (``--name VALUE``, then the default), or a
    definition's ``Default X.`` / ``Flag, default off.``.
    """
    found: dict[str, str] = {}
    # A table row: the option, two spaces or more, the default.
    row = re.compile(r"(?m)^``--([a-z][a-z-]*)(?: [A-Z]+)?`` {2,}(\S+)")
    for name, default in row.findall(text):
        found[name] = default.strip("`")
    definition = re.compile(
        r"(?m)^``--([a-z][a-z-]*)(?: [A-Z]+)?``\n\s+(?:Flag, d|D)efault ([^.,;]+)"
    )
    for name, default in definition.findall(text):
        found[name] = default
    return found


class DocumentedDefaultsTests(SynchronousTestCase):
    """docs/options.rst states each option's default as the code has it."""

    def test_everyDefaultAsDocumented(self) -> None:
        """
        Every option with a default (each parameter of ``Options``, each
        flag, each front end's endpoint) has that default in
        docs/options.rst: the same number (``600`` for 600.0), the same
        text, ``none`` for no value and ``off`` for a flag.
        """
        doc = Path(__file__).parent.parent / "docs" / "options.rst"
        documented = documented_defaults(doc.read_text(encoding="utf-8"))
        options = tap.Options()
        expected: dict[str, object] = {**options.defaults, **tap.DEFAULT_ENDPOINTS}
        flags = {flag[0] for flag in options.optFlags}
        self.assertGreater(len(expected), 20)
        wrong = {}
        for name, default in expected.items():
            shown = documented.get(name)
            if name == "irc-server-name":
                # The machine's own name, documented as "host name".
                right = shown == "host" and default == (
                    socket.gethostname() or "chatservice"
                )
            elif name in flags:
                right = shown == "off" and not default
            elif default is None:
                right = shown == "none"
            elif isinstance(default, int | float):
                right = shown is not None and float(shown) == default
            else:
                right = shown == default
            if not right:
                wrong[name] = (default, shown)
        self.assertEqual(wrong, {})


class ExceptHookTests(SynchronousTestCase):
    """Only twistd's path replaces ``sys.excepthook``."""

    def test_makeServiceLeavesExceptHook(self) -> None:
        """
        Building the service tree (``tap.makeService``, as another program
        embedding the chat would) leaves the process's ``sys.excepthook``
        alone.
        """
        self.patch(sys, "excepthook", sys.excepthook)
        before = sys.excepthook
        tap.makeService(parse(), MemoryReactorClock())
        self.assertIs(sys.excepthook, before)

    def test_pluginInstallsBriefReport(self) -> None:
        """
        The plugin's path (``chatservice.plugin``, which the twistd plugin
        names) installs the one-line report of a failure to listen, then
        builds the same service as ``tap.makeService``.
        """
        from chatservice import plugin
        from twisted.plugins.chatservice_plugin import chatservice as maker

        self.assertEqual(maker.module, "chatservice.plugin")
        self.assertIs(plugin.Options, tap.Options)
        self.patch(sys, "excepthook", sys.excepthook)
        built: list[tap.Options] = []
        tree = MultiService()

        def makeService(config: tap.Options) -> IService:
            built.append(config)
            return tree

        self.patch(tap, "makeService", makeService)
        options = parse()
        self.assertIs(plugin.makeService(options), tree)
        self.assertEqual(built, [options])
        self.assertIs(sys.excepthook, service_module._report_listen_error)


class ServiceTests(SynchronousTestCase):
    """The service tree built by :func:`makeService`."""

    def setUp(self) -> None:
        self.reactor = MemoryReactorClock()

    def build(self, *args: str) -> MultiService:
        if not any(arg.startswith("--history") for arg in args):
            # No history file in the directory the tests run in.
            args = (*args, "--history=none")
        top = tap.makeService(parse(*args), self.reactor)
        self.assertIsInstance(top, MultiService)
        assert isinstance(top, MultiService)
        return top

    def listening(self, top: MultiService) -> dict[str, ListeningService]:
        services: dict[str, ListeningService] = {}
        for service in top:
            self.assertIsInstance(service, ListeningService)
            assert isinstance(service, ListeningService)
            services[str(service.name)] = service
        return services

    def test_defaults(self) -> None:
        """
        By default there is an echo service on tcp:5001 and an uppercase
        service on tcp:12000, named after their endpoints, with the
        default limits and the given reactor as clock.
        """
        services = self.listening(self.build())
        echo = services["echo tcp:5001"]
        upper = services["upper tcp:12000"]
        self.assertIsInstance(echo.factory, EchoFactory)
        self.assertIsInstance(upper.factory, UpperFactory)
        for service in (echo, upper):
            assert isinstance(service.factory, LineFactory)
            self.assertEqual(service.factory.limits, Limits(max_clients=AUTO_CLIENTS))
            self.assertIs(service.factory.clock, self.reactor)
        assert isinstance(echo.factory, EchoFactory)
        self.assertFalse(echo.factory.timestamp)

    def test_onePerEndpoint(self) -> None:
        """
        There is one listening service per endpoint; the endpoints of one
        front end share one factory, so their limits count together.
        """
        services = self.listening(
            self.build(
                "--echo=tcp:7000",
                "--echo=tcp:7001:interface=127.0.0.1",
                "--upper=tcp:7002",
                "--chat=none",
            )
        )
        self.assertEqual(
            sorted(services),
            ["echo tcp:7000", "echo tcp:7001:interface=127.0.0.1", "upper tcp:7002"],
        )
        first = services["echo tcp:7000"].factory
        second = services["echo tcp:7001:interface=127.0.0.1"].factory
        self.assertIs(first, second)
        self.assertIsNot(first, services["upper tcp:7002"].factory)

    def test_none(self) -> None:
        """A service turned off with ``none`` has no listening service."""
        names = set(self.listening(self.build("--echo=none")))
        self.assertFalse([name for name in names if name.startswith("echo")])
        self.assertIn("upper tcp:12000", names)

    def test_limitsAndTimestamp(self) -> None:
        """The limit options and ``--echo-timestamp`` reach the factories."""
        services = self.listening(
            self.build(
                "--echo-timestamp",
                "--max-line-length=64",
                "--idle-timeout=30",
                "--max-clients=5",
                "--max-per-address=2",
                "--close-grace=1",
            )
        )
        expected = Limits(
            max_line_length=64,
            idle_timeout=30,
            max_clients=5,
            max_per_address=2,
            close_grace=1,
        )
        echo = services["echo tcp:5001"].factory
        upper = services["upper tcp:12000"].factory
        assert isinstance(echo, EchoFactory)
        assert isinstance(upper, UpperFactory)
        self.assertEqual(echo.limits, expected)
        self.assertEqual(upper.limits, expected)
        self.assertTrue(echo.timestamp)

    def test_listens(self) -> None:
        """
        Started, the tree listens on every endpoint with its service's
        factory (TCP port and interface, UNIX path); stopped, it stops.
        """
        top = self.build(
            "--echo=tcp:7000:interface=127.0.0.1",
            "--echo=unix:echo.sock",
            "--upper=tcp6:7001:interface=\\:\\:1",
            "--chat=none",
        )
        services = self.listening(top)
        echo = services["echo unix:echo.sock"].factory
        upper = services["upper tcp6:7001:interface=\\:\\:1"].factory
        top.startService()
        self.assertEqual(
            [
                (port, factory, interface)
                for port, factory, _, interface in self.reactor.tcpServers
            ],
            [(7000, echo, "127.0.0.1"), (7001, upper, "::1")],
        )
        self.assertEqual(
            [(path, factory) for path, factory, *_ in self.reactor.unixServers],
            [("echo.sock", echo)],
        )
        self.assertTrue(all(service.running for service in services.values()))
        self.successResultOf(top.stopService())
        self.assertFalse(any(service.running for service in services.values()))

    def test_plugin(self) -> None:
        """
        The ``twistd chatservice`` plugin uses these options and the
        plugin path's makeService (``tap.makeService`` behind it).
        """
        from chatservice import plugin
        from twisted.plugins.chatservice_plugin import chatservice

        self.patch(sys, "excepthook", sys.excepthook)
        self.assertEqual(chatservice.tapname, "chatservice")
        self.assertIs(chatservice.options, tap.Options)
        self.assertIs(chatservice.makeService, plugin.makeService)
        self.assertTrue(IService.providedBy(chatservice.makeService(parse())))
