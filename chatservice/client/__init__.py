"""
``chatservice-client``: a line client for the chatservice front ends.

It joins a terminal (or a pipe) to one connection, full duplex: every line
read from standard input is sent as soon as it is complete, every line from
the server is printed as soon as it arrives.  The pieces are small and
tested separately, one module each:

- :mod:`~chatservice.client.endpoints`: :func:`parse_endpoint` and
  :func:`make_endpoint` turn ``HOST:PORT``, ``[V6]:PORT``, a bare ``PORT``
  or a Twisted client endpoint string into an endpoint (``--tls``:
  :mod:`~chatservice.client.tls`, which checks the server's certificate);
- :mod:`~chatservice.client.render`: :func:`visible`, :func:`choose_color`
  and :class:`Renderer` turn a line of the chat wire format into what is
  printed;
- :mod:`~chatservice.client.protocols`: :class:`NetworkProtocol` (the
  connection) and :class:`TerminalProtocol` (standard input and output)
  only frame lines and report to
- :mod:`~chatservice.client.session`: :class:`Session`, which forwards
  lines, half-closes the connection when the input ends, and decides the
  exit status;
- :mod:`~chatservice.client.options` (the command line),
  :mod:`~chatservice.client.login` (the admin console's login) and
  :mod:`~chatservice.client.command`: :func:`main` parses the command line,
  asks the admin password before the reactor starts, and runs everything
  with :func:`twisted.internet.task.react`;
- :mod:`~chatservice.client.screen`: the full screen, on a terminal.

The names below are importable from here, as they were from the single
module this package was.
"""

from __future__ import annotations

from chatservice.chat.text import visible
from chatservice.client.command import Config, main, run
from chatservice.client.endpoints import (
    DEFAULT_HOST,
    EndpointError,
    HostPort,
    describe_connect_error,
    endpoint_types,
    make_endpoint,
    parse_endpoint,
)
from chatservice.client.exits import (
    EXIT_FAILURE,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    PROG,
)
from chatservice.client.login import (
    LoginError,
    ask_credentials,
    check_password,
    check_user,
    login_line,
    read_line_from_fd,
    read_password_file,
)
from chatservice.client.options import build_parser
from chatservice.client.protocols import (
    LINE_END,
    MAX_LINE_LENGTH,
    FlowControl,
    NetworkProtocol,
    NetworkSide,
    TerminalProtocol,
    Transport,
    is_quit_line,
)
from chatservice.client.render import (
    NICK_COLORS,
    ColorMode,
    Renderer,
    choose_color,
    colorize,
    nick_color,
    sgr,
)
from chatservice.client.session import DEFAULT_TLS_QUIET, TLS_WAIT_FACTOR, Session

__all__ = [
    "DEFAULT_HOST",
    "DEFAULT_TLS_QUIET",
    "EXIT_FAILURE",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_USAGE",
    "LINE_END",
    "MAX_LINE_LENGTH",
    "NICK_COLORS",
    "PROG",
    "TLS_WAIT_FACTOR",
    "ColorMode",
    "Config",
    "EndpointError",
    "FlowControl",
    "HostPort",
    "LoginError",
    "NetworkProtocol",
    "NetworkSide",
    "Renderer",
    "Session",
    "TerminalProtocol",
    "Transport",
    "ask_credentials",
    "build_parser",
    "check_password",
    "check_user",
    "choose_color",
    "colorize",
    "describe_connect_error",
    "endpoint_types",
    "is_quit_line",
    "login_line",
    "main",
    "make_endpoint",
    "nick_color",
    "parse_endpoint",
    "read_line_from_fd",
    "read_password_file",
    "run",
    "sgr",
    "visible",
]
