"""
Baseline: the echo server of the asyncio documentation, with streams
(``readline``, ``write``, ``drain`` per line) on the default event loop.

``--upper`` answers each line decoded, upper-cased and encoded again.

Usage: ``python bench/baselines/asyncio_streams_echo.py PORT [--upper]``
(listens on 127.0.0.1 only).
"""

from __future__ import annotations

import asyncio
import sys


async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while line := await reader.readline():
            writer.write(line)
            await writer.drain()
    except (ConnectionError, asyncio.LimitOverrunError, ValueError):
        pass
    finally:
        writer.close()


async def upper(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while line := await reader.readline():
            writer.write(line.decode("utf-8").upper().encode("utf-8"))
            await writer.drain()
    except (ConnectionError, asyncio.LimitOverrunError, ValueError):
        pass
    finally:
        writer.close()


async def serve(port: int, handler) -> None:
    server = await asyncio.start_server(handler, "127.0.0.1", port)
    async with server:
        await server.serve_forever()


def main(argv: list[str]) -> None:
    port = int(argv[1])
    asyncio.run(serve(port, upper if "--upper" in argv else echo))


if __name__ == "__main__":
    main(sys.argv)
