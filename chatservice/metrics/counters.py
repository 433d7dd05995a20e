"""
The counters themselves: plain objects of integers that the code counting
an event adds to (``counters.bytes_out += len(data)``: one add, no lock, no
call), read when someone asks (``/stats``, a Prometheus scrape through
:mod:`chatservice.metrics.collector`).  Nothing here imports Prometheus, so
that the core and the connection policy can count without it.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable


class DoorCounters:
    """What one door's listening factory counts (its endpoints share it)."""

    __slots__ = (
        "accepted",
        "bytes_in",
        "bytes_out",
        "evicted",
        "flood_disconnects",
        "flood_holds",
        "idle_timeouts",
        "refused_address",
        "refused_full",
        "registration_timeouts",
        "send_queue_cutoffs",
    )

    def __init__(self) -> None:
        #: Connections admitted (within the limits).
        self.accepted = 0
        #: Refused: every registered place was taken (``--max-clients``).
        self.refused_full = 0
        #: Refused: the address had its share (``--max-per-address``).
        self.refused_address = 0
        #: Closed to make room on the strangers' budget (``--max-strangers``).
        self.evicted = 0
        #: Bytes read from clients, and handed to the socket or transport.
        self.bytes_in = 0
        self.bytes_out = 0
        #: Times a client began to be held back by flood control, and
        #: clients disconnected for flooding too long.
        self.flood_holds = 0
        self.flood_disconnects = 0
        #: Clients cut off for not reading (``--max-send-queue``).
        self.send_queue_cutoffs = 0
        #: Closed for saying nothing (``--idle-timeout``), or for not
        #: registering in time (``--registration-timeout``).
        self.idle_timeouts = 0
        self.registration_timeouts = 0

    def count_refusal(self, kind: str) -> None:
        """One more connection refused by admission (``"full"``, ``"address"``)."""
        if kind == "address":
            self.refused_address += 1
        else:
            self.refused_full += 1


class Histogram:
    """
    A histogram as plain integers: :meth:`observe` is a bisection and two
    adds, where a Prometheus ``Histogram`` takes a lock per observation.
    Exported as a Prometheus histogram at scrape time.
    """

    __slots__ = ("bounds", "counts", "total")

    def __init__(self, bounds: Iterable[float]) -> None:
        #: Upper bounds of the buckets, increasing (``+Inf`` is implied).
        self.bounds = tuple(sorted(bounds))
        #: Observations per bucket (not cumulative); the last is above every bound.
        self.counts = [0] * (len(self.bounds) + 1)
        #: Sum of every observed value.
        self.total = 0.0

    def observe(self, value: float) -> None:
        """Count one observation (``value <= bound`` falls in that bucket)."""
        self.counts[bisect_left(self.bounds, value)] += 1
        self.total += value

    @property
    def count(self) -> int:
        """How many observations there were."""
        return sum(self.counts)

    def cumulative(self) -> list[tuple[str, int]]:
        """``(le, count)`` pairs as Prometheus shows them, ``+Inf`` last."""
        buckets: list[tuple[str, int]] = []
        running = 0
        for bound, count in zip(self.bounds, self.counts, strict=False):
            running += count
            buckets.append((repr(float(bound)), running))
        buckets.append(("+Inf", running + self.counts[-1]))
        return buckets


#: Buckets, in seconds, of the delivery latency and the reactor's lag: from
#: half a millisecond (an idle server) to seconds (one in trouble).
LATENCY_BUCKETS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
)
