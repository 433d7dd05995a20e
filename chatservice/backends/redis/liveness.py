"""
A node's life in the shared chat: it heartbeats, it notices dead nodes and
announces their members gone, it reads the whole chat when its link to
Redis comes up, and it leaves when stopped.

* **Heartbeat**: every ``liveness / 3`` seconds a node sets
  ``node:<id>`` to expire after ``liveness`` seconds, and checks the
  others' (the set ``nodes``).  One whose key expired is dead: the first
  node to run :data:`~.scripts.REAP` for it frees its nicknames and deletes
  its members' hash, then tells the chat its members quit ("node lost").
  Within ``liveness`` (+ one beat) of a kill -9, so 30 s (+10) by default.
  A node that just (re)connected waits ``liveness`` before judging
  others: after an outage every node gets time to beat again.
* **Resynchronisation** (the link is up, at start or after an outage):
  write this node's members again (re-claiming their nicknames: one
  taken meanwhile disconnects its member with a clear line), read every
  other node's members, the bans and topics, rebuild the mirror, publish
  what this node's members are (the others add what they did not know),
  then the frames said during the outage.  Frames received meanwhile
  wait, then apply.
* **Outage**: nothing reaches Redis; the node delivers its own frames at
  once (its members keep chatting among themselves) and keeps up to
  ``--redis-replay`` of them for the others; new nicknames are refused
  (:class:`~chatservice.chat.errors.Unavailable`).
"""

from __future__ import annotations

import json
from collections.abc import Generator
from typing import TYPE_CHECKING, Any

from twisted.internet.defer import Deferred, gatherResults, inlineCallbacks, succeed
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from chatservice.backends.redis import codec, frames, scripts
from chatservice.chat.names import fold

if TYPE_CHECKING:
    from chatservice.backends.redis.backend import RedisBackend

#: What a member of this node whose nickname was taken during an outage is
#: told as it is disconnected.
NICK_TAKEN = (
    "your nickname was taken on another node while this one was cut off; "
    "please reconnect"
)
#: Why a dead node's members quit.
NODE_LOST = "node lost"
#: Frames said during an outage are also kept in a stream, for the nodes
#: that come back after they were published: this many at most, for this
#: many seconds after the last.
REPLAYED_KEPT = "10000"
REPLAYED_FOR = "600"


def pairs(flat: list[Any]) -> dict[str, str]:
    """A Redis ``HGETALL`` answer as a dictionary."""
    return {str(flat[i]): str(flat[i + 1]) for i in range(0, len(flat) - 1, 2)}


