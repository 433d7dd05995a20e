"""
The ``twistd chatservice`` plugin; everything else is in chatservice.tap
(run through chatservice.plugin).
"""

from twisted.application.service import ServiceMaker

chatservice = ServiceMaker(
    "chatservice",
    "chatservice.plugin",
    "Echo, uppercase and chat-room line services.",
    "chatservice",
)
