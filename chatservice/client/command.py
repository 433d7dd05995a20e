"""
The ``chatservice-client`` command: :func:`main` reads the command line,
asks the admin password before the reactor starts, and runs :func:`run`
with :func:`twisted.internet.task.react`: the line client on a pipe, the
full screen (:mod:`chatservice.client.screen`) on a terminal.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any

from twisted.internet.endpoints import connectProtocol
from twisted.internet.interfaces import IStreamClientEndpoint

from chatservice.client.endpoints import EndpointError, make_endpoint
from chatservice.client.exits import (
    EXIT_FAILURE,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    PROG,
)
from chatservice.client.login import LoginError, ask_credentials
from chatservice.client.options import build_parser
from chatservice.client.protocols import (
    TLS_HANDSHAKE_TIMEOUT,
    NetworkProtocol,
    TerminalProtocol,
)
from chatservice.client.render import ColorMode, Renderer, choose_color
from chatservice.client.session import DEFAULT_TLS_QUIET, Session


@dataclass(frozen=True)
class Config:
    """What :func:`run` needs, once the command line is read."""

    #: The endpoint argument as given, for messages.
    name: str
    endpoint: IStreamClientEndpoint
    color: ColorMode = "auto"
    login: bytes | None = None
    #: The full-screen client (standard input and output are a terminal).
    screen: bool = False
    #: Reconnect when the connection drops (full screen only).
    reconnect: bool = True
    #: Ring the terminal bell when one's nickname is mentioned.
    bell: bool = True
    #: After the input ends on TLS: how long the server must be quiet.
    tls_quiet: float = DEFAULT_TLS_QUIET
    #: How long the TLS handshake may take.
    tls_timeout: float = TLS_HANDSHAKE_TIMEOUT


def _report(line: str) -> None:
    try:
        sys.stderr.write(line + "\n")
        sys.stderr.flush()
    except OSError:
        pass


def _usage_error(message: str, *, hint: bool = True) -> int:
    _report(f"{PROG}: error: {message}" + (" (see --help)" if hint else ""))
    return EXIT_USAGE


def _isatty(fd: int) -> bool:
    try:
        return os.isatty(fd)
    except OSError:
        return False


async def run(reactor: Any, config: Config) -> None:
    """
    Connect and exchange lines until the session ends; a non-zero status
    leaves as ``SystemExit``, which :func:`~twisted.internet.task.react`
    turns into the exit status.
    """
    if config.screen:
        from chatservice.client.screen import run_screen

        status = await run_screen(
            reactor,
            config.name,
            config.endpoint,
            color=choose_color(config.color, True, os.environ),
            login=config.login,
            reconnect=config.reconnect,
            bell=config.bell,
            report=_report,
            environ=os.environ,
            tls_timeout=config.tls_timeout,
        )
        if status:
            raise SystemExit(status)
        return
    from twisted.internet.stdio import StandardIO

    renderer = Renderer.for_output(config.color, _isatty(1), os.environ)
    session = Session(
        renderer,
        _report,
        login=config.login,
        clock=reactor,
        tls_quiet=config.tls_quiet,
    )
    # Ctrl-C stops the reactor; the session then ends with 130.
    reactor.addSystemEventTrigger("before", "shutdown", session.interrupted)
    StandardIO(TerminalProtocol(session), reactor=reactor)
    try:
        await connectProtocol(
            config.endpoint, NetworkProtocol(session, reactor, config.tls_timeout)
        )
    except Exception as problem:
        session.connectFailed(config.name, problem)
    code = await session.done
    if code:
        raise SystemExit(code)


@contextmanager
def _blocking_restored(fds: Sequence[int] = (0, 1, 2)) -> Iterator[None]:
    """
    ``StandardIO`` makes standard input and output non-blocking, which a
    shell sharing the terminal does not expect: put the flags back.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover (Windows)
        yield
        return
    saved: dict[int, int] = {}
    for fd in fds:
        with suppress(OSError):
            saved[fd] = fcntl.fcntl(fd, fcntl.F_GETFL)
    try:
        yield
    finally:
        for fd, flags in saved.items():
            with suppress(OSError):
                fcntl.fcntl(fd, fcntl.F_SETFL, flags)


def _install_asyncio_reactor() -> bool:
    """
    Install Twisted's asyncio reactor (the full screen runs
    ``prompt_toolkit`` on it); ``False`` if another reactor is installed.
    """
    if "twisted.internet.reactor" in sys.modules:
        from twisted.internet import reactor
        from twisted.internet.asyncioreactor import AsyncioSelectorReactor

        return isinstance(reactor, AsyncioSelectorReactor)
    import asyncio

    from twisted.internet import asyncioreactor

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    asyncioreactor.install(loop)
    return True


def main(argv: Sequence[str] | None = None) -> int:
    """
    The ``chatservice-client`` command.  Returns the status of a usage error
    or of an interrupted prompt; otherwise it runs the reactor and leaves
    with ``SystemExit`` (from :func:`~twisted.internet.task.react`).
    """
    options = build_parser().parse_args(argv)
    if not options.admin and (
        options.user is not None or options.password_file is not None
    ):
        return _usage_error("--user and --password-file need --admin")
    screen = not options.no_screen and _isatty(0) and _isatty(1)
    if screen:
        screen = _install_asyncio_reactor()
    from twisted.internet import reactor

    try:
        endpoint = make_endpoint(
            reactor,
            options.endpoint,
            tls=options.tls or options.ca is not None,
            ca_file=options.ca,
        )
    except EndpointError as problem:
        return _usage_error(str(problem))
    login = None
    if options.admin:
        try:
            login = ask_credentials(options.user, options.password_file)
        except LoginError as problem:
            return _usage_error(str(problem), hint=False)
        except KeyboardInterrupt:
            _report("")
            return EXIT_INTERRUPTED
        except EOFError:
            _report(f"{PROG}: no password given")
            return EXIT_FAILURE
    config = Config(
        options.endpoint,
        endpoint,
        options.color,
        login,
        screen=screen,
        reconnect=not options.no_reconnect,
        bell=not options.no_bell,
        tls_quiet=options.tls_quiet,
        tls_timeout=options.tls_timeout,
    )
    from twisted.internet import task

    with _blocking_restored():
        try:
            task.react(run, (config,), reactor)
        except KeyboardInterrupt:  # before the reactor handles SIGINT
            return EXIT_INTERRUPTED
    return EXIT_OK  # pragma: no cover (react always exits)
