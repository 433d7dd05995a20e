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
"""

from __future__ import annotations

import json
from collections import OrderedDict, deque
from collections.abc import Callable, Collection, Mapping
from typing import Any

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from chatservice.backends.base import nick_refusal, one_event
from chatservice.backends.redis import codec, scripts
from chatservice.backends.redis.history import HistoryCap, keep_arguments
from chatservice.backends.redis.link import RedisLink, is_refusal
from chatservice.backends.redis.liveness import Liveness
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
#: Event ids remembered to deliver none twice.
_SEEN = 10_000

Item = dict[str, Any]


class RemoteMember:
    """A member connected to another node, as this node's hub holds it."""

    door_name = "remote"

    def __init__(self, backend: RedisBackend, sid: str) -> None:
        self.backend = backend
        self.sid = sid

    def deliver(self, event: events.Event) -> None:
        """Nothing: its own node delivers to it, from the same frames."""

    def disconnect(self, reason: str) -> None:
        """Ask its node to close it (an operator here kicked or banned it)."""
        self.backend.queue({"k": "drop", "s": self.sid, "w": reason})


def is_remote(session: Session) -> bool:
    """Whether a session is a member of another node."""
    return isinstance(session.member, RemoteMember)


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
        self._call_soon = call_soon
        self.link = RedisLink(
            reactor,
            address,
            prefix + "events",
            self._received,
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
        self._frame: list[Item] = []
        self._turn_asked = False
        #: Members whose entry in this node's hash changed this turn, and
        #: those gone.
        self._changed: dict[Session, None] = {}
        self._gone: list[str] = []
        self._seen: OrderedDict[str, None] = OrderedDict()
        #: Frames said while Redis was away, to publish when it is back.
        self.replay: deque[str] = deque(maxlen=replay_limit)
        self.replay_dropped = 0
        #: Releases that could not reach Redis, tried again when it is back.
        self.unreleased: list[tuple[list[str], str]] = []
        #: Frames received while a snapshot is read (``None``: none is).
        self.held: list[dict[str, Any]] | None = None
        self._barrier: Callable[[], None] | None = None
        #: Redis commands sent, by name (``/stats`` and the benchmark).
        self.commands: dict[str, int] = {}
        #: Replies still awaited, and this node's frames published but not
        #: back yet: both 0 when all this node said has come back.
        self.waiting = 0
        self.in_flight = 0
        #: Room messages received this turn for one room, not delivered yet.
        self._heard_in: str | None = None
        self._heard: list[events.RoomMessage] = []
        self._heard_asked = False
        #: Room history kept in Redis (:mod:`.history`), with each frame's
        #: room messages appended by the script that publishes it.
        self.history: HistoryCap | None = None
        #: Turns whose messages Redis refused to keep (published all the same).
        self.history_refused = 0
        self._said_refused = False

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
            not self._frame
            and not self._heard
            and self.waiting == 0
            and self.in_flight == 0
            and self.held is None
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
        self._turn_ended()
        self.deliver_heard()
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
        self.queue(self.describe(session))
        self._changed[session] = None

    def describe(self, session: Session) -> Item:
        """The item that makes a member of this node known to the others."""
        return {
            "k": "m",
            "s": self.sid_for(session),
            "n": session.nick,
            "a": session.address,
            "c": session.connected_at,
        }

    def member_renamed(self, session: Session) -> None:
        self.queue({"k": "r", "s": self.sid_for(session), "n": session.nick})
        self._changed[session] = None

    def member_joined(self, session: Session, room: Room) -> None:
        self.queue({"k": "j", "s": self.sid_for(session), "r": room.name})
        self._changed[session] = None

    def member_left(self, session: Session, room: Room) -> None:
        self.queue({"k": "l", "s": self.sid_for(session), "r": room.key})
        self._changed[session] = None

    def member_gone(self, session: Session) -> None:
        sid = self.sid_for(session)
        self.queue({"k": "g", "s": sid})
        self._changed.pop(session, None)
        if is_remote(session):
            # Removed from here (kicked, or its node is dead): its nickname
            # is freed and the mirror forgets it now; its own node hears it
            # from the frame.
            key = session.key or ""
            self.release_nick(session, key, skeleton(key))
            self.forget_sid(session)
        else:
            self._gone.append(sid)

    def limit_changed(self, limit: int) -> None:
        self.queue({"k": "lim", "v": limit})

    # Deliveries: collected into the turn's frame

    def queue(self, item: Item) -> None:
        """Add an item to this turn's frame."""
        self._frame.append(item)
        if not self._turn_asked:
            self._turn_asked = True
            self._call_soon(self._turn_ended)

    def publish(self, room: Room, event: events.Event) -> None:
        if isinstance(event, events.TopicChanged):
            self._keep_topic(room, event)
        self.queue({"k": "p", "r": room.key, "e": codec.encode(event)})

    def say(self, room: Room, message: events.RoomMessage) -> None:
        last = self._frame[-1] if self._frame else None
        if last is not None and last["k"] == "say" and last["r"] == room.key:
            last["m"].append(codec.encode(message))
            return
        self.queue({"k": "say", "r": room.key, "m": [codec.encode(message)]})

    def send(self, sessions: Collection[Session], event: events.Event) -> None:
        to: str | list[str] = (
            "*"
            if sessions is self.hub.sessions
            else [self.sid_for(session) for session in sessions]
        )
        self.queue({"k": "to", "s": to, "e": codec.encode(event)})

    def flush(self) -> None:
        """
        Deliver the room messages received and collected (:meth:`hear`);
        what is still on its way through Redis arrives after a reply the
        door sends now (``base``).
        """
        self.deliver_heard()

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
        for session in list(self.audience.get(key, ())):
            session.member.deliver(event)

    def _turn_ended(self) -> None:
        self._turn_asked = False
        if not self._frame:
            return
        items, self._frame = self._frame, []
        frame = {"n": self.node, "i": items}
        if self.liveness.usable:
            self.in_flight += 1
            self.send_frame(frame, json.dumps(frame)).addErrback(
                self._publish_failed, frame
            )
            self._write_presence()
            return
        self._apply_alone(frame)

    def send_frame_now(self) -> None:
        """Send this turn's frame now, ahead of a command that must follow it."""
        if self._frame:
            self._turn_ended()

    def send_frame(self, frame: dict[str, Any], text: str) -> Deferred[Any]:
        """
        Publish a frame (``text``, its JSON); with the history in Redis, its
        room messages are appended to their rooms' streams by the same
        script, before the publish: one command either way.
        """
        if self.history is not None:
            replayed = bool(frame.get("x"))
            keys, arguments = keep_arguments(self, self.history, frame["i"], replayed)
            if keys:
                arguments = [self.link.channel, text, *arguments]
                kept = self.evaluate(scripts.KEEP_AND_PUBLISH, keys, arguments)
                return kept.addCallbacks(
                    self._kept, self._keep_refused, errbackArgs=(text,)
                )
        return self.command("PUBLISH", self.link.channel, text)

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
        return self.command("PUBLISH", self.link.channel, text)

    def _publish_failed(self, failure: Failure, frame: dict[str, Any]) -> None:
        # Lost on the way: delivered here, and kept for the others.
        self.in_flight -= 1
        self._apply_alone(frame)

    def _apply_alone(self, frame: dict[str, Any]) -> None:
        """Redis is away: deliver here now, and keep it for the others."""
        self._changed.clear()
        self._gone.clear()
        from chatservice.backends.redis.frames import apply

        apply(self, frame)
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

    def _write_presence(self) -> None:
        members = self.key("members", self.node)
        if self._changed:
            fields: list[str] = []
            for session in self._changed:
                if session.nick is not None and not is_remote(session):
                    fields += [self.sid_for(session), json.dumps(self.entry(session))]
            if fields:
                self.command("HSET", members, *fields).addErrback(self._lost_write)
            self._changed.clear()
        if self._gone:
            self.command("HDEL", members, *self._gone).addErrback(self._lost_write)
            self._gone.clear()

    def _lost_write(self, failure: Failure) -> None:
        # Rewritten whole when Redis is back (Liveness.resync).
        failure.trap(Unavailable, Exception)

    def entry(self, session: Session) -> dict[str, Any]:
        """A member of this node as its hash keeps it."""
        key = session.key or ""
        return {
            "n": session.nick,
            "k": key,
            "l": skeleton(key),
            "a": session.address,
            "c": session.connected_at,
            "r": [room.name for room in session.rooms],
        }

    # Received

    def _received(self, message: bytes | str) -> None:
        try:
            frame = json.loads(message)
            if not isinstance(frame, dict) or not isinstance(frame.get("i"), list):
                raise ValueError("not a frame")
        except ValueError as error:
            self.log.warn("shared state: dropped a bad frame: {error}", error=error)
            return
        if frame.get("n") == self.node and not frame.get("x"):
            self.in_flight = max(0, self.in_flight - 1)
        if self.held is not None:
            self.held.append(frame)
            return
        from chatservice.backends.redis.frames import apply

        apply(self, frame)

    def before_delivery(self) -> None:
        """What the hub's store needs before anyone is shown anything."""
        if self._barrier is not None:
            self._barrier()

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

    # Topics and bans, kept in Redis

    def _keep_topic(self, room: Room, event: events.TopicChanged) -> None:
        kept = SavedTopic(room.name, event.topic, event.nick, event.at)
        self.hub.topics[room.key] = kept
        if self.liveness.usable:
            self.command(
                "HSET", self.key("topics"), room.key, json.dumps(topic_entry(kept))
            ).addErrback(self._lost_write)

    def add_ban(self, ban: Ban) -> None:
        key = fold(ban.target)
        self.bans_in_force = [b for b in self.bans_in_force if fold(b.target) != key]
        self.bans_in_force.append(ban)
        entry = ban_entry(ban)
        self.queue({"k": "ban", "b": entry})
        if self.liveness.usable:
            self.command("HSET", self.key("bans"), key, json.dumps(entry)).addErrback(
                self._lost_write
            )

    def remove_ban(self, ban: Ban) -> None:
        if ban in self.bans_in_force:
            self.bans_in_force.remove(ban)
        self.queue({"k": "unban", "b": ban_entry(ban)})
        if self.liveness.usable:
            self.command("HDEL", self.key("bans"), fold(ban.target)).addErrback(
                self._lost_write
            )

    def bans(self, now: float) -> list[Ban]:
        self.bans_in_force = [
            b for b in self.bans_in_force if b.until is None or b.until > now
        ]
        return list(self.bans_in_force)


def ban_entry(ban: Ban) -> dict[str, Any]:
    return {
        "t": ban.target,
        "u": ban.until,
        "w": ban.reason,
        "b": ban.by,
        "net": ban.network is not None,
    }


def ban_from(entry: dict[str, Any]) -> Ban:
    from chatservice.chat.model import parse_address_target

    target = str(entry["t"])
    until = entry.get("u")
    return Ban(
        target,
        None if until is None else float(until),
        str(entry.get("w", "")),
        str(entry.get("b", "")),
        parse_address_target(target) if entry.get("net") else None,
    )


def topic_entry(topic: SavedTopic) -> dict[str, Any]:
    return {"r": topic.room, "t": topic.topic, "b": topic.by, "a": topic.at}


def topic_from(entry: dict[str, Any]) -> SavedTopic:
    return SavedTopic(
        str(entry["r"]), str(entry["t"]), str(entry.get("b", "")), float(entry["a"])
    )
