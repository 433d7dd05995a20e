"""
The chat's behaviour (:mod:`tests.behaviour`) through the native and the
IRC doors with the Redis backend on a real ``redis-server``: the same
suite as ``tests/test_native_behaviour.py`` and
``tests/test_irc_behaviour.py``, whose hub here delivers everything
through Redis.

The doors run on the suite's in-memory network and clock; Redis on the
real reactor.  Whenever the suite lets the network settle, the reactor
also runs until everything the node said has come back from Redis
(:attr:`RedisBackend.idle`), and again until nothing moves.
"""

from __future__ import annotations

from twisted.internet import reactor

from chatservice.backends.redis import RedisBackend, parse_redis_url
from chatservice.chat.hub import Hub
from chatservice.conn.turns import end_of_turn
from tests.behaviour import ChatBehaviourTests
from tests.redis_support import RedisServer, spin, stop_backend
from tests.test_irc_behaviour import IRCBehaviourTests
from tests.test_native_behaviour import NativeBehaviourTests


class RedisHubMixin(ChatBehaviourTests):
    """Swaps the suite's hub for one whose backend is a RedisBackend."""

    #: A reply does not wait for a room message on its way through Redis.
    replies_after_messages = False

    def setUp(self) -> None:
        super().setUp()
        self.redis = RedisServer(self)
        self.backend = RedisBackend(
            parse_redis_url(self.redis.url),
            reactor,
            end_of_turn(self.clock).soon,
        )
        self.hub = Hub(clock=self.clock.seconds, backend=self.backend)
        self.backend.attach(self.hub)
        self.backend.start()
        self.addCleanup(stop_backend, self.backend)
        spin(lambda: self.backend.link.up and self.backend.idle)
        self.driver = self.makeDriver()
        self.lobby = self.hub.default_room

    def _settle(self) -> None:
        network = self.network
        for _ in range(100):
            network.settle()
            if self.backend.idle:
                # One more look: what came back may have said more.
                reactor.iterate(0)
                network.settle()
                if self.backend.idle:
                    return
            # What is on its way to or from Redis (what is still to be
            # published goes at the next end of turn, in network.settle).
            spin(lambda: self.backend.waiting == 0 and self.backend.in_flight == 0)
        raise AssertionError("the chat never settled")

    def seen(self, client: object) -> list[object]:
        self._settle()
        return self.driver.take(client)

    def clear(self) -> None:
        self._settle()
        for client in self.everyone:
            self.driver.take(client)


class RedisNativeBehaviourTests(RedisHubMixin, NativeBehaviourTests):
    """The chat's behaviour through the native door, over Redis."""


class RedisIRCBehaviourTests(RedisHubMixin, IRCBehaviourTests):
    """The chat's behaviour through the IRC door, over Redis."""
