"""
History through the native door: replay on join (its line format, its
place in the transcript, the boundary with live messages, a property test
with a store that answers later), ``/history``, and topics and bans
restored at start-up.
"""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from chatservice.backends.local import LocalBackend
from chatservice.chat import events
from chatservice.chat.hub import Hub
from chatservice.chat.model import Ban
from chatservice.conn.turns import end_of_turn
from chatservice.doors.native.protocol import ChatFactory, ChatSettings
from chatservice.stores.base import HistoryStore, Saved, SavedTopic
from chatservice.stores.memory import MemoryHistoryStore
from chatservice.testing import Connection, LineClient, Network

#: When the tests' chat starts: 2023-11-14 22:13:20 UTC.
START = 1_700_000_000.0
HISTORY_LINE = re.compile(r"#(\S+) \[([^]]+)\] <([^>]+)> (.*)")
LIVE_LINE = re.compile(r"#(\S+) <([^>]+)> (.*)")


def assert_replay_then_live(
    case: SynchronousTestCase, lines: list[str], room: str, said: list[str]
) -> None:
    """
    What a member saw of ``room`` is every message ``said``, once each, in
    order: the replayed ones (history lines) first, then the live ones.
    """
    kinds, texts = [], []
    for line in lines:
        history = HISTORY_LINE.fullmatch(line)
        live = LIVE_LINE.fullmatch(line)
        if history and history.group(1) == room:
            kinds.append("history")
            texts.append(history.group(4))
        elif live and live.group(1) == room:
            kinds.append("live")
            texts.append(live.group(3))
    case.assertEqual(texts, said)
    case.assertEqual(kinds, sorted(kinds))  # every "history" first


def boundary_steps(late: str) -> st.SearchStrategy[list[tuple[str, int]]]:
    """
    Steps of a boundary property test: one of three speakers says
    something, one of four joiners joins, ``late`` (the store's or the
    writer's late answer), or the turn ends.
    """
    return st.lists(
        st.one_of(
            st.tuples(st.just("say"), st.integers(0, 2)),
            st.tuples(st.just("join"), st.integers(0, 3)),
            st.tuples(st.just(late), st.just(0)),
            st.tuples(st.just("turn"), st.just(0)),
        ),
        max_size=40,
    )


class LaterStore(MemoryHistoryStore):
    """
    A memory store whose reads are answered when the test says (a store
    across a network), with what it held when asked.
    """

    def __init__(self) -> None:
        super().__init__(10_000)
        self.waiting: list[tuple[Deferred[list[events.RoomMessage]], object]] = []

    def recent(self, room: str, count: int) -> Deferred[list[events.RoomMessage]]:
        answer = super().recent(room, count)
        later: Deferred[list[events.RoomMessage]] = Deferred()
        self.waiting.append((later, answer))
        return later

    def answer_one(self) -> None:
        """Answer the oldest read still waiting."""
        if self.waiting:
            later, answer = self.waiting.pop(0)
            assert isinstance(answer, Deferred)
            answer.chainDeferred(later)


class Chat:
    """A chat on a fake clock with a store, and native clients in memory."""

    def __init__(self, store: HistoryStore | None, replay: int = 50) -> None:
        self.clock = Clock()
        self.clock.advance(START)
        backend = LocalBackend(call_soon=end_of_turn(self.clock).soon)
        self.hub = Hub(clock=self.clock.seconds, backend=backend, store=store)
        self.network = Network(self.clock)
        self.factory = ChatFactory(
            self.hub, clock=self.clock, settings=ChatSettings(replay=replay)
        )

    def client(self, nick: str) -> Connection[LineClient]:
        """A client registered as ``nick``, what it saw so far dropped."""
        connection = self.network.connect(self.factory, LineClient())
        self.send(connection, nick)
        self.lines(connection)
        return connection

    def send(self, connection: Connection[LineClient], *lines: str) -> None:
        """Send lines, read by the server at once (within this turn)."""
        for line in lines:
            connection.client.sendLine(line.encode("utf-8"))
        connection.push()

    def lines(self, connection: Connection[LineClient]) -> list[str]:
        """End the turn; what the client received since last asked."""
        self.network.settle()
        return connection.client.take()


