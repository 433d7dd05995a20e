"""
The load generator of the benchmark suite: one process, raw non-blocking
sockets on one ``epoll``, pre-built payloads, replies counted with
``bytes.count(b"\\n")``; it never parses a line it does not have to.

Run it as its own process pinned to a core of its own (``--cpu``), with the
server pinned to another (``bench/run.py`` does both), so that it is not
what limits the figures.  It measures its own CPU time over the measured
window and flags the run ``saturated`` when it used 90 % or more of its
core: then the figure says more about the load generator than the server.

Workloads (one per run; the result is one JSON object on standard output):

``echo``, ``upper``
    N connections, each keeping a window of 32-byte lines in flight (a new
    line goes out for every line that comes back); lines returned per second.
``fanout``
    One chat room: R receivers and S senders, each sender keeping a window
    of numbered messages in flight (it sends one more whenever one of its
    own comes back); deliveries per second counted at the receivers, each
    delivery by its sender and number, exactly once and in each sender's
    order; duplicates, deliveries out of order and lines that are no
    delivery are counted apart (and fail the run in ``bench/run.py``); a
    final drain checks every receiver got every message.
``latency``
    One chat room: R receivers, S senders sending at a fixed total rate;
    each message carries ``time.perf_counter_ns()`` of this process when it
    was sent; p50, p99 and maximum delivery latency at the receivers.
``storm``
    C chat clients connect and register in batches, all held open, while a
    member who came first measures its round trips between batches;
    registrations per second, and those round trips.
``memory``
    C idle connections (registered chat members, registered IRC clients in
    channels, or echo connections that exchanged one line); the server's
    VmRSS before and after, in KiB per connection.


Usage: ``python bench/loadgen.py WORKLOAD --port PORT [options]``; see
``--help``.  Loopback (127.0.0.1) only; every phase has a deadline.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import importlib
import json
import os
import re
import resource
import select
import socket
import struct
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

LOOPBACK = "127.0.0.1"
NL = b"\n"
#: One echo line: 32 bytes with its CRLF.
ECHO_LINE = b"abcdefghijklmnopqrstuvwxyz0123\r\n"
#: What each fan-out sender says, with its sequence number (the server adds
#: ``#lobby <sNNNNN> ``): the sender and the number identify each delivery.
FANOUT_TEXT = b"F%08d fan-out 0123456789abcdef\r\n"
#: One fan-out delivery as a receiver sees it: the sender's index and the
#: message's sequence number.
_DELIVERY = rb"#lobby <s(\d{5})> F(\d{8}) fan-out 0123456789abcdef\r?"
FANOUT_LINE = re.compile(rb"(?m)^" + _DELIVERY + rb"$")
#: One whole line (without its ``\n``) that is a fan-out delivery.
FANOUT_WHOLE_LINE = re.compile(_DELIVERY)
#: How many unexpected lines a run quotes in its report.
SAMPLE_LINES = 5
#: A loaded run: the load generator used this share of its core or more.
SATURATION = 0.90
RECV_SIZE = 262144
#: Lines a chat server sends once a nickname is taken (chatservice and the
#: naive baseline alike) and after a ``/part`` (chatservice).
REGISTERED = b"--- you are "
MOVED = b"--- now talking in #"
ERROR_LINE = b"!!! "
#: The send time in a latency message as the room shows it: ``<sNNNNN> T<ns>``.
STAMP = re.compile(rb"> T(\d+) ")
#: The same in an IRC message: ``:sNNNNN!user@host PRIVMSG #lobby :T<ns>``.
IRC_STAMP = re.compile(rb" :T(\d+) ")
#: What an IRC client says in #lobby, before its text.
IRC_SAY = b"PRIVMSG #lobby :"
EPOLLIN = select.EPOLLIN
EPOLLOUT = select.EPOLLOUT

assert len(ECHO_LINE) == 32


class BenchError(Exception):
    """A run could not be completed; the message says why."""


# The process


def pin_to_cpu(cpu: int | None) -> list[int] | None:
    """Pin this process to one core; the cores it runs on, or None if unknown."""
    if not hasattr(os, "sched_setaffinity"):
        return None
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})
    return sorted(os.sched_getaffinity(0))


def raise_fd_limit() -> int:
    """Raise the open-file limit to the hard limit; the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = max(soft, 1 << 20)
    if soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError):
            return soft
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def server_cpu_seconds(pid: int | None) -> float | None:
    """User plus system CPU seconds of a process so far (Linux ``/proc``)."""
    if pid is None:
        return None
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            fields = stat.read().rsplit(b")", 1)[1].split()
    except OSError:
        return None
    # Fields 14 and 15 of stat(5); the split starts at field 3.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_kib(pid: int) -> int:
    """The resident set size of a process, in KiB (``VmRSS``)."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise BenchError(f"no VmRSS for process {pid}")


@dataclass
class Window:
    """
    Wall time, CPU time (ours and the server's) and the time this process
    spent waiting for the server (in epoll) over a measured window.
    """

    server_pid: int | None
    wall: float = 0.0
    cpu: float = 0.0
    server_cpu: float | None = None
    #: Seconds spent waiting in epoll over the window (the rest: busy).
    idle: float = 0.0
    _t0: float = 0.0
    _c0: float = 0.0
    _s0: float | None = None

    def start(self) -> None:
        self._t0 = time.perf_counter()
        self._c0 = time.process_time()
        self._s0 = server_cpu_seconds(self.server_pid)

    def stop(self, idle: float) -> None:
        """End the window; ``idle``: seconds spent waiting in epoll within it."""
        self.idle = idle
        self.wall = time.perf_counter() - self._t0
        self.cpu = time.process_time() - self._c0
        s1 = server_cpu_seconds(self.server_pid)
        if s1 is not None and self._s0 is not None:
            self.server_cpu = s1 - self._s0

    def report(self) -> dict[str, object]:
        share = self.cpu / self.wall if self.wall > 0 else 0.0
        server = (
            self.server_cpu / self.wall
            if self.server_cpu is not None and self.wall > 0
            else None
        )
        busy = 1 - self.idle / self.wall if self.wall > 0 else 0.0
        return {
            "wall_s": round(self.wall, 4),
            "loadgen_cpu_pct": round(100 * share, 1),
            "loadgen_busy_pct": round(100 * busy, 1),
            "server_cpu_pct": None if server is None else round(100 * server, 1),
            # CPU time can under-state a load generator that is descheduled
            # (a shared VM): one that never waited for the server is
            # saturated too.
            "saturated": share >= SATURATION or busy >= SATURATION,
        }


# Connections


@dataclass(eq=False)
class Conn:
    """One client connection and what the set-up phases know of it."""

    index: int
    sock: socket.socket
    fd: int
    hello: bytes
    marker: bytes
    ready: bool = False
    connected: bool = False
    #: The last bytes received while waiting for a marker (for context).
    tail: bytes = b""
    recv: Callable[[int], bytes] = field(init=False, repr=False)
    send: Callable[[bytes], int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.recv = self.sock.recv
        self.send = self.sock.send


_LINGER_RESET = struct.pack("ii", 1, 0)


class Net:
    """Client connections to one loopback port, on one epoll."""

    def __init__(
        self, port: int, deadline: float, second_port: int | None = None
    ) -> None:
        self.address = (LOOPBACK, port)
        #: A second node of the same chat (``--redis``), for split openings.
        self.second = (LOOPBACK, second_port) if second_port else None
        self.deadline = deadline
        self.epoll = select.epoll()
        self.by_fd: dict[int, Conn] = {}
        self.conns: list[Conn] = []
        #: Seconds spent waiting in epoll in :meth:`open` and :meth:`drain_until`.
        self.idle = 0.0
        #: The source address of each new connection, by its index (default:
        #: the kernel's choice).
        self.source: Callable[[int], str] | None = None

    def _poll(self, timeout: float) -> list[tuple[int, int]]:
        started = time.perf_counter()
        events = self.epoll.poll(timeout)
        self.idle += time.perf_counter() - started
        return events

    def remaining(self, what: str) -> float:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise BenchError(f"time limit reached while {what}")
        return left

    def close(self) -> None:
        """Close every connection with a reset (no TIME_WAIT left behind)."""
        for conn in self.conns:
            with contextlib.suppress(OSError):
                conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)
            conn.sock.close()
        self.conns.clear()
        self.by_fd.clear()
        self.epoll.close()

    def open(
        self,
        count: int,
        hello: Callable[[int], bytes],
        marker: Callable[[int], bytes],
        what: str,
        concurrency: int = 40,
        split: bool = False,
    ) -> list[Conn]:
        """
        Open ``count`` connections, at most ``concurrency`` of them being set
        up at once (the server's listen backlog stays short); each sends its
        ``hello`` once connected and is ready when ``marker`` has arrived.
        Connections that are ready are drained of whatever else arrives.
        ``split``: every other one to the second node, if there is one.
        """
        opened: list[Conn] = []
        next_index = 0
        in_setup = 0
        ready = 0
        epoll = self.epoll
        while ready < count:
            self.remaining(f"opening {what} ({ready}/{count} ready)")
            while in_setup < concurrency and next_index < count:
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                sock.setblocking(False)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                if self.source is not None:
                    sock.bind((self.source(len(self.conns)), 0))
                address = self.address
                if split and self.second is not None and next_index % 2:
                    address = self.second
                error = sock.connect_ex(address)
                if error not in (0, errno.EINPROGRESS):
                    sock.close()
                    raise BenchError(
                        f"connecting to {self.address}: {os.strerror(error)}"
                    )
                conn = Conn(
                    len(self.conns),
                    sock,
                    sock.fileno(),
                    hello(next_index),
                    marker(next_index),
                )
                self.conns.append(conn)
                opened.append(conn)
                self.by_fd[conn.fd] = conn
                epoll.register(conn.fd, EPOLLIN | EPOLLOUT)
                next_index += 1
                in_setup += 1
            for fd, events in self._poll(0.05):
                conn = self.by_fd[fd]
                if not conn.connected:
                    if not events & (EPOLLOUT | select.EPOLLERR | select.EPOLLHUP):
                        continue
                    error = conn.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                    if error:
                        raise BenchError(
                            f"connecting to {self.address}: {os.strerror(error)}"
                        )
                    conn.connected = True
                    epoll.modify(fd, EPOLLIN)
                    conn.sock.sendall(conn.hello)
                    continue
                data = self._recv(conn, what)
                if conn.ready:
                    continue
                tail = conn.tail + data
                if conn.marker in tail:
                    conn.ready = True
                    conn.tail = b""
                    ready += 1
                    in_setup -= 1
                elif ERROR_LINE in tail:
                    raise BenchError(
                        f"the server refused {what} #{conn.index}: "
                        f"{tail[tail.find(ERROR_LINE) :][:200]!r}"
                    )
                else:
                    conn.tail = tail[-512:]
        return opened

    def _recv(self, conn: Conn, what: str) -> bytes:
        try:
            data = conn.recv(RECV_SIZE)
        except ConnectionError as error:
            raise BenchError(f"{what} #{conn.index}: {error}") from None
        if not data:
            raise BenchError(
                f"the server closed {what} #{conn.index}; it last said "
                f"{conn.tail[-200:]!r}"
            )
        return data

    def drain_until(self, waiting: Sequence[Conn], marker: bytes, what: str) -> None:
        """Read every connection until each of ``waiting`` has seen ``marker``."""
        for conn in self.conns:
            conn.ready = True
        for conn in waiting:
            conn.ready = False
            conn.tail = b""
        left = len(waiting)
        keep = len(marker) - 1
        while left:
            timeout = min(0.05, self.remaining(f"{what} ({left} still waiting)"))
            for fd, _events in self._poll(timeout):
                conn = self.by_fd[fd]
                data = self._recv(conn, what)
                if conn.ready:
                    continue
                tail = conn.tail + data
                if marker in tail:
                    conn.ready = True
                    left -= 1
                else:
                    conn.tail = tail[-keep:] if keep else b""

    def drain_for(self, seconds: float, what: str) -> None:
        """Read (and forget) whatever arrives for ``seconds``."""
        end = time.monotonic() + seconds
        while (now := time.monotonic()) < end:
            self.remaining(what)
            for fd, _events in self.epoll.poll(min(0.05, end - now)):
                self._recv(self.by_fd[fd], what)

    def barrier(self, speaker: Conn, members: Sequence[Conn], what: str) -> None:
        """
        Let ``speaker`` say a unique line in its room and wait until every
        member has received it: whatever the server queued for them before
        (join notices...) has then been read.
        """
        token = b"SYNC%d" % time.perf_counter_ns()
        speaker.sock.sendall(token + b"\r\n")
        self.drain_until(members, b" " + token + b"\r\n", what)


def send_all(conn: Conn, data: bytes) -> None:
    """Slow path: the kernel took part of a write; finish it, bounded."""
    view = memoryview(data)
    deadline = time.monotonic() + 10
    while view:
        try:
            sent = conn.send(view)
        except BlockingIOError:
            sent = 0
        view = view[sent:]
        if view:
            if time.monotonic() > deadline:
                raise BenchError("the server stopped reading for 10 s")
            select.select([], [conn.sock], [], 0.01)


# Workloads


def run_echo(options: argparse.Namespace, upper: bool) -> dict[str, object]:
    """N connections each keep ``window`` lines in flight; lines back per second."""
    net = Net(options.port, time.monotonic() + options.timeout)
    try:
        expect = ECHO_LINE.upper() if upper else ECHO_LINE
        conns = net.open(
            options.connections,
            lambda i: ECHO_LINE,
            lambda i: expect,
            "echo connections",
        )
        window = options.window
        payloads = [ECHO_LINE * n for n in range(window + 1)]
        sizes = [len(payload) for payload in payloads]
        table = {conn.fd: (conn.recv, conn.send, conn) for conn in conns}
        poll = net.epoll.poll
        for conn in conns:
            sent = conn.send(payloads[window])
            if sent != sizes[window]:
                send_all(conn, payloads[window][sent:])
        measure = Window(options.server_pid)
        total = reads = 0
        counted_from = reads_from = 0
        idle = idle_from = 0.0
        clock = time.perf_counter
        now = clock()
        warm_end = now + options.warmup
        end = warm_end + options.duration
        measuring = False
        while True:
            if not measuring and now >= warm_end:
                measure.start()
                counted_from, reads_from, idle_from = total, reads, idle
                measuring = True
            if now >= end:
                break
            events = poll(0.05)
            idle += clock() - now
            reads += len(events)
            for fd, _events in events:
                recv, send, conn = table[fd]
                data = recv(RECV_SIZE)
                n = data.count(NL)
                if n:
                    total += n
                    done = send(payloads[n])
                    if done != sizes[n]:
                        send_all(conn, payloads[n][done:])
                elif not data:
                    raise BenchError(f"the server closed connection #{conn.index}")
            now = clock()
        measure.stop(idle - idle_from)
        lines = total - counted_from
        result: dict[str, object] = {
            "value": lines / measure.wall,
            "unit": "lines/s",
            "lines": lines,
            "connections": len(conns),
            "window": window,
            "lines_per_read": round(lines / max(1, reads - reads_from), 1),
            "loadgen": "python",
        }
        result.update(measure.report())
        return result
    finally:
        net.close()


def register_chatters(
    net: Net, count: int, prefix: str, what: str, split: bool = False
) -> list[Conn]:
    """
    Open ``count`` chat connections that take the nicknames ``prefixNNNNN``
    (``split``: half of them on the second node, if any).
    """
    return net.open(
        count,
        lambda i: b"%s%05d\r\n" % (prefix.encode(), i),
        lambda i: REGISTERED,
        what,
        split=split,
    )


def register_irc(
    net: Net,
    count: int,
    prefix: str,
    what: str,
    rooms: Callable[[int], bytes],
    concurrency: int = 40,
) -> list[Conn]:
    """
    Open ``count`` IRC connections that register as ``prefixNNNNN`` (NICK,
    USER); once all are welcomed (001), each joins the channel ``rooms``
    names for it (after 001: InspIRCd refuses a JOIN before) and they are
    drained until each has its end of NAMES (366).
    """
    conns = net.open(
        count,
        lambda i: (
            b"NICK %s%05d\r\nUSER %s%05d 0 * :bench\r\n"
            % (prefix.encode(), i, prefix.encode(), i)
        ),
        lambda i: b" 001 %s%05d " % (prefix.encode(), i),
        what,
        concurrency,
    )
    for i, conn in enumerate(conns):
        conn.sock.sendall(b"JOIN %s\r\n" % rooms(i))
    # A numeric's code follows the server's name: " 366 NICK #room ".
    net.drain_until(conns, b" 366 ", f"{what} joining")
    return conns


class FanoutCheck:
    """
    What the receivers of a fan-out got, delivery by delivery: for each
    receiver and sender, the sequence number expected next.  A delivery of
    that number is counted (once); a lower one is a duplicate (or a late
    one, which the number expected next already skipped), a higher one is
    out of order (the ones between were skipped: lost, or yet to come late);
    a complete line that is no delivery is unexpected.
    """

    def __init__(self, receivers: int, senders: int) -> None:
        self.expected = [[0] * senders for _ in range(receivers)]
        self.carry = [b""] * receivers
        self.delivered = 0
        self.duplicates = 0
        self.out_of_order = 0
        self.unexpected = 0
        self.sample: list[str] = []
        self._find = FANOUT_LINE.findall

    def take(self, receiver: int, data: bytes) -> None:
        """Count the complete lines of what ``receiver`` read."""
        data = self.carry[receiver] + data
        cut = data.rfind(NL) + 1
        self.carry[receiver] = data[cut:]
        if not cut:
            return
        found = self._find(data, 0, cut)
        lines = data.count(NL, 0, cut)
        if len(found) != lines:
            self._unexpected(data[:cut])
        row = self.expected[receiver]
        delivered = 0
        for sender, number in found:
            sender = int(sender)
            number = int(number)
            want = row[sender]
            if number == want:
                row[sender] = number + 1
                delivered += 1
            elif number < want:
                self.duplicates += 1
            else:
                self.out_of_order += 1
                row[sender] = number + 1
                delivered += 1
        self.delivered += delivered

    def _unexpected(self, data: bytes) -> None:
        for line in data.split(NL)[:-1]:
            if not FANOUT_WHOLE_LINE.fullmatch(line):
                self.unexpected += 1
                if len(self.sample) < SAMPLE_LINES:
                    self.sample.append(
                        line[:200].decode("utf-8", "replace").rstrip("\r")
                    )

    def missing(self, sent: Sequence[int]) -> int:
        """Deliveries never received: for each receiver, each sender's."""
        return sum(
            max(0, count - got)
            for row in self.expected
            for count, got in zip(sent, row, strict=True)
        )

    def complete(self, receiver: int, sent: Sequence[int]) -> bool:
        """Whether ``receiver`` has had every message sent."""
        row = self.expected[receiver]
        return all(got >= count for got, count in zip(row, sent, strict=True))


def run_fanout(options: argparse.Namespace) -> dict[str, object]:
    """
    One room, R receivers and S senders each keeping ``window`` numbered
    messages in flight; deliveries per second counted at the receivers,
    each once, by its sender and number (:class:`FanoutCheck`).

    Senders are served as soon as they are readable (their own messages
    coming back pace the load); receivers are read in passes, every
    ``receiver_interval`` seconds, so that each ``recv`` takes what several
    of the server's writes brought.  How often a receiver reads changes
    nothing the server does (its socket buffers hold far more than a pass
    brings), but reading 1000 sockets as eagerly as the senders would make
    this process, not the server, set the pace.
    """
    net = Net(options.port, time.monotonic() + options.timeout, options.second_port)
    sender_epoll = select.epoll()
    try:
        # With a second node, half the receivers are there; the senders
        # all on the first.
        receivers = register_chatters(
            net, options.receivers, "r", "receivers", split=True
        )
        senders = register_chatters(net, options.senders, "s", "senders")
        everyone = receivers + senders
        net.barrier(senders[0], everyone, "waiting for the room to settle")
        for conn in senders:
            net.epoll.unregister(conn.fd)
            sender_epoll.register(conn.fd, EPOLLIN)
        count_r = len(receivers)
        count_s = len(senders)
        # Index by fd: receivers first (0..R-1), then senders.
        index = {conn.fd: i for i, conn in enumerate(everyone)}
        recvs = [conn.recv for conn in everyone]
        check = FanoutCheck(count_r, count_s)
        take = check.take
        own_marker = [b""] * len(everyone)
        carry = [b""] * len(everyone)
        #: Messages each sender has sent (its next sequence number).
        sent = [0] * count_s
        for i in range(count_r, len(everyone)):
            own_marker[i] = b"<s%05d> " % (i - count_r)
        window = options.window

        def say(sender: int, count: int) -> None:
            first = sent[sender]
            payload = b"".join(
                FANOUT_TEXT % number for number in range(first, first + count)
            )
            conn = senders[sender]
            done = conn.send(payload)
            if done != len(payload):
                send_all(conn, payload[done:])
            sent[sender] = first + count

        for sender in range(count_s):
            say(sender, window)
        poll_senders = sender_epoll.poll
        poll_receivers = net.epoll.poll
        interval = options.receiver_interval
        measure = Window(options.server_pid)
        counted_from = 0
        idle = idle_from = 0.0
        clock = time.perf_counter
        now = clock()
        warm_end = now + options.warmup
        end = warm_end + options.duration
        next_pass = now
        measuring = False
        while True:
            if not measuring and now >= warm_end:
                measure.start()
                counted_from, idle_from = check.delivered, idle
                measuring = True
            if now >= end:
                break
            if now >= next_pass:
                next_pass = now + interval
                for fd, _events in poll_receivers(0):
                    i = index[fd]
                    data = recvs[i](RECV_SIZE)
                    if not data:
                        raise BenchError(f"the server closed receiver #{i}")
                    take(i, data)
                now = clock()
            events = poll_senders(max(0.0, min(next_pass - now, 0.05)))
            idle += clock() - now
            for fd, _events in events:
                i = index[fd]
                data = recvs[i](RECV_SIZE)
                if not data:
                    raise BenchError(f"the server closed sender #{i - count_r}")
                # A sender: count its own messages among complete lines.
                data = carry[i] + data
                cut = data.rfind(NL) + 1
                carry[i] = data[cut:]
                own = data.count(own_marker[i], 0, cut)
                if own:
                    say(i - count_r, own)
            now = clock()
        for conn in senders:
            sender_epoll.unregister(conn.fd)
            net.epoll.register(conn.fd, EPOLLIN)
        measure.stop(idle - idle_from)
        deliveries = check.delivered - counted_from
        messages = sum(sent)
        # Drain: every receiver must get every message, bounded in time.
        drain_deadline = time.monotonic() + options.drain_timeout
        behind = {i for i in range(count_r) if not check.complete(i, sent)}
        while behind and time.monotonic() < drain_deadline:
            for fd, _events in poll_receivers(0.05):
                i = index[fd]
                data = recvs[i](RECV_SIZE)
                if not data:
                    raise BenchError(f"the server closed connection #{i}")
                if i < count_r:
                    take(i, data)
                    if i in behind and check.complete(i, sent):
                        behind.discard(i)
        result: dict[str, object] = {
            "value": deliveries / measure.wall,
            "unit": "deliveries/s",
            "deliveries": deliveries,
            "messages_sent": messages,
            "receivers": count_r,
            "senders": count_s,
            "window": window,
            "receiver_interval": interval,
            "lost": check.missing(sent),
            "duplicates": check.duplicates,
            "out_of_order": check.out_of_order,
            "unexpected_lines": check.unexpected,
            "unexpected_sample": check.sample,
            "drained": not behind,
            # What fanout_loadgen.c also does over IRC or paced by a receiver.
            "protocol": "native",
            "pace": "sender",
            "loadgen": "python",
        }
        result.update(measure.report())
        return result
    finally:
        sender_epoll.close()
        net.close()


def percentile(ordered: Sequence[int], fraction: float) -> int:
    """The nearest-rank percentile of sorted values."""
    if not ordered:
        return 0
    rank = max(0, min(len(ordered) - 1, round(fraction * len(ordered) + 0.5) - 1))
    return ordered[rank]


#: ``SO_TIMESTAMPNS`` (Linux): the kernel stamps what a socket receives.
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)
TIMESPEC = struct.Struct("qq")


def realtime_offset_ns() -> int:
    """``time.time_ns() - time.perf_counter_ns()``, read as tightly as we can."""
    best: tuple[int, int] | None = None
    for _ in range(100):
        before = time.perf_counter_ns()
        real = time.time_ns()
        after = time.perf_counter_ns()
        if best is None or after - before < best[0]:
            best = (after - before, real - (before + after) // 2)
    assert best is not None
    return best[1]


def in_lobby(index: int) -> bytes:
    """The channel every IRC client of a latency run joins."""
    return b"#lobby"


def run_latency(options: argparse.Namespace) -> dict[str, object]:
    """
    One room, R receivers; S senders send ``rate`` messages per second in
    all, each stamped with ``perf_counter_ns``; delivery latency at the
    receivers, two ways: until the kernel put the line in the receiver's
    socket (``SO_TIMESTAMPNS``, the server's share), and until this process
    read it (adds the load generator's own delay in reading R sockets).
    ``--protocol irc``: the same over IRC (NICK, USER, JOIN #lobby, and
    ``PRIVMSG #lobby``).
    """
    net = Net(options.port, time.monotonic() + options.timeout, options.second_port)
    irc = options.protocol == "irc"
    try:
        if irc:
            many = options.concurrency
            receivers = register_irc(
                net, options.receivers, "r", "receivers", in_lobby, many
            )
            senders = register_irc(net, options.senders, "s", "senders", in_lobby, many)
            everyone = receivers + senders
            # A sender does not hear itself over IRC.
            token = b"SYNC%d" % time.perf_counter_ns()
            senders[0].sock.sendall(IRC_SAY + token + b"\r\n")
            net.drain_until(
                everyone[: -len(senders)] + senders[1:], b" :" + token, "settling"
            )
        else:
            # With a second node, half the receivers there (cross-node latency).
            receivers = register_chatters(
                net, options.receivers, "r", "receivers", split=True
            )
            senders = register_chatters(net, options.senders, "s", "senders")
            everyone = receivers + senders
            net.barrier(senders[0], everyone, "waiting for the room to settle")
        say = IRC_SAY if irc else b""
        count_r = len(receivers)
        kernel_stamps = True
        for conn in receivers:
            try:
                conn.sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
            except OSError:
                kernel_stamps = False
        offset = realtime_offset_ns()
        index = {conn.fd: i for i, conn in enumerate(everyone)}
        recvs = [conn.recv for conn in everyone]
        recvmsgs = [conn.sock.recvmsg for conn in receivers]
        ancillary = socket.CMSG_SPACE(TIMESPEC.size)
        carry = [b""] * count_r
        got = [0] * count_r
        at_read: list[int] = []
        in_socket: list[int] = []
        poll = net.epoll.poll
        interval = 1.0 / options.rate
        measure = Window(options.server_pid)
        clock = time.perf_counter
        perf_ns = time.perf_counter_ns
        stamps = (IRC_STAMP if irc else STAMP).findall
        unpack = TIMESPEC.unpack_from
        now = clock()
        warm_end = now + options.warmup
        end = warm_end + options.duration
        warm_end_ns = int(warm_end * 1e9)
        next_send = now
        sent = measured_from = 0
        idle = idle_from = 0.0
        measuring = False
        padding = b" " + b"x" * 16 + b"\r\n"

        def receive(i: int) -> None:
            if i >= count_r:
                # Senders hear their messages too; nothing to measure.
                if not recvs[i](RECV_SIZE):
                    raise BenchError(f"the server closed sender #{i - count_r}")
                return
            data, cmsgs, _flags, _address = recvmsgs[i](RECV_SIZE, ancillary)
            read_at = perf_ns()
            if not data:
                raise BenchError(f"the server closed receiver #{i}")
            kernel_at = None
            for level, kind, payload in cmsgs:
                if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
                    seconds, nanoseconds = unpack(payload)
                    kernel_at = seconds * 1_000_000_000 + nanoseconds - offset
            data = carry[i] + data
            cut = data.rfind(NL) + 1
            carry[i] = data[cut:]
            # "#lobby <s00000> T<ns> xxx\r\n"
            for stamp in stamps(data, 0, cut):
                got[i] += 1
                sent_at = int(stamp)
                if sent_at >= warm_end_ns:
                    at_read.append(read_at - sent_at)
                    if kernel_at is not None:
                        in_socket.append(kernel_at - sent_at)

        while True:
            if not measuring and now >= warm_end:
                measure.start()
                measured_from, idle_from = sent, idle
                measuring = True
            if now >= end:
                break
            while now >= next_send:
                conn = senders[sent % len(senders)]
                line = b"%sT%d%s" % (say, perf_ns(), padding)
                if conn.send(line) != len(line):
                    raise BenchError("the server does not read the senders")
                sent += 1
                next_send += interval
                now = clock()
            if now - next_send > 0.1:
                # Stalled (a busy machine): skip the missed sends rather than
                # burst them; the achieved rate is reported.
                next_send = now + interval
            events = poll(max(0.0, min(next_send - now, 0.05)))
            idle += clock() - now
            for fd, _events in events:
                receive(index[fd])
            now = clock()
        measure.stop(idle - idle_from)
        measured = sent - measured_from
        drain_deadline = time.monotonic() + options.drain_timeout
        while min(got) < sent and time.monotonic() < drain_deadline:
            for fd, _events in poll(0.05):
                receive(index[fd])
        at_read.sort()
        in_socket.sort()
        kernel_stamps = kernel_stamps and len(in_socket) == len(at_read)
        main = in_socket if kernel_stamps else at_read
        lost = sum(max(0, sent - g) for g in got)
        result: dict[str, object] = {
            "value": percentile(main, 0.99) / 1e6,
            "unit": "ms p99",
            "measured_at": "kernel receive" if kernel_stamps else "read",
            "p50_ms": percentile(main, 0.50) / 1e6,
            "p99_ms": percentile(main, 0.99) / 1e6,
            "max_ms": (main[-1] / 1e6) if main else 0.0,
            "read_p50_ms": percentile(at_read, 0.50) / 1e6,
            "read_p99_ms": percentile(at_read, 0.99) / 1e6,
            "read_max_ms": (at_read[-1] / 1e6) if at_read else 0.0,
            "samples": len(main),
            "receivers": count_r,
            "senders": len(senders),
            "target_messages_per_s": options.rate,
            "messages_per_s": measured / measure.wall,
            "deliveries_per_s": measured * count_r / measure.wall,
            "lost": lost,
            # What fanout_loadgen.c latency also does over IRC.
            "protocol": options.protocol,
            "loadgen": "python",
        }
        result.update(measure.report())
        return result
    finally:
        net.close()


def run_memory(options: argparse.Namespace) -> dict[str, object]:
    """
    C idle connections; the server's VmRSS before and after, per connection.

    ``--service chat``: registered members, ``--room-members`` of them in
    ``#lobby`` and the rest in rooms of ``--room-size`` (0: all in #lobby).
    ``--service echo``: connections that exchanged one line.
    ``--service irc``: registered IRC clients, in channels as for chat.
    """
    if options.server_pid is None:
        raise BenchError("memory needs --server-pid")
    pid = options.server_pid
    limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if limit < options.connections + 64:
        raise BenchError(
            f"{options.connections} connections need more open files than the "
            f"limit of {limit} allows (ulimit -Hn)"
        )
    net = Net(options.port, time.monotonic() + options.timeout)
    try:
        count = options.connections
        if options.service == "echo":
            net.open(1, lambda i: ECHO_LINE, lambda i: ECHO_LINE, "warm-up")
            net.drain_for(0.2, "warming up")
            before = rss_kib(pid)
            net.open(count, lambda i: ECHO_LINE, lambda i: ECHO_LINE, "connections")
            net.drain_for(0.5, "settling")
        elif options.service == "irc":
            register_irc(net, 1, "w", "warm-up", lambda i: b"#lobby")
            many = options.concurrency
            net.drain_for(0.2, "warming up")
            before = rss_kib(pid)
            in_lobby = min(count, options.room_members)
            size = options.room_size or count
            # Those of small rooms first, while #lobby is nearly empty.
            register_irc(
                net,
                count - in_lobby,
                "m",
                "members of small rooms",
                lambda i: b"#room%04d" % (i // size),
                many,
            )
            register_irc(
                net, in_lobby, "l", "members of #lobby", lambda i: b"#lobby", many
            )
            net.drain_for(0.5, "settling")
        else:
            (first,) = register_chatters(net, 1, "w", "warm-up")
            net.barrier(first, [first], "warming up")
            net.drain_for(0.2, "warming up")
            before = rss_kib(pid)
            in_lobby = min(count, options.room_members)
            elsewhere = count - in_lobby
            size = options.room_size
            if elsewhere and size > 0:
                # Through #lobby (every member joins it first) to a room of
                # their own: they go first, while #lobby is nearly empty.
                net.open(
                    elsewhere,
                    lambda i: (
                        b"m%05d\r\n/join room%04d\r\n/part #lobby\r\n" % (i, i // size)
                    ),
                    lambda i: MOVED,
                    "members of small rooms",
                )
            elif elsewhere:
                in_lobby = count
            lobby = register_chatters(net, in_lobby, "l", "members of #lobby")
            net.barrier(first, [first, *lobby], "waiting for #lobby to settle")
            net.drain_for(0.5, "settling")
        after = rss_kib(pid)
        return {
            "value": (after - before) / count,
            "unit": "KiB/conn",
            "rss_before_kib": before,
            "rss_after_kib": after,
            "connections": count,
            "loadgen_cpu_pct": None,
            "server_cpu_pct": None,
            "saturated": False,
        }
    finally:
        net.close()


def run_storm(options: argparse.Namespace) -> dict[str, object]:
    """
    A connection storm against the chat: C clients connect and register
    (at most 40 being set up at once, as a listen backlog of 50 allows) in
    batches of ``--batch``, all held open; after each batch a member who was
    there first says a line and waits for it to come back.  Registrations
    per second over the storm, and that member's round trips meanwhile:
    the speed questions ``tests/test_stress.py`` leaves to the benchmark.
    Every member sees every later one join: the storm costs the server
    O(C²) notices, as it would in a real room (below the quiet-room size).
    With ``--probe-room`` the member speaks in a room of its own (still a
    member of #lobby): its lines are not C more deliveries per batch, and
    the server's CPU time is the registrations'.
    """
    net = Net(options.port, time.monotonic() + options.timeout)
    try:
        if options.probe_room:
            (probe,) = net.open(
                1,
                lambda i: b"p00000\r\n/join #probe\r\n",
                lambda i: b" has joined #probe",
                "the probe",
            )
        else:
            (probe,) = register_chatters(net, 1, "p", "the probe")
        trips: list[int] = []
        measure = Window(options.server_pid)
        measure.start()
        idle_from = net.idle
        opened = 0
        batch = 0
        while opened < options.connections:
            count = min(options.batch, options.connections - opened)
            net.open(
                count,
                lambda i, batch=batch: b"c%03d%05d\r\n" % (batch, i),
                lambda i: REGISTERED,
                f"storm batch {batch}",
            )
            opened += count
            batch += 1
            token = b"PING%d" % len(trips)
            sent = time.perf_counter_ns()
            probe.sock.sendall(token + b"\r\n")
            net.drain_until([probe], b"<p00000> " + token + b"\r\n", "the probe")
            trips.append(time.perf_counter_ns() - sent)
        measure.stop(net.idle - idle_from)
        listed = None
        if options.check_who:
            # Every member is in the room's list: the probe and the storm.
            listed = opened + 1
            probe.sock.sendall(b"/who #lobby\r\n")
            net.drain_until([probe], b"--- #lobby (%d): " % listed, "the probe's /who")
        trips.sort()
        result: dict[str, object] = {
            "value": opened / measure.wall,
            "seconds": measure.wall,
            "members_listed": listed,
            "unit": "registrations/s",
            "connections": opened,
            "batch": options.batch,
            "probe_trips": len(trips),
            "probe_p50_ms": percentile(trips, 0.50) / 1e6,
            "probe_max_ms": trips[-1] / 1e6,
            "probe_room": "#probe" if options.probe_room else "#lobby",
            "server_cpu_s": measure.server_cpu,
        }
        result.update(measure.report())
        return result
    finally:
        net.close()


WORKLOADS = {
    "echo": lambda options: run_echo(options, upper=False),
    "upper": lambda options: run_echo(options, upper=True),
    "fanout": run_fanout,
    "latency": run_latency,
    "memory": run_memory,
    "storm": run_storm,
    # bench/attack.py (it uses this module: imported when asked for).
    "attack": lambda options: importlib.import_module("attack").run_attack(options),
}


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Load generator for chatservice's benchmarks (loopback only)."
    )
    parser.add_argument("workload", choices=sorted(WORKLOADS))
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument(
        "--second-port",
        type=int,
        help="fanout, latency: a second node of the same chat (--redis); half "
        "the receivers connect there",
    )
    parser.add_argument("--server-pid", type=int, help="for CPU and RSS figures")
    parser.add_argument("--cpu", type=int, help="pin this process to this core")
    parser.add_argument("--connections", type=int, default=100)
    parser.add_argument(
        "--concurrency",
        type=int,
        default=40,
        help="memory and latency over IRC: registrations in flight at once",
    )
    parser.add_argument("--window", type=int, default=64, help="lines in flight")
    parser.add_argument("--duration", type=float, default=3.0, help="seconds")
    parser.add_argument("--warmup", type=float, default=0.5, help="seconds")
    parser.add_argument("--receivers", type=int, default=1000)
    parser.add_argument("--senders", type=int, default=10)
    parser.add_argument(
        "--receiver-interval",
        type=float,
        default=0.005,
        help="seconds between passes over the fan-out receivers",
    )
    parser.add_argument("--rate", type=float, default=200.0, help="messages/s")
    parser.add_argument(
        "--protocol",
        choices=("native", "irc"),
        default="native",
        help="latency: the chat's own protocol or IRC",
    )
    parser.add_argument("--service", choices=("chat", "echo", "irc"), default="chat")
    parser.add_argument("--room-members", type=int, default=2000)
    parser.add_argument("--room-size", type=int, default=20)
    parser.add_argument("--drain-timeout", type=float, default=10.0)
    parser.add_argument(
        "--batch", type=int, default=100, help="storm: connections between pings"
    )
    parser.add_argument(
        "--check-who",
        action="store_true",
        help="storm: check the room's /who lists every member at the end",
    )
    parser.add_argument(
        "--probe-room",
        action="store_true",
        help="storm: the probe speaks in a room of its own, not to the storm",
    )
    parser.add_argument(
        "--timeout", type=float, default=120.0, help="hard limit for the run"
    )
    attack = parser.add_argument_group("attack (bench/attack.py)")
    attack.add_argument("--slowloris", type=int, default=1000, help="tricklers")
    attack.add_argument("--storm", type=int, default=5000, help="silent stormers")
    attack.add_argument(
        "--per-address", type=int, default=5, help="attackers per source address"
    )
    for door in ("echo", "irc", "web"):
        attack.add_argument(
            f"--{door}-port",
            type=int,
            help=f"the {door} door's port: the attack is spread over it too",
        )
    attack.add_argument(
        "--trickle-interval", type=float, default=1.0, help="seconds between bytes"
    )
    attack.add_argument(
        "--fresh-interval",
        type=float,
        default=0.1,
        help="seconds between fresh clients registering",
    )
    options = parser.parse_args(argv)
    if options.window < 1 or options.connections < 1 or options.batch < 1:
        parser.error("--window, --connections and --batch must be at least 1")
    if options.workload in ("fanout", "latency") and (
        options.receivers < 1 or options.senders < 1
    ):
        parser.error("--receivers and --senders must be at least 1")
    if options.rate <= 0:
        parser.error("--rate must be positive")
    return options


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_args(sys.argv[1:] if argv is None else argv)
    cpus = pin_to_cpu(options.cpu)
    limit = raise_fd_limit()
    try:
        result = WORKLOADS[options.workload](options)
    except (BenchError, OSError) as error:
        print(json.dumps({"workload": options.workload, "error": str(error)}))
        return 1
    result = {"workload": options.workload, "cpus": cpus, "fd_limit": limit, **result}
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
