"""
The IRC door's commands under odd input: a sweep that replaces each
parameter of a well-formed use of every command, one at a time, by each of
the words that matter to its parsers (channel lists, masks, message
references, limits, numbers ``int()`` refuses), and a Hypothesis fuzz of
any commands (known or not) with such words and random text, before and
after registration, as an operator or not.  Whatever arrives, no exception
escapes and nothing is logged with a traceback, and every line the server
writes, to the sender and to another member, is one IRC message within
512 bytes before its tags.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from chatservice.backends.local import LocalBackend
from chatservice.chat.hub import Hub
from chatservice.conn.limits import Limits
from chatservice.conn.turns import end_of_turn
from chatservice.doors.irc.commands import _AFTER
from chatservice.doors.irc.message import parse
from chatservice.doors.irc.protocol import IRCFactory
from chatservice.stores.memory import MemoryHistoryStore
from chatservice.testing import Connection, FakeAuthenticator, LineClient, Network
from tests.support import logged_failures

#: What the parsers of the commands look for, and numbers int() refuses.
WORDS = [
    "fuzzer",
    "witness",
    "*",
    "#lobby",
    "#lobby,#x",
    "#",
    "##",
    "lobby",
    "0",
    "-1",
    "²",
    "٣",
    "9" * 30,
    "msgid=x",
    "msgid=",
    "timestamp=2026-12-01T00:00:00.000Z",
    "timestamp=9999-99-99T99:99:99.999Z",
    "timestamp=²",
    "LATEST",
    "BEFORE",
    "AFTER",
    "AROUND",
    "BETWEEN",
    "TARGETS",
    "%tcuhnfar,42",
    "%",
    "+o",
    "-o",
    "+b",
    "o",
    "root",
    "s3cret",
    ":",
    ":x y",
    "\x01ACTION\x01",
    "*!*@*",
]
words = st.one_of(
    st.sampled_from(WORDS),
    st.text(
        st.characters(exclude_categories=["Cs"], exclude_characters="\r\n\x00 "),
        min_size=1,
        max_size=12,
    ),
)
names = st.one_of(
    st.sampled_from(sorted({*_AFTER, "WHOWAS", "TAGMSG", "INFO"})),
    st.text(st.characters(min_codepoint=65, max_codepoint=90), min_size=1, max_size=6),
)


#: A trailing parameter: any text a line can hold.
TRAILING = st.text(
    st.characters(exclude_categories=["Cs"], exclude_characters="\r\n\x00"),
    max_size=20,
)


@st.composite
def messages(draw: st.DrawFn) -> str:
    """A command (known or not) with up to five parameters, the last trailing."""
    params: list[str] = draw(st.lists(words, max_size=5))
    line = " ".join([draw(names), *params])
    trailing: bool = draw(st.booleans())
    if params and trailing:
        line += " :" + draw(TRAILING)
    return line


#: A well-formed use of every command the door knows (but QUIT), whose
#: parameters the sweep replaces one at a time.
TEMPLATES = {
    "AWAY": ["gone"],
    "CAP": ["REQ", "batch"],
    "CHATHISTORY": ["LATEST", "#lobby", "*", "5"],
    "ISON": ["witness", "fuzzer"],
    "JOIN": ["#lobby,#x"],
    "KICK": ["#lobby", "witness", "bye"],
    "KILL": ["witness", "bye"],
    "LIST": ["#lobby"],
    "LUSERS": [],
    "MODE": ["#lobby", "+b"],
    "MOTD": [],
    "NAMES": ["#lobby"],
    "NICK": ["fuzzer2"],
    "NOTICE": ["#lobby", "hi"],
    "OPER": ["root", "s3cret"],
    "PART": ["#x", "bye"],
    "PASS": ["secret"],
    "PING": ["token"],
    "PONG": ["token"],
    "PRIVMSG": ["#lobby", "hi"],
    "TOPIC": ["#lobby", "news"],
    "USER": ["f", "0", "*", "F"],
    "USERHOST": ["witness"],
    "WALLOPS": ["all"],
    "WHO": ["#lobby", "%tcuhnfar,42"],
    "WHOIS": ["witness"],
}


class Chat:
    """An IRC door with history and an operator account, a member on it."""

    def __init__(self, case: SynchronousTestCase) -> None:
        self.failures = logged_failures(case)
        self.case = case
        self.clock = Clock()
        self.clock.advance(1_800_000_000)
        hub = Hub(
            clock=self.clock.seconds,
            backend=LocalBackend(call_soon=end_of_turn(self.clock).soon),
            store=MemoryHistoryStore(100, clock=self.clock.seconds),
        )
        self.factory = IRCFactory(
            hub,
            Limits(max_per_address=0, flood_rate=0),
            self.clock,
            authenticator=FakeAuthenticator(),
        )
        self.network = Network(self.clock)
        self.witness = self.connect(
            "CAP REQ :message-tags server-time batch echo-message",
            "NICK witness",
            "USER w 0 * :W",
            "CAP END",
            "JOIN #lobby,#x",
        )

    def connect(self, *lines: str) -> Connection[LineClient]:
        """A client that has sent ``lines``."""
        connection = self.network.connect(self.factory, LineClient())
        self.send(connection, *lines)
        return connection

    def send(self, connection: Connection[LineClient], *lines: str) -> None:
        """Send lines, a second apart, each read and answered."""
        for line in lines:
            self.clock.advance(1)
            connection.client.sendLine(line.encode("utf-8"))
            connection.push()
            self.network.settle()

    def check(self, *connections: Connection[LineClient]) -> None:
        """What the clients received is whole IRC messages; nothing failed."""
        for connection in (self.witness, *connections):
            for received in connection.client.take():
                tagless = received
                if received.startswith("@"):
                    tagless = received.split(" ", 1)[1]
                self.case.assertLessEqual(len(tagless.encode()) + 2, 512, received)
                parse(received)
        self.case.assertEqual(self.failures, [])


class IRCCommandSweepTests(SynchronousTestCase):
    """Each command's parameters replaced, one at a time, by odd words."""

    def test_everyParameterOfEveryCommand(self) -> None:
        """
        For every command the door knows, each parameter of a well-formed
        use in turn replaced by each odd word (numbers ``int()`` refuses,
        references, masks, empty and ``:`` words), sent by an operator:
        nothing raises or is logged with a traceback, the operator stays
        connected and is answered, and every line is a whole IRC message.
        """
        chat = Chat(self)
        opening = ("NICK fuzzer", "USER f 0 * :F", "OPER root s3cret")
        fuzzer = chat.connect(*opening)
        lines = 0
        for name, template in sorted(TEMPLATES.items()):
            for slot in range(len(template)):
                for word in WORDS:
                    params = [*template]
                    params[slot] = word
                    line = " ".join([name, *params[:-1], ":" + params[-1]])
                    chat.send(fuzzer, line)
                    lines += 1
                    chat.check(fuzzer)
                    if fuzzer.closed:
                        # An operator may KILL (or KICK: from the chat) itself.
                        self.assertIn(name, ("KILL", "KICK"), line)
                        fuzzer = chat.connect(*opening)
                        continue
                    # Put back what the line may have changed.
                    chat.send(fuzzer, "NICK fuzzer", "JOIN #lobby,#x")
                    if chat.witness.closed:
                        chat.witness = chat.connect(
                            "NICK witness", "USER w 0 * :W", "JOIN #lobby,#x"
                        )
        self.assertGreater(lines, 1000)
        chat.check(fuzzer)


class IRCCommandFuzzTests(SynchronousTestCase):
    """Random IRC commands to a chat with history and an operator account."""

    @settings(
        max_examples=200,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(
        st.sampled_from(["none", "registered", "operator"]),
        st.lists(messages(), min_size=1, max_size=25),
    )
    def test_anyCommands(self, start: str, lines: list[str]) -> None:
        """
        A client not registered, registered, or an operator sends any
        commands: nothing raises or is logged with a traceback, and every
        line written is a well-formed IRC message of at most 512 bytes
        (before its tags), to it and to another member.
        """
        chat = Chat(self)
        opening = {
            "none": [],
            "registered": ["NICK fuzzer", "USER f 0 * :F"],
            "operator": ["NICK fuzzer", "USER f 0 * :F", "OPER root s3cret"],
        }[start]
        fuzzer = chat.connect(*opening)
        chat.send(fuzzer, *lines)
        chat.check(fuzzer)
