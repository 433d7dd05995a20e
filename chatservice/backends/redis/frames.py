"""
Applying a frame (:mod:`.backend`) as it comes back from Redis, in Redis's
order, on every node: what it changes in the mirror of the other nodes'
members, and what it delivers to this node's.

A frame of this node changes only the audience (which of its own members
hear a room): the hub changed everything else when it happened.  A frame
of another node changes the mirror: its members, their rooms, nicknames,
topics, bans and the client limit.  Either delivers its events to this
node's members concerned, each event once (by its id).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from twisted.logger import Logger

from chatservice.backends.redis import codec
from chatservice.backends.redis.presence import RemoteMember
from chatservice.chat import events
from chatservice.chat.model import Session
from chatservice.chat.names import fold, skeleton

if TYPE_CHECKING:
    from chatservice.backends.redis.backend import Item, RedisBackend

_log = Logger()


def apply(
    backend: RedisBackend, frame: dict[str, Any], *, deliveries_only: bool = False
) -> None:
    """
    Apply one frame; a bad item is logged and skipped.  ``deliveries_only``:
    only deliver its events (a replayed frame read again at a
    resynchronisation, whose changes the snapshot has already).
    """
    own = frame.get("n") == backend.node
    if own and frame.get("x"):
        return  # said while Redis was away: applied here then
    delivering = False
    for item in frame["i"]:
        if not isinstance(item, dict):
            continue
        kind = str(item.get("k"))
        if kind != "say":
            # Anything else, a change of who hears a room included, comes
            # after the room messages collected before it.
            backend.receiver.deliver_heard()
        try:
            if kind in _DELIVERIES:
                if not delivering:
                    delivering = True
                    backend.before_delivery()
                _DELIVERIES[kind](backend, item, own)
            elif deliveries_only:
                continue
            elif own:
                _OWN.get(kind, _nothing)(backend, item)
            else:
                _OTHERS.get(kind, _nothing)(backend, item)
        except (KeyError, TypeError, ValueError) as error:
            _log.warn(
                "shared state: dropped a bad {kind!r} item: {error!r}",
                kind=kind,
                error=error,
            )


def _nothing(backend: RedisBackend, item: Item) -> None:
    pass


def _deliver(sessions: Iterable[Session], event: events.Event) -> None:
    for session in list(sessions):
        session.member.deliver(event)


# Deliveries (every node)


def _publish(backend: RedisBackend, item: Item, own: bool) -> None:
    event = codec.decode(item["e"])
    if not backend.receiver.fresh(event.id):
        return
    if not own and isinstance(event, events.TopicChanged):
        room = backend.hub.rooms.get(item["r"])
        if room is not None:
            room.topic = event.topic
        from chatservice.stores.base import SavedTopic

        backend.hub.topics[item["r"]] = SavedTopic(
            event.room, event.topic, event.nick, event.at
        )
    _deliver(backend.audience.get(item["r"], {}), event)


def _say(backend: RedisBackend, item: Item, own: bool) -> None:
    said = [codec.decode(data) for data in item["m"]]
    messages = [
        m
        for m in said
        if isinstance(m, events.RoomMessage) and backend.receiver.fresh(m.id)
    ]
    if not messages:
        return
    if not own:
        # What /whois says of the sender's idle time.
        sender = backend.holder(fold(messages[-1].nick))
        if sender is not None:
            sender.last_active = messages[-1].at
        store = backend.hub.store
        if store is not None and backend.history is None:
            # Every node's history has the room's messages from every node
            # (the sender's node stored its own in Hub.say), stored before
            # they are shown.  (With the history in Redis, the sender's
            # node has put them there, before publishing them.)
            for message in messages:
                store.append(message)
            backend.before_delivery()
    backend.receiver.hear(str(item["r"]), messages)


def _send(backend: RedisBackend, item: Item, own: bool) -> None:
    event = codec.decode(item["e"])
    if not backend.receiver.fresh(event.id):
        return
    to = item["s"]
    if to == "*":
        recipients = [s for s in backend.hub.sessions if s not in backend.hub.remote]
    else:
        found = (backend.members.get(sid) for sid in to)
        recipients = [s for s in found if s is not None and s not in backend.hub.remote]
    _deliver(recipients, event)


_DELIVERIES = {"p": _publish, "say": _say, "to": _send}


# This node's own frames: who hears which room, in Redis's order.


def _own_joined(backend: RedisBackend, item: Item) -> None:
    session = backend.members.get(item["s"])
    if session is not None:
        backend.audience.setdefault(fold(item["r"]), {})[session] = None


def _own_left(backend: RedisBackend, item: Item) -> None:
    session = backend.members.get(item["s"])
    audience = backend.audience.get(item["r"])
    if session is not None and audience is not None:
        audience.pop(session, None)
        if not audience:
            del backend.audience[item["r"]]


def _own_gone(backend: RedisBackend, item: Item) -> None:
    session = backend.members.get(item["s"])
    if session is None or session in backend.hub.remote:
        return
    for key in [k for k, audience in backend.audience.items() if session in audience]:
        del backend.audience[key][session]
        if not backend.audience[key]:
            del backend.audience[key]
    backend.forget_sid(session)


_OWN = {"j": _own_joined, "l": _own_left, "g": _own_gone}


# Other nodes' frames: the mirror.


def _remote(backend: RedisBackend, sid: object) -> Session | None:
    session = backend.members.get(str(sid))
    return session if session is not None and session in backend.hub.remote else None


def add_member(backend: RedisBackend, item: Item) -> Session | None:
    """Mirror a member of another node (nothing if known already)."""
    sid = str(item["s"])
    if sid in backend.members:
        return None
    nick = str(item["n"])
    address = item.get("a")
    session = Session(
        RemoteMember(backend, sid),
        None if address is None else str(address),
        float(item["c"]),
    )
    session.nick, session.key = nick, fold(nick)
    backend.sid_of[session] = sid
    backend.members[sid] = session
    backend.hub.add_remote(session)
    _map_nick(backend, session)
    return session


def _map_nick(backend: RedisBackend, session: Session) -> None:
    assert session.key is not None
    backend._nicks[session.key] = session
    backend.lookalikes[skeleton(session.key)] = session


def _unmap_nick(backend: RedisBackend, session: Session) -> None:
    if session.key is None:
        return
    if backend._nicks.get(session.key) is session:
        del backend._nicks[session.key]
    looks = skeleton(session.key)
    if backend.lookalikes.get(looks) is session:
        del backend.lookalikes[looks]


def _renamed(backend: RedisBackend, item: Item) -> None:
    session = _remote(backend, item["s"])
    if session is None:
        return
    _unmap_nick(backend, session)
    session.nick = str(item["n"])
    session.key = fold(session.nick)
    _map_nick(backend, session)


def _joined(backend: RedisBackend, item: Item) -> None:
    session = _remote(backend, item["s"])
    if session is not None:
        backend.hub.place(session, str(item["r"]))


def _left(backend: RedisBackend, item: Item) -> None:
    session = _remote(backend, item["s"])
    if session is None:
        return
    room = session.joined(str(item["r"]))
    if room is not None:
        backend.hub.displace(session, room)


def forget_member(backend: RedisBackend, session: Session) -> None:
    """Forget a mirrored member of another node, without a word."""
    _unmap_nick(backend, session)
    backend.hub.forget(session)
    backend.forget_sid(session)


def _gone(backend: RedisBackend, item: Item) -> None:
    session = _remote(backend, item["s"])
    if session is not None:
        forget_member(backend, session)


def _drop(backend: RedisBackend, item: Item) -> None:
    session = backend.members.get(str(item["s"]))
    if session is not None and session not in backend.hub.remote:
        backend.hub.drop(session, str(item["w"]))


def _ban(backend: RedisBackend, item: Item) -> None:
    ban = codec.ban_from(item["b"])
    key = fold(ban.target)
    backend.bans_in_force = [
        b for b in backend.bans_in_force if fold(b.target) != key
    ] + [ban]


def _unban(backend: RedisBackend, item: Item) -> None:
    key = fold(str(item["b"]["t"]))
    backend.bans_in_force = [b for b in backend.bans_in_force if fold(b.target) != key]


def _limit(backend: RedisBackend, item: Item) -> None:
    limit = int(item["v"])
    if limit >= 0:
        backend.hub.max_clients = limit


_OTHERS = {
    "m": add_member,
    "r": _renamed,
    "j": _joined,
    "l": _left,
    "g": _gone,
    "drop": _drop,
    "ban": _ban,
    "unban": _unban,
    "lim": _limit,
}
