"""
SIGHUP: reload what can change while the chat runs.

:class:`Reloader` parses the command line again (and so reads the
``--config`` file again, and the files it names: the message of the day,
the credentials file), checks it all as at start-up, and applies what is
safe to change at run time (:data:`RELOADABLE`): the message of the day, the
credentials file, the limits.  Anything else that changed (an endpoint, the
history, a door's own option) is logged as needing a restart and left as it
runs.  A file that does not parse or check is refused, logged, and nothing
changes.  :class:`ReloadService` calls it on SIGHUP.
"""

from __future__ import annotations

import copy
import signal
from collections.abc import Sequence
from dataclasses import dataclass, fields, replace
from types import FrameType
from typing import Any

from twisted.application.service import Service
from twisted.cred.credentials import IUsernamePassword
from twisted.internet.interfaces import IReactorFromThreads, IReactorTime
from twisted.logger import Logger
from twisted.python import usage

from chatservice.auth.checker import CredentialsFileChecker
from chatservice.auth.credentials import CredentialsFileError, read_credentials
from chatservice.conn.limits import Limits
from chatservice.doors.door import Door, DoorContext
from chatservice.service import ChatService, ListeningService

#: The limits' options: every field of :class:`Limits`, named as its option.
LIMIT_OPTIONS = frozenset(field.name.replace("_", "-") for field in fields(Limits))

#: The options a reload applies; any other change needs a restart.
RELOADABLE = frozenset({"motd-file", "credentials", *LIMIT_OPTIONS})


@dataclass(frozen=True)
class Reload:
    """What one reload did."""

    #: What it applied: options, and ``motd`` when only the file's lines
    #: changed, ``credentials`` when the credentials file was read again.
    reloaded: tuple[str, ...]
    #: Options (and doors' endpoints) that changed but need a restart.
    needs_restart: tuple[str, ...]