class ReplayTests(SynchronousTestCase):
    """A member who joins a room sees what was said there before."""

    def setUp(self) -> None:
        self.chat = Chat(MemoryHistoryStore())
        self.alice = self.chat.client("alice")

    def test_replayOnRegistration(self) -> None:
        """
        Registering joins the default room and replays it: after the join
        notice and the welcome, in order, marked with the original time
        (UTC), then what is said live.
        """
        chat = self.chat
        chat.send(self.alice, "hello", "/me waves")
        chat.clock.advance(90)
        bob = chat.network.connect(chat.factory, LineClient())
        chat.send(bob, "bob")
        chat.send(self.alice, "live")
        self.assertEqual(
            chat.lines(bob)[1:],
            [
                "-!- bob has joined #lobby",
                "--- you are bob; you are in #lobby",
                "#lobby [2023-11-14 22:13:20] <alice> hello",
                "#lobby [2023-11-14 22:13:20] * alice waves",
                "#lobby <alice> live",
            ],
        )

    def test_topicOnRegistration(self) -> None:
        """
        Registering into the default room shows its topic, as ``/join``
        does, between the welcome and the replay (a topic kept across a
        restart was shown to nobody who registered).
        """
        chat = self.chat
        chat.send(self.alice, "/topic rules apply", "hello")
        bob = chat.network.connect(chat.factory, LineClient())
        chat.send(bob, "bob")
        self.assertEqual(
            chat.lines(bob)[1:],
            [
                "-!- bob has joined #lobby",
                "--- you are bob; you are in #lobby",
                "--- topic of #lobby: rules apply",
                "#lobby [2023-11-14 22:13:20] <alice> hello",
            ],
        )

    def test_replayOnJoinAfterTopic(self) -> None:
        """``/join`` of a new room replays it after the join notice and topic."""
        chat = self.chat
        chat.send(self.alice, "/join games", "/topic chess", "e4")
        bob = chat.client("bob")
        chat.send(bob, "/join games")
        self.assertEqual(
            chat.lines(bob),
            [
                "-!- bob has joined #games",
                "--- topic of #games: chess",
                "#games [2023-11-14 22:13:20] <alice> e4",
            ],
        )
        chat.send(bob, "/join lobby", "/join games")
        self.assertEqual(
            chat.lines(bob),
            [
                "--- now talking in #lobby",
                "--- now talking in #games",
                "--- topic of #games: chess",
            ],
            "switching to a room one is in replays nothing",
        )

    def test_replayCount(self) -> None:
        """Only the last ``replay`` messages are replayed; 0 turns it off."""
        for replay, expected in ((2, ["m3", "m4"]), (0, [])):
            chat = Chat(MemoryHistoryStore(), replay=replay)
            alice = chat.client("alice")
            chat.send(alice, *(f"m{n}" for n in range(5)))
            bob = chat.network.connect(chat.factory, LineClient())
            chat.send(bob, "bob")
            seen = [
                m.group(4) for m in map(HISTORY_LINE.fullmatch, chat.lines(bob)) if m
            ]
            self.assertEqual(seen, expected)

    def test_historyCommand(self) -> None:
        """
        ``/history [ROOM] [N]`` shows a room's last N messages (the current
        room by default), then says it ended.
        """
        chat = self.chat
        chat.send(self.alice, "one", "two", "/join games", "g1")
        chat.lines(self.alice)
        chat.send(self.alice, "/history lobby 1", "/history", "/history nowhere")
        self.assertEqual(
            chat.lines(self.alice),
            [
                "#lobby [2023-11-14 22:13:20] <alice> two",
                "--- end of history of #lobby (1 message)",
                "#games [2023-11-14 22:13:20] <alice> g1",
                "--- end of history of #games (1 message)",
                "--- end of history of #nowhere (0 messages)",
            ],
        )
        chat.send(self.alice, "/history a b c", "/history #bad>name")
        lines = chat.lines(self.alice)
        self.assertEqual(lines[0], "!!! usage: /history [ROOM] [N]")
        self.assertTrue(lines[1].startswith("!!! "), lines)

    def test_historyCountZero(self) -> None:
        """
        ``/history 0`` (or ``00``) asks for no message: a usage error that
        says the range, not one message as if 1 had been asked.
        """
        chat = self.chat
        chat.send(self.alice, "one", "two")
        chat.lines(self.alice)
        chat.send(self.alice, "/history 0", "/history lobby 00")
        self.assertEqual(
            chat.lines(self.alice),
            ["!!! usage: /history [ROOM] [N] (N from 1 to 500)"] * 2,
        )

    def test_historyCountNotASCIIDigits(self) -> None:
        """
        A count in other digits than ASCII ones (``²``, which Python calls a
        digit but cannot read as a number) is no count: it is taken as a
        room's name and refused as one, and the connection goes on.
        """
        chat = self.chat
        chat.lines(self.alice)
        chat.send(self.alice, "/history ²", "/history lobby ²", "still here")
        lines = chat.lines(self.alice)
        self.assertEqual(len(lines), 3, lines)
        self.assertTrue(lines[0].startswith("!!! "), lines)
        self.assertEqual(lines[1], "!!! usage: /history [ROOM] [N]")
        self.assertEqual(lines[2], "#lobby <alice> still here")

    def test_historyAfterSayingInOneRead(self) -> None:
        """
        A line said and ``/history`` sent in one read: the member sees its
        line live first, then the history that holds it (the hub delivers
        what it collected before it reads the store), as when they come in
        two reads; other members see the line once.
        """
        chat = self.chat
        bob = chat.client("bob")
        chat.lines(self.alice)
        chat.send(self.alice, "hello", "/history")
        self.assertEqual(
            chat.lines(self.alice),
            [
                "#lobby <alice> hello",
                "#lobby [2023-11-14 22:13:20] <alice> hello",
                "--- end of history of #lobby (1 message)",
            ],
        )
        self.assertEqual(chat.lines(bob), ["#lobby <alice> hello"])

    def test_helpListsHistory(self) -> None:
        """``/help`` lists ``/history`` on a server that keeps history only."""
        line = "--- /history [ROOM] [N]: show the last N messages of a room "
        line += "(default: current)"
        self.chat.send(self.alice, "/help")
        self.assertIn(line, self.chat.lines(self.alice))
        bare = Chat(None)
        alice = bare.client("alice")
        bare.send(alice, "/help", "/history")
        lines = bare.lines(alice)
        self.assertNotIn(line, lines)
        self.assertEqual(lines[-1], "--- this server keeps no history")

    def test_withoutStoreNothingReplayed(self) -> None:
        """Without a store, joining shows exactly what it always did."""
        bare = Chat(None)
        alice = bare.client("alice")
        bare.send(alice, "hello")
        bob = bare.network.connect(bare.factory, LineClient())
        bare.send(bob, "bob")
        self.assertEqual(
            bare.lines(bob)[1:],
            ["-!- bob has joined #lobby", "--- you are bob; you are in #lobby"],
        )


