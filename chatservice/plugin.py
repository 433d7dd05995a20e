"""
What ``twistd chatservice`` runs (the plugin in ``twisted/plugins`` names
this module): :mod:`chatservice.tap`'s options and service, and, on this
path only, a one-line report of a failure to listen that ends the process
(:func:`~chatservice.service.report_listen_errors_briefly`).  Code that
imports :mod:`chatservice.tap` to build a service of its own keeps its
``sys.excepthook``.
"""

from __future__ import annotations

from twisted.application.service import IService

from chatservice.service import report_listen_errors_briefly
from chatservice.tap import Options

__all__ = ["Options", "makeService"]


def makeService(config: Options) -> IService:
    """:func:`chatservice.tap.makeService`, for twistd."""
    from chatservice import tap

    report_listen_errors_briefly()
    return tap.makeService(config)
