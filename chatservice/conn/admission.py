"""
Admission: how many connections a listening service holds, in total and per
address, and why a newcomer is refused.
"""

from __future__ import annotations

from collections import Counter

from chatservice.conn.limits import Limits


class Refusal:
    """Why a connection was not admitted: ``kind`` is ``"full"`` or ``"address"``."""

    __slots__ = ("host", "kind", "limit")

    def __init__(self, kind: str, limit: int, host: str | None = None) -> None:
        self.kind = kind
        self.limit = limit
        self.host = host

    def __str__(self) -> str:
        if self.kind == "full":
            return f"server full ({self.limit} connections); please try again later"
        return f"too many connections from {self.host} (limit {self.limit})"


class Admission:
    """Counts admitted connections in total and per IP address."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.count = 0
        self._per_address: Counter[str] = Counter()

    def admit(self, host: str | None) -> Refusal | None:
        """Count a newcomer from ``host`` (``None``: a UNIX socket), or refuse it."""
        limits = self.limits
        if limits.max_clients and self.count >= limits.max_clients:
            return Refusal("full", limits.max_clients)
        if host is not None:
            if (
                limits.max_per_address
                and self._per_address[host] >= limits.max_per_address
            ):
                return Refusal("address", limits.max_per_address, host)
            self._per_address[host] += 1
        self.count += 1
        return None

    def release(self, host: str | None) -> None:
        """Forget an admitted connection from ``host``."""
        self.count -= 1
        if host is not None:
            self._per_address[host] -= 1
            if self._per_address[host] <= 0:
                del self._per_address[host]
