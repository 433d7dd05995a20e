"""
systemd socket activation: a door on a listening socket that systemd (a
socket unit, or ``systemd-socket-activate``) passes to the process, with
Twisted's ``systemd:domain=INET6:name=chat`` endpoint (``docs/deployment.rst``,
"Socket activation").  What :mod:`chatservice.tap` checks of one before
anything starts.
"""

from __future__ import annotations

import os
import socket

from twisted.internet.endpoints import AdoptedStreamServerEndpoint
from twisted.python import usage


def is_inherited_endpoint(description: str) -> bool:
    """
    Whether a server endpoint is a listening socket passed by systemd
    (``systemd:domain=INET:name=chat``).
    """
    return description.partition(":")[0].strip().lower() == "systemd"


def check_inherited(
    service: str, description: str, endpoint: AdoptedStreamServerEndpoint
) -> None:
    """
    A socket from systemd must be of the ``domain=`` the endpoint says:
    Twisted would take an IPv6 socket's addresses for IPv4 ones (and limit
    clients per garbled address).  Raise a usage error saying which it is.
    """
    try:
        with socket.socket(fileno=os.dup(endpoint.fileno)) as inherited:
            family = inherited.family
    except OSError as error:
        raise usage.UsageError(
            f"--{service} {description!r}: the socket systemd passed is "
            f"unusable: {error.strerror or error}"
        ) from None
    if family != endpoint.addressFamily:
        domain = family.name.removeprefix("AF_")
        raise usage.UsageError(
            f"--{service} {description!r}: systemd passed an {domain} socket; "
            f"say domain={domain}"
        )