class LaterReplayTests(SynchronousTestCase):
    """A replay that takes a while: what comes meanwhile waits behind it."""

    def test_liveWaitsForReplay(self) -> None:
        """
        Messages said while the replay is read, and the newcomer's own
        lines, come after the replay, each once.
        """
        store = LaterStore()
        chat = Chat(store)
        alice = chat.client("alice")
        store.answer_one()
        chat.send(alice, "before")
        bob = chat.network.connect(chat.factory, LineClient())
        chat.send(bob, "bob")
        chat.send(alice, "during")
        chat.send(bob, "mine")
        seen = chat.lines(bob)
        self.assertEqual(
            seen[-2:],
            ["-!- bob has joined #lobby", "--- you are bob; you are in #lobby"],
        )
        store.answer_one()
        self.assertEqual(
            chat.lines(bob),
            [
                "#lobby [2023-11-14 22:13:20] <alice> before",
                "#lobby <alice> during",
                "#lobby <bob> mine",
            ],
        )

    @settings(max_examples=60, deadline=None)
    @given(boundary_steps("answer"))
    def test_boundaryProperty(self, steps: list[tuple[str, int]]) -> None:
        """
        Whatever the interleaving of messages, joins, turns and late
        answers of the store, every member who joined sees every message of
        the room exactly once, in the order said: the replay, then live.
        """
        store = LaterStore()
        chat = Chat(store, replay=1000)
        speakers = [chat.client(f"s{n}") for n in range(3)]
        joiners = [chat.client(f"j{n}") for n in range(4)]
        for speaker in speakers:
            chat.send(speaker, "/join games")
        while store.waiting:
            store.answer_one()
        for connection in (*speakers, *joiners):
            chat.lines(connection)
        said: list[str] = []
        joined: set[int] = set()
        for number, (step, who) in enumerate(steps):
            if step == "say":
                said.append(f"m{number}")
                chat.send(speakers[who], said[-1])
            elif step == "join" and who not in joined:
                joined.add(who)
                chat.send(joiners[who], "/join games")
            elif step == "answer":
                store.answer_one()
            elif step == "turn":
                chat.network.settle()
        while store.waiting:
            store.answer_one()
        for who in sorted(joined):
            assert_replay_then_live(self, chat.lines(joiners[who]), "games", said)


