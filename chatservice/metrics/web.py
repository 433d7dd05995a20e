"""
``--metrics ENDPOINT``: a small ``twisted.web`` site serving ``/metrics``
(Prometheus text, from a registry of this chat's own: several chats in one
process, or tests, do not share the global one) and ``/healthz`` (200
``ok``, or 503 and why: :mod:`chatservice.metrics.health`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from twisted.application.service import Service
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.web.resource import Resource
from twisted.web.server import Request, Site

from chatservice.metrics.collector import ChatCollector
from chatservice.metrics.counters import LATENCY_BUCKETS, Histogram
from chatservice.metrics.health import problems

if TYPE_CHECKING:
    from chatservice.service import ChatService

#: Seconds between two looks at the reactor's lag.
LAG_INTERVAL = 0.5

_TEXT = b"text/plain; charset=utf-8"


class ReactorLag(Service):
    """
    Measures how late the reactor runs a timer: a turn that keeps the
    reactor busy (a big fan-out, a slow callback) delays every timer due
    meanwhile by up to its length.  One timer every :data:`LAG_INTERVAL`.
    """

    def __init__(self, clock: IReactorTime, interval: float = LAG_INTERVAL) -> None:
        self.clock = clock
        self.interval = interval
        self.histogram = Histogram(LATENCY_BUCKETS)
        self._due = 0.0
        self._call: IDelayedCall | None = None

    def startService(self) -> None:
        super().startService()
        self._schedule()

    def _schedule(self) -> None:
        self._due = self.clock.seconds() + self.interval
        self._call = self.clock.callLater(self.interval, self._tick)

    def _tick(self) -> None:
        self.histogram.observe(max(0.0, self.clock.seconds() - self._due))
        self._schedule()

    def stopService(self) -> None:
        super().stopService()
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None


class MetricsPage(Resource):
    """``/metrics``: every metric of the registry, in Prometheus' text format."""

    isLeaf = True

    def __init__(self, registry: CollectorRegistry) -> None:
        super().__init__()
        self.registry = registry

    def render_GET(self, request: Request) -> bytes:
        request.setHeader(b"content-type", CONTENT_TYPE_LATEST.encode("ascii"))
        return generate_latest(self.registry)


class HealthPage(Resource):
    """``/healthz``: 200 ``ok`` when the chat can serve, else 503 and why."""

    isLeaf = True

    def __init__(self, chat: ChatService) -> None:
        super().__init__()
        self.chat = chat

    def render_GET(self, request: Request) -> bytes:
        request.setHeader(b"content-type", _TEXT)
        request.setHeader(b"cache-control", b"no-store")
        reasons = problems(self.chat)
        if not reasons:
            return b"ok\n"
        request.setResponseCode(503)
        return "".join(f"{reason}\n" for reason in reasons).encode("utf-8")


class IndexPage(Resource):
    """``/``: where the two pages are."""

    def render_GET(self, request: Request) -> bytes:
        request.setHeader(b"content-type", _TEXT)
        return b"chatservice: /metrics (Prometheus), /healthz\n"

    def getChild(self, path: bytes, request: Request) -> Resource:
        if path == b"":
            return self
        return super().getChild(path, request)  # type: ignore[no-any-return]


def metrics_registry(
    chat: ChatService, reactor_lag: Histogram | None
) -> CollectorRegistry:
    """
    A registry of this chat's metrics and this process's (CPU, memory,
    descriptors, garbage collection), apart from the global one.
    """
    registry = CollectorRegistry()
    registry.register(ChatCollector(chat, reactor_lag))
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    return registry


class MetricsSite(Site):
    """The metrics site, as a door's factory is to its listening service."""

    name = "metrics"
    noisy = False

    def __init__(self, chat: ChatService, reactor_lag: Histogram | None = None) -> None:
        root = IndexPage()
        self.registry = metrics_registry(chat, reactor_lag)
        root.putChild(b"metrics", MetricsPage(self.registry))
        root.putChild(b"healthz", HealthPage(chat))
        super().__init__(root)

    def log(self, request: Any) -> None:
        """No access-log line per scrape (one every 15 s is noise)."""

    def closeAll(self, message: str | None = None) -> Deferred[None]:
        """Nothing to say goodbye to: scrapes are short requests."""
        return succeed(None)
