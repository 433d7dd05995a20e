"""
The IRC door against hostile clients, as ``tests/test_hostile.py`` tries the
native door: oversize input, a line never finished (slowloris), invalid
UTF-8, control characters and escapes, a client that never registers, the
strangers' budget, abrupt resets while registering and while being written
to, and a storm of connections from many addresses.  In memory, on a fake
clock, with the hostile tests' peers.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.error import ConnectionLost

from chatservice.chat.model import ChatConfig
from chatservice.doors.irc.protocol import IRCFactory, IRCSettings
from chatservice.doors.line import LineProtocol
from tests.test_hostile import HostileTestCase, Peer

SERVER = "irc.test"


class IRCHostileTestCase(HostileTestCase):
    """An IRC door (and the hub it shares) on the fake clock."""

    def irc(self, **limits: Any) -> IRCFactory:
        chat = self.chat(ChatConfig())  # makes self.hub
        assert chat.hub is self.hub
        return IRCFactory(
            self.hub,
            self.limits(**limits),
            self.clock,
            settings=IRCSettings(server_name=SERVER),
        )

    def registered(self, factory: IRCFactory, nick: str, host: str) -> Peer:
        peer = Peer(factory, host)
        peer.send(f"NICK {nick}", f"USER {nick} 0 * :{nick}", "JOIN #lobby")
        lines = peer.take()
        self.assertTrue(any(" 001 " in line for line in lines), lines)
        return peer


class InputTests(IRCHostileTestCase):
    """What a stranger can send the IRC door."""

    def test_oversizeLineClosed(self) -> None:
        """
        A line past the door's hard limit (tags included) gets an error and
        the connection is closed; the buffer never holds more.
        """
        factory = self.irc()
        peer = Peer(factory)
        peer.take()
        peer.feed(b"x" * 10_000)
        self.assertTrue(peer.closing)
        protocol = peer.protocol
        assert isinstance(protocol, LineProtocol)
        self.assertLessEqual(len(protocol._partial), protocol.MAX_LENGTH + 1)

    def test_longMessage417(self) -> None:
        """A message over IRC's 512 bytes gets 417, and the client stays."""
        factory = self.irc()
        peer = self.registered(factory, "alice", "192.0.2.1")
        peer.send("PRIVMSG #lobby :" + "y" * 600)
        self.assertTrue(any(" 417 " in line for line in peer.take()))
        self.assertFalse(peer.closing)

    def test_slowlorisClosed(self) -> None:
        """A line begun and never finished is closed after the line timeout."""
        factory = self.irc(line_timeout=60)
        peer = self.registered(factory, "alice", "192.0.2.1")
        for _ in range(59):
            peer.feed(b"P")
            self.clock.advance(1)
        self.assertFalse(peer.closing)
        self.clock.advance(2)
        peer.feed(b"R")
        self.assertTrue(peer.closing)

    def test_invalidUtf8AndEscapes(self) -> None:
        """
        Invalid UTF-8 is answered and the client stays; escapes and control
        characters reach other members made visible, never raw.
        """
        factory = self.irc()
        alice = self.registered(factory, "alice", "192.0.2.1")
        bob = self.registered(factory, "bob", "192.0.2.2")
        alice.take()
        bob.feed(b"PRIVMSG #lobby :\xff\xfe\r\n")
        self.assertTrue(bob.take())
        self.assertFalse(bob.closing)
        bob.send("PRIVMSG #lobby :a\x1b[2Jb\x07c")
        seen = "".join(alice.take())
        self.assertNotIn("\x1b", seen)
        self.assertNotIn("\x07", seen)
        self.assertIn("a^[[2Jb^Gc", seen)


class RegistrationTests(IRCHostileTestCase):
    """Clients that do not register, and many that come at once."""

    def test_neverRegistersClosed(self) -> None:
        """
        A client that never completes NICK/USER is closed at the deadline,
        whatever it keeps sending.
        """
        factory = self.irc()
        # The IRC door takes its deadline from its settings; 20 s here.
        factory.limits = self.limits(registration_timeout=20)
        peer = Peer(factory)
        for _ in range(19):
            peer.send("PING :still here")
            self.clock.advance(1)
        self.assertFalse(peer.closing)
        self.clock.advance(2)
        self.assertTrue(peer.closing)

    def test_strangersBudget(self) -> None:
        """
        A storm of unregistered connections from many addresses, past the
        strangers' budget: the oldest make room, a fresh client registers.
        """
        factory = self.irc(max_strangers=20, max_per_address=5)
        storm = [Peer(factory, f"198.51.100.{n // 5}") for n in range(100)]
        # A burst in one turn is counted once it has had a turn to be read.
        self.clock.advance(factory.recount_delay)
        self.assertEqual(sum(not peer.closing for peer in storm), 20)
        fresh = self.registered(factory, "fresh", "203.0.113.9")
        self.assertFalse(fresh.closing)
        self.assertLessEqual(len(factory.strangers), 20)


class ResetTests(IRCHostileTestCase):
    """Connections that vanish."""

    def test_resetWhileRegistering(self) -> None:
        """A client gone in the middle of registration leaves nothing behind."""
        factory = self.irc()
        peer = Peer(factory)
        peer.send("NICK ghost")
        peer.lose(ConnectionLost)
        self.assertEqual(self.hub.sessions, {})
        again = self.registered(factory, "ghost", "192.0.2.7")
        self.assertFalse(again.closing)

    def test_resetWhileWrittenTo(self) -> None:
        """
        A member reset while deliveries wait for it is forgotten: the room
        hears it quit once, and its nickname is free.
        """
        factory = self.irc()
        alice = self.registered(factory, "alice", "192.0.2.1")
        bob = self.registered(factory, "bob", "192.0.2.2")
        alice.take()
        alice.send("PRIVMSG #lobby :hello")
        bob.lose(ConnectionLost)
        quits = [line for line in alice.take() if " QUIT " in line]
        self.assertEqual(len(quits), 1)
        self.assertEqual([s.nick for s in self.hub.sessions], ["alice"])
        self.registered(factory, "bob", "192.0.2.3")
