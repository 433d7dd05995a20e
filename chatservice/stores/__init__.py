"""
Stores keep what the chat remembers: room history (and, later, topics and
bans across restarts).

:class:`~chatservice.stores.base.HistoryStore` is the interface the hub
calls; :class:`~chatservice.stores.memory.MemoryHistoryStore` keeps the last
messages of each room in memory, lost at exit.
"""
