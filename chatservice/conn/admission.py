"""
Admission: how many connections a listening service holds, registered and
per address, and why a newcomer is refused.

Connections that have not registered yet (strangers) are not counted
here: they have their own budget, kept by
:class:`~chatservice.conn.factory.ConnectionFactory`, whose oldest
member makes room for a newcomer.  A stranger takes a registered place
when it registers (:meth:`Admission.register`), if one is free.
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
            plural = "s" if self.limit != 1 else ""
            return (
                f"server full ({self.limit} connection{plural}); please try again later"
            )
        return f"too many connections from {self.host} (limit {self.limit})"


class Admission:
    """Counts registered connections, and admitted ones per IP address."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        #: Admitted connections, registered or not.
        self.count = 0
        #: Registered connections.
        self.registered = 0
        self._per_address: Counter[str] = Counter()

    def full(self) -> bool:
        """Whether every registered place is taken."""
        limit = self.limits.max_clients
        return bool(limit) and self.registered >= limit

    def admit(self, host: str | None) -> Refusal | None:
        """
        Count a newcomer from ``host`` (``None``: a UNIX socket), or refuse
        it: every registered place is taken, or its address has its share.
        """
        limits = self.limits
        if self.full():
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

    def register(self) -> Refusal | None:
        """Give a registering connection a registered place, or refuse it."""
        if self.full():
            return Refusal("full", self.limits.max_clients)
        self.registered += 1
        return None

    def release(self, host: str | None, registered: bool) -> None:
        """Forget an admitted connection from ``host``."""
        self.count -= 1
        if registered:
            self.registered -= 1
        if host is not None:
            self._per_address[host] -= 1
            if self._per_address[host] <= 0:
                del self._per_address[host]
