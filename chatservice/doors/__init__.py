"""
The doors: one module (or package) per way into the chat, each a thin
adapter between its wire format and the core (:mod:`chatservice.chat`),
on the shared connection policy (:mod:`chatservice.conn`).

- :mod:`~chatservice.doors.line`: the base of every line door (framing,
  decoding, closing);
- :mod:`~chatservice.doors.native`: the chat's own line protocol (``nc``,
  ``chatservice-client``);
- :mod:`~chatservice.doors.admin`: the administrators' console;
- :mod:`~chatservice.doors.echo`, :mod:`~chatservice.doors.upper`: the two
  small line services, which need no chat;
- :mod:`~chatservice.doors.operations`: the server powers as text commands,
  shared by the native door's operators and the admin console;
- :mod:`~chatservice.doors.door`: the :class:`~chatservice.doors.door.Door`
  description ``chatservice.tap`` builds each door from.
"""
