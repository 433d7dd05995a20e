"""
Several nodes, one chat: :class:`~.backend.RedisBackend` shares rooms,
members, nicknames, topics and bans through Redis (``docs/scaling.rst``).

``link`` holds the connections (txredisapi), ``backend`` what the hub
calls, ``publisher`` the turn's frame and its publishing, ``receiver``
the frames heard on the subscription, ``frames`` what a node does with
them, ``presence`` who is where (this node's members' hash, the other
nodes' members), ``liveness`` heartbeats, dead nodes and
resynchronisation, ``history`` the rooms' history in Redis streams,
``scripts`` the Lua scripts, ``codec`` events, bans and topics as JSON,
``url`` the ``--redis`` URL.
"""

from chatservice.backends.redis.backend import RedisBackend
from chatservice.backends.redis.url import RedisAddress, parse_redis_url

__all__ = ["RedisAddress", "RedisBackend", "parse_redis_url"]
