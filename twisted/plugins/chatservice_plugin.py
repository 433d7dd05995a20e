"""The ``twistd chatservice`` plugin; everything else is in chatservice.tap."""

from twisted.application.service import ServiceMaker

chatservice = ServiceMaker(
    "chatservice",
    "chatservice.tap",
    "Echo, uppercase and chat-room line services.",
    "chatservice",
)
