"""
Login throttling: :class:`LoginThrottle` refuses logins for a while after
repeated failures for one key, and :func:`address_key` gives the key of a
client address.
"""

from __future__ import annotations

import ipaddress
from collections import OrderedDict, deque
from dataclasses import dataclass

from twisted.internet.interfaces import IReactorTime


@dataclass
class _Failures:
    times: deque[float]
    locked_until: float = 0.0
    #: Attempts begun and not yet ended: each may become a failure.
    pending: int = 0


#: Seconds a key whose attempts in progress could reach the limit is told
#: to wait: they end within about one password check.
BUSY_RETRY = 1.0


class LoginThrottle:
    """
    Counts failed logins per key (an address, a user name) and refuses a
    key for ``lockout`` seconds once it has ``max_failures`` failures within
    ``window`` seconds.

    An attempt counts from when it starts (:meth:`begin`), not only once its
    password check has failed: a key with failures and attempts in progress
    that add up to ``max_failures`` is refused (for :data:`BUSY_RETRY`
    seconds) until some end, so parallel logins get no more guesses per
    lockout than sequential ones.  :meth:`failed`, :meth:`succeeded` and
    :meth:`ended` end an attempt.

    Memory stays bounded: an entry is forgotten once it can no longer lock
    (its failures are older than ``window`` and its lockout is over), and
    the table holds at most ``max_keys`` entries; past that, the entry
    touched least recently goes first.
    """

    def __init__(
        self,
        clock: IReactorTime,
        *,
        max_failures: int = 5,
        window: float = 60.0,
        lockout: float = 60.0,
        max_keys: int = 10_000,
    ) -> None:
        if max_failures < 1 or max_keys < 1 or window < 0 or lockout < 0:
            raise ValueError(
                "max_failures and max_keys must be positive, window and lockout "
                "0 or more"
            )
        self.clock = clock
        self.max_failures = max_failures
        self.window = window
        self.lockout = lockout
        self.max_keys = max_keys
        self._entries: OrderedDict[str, _Failures] = OrderedDict()

    def __len__(self) -> int:
        """How many keys the table holds."""
        return len(self._entries)

    def _expired(self, entry: _Failures, now: float) -> bool:
        return (
            not entry.pending
            and entry.locked_until <= now
            and (not entry.times or entry.times[-1] <= now - self.window)
        )

    def _expire(self, now: float) -> None:
        # Entries are in the order they were last touched: stop at the first
        # live one (one touched later may, rarely, have expired already; it
        # goes in its turn).
        while self._entries:
            key, entry = next(iter(self._entries.items()))
            if not self._expired(entry, now):
                break
            del self._entries[key]

    def retry_after(self, key: str) -> float | None:
        """Seconds until ``key`` may try again, or ``None`` if it may now."""
        now = self.clock.seconds()
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry.locked_until > now:
            return entry.locked_until - now
        self._forget_old(entry, now)
        if len(entry.times) + entry.pending >= self.max_failures:
            return BUSY_RETRY
        if self._expired(entry, now):
            del self._entries[key]
        return None

    def _forget_old(self, entry: _Failures, now: float) -> None:
        while entry.times and entry.times[0] <= now - self.window:
            entry.times.popleft()

    def _touch(self, key: str, now: float) -> _Failures:
        """The entry of ``key``, made the most recently touched."""
        self._expire(now)
        entry = self._entries.pop(key, None)
        if entry is None:
            while len(self._entries) >= self.max_keys:
                self._entries.popitem(last=False)
            entry = _Failures(deque(maxlen=self.max_failures))
        self._entries[key] = entry
        return entry

    def _end(self, key: str) -> _Failures | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry.pending:
            entry.pending -= 1
        if self._expired(entry, self.clock.seconds()):
            del self._entries[key]
            return None
        return entry

    def begin(self, key: str) -> None:
        """Count one attempt in progress for ``key``, until it ends."""
        self._touch(key, self.clock.seconds()).pending += 1

    def ended(self, key: str) -> None:
        """End an attempt for ``key`` that was neither a failure nor a success."""
        self._end(key)

    def failed(self, key: str) -> None:
        """
        Count one failure for ``key`` (ending an attempt in progress, if
        one was begun), locking it at the limit.
        """
        self._end(key)
        now = self.clock.seconds()
        entry = self._touch(key, now)
        self._forget_old(entry, now)
        entry.times.append(now)
        if len(entry.times) >= self.max_failures:
            entry.locked_until = now + self.lockout
            entry.times.clear()

    def succeeded(self, key: str) -> None:
        """
        Forget the failures of ``key`` (ending an attempt in progress, if
        one was begun; others in progress still count).
        """
        entry = self._end(key)
        if entry is not None and entry.pending:
            entry.times.clear()
            entry.locked_until = 0.0
        elif entry is not None:
            del self._entries[key]


def address_key(address: str) -> str:
    """
    The throttling key of a client address: the address itself, or for
    IPv6 its /64 network (one host usually has a whole /64 to itself).
    """
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return f"address:{address}"
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return f"address:{ip.ipv4_mapped}"
        return f"address:{ipaddress.IPv6Network((ip, 64), strict=False)}"
    return f"address:{ip}"
