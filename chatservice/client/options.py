"""
The command line of ``chatservice-client`` (:func:`build_parser`): its
options, its help, and usage errors in one line.
"""

from __future__ import annotations

import argparse
from typing import NoReturn

from chatservice import __version__
from chatservice.client.exits import EXIT_USAGE, PROG
from chatservice.client.protocols import TLS_HANDSHAKE_TIMEOUT
from chatservice.client.session import DEFAULT_TLS_QUIET


class _Parser(argparse.ArgumentParser):
    """Usage errors in one line (``chatservice-client: error: ...``)."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see --help)\n")


def _seconds(text: str) -> float:
    """A number of seconds for an option: finite, 0 or more."""
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``chatservice-client``."""
    parser = _Parser(
        prog=PROG,
        description=(
            "Connect to a chatservice server (echo, uppercase, chat or admin "
            "console) and exchange lines: every line read from standard input "
            "is sent, every line from the server is printed. When standard "
            "input ends, the client sends what is left, half-closes the "
            "connection, prints the remaining replies and exits."
        ),
        epilog=(
            "ENDPOINT is HOST:PORT (localhost:12000, [::1]:6666), a bare PORT "
            "(on localhost), or a Twisted client endpoint string "
            "(tcp:host=HOST:port=PORT, unix:path=/x.sock or unix:/x.sock, "
            "ssl:host=HOST:port=PORT:caCertsDir=DIR, tls:HOST:PORT). "
            "Typing exit, quit, q (any case) or a line starting with /quit "
            "asks the server to end the session. "
            "On a terminal, lines of the chat format are coloured (unless "
            "NO_COLOR is set) and control characters from the server are shown "
            "as ^[ and the like; in a pipe, lines are printed as received. "
            "Exit status: 0 when the server closes after the input ended or "
            "after a quit word; 1 when the connection fails or the server "
            "closes first; 2 for a usage error; 130 when interrupted."
        ),
    )
    parser.add_argument("endpoint", metavar="ENDPOINT", help="where to connect")
    parser.add_argument(
        "--color",
        choices=("auto", "always", "never"),
        default="auto",
        help=(
            "colour the chat format: auto (default) when standard output is "
            "a terminal and NO_COLOR is not set, always, or never"
        ),
    )
    screen = parser.add_argument_group(
        "full screen",
        "When standard input and output are a terminal, the client shows a "
        "full screen: the conversation, a status line and the input line "
        "(see docs/client.rst for the keys). Piped use is unchanged.",
    )
    screen.add_argument(
        "--no-screen",
        action="store_true",
        help="on a terminal too, read and print plain lines as in a pipe",
    )
    screen.add_argument(
        "--no-reconnect",
        action="store_true",
        help="end when the connection drops instead of reconnecting",
    )
    screen.add_argument(
        "--no-bell",
        action="store_true",
        help="no terminal bell when your nickname is mentioned",
    )
    tls = parser.add_argument_group(
        "TLS",
        "With --tls, HOST:PORT is reached over TLS and the server's "
        "certificate is checked: signed by an authority the system trusts "
        "(or one of --ca FILE), valid now, and for HOST. A certificate that "
        "fails is refused with the reason. TLS cannot be half-closed: when "
        "the input ends, the client waits for the server's replies until it "
        "has been quiet for --tls-quiet seconds (10 times that at most), "
        "then closes.",
    )
    tls.add_argument(
        "--tls", action="store_true", help="connect over TLS, verifying the server"
    )
    tls.add_argument(
        "--ca",
        metavar="FILE",
        help="trust the certificates of this PEM file (a private CA, or a "
        "self-signed server certificate) instead of the system's; implies --tls",
    )
    tls.add_argument(
        "--tls-quiet",
        metavar="SECONDS",
        type=_seconds,
        default=DEFAULT_TLS_QUIET,
        help=f"after the input ends on TLS, close once the server has been "
        f"quiet this long (default {DEFAULT_TLS_QUIET:g})",
    )
    tls.add_argument(
        "--tls-timeout",
        metavar="SECONDS",
        type=_seconds,
        default=TLS_HANDSHAKE_TIMEOUT,
        help="give up when the TLS handshake has not completed in this long "
        "(a plain-text port never answers it; 0: wait for ever; default "
        f"{TLS_HANDSHAKE_TIMEOUT:g})",
    )
    admin = parser.add_argument_group(
        "admin console",
        "With --admin, the first line sent is 'login NAME PASSWORD'; the name "
        "is asked for (Username:) unless --user is given, the password is "
        "asked for without echo unless --password-file is given. Both are "
        "asked before connecting.",
    )
    admin.add_argument(
        "--admin",
        action="store_true",
        help="log in to the admin console (usually unix:admin.sock)",
    )
    admin.add_argument("--user", metavar="NAME", help="admin user name")
    admin.add_argument(
        "--password-file",
        metavar="FILE",
        help="read the admin password from the first line of FILE (for scripts)",
    )
    parser.add_argument(
        "--version", action="version", version=f"%(prog)s {__version__}"
    )
    return parser