class Liveness:
    """Heartbeats, dead nodes, resynchronisation, for one backend."""

    log = Logger()

    def __init__(self, backend: RedisBackend, liveness: float) -> None:
        self.backend = backend
        self.liveness = liveness
        self._beat = LoopingCall(self.beat)
        self._beat.clock = backend.reactor
        #: When the link came up last (``None``: it is down).
        self.up_since: float | None = None
        self.syncing = False
        #: Who waits for the resynchronisation to end (:meth:`when_synced`).
        self._waiting: list[Deferred[None]] = []

    @property
    def usable(self) -> bool:
        """Whether Redis can be used now."""
        return self.backend.link.up

    def when_synced(self) -> Deferred[None]:
        """
        Fires once no resynchronisation is running (at once if none is), its
        end a success or not.  A nickname claimed meanwhile waits for it: a
        member registered halfway would be missing from the members' hash
        the resynchronisation rewrites, and would see a chat whose other
        nodes are not read yet.
        """
        if not self.syncing:
            return succeed(None)
        waiting: Deferred[None] = Deferred()
        self._waiting.append(waiting)
        return waiting

    def _synced(self) -> None:
        self.syncing = False
        waiting, self._waiting = self._waiting, []
        for deferred in waiting:
            deferred.callback(None)

    def start(self) -> None:
        self._beat.start(self.liveness / 3, now=False)

    def stop(self) -> None:
        if self._beat.running:
            self._beat.stop()

    def leave(self) -> Deferred[Any]:
        """Stopped: this node and its members' hash go (nicknames freed)."""
        b = self.backend
        return gatherResults(
            [
                b.evaluate(
                    scripts.REAP,
                    [b.key("members", b.node), b.key("nodes")],
                    [b.node, b.prefix],
                ),
                b.command("DEL", b.key("node", b.node)),
            ],
            consumeErrors=True,
        )

    def link_lost(self) -> None:
        self.up_since = None

    # Heartbeats and dead nodes

    def _heartbeat(self) -> Deferred[Any]:
        b = self.backend
        return b.command(
            "SET",
            b.key("node", b.node),
            str(b.reactor.seconds()),
            "PX",
            str(int(self.liveness * 1000)),
        )

    def beat(self) -> None:
        if not self.usable or self.syncing or self.up_since is None:
            return
        self._heartbeat().addErrback(lambda _: None)
        if self.backend.reactor.seconds() - self.up_since < self.liveness:
            return  # give every node time to beat after an outage
        self._find_dead().addErrback(
            lambda failure: self.log.failure("looking for dead nodes", failure)
        )

    @inlineCallbacks
    def _find_dead(self) -> Generator[Deferred[Any], Any, None]:
        b = self.backend
        nodes = yield b.command("SMEMBERS", b.key("nodes"))
        for node in nodes:
            node = str(node)
            if node == b.node:
                continue
            alive = yield b.command("EXISTS", b.key("node", node))
            if str(alive) != "0":
                continue
            won = yield b.evaluate(
                scripts.REAP, [b.key("members", node), b.key("nodes")], [node, b.prefix]
            )
            if str(won) == "1":
                self.announce_dead(node)

    def announce_dead(self, node: str) -> None:
        """Tell the chat that every member of a dead node quit."""
        b = self.backend
        lost = [s for sid, s in list(b.members.items()) if sid.startswith(node + ".")]
        self.log.warn(
            "shared state: node {node} stopped heartbeating; its {count} "
            "member(s) quit",
            node=node,
            count=len(lost),
        )
        for session in lost:
            b.hub.lost(session, NODE_LOST)

    # Resynchronisation

    def resync(self) -> None:
        if self.syncing:
            return
        self.syncing = True
        self.backend.receiver.hold()
        self._resync().addErrback(self._resync_failed)

    def _resync_failed(self, failure: Any) -> None:
        for frame in self.backend.receiver.release():
            frames.apply(self.backend, frame)
        self.log.failure("shared state: reading the chat from Redis", failure)
        self._synced()

    @inlineCallbacks
    def _resync(self) -> Generator[Deferred[Any], Any, None]:
        b = self.backend
        fresh = yield b.command("SET", b.key("epoch"), "1", "NX")
        yield b.command("SADD", b.key("nodes"), b.node)
        yield self._heartbeat()
        # This node's members: their nicknames again, their entries.
        local = b.local_sessions()
        claims = yield gatherResults(
            [
                b.evaluate(
                    scripts.CLAIM, b.nick_keys(s.key or "", _looks(s)), [b.sid_for(s)]
                )
                for s in local
            ]
        )
        taken = [s for s, reply in zip(local, claims, strict=True) if reply[0] != "ok"]
        kept = [s for s in local if s not in taken]
        members = b.key("members", b.node)
        yield b.command("DEL", members)
        if kept:
            fields = []
            for session in kept:
                fields += [b.sid_for(session), json.dumps(b.presence.entry(session))]
            yield b.command("HSET", members, *fields)
        unreleased, b.unreleased = b.unreleased, []
        for keys, sid in unreleased:
            b.release(keys, sid)
        # Everyone else.
        ban_entries = pairs((yield b.command("HGETALL", b.key("bans"))))
        topic_entries = pairs((yield b.command("HGETALL", b.key("topics"))))
        nodes = yield b.command("SMEMBERS", b.key("nodes"))
        others = {}
        for node in nodes:
            node = str(node)
            if node != b.node:
                others[node] = pairs(
                    (yield b.command("HGETALL", b.key("members", node)))
                )
        if fresh == "OK":
            yield self._restore_redis()
        else:
            self._take(ban_entries, topic_entries)
        self._rebuild(others)
        for session in taken:
            b.hub.drop(session, NICK_TAKEN)
        # Tell the others who is here (they add whom they did not know).
        for session in kept:
            b.publisher.queue(b.presence.describe(session))
            for room in session.rooms:
                b.publisher.queue({"k": "j", "s": b.sid_for(session), "r": room.name})
        # What other nodes said during the outage and published before this
        # node was back (pub/sub keeps nothing for a node not subscribed).
        replayed = yield b.command("XRANGE", b.key("replayed"), "-", "+")
        replay, dropped = b.publisher.take_replay()
        for text in replay:
            b.publisher.send_frame(json.loads(text), text).addErrback(lambda _: None)
            # Kept a while for the nodes that are not back yet.
            b.command(
                "XADD", b.key("replayed"), "MAXLEN", "~", REPLAYED_KEPT, "*", "f", text
            ).addErrback(lambda _: None)
        if replay:
            b.command("EXPIRE", b.key("replayed"), REPLAYED_FOR).addErrback(
                lambda _: None
            )
        if replay or dropped:
            self.log.info(
                "shared state: {count} frame(s) said while Redis was away sent "
                "to the other nodes ({dropped} dropped past --redis-replay)",
                count=len(replay),
                dropped=dropped,
            )
        self.up_since = b.reactor.seconds()
        held = b.receiver.release()
        for _entry_id, fields in replayed or []:
            try:
                frame = json.loads(pairs(fields)["f"])
                frames.apply(b, frame, deliveries_only=True)
            except (KeyError, TypeError, ValueError):
                continue
        for frame in held:
            frames.apply(b, frame)
        self._synced()

    def _restore_redis(self) -> Deferred[Any]:
        """A Redis without our chat (new, or it lost its data): give it ours."""
        b = self.backend
        writes: list[Deferred[Any]] = []
        for ban in b.bans(b.reactor.seconds()):
            writes.append(
                b.command(
                    "HSET",
                    b.key("bans"),
                    fold(ban.target),
                    json.dumps(codec.ban_entry(ban)),
                )
            )
        for key, topic in b.hub.topics.items():
            writes.append(
                b.command(
                    "HSET", b.key("topics"), key, json.dumps(codec.topic_entry(topic))
                )
            )
        return gatherResults(writes, consumeErrors=True)

    def _take(self, ban_entries: dict[str, str], topic_entries: dict[str, str]) -> None:
        b = self.backend
        bans = []
        for text in ban_entries.values():
            try:
                bans.append(codec.ban_from(json.loads(text)))
            except (KeyError, TypeError, ValueError):
                self.log.warn("shared state: skipped a bad ban: {text!r}", text=text)
        b.bans_in_force = bans
        for key, text in topic_entries.items():
            try:
                topic = codec.topic_from(json.loads(text))
            except (KeyError, TypeError, ValueError):
                continue
            b.hub.topics[key] = topic
            room = b.hub.rooms.get(key)
            if room is not None:
                room.topic = topic.topic

    def _rebuild(self, others: dict[str, dict[str, str]]) -> None:
        """The mirror again, from every other node's members."""
        b = self.backend
        for session in list(b.hub.remote):
            frames.forget_member(b, session)
        for node, entries in others.items():
            for sid, text in entries.items():
                try:
                    entry = json.loads(text)
                    added = frames.add_member(
                        b,
                        {
                            "s": sid,
                            "n": entry["n"],
                            "a": entry.get("a"),
                            "c": entry["c"],
                        },
                    )
                    if added is not None:
                        for name in entry.get("r", []):
                            b.hub.place(added, str(name))
                except (KeyError, TypeError, ValueError):
                    self.log.warn(
                        "shared state: skipped a bad member of {node}", node=node
                    )


def _looks(session: Any) -> str:
    from chatservice.chat.names import skeleton

    return skeleton(session.key or "")
