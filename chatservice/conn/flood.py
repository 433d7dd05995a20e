"""
Flood control: a token bucket of ``flood_burst`` lines, refilled at
``flood_rate`` lines per second.  An empty bucket holds the client's input
(it waits; its lines are not lost); held for ``flood_disconnect`` seconds
without a break, it is disconnected.
"""

from __future__ import annotations

from chatservice.conn.limits import Limits


class FloodControl:
    """The bucket of one connection (made only when flood control is on)."""

    __slots__ = ("at", "limits", "since", "tokens")

    def __init__(self, limits: Limits, now: float) -> None:
        self.limits = limits
        #: Lines the client may send now, and when that was known.
        self.tokens = float(limits.flood_burst)
        self.at = now
        #: Since when the client has been held back without pause.
        self.since: float | None = None

    def refill(self, now: float) -> None:
        """Add what the time since the last refill earned."""
        limits = self.limits
        tokens = self.tokens + (now - self.at) * limits.flood_rate
        if tokens >= limits.flood_burst:
            tokens = float(limits.flood_burst)
            self.since = None
        self.tokens, self.at = tokens, now

    def take(self) -> bool:
        """Take a line's token, or ``False`` when the bucket is empty."""
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True

    def held(self, now: float) -> bool:
        """
        Note that the client is held back at ``now``; ``True`` the first
        time in a row (worth a log line).
        """
        if self.since is None:
            self.since = now
            return True
        return False

    def too_long(self, now: float) -> bool:
        """Whether the client has been held back for longer than allowed."""
        return (
            self.since is not None and now - self.since > self.limits.flood_disconnect
        )

    def wait(self) -> float:
        """Seconds until the next token."""
        return (1 - self.tokens) / self.limits.flood_rate
