"""
:class:`CredentialsFileChecker`: the ``twisted.cred`` checker for
``IUsernamePassword`` credentials against a credentials file, which it
re-reads when the file changes, verifying hashes off the reactor thread.
"""

from __future__ import annotations

import os
import unicodedata
from collections.abc import Callable
from typing import Any

from twisted.cred.checkers import ICredentialsChecker
from twisted.cred.credentials import IUsernamePassword
from twisted.cred.error import UnauthorizedLogin
from twisted.internet.defer import Deferred
from twisted.internet.threads import deferToThread
from twisted.logger import Logger
from zope.interface import implementer

from chatservice.auth.credentials import CredentialsFileError, read_credentials
from chatservice.auth.hashing import (
    MalformedHashError,
    dummy_hash,
    parse_hash,
    verify_password,
)

#: Runs a function off the reactor thread and gives its result.
Runner = Callable[[Callable[[], bool]], Deferred[bool]]


def _in_thread(function: Callable[[], bool]) -> Deferred[bool]:
    return deferToThread(function)


@implementer(ICredentialsChecker)
class CredentialsFileChecker:
    """
    Checks ``IUsernamePassword`` credentials against a credentials file.

    The file is looked at (``stat``) on every attempt and read again when
    its inode, size or modification time changed, so ``chatservice-passwd``
    takes effect without a restart.  A missing or unreadable file means that
    nobody can log in; that is logged once, when it happens.

    The scrypt verification runs through ``run`` (default:
    ``deferToThread``), never on the reactor thread.  An unknown user, or
    one whose stored hash is malformed, is checked against a random hash of
    the same cost, so the time taken does not tell which names exist; both
    fail with ``UnauthorizedLogin`` like a wrong password.  The avatar ID is
    the user name, UTF-8 encoded.
    """

    credentialInterfaces = (IUsernamePassword,)
    log = Logger()

    def __init__(self, path: str | os.PathLike[str], run: Runner | None = None) -> None:
        self.path = os.fspath(path)
        self._run: Runner = run if run is not None else _in_thread
        self._stamp: tuple[int, int, int, int] | None = None
        self._state: str | None = None
        self._users: dict[str, str] = {}
        self._malformed: set[str] = set()
        self._dummy = dummy_hash(None)

    def users(self) -> dict[str, str]:
        """The users as last read, reading the file again if it changed."""
        try:
            info = os.stat(self.path)
        except FileNotFoundError:
            self._unusable("missing", "no credentials file {path}: nobody can log in")
            return self._users
        except OSError as error:
            self._unusable(
                f"error {error.strerror}",
                "cannot read credentials file {path}: {error}; nobody can log in",
                error=error.strerror,
            )
            return self._users
        stamp = (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns)
        if stamp != self._stamp:
            self._load(stamp)
        return self._users

    def reload(self, path: str | os.PathLike[str] | None = None) -> int:
        """
        Read the file now, changed or not (``path``: another file, from now
        on): a reload (SIGHUP).  The number of users it holds.
        """
        if path is not None:
            self.path = os.fspath(path)
        self._stamp = None
        return len(self.users())

    def _unusable(self, state: str, message: str, **fields: Any) -> None:
        self._users = {}
        self._malformed = set()
        self._stamp = None
        if state != self._state:
            self._state = state
            self.log.error(message, path=self.path, **fields)

    def _load(self, stamp: tuple[int, int, int, int]) -> None:
        try:
            users = read_credentials(self.path)
        except FileNotFoundError:
            self._unusable("missing", "no credentials file {path}: nobody can log in")
            return
        except OSError as error:
            self._unusable(
                f"error {error.strerror}",
                "cannot read credentials file {path}: {error}; nobody can log in",
                error=error.strerror,
            )
            return
        except CredentialsFileError as error:
            self._unusable(
                f"invalid {error}",
                "invalid credentials file: {error}; nobody can log in",
                error=str(error),
            )
            # Read it again only once it has changed.
            self._stamp = stamp
            return
        malformed = set()
        like = None
        for name, encoded in users.items():
            try:
                parsed = parse_hash(encoded)
            except MalformedHashError as error:
                malformed.add(name)
                self.log.error(
                    "credentials file {path}: malformed hash for {user} ({error}); "
                    "that user cannot log in",
                    path=self.path,
                    user=name,
                    error=str(error),
                )
            else:
                like = like or parsed
        self._users = users
        self._malformed = malformed
        self._stamp = stamp
        self._state = "loaded"
        self._dummy = dummy_hash(like)
        self.log.info(
            "read credentials file {path}: {count} users",
            path=self.path,
            count=len(users),
        )

    def requestAvatarId(
        self, credentials: IUsernamePassword
    ) -> Deferred[bytes | tuple[()]]:
        """
        Fire with the user name (UTF-8) when the password matches, or fail
        with ``UnauthorizedLogin``.
        """
        users = self.users()
        try:
            name: str | None = unicodedata.normalize(
                "NFC", credentials.username.decode("utf-8")
            )
        except UnicodeDecodeError:
            name = None
        password = credentials.password.decode("utf-8", "surrogateescape")
        encoded = users.get(name) if name is not None else None
        if encoded is None:
            target, reason = self._dummy, "unknown user"
        elif name in self._malformed:
            target, reason = self._dummy, "malformed stored hash"
        else:
            target, reason = encoded, "wrong password"

        def check(matches: bool) -> bytes | tuple[()]:
            if matches and target is encoded and name is not None:
                return name.encode("utf-8")
            raise UnauthorizedLogin(reason)

        return self._run(lambda: verify_password(password, target)).addCallback(check)
