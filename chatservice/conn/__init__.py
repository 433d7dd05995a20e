"""
Connection policy every door shares, whatever its framing: admission (in
total and per address), the idle sweep, flood control, and the outbox
(order, send queue, backpressure, write-through), each in its own module,
plus the end of the reactor turn (:mod:`~chatservice.conn.turns`) and the
limits they read (:mod:`~chatservice.conn.limits`).
"""
