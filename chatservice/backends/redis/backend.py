"""
:class:`RedisBackend`: one chat over several nodes that share a Redis.

What a node does and what it sends (``docs/scaling.rst`` says why):

* Everything the hub asks for in one reactor turn (events to deliver,
  and what changed: who registered, joined, left, renamed, went) becomes
  one *frame*, a list of items published to one channel with one
  ``PUBLISH``.  Room messages said in a row to one room are one item.
* Every node, the sender's included, delivers from the frames Redis
  returns: Redis orders every publish to a channel, so each room's
  events reach every member in one order, whatever their node.  Each
  node keeps, per room, its own members as Redis ordered their joins and
  parts (the *audience*), so a member sees exactly what was said between
  its join and its part.
* Each node mirrors the members of the others (``Hub.add_remote``,
  ``Hub.place``): ``/who``, ``/whois``, ``/list`` and ``/stats`` show the
  whole chat, ``/msg`` and ``/kick`` find members wherever they are.  A
  member's node writes it in a hash of its own (``members:<node>``) so
  that a node that starts, or comes back, reads everyone.
* Nicknames are claimed by a Lua script (:mod:`.scripts`): atomic, so
  of two nodes claiming one at once exactly one wins.
* Liveness, resynchronisation and the outage are :mod:`.liveness`.

The backend is what the hub calls: session ids, nicknames, topics and
bans.  Its parts: :class:`~.publisher.Publisher` the turn's frame and its
publishing, :class:`~.receiver.Receiver` the subscription's frames,
:class:`~.presence.Presence` this node's members' hash,
:class:`~.liveness.Liveness` heartbeats and resynchronisation.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Mapping
from typing import Any

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from chatservice.backends.base import nick_refusal
from chatservice.backends.redis import codec, scripts
from chatservice.backends.redis.history import HistoryCap
from chatservice.backends.redis.link import RedisLink
from chatservice.backends.redis.liveness import Liveness
from chatservice.backends.redis.presence import Presence, is_remote, lost_write
from chatservice.backends.redis.publisher import Publisher
from chatservice.backends.redis.receiver import Receiver
from chatservice.backends.redis.url import RedisAddress
from chatservice.chat import events
from chatservice.chat.errors import ChatError, NickInUse, NickLookalike, Unavailable
from chatservice.chat.hub import Hub
from chatservice.chat.model import Ban, Room, Session
from chatservice.chat.names import fold, skeleton
from chatservice.stores.base import SavedTopic

#: What every key and the channel start with.
PREFIX = "chatservice:"
#: Seconds within which a dead node's members are announced gone.
DEFAULT_LIVENESS = 30.0
#: Frames kept while Redis is away, published when it is back.
DEFAULT_REPLAY = 1000

Item = dict[str, Any]


class RedisBackend:
    """A :class:`~chatservice.backends.base.HubBackend` shared through Redis."""

    log = Logger()

    def __init__(
        self,
        address: RedisAddress,
        reactor: IReactorTime,
        call_soon: Callable[[Callable[[], None]], object],
        *,
        liveness: float = DEFAULT_LIVENESS,
        replay_limit: int = DEFAULT_REPLAY,
        prefix: str = PREFIX,
    ) -> None:
        self.address = address
        self.reactor = reactor
        self.prefix = prefix
        #: The turn's frame and its publishing; the subscription's frames;
        #: this node's members' hash.
        self.publisher = Publisher(self, call_soon, replay_limit)
        self.receiver = Receiver(self, call_soon)
        self.presence = Presence(self)
        self.link = RedisLink(
            reactor,
            address,
            prefix + "events",
            self.receiver.received,
            self._link_up,
            self._link_down,
        )
        self.liveness = Liveness(self, liveness)
        self._hub: Hub | None = None
        self.node = ""
        self._count = 0
        #: Every member's session id, this node's and the mirrored ones.
        self.sid_of: dict[Session, str] = {}
        self.members: dict[str, Session] = {}
        self._nicks: dict[str, Session] = {}
        self.lookalikes: dict[str, Session] = {}
        #: This node's members of each room, in Redis's order.
        self.audience: dict[str, dict[Session, None]] = {}
        self.bans_in_force: list[Ban] = []
        #: Releases that could not reach Redis, tried again when it is back.
        self.unreleased: list[tuple[list[str], str]] = []
        self._barrier: Callable[[], None] | None = None
        #: Redis commands sent, by name (``/stats`` and the benchmark).
        self.commands: dict[str, int] = {}
        #: Replies still awaited, and this node's frames published but not
        #: back yet: both 0 when all this node said has come back.
        self.waiting = 0
        self.in_flight = 0
        #: Room history kept in Redis (:mod:`.history`), with each frame's
        #: room messages appended by the script that publishes it.
        self.history: HistoryCap | None = None

    @property
    def hub(self) -> Hub:
        assert self._hub is not None, "RedisBackend.attach(hub) first"
        return self._hub

    def attach(self, hub: Hub) -> None:
        """Serve this hub (whose node id names this node)."""
        self._hub = hub
        self.node = hub.ids.node

    def key(self, *parts: str) -> str:
        """A Redis key: the prefix and the parts."""
        return self.prefix + ":".join(parts)

    def command(self, *args: object) -> Deferred[Any]:
        """A Redis command, counted."""
        name = str(args[0])
        self.commands[name] = self.commands.get(name, 0) + 1
        return self._awaited(self.link.command(*args))

    def evaluate(self, script: str, keys: list[str], args: list[str]) -> Deferred[Any]:
        """A Lua script, counted."""
        self.commands["EVALSHA"] = self.commands.get("EVALSHA", 0) + 1
        return self._awaited(self.link.evaluate(script, keys, args))

    def _awaited(self, reply: Deferred[Any]) -> Deferred[Any]:
        self.waiting += 1

        def answered(result: object) -> object:
            self.waiting -= 1
            return result

        return reply.addBoth(answered)

    @property
    def idle(self) -> bool:
        """Whether everything this node said has come back from Redis."""
        return (
            not self.publisher.pending
            and not self.receiver.pending
            and self.waiting == 0
            and self.in_flight == 0
        )

    # Start and stop

    def set_barrier(self, barrier: Callable[[], None]) -> None:
        self._barrier = barrier

    def start(self) -> Deferred[None]:
        self.hub  # noqa: B018 (attached, or say so now)
        self.liveness.start()
        self.link.start()
        return succeed(None)

    def stop(self) -> Deferred[None]:
        self.publisher.turn_ended()
        self.receiver.deliver_heard()
        self.liveness.stop()
        leaving: Deferred[Any] = (
            self.liveness.leave() if self.link.up else succeed(None)
        )
        leaving.addErrback(lambda _: None)
        return leaving.addCallback(lambda _: self.link.stop()).addCallback(
            lambda _: None
        )

    def health(self) -> str | None:
        """
        Why this node cannot carry the chat now (``/healthz``, the metrics'
        ``backend_up``), or ``None``: Redis is reachable.
        """
        if self.link.up:
            return None
        return f"Redis at {self.address.host}:{self.address.port} is unreachable"

    def _link_up(self) -> None:
        self.liveness.resync()

    def _link_down(self) -> None:
        self.liveness.link_lost()

    # Session ids

    def sid_for(self, session: Session) -> str:
        """This session's id (a new one for a session of this node)."""
        sid = self.sid_of.get(session)
        if sid is None:
            self._count += 1
            sid = f"{self.node}.{self._count}"
            self.sid_of[session] = sid
            self.members[sid] = session
        return sid

    def forget_sid(self, session: Session) -> None:
        sid = self.sid_of.pop(session, None)
        if sid is not None and self.members.get(sid) is session:
            del self.members[sid]

    def local_sessions(self) -> list[Session]:
        """This node's registered members."""
        return [s for s in self.sid_of if not is_remote(s) and s.nick is not None]

    # Nicknames

    @property
    def nicks(self) -> Mapping[str, Session]:
        return self._nicks

    def holder(self, key: str) -> Session | None:
        return self._nicks.get(key)

    def nick_keys(self, key: str, looks: str) -> list[str]:
        return [self.key("nick", key), self.key("looks", looks)]

    def claim_nick(
        self, session: Session, nick: str, key: str, looks: str
    ) -> Deferred[None]:
        # Refused here when this node knows already (no round trip).
        refusal = nick_refusal(self._nicks, self.lookalikes, session, nick, key, looks)
        if refusal is not None:
            return fail(refusal)
        if not self.liveness.usable:
            return fail(Unavailable())
        if self.liveness.syncing:
            # Claimed once the chat is read again (Liveness.when_synced).
            synced = self.liveness.when_synced()
            return synced.addCallback(
                lambda _: self.claim_nick(session, nick, key, looks)
            )
        sid = self.sid_for(session)
        claimed = self.evaluate(scripts.CLAIM, self.nick_keys(key, looks), [sid])

        def answered(reply: list[str]) -> None:
            kind, owner = reply[0], reply[1]
            if kind == "ok":
                self._nicks[key] = session
                self.lookalikes[looks] = session
                return
            if kind == "nick":
                raise NickInUse(nick)
            other = self.members.get(owner)
            raise NickLookalike(nick, other.nick if other and other.nick else looks)

        def refused(failure: Failure) -> Failure:
            if session.nick is None:
                self.forget_sid(session)
            if failure.check(ChatError):
                return failure
            self.log.failure("claiming a nickname", failure)
            return Failure(Unavailable())

        return claimed.addCallback(answered).addErrback(refused)

    def release_nick(
        self, session: Session, key: str | None, looks: str | None
    ) -> None:
        keys = []
        if key is not None and self._nicks.get(key) is session:
            del self._nicks[key]
            keys.append(self.key("nick", key))
        if looks is not None and self.lookalikes.get(looks) is session:
            del self.lookalikes[looks]
            keys.append(self.key("looks", looks))
        sid = self.sid_of.get(session)
        if keys and sid is not None:
            self.release(keys, sid)
        if session.nick is None:
            self.forget_sid(session)  # a claim given back before registering

    def release(self, keys: list[str], sid: str) -> None:
        """Free these nickname keys where ``sid`` still holds them."""
        if not self.link.up:
            self.unreleased.append((keys, sid))
            return

        def failed(failure: Failure) -> None:
            self.unreleased.append((keys, sid))

        self.evaluate(scripts.RELEASE, keys, [sid]).addErrback(failed)

    # Who is where

    def member_registered(self, session: Session) -> None:
        self.publisher.queue(self.presence.describe(session))
        self.presence.changed(session)

    def member_renamed(self, session: Session) -> None:
        self.publisher.queue({"k": "r", "s": self.sid_for(session), "n": session.nick})
        self.presence.changed(session)

    def member_joined(self, session: Session, room: Room) -> None:
        self.publisher.queue({"k": "j", "s": self.sid_for(session), "r": room.name})
        self.presence.changed(session)

    def member_left(self, session: Session, room: Room) -> None:
        self.publisher.queue({"k": "l", "s": self.sid_for(session), "r": room.key})
        self.presence.changed(session)

    def member_gone(self, session: Session) -> None:
        sid = self.sid_for(session)
        self.publisher.queue({"k": "g", "s": sid})
        self.presence.gone(session)
        if is_remote(session):
            # Removed from here (kicked, or its node is dead): its nickname
            # is freed and the mirror forgets it now; its own node hears it
            # from the frame.
            key = session.key or ""
            self.release_nick(session, key, skeleton(key))
            self.forget_sid(session)

    def limit_changed(self, limit: int) -> None:
        self.publisher.queue({"k": "lim", "v": limit})

    # Deliveries: collected into the turn's frame (self.publisher)

    def publish(self, room: Room, event: events.Event) -> None:
        if isinstance(event, events.TopicChanged):
            self._keep_topic(room, event)
        self.publisher.queue({"k": "p", "r": room.key, "e": codec.encode(event)})

    def say(self, room: Room, message: events.RoomMessage) -> None:
        self.publisher.say(room.key, codec.encode(message))

    def send(self, sessions: Collection[Session], event: events.Event) -> None:
        to: str | list[str] = (
            "*"
            if sessions is self.hub.sessions
            else [self.sid_for(session) for session in sessions]
        )
        self.publisher.queue({"k": "to", "s": to, "e": codec.encode(event)})

    def flush(self) -> None:
        """
        Deliver the room messages received and collected
        (:meth:`.Receiver.hear`); what is still on its way through Redis
        arrives after a reply the door sends now (``base``).
        """
        self.receiver.deliver_heard()

    def before_delivery(self) -> None:
        """What the hub's store needs before anyone is shown anything."""
        if self._barrier is not None:
            self._barrier()

    # Topics and bans, kept in Redis

    def _keep_topic(self, room: Room, event: events.TopicChanged) -> None:
        kept = SavedTopic(room.name, event.topic, event.nick, event.at)
        self.hub.topics[room.key] = kept
        if self.liveness.usable:
            self.command(
                "HSET",
                self.key("topics"),
                room.key,
                json.dumps(codec.topic_entry(kept)),
            ).addErrback(lost_write)

    def add_ban(self, ban: Ban) -> None:
        key = fold(ban.target)
        self.bans_in_force = [b for b in self.bans_in_force if fold(b.target) != key]
        self.bans_in_force.append(ban)
        entry = codec.ban_entry(ban)
        self.publisher.queue({"k": "ban", "b": entry})
        if self.liveness.usable:
            self.command("HSET", self.key("bans"), key, json.dumps(entry)).addErrback(
                lost_write
            )

    def remove_ban(self, ban: Ban) -> None:
        if ban in self.bans_in_force:
            self.bans_in_force.remove(ban)
        self.publisher.queue({"k": "unban", "b": codec.ban_entry(ban)})
        if self.liveness.usable:
            self.command("HDEL", self.key("bans"), fold(ban.target)).addErrback(
                lost_write
            )

    def bans(self, now: float) -> list[Ban]:
        self.bans_in_force = [
            b for b in self.bans_in_force if b.until is None or b.until > now
        ]
        return list(self.bans_in_force)
