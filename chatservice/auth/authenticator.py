"""
What the front ends call: :class:`Authenticator`, whose ``login()`` fires
with the :class:`~chatservice.auth.realm.Operator` avatar or fails with
:class:`LoginFailed`, whose message can be shown to the client as is.  (It
is not ``twisted.cred.error.LoginFailed``: that one stays inside the portal.)
"""

from __future__ import annotations

import math
import os
import unicodedata
from collections.abc import Callable
from typing import Any

from twisted.cred.credentials import UsernamePassword
from twisted.cred.error import UnauthorizedLogin
from twisted.cred.portal import Portal
from twisted.internet.defer import Deferred, fail
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from chatservice.auth.checker import CredentialsFileChecker, Runner
from chatservice.auth.credentials import MAX_NAME_LENGTH
from chatservice.auth.realm import IOperator, Operator, make_portal
from chatservice.auth.throttle import LoginThrottle, address_key


class LoginFailed(Exception):  # noqa: N818 (the name front ends know)
    """A refused login; ``message`` can be shown to the client as is."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        #: Seconds until the client may try again, when throttled.
        self.retry_after = retry_after


#: The message for a wrong password and for an unknown user alike.
LOGIN_FAILED = "login failed"

#: The kinds of failed logins :attr:`Authenticator.failures` counts.
LOGIN_FAILURE_KINDS = ("refused", "throttled", "error")


def _printable(text: str | None) -> str | None:
    """A user name or address safe to put in a log line."""
    if text is None or (len(text) <= 64 and text.isprintable()):
        return text
    return ascii(text[:64])


class Authenticator:
    """
    Logs administrators and operators in: throttling, then the portal.

    Each attempt is counted against the client's address (IPv6: its /64) and,
    separately, against the user name, from when it starts; either one being
    throttled (by failures, or by failures and attempts in progress together)
    refuses the attempt without checking the password.  A success forgets the user
    name's failures but not the address's, so an attacker cannot clear its
    count by logging in to an account of its own.

    Every success and failure is logged with the fields ``user``, ``address``
    and ``reason``; never the password.  Front ends should allow one pending
    login per connection.
    """

    log = Logger()

    def __init__(
        self, portal: Portal, clock: IReactorTime, throttle: LoginThrottle | None = None
    ) -> None:
        self.portal = portal
        self.clock = clock
        self.throttle = throttle if throttle is not None else LoginThrottle(clock)
        #: Failed logins by kind: ``refused`` (a wrong password, an unknown
        #: user), ``throttled``, ``error`` (``/stats``, ``chatservice.metrics``).
        self.failures = dict.fromkeys(LOGIN_FAILURE_KINDS, 0)

    @classmethod
    def from_file(
        cls,
        path: str | os.PathLike[str],
        clock: IReactorTime,
        throttle: LoginThrottle | None = None,
        *,
        run: Runner | None = None,
    ) -> Authenticator:
        """An authenticator for the users of a credentials file."""
        return cls(make_portal(CredentialsFileChecker(path, run)), clock, throttle)

    def login(
        self, username: str, password: str, address: str | None
    ) -> Deferred[Operator]:
        """
        Fire with the realm's :class:`Operator` avatar (its ``name`` is the
        user name) once the password is right, or fail with
        :class:`LoginFailed`: "login failed" for a wrong password or an
        unknown user, "too many failed logins; try again in N s" when
        throttled.
        """
        # No valid name is longer; a longer one must not take memory.
        name = unicodedata.normalize("NFC", username[: MAX_NAME_LENGTH * 4])
        keys = [f"user:{name[: MAX_NAME_LENGTH + 1]}"]
        if address is not None:
            keys.append(address_key(address))
        waits = [w for w in map(self.throttle.retry_after, keys) if w is not None]
        if waits:
            wait = max(waits)
            self._failed(username, address, "throttled")
            seconds = max(1, math.ceil(wait))
            return fail(
                LoginFailed(f"too many failed logins; try again in {seconds} s", wait)
            )
        # Counted from now on, not once the password check has failed: a
        # burst of parallel logins gets no more guesses than a sequence.
        for key in keys:
            self.throttle.begin(key)
        credentials = UsernamePassword(
            username.encode("utf-8", "surrogatepass"),
            password.encode("utf-8", "surrogatepass"),
        )
        attempt = self.portal.login(credentials, None, IOperator)

        def succeeded(result: tuple[Any, Any, Callable[[], None]]) -> Operator:
            avatar: Operator = result[1]
            self.throttle.succeeded(keys[0])
            for key in keys[1:]:
                self.throttle.ended(key)
            self.log.info(
                "login of {user} from {address} succeeded",
                user=_printable(avatar.name),
                address=_printable(address),
                reason="ok",
            )
            return avatar

        def failed(reason: Failure) -> Operator:
            if reason.check(UnauthorizedLogin):
                for key in keys:
                    self.throttle.failed(key)
                why = str(reason.value) or "unauthorized"
            else:
                for key in keys:
                    self.throttle.ended(key)
                self.log.failure(
                    "login of {user} from {address}: unexpected error",
                    reason,
                    user=_printable(username),
                    address=_printable(address),
                )
                why = "error"
            self._failed(username, address, why)
            raise LoginFailed(LOGIN_FAILED)

        return attempt.addCallbacks(succeeded, failed)

    def _failed(self, username: str, address: str | None, reason: str) -> None:
        kind = reason if reason in ("throttled", "error") else "refused"
        self.failures[kind] += 1
        self.log.warn(
            "login of {user} from {address} failed: {reason}",
            user=_printable(username),
            address=_printable(address),
            reason=reason,
        )
