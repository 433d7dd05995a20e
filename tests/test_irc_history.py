"""
The IRC door's IRCv3 ``draft/chathistory`` (:mod:`chatservice.doors.irc.history`):
every subcommand with ``msgid=`` and ``timestamp=`` references, the batch
and its tags, the standard replies for what cannot be answered, ISUPPORT
and CAP, with the memory store and with SQLite (a writer that answers at
once), on in-memory connections.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from twisted.trial.unittest import SynchronousTestCase

from chatservice.backends.local import LocalBackend
from chatservice.chat.hub import Hub
from chatservice.conn.turns import end_of_turn
from chatservice.doors.irc.history import BadReference, parse_reference, parse_timestamp
from chatservice.doors.irc.message import Message, format_message, format_time
from chatservice.doors.irc.protocol import IRCFactory
from chatservice.stores.base import HistoryStore, Position
from chatservice.stores.memory import MemoryHistoryStore
from chatservice.stores.sqlite import SQLiteHistoryStore
from tests.support import temp_dir
from tests.test_irc import Client, IRCCase

HISTORY_CAPS = ("batch", "draft/chathistory", "server-time", "message-tags")


class ReferenceTests(SynchronousTestCase):
    """Parsing what a client gives as a message reference."""

    def test_timestamps(self) -> None:
        """An IRCv3 timestamp is UTC, with or without milliseconds."""
        self.assertEqual(parse_timestamp("2023-11-14T22:13:20.000Z"), 1_700_000_000)
        self.assertEqual(parse_timestamp("2023-11-14T22:13:20.25Z"), 1_700_000_000.25)
        self.assertEqual(parse_timestamp("2023-11-14T22:13:20Z"), 1_700_000_000)
        self.assertEqual(parse_timestamp(format_time(1_700_000_123.5)), 1_700_000_123.5)
        for bad in ("2023-11-14 22:13:20Z", "2023-13-14T22:13:20Z", "yesterday", ""):
            self.assertRaises(BadReference, parse_timestamp, bad)

    def test_references(self) -> None:
        """``msgid=``, ``timestamp=`` and, where allowed, ``*``; nothing else."""
        self.assertEqual(parse_reference("msgid=ab.12"), Position(id="ab.12"))
        self.assertEqual(
            parse_reference("timestamp=2023-11-14T22:13:20.000Z"),
            Position(at=1_700_000_000),
        )
        self.assertIsNone(parse_reference("*", star=True))
        for bad in ("*", "msgid=", "id=3", "timestamp=now", "12"):
            self.assertRaises(BadReference, parse_reference, bad)


if TYPE_CHECKING:
    _IRCCase = IRCCase
else:
    _IRCCase = object


class ChatHistoryMixin(_IRCCase):
    """CHATHISTORY against a chat with a store (:meth:`makeStore`)."""

    def makeStore(self) -> HistoryStore:
        raise NotImplementedError

    def setUp(self) -> None:
        super().setUp()
        backend = LocalBackend(call_soon=end_of_turn(self.clock).soon)
        self.hub = Hub(
            clock=self.clock.seconds, backend=backend, store=self.makeStore()
        )
        self.factory = IRCFactory(
            self.hub, self.limits, self.clock, settings=self.settings
        )
        self.alice = self.registered("alice", *HISTORY_CAPS)
        self.alice.send("JOIN #room")
        #: What alice said, and the msgid each line got.
        self.said: list[str] = []
        self.ids: list[str] = []
        for n in range(10):
            self.clock.advance(1)
            self.alice.send(f"PRIVMSG #room :m{n}")
            self.alice.take()
            self.said.append(f"m{n}")
        recent = self.successResultOf(self.hub.history("room", 50))
        self.ids = [m.id for m in recent]
        self.times = [m.at for m in recent]

    def ask(self, client: Client, line: str) -> list[Message]:
        """What a CHATHISTORY line is answered with."""
        client.take()
        client.send(line)
        return client.take()

    def texts(self, answer: list[Message]) -> list[str]:
        """The texts of a batch's messages, checked to be one whole batch."""
        self.assertEqual(answer[0].command, "BATCH")
        self.assertEqual(answer[-1].command, "BATCH")
        reference = answer[0].params[0]
        self.assertTrue(reference.startswith("+"))
        self.assertEqual(answer[0].params[1:], ["chathistory", "#room"])
        self.assertEqual(answer[-1].params, ["-" + reference[1:]])
        for line in answer[1:-1]:
            self.assertEqual(line.command, "PRIVMSG")
            self.assertEqual(line.tags["batch"], reference[1:])
        return [line.params[1] for line in answer[1:-1]]

    def test_longMessageInPieces(self) -> None:
        """
        A message too long for one IRC message with its prefix is replayed
        as several in the batch, each within 512 bytes, that join back into
        it; only the first carries its msgid.
        """
        text = "q" * 490  # fits as sent (507 bytes), not with a prefix
        self.alice.send(f"PRIVMSG #room :{text}")
        self.alice.take()
        answer = self.ask(self.alice, "CHATHISTORY LATEST #room * 1")
        cut = self.texts(answer)
        self.assertEqual((len(cut), "".join(cut)), (2, text))
        self.assertIn("msgid", answer[1].tags)
        self.assertNotIn("msgid", answer[2].tags)
        for line in answer[1:-1]:
            without_tags = format_message(
                line.prefix, line.command, *line.params, trailing=True
            )
            self.assertLessEqual(len(without_tags.encode()) + 2, 512)

    def test_ownMessageBeforeHistoryInOneRead(self) -> None:
        """
        With ``echo-message``, a PRIVMSG and a CHATHISTORY sent in one read
        are answered in that order: the echo first, then the batch that
        holds the message.
        """
        bob = self.registered("bob", *HISTORY_CAPS, "echo-message")
        bob.send("JOIN #room")
        bob.take()
        bob.send("PRIVMSG #room :fresh", "CHATHISTORY LATEST #room * 1")
        answer = bob.take()
        self.assertEqual(
            (answer[0].command, answer[0].params), ("PRIVMSG", ["#room", "fresh"])
        )
        self.assertNotIn("batch", answer[0].tags)
        self.assertEqual(self.texts(answer[1:]), ["fresh"])

    def test_latest(self) -> None:
        """LATEST * gives the newest messages; after a reference, only newer ones."""
        self.assertEqual(
            self.texts(self.ask(self.alice, "CHATHISTORY LATEST #room * 3")),
            self.said[-3:],
        )
        line = f"CHATHISTORY LATEST #room msgid={self.ids[7]} 50"
        self.assertEqual(self.texts(self.ask(self.alice, line)), self.said[8:])

    def test_tagsOfOriginal(self) -> None:
        """Each message has its original msgid and time, and its sender's mask."""
        answer = self.ask(self.alice, "CHATHISTORY LATEST #ROOM * 1")
        (line,) = answer[1:-1]
        self.assertEqual(line.tags["msgid"], self.ids[-1])
        self.assertEqual(line.tags["time"], format_time(self.times[-1]))
        self.assertEqual(line.prefix, "alice!alice@irc.test")
        self.assertEqual(line.params, ["#room", "m9"])

    def test_noticesAsNotices(self) -> None:
        """
        A notice said in the channel comes back in the batch as a NOTICE,
        an action as a CTCP ACTION, a message as a PRIVMSG, in order, with
        their tags and the batch's.
        """
        self.alice.send("NOTICE #room :heads up", "PRIVMSG #room :\x01ACTION waves\x01")
        answer = self.ask(self.alice, "CHATHISTORY LATEST #room * 3")
        reference = answer[0].params[0][1:]
        lines = answer[1:-1]
        self.assertEqual(
            [(m.command, m.params) for m in lines],
            [
                ("PRIVMSG", ["#room", "m9"]),
                ("NOTICE", ["#room", "heads up"]),
                ("PRIVMSG", ["#room", "\x01ACTION waves\x01"]),
            ],
        )
        for line in lines:
            self.assertEqual(line.tags["batch"], reference)
            self.assertIn("msgid", line.tags)
        self.assertEqual(lines[1].prefix, "alice!alice@irc.test")

    def test_beforeAndAfter(self) -> None:
        """BEFORE and AFTER a msgid or a time, the reference excluded."""
        before = f"CHATHISTORY BEFORE #room msgid={self.ids[5]} 2"
        self.assertEqual(self.texts(self.ask(self.alice, before)), ["m3", "m4"])
        after = f"CHATHISTORY AFTER #room msgid={self.ids[5]} 2"
        self.assertEqual(self.texts(self.ask(self.alice, after)), ["m6", "m7"])
        when = format_time(self.times[2])
        self.assertEqual(
            self.texts(
                self.ask(self.alice, f"CHATHISTORY BEFORE #room timestamp={when} 9")
            ),
            ["m0", "m1"],
        )
        self.assertEqual(
            self.texts(
                self.ask(self.alice, f"CHATHISTORY AFTER #room timestamp={when} 2")
            ),
            ["m3", "m4"],
        )

    def test_around(self) -> None:
        """AROUND a msgid: about as many before as after, the message itself in."""
        line = f"CHATHISTORY AROUND #room msgid={self.ids[5]} 5"
        self.assertEqual(
            self.texts(self.ask(self.alice, line)), ["m3", "m4", "m5", "m6", "m7"]
        )
        line = f"CHATHISTORY AROUND #room msgid={self.ids[0]} 3"
        self.assertEqual(self.texts(self.ask(self.alice, line)), ["m0", "m1", "m2"])
        line = f"CHATHISTORY AROUND #room msgid={self.ids[4]} 1"
        self.assertEqual(self.texts(self.ask(self.alice, line)), ["m4"])

    def test_between(self) -> None:
        """
        BETWEEN two references, both excluded, counted from the first: the
        oldest when it is the older one, else the newest.
        """
        forwards = (
            f"CHATHISTORY BETWEEN #room msgid={self.ids[2]} msgid={self.ids[8]} 3"
        )
        self.assertEqual(self.texts(self.ask(self.alice, forwards)), ["m3", "m4", "m5"])
        backwards = (
            f"CHATHISTORY BETWEEN #room msgid={self.ids[8]} "
            f"timestamp={format_time(self.times[2])} 3"
        )
        self.assertEqual(
            self.texts(self.ask(self.alice, backwards)), ["m5", "m6", "m7"]
        )
        empty = f"CHATHISTORY BETWEEN #room msgid={self.ids[4]} msgid={self.ids[5]} 3"
        self.assertEqual(self.texts(self.ask(self.alice, empty)), [])

    def test_limitCapped(self) -> None:
        """A limit over ISUPPORT CHATHISTORY gives that many."""
        self.factory.settings = replace(self.settings, chathistory_max=4)
        answer = self.ask(self.alice, "CHATHISTORY LATEST #room * 1000")
        self.assertEqual(self.texts(answer), self.said[-4:])

    def test_emptyBatches(self) -> None:
        """
        A channel without history, an unknown msgid and a nickname (private
        messages are never replayed) get an empty batch.
        """
        for line in (
            "CHATHISTORY LATEST #nothing * 5",
            "CHATHISTORY BEFORE #room msgid=nope.1 5",
            "CHATHISTORY LATEST bob * 5",
        ):
            answer = self.ask(self.alice, line)
            self.assertEqual([m.command for m in answer], ["BATCH", "BATCH"], line)

    def test_fails(self) -> None:
        """What cannot be answered gets FAIL CHATHISTORY with a code and why."""
        cases = {
            "CHATHISTORY": ("NEED_MORE_PARAMS", ["*"]),
            "CHATHISTORY LATEST #room *": ("NEED_MORE_PARAMS", ["LATEST"]),
            "CHATHISTORY BETWEEN #room * 5": ("NEED_MORE_PARAMS", ["BETWEEN"]),
            "CHATHISTORY FROB #room * 5": ("UNKNOWN_COMMAND", ["FROB"]),
            "CHATHISTORY LATEST #room * many": ("INVALID_PARAMS", ["LATEST"]),
            "CHATHISTORY LATEST #room * 0": ("INVALID_PARAMS", ["LATEST"]),
            "CHATHISTORY LATEST #room * \u00b2": ("INVALID_PARAMS", ["LATEST"]),
            "CHATHISTORY BEFORE #room * 5": ("INVALID_PARAMS", ["BEFORE"]),
            "CHATHISTORY AFTER #room time=1 5": ("INVALID_PARAMS", ["AFTER"]),
            "CHATHISTORY LATEST #no,comma * 5": (
                "INVALID_TARGET",
                ["LATEST", "#no,comma"],
            ),
        }
        for line, (code, context) in cases.items():
            (answer,) = self.ask(self.alice, line)
            self.assertEqual(answer.command, "FAIL", line)
            self.assertEqual(answer.params[:2], ["CHATHISTORY", code], line)
            self.assertEqual(answer.params[2:-1], context, line)
            self.assertTrue(answer.params[-1], line)

    def test_withoutBatchCap(self) -> None:
        """A client without ``batch`` gets the messages as plain lines, no tags."""
        bob = self.registered("bob")
        answer = self.ask(bob, "CHATHISTORY LATEST #room * 2")
        self.assertEqual([m.params for m in answer], [["#room", "m8"], ["#room", "m9"]])
        self.assertEqual([m.tags for m in answer], [{}, {}])

    def test_capAndIsupport(self) -> None:
        """
        With a store, CAP LS offers draft/chathistory and 005 says the limit;
        its tokens take two 005 lines, none over 13 tokens (15 parameters).
        """
        client = self.connect()
        client.send("CAP LS 302")
        (ls,) = [m for m in client.take() if m.command == "CAP"]
        self.assertIn("draft/chathistory", ls.params[2].split())
        self.assertIn("batch", ls.params[2].split())
        client.send("NICK carol", "USER c 0 * :c", "CAP END")
        lines = [m for m in client.take() if m.command == "005"]
        self.assertEqual(len(lines), 2)
        for line in lines:
            self.assertLessEqual(len(line.params), 15)
            self.assertEqual(line.params[-1], "are supported by this server")
        tokens = [token for line in lines for token in line.params[1:-1]]
        self.assertIn("CHATHISTORY=500", tokens)
        self.assertIn("MSGREFTYPES=msgid,timestamp", tokens)
        self.assertIn("WHOX", tokens)

    def test_noReplayOnJoin(self) -> None:
        """An IRC client that joins gets no replay: it asks with CHATHISTORY."""
        bob = self.registered("bob", *HISTORY_CAPS)
        bob.send("JOIN #room")
        self.assertNotIn("PRIVMSG", [m.command for m in bob.take()])


class MemoryChatHistoryTests(ChatHistoryMixin, IRCCase):
    """CHATHISTORY over the memory store."""

    def makeStore(self) -> HistoryStore:
        return MemoryHistoryStore(clock=self.clock.seconds)


class SQLiteChatHistoryTests(ChatHistoryMixin, IRCCase):
    """CHATHISTORY over the SQLite store, in a temporary directory."""

    def makeStore(self) -> HistoryStore:
        store = SQLiteHistoryStore(str(temp_dir(self) / "h.sqlite3"), self.clock)
        self.successResultOf(store.start())
        self.addCleanup(store.stop)
        return store