class RestoredStateTests(SynchronousTestCase):
    """What a store kept is back after a restart."""

    def test_topicsAndBans(self) -> None:
        """
        Restored, a banned nickname is refused and a room gets its topic
        back when it is created again; the default room at once.
        """
        chat = Chat(MemoryHistoryStore())
        chat.hub.restore(
            Saved(
                (
                    SavedTopic("Games", "chess", "alice", START - 10),
                    SavedTopic("lobby", "welcome", "root", START - 10),
                ),
                (
                    Ban("mallory", None, "spam", "root"),
                    Ban("gone", START - 1, "", "root"),
                ),
            )
        )
        self.assertEqual([b.target for b in chat.hub.bans()], ["mallory"])
        mallory = chat.network.connect(chat.factory, LineClient())
        chat.send(mallory, "mallory")
        self.assertIn(
            "!!! the nickname mallory is banned until unbanned: spam",
            chat.lines(mallory),
        )
        alice = chat.client("alice")
        chat.send(alice, "/topic", "/join games")
        self.assertEqual(
            chat.lines(alice),
            [
                "--- topic of #lobby: welcome",
                "-!- alice has joined #games",
                "--- topic of #games: chess",
            ],
        )

    def test_topicKeptWhileEmpty(self) -> None:
        """With a store, a room's topic outlives the room being empty."""
        chat = Chat(MemoryHistoryStore())
        alice = chat.client("alice")
        chat.send(alice, "/join games", "/topic chess", "/part games")
        chat.lines(alice)
        chat.send(alice, "/join games")
        self.assertIn("--- topic of #games: chess", chat.lines(alice))
        self.assertEqual(
            chat.hub.store.saved().topics if chat.hub.store else (),
            (SavedTopic("games", "chess", "alice", START),),
        )

    def test_bansGoToTheStore(self) -> None:
        """A ban and its lifting are kept by the store."""
        store = MemoryHistoryStore()
        chat = Chat(store)
        chat.hub.ban("mallory", None, "root", "spam")
        self.assertEqual([b.target for b in store.saved().bans], ["mallory"])
        chat.hub.unban("mallory")
        self.assertEqual(store.saved().bans, ())

    def test_privateMessagesOnlyWhenAsked(self) -> None:
        """
        The hub hands private messages to the store, which keeps them only
        when told to (``--history-private``), with the sender's door.
        """
        for private, expected in ((False, []), (True, [("secret", "chat")])):
            store = MemoryHistoryStore(private=private)
            chat = Chat(store)
            alice = chat.client("alice")
            chat.client("bob")
            chat.send(alice, "/msg bob secret")
            self.assertEqual([(m.text, m.door) for m in store.privates], expected)
