"""
The chat core: rooms, members, nicknames, operators and bans, with no I/O.

Front ends (the line protocol, the admin console, later IRC and WebSocket)
adapt a connection to a :class:`~chatservice.chat.core.Member` and call the
:class:`~chatservice.chat.core.Hub`; the hub answers with return values, a
:class:`~chatservice.chat.errors.ChatError` the front end shows to its user,
and :mod:`~chatservice.chat.events` it delivers to members.
"""
