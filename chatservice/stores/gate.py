"""
The gate between a history store that writes in a thread and the outboxes
of the members: what a member is sent leaves only once what it shows is
stored.

Each commit a store hands to its writer opens an *epoch* (a number, one
more than the last).  An outbox that has something to send while an epoch
is open holds it, tagged with the newest epoch (:attr:`DeliveryGate.opened`),
and asks to be told once that epoch is closed (:meth:`DeliveryGate.wait`).
The store closes epochs in order, once its writer's commit has returned
(:meth:`DeliveryGate.close`); then every outbox writes what it held for
them, in order.  Nothing leaves ahead of a commit still in flight, so a
message that any member has been sent is in the file.

A store closes an epoch too when its write failed (the messages then wait
in memory to be retried: the chat goes on) or takes too long: see
``docs/history.rst``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import ClassVar

from twisted.logger import Logger


class DeliveryGate:
    """Epochs opened by a store's commits and closed once they are written."""

    __slots__ = ("_waiting", "closed", "opened")

    log: ClassVar[Logger] = Logger()

    def __init__(self) -> None:
        #: The newest epoch opened (0: none yet).
        self.opened = 0
        #: Every epoch up to this one is closed.
        self.closed = 0
        #: Who waits for which epoch, in the order of the epochs.
        self._waiting: deque[tuple[int, Callable[[int], None]]] = deque()

    def busy(self) -> bool:
        """Whether a commit is in flight: what is sent now must wait."""
        return self.closed < self.opened

    def open(self) -> int:
        """Open a new epoch (a commit handed to the writer); its number."""
        self.opened += 1
        return self.opened

    def wait(self, epoch: int, callback: Callable[[int], None]) -> None:
        """
        Call ``callback`` with the newest closed epoch once ``epoch`` is
        closed (at once if it is).  ``epoch`` is at most :attr:`opened`, and
        never lower than an epoch waited for before, since it is taken
        from :attr:`opened` when asked.
        """
        if epoch <= self.closed:
            callback(self.closed)
        else:
            self._waiting.append((epoch, callback))

    def close(self, epoch: int) -> None:
        """Every epoch up to ``epoch`` is written (or will not be waited for)."""
        if epoch <= self.closed:
            return
        self.closed = min(epoch, self.opened)
        waiting = self._waiting
        while waiting and waiting[0][0] <= self.closed:
            _, callback = waiting.popleft()
            try:
                callback(self.closed)
            except Exception:
                # Logged; the other outboxes still get theirs.
                self.log.failure("history: releasing held deliveries")

    def close_all(self) -> None:
        """Close every epoch opened so far."""
        self.close(self.opened)
