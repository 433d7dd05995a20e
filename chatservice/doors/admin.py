"""
The admin console: a line protocol for the server's administrators, behind
``twisted.cred`` credentials.  Off unless ``--admin`` names an endpoint
(a UNIX socket, or TCP on loopback).

A session looks like::

    *** chatservice admin console. Log in with: login NAME PASSWORD
    login root s3cret
    --- logged in as root; help lists commands
    broadcast Server restarts in 5 minutes
    --- announced to 12 clients
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from twisted.internet.interfaces import IReactorTime

from chatservice.chat.errors import ChatError
from chatservice.conn.limits import Limits
from chatservice.doors.door import OFF, Door, DoorContext
from chatservice.doors.line import (
    ANNOUNCEMENT_PREFIX,
    REPLY_PREFIX,
    LineFactory,
    LineProtocol,
)
from chatservice.doors.native.render import render_error
from chatservice.doors.operations import COMMANDS, Operations

if TYPE_CHECKING:
    from chatservice.doors.line import Authenticator

ANNOUNCEMENT = ANNOUNCEMENT_PREFIX
REPLY = REPLY_PREFIX


class AdminProtocol(LineProtocol):
    """One administrator's console connection."""

    factory: AdminFactory
    flood_controlled = True
    #: The credentials name this console logged in with.
    account: str | None = None

    def connectionAdmitted(self) -> None:
        self.sendText(
            f"{ANNOUNCEMENT}chatservice admin console. Log in with: login NAME PASSWORD"
        )

    late_message = "not logged in within {timeout:g} s; closing"

    def reply(self, text: str) -> None:
        self.sendText(REPLY + text)

    def textReceived(self, text: str) -> None:
        word, _, args = text.strip().partition(" ")
        command = word.lower().lstrip("/")
        if not command:
            return
        if command in ("quit", "exit", "q"):
            self.close(f"{REPLY}Goodbye.")
        elif command == "help":
            self._help()
        elif command == "login":
            self._login(args)
        elif self.account is None:
            self.sendError("log in first: login NAME PASSWORD")
        else:
            try:
                lines = self.factory.operations.run(
                    command, args, f"admin {self.account}"
                )
            except ChatError as error:
                self.sendError(render_error(error))
            else:
                for line in lines:
                    self.reply(line)

    def _help(self) -> None:
        self.reply("login NAME PASSWORD: log in")
        for name, (args, text) in COMMANDS.items():
            self.reply(f"{name} {args}".rstrip() + f": {text}")
        self.reply("quit: close the console")

    def _login(self, args: str) -> None:
        name, _, password = args.strip().partition(" ")
        if not name or not password:
            self.sendError("usage: login NAME PASSWORD")
            return
        address = self.host or "local"
        self.checkLogin(
            self.factory.authenticator, name, password, address, self._logged_in
        )

    def _logged_in(self, account: str) -> None:
        if not self.register():
            return
        self.account = account
        self.reply(f"logged in as {account}; help lists commands")


class AdminFactory(LineFactory):
    """Builds :class:`AdminProtocol` connections."""

    protocol = AdminProtocol
    name = "admin"
    shutdown_message = f"{ANNOUNCEMENT}Server shutting down. Goodbye."

    def __init__(
        self,
        operations: Operations,
        authenticator: Authenticator,
        limits: Limits | None = None,
        clock: IReactorTime | None = None,
    ) -> None:
        super().__init__(limits, clock)
        self.operations = operations
        self.authenticator = authenticator


def _build(context: DoorContext) -> AdminFactory:
    chat = context.chat
    # Options makes sure --credentials comes with --admin.
    assert chat.authenticator is not None
    return AdminFactory(
        chat.operations, chat.authenticator, context.limits, context.reactor
    )


DOOR = Door(
    name="admin",
    summary=("the admin console, e.g. unix:admin.sock or tcp:6667:interface=127.0.0.1"),
    default_endpoint=OFF,
    build=_build,
    private=True,
    needs_credentials=True,
)
