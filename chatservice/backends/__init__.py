"""
Backends carry the chat's events between its members and hold what every
node of a chat must agree on (nicknames, bans).

:class:`~chatservice.backends.base.HubBackend` is the interface the hub
calls; :class:`~chatservice.backends.local.LocalBackend` is the one process,
in-memory implementation (the default).  A backend shared between processes
(Redis) implements the same interface.
"""
