"""
Which WebSocket library the web door is built on: a plain broadcast server
on each candidate, side by side (``docs/web.rst`` has the figures).

``python bench/ws_libraries.py [--receivers 500] [--senders 10] [--rounds 3]``

For each library, in rounds that alternate them, a server process (pinned
to one core when it can be) broadcasts every text message it receives to
every connection; load generator processes (pinned elsewhere) open the
receivers, and the senders each keep a few messages in flight, sending the
next once their own copy came back.  Measured per round: deliveries per
second (messages broadcast times receivers) over a few seconds, and the
server's resident memory per idle connection (RSS with the receivers
connected, less before, over their count).  Medians of the rounds are
reported; on a shared, noisy machine only figures of one run compare.

Candidates: ``twisted`` (``twisted.web.websocket``, wsproto underneath:
each message framed per connection) and ``autobahn`` (on Twisted; a
broadcast framed once, ``prepareMessage`` + ``sendPreparedMessage``).
The load generator speaks WebSocket through wsproto (handshake, masked
frames); receivers only count the bytes of fixed-size frames.
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import os
import selectors
import socket
import statistics
import subprocess
import sys
import time
from typing import Any

PAYLOAD = b"x" * 60  # one frame: 2 header bytes + 60
FRAME = len(PAYLOAD) + 2
IN_FLIGHT = 4


# Servers


def serve_twisted(port: int) -> None:
    from twisted.internet import reactor
    from twisted.web.resource import Resource
    from twisted.web.server import Site
    from twisted.web.websocket import WebSocketResource

    members: set[Any] = set()

    class Broadcast:
        transport: Any = None

        def negotiationStarted(self, transport: Any) -> None:
            self.transport = transport

        def negotiationFinished(self) -> None:
            members.add(self)

        def textMessageReceived(self, text: str) -> None:
            for member in members:
                member.transport.sendTextMessage(text)

        def bytesMessageReceived(self, data: bytes) -> None:
            pass

        def pongReceived(self, payload: bytes) -> None:
            pass

        def connectionLost(self, reason: Any) -> None:
            members.discard(self)

    class Factory:
        def buildProtocol(self, request: Any) -> Broadcast:
            return Broadcast()

    root = Resource()
    root.putChild(b"ws", WebSocketResource(Factory()))
    reactor.listenTCP(port, Site(root), interface="127.0.0.1")  # type: ignore[attr-defined]
    reactor.run()  # type: ignore[attr-defined]


def serve_autobahn(port: int) -> None:
    from autobahn.twisted.websocket import (
        WebSocketServerFactory,
        WebSocketServerProtocol,
    )
    from twisted.internet import reactor

    members: set[Any] = set()

    class Broadcast(WebSocketServerProtocol):  # type: ignore[misc]
        def onOpen(self) -> None:
            members.add(self)

        def onMessage(self, payload: bytes, isBinary: bool) -> None:
            prepared = self.factory.prepareMessage(payload)
            for member in members:
                member.sendPreparedMessage(prepared)

        def onClose(self, wasClean: bool, code: Any, reason: Any) -> None:
            members.discard(self)

    factory = WebSocketServerFactory()
    factory.protocol = Broadcast
    factory.setProtocolOptions(autoPingInterval=0, openHandshakeTimeout=0)
    reactor.listenTCP(port, factory, interface="127.0.0.1")  # type: ignore[attr-defined]
    reactor.run()  # type: ignore[attr-defined]


SERVERS = {"twisted": serve_twisted, "autobahn": serve_autobahn}


# Load generator


def open_socket(port: int) -> tuple[socket.socket, Any]:
    """A WebSocket connection (wsproto client), handshake done."""
    from wsproto import ConnectionType, WSConnection
    from wsproto.events import AcceptConnection, Request

    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    connection = WSConnection(ConnectionType.CLIENT)
    sock.sendall(connection.send(Request(host="127.0.0.1", target="/ws")))
    while True:
        data = sock.recv(4096)
        if not data:
            raise RuntimeError("closed during the handshake")
        connection.receive_data(data)
        if any(isinstance(e, AcceptConnection) for e in connection.events()):
            return sock, connection


def receivers(
    port: int, count: int, ready: Any, go: Any, seconds: float, out: Any
) -> None:
    """Open ``count`` receivers, then count the frames they get for ``seconds``."""
    socks = [open_socket(port)[0] for _ in range(count)]
    ready.put(count)
    go.wait()
    selector = selectors.DefaultSelector()
    for sock in socks:
        sock.setblocking(False)
        selector.register(sock, selectors.EVENT_READ)
    received = 0
    end = time.monotonic() + seconds
    while (now := time.monotonic()) < end:
        for key, _ in selector.select(end - now):
            with contextlib.suppress(BlockingIOError):
                received += len(key.fileobj.recv(1 << 16))  # type: ignore[union-attr]
    out.put(("received", received // FRAME))
    for sock in socks:
        sock.close()


def senders(
    port: int, count: int, ready: Any, go: Any, seconds: float, out: Any
) -> None:
    """``count`` senders, each with a few messages in flight (its own copy back)."""
    from wsproto.events import TextMessage

    opened = [open_socket(port) for _ in range(count)]
    ready.put(0)
    go.wait()
    selector = selectors.DefaultSelector()
    pending = {}
    frame_bytes = {}
    for sock, connection in opened:
        frame_bytes[sock] = connection.send(TextMessage(PAYLOAD.decode()))
        sock.sendall(frame_bytes[sock] * IN_FLIGHT)
        pending[sock] = 0
        sock.setblocking(False)
        selector.register(sock, selectors.EVENT_READ)
    sent = count * IN_FLIGHT
    end = time.monotonic() + seconds
    while (now := time.monotonic()) < end:
        for key, _ in selector.select(end - now):
            sock = key.fileobj  # type: ignore[assignment]
            try:
                data = sock.recv(1 << 16)
            except BlockingIOError:
                continue
            # Every sender gets every broadcast: keep sending at the pace of
            # the broadcasts (one more per count*FRAME bytes read).
            pending[sock] += len(data)
            more = pending[sock] // (count * FRAME)
            if more:
                pending[sock] -= more * count * FRAME
                sock.sendall(frame_bytes[sock] * more)
                sent += more
    out.put(("sent", sent))


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def one_round(
    library: str, receivers_count: int, senders_count: int, seconds: float
) -> tuple[float, float]:
    """Deliveries per second, and KiB per idle connection, for one library."""
    port = free_port()
    cpus = sorted(os.sched_getaffinity(0))
    server = subprocess.Popen(
        [sys.executable, __file__, "--serve", library, "--port", str(port)]
    )
    try:
        if len(cpus) > 1:
            os.sched_setaffinity(server.pid, {cpus[0]})
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port)).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        time.sleep(0.3)
        before = rss_kib(server.pid)
        context = multiprocessing.get_context("fork")
        ready, out, go = context.Queue(), context.Queue(), context.Event()
        workers = 2
        share = receivers_count // workers
        processes = [
            context.Process(
                target=receivers, args=(port, share, ready, go, seconds, out)
            )
            for _ in range(workers)
        ]
        processes.append(
            context.Process(
                target=senders, args=(port, senders_count, ready, go, seconds, out)
            )
        )
        for process in processes:
            process.start()
        connected = sum(ready.get(timeout=60) for _ in processes)  # receivers
        time.sleep(0.5)
        per_connection = (rss_kib(server.pid) - before) / connected
        go.set()
        results = [out.get(timeout=seconds + 60) for _ in processes]
        for process in processes:
            process.join()
        received = sum(n for kind, n in results if kind == "received")
        # Every broadcast reaches every connection, the senders' too.
        broadcasts = received / (share * workers)
        deliveries = broadcasts * (share * workers + senders_count)
        return deliveries / seconds, per_connection
    finally:
        server.terminate()
        server.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--serve", choices=sorted(SERVERS))
    parser.add_argument("--port", type=int)
    parser.add_argument("--receivers", type=int, default=500)
    parser.add_argument("--senders", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=4.0)
    args = parser.parse_args()
    if args.serve:
        SERVERS[args.serve](args.port)
        return
    figures: dict[str, list[tuple[float, float]]] = {name: [] for name in SERVERS}
    for round_number in range(args.rounds):
        for library in SERVERS:
            rate, memory = one_round(
                library, args.receivers, args.senders, args.seconds
            )
            figures[library].append((rate, memory))
            print(
                f"round {round_number + 1} {library}: {rate:,.0f} deliveries/s, "
                f"{memory:.1f} KiB per idle connection",
                flush=True,
            )
    print(
        f"medians of {args.rounds} rounds, {args.receivers} receivers, "
        f"{args.senders} senders:"
    )
    for library, rows in figures.items():
        rate = statistics.median(r for r, _ in rows)
        memory = statistics.median(m for _, m in rows)
        print(
            f"  {library:9s} {rate:>10,.0f} deliveries/s  {memory:5.1f} KiB/connection"
        )


if __name__ == "__main__":
    main()
