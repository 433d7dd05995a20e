"""
The Redis backend's parts that need no server: the ``--redis`` URL and
options, events as JSON, and frames that are not what a node sends (logged
and dropped, never a crash).  Everything they do with a server is tested
against a real one (``tests/test_redis_backend.py``).
"""

from __future__ import annotations

import json
from typing import cast

from hypothesis import given
from hypothesis import strategies as st
from twisted.internet.task import Clock
from twisted.logger import ILogObserver, LogEvent, globalLogPublisher
from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase

from chatservice import tap
from chatservice.backends.redis import RedisBackend, codec, parse_redis_url
from chatservice.backends.redis.url import RedisAddress
from chatservice.chat import events
from chatservice.chat.hub import Hub
from chatservice.chat.text import visible
from chatservice.testing import FakeMember
from tests.support import temp_dir


class URLTests(SynchronousTestCase):
    """``--redis URL``."""

    def test_forms(self) -> None:
        """
        The host, port, database, TLS, user and password of each form;
        defaults port 6379 and database 0; a password may be URL-escaped;
        ``str()`` (what logs show) never has the password.
        """
        cases = {
            "redis://localhost": RedisAddress("localhost"),
            "redis://10.0.0.5:6380/2": RedisAddress("10.0.0.5", 6380, 2),
            "rediss://cache.example:6390/1": RedisAddress(
                "cache.example", 6390, 1, tls=True
            ),
            "redis://:s%40cret@h:1/0": RedisAddress("h", 1, 0, password="s@cret"),
            "redis://chat:pw@h/3": RedisAddress(
                "h", 6379, 3, username="chat", password="pw"
            ),
            "redis://[::1]:7000/0": RedisAddress("::1", 7000, 0),
        }
        for url, expected in cases.items():
            self.assertEqual(parse_redis_url(url), expected, url)
        self.assertNotIn("s@cret", str(parse_redis_url("redis://:s%40cret@h:1/0")))

    def test_refused(self) -> None:
        """Each malformed URL is refused with a line saying what is wrong."""
        for url, says in {
            "http://h:1/0": "expected redis://",
            "redis://:6379/0": "no host",
            "redis://h:99999/0": "port",
            "redis://h/zero": "database must be a number",
            "redis://h/0?x=1": "no query",
        }.items():
            with self.assertRaises(ValueError) as caught:
                parse_redis_url(url)
            self.assertIn(says, str(caught.exception), url)


