"""
The hub: the rules of one chat, over its rooms, members, nicknames,
operators and bans.

It does no I/O and imports no reactor: the clock is a callable, and every
event goes through a :class:`~chatservice.backends.base.HubBackend` (in one
process, :class:`~chatservice.backends.local.LocalBackend`).  A door calls
:meth:`Hub.connect` with a :class:`~chatservice.chat.model.Member` (anything
that can take an event and be disconnected), then the hub's methods on the
:class:`~chatservice.chat.model.Session` it got back; they return what the
door shows, raise a typed :class:`~chatservice.chat.errors.ChatError` the
door renders its own way, and deliver :mod:`~chatservice.chat.events`
(each with an id and a time) to the members concerned.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection

from twisted.internet.defer import Deferred, fail, succeed
from twisted.python.failure import Failure

from chatservice.backends.base import HubBackend
from chatservice.chat import events
from chatservice.chat.administration import Administration
from chatservice.chat.errors import (
    Banned,
    ChatError,
    NickBanned,
    NickRequired,
    NoCurrentRoom,
    NoSuchNick,
    NoSuchRoom,
    NotInRoom,
    RoomLimitReached,
    ServerFull,
    TooManyRooms,
    TopicTooLong,
    UsageError,
)
from chatservice.chat.mirror import Mirror
from chatservice.chat.model import (
    Ban,
    ChatConfig,
    Member,
    Room,
    Session,
    Stats,
)
from chatservice.chat.names import check_nick, check_room, fold, skeleton
from chatservice.chat.text import visible
from chatservice.stores.base import (
    HistoryStore,
    Position,
    Saved,
    SavedTopic,
    UnknownMessageError,
)
from chatservice.stores.gate import DeliveryGate


class Hub(Administration, Mirror):
    """
    All rules of one chat: connections, nicknames, rooms and messages
    here; operators, kicks, bans and limits in :class:`Administration`; the
    members of other nodes in :class:`Mirror`.
    """

    def __init__(
        self,
        config: ChatConfig | None = None,
        clock: Callable[[], float] = time.time,
        *,
        backend: HubBackend | None = None,
        store: HistoryStore | None = None,
        node: str | None = None,
    ) -> None:
        if backend is None:
            from chatservice.backends.local import LocalBackend

            backend = LocalBackend()
        self.config = config if config is not None else ChatConfig()
        self.clock = clock
        self.backend = backend
        #: Where room messages, topics and bans are kept, if anywhere.
        self.store = store
        #: Topics kept by the store, by folded room name: a room that is
        #: created again gets its topic back.
        self.topics: dict[str, SavedTopic] = {}
        if store is not None:
            # What a member is shown is stored first.
            backend.set_barrier(store.commit)
        self.ids = events.EventIds(node)
        self.max_clients = self.config.max_clients
        self.sessions: dict[Session, None] = {}
        #: Those of :attr:`sessions` connected to other nodes (a shared
        #: backend's mirror): not counted in :attr:`registered`.
        self.remote: dict[Session, None] = {}
        #: Sessions with a nickname: what ``max_clients`` limits.
        self.registered = 0
        self.rooms: dict[str, Room] = {}
        self.stats = Stats(started_at=clock())
        # A backend that can say how long its deliveries take (optional:
        # ``measure_latency(histogram, clock)``) observes into the stats.
        measure = getattr(backend, "measure_latency", None)
        if measure is not None:
            measure(self.stats.delivery_latency, clock)
        self.default_room = check_room(self.config.default_room)

    @property
    def gate(self) -> DeliveryGate | None:
        """Where writes to members wait for the store's commits, if anywhere."""
        return self.store.gate if self.store is not None else None

    @property
    def nicks(self) -> dict[str, Session]:
        """Every registered member by folded nickname (a copy)."""
        return dict(self.backend.nicks)

    def _stamp(self) -> tuple[str, float]:
        return self.ids.next(), self.clock()

    def restore(self, saved: Saved) -> None:
        """
        Take back what the store kept across a restart: topics (rooms
        get theirs when they are created again) and bans still in force.
        """
        now = self.clock()
        for topic in saved.topics:
            key = fold(topic.room)
            self.topics[key] = topic
            room = self.rooms.get(key)
            if room is not None and not room.topic:
                room.topic = topic.topic
        for ban in saved.bans:
            if ban.until is None or ban.until > now:
                self.backend.add_ban(ban)

    # Connections

    def connect(self, member: Member, address: str | None = None) -> Session:
        """
        Take a new connection, or raise :class:`~chatservice.chat.errors.Banned`
        or, when every registered place is taken,
        :class:`~chatservice.chat.errors.ServerFull`.  Connections still
        choosing a nickname are limited by their doors (the strangers'
        budget, ``chatservice.conn``); ``max_clients`` counts registered
        members, and is checked again when one registers.
        """
        self.check_address(address)
        if self._full():
            self.stats.refused_full += 1
            raise ServerFull(self.max_clients)
        session = Session(member, address, self.clock())
        self.sessions[session] = None
        self.stats.connections_total += 1
        self.stats.connections_peak = max(
            self.stats.connections_peak, len(self.sessions)
        )
        return session

    def check_address(self, address: str | None) -> None:
        """
        Raise :class:`~chatservice.chat.errors.Banned` (counted as a refusal)
        if ``address`` is banned: what :meth:`connect` checks first, for a
        door to refuse a connection at accept, before it takes any place
        (the web door's HTTP connections, before any WebSocket).
        """
        ban = self._address_ban(address)
        if ban is not None:
            self.stats.refused_banned += 1
            raise Banned(ban.remaining(self.clock()), ban.reason)

    def disconnect(self, session: Session, reason: str = "") -> None:
        """Forget a connection that is gone; its rooms hear that it quit."""
        if session not in self.sessions:
            return
        self._announce_quit(session, reason)
        self._remove(session)

    def _announce_quit(self, session: Session, reason: str) -> None:
        """Those who share a room with a member hear that it quit."""
        if session.nick is not None:
            event_id, at = self._stamp()
            quit_event = events.Quit(session.nick, visible(reason), id=event_id, at=at)
            self._deliver(self._neighbours(session, presence=True), quit_event)

    def _full(self) -> bool:
        return bool(self.max_clients) and self.registered >= self.max_clients

    def _remove(self, session: Session) -> None:
        del self.sessions[session]
        if session.nick is not None and session not in self.remote:
            self.registered -= 1
        self.remote.pop(session, None)
        for room in session.rooms:
            self._leave(session, room)
        if session.key is not None:
            self.backend.member_gone(session)
            self.backend.release_nick(session, session.key, skeleton(session.key))
        session.rooms = ()
        session.current = None

    # Nicknames

    def set_nick(
        self, session: Session, wanted: str, *, join_default: bool = True
    ) -> Deferred[str]:
        """
        Give a session a nickname: registers it (and, unless
        ``join_default`` is false, joins the default room: IRC clients
        choose their own channels) the first time, renames it after that.
        Fires with the nickname, or fails with a
        :class:`~chatservice.chat.errors.ChatError`
        (``InvalidNick``, ``NickInUse``, ``NickLookalike``, ``NickBanned``).
        The claim goes through the backend: with several nodes it takes a
        round trip; in one process it has fired on return.
        """
        try:
            nick = check_nick(wanted)
        except ChatError:
            return fail()
        key = fold(nick)
        if key == nick:
            key = nick  # one string, not two equal ones, per member
        looks = skeleton(key)
        if looks == key:
            looks = key
        claimed = self.backend.claim_nick(session, nick, key, looks)
        return claimed.addCallback(
            lambda _: self._claimed(session, nick, key, looks, join_default)
        )

    def _claimed(
        self, session: Session, nick: str, key: str, looks: str, join_default: bool
    ) -> str:
        ban = self._nick_ban(key)
        if ban is not None:
            self._give_back(session, key, looks)
            raise NickBanned(nick, ban.remaining(self.clock()), ban.reason)
        if session not in self.sessions:
            # Gone while the claim was decided: give it back.
            self._give_back(session, key, looks)
            return nick
        old = session.nick
        if old is None and self._full():
            self.backend.release_nick(session, key, looks)
            self.stats.refused_full += 1
            raise ServerFull(self.max_clients)
        session.last_active = self.clock()
        if old == nick:
            return nick
        if session.key is not None:
            # The old nickname's keys, but for those the new one shares
            # (a rename to a look-alike of itself keeps its skeleton).
            old_key, old_looks = session.key, skeleton(session.key)
            self.backend.release_nick(
                session,
                None if old_key == key else old_key,
                None if old_looks == looks else old_looks,
            )
        session.nick, session.key = nick, key
        if old is None:
            self.registered += 1
            self.stats.members_peak = max(self.stats.members_peak, self.registered)
            self.backend.member_registered(session)
            if join_default:
                self.join(session, self.default_room)
        else:
            self.backend.member_renamed(session)
            event_id, at = self._stamp()
            self._deliver(
                self._neighbours(session, include_self=True),
                events.NickChanged(old, nick, id=event_id, at=at),
            )
        return nick

    def _give_back(self, session: Session, key: str, looks: str) -> None:
        """Release a claim, but for what the session's nickname still holds."""
        held_key = session.key
        held_looks = skeleton(held_key) if held_key is not None else None
        self.backend.release_nick(
            session,
            None if key == held_key else key,
            None if looks == held_looks else looks,
        )

    def find(self, nick: str) -> Session:
        """The session with this nickname, or :class:`NoSuchNick`."""
        session = self.backend.holder(fold(nick.strip()))
        if session is None or session.nick is None:
            raise NoSuchNick(nick.strip())
        return session

    # Rooms

    def join(self, session: Session, name: str) -> Room:
        """
        Join a room (created on first join) and make it the current one; a
        room already joined just becomes current.
        """
        nick = self._require_nick(session)
        shown = check_room(name)
        key = fold(shown)
        room = session.joined(key)
        if room is not None:
            session.current = room
            return room
        if len(session.rooms) >= self.config.max_rooms_per_member:
            raise TooManyRooms(len(session.rooms), self.config.max_rooms_per_member)
        room = self.rooms.get(key)
        if room is None:
            if len(self.rooms) >= self.config.max_rooms:
                raise RoomLimitReached(len(self.rooms))
            room = self.rooms[key] = Room(shown, self.clock())
            kept = self.topics.get(key)
            if kept is not None:
                room.topic = kept.topic
        self.backend.flush()  # what was said before is not for the newcomer
        room.members[session] = None
        session.rooms = (*session.rooms, room)
        session.current = room
        self.backend.member_joined(session, room)
        event_id, at = self._stamp()
        joined = events.Joined(room.name, nick, id=event_id, at=at)
        if self._quiet(room):
            self._deliver([session], joined)
        else:
            self._publish(room, joined)
        return room

    def part(self, session: Session, name: str | None = None, reason: str = "") -> Room:
        """Leave a room (the current one by default)."""
        nick = self._require_nick(session)
        room = self._joined(session, name)
        event_id, at = self._stamp()
        parted = events.Parted(room.name, nick, visible(reason), id=event_id, at=at)
        if self._quiet(room):
            self._deliver([session], parted)
        else:
            self._publish(room, parted)
        self._leave(session, room)
        self.backend.member_left(session, room)
        return room

    def _quiet(self, room: Room) -> bool:
        """Whether a room is too big to announce who comes and goes."""
        size = self.config.quiet_room_size
        return bool(size) and len(room.members) > size

    def _leave(self, session: Session, room: Room) -> None:
        self.backend.flush()
        room.members.pop(session, None)
        session.rooms = tuple(r for r in session.rooms if r is not room)
        if session.current is room:
            session.current = session.rooms[-1] if session.rooms else None
        if not room.members and room.key != fold(self.default_room):
            self.rooms.pop(room.key, None)

    def room(self, name: str) -> Room:
        """An existing room, or :class:`NoSuchRoom`."""
        room = self.rooms.get(fold(check_room(name)))
        if room is None:
            raise NoSuchRoom(check_room(name))
        return room

    def who(self, session: Session, name: str | None = None) -> Room:
        """The room whose members to list: the named one, or the current one."""
        if name:
            return self.room(name)
        return self._current(session)

    def all_rooms(self) -> list[Room]:
        """Every room, by name."""
        return sorted(self.rooms.values(), key=lambda room: room.key)

    def set_topic(self, session: Session, topic: str, name: str | None = None) -> Room:
        """Set the topic of a room the member is in (any member may)."""
        nick = self._require_nick(session)
        room = self._joined(session, name)
        topic = topic.strip()
        if len(topic) > self.config.max_topic_length:
            raise TopicTooLong(self.config.max_topic_length)
        room.topic = topic = visible(topic)
        event_id, at = self._stamp()
        if self.store is not None:
            kept = self.topics[room.key] = SavedTopic(room.name, topic, nick, at)
            self.store.set_topic(kept)
        self._publish(
            room, events.TopicChanged(room.name, nick, topic, id=event_id, at=at)
        )
        return room

    # Messages

    def say(
        self,
        session: Session,
        text: str,
        *,
        action: bool = False,
        notice: bool = False,
        room_name: str | None = None,
    ) -> Room:
        """
        Say a line to the current room (or to ``room_name``, one the member
        is in); every member hears it, sender too.  ``action``: said with
        ``/me``; ``notice``: as a notice; not both.
        """
        nick = self._require_nick(session)
        if action and notice:
            raise UsageError("a line is an action or a notice, not both")
        if room_name is None:
            room = self._current(session)
        else:
            room = self._joined(session, room_name)
        now = self.clock()
        session.last_active = now
        message = events.RoomMessage(
            room.name,
            nick,
            visible(text),
            action,
            notice,
            id=self.ids.next(),
            at=now,
            door=getattr(session.member, "door_name", ""),
        )
        self.stats.room_messages += 1
        self.stats.deliveries += len(room.members)
        if self.store is not None:
            self.store.append(message)
        self.backend.say(room, message)
        return room

    def history(self, name: str, count: int) -> Deferred[list[events.RoomMessage]]:
        """
        The last ``count`` messages of a room, oldest first (none: no
        store).  What the backend collected is delivered first, so that a
        member who said something and asks for history in one read sees
        its line live before the history that holds it.
        """
        if self.store is None:
            return succeed([])
        key = fold(check_room(name))
        self.flush()
        return self.store.recent(key, count)

    def history_before(
        self, name: str, message_id: str, count: int
    ) -> Deferred[list[events.RoomMessage]]:
        """
        The ``count`` messages of a room said before ``message_id``, oldest
        first: none when that message is not kept (pruned, or never was).
        """
        if count <= 0:
            return succeed([])

        def unknown(failure: Failure) -> list[events.RoomMessage]:
            failure.trap(UnknownMessageError)
            return []

        page = self.history_page(name, count, before=Position(id=message_id))
        return page.addErrback(unknown)

    def history_page(
        self,
        name: str,
        count: int,
        *,
        after: Position | None = None,
        before: Position | None = None,
        latest: bool = True,
    ) -> Deferred[list[events.RoomMessage]]:
        """
        A page of a room's history (:meth:`HistoryStore.page`; none: no
        store), after what the backend collected is delivered (as
        :meth:`history`).  Rooms are public: anyone may read any room's
        history.
        """
        if self.store is None:
            return succeed([])
        key = fold(check_room(name))
        self.flush()
        return self.store.page(key, count, after=after, before=before, latest=latest)

    def flush(self) -> None:
        """Deliver the room messages the backend collected so far."""
        self.backend.flush()

    def whisper(
        self, session: Session, nick: str, text: str, *, notice: bool = False
    ) -> Session:
        """
        Send a private message (``notice``: as a notice); only the
        recipient (and the sender) see it.
        """
        sender = self._require_nick(session)
        target = self.find(nick)
        assert target.nick is not None
        now = self.clock()
        session.last_active = now
        event = events.PrivateMessage(
            sender,
            target.nick,
            visible(text),
            notice,
            id=self.ids.next(),
            at=now,
            door=getattr(session.member, "door_name", ""),
        )
        self.stats.private_messages += 1
        if self.store is not None:
            self.store.append_private(event)
        self._deliver([target] if target is session else [target, session], event)
        return target

    # Helpers

    def _publish(self, room: Room, event: events.Event) -> None:
        self.backend.publish(room, event)
        self.stats.deliveries += len(room.members)

    def _deliver(self, sessions: Collection[Session], event: events.Event) -> None:
        self.backend.send(sessions, event)
        self.stats.deliveries += len(sessions)

    def _require_nick(self, session: Session) -> str:
        if session.nick is None:
            raise NickRequired()
        return session.nick

    def _current(self, session: Session) -> Room:
        if session.current is None:
            raise NoCurrentRoom()
        return session.current

    def _joined(self, session: Session, name: str | None) -> Room:
        if not name:
            return self._current(session)
        room = session.joined(fold(check_room(name)))
        if room is None:
            raise NotInRoom(check_room(name))
        return room

    def _neighbours(
        self, session: Session, *, include_self: bool = False, presence: bool = False
    ) -> list[Session]:
        """
        Everyone who shares a room with a session, once each; for news of
        presence (a quit), not those of quiet rooms only.
        """
        seen: dict[Session, None] = {session: None} if include_self else {}
        for room in session.rooms:
            if not (presence and self._quiet(room)):
                seen.update(room.members)
        if not include_self:
            seen.pop(session, None)
        return list(seen)

    def _address_ban(self, address: str | None) -> Ban | None:
        if address is None:
            return None
        return next((b for b in self.bans() if b.matches_address(address)), None)

    def _nick_ban(self, key: str) -> Ban | None:
        return next(
            (b for b in self.bans() if b.network is None and fold(b.target) == key),
            None,
        )


def failure_of(error: ChatError) -> Failure:
    """A :class:`Failure` of a chat error, for Deferred-returning calls."""
    return Failure(error)
