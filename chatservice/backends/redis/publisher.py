"""
What a node says to the others: everything the hub asks for in one reactor
turn, collected into one *frame* and published with one command at the
turn's end (:mod:`.backend` says why); with the history in Redis, the
frame's room messages kept by the same script.  While Redis is away the
node applies its own frames at once and keeps the last ``--redis-replay``
of them, which :class:`~.liveness.Liveness` sends when Redis is back.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from twisted.internet.defer import Deferred, fail
from twisted.python.failure import Failure

from chatservice.backends.redis import frames, scripts
from chatservice.backends.redis.history import keep_arguments
from chatservice.backends.redis.link import is_refusal

if TYPE_CHECKING:
    from chatservice.backends.redis.backend import Item, RedisBackend


class Publisher:
    """This turn's frame of one backend, its publishing, and the replay."""

    def __init__(
        self,
        backend: RedisBackend,
        call_soon: Callable[[Callable[[], None]], object],
        replay_limit: int,
    ) -> None:
        self.backend = backend
        self.log = backend.log
        self._call_soon = call_soon
        self._frame: list[Item] = []
        self._turn_asked = False
        #: Frames said while Redis was away, to publish when it is back.
        self.replay: deque[str] = deque(maxlen=replay_limit)
        self.replay_dropped = 0
        #: Turns whose messages Redis refused to keep (published all the same).
        self.history_refused = 0
        self._said_refused = False

    @property
    def pending(self) -> bool:
        """Whether this turn's frame has items not published yet."""
        return bool(self._frame)

    def queue(self, item: Item) -> None:
        """Add an item to this turn's frame."""
        self._frame.append(item)
        if not self._turn_asked:
            self._turn_asked = True
            self._call_soon(self.turn_ended)

    def say(self, room_key: str, message: dict[str, Any]) -> None:
        """Add a room message (as JSON): one item with the one said before it."""
        last = self._frame[-1] if self._frame else None
        if last is not None and last["k"] == "say" and last["r"] == room_key:
            last["m"].append(message)
            return
        self.queue({"k": "say", "r": room_key, "m": [message]})

    def turn_ended(self) -> None:
        """Publish this turn's frame (Redis away: apply it here, keep it)."""
        self._turn_asked = False
        if not self._frame:
            return
        backend = self.backend
        items, self._frame = self._frame, []
        frame = {"n": backend.node, "i": items}
        if backend.liveness.usable:
            backend.in_flight += 1
            self.send_frame(frame, json.dumps(frame)).addErrback(
                self._publish_failed, frame
            )
            backend.presence.write()
            return
        self._apply_alone(frame)

    def send_frame_now(self) -> None:
        """Send this turn's frame now, ahead of a command that must follow it."""
        if self._frame:
            self.turn_ended()

    def send_frame(self, frame: dict[str, Any], text: str) -> Deferred[Any]:
        """
        Publish a frame (``text``, its JSON); with the history in Redis, its
        room messages are appended to their rooms' streams by the same
        script, before the publish: one command either way.
        """
        backend = self.backend
        channel = backend.link.channel
        if backend.history is not None:
            replayed = bool(frame.get("x"))
            keys, arguments = keep_arguments(
                backend, backend.history, frame["i"], replayed
            )
            if keys:
                arguments = [channel, text, *arguments]
                kept = backend.evaluate(scripts.KEEP_AND_PUBLISH, keys, arguments)
                return kept.addCallbacks(
                    self._kept, self._keep_refused, errbackArgs=(text,)
                )
        return backend.command("PUBLISH", channel, text)

    def _kept(self, result: object) -> object:
        self._said_refused = False
        return result

    def _keep_refused(self, failure: Failure, text: str) -> Deferred[Any]:
        """
        Redis answered the script with an error (out of memory, say): the
        chat goes on, the turn's messages delivered everywhere without
        being kept, and one line says so until Redis keeps them again.
        """
        if not is_refusal(failure):
            return fail(failure)
        self.history_refused += 1
        if not self._said_refused:
            self._said_refused = True
            self.log.warn(
                "history: Redis refused to keep room messages ({why}); they are "
                "delivered without being kept until it takes them again",
                why=failure.getErrorMessage(),
            )
        return self.backend.command("PUBLISH", self.backend.link.channel, text)

    def _publish_failed(self, failure: Failure, frame: dict[str, Any]) -> None:
        # Lost on the way: delivered here, and kept for the others.
        self.backend.in_flight -= 1
        self._apply_alone(frame)

    def _apply_alone(self, frame: dict[str, Any]) -> None:
        """Redis is away: deliver here now, and keep it for the others."""
        self.backend.presence.clear()
        frames.apply(self.backend, frame)
        if len(self.replay) == self.replay.maxlen:
            self.replay_dropped += 1
            if self.replay_dropped == 1:
                self.log.warn(
                    "shared state: Redis still away; the oldest frames said "
                    "meanwhile will not reach the other nodes (--redis-replay "
                    "{limit})",
                    limit=self.replay.maxlen,
                )
        frame["x"] = 1  # a replay: applied here already
        self.replay.append(json.dumps(frame))

    def take_replay(self) -> tuple[list[str], int]:
        """
        The frames kept while Redis was away, and how many were dropped
        past ``--redis-replay``; forgotten here (Redis is back).
        """
        replay, dropped = list(self.replay), self.replay_dropped
        self.replay.clear()
        self.replay_dropped = 0
        return replay, dropped
