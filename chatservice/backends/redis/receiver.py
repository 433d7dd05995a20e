"""
What a node hears on its subscription: frames, every node's its own
included, applied in Redis's order (:mod:`.frames`), or held while
:class:`~.liveness.Liveness` reads a snapshot of the chat; the room
messages a turn hears for one room delivered as one event, as the local
backend delivers what is said; each event delivered once.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from chatservice.backends.base import one_event
from chatservice.backends.redis import frames
from chatservice.chat import events

if TYPE_CHECKING:
    from chatservice.backends.redis.backend import RedisBackend

#: Event ids remembered to deliver none twice.
_SEEN = 10_000


class Receiver:
    """The subscription's side of one backend."""

    def __init__(
        self,
        backend: RedisBackend,
        call_soon: Callable[[Callable[[], None]], object],
    ) -> None:
        self.backend = backend
        self.log = backend.log
        self._call_soon = call_soon
        self._seen: OrderedDict[str, None] = OrderedDict()
        #: Frames received while a snapshot is read (``None``: none is).
        self._held: list[dict[str, Any]] | None = None
        #: Room messages received this turn for one room, not delivered yet.
        self._heard_in: str | None = None
        self._heard: list[events.RoomMessage] = []
        self._heard_asked = False

    @property
    def pending(self) -> bool:
        """Whether frames are held, or room messages heard, not delivered yet."""
        return self._held is not None or bool(self._heard)

    def received(self, message: bytes | str) -> None:
        """A message on the channel: a frame, applied (or held)."""
        try:
            frame = json.loads(message)
            if not isinstance(frame, dict) or not isinstance(frame.get("i"), list):
                raise ValueError("not a frame")
        except ValueError as error:
            self.log.warn("shared state: dropped a bad frame: {error}", error=error)
            return
        backend = self.backend
        if frame.get("n") == backend.node and not frame.get("x"):
            backend.in_flight = max(0, backend.in_flight - 1)
        if self._held is not None:
            self._held.append(frame)
            return
        frames.apply(backend, frame)

    def hold(self) -> None:
        """Keep the frames received from now on, until :meth:`release`."""
        self._held = []

    def release(self) -> list[dict[str, Any]]:
        """The frames held, in order, which are no longer held from now on."""
        held, self._held = self._held or [], None
        return held

    def hear(self, room_key: str, messages: list[events.RoomMessage]) -> None:
        """
        Room messages back from Redis, collected as the local backend
        collects what is said: what a turn receives for one room, in one
        frame or several, reaches each member as one event.
        """
        if self._heard_in != room_key:
            self.deliver_heard()
            self._heard_in = room_key
        self._heard.extend(messages)
        if not self._heard_asked:
            self._heard_asked = True
            self._call_soon(self._heard_turn_ended)

    def _heard_turn_ended(self) -> None:
        self._heard_asked = False
        self.deliver_heard()

    def deliver_heard(self) -> None:
        """Deliver the collected room messages (before anything else happens)."""
        key = self._heard_in
        if key is None:
            return
        heard, self._heard, self._heard_in = self._heard, [], None
        event = one_event(heard[0].room, heard)
        for session in list(self.backend.audience.get(key, ())):
            session.member.deliver(event)

    def fresh(self, event_id: str) -> bool:
        """Whether an event is new here (not delivered already)."""
        if not event_id:
            return True
        if event_id in self._seen:
            return False
        self._seen[event_id] = None
        if len(self._seen) > _SEEN:
            self._seen.popitem(last=False)
        return True
