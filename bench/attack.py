"""
The attack of issue 12 as a load: ``loadgen.py attack`` (``bench/run.py``'s
``attack`` workload, against a chat server that keeps its default limits).

While registered users chat (``--receivers`` members of #lobby, and
``--senders`` of them saying ``--rate`` stamped lines a second in all),
from many loopback source addresses (127.x.y.z, ``--per-address``
connections each, under the per-address limit):

- ``--slowloris`` connections trickle a byte every ``--trickle-interval``
  seconds and never end a line (never register);
- ``--storm`` connections are opened as fast as the server takes them and
  held silent;
- a fresh client (an address of its own) arrives every
  ``--fresh-interval`` seconds and registers (``bench/fresh.py``: a
  nickname, a first line, IRC's ``NICK`` and ``USER``, a WebSocket and its
  nickname).

With ``--echo-port``, ``--irc-port`` and ``--web-port`` the attack is
spread over those doors and the chat door (``--port``): strangers and fresh
clients take turns at each, so that every door's strangers' budget is
overwhelmed and every door lets fresh clients in (or not), for the same
total load on the server.

For ``--duration`` seconds.  The report: the share of fresh clients that
were registered within ``FRESH_DEADLINE`` (the figure), how long they
took, who got refused (fresh clients, strangers refused at once, strangers
closed later and when), and whether the members' chat went on: deliveries
during the attack, lost ones, and their latency (sent to read by this
process).
"""

from __future__ import annotations

import argparse
import errno
import re
import select
import socket
import time
from dataclasses import dataclass, field

from fresh import Dialogue
from loadgen import (
    NL,
    RECV_SIZE,
    BenchError,
    Net,
    Window,
    percentile,
    register_chatters,
)

#: Seconds within which a fresh client counts as let in (issue 12).
FRESH_DEADLINE = 1.0
#: Connection attempts of the storm in flight at once.
STORM_CONCURRENCY = 200
#: A member's stamped line as the room shows it: ``<aNNNNN> T<ns> ...``.
STAMP = re.compile(rb"> T(\d+) ")
#: An IPv4 address in what the server says.
ADDRESS = re.compile(r"\d+\.\d+\.\d+\.\d+")


def source(block: int, index: int, per_address: int) -> str:
    """The loopback address of attacker ``index`` of address block ``block``."""
    address = index // per_address
    return f"127.{block}.{address // 250}.{1 + address % 250}"


@dataclass
class Stranger:
    """One attacking connection (slowloris or storm)."""

    sock: socket.socket
    kind: str
    door: str
    opened_at: float
    connected: bool = False
    closed_at: float | None = None
    said: bytes = b""


@dataclass
class Fresh:
    """One fresh client trying to get in."""

    sock: socket.socket | None
    number: int
    started: float
    door: str
    dialogue: Dialogue | None = None
    connected: bool = False
    done_at: float | None = None
    refused: str | None = None


@dataclass
class Tally:
    """What happened to the strangers of one kind."""

    opened: int = 0
    connected: int = 0
    refused_at_connect: int = 0
    closed_by_server: list[float] = field(default_factory=list)
    #: The last line the server said to the strangers it closed, counted.
    said: dict[str, int] = field(default_factory=dict)

    def report(self, kind: str) -> dict[str, object]:
        closed = sorted(self.closed_by_server)
        return {
            f"{kind}_opened": self.opened,
            f"{kind}_connected": self.connected,
            f"{kind}_refused_at_connect": self.refused_at_connect,
            f"{kind}_closed_by_server": len(closed),
            f"{kind}_closed_p50_s": round(percentile_f(closed, 0.5), 2),
            f"{kind}_closed_max_s": round(closed[-1], 2) if closed else None,
            f"{kind}_said": self.said,
        }


def percentile_f(ordered: list[float], fraction: float) -> float:
    """The nearest-rank percentile of sorted seconds (0 when none)."""
    if not ordered:
        return 0.0
    rank = max(0, min(len(ordered) - 1, round(fraction * len(ordered) + 0.5) - 1))
    return ordered[rank]


