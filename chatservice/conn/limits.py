"""
The limits every front end shares, in one configuration object.

Each field has a documented default (``docs/limits.rst``) and a command-line
option in :mod:`chatservice.tap`.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Limits:
    """What one connection, and one listening service, may cost the server."""

    #: Longest accepted line in bytes, without its terminator.
    max_line_length: int = 4096
    #: Seconds without any input before a connection is closed (0: never).
    idle_timeout: float = 600.0
    #: Registered connections one listening service holds at once (0: no
    #: limit): chat clients with a nickname, logged-in administrators, echo
    #: and uppercase clients that sent a first line.
    max_clients: int = 1000
    #: Connections still registering that one listening service holds at
    #: once (0: no limit); past it, the oldest of them is closed to make room.
    max_strangers: int = 128
    #: Connections one listening port accepts in one reactor turn (0:
    #: Twisted's own batch, 100 and growing): a storm is spread over turns,
    #: and what members send is read in between.
    max_accepts_per_turn: int = 32
    #: Seconds a new connection has to register (0: no limit); input does
    #: not extend it.
    registration_timeout: float = 20.0
    #: Connections one IP address may hold on one service at once (0: no limit).
    max_per_address: int = 16
    #: Seconds a closing connection gets to read what is queued for it.
    close_grace: float = 5.0
    #: Bytes that may wait for a client that does not read, beyond the 64 KiB
    #: the transport buffers anyway; past it the client is cut off.
    max_send_queue: int = 256 * 1024
    #: Seconds a started line may take to end (slowloris); 0: no limit.
    line_timeout: float = 60.0
    #: Lines a client may send at once before flood control slows it down
    #: (chat and admin console).
    flood_burst: int = 20
    #: Lines per second a client may send in the long run (0: no flood control).
    flood_rate: float = 5.0
    #: Seconds a client may keep flooding (held back all along) before it is
    #: disconnected.
    flood_disconnect: float = 60.0
