"""
Tests for :mod:`chatservice.operations`: parsing and running the commands
shared by the admin console and chat operators, against a hub of fake
members.
"""

from __future__ import annotations

import time

from twisted.internet.task import Clock
from twisted.logger import capturedLogs, formatEvent
from twisted.trial.unittest import SynchronousTestCase

from chatservice.chat import events
from chatservice.chat.errors import ChatError
from chatservice.chat.hub import Hub
from chatservice.chat.model import Session
from chatservice.doors.native.render import render_error
from chatservice.doors.operations import COMMANDS, DEFAULT_BAN, Operations
from tests.test_chat_core import FakeMember

WALL_CLOCK = 1_800_000_000.0


class OperationsTestCase(SynchronousTestCase):
    """A hub on a fake clock, its operations, and helpers."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(1000)
        self.hub = Hub(clock=self.clock.seconds)
        self.operations = Operations(self.hub, wall_clock=lambda: WALL_CLOCK)

    def member(
        self, nick: str | None, address: str | None = "10.0.0.1"
    ) -> tuple[FakeMember, Session]:
        member = FakeMember(nick or "")
        session = self.hub.connect(member, address)
        if nick is not None:
            self.hub.set_nick(session, nick)
        member.take()
        return member, session

    def run_(self, command: str, args: str = "") -> list[str]:
        return self.operations.run(command, args, "op")

    def refused(self, command: str, args: str = "") -> str:
        error = self.assertRaises(ChatError, self.run_, command, args)
        message: str = render_error(error)
        return message


class RunTests(OperationsTestCase):
    """Dispatching a command."""

    def test_unknown(self) -> None:
        """
        A command that is not in the table is unknown, even where a method
        of that name exists.
        """
        for command in ("dance", "usage", "run", "__init__", "", "KICK"):
            self.assertEqual(
                self.refused(command), f"unknown command {command}; try help"
            )

    def test_table(self) -> None:
        """Every command in the table has a handler, and usage shows its arguments."""
        self.assertEqual(
            list(COMMANDS),
            ["broadcast", "kick", "ban", "unban", "bans", "limit", "list", "stats"],
        )
        for command in COMMANDS:
            self.assertTrue(callable(getattr(self.operations, f"do_{command}")))
        self.assertEqual(Operations.usage("kick"), "usage: kick NICK [REASON]")
        self.assertEqual(Operations.usage("bans"), "usage: bans")

    def test_logged(self) -> None:
        """Every command run is logged with who ran it and its arguments."""
        self.member("alice")
        with capturedLogs() as logged:
            self.operations.run("kick", "  alice  flooding ", "admin root")
        self.assertEqual(
            [formatEvent(event) for event in logged],
            ["admin kick by admin root: alice  flooding"],
        )

    def test_refusedNotLogged(self) -> None:
        """A command that fails is not logged as done."""
        with capturedLogs() as logged:
            self.refused("kick", "ghost")
        self.assertEqual(list(logged), [])


class BroadcastTests(OperationsTestCase):
    """broadcast TEXT"""

    def test_broadcast(self) -> None:
        """The whole argument is announced to everyone, by the caller."""
        alice, _ = self.member("alice")
        stranger, _ = self.member(None)
        self.assertEqual(
            self.run_("broadcast", "  two  words "), ["announced to 2 clients"]
        )
        for member in (alice, stranger):
            self.assertEqual(member.events, [events.Announcement("two  words", "op")])

    def test_counts(self) -> None:
        """Zero and one client are counted in words that fit."""
        self.assertEqual(self.run_("broadcast", "x"), ["announced to 0 clients"])
        self.member("alice")
        self.assertEqual(self.run_("broadcast", "x"), ["announced to 1 client"])

    def test_usage(self) -> None:
        """Without text, the usage."""
        self.assertEqual(self.refused("broadcast", "   "), "usage: broadcast TEXT")


class KickTests(OperationsTestCase):
    """kick NICK [REASON]"""

    def test_reason(self) -> None:
        """The first word is the nickname, the rest (stripped) the reason."""
        alice, _ = self.member("Alice")
        self.assertEqual(self.run_("kick", "alice   too   loud  "), ["kicked Alice"])
        self.assertEqual(alice.disconnects, ["kicked by op: too   loud"])

    def test_noReason(self) -> None:
        """A nickname alone kicks without a reason."""
        alice, _ = self.member("alice")
        self.assertEqual(self.run_("kick", "alice"), ["kicked alice"])
        self.assertEqual(alice.disconnects, ["kicked by op"])

    def test_errors(self) -> None:
        """No nickname is a usage error; an unknown one is named."""
        self.assertEqual(self.refused("kick"), "usage: kick NICK [REASON]")
        self.assertEqual(self.refused("kick", "ghost why"), "no such nickname: ghost")


class BanTests(OperationsTestCase):
    """ban TARGET [DURATION] [REASON]: the second word may or may not be a duration."""

    def ban_of(self, target: str) -> tuple[float | None, str]:
        """The time left and reason of the ban on ``target``."""
        (ban,) = [b for b in self.hub.bans() if b.target == target]
        left = None if ban.until is None else ban.until - self.clock.seconds()
        return left, ban.reason

    def test_targetOnly(self) -> None:
        """A target alone is banned for the default hour, without reason."""
        self.assertEqual(DEFAULT_BAN, 3600)
        self.assertEqual(self.run_("ban", "alice"), ["banned alice for 1h"])
        self.assertEqual(self.ban_of("alice"), (3600, ""))

    def test_duration(self) -> None:
        """A second word that is a duration is the duration."""
        self.assertEqual(self.run_("ban", "alice 10m"), ["banned alice for 10m"])
        self.assertEqual(self.ban_of("alice"), (600, ""))

    def test_durationAndReason(self) -> None:
        """After the duration, the rest is the reason."""
        self.assertEqual(
            self.run_("ban", "alice  1h30m   flooding  the room "),
            ["banned alice for 1h30m"],
        )
        self.assertEqual(self.ban_of("alice"), (5400, "flooding  the room"))

    def test_durationInWords(self) -> None:
        """A number and a unit word (``5 minutes``, ``2 hours``) is a duration."""
        self.assertEqual(
            self.run_("ban", "alice 5 minutes spamming"), ["banned alice for 5m"]
        )
        self.assertEqual(self.ban_of("alice"), (300, "spamming"))
        self.run_("ban", "bob 2 Hours")
        self.assertEqual(self.ban_of("bob"), (7200, ""))
        self.run_("ban", "carol 1 day")
        self.assertEqual(self.ban_of("carol"), (86400, ""))
        self.run_("ban", "dave 5 apples")  # not a unit: seconds, then the reason
        self.assertEqual(self.ban_of("dave"), (5, "apples"))

    def test_reasonWithoutDuration(self) -> None:
        """
        A second word that is not a duration starts the reason, and the ban
        lasts the default hour.
        """
        self.assertEqual(
            self.run_("ban", "alice flooding the room"), ["banned alice for 1h"]
        )
        self.assertEqual(self.ban_of("alice"), (3600, "flooding the room"))
        self.run_("ban", "bob m")
        self.assertEqual(self.ban_of("bob"), (3600, "m"))
        self.run_("ban", "carol 10x spam")
        self.assertEqual(self.ban_of("carol"), (3600, "10x spam"))

    def test_durationTooLong(self) -> None:
        """
        A second word made of digits and units that is no duration (past
        100 years, or beyond any number) is refused as a duration, not
        taken as the reason; nobody is banned.
        """
        for words in ("36501d", "9" * 400 + "d", "5mm"):
            error = self.assertRaises(ChatError, self.run_, "ban", f"alice {words} x")
            self.assertEqual(str(error), f"not a duration: {words}")
        self.assertEqual(self.hub.bans(), [])

        """``forever``, ``permanent`` and ``0`` ban until unbanned."""
        for target, duration in (("a", "forever"), ("b", "permanent"), ("c", "0")):
            self.assertEqual(
                self.run_("ban", f"{target} {duration} spam"),
                [f"banned {target} until unbanned"],
            )
            self.assertEqual(self.ban_of(target), (None, "spam"))

    def test_plainSeconds(self) -> None:
        """A bare number is seconds."""
        self.assertEqual(self.run_("ban", "alice 90 spam"), ["banned alice for 1m30s"])
        self.assertEqual(self.ban_of("alice"), (90, "spam"))

    def test_network(self) -> None:
        """An address or network is banned as a network, with its terms."""
        self.assertEqual(
            self.run_("ban", "10.0.0.0/24 2h raid"), ["banned 10.0.0.0/24 for 2h"]
        )
        self.assertEqual(self.ban_of("10.0.0.0/24"), (7200, "raid"))

    def test_kickedListed(self) -> None:
        """
        The clients a ban disconnects are listed: by nickname, or by address
        when they have none.
        """
        alice, _ = self.member("alice", "10.0.0.7")
        stranger, _ = self.member(None, "10.0.0.8")
        bob, _ = self.member("bob", "10.0.1.1")
        self.assertEqual(
            self.run_("ban", "10.0.0.0/24 10m"),
            ["banned 10.0.0.0/24 for 10m and disconnected alice, 10.0.0.8"],
        )
        self.assertEqual(alice.disconnects, ["kicked by op: banned for 10m"])
        self.assertEqual(stranger.disconnects, ["banned for 10m"])
        self.assertEqual(bob.disconnects, [])

    def test_usageAndInvalid(self) -> None:
        """No target is a usage error; an impossible nickname is refused."""
        self.assertEqual(
            self.refused("ban"), "usage: ban NICK|ADDRESS[/BITS] [DURATION] [REASON]"
        )
        self.assertEqual(
            self.refused("ban", "no*pe 10m"),
            "a nickname has letters, digits, _ and - only (not '*')",
        )
        self.assertEqual(self.hub.bans(), [])


class UnbanBansTests(OperationsTestCase):
    """unban TARGET, bans"""

    def test_bans(self) -> None:
        """``bans`` lists each ban with the time left, who set it and why."""
        self.assertEqual(self.run_("bans"), ["no bans"])
        self.run_("ban", "alice 10m flooding")
        self.operations.run("ban", "10.0.0.0/8 forever", "admin root")
        self.clock.advance(30)
        self.assertEqual(
            self.run_("bans"),
            [
                "alice for 9m30s by op: flooding",
                "10.0.0.0/8 until unbanned by admin root",
            ],
        )
        self.clock.advance(570)
        self.assertEqual(self.run_("bans"), ["10.0.0.0/8 until unbanned by admin root"])

    def test_unban(self) -> None:
        """``unban`` lifts a ban by nickname (any case) or address."""
        self.run_("ban", "alice")
        self.run_("ban", "10.0.0.7")
        self.assertEqual(self.run_("unban", " ALICE "), ["unbanned alice"])
        self.assertEqual(self.run_("unban", "10.0.0.7"), ["unbanned 10.0.0.7/32"])
        self.assertEqual(self.run_("bans"), ["no bans"])

    def test_unbanErrors(self) -> None:
        """No target is a usage error; a target not banned is named."""
        self.assertEqual(self.refused("unban"), "usage: unban NICK|ADDRESS")
        self.assertEqual(self.refused("unban", "alice"), "no ban on alice")


class LimitTests(OperationsTestCase):
    """limit [N]"""

    def test_show(self) -> None:
        """Without argument, the connected count and the limit."""
        self.member("alice")
        self.assertEqual(self.run_("limit"), ["clients: 1 connected, limit 1000"])

    def test_set(self) -> None:
        """A number sets the limit; 0 means none."""
        self.assertEqual(self.run_("limit", " 5 "), ["clients: 0 connected, limit 5"])
        self.assertEqual(self.hub.max_clients, 5)
        self.assertEqual(
            self.run_("limit", "0"), ["clients: 0 connected, limit no limit"]
        )
        self.assertEqual(self.hub.max_clients, 0)

    def test_invalid(self) -> None:
        """Not a number is a usage error; a negative number is refused."""
        for args in ("lots", "1.5", "5 6"):
            self.assertEqual(self.refused("limit", args), "usage: limit [N]")
        self.assertEqual(
            self.refused("limit", "-3"), "the client limit is 0 (none) or more"
        )
        self.assertEqual(self.hub.max_clients, 1000)


class ListStatsTests(OperationsTestCase):
    """list, stats"""

    def test_list(self) -> None:
        """
        One line per connection, oldest first: nickname (or none), operator
        mark, address (or local), rooms (or -), idle time, and since when.
        """
        self.assertEqual(self.run_("list"), ["0 connections"])
        _, alice = self.member("alice", "10.0.0.1")
        self.hub.join(alice, "games")
        self.clock.advance(100)
        self.member(None, None)
        _, root = self.member("root", "::1")
        self.hub.grant_operator(root, "root")
        self.hub.part(root)
        self.clock.advance(20)

        def since(age: float) -> str:
            return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(WALL_CLOCK - age))

        self.assertEqual(
            self.run_("list"),
            [
                "3 connections",
                f"alice 10.0.0.1 rooms #lobby #games idle 2m since {since(120)}",
                f"(no nick) local rooms - idle 20s since {since(20)}",
                f"root (operator) ::1 rooms - idle 20s since {since(20)}",
            ],
        )

    def test_stats(self) -> None:
        """Uptime and every counter."""
        _, alice = self.member("alice")
        self.member("bob")
        self.hub.say(alice, "hi")
        self.hub.whisper(alice, "bob", "psst")
        self.run_("broadcast", "note")
        self.run_("kick", "bob")
        self.run_("ban", "carol 1m")
        self.hub.max_clients = 1
        self.assertRaises(ChatError, self.hub.connect, FakeMember())
        self.clock.advance(3661)
        self.assertEqual(
            self.run_("stats"),
            [
                "uptime 1h1m1s",
                "clients 1 (peak 2, limit 1, total 2, refused 1: 0 banned, 1 full)",
                "registered 1, rooms 1",
                # joins 1 + 2, "hi" 2, private 2, note 2, kick 2
                "messages 1 to rooms, 1 private, 11 deliveries",
                "kicks 1, bans 1 (0 in force), announcements 1",
            ],
        )
