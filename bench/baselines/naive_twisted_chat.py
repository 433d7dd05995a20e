"""
Baseline: a chat server written the way the Twisted documentation's chat
example is: a ``LineReceiver``, the nickname as the first line, one room,
and a ``for client in clients: client.sendLine(...)`` broadcast loop.

It speaks just enough of chatservice's wire format for the load generator
to drive both alike: a greeting line, ``--- you are NICK; you are in
#lobby`` once the nickname is taken, and every line said delivered to
everyone, sender included, as ``#lobby <NICK> TEXT``.  No limits, no
validation, no commands: this is the naive version to beat.  Like
chatservice's chat connections, its connections set ``TCP_NODELAY``.

Usage: ``python bench/baselines/naive_twisted_chat.py PORT`` (listens on
127.0.0.1 only).
"""

from __future__ import annotations

import sys

from twisted.internet import protocol, reactor
from twisted.protocols.basic import LineReceiver


class Chat(LineReceiver):
    def __init__(self, users: dict[str, Chat]) -> None:
        self.users = users
        self.name: str | None = None

    def connectionMade(self) -> None:
        # As chatservice does on chat connections: the figures compare
        # servers, not Nagle's algorithm.
        self.transport.setTcpNoDelay(True)
        self.sendLine(b"-!- Welcome! What's your nickname?")

    def connectionLost(self, reason: object = None) -> None:
        if self.name is not None and self.users.get(self.name) is self:
            del self.users[self.name]

    def lineReceived(self, line: bytes) -> None:
        if self.name is None:
            self.handle_nick(line.decode("utf-8", "replace").strip())
        else:
            self.handle_chat(line.decode("utf-8", "replace"))

    def handle_nick(self, name: str) -> None:
        if not name or name in self.users:
            self.sendLine(b"!!! Nickname taken or empty, please choose another.")
            return
        self.name = name
        self.users[name] = self
        self.sendLine(f"--- you are {name}; you are in #lobby".encode())

    def handle_chat(self, message: str) -> None:
        line = f"#lobby <{self.name}> {message}".encode()
        for client in self.users.values():
            client.sendLine(line)


class ChatFactory(protocol.Factory):
    def __init__(self) -> None:
        self.users: dict[str, Chat] = {}

    def buildProtocol(self, addr: object) -> Chat:
        return Chat(self.users)


def main(argv: list[str]) -> None:
    port = int(argv[1])
    reactor.listenTCP(port, ChatFactory(), interface="127.0.0.1")
    reactor.run()


if __name__ == "__main__":
    main(sys.argv)
