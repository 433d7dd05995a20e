"""The IRC door: ``protocol``, ``commands``, ``render`` and ``message``."""

from chatservice.doors.irc.protocol import DOOR, IRCFactory, IRCProtocol, IRCSettings

__all__ = ["DOOR", "IRCFactory", "IRCProtocol", "IRCSettings"]