class Attack:
    """The attack's connections on one epoll, beside the members' chat."""

    def __init__(self, options: argparse.Namespace, net: Net) -> None:
        self.options = options
        self.host = net.address[0]
        #: The doors attacked, with their ports: the chat door first.
        self.doors = [("chat", options.port)] + [
            (door, port)
            for door, port in (
                ("echo", options.echo_port),
                ("irc", options.irc_port),
                ("web", options.web_port),
            )
            if port
        ]
        self.epoll = net.epoll
        self.started = time.monotonic()
        self.strangers: dict[int, Stranger] = {}
        self.fresh: dict[int, Fresh] = {}
        self.fresh_done: list[Fresh] = []
        self.tally = {"slowloris": Tally(), "storm": Tally()}
        self.storm_next = 0
        self.storm_pending = 0
        self.slowloris_next = 0
        self.fresh_count = 0
        self.next_fresh = self.started
        self.next_trickle = self.started

    def connect(self, source_address: str, port: int) -> socket.socket | None:
        """A non-blocking connection to ``port`` being made from ``source_address``."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        try:
            sock.bind((source_address, 0))
        except OSError as error:
            sock.close()
            raise BenchError(f"cannot bind to {source_address}: {error}") from None
        error_number = sock.connect_ex((self.host, port))
        if error_number not in (0, errno.EINPROGRESS):
            sock.close()
            return None
        return sock

    def open_strangers(self, now: float) -> None:
        """Open the slowloris ones at once, and the storm as it is taken."""
        options = self.options
        while self.slowloris_next < options.slowloris:
            self._stranger("slowloris", 1, self.slowloris_next, now)
            self.slowloris_next += 1
        while self.storm_next < options.storm and self.storm_pending < (
            STORM_CONCURRENCY
        ):
            self._stranger("storm", 2, self.storm_next, now)
            self.storm_next += 1
            self.storm_pending += 1

    def _stranger(self, kind: str, block: int, index: int, now: float) -> None:
        tally = self.tally[kind]
        tally.opened += 1
        door, port = self.doors[index % len(self.doors)]
        sock = self.connect(source(block, index, self.options.per_address), port)
        if sock is None:
            tally.refused_at_connect += 1
            if kind == "storm":
                self.storm_pending -= 1
            return
        self.strangers[sock.fileno()] = Stranger(sock, kind, door, now)
        self.epoll.register(sock.fileno(), select.EPOLLIN | select.EPOLLOUT)

    def start_fresh(self, now: float) -> None:
        """A fresh client from an address of its own, when one is due."""
        while now >= self.next_fresh:
            self.next_fresh += self.options.fresh_interval
            self.fresh_count += 1
            door, port = self.doors[(self.fresh_count - 1) % len(self.doors)]
            sock = self.connect(source(3, self.fresh_count, 1), port)
            if sock is None:
                self.fresh_done.append(
                    Fresh(
                        None,
                        self.fresh_count,
                        now,
                        door,
                        done_at=now,
                        refused="refused",
                    )
                )
                continue
            dialogue = Dialogue(door, f"f{self.fresh_count:07d}")
            client = Fresh(sock, self.fresh_count, now, door, dialogue)
            self.fresh[client.sock.fileno()] = client
            self.epoll.register(client.sock.fileno(), select.EPOLLIN | select.EPOLLOUT)

    def trickle(self, now: float) -> None:
        """Each connected slowloris one sends one more byte, when due."""
        if now < self.next_trickle:
            return
        self.next_trickle = now + self.options.trickle_interval
        for fd, stranger in list(self.strangers.items()):
            if stranger.kind == "slowloris" and stranger.connected:
                try:
                    stranger.sock.send(b"x")
                except OSError:
                    self._closed(fd, stranger, now)

    def handles(self, fd: int) -> bool:
        return fd in self.strangers or fd in self.fresh

    def event(self, fd: int, events: int, now: float) -> None:
        """What epoll said about an attacking or fresh connection."""
        stranger = self.strangers.get(fd)
        if stranger is not None:
            self._stranger_event(fd, stranger, events, now)
            return
        client = self.fresh[fd]
        sock, dialogue = client.sock, client.dialogue
        assert sock is not None and dialogue is not None
        if not client.connected:
            if self._failed(sock, events):
                self._fresh_done(fd, client, now, "refused at connect")
                return
            client.connected = True
            self.epoll.modify(fd, select.EPOLLIN)
            sock.send(dialogue.hello())
            return
        try:
            data = sock.recv(RECV_SIZE)
        except OSError as error:
            self._fresh_done(fd, client, now, f"reset: {error.strerror}")
            return
        admitted, said = dialogue.read(data)
        if admitted:
            self._fresh_done(fd, client, now, None)
        elif admitted is False:
            self._fresh_done(fd, client, now, said.decode(errors="replace").strip())
        elif not data:
            self._fresh_done(fd, client, now, "closed without a word")
        elif said:
            sock.send(said)

    def _failed(self, sock: socket.socket, events: int) -> bool:
        if not events & (select.EPOLLOUT | select.EPOLLERR | select.EPOLLHUP):
            return False
        return sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) != 0

    def _stranger_event(
        self, fd: int, stranger: Stranger, events: int, now: float
    ) -> None:
        tally = self.tally[stranger.kind]
        if not stranger.connected:
            if not events & (select.EPOLLOUT | select.EPOLLERR | select.EPOLLHUP):
                return
            if stranger.kind == "storm":
                self.storm_pending -= 1
            if self._failed(stranger.sock, events):
                tally.refused_at_connect += 1
                self._forget(fd, stranger)
                return
            stranger.connected = True
            tally.connected += 1
            self.epoll.modify(fd, select.EPOLLIN)
            if stranger.kind == "slowloris":
                stranger.sock.send(b"x")
            return
        try:
            data = stranger.sock.recv(RECV_SIZE)
        except OSError:
            data = b""
        # The last words are what tells why it was closed.
        stranger.said = (stranger.said + data)[-300:]
        if not data:
            self._closed(fd, stranger, now)

    def _closed(self, fd: int, stranger: Stranger, now: float) -> None:
        tally = self.tally[stranger.kind]
        tally.closed_by_server.append(now - self.started)
        lines = [line for line in stranger.said.split(NL) if line.strip()]
        key = lines[-1].decode(errors="replace").strip() if lines else ""
        # By door, and without the address IRC's ERROR quotes: one key a reason.
        key = f"{stranger.door}: {ADDRESS.sub('ADDRESS', key)[:80] or '(nothing)'}"
        tally.said[key] = tally.said.get(key, 0) + 1
        self._forget(fd, stranger)

    def _forget(self, fd: int, stranger: Stranger) -> None:
        self.epoll.unregister(fd)
        stranger.sock.close()
        del self.strangers[fd]

    def _fresh_done(
        self, fd: int, client: Fresh, now: float, refused: str | None
    ) -> None:
        client.done_at = now
        client.refused = refused
        self.epoll.unregister(fd)
        if client.sock is not None:
            client.sock.close()
        del self.fresh[fd]
        self.fresh_done.append(client)

    def close(self) -> None:
        for stranger in self.strangers.values():
            stranger.sock.close()
        for client in self.fresh.values():
            if client.sock is not None:
                client.sock.close()

    def _by_door(self) -> dict[str, str]:
        tried: dict[str, int] = {door: 0 for door, _port in self.doors}
        in_time = dict.fromkeys(tried, 0)
        for client in [*self.fresh_done, *self.fresh.values()]:
            tried[client.door] += 1
            if (
                client.refused is None
                and client.done_at is not None
                and client.done_at - client.started <= FRESH_DEADLINE
            ):
                in_time[client.door] += 1
        return {door: f"{in_time[door]}/{tried[door]}" for door in tried}

    def report(self, now: float) -> dict[str, object]:
        done = self.fresh_done
        waiting = list(self.fresh.values())
        admitted = sorted(
            c.done_at - c.started
            for c in done
            if c.refused is None and c.done_at is not None
        )
        refusals: dict[str, int] = {}
        for client in done:
            if client.refused is not None:
                why = f"{client.door}: {client.refused[:80]}"
                refusals[why] = refusals.get(why, 0) + 1
        tried = len(done) + len(waiting)
        in_time = sum(1 for seconds in admitted if seconds <= FRESH_DEADLINE)
        result: dict[str, object] = {
            "value": 100.0 * in_time / tried if tried else 0.0,
            "unit": f"% fresh in ≤{FRESH_DEADLINE:g} s",
            "fresh_tried": tried,
            "fresh_admitted": len(admitted),
            "fresh_in_time": in_time,
            "fresh_refused": refusals,
            "fresh_still_waiting": len(waiting),
            "fresh_p50_ms": round(1000 * percentile_f(admitted, 0.5), 1),
            "fresh_max_ms": round(1000 * admitted[-1], 1) if admitted else None,
            "doors": [door for door, _port in self.doors],
            # Let in within the deadline, of those that tried, by door.
            "fresh_by_door": self._by_door(),
        }
        for kind, tally in self.tally.items():
            result.update(tally.report(kind))
            result[f"{kind}_open_at_end"] = sum(
                1 for s in self.strangers.values() if s.kind == kind and s.connected
            )
        return result


def run_attack(options: argparse.Namespace) -> dict[str, object]:
    """The attack (module docstring); the report."""
    net = Net(options.port, time.monotonic() + options.timeout)
    # Members from addresses of their own (127.4.0.x), under the limit.
    net.source = lambda index: source(4, index, 1)
    attack: Attack | None = None
    try:
        receivers = register_chatters(net, options.receivers, "a", "members")
        senders = receivers[: options.senders]
        net.barrier(senders[0], receivers, "waiting for the room to settle")
        index = {conn.fd: i for i, conn in enumerate(receivers)}
        carry = [b""] * len(receivers)
        got = [0] * len(receivers)
        latencies: list[int] = []
        interval = 1.0 / options.rate
        sent = 0
        attack = Attack(options, net)
        measure = Window(options.server_pid)
        measure.start()
        idle = 0.0
        now = time.monotonic()
        end = now + options.duration
        next_send = now
        padding = b" " + b"x" * 16 + b"\r\n"
        while now < end:
            net.remaining("attacking")
            attack.open_strangers(now)
            attack.start_fresh(now)
            attack.trickle(now)
            while now >= next_send:
                line = b"T%d%s" % (time.perf_counter_ns(), padding)
                senders[sent % len(senders)].sock.sendall(line)
                sent += 1
                next_send += interval
            before = time.monotonic()
            events = net.epoll.poll(max(0.0, min(next_send - now, 0.01)))
            idle += time.monotonic() - before
            now = time.monotonic()
            for fd, kind in events:
                if attack.handles(fd):
                    attack.event(fd, kind, now)
                    continue
                i = index[fd]
                data = receivers[i].recv(RECV_SIZE)
                read_at = time.perf_counter_ns()
                if not data:
                    raise BenchError(f"the server closed member #{i} during the attack")
                data = carry[i] + data
                cut = data.rfind(NL) + 1
                carry[i] = data[cut:]
                for stamp in STAMP.findall(data, 0, cut):
                    got[i] += 1
                    latencies.append(read_at - int(stamp))
        measure.stop(idle)
        result = attack.report(now)
        # The members' chat: everything said during the attack arrives.
        drain_deadline = time.monotonic() + options.drain_timeout
        while min(got) < sent and time.monotonic() < drain_deadline:
            for fd, _kind in net.epoll.poll(0.05):
                if attack.handles(fd):
                    attack.event(fd, _kind, time.monotonic())
                    continue
                i = index[fd]
                data = carry[i] + receivers[i].recv(RECV_SIZE)
                cut = data.rfind(NL) + 1
                carry[i] = data[cut:]
                got[i] += len(STAMP.findall(data, 0, cut))
        latencies.sort()
        result.update(
            {
                "members": len(receivers),
                "senders": len(senders),
                "messages_sent": sent,
                "deliveries": sum(got),
                "lost": sum(max(0, sent - g) for g in got),
                "chat_p50_ms": percentile(latencies, 0.5) / 1e6,
                "chat_p99_ms": percentile(latencies, 0.99) / 1e6,
                "chat_max_ms": (latencies[-1] / 1e6) if latencies else 0.0,
                "attack_s": options.duration,
            }
        )
        result.update(measure.report())
        # A steady trickle of work: the load generator's share says little.
        result["saturated"] = False
        return result
    finally:
        if attack is not None:
            attack.close()
        net.close()