class Reloader:
    """Reloads one running chat from its command line and ``--config`` file."""

    log = Logger()

    def __init__(
        self,
        options: Any,
        chat: ChatService,
        reactor: IReactorTime,
        doors: Sequence[Door],
    ) -> None:
        #: The options the chat runs with (updated by each reload).
        self.options = options
        self.chat = chat
        self.reactor = reactor
        self.doors = {door.name: door for door in doors}

    def reload(self) -> Reload | None:
        """
        Read everything again and apply what may change at run time; ``None``
        (logged, nothing changed) when the new options are refused.
        """
        running = self.options
        path = running.config_file.path if running.config_file else None
        fresh = type(running)()
        fresh.reloading = True
        try:
            fresh.parseOptions(running.command_line)
            self._check_credentials(fresh["credentials"])
        except (usage.UsageError, OSError, CredentialsFileError) as error:
            self.log.error(
                "reload refused, nothing changed: {error}",
                error=str(error),
                config=path,
            )
            return None
        changed = [key for key in fresh if fresh[key] != running.get(key)]
        changed += [
            door
            for door, given in fresh.endpoints.items()
            if given != running.endpoints.get(door)
        ]
        if not (running["credentials"] and fresh["credentials"]):
            # On or off: the doors are built with credentials or without.
            reloadable = RELOADABLE - {"credentials"}
        else:
            reloadable = RELOADABLE
        applied = [key for key in changed if key in reloadable]
        needs_restart = tuple(sorted(set(changed) - reloadable))
        # What the chat runs with from now on: the old options, with what
        # is applied taken from the new ones.
        target = copy.copy(running)
        for key in applied:
            target[key] = fresh[key]
        target.limits = fresh.limits
        target.motd = fresh.motd
        if fresh.motd != running.motd and "motd-file" not in applied:
            applied.append("motd")  # the same file, new lines
        if self._reload_credentials(running["credentials"], fresh["credentials"]):
            applied.append("credentials")
        self._apply(target, running)
        self.options = target
        reloaded = tuple(sorted(set(applied)))
        self.log.info(
            "reloaded {config}: {reloaded_text}{restart_text}",
            config=path or "the command line",
            reloaded=list(reloaded),
            needs_restart=list(needs_restart),
            reloaded_text=", ".join(reloaded) or "nothing changed",
            restart_text=(
                f"; changed but kept until a restart: {', '.join(needs_restart)}"
                if needs_restart
                else ""
            ),
        )
        return Reload(reloaded, needs_restart)

    def _check_credentials(self, path: str | None) -> None:
        """A new credentials file must be readable and valid to be taken."""
        if path and path != self.options["credentials"]:
            read_credentials(path)

    def _reload_credentials(self, before: str | None, after: str | None) -> bool:
        """
        Read the credentials file again (another one if ``--credentials``
        changed); whether anything was read.  Turning credentials on or off
        needs a restart (the doors are built with or without them).
        """
        checker = self._checker()
        if checker is None or not before or not after:
            return False
        users = checker.reload(after if after != before else None)
        self.log.info(
            "credentials file {path}: {users} users", path=checker.path, users=users
        )
        return True

    def _checker(self) -> CredentialsFileChecker | None:
        portal = getattr(self.chat.authenticator, "portal", None)
        checkers = getattr(portal, "checkers", {})
        checker = checkers.get(IUsernamePassword)
        return checker if isinstance(checker, CredentialsFileChecker) else None

    def _apply(self, target: Any, running: Any) -> None:
        """Give every door's factory the limits and lines ``target`` has."""
        context = DoorContext(self.reactor, target, target.limits, self.chat)
        for factory in self._factories():
            door = self.doors.get(factory.name)
            if door is None:
                continue
            # What the door would be built with now: its own options
            # (chat-idle-timeout, ...) on the shared limits.
            fresh = door.build(context)
            # A ConnectionFactory, or a door's factory that passes them on to
            # its own (the web door's Site).
            limits = getattr(fresh, "limits", None)
            set_limits = getattr(factory, "set_limits", None)
            if (
                isinstance(limits, Limits)
                and set_limits is not None
                and limits != factory.limits
            ):
                set_limits(limits)
            settings = getattr(factory, "settings", None)
            motd = getattr(getattr(fresh, "settings", None), "motd", None)
            if settings is not None and motd is not None and settings.motd != motd:
                factory.settings = replace(settings, motd=motd)
        if target["max-clients"] != running["max-clients"]:
            # The chat's own count (what /limit changes too).
            self.chat.hub.set_max_clients(target.limits.max_clients)

    def _factories(self) -> list[Any]:
        """Every door's factory once (a door's endpoints share it)."""
        factories: dict[int, Any] = {}
        for service in self.chat:
            if isinstance(service, ListeningService):
                factories.setdefault(id(service.factory), service.factory)
        return list(factories.values())


class ReloadService(Service):
    """Reloads on SIGHUP while running; the previous handler back at stop."""

    def __init__(self, reloader: Reloader, reactor: IReactorFromThreads) -> None:
        self.setName("reload")
        self.reloader = reloader
        self.reactor = reactor
        self._previous: Any = None

    def startService(self) -> None:
        super().startService()
        self._previous = signal.signal(signal.SIGHUP, self._hangup)

    def _hangup(self, number: int, frame: FrameType | None) -> None:
        # A signal handler interrupts whatever runs: reload on the reactor.
        self.reactor.callFromThread(self.reloader.reload)

    def stopService(self) -> Any:
        if self._previous is not None:
            signal.signal(signal.SIGHUP, self._previous)
            self._previous = None
        return super().stopService()


def add_reload(
    chat: ChatService, options: Any, reactor: Any, doors: Sequence[Door]
) -> Reloader:
    """Make ``chat`` reload on SIGHUP while it runs (a child service)."""
    reloader = Reloader(options, chat, reactor, doors)
    ReloadService(reloader, reactor).setServiceParent(chat)
    return reloader