class OptionsTests(SynchronousTestCase):
    """``--redis`` and its options on the command line."""

    def parse(self, *arguments: str) -> tap.Options:
        options = tap.Options()
        options.parseOptions(["--history", "none", *arguments])
        return options

    def test_noRedisNothingChanges(self) -> None:
        """Without ``--redis`` the hub's backend is the local one."""
        options = self.parse()
        self.assertIsNone(options.redis)
        service = tap.makeService(options, Clock())
        self.assertEqual(type(service.hub.backend).__name__, "LocalBackend")  # type: ignore[attr-defined]

    def test_redisBackendWired(self) -> None:
        """
        ``--redis`` gives the hub a RedisBackend attached to it, with the
        liveness and replay bound asked for.
        """
        options = self.parse(
            "--redis", "redis://127.0.0.1:1/0", "--redis-liveness", "9",
            "--redis-replay", "5",
        )  # fmt: skip
        service = tap.makeService(options, Clock())
        backend = service.hub.backend  # type: ignore[attr-defined]
        self.assertIsInstance(backend, RedisBackend)
        self.assertIs(backend.hub, service.hub)  # type: ignore[attr-defined]
        self.assertEqual(backend.liveness.liveness, 9)
        self.assertEqual(backend.publisher.replay.maxlen, 5)

    def test_sharedHistoryWired(self) -> None:
        """
        ``--redis`` with history on keeps room history in Redis (the
        backend appends each frame's room messages, within the caps asked
        for) and the rest in the ``--history`` store; ``--history none``
        keeps none anywhere.
        """
        from chatservice.backends.redis.history import RedisHistoryStore
        from chatservice.stores.memory import MemoryHistoryStore

        options = tap.Options()
        options.parseOptions(
            ["--history", "memory", "--redis", "redis://127.0.0.1:1/0",
             "--history-max-messages", "7", "--history-max-age", "2h"]
        )  # fmt: skip
        hub = tap.makeService(options, Clock()).hub  # type: ignore[attr-defined]
        self.assertIsInstance(hub.store, RedisHistoryStore)
        self.assertIsInstance(hub.store.local, MemoryHistoryStore)
        self.assertIs(hub.store.backend, hub.backend)
        self.assertEqual(hub.backend.history.per_room, 7)
        self.assertEqual(hub.backend.history.max_age, 7200)
        self.assertIn("shared", hub.store.status())
        options = self.parse("--redis", "redis://127.0.0.1:1/0")
        hub = tap.makeService(options, Clock()).hub  # type: ignore[attr-defined]
        self.assertIsNone(hub.store)
        self.assertIsNone(hub.backend.history)

    def test_passwordFile(self) -> None:
        """``--redis-password-file``: its first line is the password."""
        path = temp_dir(self) / "redis.pass"
        path.write_text("hunter2\nignored\n")
        options = self.parse(
            "--redis", "redis://h/0", "--redis-password-file", str(path)
        )
        assert options.redis is not None
        self.assertEqual(options.redis.password, "hunter2")

    def test_refusals(self) -> None:
        """
        A bad URL, an unreadable password file, a password file without
        ``--redis``, a liveness under 3 s, an authorities file for a
        ``redis://`` URL, missing or with no certificate are usage errors
        naming the option or the file.
        """
        directory = temp_dir(self)
        missing = str(directory / "nope")
        garbage = directory / "garbage.pem"
        garbage.write_text("not a certificate\n")
        for arguments, says in [
            (["--redis", "http://x"], "--redis:"),
            (["--redis", "redis://h", "--redis-password-file", missing], missing),
            (["--redis-password-file", missing], "needs --redis"),
            (["--redis", "redis://h", "--redis-liveness", "1"], "at least 3"),
            (["--redis", "redis://h", "--redis-ca-file", missing], "rediss://"),
            (["--redis", "rediss://h", "--redis-ca-file", missing], missing),
            (["--redis", "rediss://h", "--redis-ca-file", str(garbage)], "no PEM"),
        ]:
            with self.assertRaises(usage.UsageError) as caught:
                self.parse(*arguments)
            self.assertIn(says, str(caught.exception), arguments)


