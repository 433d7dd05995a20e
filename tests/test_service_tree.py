"""
Tests of the wiring: the doors as descriptions ``tap.py`` loops over (one
``--<door>`` option each, built from one shared context), and
:class:`~chatservice.service.ChatService`, which opens and closes the
chat's backend and store around its doors.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SynchronousTestCase

from chatservice import tap
from chatservice.backends.local import LocalBackend
from chatservice.chat.hub import Hub
from chatservice.doors.door import OFF
from chatservice.service import ChatService, ListeningService
from chatservice.stores.memory import MemoryHistoryStore
from tests.test_tap import parse


class DoorOptionTests(SynchronousTestCase):
    """Every door's options come from its description."""

    def test_everyDoorHasAnEndpointOption(self) -> None:
        """
        Each door in ``tap.DOORS`` has ``--<name> ENDPOINT``, documented in
        ``--help`` with its default, and ``none`` turns it off.
        """
        help_text = str(tap.Options())
        self.assertEqual(
            [door.name for door in tap.DOORS],
            ["echo", "upper", "chat", "irc", "web", "admin"],
        )
        for door in tap.DOORS:
            self.assertIn(f"--{door.name}=", help_text)
            self.assertIn(
                f"[default: {door.default_endpoint}]", " ".join(help_text.split())
            )
            if door.default_endpoint != OFF:
                self.assertEqual(parse().endpoints[door.name], [door.default_endpoint])
            self.assertEqual(parse(f"--{door.name}", "none").endpoints[door.name], [])

    def test_doorOwnOptions(self) -> None:
        """A door's own options are parsed with the rest (``--echo-timestamp``)."""
        self.assertTrue(parse("--echo-timestamp")["echo-timestamp"])
        self.assertEqual(parse("--nick-timeout", "5")["nick-timeout"], 5.0)

    def test_privateDoorGetsAllowRemote(self) -> None:
        """A private door (the admin console) has ``--<name>-allow-remote``."""
        private = [door.name for door in tap.DOORS if door.private]
        self.assertEqual(private, ["admin"])
        self.assertIn("--admin-allow-remote", str(tap.Options()))


class RecordingBackend(LocalBackend):
    """A local backend that records when it is started and stopped."""

    def __init__(self, log: list[str]) -> None:
        super().__init__()
        self.log = log

    def start(self) -> Deferred[None]:
        self.log.append("backend start")
        return succeed(None)

    def stop(self) -> Deferred[None]:
        self.log.append("backend stop")
        return succeed(None)


class RecordingStore(MemoryHistoryStore):
    """A memory store that records when it is opened and closed."""

    def __init__(self, log: list[str]) -> None:
        super().__init__()
        self.log = log
        self.closing: Deferred[None] = Deferred()

    def start(self) -> Deferred[None]:
        self.log.append("store start")
        return succeed(None)

    def stop(self) -> Deferred[None]:
        self.log.append("store stop")
        return self.closing


class ChatServiceTests(SynchronousTestCase):
    """The chat's state has a start and a stop."""

    def test_opensBeforeDoorsClosesAfter(self) -> None:
        """
        Started, the service opens the backend and the store, then starts
        its doors; stopped, it stops the doors first, then closes both, and
        its stop waits for the store.
        """
        log: list[str] = []
        hub = Hub(backend=RecordingBackend(log), store=RecordingStore(log))
        service = ChatService(hub)

        class Door(ListeningService):
            def startService(self) -> None:
                log.append("door start")

            def stopService(self) -> Deferred[Any]:
                log.append("door stop")
                return succeed(None)

        reactor = MemoryReactorClock()
        from twisted.internet.endpoints import serverFromString

        from chatservice.doors.echo import EchoFactory

        Door(
            "tcp:0", serverFromString(reactor, "tcp:0"), EchoFactory()
        ).setServiceParent(service)
        service.startService()
        self.assertEqual(log, ["backend start", "store start", "door start"])
        stopped = service.stopService()
        self.assertEqual(log[3:], ["door stop", "backend stop", "store stop"])
        self.assertNoResult(stopped)
        assert isinstance(hub.store, RecordingStore)
        hub.store.closing.callback(None)
        self.successResultOf(stopped)

    def test_makeServiceOwnsTheChat(self) -> None:
        """
        ``makeService`` returns a :class:`ChatService` whose hub every chat
        door shares, with the local backend.
        """
        top = tap.makeService(parse(), MemoryReactorClock())
        self.assertIsInstance(top, ChatService)
        assert isinstance(top, ChatService)
        self.assertIsInstance(top.hub.backend, LocalBackend)
        chat = [
            s
            for s in top
            if isinstance(s, ListeningService) and s.factory.name == "chat"
        ]
        self.assertEqual(len(chat), 1)
        self.assertIs(chat[0].factory.hub, top.hub)  # type: ignore[attr-defined]


