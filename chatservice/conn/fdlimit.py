"""
Limits that fit the machine: how many connections the process's
file-descriptor limit leaves room for.

At start-up the soft limit is raised to the hard one (:func:`raise_limit`);
each service then holds up to ``(limit - HEADROOM) / services`` connections,
its strangers' budget included (:func:`max_clients_for`).
"""

from __future__ import annotations

import resource

#: Descriptors kept for everything but client connections: listening
#: sockets, log and history files, the reactor's own.
HEADROOM = 64
#: The most registered connections one service defaults to, however many
#: descriptors there are (memory: about 2 KiB each).
CEILING = 100_000
#: The fewest.
FLOOR = 16


def hard_limit() -> int:
    """The limit the soft one can be raised to (``RLIM_INFINITY`` as a large number)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        return max(soft, 1 << 20)
    return hard


def raise_limit() -> tuple[int, int]:
    """
    Raise the soft descriptor limit to the hard one; ``(before, now)``.
    A system that refuses leaves it where it was.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard_limit()
    if soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):
            return soft, soft
        return soft, target
    return soft, soft


def max_clients_for(descriptors: int, services: int, strangers: int) -> int:
    """
    Registered connections per service that ``descriptors`` leave room
    for, shared by ``services`` services each with ``strangers`` more.
    """
    share = (descriptors - HEADROOM) // max(1, services) - strangers
    return max(FLOOR, min(CEILING, share))


def descriptors_needed(services: int, clients: int, strangers: int) -> int | None:
    """
    Descriptors ``services`` services need to hold ``clients`` registered
    and ``strangers`` registering connections each, with the headroom;
    ``None`` when the registered connections have no limit (0).
    """
    if clients == 0:
        return None
    return HEADROOM + services * (clients + strangers)