class CodecTests(SynchronousTestCase):
    """Events as JSON between nodes."""

    @given(
        text=st.text(),
        nick=st.text(min_size=1),
        at=st.floats(allow_nan=False, allow_infinity=False),
    )
    def test_roundTrip(self, text: str, nick: str, at: float) -> None:
        """
        Every kind of event comes back equal, with its id, time and door; a
        text ``42`` stays text.  (Texts as the hub makes them: visible.)
        """
        text, nick = visible(text), visible(nick)
        message = events.RoomMessage("lobby", nick, text, id="n.1", at=at, door="irc")
        for event in [
            message,
            events.RoomMessages("lobby", (message, message)),
            events.PrivateMessage(nick, "bob", "42", id="n.2", at=at),
            events.PrivateMessage(nick, "bob", text, True, id="n.4", at=at),
            events.RoomMessage("lobby", nick, text, notice=True, id="n.5", at=at),
            events.RoomMessage("lobby", nick, text, action=True, id="n.6", at=at),
            events.Joined("lobby", nick, id="n.3"),
            events.Parted("lobby", nick, text),
            events.Quit(nick, text),
            events.NickChanged(nick, "x"),
            events.TopicChanged("lobby", nick, text),
            events.Kicked(nick, "op", text),
            events.Announcement(text, "op"),
        ]:
            back = codec.decode(json.loads(json.dumps(codec.encode(event))))
            self.assertEqual(back, event)
            self.assertEqual((back.id, back.at), (event.id, event.at))
        back_message = codec.decode(json.loads(json.dumps(codec.encode(message))))
        assert isinstance(back_message, events.RoomMessage)
        self.assertEqual(back_message.door, "irc")

    def test_escapesShownSafely(self) -> None:
        """
        A frame written to Redis by anyone but a node cannot carry a
        terminal escape sequence to members: texts read back are made
        visible (``ESC`` shown as ``^[``).
        """
        data = {
            "t": "RoomMessage",
            "room": "lobby",
            "nick": "x\x1b]0;",
            "text": "\x1b[2J",
        }
        back = codec.decode(data)
        assert isinstance(back, events.RoomMessage)
        self.assertEqual((back.nick, back.text), ("x^[]0;", "^[[2J"))

    def test_noticeFlag(self) -> None:
        """
        A notice travels as one (in a batch too); a frame from a node of
        before notices, without the field, reads as no notice.
        """
        noticed = events.RoomMessage("lobby", "a", "x", notice=True, id="n.1")
        batch = codec.decode(codec.encode(events.RoomMessages("lobby", (noticed,))))
        assert isinstance(batch, events.RoomMessages)
        self.assertTrue(batch.messages[0].notice)
        old = {"t": "RoomMessage", "room": "lobby", "nick": "a", "text": "x"}
        back = codec.decode({**old, "action": False})
        assert isinstance(back, events.RoomMessage)
        self.assertFalse(back.notice)
        private = codec.decode(
            {"t": "PrivateMessage", "sender": "a", "recipient": "b", "text": "x"}
        )
        assert isinstance(private, events.PrivateMessage)
        self.assertFalse(private.notice)

    def test_refused(self) -> None:
        """What is no event of ours raises ValueError, whatever it is."""
        data: object
        for data in [
            None,
            [],
            {"t": "Nonsense"},
            {"t": "RoomMessage", "room": "x"},
            {"t": "RoomMessages", "room": "x", "messages": "no"},
            {"t": "RoomMessages", "room": "x", "messages": [{"t": "Quit"}]},
            # A flag that is not true or false.
            {"t": "RoomMessage", "room": "x", "nick": "a", "text": "b", "notice": 1},
            {"t": "RoomMessage", "room": "x", "nick": "a", "text": "b", "action": "1"},
            {
                "t": "PrivateMessage",
                "sender": "a",
                "recipient": "b",
                "text": "x",
                "notice": "yes",
            },
        ]:
            with self.assertRaises(ValueError):
                codec.decode(data)


class BadFrameTests(SynchronousTestCase):
    """What a node receives that no node sends is dropped and logged."""

    def test_badFramesDropped(self) -> None:
        """
        Garbage, a frame that is not one, and items with missing or wrong
        fields are dropped (the log says so); the good item after a bad one
        in the same frame is still delivered.
        """
        backend = RedisBackend(
            parse_redis_url("redis://127.0.0.1:1/0"),
            Clock(),
            lambda work: work(),
        )
        hub = Hub(backend=backend)
        backend.attach(hub)
        member = FakeMember()
        session = hub.connect(member)
        session.nick, session.key = "alice", "alice"
        backend.audience["lobby"] = {session: None}
        logged: list[LogEvent] = []
        observer = cast(ILogObserver, logged.append)
        globalLogPublisher.addObserver(observer)
        self.addCleanup(globalLogPublisher.removeObserver, observer)
        said = codec.encode(events.RoomMessage("lobby", "bob", "hi", id="o.1"))
        for raw in [
            b"\xff not json",
            b'"a string"',
            b'{"n": "other"}',
            json.dumps(
                {
                    "n": "other",
                    "i": [
                        {"k": "m"},
                        {"k": "say", "r": "lobby", "m": [{"t": "Nope"}]},
                        "not an item",
                        {"k": "j", "s": "nobody"},
                        {"k": "say", "r": "lobby", "m": [said]},
                    ],
                }
            ).encode(),
        ]:
            backend.receiver.received(raw)
        self.assertEqual(
            [e.text for e in member.events if isinstance(e, events.RoomMessage)],
            ["hi"],
        )
        dropped = [e for e in logged if "dropped a bad" in e.get("log_format", "")]
        self.assertEqual(len(dropped), 5, [e.get("log_format") for e in logged])
