"""
The client's name, which its messages begin with, and its exit statuses
(``docs/client.rst``): the line client, its command line and the full
screen share them.
"""

from __future__ import annotations

PROG = "chatservice-client"

#: Exit statuses.
EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
