"""
The chat's native door: :mod:`~chatservice.doors.native.protocol` (the
protocol, its commands and factory) and :mod:`~chatservice.doors.native.render`
(how events and refusals look on the wire).
"""
