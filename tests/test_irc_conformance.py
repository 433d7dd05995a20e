"""
IRC door replies that the IRC server conformance suite (irctest, run by
hand: ``docs/irc.rst``, "Conformance") found wrong, each checked here on
in-memory connections.
"""

from __future__ import annotations

from tests.test_irc import IRCCase


class ConformanceTests(IRCCase):
    """Replies as RFC 2812 and the modern IRC documentation give them."""

    def test_emptyRealName(self) -> None:
        """
        USER with an empty real name gets 461 and does not register; a USER
        with one then does.
        """
        client = self.connect()
        client.take()
        client.send("NICK alice", "USER alice 0 * :")
        self.assertEqual(
            self.numerics(client.take()),
            [("461", ["*", "USER", "Not enough parameters"])],
        )
        client.send("USER alice 0 * :Alice")
        self.assertIn("001", client.commands())

    def test_modePlusN(self) -> None:
        """
        MODE #a +n (the mode every channel has) changes nothing and is not
        answered; -n gets 472 saying it is fixed; +n with another letter
        still refuses that letter.
        """
        alice = self.registered("alice")
        alice.send("JOIN #a")
        alice.take()
        alice.send("MODE #a +n")
        self.assertEqual(alice.take(), [])
        alice.send("MODE #a -n", "MODE #a +nk key")
        self.assertEqual(
            self.numerics(alice.take()),
            [
                ("472", ["alice", "n", "is fixed (+n)"]),
                ("472", ["alice", "k", "is an unknown mode"]),
            ],
        )

    def test_tagsTooLong(self) -> None:
        """
        A message whose tags, with their space, pass 4096 bytes gets 417
        and is dropped, even when its message part is short; tags of exactly
        4096 bytes pass.
        """
        alice = self.registered("alice", "echo-message")
        bob = self.registered("bob")
        for client in (alice, bob):
            client.send("JOIN #a")
            client.take()
        over = "@+x=" + "a" * (4096 - 4) + " PRIVMSG #a :hi"
        alice.send(over)
        self.assertEqual(self.numerics(alice.take())[0][0], "417")
        self.assertEqual(bob.take(), [])
        at_limit = "@+x=" + "a" * (4096 - 5) + " PRIVMSG #a :hi"
        alice.send(at_limit)
        self.assertEqual([m.params for m in bob.take()], [["#a", "hi"]])
        self.assertFalse(alice.closed)

    def test_userhostInNames(self) -> None:
        """
        With ``userhost-in-names`` a client's NAMES list has every member as
        ``nick!nick@server`` (operators with their ``@`` in front); without
        it, bare nicknames.
        """
        alice = self.registered("alice", "userhost-in-names")
        bob = self.registered("bob")
        bob.send("OPER root s3cret", "JOIN #a")
        bob.take()
        alice.send("JOIN #a")
        (names,) = [m for m in alice.take() if m.command == "353"]
        self.assertEqual(
            names.params, ["alice", "=", "#a", "@bob!bob@irc.test alice!alice@irc.test"]
        )
        bob.send("NAMES #a")
        (names,) = [m for m in bob.take() if m.command == "353"]
        self.assertEqual(names.params, ["bob", "=", "#a", "@bob alice"])
