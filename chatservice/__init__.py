"""chatservice: echo, uppercase and chat-room line services for Twisted."""

__version__ = "0.1.0"
