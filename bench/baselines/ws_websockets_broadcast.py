"""
Baseline: a WebSocket broadcast server on the ``websockets`` library
(asyncio), as its documentation broadcasts: ``websockets.broadcast`` of
each message to every member.  It speaks ``ws_chat.py``'s JSON at
``/ws``; needs ``pip install websockets`` (``bench/run.py`` says so and
goes on without it when it is missing).

Usage: ``python bench/baselines/ws_websockets_broadcast.py PORT`` (127.0.0.1).
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

from websockets import broadcast
from websockets.asyncio.server import serve
from ws_chat import Room

room = Room()


async def member(connection: Any) -> None:
    try:
        async for text in connection:
            if not isinstance(text, str):
                continue
            answer, said = room.received(connection, text)
            if answer is not None:
                await connection.send(answer)
            if said is not None:
                broadcast(room.members, said)
    finally:
        room.left(connection)


async def main() -> None:
    # No pings, no compression, messages up to the door's default 16 KiB.
    async with serve(
        member,
        "127.0.0.1",
        int(sys.argv[1]),
        ping_interval=None,
        compression=None,
        max_size=16384,
    ) as server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
