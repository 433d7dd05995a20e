"""
Whether the chat can serve (``/healthz``): every door listens, and the
backend and the history store say they are well.

A backend or store says so with an optional ``health()`` method returning
why it cannot work now (``"redis: connection refused"``), or ``None`` when
it can (:class:`ReportsHealth`); one without it is taken as well.  The
local backend and both stores have one; a Redis backend gives its own.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from chatservice.service import ChatService


class ReportsHealth(Protocol):
    """A part of the chat that can say whether it works."""

    def health(self) -> str | None:
        """Why it cannot work now, in one line, or ``None`` when it can."""


def health_of(name: str, component: object) -> str | None:
    """
    ``component.health()`` if it has one (``None``: well), with an error in
    the check itself reported as a reason, not raised.
    """
    check = getattr(component, "health", None)
    if check is None:
        return None
    try:
        reason: str | None = check()
    except Exception as error:  # a check that fails says the part is unwell
        return f"{name}: health check failed: {error!r}"
    return reason


def problems(chat: ChatService) -> list[str]:
    """Why the chat cannot serve, one line each; empty when it can."""
    reasons = [
        f"{listener.factory.name} on {listener.description}: not listening"
        for listener in chat.listeners()
        if listener.port is None
    ]
    for name, component in (("backend", chat.hub.backend), ("history", chat.hub.store)):
        if component is not None:
            reason = health_of(name, component)
            if reason is not None:
                reasons.append(reason)
    return reasons