class FailingStore(MemoryHistoryStore):
    """A store that cannot be opened."""

    def start(self) -> Deferred[None]:
        return fail(OSError("cannot open history.sqlite3"))


class StartOrderTests(SynchronousTestCase):
    """The chat's state is open before any door listens."""

    def test_openBeforeListening(self) -> None:
        """
        Under twistd (``privilegedStartService``, where the doors listen),
        the backend and the store are started first.
        """
        log: list[str] = []
        hub = Hub(backend=RecordingBackend(log), store=RecordingStore(log))
        service = ChatService(hub)

        class Door(ListeningService):
            def privilegedStartService(self) -> None:
                log.append("door listens")

            def startService(self) -> None:
                log.append("door start")

        reactor = MemoryReactorClock()
        from twisted.internet.endpoints import serverFromString

        from chatservice.doors.echo import EchoFactory

        Door(
            "tcp:0", serverFromString(reactor, "tcp:0"), EchoFactory()
        ).setServiceParent(service)
        service.privilegedStartService()
        service.startService()
        self.assertEqual(
            log, ["backend start", "store start", "door listens", "door start"]
        )

    def test_storeFailingStopsTheStart(self) -> None:
        """A store that fails to open stops the start with its error."""
        service = ChatService(Hub(store=FailingStore()))
        error = self.assertRaises(OSError, service.privilegedStartService)
        self.assertIn("history.sqlite3", str(error))


class LaterEndpoint:
    """An endpoint whose listen answers only when the test says."""

    def __init__(self) -> None:
        self.listening: list[Deferred[Any]] = []
        self.cancelled = 0

    def listen(self, factory: object) -> Deferred[Any]:
        def cancel(_: Deferred[Any]) -> None:
            self.cancelled += 1

        result: Deferred[Any] = Deferred(cancel)
        self.listening.append(result)
        return result


class LaterListeningTests(SynchronousTestCase):
    """A ListeningService on an endpoint that answers later (not at once)."""

    def service(self) -> tuple[ListeningService, LaterEndpoint]:
        from chatservice.doors.echo import EchoFactory

        endpoint = LaterEndpoint()
        service = ListeningService("later:", endpoint, EchoFactory())  # type: ignore[arg-type]
        return service, endpoint

    def test_listensOnceAndRecordsThePortLater(self) -> None:
        """
        Started (privileged, then normally, as twistd does), the service
        listens once; the port is recorded when the endpoint answers, and
        stopping stops listening on it.
        """
        reactor = MemoryReactorClock()
        service, endpoint = self.service()
        service.privilegedStartService()
        service.startService()
        self.assertEqual(len(endpoint.listening), 1)
        self.assertIsNone(service.port)
        port = reactor.listenTCP(0, service.factory)
        endpoint.listening[0].callback(port)
        self.assertIs(service.port, port)
        self.successResultOf(service.stopService())
        self.assertIsNone(service.port)
        self.assertEqual(len(reactor.tcpServers), 1)

    def test_failureLaterIsLogged(self) -> None:
        """
        A failure to listen that comes later (not at once) is logged, with
        the service and endpoint, and leaves no port.
        """
        service, endpoint = self.service()
        service.startService()
        endpoint.listening[0].errback(OSError("no such thing"))
        self.assertEqual(len(self.flushLoggedErrors(OSError)), 1)
        self.assertIsNone(service.port)

    def test_stopWhileWaitingCancels(self) -> None:
        """
        Stopping before the endpoint answered cancels the listen, quietly
        (a cancellation is no failure to log).
        """
        service, endpoint = self.service()
        service.startService()
        self.successResultOf(service.stopService())
        self.assertEqual(endpoint.cancelled, 1)
        self.assertEqual(self.flushLoggedErrors(), [])


class LateFailureTests(SynchronousTestCase):
    """A backend or store that fails after answering later."""

    def test_lateFailureLogged(self) -> None:
        """
        A store whose opening fails after the start is logged (not lost),
        and the service keeps running.
        """
        later: Deferred[None] = Deferred()

        class LateStore(MemoryHistoryStore):
            def start(self) -> Deferred[None]:
                return later

        service = ChatService(Hub(store=LateStore()))
        service.privilegedStartService()
        service.startService()
        later.errback(OSError("disk gone"))
        self.assertEqual(len(self.flushLoggedErrors(OSError)), 1)
        self.assertTrue(service.running)
