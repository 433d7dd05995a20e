"""
Tests for what the WebSocket load generator (``bench/ws_loadgen.c``, the web
door's workloads) checks besides speed: against a fake WebSocket chat
server that breaks the rules, it counts each ``message`` event once by its
sender and number, and reports duplicates, events out of order, events that
are no delivery and deliveries lost, as the native fan-out load generator
does (``tests/test_bench_checks.py``); and it counts events, not frames,
when the server sends a batch of them as one JSON array.
"""

from __future__ import annotations

import importlib
import json
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from twisted.trial.unittest import SynchronousTestCase
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, Message, Request, TextMessage

from tests.test_bench_checks import built_loadgen

BENCH = Path(__file__).resolve().parent.parent / "bench"
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))

# bench/ is scripts, not a package: import them as bench/run.py does.
run: Any = importlib.import_module("run")
web_workloads: Any = importlib.import_module("web_workloads")


class FaultyWebChat:
    """
    A fake WebSocket chat on a loopback port (wsproto, one thread per
    client) speaking the web door's JSON: ``nick`` is answered
    ``registered``, every ``say`` goes to every member as a ``message``
    event.  When ``faulty``, sender 0's messages reach the receivers broken
    as in ``test_bench_checks.FaultyChat``: r00000 gets message 2 twice and
    an ``error`` event after message 3; r00001 gets message 6 before 5 and
    never 8; r00001 gets no message of sender 1 from its 10th on.  When
    ``batch``, what one say sends a member is one frame: a JSON array of
    its events (an object when there is one).
    """

    def __init__(self, faulty: bool, batch: bool) -> None:
        self.faulty = faulty
        self.batch = batch
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.listener.getsockname()[1]
        self.members: dict[str, tuple[socket.socket, WSConnection]] = {}
        self.lock = threading.Lock()
        self.held: dict[str, Any] | None = None
        self.clients: list[socket.socket] = []
        threading.Thread(target=self.accept, daemon=True).start()

    def close(self) -> None:
        self.listener.close()
        with self.lock:
            for client in self.clients:
                client.close()

    def accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            with self.lock:
                self.clients.append(client)
            threading.Thread(target=self.serve, args=(client,), daemon=True).start()

    def serve(self, client: socket.socket) -> None:
        ws = WSConnection(ConnectionType.SERVER)
        nick = ""
        try:
            while data := client.recv(65536):
                with self.lock:
                    ws.receive_data(data)
                    for event in ws.events():
                        if isinstance(event, Request):
                            client.sendall(ws.send(AcceptConnection()))
                        elif isinstance(event, TextMessage):
                            nick = self.handle(client, ws, nick, event.data)
        except OSError:
            pass

    def handle(
        self, client: socket.socket, ws: WSConnection, nick: str, text: str
    ) -> str:
        """Act on one message (the lock held); the client's nickname."""
        request = json.loads(text)
        if request["type"] == "nick":
            nick = request["nick"]
            self.members[nick] = (client, ws)
            reply = {"type": "registered", "nick": nick, "room": "lobby"}
            # Compact JSON, as the door sends it (and the load generator reads).
            compact = json.dumps(reply, separators=(",", ":"))
            client.sendall(ws.send(Message(data=compact)))
        elif request["type"] == "say":
            said = request["text"]
            number = int(said[1:9]) if said.startswith("F") else -1
            event = {"type": "message", "id": "1", "at": 0.5, "room": "lobby"}
            event.update(nick=nick, text=said, action=False)
            for member, (conn, their_ws) in self.members.items():
                for frame in self.frames(self.broken(member, nick, number, event)):
                    conn.sendall(their_ws.send(Message(data=frame)))
        return nick

    def frames(self, events: list[dict[str, Any]]) -> list[str]:
        """The frames that carry ``events``: one each, or one batch."""
        if not self.batch or len(events) < 2:
            return [json.dumps(e, separators=(",", ":")) for e in events]
        return [json.dumps(events, separators=(",", ":"))]

    def broken(
        self, member: str, nick: str, number: int, event: dict[str, Any]
    ) -> list[dict[str, Any]]:
        """What ``member`` gets of ``event`` (message ``number`` of ``nick``)."""
        if not self.faulty or nick not in ("s00000", "s00001"):
            return [event]
        if nick == "s00001":
            return [] if member == "r00001" and number >= 10 else [event]
        if member == "r00000" and number == 2:
            return [event, event]
        if member == "r00000" and number == 3:
            return [event, {"type": "error", "error": "flood", "text": "slow down"}]
        if member == "r00001" and number == 5:
            self.held = event
            return []
        if member == "r00001" and number == 6 and self.held is not None:
            return [event, self.held]
        if member == "r00001" and number == 8:
            return []
        return [event]


class WebSocketLoadGeneratorTests(SynchronousTestCase):
    """``bench/ws_loadgen.c fanout`` against :class:`FaultyWebChat`."""

    def program(self) -> str:
        """The WebSocket load generator, built as bench/run.py builds it."""
        return built_loadgen(self, web_workloads.LOADGEN_SOURCE)

    def fanout(self, program: str, faulty: bool, batch: bool) -> dict[str, Any]:
        """The report of a short fan-out run against a fake server."""
        server = FaultyWebChat(faulty, batch)
        self.addCleanup(server.close)
        argv = [program, "fanout", "--port", str(server.port), "--receivers", "2"]
        argv += ["--senders", "2", "--window", "2", "--warmup", "0.1"]
        argv += ["--duration", "0.5", "--drain-timeout", "0.5", "--timeout", "30"]
        done = subprocess.run(argv, capture_output=True, timeout=60, check=False)
        report: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
        self.assertEqual(done.returncode, 0, report)
        return report

    def test_violationsCounted(self) -> None:
        """
        A duplicate, events out of order (and the late one skipped), an
        event that is no delivery (quoted) and deliveries never received
        (the drain fails) are each reported, whether the server sends an
        event a frame or batches them in arrays; against a correct server,
        none of them, and every delivery counted.
        """
        program = self.program()
        for batch in (False, True):
            for faulty in (True, False):
                report = self.fanout(program, faulty, batch)
                found = (
                    report["duplicates"],
                    report["out_of_order"],
                    report["unexpected_lines"],
                    report["lost"] > 0,
                    report["drained"],
                )
                expected = (2, 2, 1, True, False) if faulty else (0, 0, 0, False, True)
                self.assertEqual(found, expected, (batch, report))
                samples = report["unexpected_sample"]
                self.assertEqual(len(samples), 1 if faulty else 0, report)
                if faulty:
                    self.assertIn("slow down", samples[0])
                self.assertGreater(report["messages_sent"], 8, report)
                self.assertGreater(report["deliveries"], 0, (batch, report))

    def test_sameReportKeysAsNativeFanout(self) -> None:
        """
        The WebSocket load generator's fan-out report has every key the
        native fan-out load generator's has (bench/run.py reads them alike).
        """
        report = self.fanout(self.program(), False, False)
        for key in (
            "value",
            "unit",
            "deliveries",
            "messages_sent",
            "lost",
            "duplicates",
            "out_of_order",
            "unexpected_lines",
            "unexpected_sample",
            "drained",
            "loadgen_cpu_pct",
            "loadgen_busy_pct",
            "server_cpu_pct",
            "saturated",
            "loadgen",
        ):
            self.assertIn(key, report)
