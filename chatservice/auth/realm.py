"""
The ``twisted.cred`` realm: :class:`IOperator`, its :class:`Operator`
avatar, :class:`OperatorRealm` and :func:`make_portal`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from twisted.cred.checkers import ICredentialsChecker
from twisted.cred.portal import IRealm, Portal
from zope.interface import Attribute, Interface, implementer


class IOperator(Interface):
    """A user of the credentials file: a chat operator or an administrator."""

    name = Attribute("The user name, as in the credentials file (str).")


@implementer(IOperator)
@dataclass(frozen=True)
class Operator:
    """The avatar of a logged-in operator."""

    name: str


def _logout() -> None:
    """Nothing to clean up when an operator goes."""


@implementer(IRealm)
class OperatorRealm:
    """Gives an :class:`Operator` for each authenticated user name."""

    def requestAvatar(
        self, avatarId: bytes | tuple[()], mind: object, *interfaces: Any
    ) -> tuple[Any, object, Callable[[], None]]:
        if IOperator not in interfaces:
            raise NotImplementedError("OperatorRealm only gives IOperator avatars")
        if not isinstance(avatarId, bytes):
            raise NotImplementedError("OperatorRealm has no anonymous avatars")
        return IOperator, Operator(avatarId.decode("utf-8")), _logout


def make_portal(checker: ICredentialsChecker) -> Portal:
    """A portal to an :class:`OperatorRealm` guarded by ``checker``."""
    return Portal(OperatorRealm(), [checker])
