"""
What ``twistd chatservice`` runs (the plugin in ``twisted/plugins`` names
this module): :mod:`chatservice.tap`'s options and service, and, on this
path only, what belongs to the whole process: a one-line report of a failure
to listen that ends it
(:func:`~chatservice.service.report_listen_errors_briefly`), a reload on
SIGHUP (:mod:`chatservice.reload`) and one stop for any number of SIGTERMs
(:mod:`chatservice.stopping`).  Code that imports :mod:`chatservice.tap`
to build a service of its own keeps its ``sys.excepthook`` and its
signal handlers.
"""

from __future__ import annotations

from twisted.application.service import IService

from chatservice.service import ChatService, report_listen_errors_briefly
from chatservice.tap import Options

__all__ = ["Options", "makeService"]


def makeService(config: Options) -> IService:
    """:func:`chatservice.tap.makeService`, for twistd."""
    from twisted.internet import reactor

    from chatservice import tap
    from chatservice.reload import add_reload
    from chatservice.stopping import SignalsOnce

    report_listen_errors_briefly()
    service = tap.makeService(config)
    if isinstance(service, ChatService):
        add_reload(service, config, reactor, tap.DOORS)
        SignalsOnce(reactor).setServiceParent(service)
    return service
