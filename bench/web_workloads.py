"""
The web door's workloads of ``bench/run.py`` (``docs/performance.rst``, the
web door): what runs them, apart from run.py's machinery.

- ``web-fanout``: chatservice's web door (1000 WebSocket receivers in one
  room, 10 senders), beside chatservice's native door under the native
  fan-out load (``chatservice-native``) and plain broadcast servers on
  autobahn, ``twisted.web.websocket``, ``websockets`` and Node's ``ws``
  (``bench/baselines/ws_*``), in the same rounds;
- ``web-latency``: the latency workload over WebSocket (100 receivers,
  20k deliveries/s), the door beside the native door under the native
  latency workload and autobahn's broadcast;
- ``memory-web``: server RSS per registered web client (10k), the door
  beside the broadcast servers (connected, with a nickname).

Every one is driven by ``bench/ws_loadgen.c`` (the C load generator that
speaks WebSocket); the native door by its own load generators
(``bench/fanout_loadgen.c``, ``bench/loadgen.py latency``).  A
baseline whose library or runtime is missing is left out, and the run says
so (:func:`missing_servers`).
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

BENCH = Path(__file__).resolve().parent
BASELINES = BENCH / "baselines"
#: The WebSocket load generator (fan-out, latency, memory).
LOADGEN_SOURCE = BENCH / "ws_loadgen.c"
#: The service name the web workloads listen for.
SERVICE = "web"
#: The load generator's workloads, by ``Workload.kind``.
KINDS = ("web-fanout", "web-latency", "memory-web")
#: The native workload whose options each web workload takes (the
#: WebSocket load generator has the same options, and ignores the others).
NATIVE_LIKE = {
    "web-fanout": "fanout",
    "web-latency": "latency",
    "memory-web": "memory-chat",
}

CHATSERVICE = "chatservice"
#: chatservice's native door, under the native fan-out, beside the web door.
NATIVE = "chatservice-native"
AUTOBAHN = "autobahn"
TWISTED = "twisted-websocket"
WEBSOCKETS = "websockets"
NODE = "node-ws"
#: The broadcast baselines: script, and the module or runtime each needs.
BASELINE_SCRIPTS = {
    AUTOBAHN: "ws_autobahn_broadcast.py",
    TWISTED: "ws_twisted_broadcast.py",
    WEBSOCKETS: "ws_websockets_broadcast.py",
    NODE: "ws_node_broadcast.js",
}
FANOUT_SERVERS = (CHATSERVICE, NATIVE, AUTOBAHN, TWISTED, WEBSOCKETS, NODE)
LATENCY_SERVERS = (CHATSERVICE, NATIVE, AUTOBAHN)
MEMORY_SERVERS = (CHATSERVICE, AUTOBAHN, TWISTED, WEBSOCKETS, NODE)

#: The web door's options for a load test, beyond run.py's: no pings, no
#: idle limit (the load generator answers pings, but they are not the
#: workload).
DOOR_OPTIONS = ("--web-ping-interval", "0", "--web-idle-timeout", "0")
#: Where Debian installs Node packages (``apt-get install node-ws``); a
#: Node from elsewhere does not look there by itself.
NODE_PATHS = ("/usr/share/nodejs", "/usr/lib/nodejs")

HANDSHAKE = (
    b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
    b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    b"Sec-WebSocket-Version: 13\r\n\r\n"
)


def node_environment() -> dict[str, str]:
    """The environment Node runs in: Debian's package directories added."""
    paths = [p for p in os.environ.get("NODE_PATH", "").split(os.pathsep) if p]
    return {**os.environ, "NODE_PATH": os.pathsep.join([*paths, *NODE_PATHS])}


@functools.cache
def node_ws_missing() -> str | None:
    """Why Node's ``ws`` cannot run here, or ``None`` when it can."""
    node = shutil.which("node")
    if node is None:
        return "no node on PATH"
    try:
        subprocess.run(
            [node, "-e", "require('ws')"],
            env=node_environment(),
            capture_output=True,
            timeout=30,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return "node has no ws package (Debian: apt-get install node-ws)"
    return None


@functools.cache
def module_missing(name: str) -> str | None:
    """Why the Python module ``name`` cannot be imported, or ``None``."""
    try:
        subprocess.run(
            [sys.executable, "-c", f"import {name}"],
            capture_output=True,
            timeout=60,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return f"no {name} module in this environment (pip install {name})"
    return None


def missing_servers(servers: Sequence[str]) -> dict[str, str]:
    """Of ``servers``, the baselines that cannot run here, and why."""
    checks = {
        AUTOBAHN: lambda: module_missing("autobahn"),
        TWISTED: lambda: module_missing("twisted.web.websocket"),
        WEBSOCKETS: lambda: module_missing("websockets"),
        NODE: node_ws_missing,
    }
    found: dict[str, str] = {}
    for server in dict.fromkeys(servers):
        check = checks.get(server)
        why = check() if check is not None else None
        if why is not None:
            found[server] = why
    return found


def server_command(
    server: str, twistd: Sequence[str], options: Sequence[str], port: int
) -> tuple[list[str], dict[str, int]]:
    """
    How to start ``server`` for a web workload on ``port``: its command
    line and its ports by service (Node through ``env``, with
    :func:`node_environment`'s ``NODE_PATH``: the same process).
    chatservice runs its web door alone (``NATIVE``: its chat door alone),
    with ``options`` and :data:`DOOR_OPTIONS`.
    """
    endpoint = f"tcp:{port}:interface=127.0.0.1"
    if server in BASELINE_SCRIPTS:
        script = str(BASELINES / BASELINE_SCRIPTS[server])
        if server == NODE:
            node_path = node_environment()["NODE_PATH"]
            argv = ["env", f"NODE_PATH={node_path}", "node", script, str(port)]
            return argv, {SERVICE: port}
        return [sys.executable, script, str(port)], {SERVICE: port}
    doors = ["--echo", "none", "--upper", "none"]
    if server == NATIVE:
        doors += ["--chat", endpoint]
        service = "chat"
    else:
        doors += ["--chat", "none", "--web", endpoint, *DOOR_OPTIONS]
        service = SERVICE
    argv = [*twistd, "-n", "--pidfile=", "chatservice", *doors, *options]
    return argv, {service: port}


def answered(port: int, timeout: float = 1.0) -> bool:
    """Whether ``/ws`` on ``port`` answers a WebSocket upgrade (101)."""
    with (
        contextlib.suppress(OSError),
        socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock,
    ):
        sock.sendall(HANDSHAKE)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
        return data.startswith(b"HTTP/1.1 101")
    return False


#: The native door's own workload, for each web workload it runs beside.
NATIVE_KINDS = {"web-fanout": "fanout", "web-latency": "latency"}


def loadgen_kind(kind: str, server: str) -> str:
    """What drives ``server`` in workload ``kind``: the native door is
    driven by the native workload (``fanout``, ``latency``), the rest by
    the web one."""
    return NATIVE_KINDS.get(kind, kind) if server == NATIVE else kind


def also_needed(kinds: set[str]) -> set[str]:
    """
    The load generators web workloads need beyond their own: the native
    workloads (``fanout``, ``latency``) that drive their native door's row.
    """
    return {NATIVE_KINDS[kind] for kind in kinds if kind in NATIVE_KINDS}
