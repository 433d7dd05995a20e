# ruff: noqa: RUF001, RUF002 - look-alike and full-width letters on purpose
"""
The chat's behaviour, stated once for every door.

:class:`ChatBehaviourTests` is a mixin.  A door's test case inherits it and
:class:`~twisted.trial.unittest.SynchronousTestCase`, and supplies
:meth:`~ChatBehaviourTests.makeDriver`: a :class:`DoorDriver` that speaks
that door's protocol.  The driver acts for a client (register, join, say,
kick...) and recognises what a client received ("a room message from X
with text T in room R", "an error of kind K"); the tests themselves know no
wire format.  The native door runs the suite in
``tests/test_native_behaviour.py``; the IRC and WebSocket doors are to run
it too.

Everything is in memory (:class:`chatservice.testing.Network`) on a
:class:`~twisted.internet.task.Clock`: a driver's actions reach the server
at once, within the current reactor turn, and :meth:`~ChatBehaviourTests.seen`
ends the turn and lets every client read what it was sent.  Several actions
before one :meth:`~ChatBehaviourTests.seen` happen in one turn, which is
where order is easiest to lose.

Kinds of errors are the core's typed errors
(:mod:`chatservice.chat.errors`): ``NickInUse``, ``NoSuchNick``,
``NotOperator``...  A test counts what a client saw (once, never, in this
order), so a notice sent twice or a message leaking out of its room fails
it as surely as a missing one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from chatservice.chat.errors import (
    ChatError,
    InvalidNick,
    NickInUse,
    NickLookalike,
    NoSuchNick,
    NotOperator,
)
from chatservice.conn.limits import Limits
from chatservice.testing import FakeAuthenticator, Network, turn_hub

ClientT = TypeVar("ClientT")
SeenT = TypeVar("SeenT")

#: Whether one thing a client saw is what a test looks for.
Recognised = Callable[[Any], bool]


class DoorDriver(Protocol[ClientT, SeenT]):
    """
    One door, as the behaviour suite drives it.  ``ClientT`` stands for one
    client of the door (whatever the driver needs to act for it); ``SeenT``
    is one thing a client received (a line, a message, a frame).

    Actions send at once, within the current reactor turn, and do not wait
    for an answer.  Rooms are named without a door's decoration (``games``,
    not ``#games``).
    """

    # Actions

    def connect(self) -> ClientT:
        """A new client, connected and not registered."""

    def register(self, client: ClientT, nick: str) -> None:
        """Ask for a nickname (the first one registers the client)."""

    def join(self, client: ClientT, room: str) -> None:
        """Join a room."""

    def part(self, client: ClientT, room: str, reason: str) -> None:
        """Leave a room, saying why."""

    def say(self, client: ClientT, room: str, text: str) -> None:
        """Say a line in a room the client is in."""

    def whisper(self, client: ClientT, nick: str, text: str) -> None:
        """Send a private message."""

    def notice(self, client: ClientT, room: str, text: str) -> None:
        """Send a notice to a room the client is in."""

    def private_notice(self, client: ClientT, nick: str, text: str) -> None:
        """Send a notice to a member."""

    def quit(self, client: ClientT, reason: str) -> None:
        """Leave the chat, saying why."""

    def oper(self, client: ClientT, account: str, password: str) -> None:
        """Log in as an operator."""

    def kick(self, client: ClientT, nick: str, reason: str) -> None:
        """Kick a member (an operator's power)."""

    def stop_reading(self, client: ClientT) -> None:
        """The client reads nothing more of what the server sends it."""

    # What a client saw

    def take(self, client: ClientT) -> list[SeenT]:
        """What the client has received since the last call, in order."""

    def disconnected(self, client: ClientT) -> bool:
        """Whether the client's connection is gone."""

    # Recognisers: whether one thing a client saw says...

    def is_registered(self, seen: SeenT, nick: str) -> bool:
        """... that the client is registered as ``nick``."""

    def is_operator(self, seen: SeenT, account: str) -> bool:
        """... that the client is an operator, logged in as ``account``."""

    def is_message(self, seen: SeenT, room: str, nick: str, text: str) -> bool:
        """... that ``nick`` said ``text`` in ``room``."""

    def is_private(self, seen: SeenT, sender: str, recipient: str, text: str) -> bool:
        """
        ... that ``sender`` sent ``text`` privately to ``recipient`` (the
        recipient's message or the sender's copy).
        """

    def is_notice(self, seen: SeenT, room: str, nick: str, text: str) -> bool:
        """... that ``nick`` sent the notice ``text`` to ``room``."""

    def is_private_notice(
        self, seen: SeenT, sender: str, recipient: str, text: str
    ) -> bool:
        """
        ... that ``sender`` sent the notice ``text`` to ``recipient`` (the
        recipient's notice or the sender's copy).
        """

    def is_joined(self, seen: SeenT, room: str, nick: str) -> bool:
        """... that ``nick`` joined ``room``."""

    def is_parted(self, seen: SeenT, room: str, nick: str, reason: str) -> bool:
        """... that ``nick`` left ``room`` for ``reason``."""

    def is_quit(self, seen: SeenT, nick: str, reason: str | None = None) -> bool:
        """... that ``nick`` left the chat (for ``reason``; ``None``: any)."""

    def is_kicked(self, seen: SeenT, nick: str, by: str, reason: str) -> bool:
        """... that the operator ``by`` kicked ``nick`` for ``reason``."""

    def is_error(self, seen: SeenT, kind: type[ChatError], **facts: object) -> bool:
        """
        ... that a request was refused with an error of ``kind``, with
        these facts (its fields: ``nick="alice"``) where given.
        """

    def is_farewell(self, seen: SeenT, reason: str) -> bool:
        """
        ... that the server is disconnecting the client, and why: the
        reason contains ``reason``.
        """


if TYPE_CHECKING:
    _TestCase = SynchronousTestCase
else:
    _TestCase = object


class ChatBehaviourTests(_TestCase):
    """
    The chat's behaviour, whatever the door.  Mix into a
    ``SynchronousTestCase`` with :meth:`makeDriver`.
    """

    #: Small enough for the tests to reach (flood control and the send
    #: queue are the connection policy every door shares).  Powers of two
    #: keep the clock's arithmetic exact.
    limits = Limits(
        flood_burst=10, flood_rate=4, flood_disconnect=5, max_send_queue=4096
    )
    #: What a server transport buffers for a client that stops reading.
    send_buffer = 4096
    #: Whether a door's reply comes after the room messages said before it.
    #: In one process it does; over Redis a room message goes to Redis and
    #: back while the reply does not wait (``docs/scaling.rst``): then both
    #: still arrive once, and the messages in order.
    replies_after_messages = True

    def setUp(self) -> None:
        super().setUp()
        self.clock = Clock()
        self.clock.advance(1000)
        self.hub = turn_hub(self.clock)
        self.network = Network(self.clock, self.send_buffer)
        self.authenticator = FakeAuthenticator()
        self.driver = self.makeDriver()
        self.lobby = self.hub.default_room
        self.everyone: list[Any] = []

    def makeDriver(self) -> DoorDriver[Any, Any]:
        """
        The door under test on :attr:`hub`, with :attr:`limits`, the clock,
        :attr:`authenticator` for operators, and connections on
        :attr:`network`.
        """
        raise NotImplementedError(f"{type(self).__name__} has no makeDriver")

    # Clients

    def connect(self) -> Any:
        """A new client, not registered."""
        client = self.driver.connect()
        self.everyone.append(client)
        return client

    def client(self, nick: str) -> Any:
        """A client registered as ``nick``; what everyone saw so far is dropped."""
        client = self.connect()
        self.driver.register(client, nick)
        self.assertOnce(self.seen(client), self.registered(nick))
        self.clear()
        return client

    def clients(self, *nicks: str) -> list[Any]:
        """A registered client for each nickname."""
        return [self.client(nick) for nick in nicks]

    def operator(self, nick: str) -> Any:
        """A registered client logged in as an operator."""
        client = self.client(nick)
        account = self.authenticator.account
        self.driver.oper(client, account, self.authenticator.password)
        self.assertOnce(self.seen(client), self.opered(account))
        return client

    def seen(self, client: Any) -> list[Any]:
        """
        End the reactor turn, let everything due now happen and every client
        read, and return what ``client`` received since last asked.
        """
        self.network.settle()
        return self.driver.take(client)

    def clear(self) -> None:
        """Forget what every client received so far."""
        self.network.settle()
        for client in self.everyone:
            self.driver.take(client)

    def gather(self, room: str, *members: Any) -> None:
        """Have ``members`` join ``room``; forget what everyone saw so far."""
        for member in members:
            self.driver.join(member, room)
        self.clear()

    def refill(self) -> None:
        """Let enough time pass for a full flood-control burst."""
        self.clock.advance(self.limits.flood_burst / self.limits.flood_rate)

    # What to look for

    def registered(self, nick: str) -> Recognised:
        return lambda seen: self.driver.is_registered(seen, nick)

    def opered(self, account: str) -> Recognised:
        return lambda seen: self.driver.is_operator(seen, account)

    def message(self, room: str, nick: str, text: str) -> Recognised:
        return lambda seen: self.driver.is_message(seen, room, nick, text)

    def private(self, sender: str, recipient: str, text: str) -> Recognised:
        return lambda seen: self.driver.is_private(seen, sender, recipient, text)

    def noticed(self, room: str, nick: str, text: str) -> Recognised:
        return lambda seen: self.driver.is_notice(seen, room, nick, text)

    def private_noticed(self, sender: str, recipient: str, text: str) -> Recognised:
        return lambda seen: self.driver.is_private_notice(seen, sender, recipient, text)

    def joined(self, room: str, nick: str) -> Recognised:
        return lambda seen: self.driver.is_joined(seen, room, nick)

    def parted(self, room: str, nick: str, reason: str) -> Recognised:
        return lambda seen: self.driver.is_parted(seen, room, nick, reason)

    def quit(self, nick: str, reason: str | None = None) -> Recognised:
        return lambda seen: self.driver.is_quit(seen, nick, reason)

    def kicked(self, nick: str, by: str, reason: str) -> Recognised:
        return lambda seen: self.driver.is_kicked(seen, nick, by, reason)

    def error(self, kind: type[ChatError], **facts: object) -> Recognised:
        return lambda seen: self.driver.is_error(seen, kind, **facts)

    def farewell(self, reason: str) -> Recognised:
        return lambda seen: self.driver.is_farewell(seen, reason)

    # Assertions

    def assertOnce(self, seen: list[Any], recognised: Recognised) -> None:
        """``seen`` holds exactly one thing that is ``recognised``."""
        found = [item for item in seen if recognised(item)]
        self.assertEqual(len(found), 1, f"not seen exactly once in {seen!r}")

    def assertNever(self, seen: list[Any], recognised: Recognised) -> None:
        """``seen`` holds nothing that is ``recognised``."""
        found = [item for item in seen if recognised(item)]
        self.assertEqual(found, [], f"seen, and should not be, in {seen!r}")

    def assertAudience(
        self, recognised: Recognised, once: Sequence[Any], never: Sequence[Any] = ()
    ) -> None:
        """
        Since last asked, each of ``once`` saw it exactly once, and none of
        ``never`` saw it.
        """
        for member in once:
            self.assertOnce(self.seen(member), recognised)
        for member in never:
            self.assertNever(self.seen(member), recognised)

    def assertInOrder(self, seen: list[Any], *recognised: Recognised) -> None:
        """Each is seen exactly once, in this order (other things may come between)."""
        positions = []
        for wanted in recognised:
            self.assertOnce(seen, wanted)
            positions.append(next(i for i, item in enumerate(seen) if wanted(item)))
        self.assertEqual(positions, sorted(positions), f"out of order in {seen!r}")

    def said(self, seen: list[Any], nick: str, texts: list[str]) -> list[str]:
        """Which of ``texts`` ``nick`` was seen saying in the default room."""
        return [
            text
            for text in texts
            if any(self.message(self.lobby, nick, text)(item) for item in seen)
        ]

    # Registration and nicknames

    def test_register(self) -> None:
        """
        A client that asks for a free nickname is registered under it and
        joins the default room: it is told both, once, and the members of
        the default room see it join, once.
        """
        bob = self.client("bob")
        alice = self.connect()
        self.driver.register(alice, "alice")
        seen = self.seen(alice)
        self.assertOnce(seen, self.registered("alice"))
        self.assertOnce(seen, self.joined(self.lobby, "alice"))
        self.assertOnce(self.seen(bob), self.joined(self.lobby, "alice"))
        self.assertFalse(self.driver.disconnected(alice))

    def test_nickInUse(self) -> None:
        """
        A nickname someone has is refused (``NickInUse``), also in another
        case (``ALICE``) or width (full-width ``ａｌｉｃｅ``): the same name
        once folded.  The holder keeps it, nobody sees a join, and the
        refused client may then choose a free nickname.
        """
        alice = self.client("alice")
        other = self.connect()
        self.seen(other)
        for wanted in ("alice", "ALICE", "ａｌｉｃｅ"):
            self.driver.register(other, wanted)
            seen = self.seen(other)
            self.assertOnce(seen, self.error(NickInUse, nick=wanted))
            self.assertNever(seen, self.registered(wanted))
        self.assertEqual(self.seen(alice), [])
        self.driver.register(other, "bob")
        self.assertOnce(self.seen(other), self.registered("bob"))
        self.driver.say(other, self.lobby, "hi")
        self.assertOnce(self.seen(alice), self.message(self.lobby, "bob", "hi"))

    def test_mixedScriptLookalikeRefused(self) -> None:
        """
        A nickname that spells a Latin name with a Cyrillic letter
        (``аlice`` with a Cyrillic ``а``, next to ``alice``) is refused: one
        script per nickname (``InvalidNick``).  Nobody has it afterwards, and
        ``alice`` sees nothing.
        """
        alice = self.client("alice")
        other = self.connect()
        self.driver.register(other, "аlice")
        seen = self.seen(other)
        self.assertOnce(seen, self.error(InvalidNick))
        self.assertNever(seen, self.registered("аlice"))
        self.assertEqual(self.seen(alice), [])
        bob = self.client("bob")
        self.driver.whisper(bob, "аlice", "are you alice?")
        self.assertOnce(self.seen(bob), self.error(NoSuchNick, nick="аlice"))

    def test_lookalikeRefused(self) -> None:
        """
        A nickname in one script that looks like one in use in another
        (Cyrillic ``саре`` next to Latin ``cape``; Latin ``pop`` next to
        Cyrillic ``рор``) is refused (``NickLookalike``, naming the nickname
        it looks like), whichever came first; so is Greek ``ορα`` next to
        Latin ``opa``, and full-width ``ｃｅｐａ`` next to Cyrillic ``сера``.
        """
        for held, wanted in (
            ("cape", "саре"),
            ("рор", "pop"),
            ("opa", "ορα"),
            ("сера", "ｃｅｐａ"),
        ):
            holder = self.client(held)
            other = self.connect()
            self.driver.register(other, wanted)
            seen = self.seen(other)
            self.assertOnce(seen, self.error(NickLookalike, nick=wanted, other=held))
            self.assertNever(seen, self.registered(wanted))
            self.assertEqual(self.seen(holder), [])

    def test_invisibleNickRefused(self) -> None:
        """
        A nickname that looks like ``alice`` but for an invisible suffix
        (combining grapheme joiner, variation selector, zero-width space),
        or that looks like nothing (a Hangul filler), is refused
        (``InvalidNick``): nobody holds it afterwards, ``alice`` sees
        nothing, and a private message to it reaches nobody.
        """
        alice = self.client("alice")
        other = self.connect()
        bob = self.client("bob")
        for wanted in ("alice\u034f", "alice\ufe00", "alice\u200b", "\u3164"):
            self.driver.register(other, wanted)
            seen = self.seen(other)
            self.assertOnce(seen, self.error(InvalidNick))
            self.assertNever(seen, self.registered(wanted))
            self.driver.whisper(bob, wanted, "who are you?")
            self.assertNever(
                self.seen(bob), self.private("bob", wanted, "who are you?")
            )
        self.assertEqual(self.seen(alice), [])

    def test_nickFreedOnQuit(self) -> None:
        """
        Once a member has quit, its nickname, and every look-alike of it,
        may be taken again.
        """
        for nick in ("cape", "cape", "саре"):
            member = self.client(nick)
            self.driver.quit(member, "bye")
            self.seen(member)
            self.assertTrue(self.driver.disconnected(member))

    # Rooms

    def test_join(self) -> None:
        """
        A member who joins a room is seen joining it by everyone in the
        room, itself included, once each; members not in the room see
        nothing of it.
        """
        alice, bob, carol = self.clients("alice", "bob", "carol")
        self.driver.join(alice, "games")
        self.assertAudience(self.joined("games", "alice"), [alice], [bob, carol])
        self.driver.join(bob, "games")
        self.assertAudience(self.joined("games", "bob"), [alice, bob], [carol])

    def test_say(self) -> None:
        """
        A line said in a room reaches every member of the room once, the
        sender included, and nobody outside it.
        """
        alice, bob, carol = self.clients("alice", "bob", "carol")
        self.gather("games", alice, bob)
        self.driver.say(alice, "games", "hello")
        hello = self.message("games", "alice", "hello")
        self.assertAudience(hello, [alice, bob], [carol])

    def test_private(self) -> None:
        """
        A private message reaches its recipient once and, as its copy, the
        sender once, and nobody else, not even members of the same rooms.
        """
        alice, bob, carol = self.clients("alice", "bob", "carol")
        self.driver.whisper(alice, "bob", "psst")
        self.assertAudience(self.private("alice", "bob", "psst"), [bob, alice], [carol])

    def test_notice(self) -> None:
        """
        A notice sent to a room reaches every member of the room once as a
        notice, the sender included, never as a plain message, and nobody
        outside the room.
        """
        alice, bob, carol = self.clients("alice", "bob", "carol")
        self.gather("games", alice, bob)
        self.driver.notice(alice, "games", "server restarts at noon")
        for member in (alice, bob):
            seen = self.seen(member)
            self.assertOnce(
                seen, self.noticed("games", "alice", "server restarts at noon")
            )
            self.assertNever(
                seen, self.message("games", "alice", "server restarts at noon")
            )
        self.assertEqual(self.seen(carol), [])

    def test_messageIsNoNotice(self) -> None:
        """A line said in a room is a message, never shown as a notice."""
        alice, bob = self.clients("alice", "bob")
        self.gather("games", alice, bob)
        self.driver.say(alice, "games", "plain")
        seen = self.seen(bob)
        self.assertOnce(seen, self.message("games", "alice", "plain"))
        self.assertNever(seen, self.noticed("games", "alice", "plain"))

    def test_privateNotice(self) -> None:
        """
        A notice sent to a member reaches it once and, as its copy, the
        sender once, both as a notice and never as a private message, and
        nobody else.
        """
        alice, bob, carol = self.clients("alice", "bob", "carol")
        self.driver.private_notice(alice, "bob", "your build is done")
        for member in (bob, alice):
            seen = self.seen(member)
            self.assertOnce(
                seen, self.private_noticed("alice", "bob", "your build is done")
            )
            self.assertNever(seen, self.private("alice", "bob", "your build is done"))
        self.assertEqual(self.seen(carol), [])

    def test_privateToNobody(self) -> None:
        """
        A private message to a nickname nobody has is refused
        (``NoSuchNick``, naming it) and reaches nobody.
        """
        alice, bob = self.clients("alice", "bob")
        self.driver.whisper(alice, "nobody", "hello?")
        self.assertOnce(self.seen(alice), self.error(NoSuchNick, nick="nobody"))
        self.assertEqual(self.seen(bob), [])

    def test_part(self) -> None:
        """
        A member who leaves a room is seen leaving by the room, itself
        included, once each, with its reason, and members elsewhere see
        nothing; it hears nothing more said there.
        """
        alice, bob, carol = self.clients("alice", "bob", "carol")
        self.gather("games", alice, bob)
        self.driver.part(bob, "games", "homework")
        left = self.parted("games", "bob", "homework")
        self.assertAudience(left, [alice, bob], [carol])
        self.driver.say(alice, "games", "still there?")
        still = self.message("games", "alice", "still there?")
        self.assertAudience(still, [alice], [bob, carol])

    def test_quit(self) -> None:
        """
        A member who quits is disconnected, and everyone who shared a room
        with it hears it quit, with its reason, once, even after sharing
        several rooms; members who shared none hear nothing.
        """
        alice, bob, carol = self.clients("alice", "bob", "carol")
        self.driver.part(carol, self.lobby, "")
        self.gather("games", alice, bob)
        self.driver.quit(bob, "see you")
        self.assertAudience(self.quit("bob", "see you"), [alice])
        self.assertAudience(self.quit("bob"), [], [carol])
        self.assertTrue(self.driver.disconnected(bob))

    # Operators

    def test_kick(self) -> None:
        """
        An operator's kick disconnects the target, which is told the reason;
        everyone in the target's rooms, the operator included, hears of the
        kick once, and nobody hears the target quit as well.
        """
        op = self.operator("op")
        bob, carol = self.clients("bob", "carol")
        self.driver.kick(op, "bob", "enough")
        self.assertOnce(self.seen(bob), self.farewell("enough"))
        self.assertTrue(self.driver.disconnected(bob))
        for member in (op, carol):
            seen = self.seen(member)
            self.assertOnce(seen, self.kicked("bob", "op", "enough"))
            self.assertNever(seen, self.quit("bob"))
        self.assertFalse(self.driver.disconnected(carol))

    def test_kickByNonOperator(self) -> None:
        """
        A kick from a member who is not an operator is refused
        (``NotOperator``); the target stays, and nobody hears of a kick.
        """
        alice, bob = self.clients("alice", "bob")
        self.driver.kick(alice, "bob", "enough")
        self.assertOnce(self.seen(alice), self.error(NotOperator))
        self.assertNever(self.seen(bob), self.kicked("bob", "alice", "enough"))
        self.assertFalse(self.driver.disconnected(bob))
        self.driver.say(bob, self.lobby, "still here")
        self.assertOnce(self.seen(alice), self.message(self.lobby, "bob", "still here"))

    def test_failedOperLogin(self) -> None:
        """
        A member whose operator login fails (a wrong password) gets no
        operator rights: its kick is refused.
        """
        alice, bob = self.clients("alice", "bob")
        self.driver.oper(alice, self.authenticator.account, "wrong")
        self.assertNever(self.seen(alice), self.opered(self.authenticator.account))
        self.driver.kick(alice, "bob", "enough")
        self.assertOnce(self.seen(alice), self.error(NotOperator))
        self.assertFalse(self.driver.disconnected(bob))

    # Flood control

    def test_floodSlowedNotLost(self) -> None:
        """
        A client that sends more lines than the flood burst at once has the
        burst handled at once and the rest one at a time, at the flood
        rate: slowed down, but none lost, in order, each once, and it stays
        connected.
        """
        flooder, watcher = self.clients("flooder", "watcher")
        self.refill()
        burst, extra = self.limits.flood_burst, 20
        texts = [f"m{index}" for index in range(burst + extra)]
        for text in texts:
            self.driver.say(flooder, self.lobby, text)
        seen = self.seen(watcher)
        self.assertEqual(self.said(seen, "flooder", texts), texts[:burst])
        for index in range(extra):
            self.clock.advance(1 / self.limits.flood_rate)
            seen += self.seen(watcher)
            self.assertEqual(
                self.said(seen, "flooder", texts), texts[: burst + index + 1]
            )
        in_order = [self.message(self.lobby, "flooder", text) for text in texts]
        self.assertInOrder(seen, *in_order)
        self.assertInOrder(self.seen(flooder), *in_order)
        self.assertFalse(self.driver.disconnected(flooder))

    def test_floodDisconnected(self) -> None:
        """
        A client that keeps flooding for longer than ``flood_disconnect``
        seconds is disconnected, and told it was for flooding; what it said
        until then reached the room in order, each line once, and the room
        hears it quit, once.
        """
        flooder, watcher = self.clients("flooder", "watcher")
        self.refill()
        texts = [f"m{index}" for index in range(100)]
        for text in texts:
            self.driver.say(flooder, self.lobby, text)
        seen, farewell = self.seen(watcher), self.seen(flooder)
        step, elapsed = 1 / self.limits.flood_rate, 0.0
        while not self.driver.disconnected(flooder) and elapsed < 10:
            self.clock.advance(step)
            elapsed += step
            seen += self.seen(watcher)
            farewell += self.seen(flooder)
        self.assertTrue(self.driver.disconnected(flooder))
        self.assertGreater(elapsed, self.limits.flood_disconnect)
        self.assertLessEqual(elapsed, self.limits.flood_disconnect + 1)
        self.assertOnce(farewell, self.farewell("flooding"))
        said = self.said(seen, "flooder", texts)
        self.assertEqual(said, texts[: len(said)])
        self.assertGreater(len(said), self.limits.flood_burst)
        self.assertLess(len(said), len(texts))
        self.assertInOrder(
            seen,
            *[self.message(self.lobby, "flooder", text) for text in said],
            self.quit("flooder"),
        )

    # The send queue

    def test_sendQueueLimit(self) -> None:
        """
        A member that reads nothing is kept while what waits for it is
        within its transport's buffer and the send queue, and is cut off
        past that; the others get every message, in order, once each, and
        hear it quit, once.
        """
        lazy, talker, watcher = self.clients("lazy", "talker", "watcher")
        self.driver.stop_reading(lazy)
        texts = []
        seen: dict[str, list[Any]] = {"talker": [], "watcher": []}
        for batch in range(5):
            self.refill()
            for index in range(self.limits.flood_burst - 2):
                text = f"{batch}.{index} " + "x" * 400
                texts.append(text)
                self.driver.say(talker, self.lobby, text)
            seen["talker"] += self.seen(talker)
            seen["watcher"] += self.seen(watcher)
            if batch == 0:  # about 3.3 KB: within the transport's buffer
                self.assertFalse(self.driver.disconnected(lazy))
        self.assertTrue(self.driver.disconnected(lazy))
        for nick, member in (("talker", talker), ("watcher", watcher)):
            self.assertInOrder(
                seen[nick], *[self.message(self.lobby, "talker", t) for t in texts]
            )
            self.assertOnce(seen[nick], self.quit("lazy"))
            self.assertFalse(self.driver.disconnected(member))

    # Order

    def test_messageBeforeReply(self) -> None:
        """
        A room message said just before a client's own command (in the same
        reactor turn) reaches that client before the answer to its command.
        """
        alice, bob = self.clients("alice", "bob")
        self.driver.say(alice, self.lobby, "first")
        self.driver.whisper(bob, "nobody", "hi")
        first = self.message(self.lobby, "alice", "first")
        refused = self.error(NoSuchNick, nick="nobody")
        seen = self.seen(bob)
        if self.replies_after_messages:
            self.assertInOrder(seen, first, refused)
        else:
            self.assertOnce(seen, first)
            self.assertOnce(seen, refused)

    def test_ownMessageBeforeOwnReply(self) -> None:
        """
        A client that says something, then sends a command, then says
        something else, sees its message, the answer and its second message
        in that order; the others see both messages, in order, and no answer.
        """
        alice, bob = self.clients("alice", "bob")
        self.driver.say(alice, self.lobby, "hi")
        self.driver.whisper(alice, "nobody", "hi")
        self.driver.say(alice, self.lobby, "bye")
        hi, bye = (self.message(self.lobby, "alice", t) for t in ("hi", "bye"))
        refused = self.error(NoSuchNick, nick="nobody")
        seen = self.seen(alice)
        if self.replies_after_messages:
            self.assertInOrder(seen, hi, refused, bye)
        else:
            self.assertInOrder(seen, hi, bye)
            self.assertOnce(seen, refused)
        seen = self.seen(bob)
        self.assertInOrder(seen, hi, bye)
        self.assertNever(seen, refused)

    def test_eventsInOrder(self) -> None:
        """
        Whatever their kind, events reach a member in the order they
        happened, even within one reactor turn: messages, a join, a private
        message, a part.  A newcomer sees nothing said before it joined, and
        a member who left nothing said after.
        """
        alice, bob, carol, dave = self.clients("alice", "bob", "carol", "dave")
        self.gather("games", alice, bob)
        self.driver.say(alice, "games", "one")
        self.driver.join(carol, "games")
        self.driver.say(alice, "games", "two")
        self.driver.whisper(dave, "bob", "psst")
        self.driver.part(carol, "games", "bored")
        self.driver.say(alice, "games", "three")
        one, two, three = (
            self.message("games", "alice", t) for t in ("one", "two", "three")
        )
        came = self.joined("games", "carol")
        went = self.parted("games", "carol", "bored")
        psst = self.private("dave", "bob", "psst")
        self.assertInOrder(self.seen(bob), one, came, two, psst, went, three)
        self.assertInOrder(self.seen(alice), one, came, two, went, three)
        seen = self.seen(carol)
        self.assertInOrder(seen, came, two, went)
        self.assertNever(seen, one)
        self.assertNever(seen, three)
