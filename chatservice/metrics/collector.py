"""
The chat's counters as Prometheus metrics, read at scrape time: a custom
collector (:class:`ChatCollector`) that reads the hub's ``Stats``, each
door's :class:`~chatservice.metrics.counters.DoorCounters`, the
authenticator's and the store's figures, the same numbers ``/stats`` shows.
Nothing is counted here; every metric is listed in ``docs/metrics.rst``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from chatservice.metrics.counters import Histogram
from chatservice.metrics.health import health_of

if TYPE_CHECKING:
    from chatservice.conn.factory import ConnectionFactory
    from chatservice.service import ChatService

#: Every metric's name starts with it.
PREFIX = "chatservice_"


def _counter(name: str, doc: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(PREFIX + name, doc, value=value)


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(PREFIX + name, doc, value=value)


def histogram(name: str, doc: str, observed: Histogram) -> HistogramMetricFamily:
    """A :class:`Histogram` of plain integers as a Prometheus histogram."""
    return HistogramMetricFamily(
        PREFIX + name, doc, buckets=observed.cumulative(), sum_value=observed.total
    )


#: Each door's metrics: name, type, help and the labels besides ``door``
#: (``_door_readings`` gives the values).
_DOOR_FAMILIES: tuple[
    tuple[str, type[GaugeMetricFamily] | type[CounterMetricFamily], str, list[str]],
    ...,
] = (
    ("connections_open", GaugeMetricFamily, "Connections open now.", []),
    (
        "connections_registering",
        GaugeMetricFamily,
        "Connections open and not registered yet (the strangers' budget).",
        [],
    ),
    (
        "connections_accepted",
        CounterMetricFamily,
        "Connections admitted within the limits.",
        [],
    ),
    (
        "connections_refused",
        CounterMetricFamily,
        "Connections refused or closed by admission: full, address "
        "(per-address limit), strangers (closed to make room on the "
        "strangers' budget).",
        ["reason"],
    ),
    ("received_bytes", CounterMetricFamily, "Bytes read from clients.", []),
    ("sent_bytes", CounterMetricFamily, "Bytes sent to clients.", []),
    (
        "flood_holds",
        CounterMetricFamily,
        "Times a client began to be held back by flood control.",
        [],
    ),
    (
        "flood_disconnects",
        CounterMetricFamily,
        "Clients disconnected for flooding too long.",
        [],
    ),
    (
        "send_queue_cutoffs",
        CounterMetricFamily,
        "Clients cut off for not reading (send queue exceeded).",
        [],
    ),
    (
        "timeouts",
        CounterMetricFamily,
        "Connections closed by a deadline: idle, registration.",
        ["kind"],
    ),
)

#: The values of one metric of a door: its labels besides ``door``, and
#: the value, for each sample.
Readings = list[tuple[list[str], float]]


def _door_readings(factory: ConnectionFactory) -> dict[str, Readings]:
    """Every metric of ``_DOOR_FAMILIES`` of one door, read from its counters."""
    counts = factory.counters
    return {
        "connections_open": [([], len(factory.connections))],
        "connections_registering": [([], len(factory.strangers))],
        "connections_accepted": [([], counts.accepted)],
        "connections_refused": [
            (["full"], counts.refused_full),
            (["address"], counts.refused_address),
            (["strangers"], counts.evicted),
        ],
        "received_bytes": [([], counts.bytes_in)],
        "sent_bytes": [([], counts.bytes_out)],
        "flood_holds": [([], counts.flood_holds)],
        "flood_disconnects": [([], counts.flood_disconnects)],
        "send_queue_cutoffs": [([], counts.send_queue_cutoffs)],
        "timeouts": [
            (["idle"], counts.idle_timeouts),
            (["registration"], counts.registration_timeouts),
        ],
    }


class ChatCollector:
    """
    A ``prometheus_client`` collector of one chat (a
    :class:`~chatservice.service.ChatService`) and, when measured, the
    reactor's lag.
    """

    def __init__(self, chat: ChatService, reactor_lag: Histogram | None = None) -> None:
        self.chat = chat
        self.reactor_lag = reactor_lag

    def collect(self) -> Iterable[Metric]:
        yield from self._doors()
        yield from self._chat()
        yield from self._logins()
        yield from self._state()
        if self.reactor_lag is not None:
            yield histogram(
                "reactor_lag_seconds",
                "How late the reactor ran a timer that was due: the length of "
                "the busy turn it waited behind.",
                self.reactor_lag,
            )

    def _doors(self) -> Iterator[Metric]:
        listening = GaugeMetricFamily(
            PREFIX + "door_listening",
            "1 when the door listens on the endpoint, else 0.",
            labels=["door", "endpoint"],
        )
        for listener in self.chat.listeners():
            listening.add_metric(
                [listener.factory.name, listener.description],
                0 if listener.port is None else 1,
            )
        yield listening
        families = {
            name: kind(PREFIX + name, doc, labels=["door", *extra])
            for name, kind, doc, extra in _DOOR_FAMILIES
        }
        for factory in self.chat.door_factories():
            for name, readings in _door_readings(factory).items():
                for labels, reading in readings:
                    families[name].add_metric([factory.name, *labels], reading)
        yield from families.values()

    def _chat(self) -> Iterator[Metric]:
        hub = self.chat.hub
        stats = hub.stats
        yield _gauge(
            "start_time_seconds",
            "When the chat started, in seconds since the epoch.",
            stats.started_at,
        )
        yield _gauge(
            "chat_sessions", "Chat clients connected to the hub.", len(hub.sessions)
        )
        yield _gauge(
            "chat_registered",
            "Chat clients with a nickname (registered users).",
            hub.registered,
        )
        yield _gauge(
            "chat_client_limit",
            "Registered clients allowed (0: no limit).",
            hub.max_clients,
        )
        yield _gauge("chat_rooms", "Rooms that exist now.", len(hub.rooms))
        yield _gauge(
            "chat_sessions_peak",
            "Most chat clients connected at once.",
            stats.connections_peak,
        )
        yield _counter(
            "chat_connections_total",
            "Chat clients the hub took in.",
            stats.connections_total,
        )
        refused = CounterMetricFamily(
            PREFIX + "chat_refused",
            "Chat clients the hub refused: banned (an address ban), full "
            "(every registered place taken).",
            labels=["reason"],
        )
        refused.add_metric(["banned"], stats.refused_banned)
        refused.add_metric(["full"], stats.refused_full)
        yield refused
        yield _counter(
            "room_messages_total", "Messages said in rooms.", stats.room_messages
        )
        yield _counter(
            "private_messages_total", "Private messages sent.", stats.private_messages
        )
        yield _counter(
            "deliveries_total",
            "Events delivered to members (a room message to 10 members is 10).",
            stats.deliveries,
        )
        yield _counter(
            "announcements_total", "Announcements (broadcasts).", stats.announcements
        )
        yield _counter("kicks_total", "Members kicked (bans' kicks too).", stats.kicks)
        yield _counter("bans_total", "Bans set.", stats.bans)
        yield _gauge("bans_active", "Bans in force now.", len(hub.bans()))
        yield histogram(
            "delivery_latency_seconds",
            "Seconds from a room message said to its delivery to the members' "
            "doors (the oldest message of each batch).",
            stats.delivery_latency,
        )

    def _logins(self) -> Iterator[Metric]:
        failures: dict[str, int] | None = getattr(
            self.chat.authenticator, "failures", None
        )
        if failures is None:
            return
        family = CounterMetricFamily(
            PREFIX + "login_failures",
            "Failed logins (admin console, /oper, IRC OPER): refused (wrong "
            "password or unknown user), throttled, error.",
            labels=["reason"],
        )
        for reason, value in failures.items():
            family.add_metric([reason], value)
        yield family

    def _state(self) -> Iterator[Metric]:
        hub = self.chat.hub
        yield _gauge(
            "backend_up",
            "1 when the backend (local, Redis) says it works, else 0.",
            0 if health_of("backend", hub.backend) else 1,
        )
        store = hub.store
        if store is None:
            return
        yield _gauge(
            "history_up",
            "1 when the history store says it can write, else 0.",
            0 if health_of("history", store) else 1,
        )
        figures = getattr(store, "figures", None)
        if figures is None:
            return
        kept = figures()
        yield _counter(
            "history_written_total",
            "Room messages written to the history.",
            kept.written,
        )
        yield _counter(
            "history_write_failures_total",
            "History writes (transactions) that failed; they are retried.",
            kept.write_failures,
        )
        yield _gauge(
            "history_waiting",
            "Messages waiting to be written (the queue).",
            kept.waiting,
        )
        yield _counter(
            "history_dropped_total",
            "Messages dropped because writing failed for too long.",
            kept.dropped,
        )
