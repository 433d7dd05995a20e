"""
Hostile clients over real sockets on the loopback interface: a 64 MiB line
without an end, a chat client that never reads, flooders, per-address
refusals and a connection storm, connections reset in the middle of a
write, and a busy room in which nothing may be lost.

The server runs in this process (``reactor.listenTCP(0, ...)`` on
127.0.0.1, the real factories and a :class:`Hub`); the hostile clients are
plain blocking sockets driven from threads (:func:`deferToThread`), so they
misbehave exactly as a program would.  Every test is bounded in time and
count, waits for the server's side of every connection to be gone, and
leaves a clean reactor.  Assertions about the server's state are made in
the reactor thread, once the clients' threads have finished.
"""

from __future__ import annotations

import contextlib
import gc
import re
import resource
import socket
import struct
import threading
import time
import weakref
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ClassVar, TypeVar, cast

from twisted.internet import reactor
from twisted.internet.address import IPv4Address
from twisted.internet.defer import (
    Deferred,
    gatherResults,
    inlineCallbacks,
    maybeDeferred,
)
from twisted.internet.interfaces import IListeningPort, IReactorTCP
from twisted.internet.task import deferLater
from twisted.internet.threads import deferToThread
from twisted.logger import Logger
from twisted.trial.unittest import SkipTest, TestCase

from chatservice.backends.local import LocalBackend
from chatservice.chat.hub import Hub
from chatservice.chat.model import ChatConfig
from chatservice.conn.limits import Limits
from chatservice.conn.turns import end_of_turn
from chatservice.doors.echo import EchoFactory, EchoProtocol
from chatservice.doors.line import LineFactory, LineProtocol
from chatservice.doors.native.protocol import ChatFactory, ChatProtocol, ChatSettings
from chatservice.doors.upper import UpperFactory, UpperProtocol
from tests.support import logged_failures

T = TypeVar("T")

LOOPBACK = "127.0.0.1"
#: Seconds a client socket waits for the server before the test fails: a
#: deadline that catches a hang, never a speed limit (speed is ``bench/``'s).
SOCKET_TIMEOUT = 30.0
#: Seconds the server gets to reach a state (every connection closed...)
#: before the test fails: a hang deadline too.
HANG_DEADLINE = 60.0
#: Twisted's TCP transport reads at most this much at once.
READ_SIZE = 65536
#: How much the process may grow during a hostile phase (a generous bound:
#: a server that buffers what it should refuse grows by hundreds of MiB).
MEMORY_BOUND = 100 * 1024 * 1024
GREETING = b"/help lists commands.\r\n"
LINE_TOO_LONG = b"!!! line too long (limit 4096 bytes); closing connection\r\n"

tcp = cast(IReactorTCP, reactor)
#: Measured figures go to the log (trial's ``test.log``), for the curious.
figures = Logger(namespace="chatservice.stress")


def rss() -> int:
    """This process's resident memory in bytes (Linux ``/proc``)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    raise SkipTest("no /proc/self/status to measure memory with")


def in_threads(count: int, work: Callable[[int], T]) -> list[T]:
    """Run ``work(0)``... ``work(count - 1)`` in as many threads; their results."""
    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(work, range(count)))


def holds(factory: LineFactory, count: int) -> Callable[[], bool]:
    """Whether ``factory`` has ``count`` connections (asked from the reactor)."""
    return lambda: len(factory.connections) == count


class RawClient:
    """
    A blocking TCP connection to the server, speaking lines as ``nc`` would;
    used by one thread at a time.
    """

    def __init__(
        self,
        port: int,
        *,
        opened: list[RawClient] | None = None,
        receive_buffer: int | None = None,
    ) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if receive_buffer is not None:
            # Small, so that a client that does not read fills up quickly.
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        self.sock.settimeout(SOCKET_TIMEOUT)
        if opened is not None:
            opened.append(self)
        self.sock.connect((LOOPBACK, port))
        self.received = bytearray()
        self._scanned = 0
        self.at_end = False

    def send(self, *lines: str) -> None:
        self.sock.sendall(b"".join(line.encode("utf-8") + b"\n" for line in lines))

    def receive(self, timeout: float = SOCKET_TIMEOUT) -> bytes:
        """One read, waiting at most ``timeout``; ``b""`` at the end."""
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(READ_SIZE)
        except ConnectionResetError:
            data = b""
        if not data:
            self.at_end = True
        self.received += data
        return data

    def expect(self, marker: bytes, timeout: float = SOCKET_TIMEOUT) -> None:
        """Read until ``marker`` has arrived; fail if it does not in time."""
        deadline = time.monotonic() + timeout
        start = 0
        while marker not in self.received[start:]:
            start = max(0, len(self.received) - len(marker))
            left = deadline - time.monotonic()
            if left <= 0 or self.at_end:
                raise AssertionError(
                    f"{marker!r} did not arrive; got {bytes(self.received[-500:])!r}"
                )
            with contextlib.suppress(TimeoutError):
                self.receive(left)

    def lines(self) -> Iterable[bytes]:
        """The complete lines received since the last call."""
        end = self.received.rfind(b"\r\n")
        if end < self._scanned:
            return []
        chunk = bytes(self.received[self._scanned : end])
        self._scanned = end + 2
        return chunk.split(b"\r\n")

    def read_to_end(self, timeout: float = SOCKET_TIMEOUT) -> bytes:
        """Read until the server closes (a reset counts as closing)."""
        deadline = time.monotonic() + timeout
        while not self.at_end:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(
                    f"the server did not close; got {bytes(self.received[-500:])!r}"
                )
            self.receive(left)
        return bytes(self.received)

    def reset(self) -> None:
        """Vanish with a reset (RST), as a crashed or killed client does."""
        self.sock.setsockopt(
            socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
        )
        self.sock.close()

    def close(self) -> None:
        self.sock.close()


def chat_client(
    port: int, nick: str, opened: list[RawClient], **options: Any
) -> RawClient:
    """A chat client that has chosen ``nick`` and is in the lobby."""
    client = RawClient(port, opened=opened, **options)
    client.expect(GREETING)
    client.send(nick)
    client.expect(f"--- you are {nick}; you are in #lobby\r\n".encode())
    return client


class Measuring(LineProtocol):
    """
    Records the largest read, and the largest input buffer: what was kept
    from earlier reads together with the new one, the most the protocol
    ever holds at once.
    """

    #: Every measured connection of the running test.
    measured: ClassVar[list[Measuring]] = []
    largest_read = 0
    largest_buffer = 0

    def connectionMade(self) -> None:
        self.measured.append(self)
        super().connectionMade()

    def dataReceived(self, data: bytes) -> None:
        self.largest_read = max(self.largest_read, len(data))
        held = len(self._partial) + len(data)
        self.largest_buffer = max(self.largest_buffer, held)
        super().dataReceived(data)


class MeasuredEcho(Measuring, EchoProtocol):
    pass


class MeasuredUpper(Measuring, UpperProtocol):
    pass


class MeasuredChat(Measuring, ChatProtocol):
    pass


class StressTestCase(TestCase):
    """Runs real services on loopback and leaves nothing behind."""

    timeout = 600

    def setUp(self) -> None:
        self.factories: list[LineFactory] = []
        self.ports: list[IListeningPort] = []
        self.opened: list[RawClient] = []
        self.failures = logged_failures(self)
        # Cleanups run last first: clients go, then the server's side of
        # their connections, then the ports; then the log is checked.
        self.addCleanup(self.assertNoTraceback)
        self.addCleanup(self._stopListening)
        self.addCleanup(self._serverConnectionsGone)
        self.addCleanup(self._closeClients)

    def assertNoTraceback(self) -> None:
        self.assertEqual(
            self.failures, [], "a hostile client made the server log a traceback"
        )

    def _closeClients(self) -> None:
        for client in self.opened:
            client.close()

    @inlineCallbacks
    def _serverConnectionsGone(self) -> Any:
        """
        Wait until the server's side of every connection is gone; close
        (and after the grace period, abort) stragglers, and fail.
        """
        Measuring.measured = []
        deadline = time.monotonic() + HANG_DEADLINE
        while self.connected() and time.monotonic() < deadline:
            yield deferLater(reactor, 0.02, lambda: None)
        left = self.connected()
        if left:
            yield gatherResults([factory.closeAll() for factory in self.factories])
            self.fail(f"{left} connections were still open at the end")

    def _stopListening(self) -> Deferred[Any]:
        return gatherResults([maybeDeferred(port.stopListening) for port in self.ports])

    def connected(self) -> int:
        return sum(len(factory.connections) for factory in self.factories)

    def waitUntil(
        self, condition: Callable[[], bool], timeout: float, what: str
    ) -> Deferred[None]:
        """Fires once ``condition()`` holds, polled from the reactor thread."""

        @inlineCallbacks
        def poll() -> Any:
            deadline = time.monotonic() + timeout
            while not condition():
                if time.monotonic() > deadline:
                    raise AssertionError(f"not within {timeout:g} s: {what}")
                yield deferLater(reactor, 0.02, lambda: None)

        return cast(Deferred[None], poll())

    def listen(self, factory: LineFactory) -> int:
        port = tcp.listenTCP(0, factory, interface=LOOPBACK)
        self.factories.append(factory)
        self.ports.append(port)
        return cast(IPv4Address, port.getHost()).port

    def chat(
        self, config: ChatConfig | None = None, **limits: Any
    ) -> tuple[ChatFactory, Hub, int]:
        limits.setdefault("close_grace", 1.0)
        hub = Hub(
            config,
            clock=reactor.seconds,
            backend=LocalBackend(call_soon=end_of_turn(reactor).soon),
        )
        # The deadline to choose a nickname these tests were written for.
        settings = ChatSettings(nick_timeout=60.0)
        factory = ChatFactory(hub, Limits(**limits), reactor, settings=settings)
        return factory, hub, self.listen(factory)

    def chatProtocol(self, factory: ChatFactory, nick: str) -> ChatProtocol:
        """The server's side of the connection of ``nick``."""
        for connection in factory.connections:
            assert isinstance(connection, ChatProtocol)
            if connection.session is not None and connection.session.nick == nick:
                return connection
        raise AssertionError(f"no connection of {nick}")


class LineLengthTests(StressTestCase):
    """A line without an end, 64 MiB of it."""

    @inlineCallbacks
    def test_unterminated64MiB(self) -> Any:
        """
        Four clients per service (echo, uppercase, chat) each try to push
        64 MiB without a newline, in 64 KiB chunks: each gets the error line
        naming the limit and is closed long before (what it managed to send
        is mostly what the kernel's buffers took); the server never held
        more than the limit plus one read, and the process did not grow by
        anything like the amount pushed.
        """
        Measuring.measured = []
        ports = []
        for factory_class, protocol in [
            (EchoFactory, MeasuredEcho),
            (UpperFactory, MeasuredUpper),
        ]:
            factory = factory_class(Limits(max_per_address=0), reactor)
            factory.protocol = protocol
            ports.append((self.listen(factory), b""))
        chat, _, chat_port = self.chat(max_per_address=0)
        chat.protocol = MeasuredChat
        ports.append((chat_port, GREETING))
        before = rss()
        chunk = b"A" * READ_SIZE
        total = 64 * 1024 * 1024

        def push(index: int) -> tuple[int, bytes]:
            port, greeting = ports[index % len(ports)]
            client = RawClient(port, opened=self.opened)
            if greeting:
                client.expect(greeting)
            sent = 0
            try:
                while sent < total:
                    client.sock.sendall(chunk)
                    sent += len(chunk)
            except (BrokenPipeError, ConnectionResetError):
                pass
            received = client.read_to_end()
            client.close()
            return sent, received

        results = yield deferToThread(in_threads, 4 * len(ports), push)
        grown = rss() - before
        for sent, received in results:
            self.assertLess(sent, 8 * 1024 * 1024, "the server kept reading")
            self.assertTrue(received.endswith(LINE_TOO_LONG), received[-200:])
        self.assertEqual(len(Measuring.measured), 4 * len(ports))
        for measured in Measuring.measured:
            self.assertLessEqual(measured.largest_read, READ_SIZE)
            self.assertLessEqual(measured.largest_buffer, 4096 + READ_SIZE)
        self.assertLess(grown, MEMORY_BOUND)
        figures.info(
            "64 MiB pushes: at most {sent} KiB sent, buffer at most {buffer} "
            "bytes; memory grew {grown} KiB",
            sent=max(sent for sent, _ in results) // 1024,
            buffer=max(p.largest_buffer for p in Measuring.measured),
            grown=grown // 1024,
        )
        yield self.waitUntil(lambda: not self.connected(), HANG_DEADLINE, "all closed")


class EncodingTests(StressTestCase):
    """Garbage over real sockets: error lines and normalisation, no traceback."""

    GARBAGE = (
        b"ab\xffcd\n"  # invalid UTF-8
        b"a\x00b\r\n"  # NUL
        b"c\rd\n"  # a lone \r
        b"e\r\r\n"  # \r before the terminator's
        b"one\r\ntwo\nthree\r\n"  # mixed terminators
        b"\xc0\xaf\n"  # overlong encoding
        + "é".encode() * 2048  # exactly the limit, in two-byte characters
        + b"\r\n"
    )

    @inlineCallbacks
    def test_garbageEverywhere(self) -> Any:
        """
        Invalid UTF-8, NUL, lone ``\\r``, mixed terminators and a line of
        exactly the limit, sent at once and then byte by byte: the echo
        service returns the bytes, the uppercase service and the chat answer
        invalid lines with an error and the rest normally (the chat shows
        control characters in caret notation), the connections stay usable,
        and the server logs no traceback.
        """
        echo_port = self.listen(EchoFactory(Limits(max_per_address=0), reactor))
        upper_port = self.listen(UpperFactory(Limits(max_per_address=0), reactor))
        _, _, chat_port = self.chat(max_per_address=0, flood_burst=1000)
        invalid = b"!!! invalid UTF-8 (byte 0x%02x at position %d); line ignored"

        def send(client: RawClient, split: bool) -> None:
            if split:
                for index in range(len(self.GARBAGE)):
                    client.sock.sendall(self.GARBAGE[index : index + 1])
            else:
                client.sock.sendall(self.GARBAGE)
            client.send("done")

        def exchange(split: bool) -> dict[str, bytes]:
            answers = {}
            for name, port in [("echo", echo_port), ("upper", upper_port)]:
                client = RawClient(port, opened=self.opened)
                send(client, split)
                client.expect(b"done\r\n" if name == "echo" else b"DONE\r\n")
                answers[name] = bytes(client.received)
                client.close()
            mallory = chat_client(chat_port, "mallory", self.opened)
            watcher = chat_client(chat_port, "watcher", self.opened)
            send(mallory, split)
            watcher.expect(b"#lobby <mallory> done\r\n")
            mallory.expect(b"#lobby <mallory> done\r\n")
            answers["chat"] = bytes(watcher.received)
            answers["mallory"] = bytes(mallory.received)
            mallory.close()
            watcher.close()
            return answers

        for split in (False, True):
            answers = yield deferToThread(exchange, split)
            self.assertEqual(
                answers["echo"],
                b"ab\xffcd\r\na\x00b\r\nc\rd\r\ne\r\r\none\r\ntwo\r\nthree\r\n"
                b"\xc0\xaf\r\n" + "é".encode() * 2048 + b"\r\ndone\r\n",
            )
            upper = answers["upper"]
            self.assertIn(invalid % (0xFF, 2), upper)
            self.assertIn(invalid % (0xC0, 0), upper)
            self.assertIn(b"A\x00B\r\nC\rD\r\nE\r\r\nONE\r\nTWO\r\nTHREE\r\n", upper)
            self.assertIn("É".encode() * 2048 + b"\r\nDONE\r\n", upper)
            said = answers["chat"].split(b"you are in #lobby\r\n")[-1]
            self.assertEqual(
                said.decode(),
                "".join(
                    f"#lobby <mallory> {text}\r\n"
                    for text in [
                        "a^@b",
                        "c^Md",
                        "e^M",
                        "one",
                        "two",
                        "three",
                        "é" * 2048,
                        "done",
                    ]
                ),
            )
            self.assertIn(invalid % (0xFF, 2), answers["mallory"])
            # Everyone gone (the nicknames free) before the next round.
            yield self.waitUntil(
                lambda: not self.connected(), HANG_DEADLINE, "all closed"
            )


class SlowReaderTests(StressTestCase):
    """A chat client that never reads, in a busy room."""

    @inlineCallbacks
    def test_neverReaderCut(self) -> Any:
        """
        A client that registers and then never reads, in a room where
        another client talks a lot: it is cut once more than
        ``max_send_queue`` waits for it ("send queue exceeded" in its quit
        notice), while the others receive every message, in order; the
        server's memory stays bounded.
        """
        # The talker is not what is tested: no flood control for it.
        _, hub, port = self.chat(max_per_address=0, flood_rate=0)
        text = "x" * 3000
        limit = 4000
        cut = threading.Event()
        #: The last message the watcher has seen: the talker waits for it.
        progress = [-1]
        lazy = yield deferToThread(
            chat_client, port, "lazy", self.opened, receive_buffer=4096
        )
        talker = yield deferToThread(chat_client, port, "talker", self.opened)
        watcher = yield deferToThread(chat_client, port, "watcher", self.opened)
        before = rss()

        def talk() -> int:
            sent = 0
            while not cut.is_set() and sent < limit:
                talker.send(*[f"{sent + index} {text}" for index in range(10)])
                sent += 10
                # Keep the readers within 100 messages (they must not be cut).
                deadline = time.monotonic() + SOCKET_TIMEOUT
                while progress[0] < sent - 100 and time.monotonic() < deadline:
                    time.sleep(0.001)
            # More after the cut: the others still get everything.
            talker.send(*[f"{sent + index} {text}" for index in range(50)])
            talker.send("end")
            return sent + 50

        def watch(client: RawClient, track: bool) -> list[int]:
            seen = []
            message = re.compile(rb"#lobby <talker> (\d+) x+")
            deadline = time.monotonic() + HANG_DEADLINE
            while time.monotonic() < deadline and not client.at_end:
                client.receive()
                for line in client.lines():
                    match = message.fullmatch(line)
                    if match:
                        seen.append(int(match[1]))
                        if track:
                            progress[0] = seen[-1]
                    elif line == b"-!- lazy has quit (send queue exceeded)":
                        cut.set()
                    elif line == b"#lobby <talker> end":
                        return seen
            raise AssertionError(f"the end never came, after {len(seen)} messages")

        def scenario() -> tuple[int, list[int], list[int]]:
            with ThreadPoolExecutor(max_workers=3) as pool:
                talking = pool.submit(talk)
                watching = pool.submit(watch, watcher, True)
                echoing = pool.submit(watch, talker, False)
                return talking.result(), watching.result(), echoing.result()

        sent, watched, echoed = yield deferToThread(scenario)
        grown = rss() - before
        self.assertTrue(cut.is_set(), "the client that does not read was not cut")
        self.assertLess(sent, limit, "not cut after 12 MB had been sent to it")
        self.assertEqual(watched, list(range(sent)))
        self.assertEqual(echoed, list(range(sent)))
        self.assertLess(grown, MEMORY_BOUND)
        self.assertEqual([s.nick for s in hub.sessions], ["talker", "watcher"])
        # The server cut it: reading what reached it ends (in a reset).
        yield deferToThread(lazy.read_to_end)
        figures.info(
            "never-reading client cut after {sent} messages of 3 KB; "
            "memory grew {grown} KiB",
            sent=sent,
            grown=grown // 1024,
        )


class FloodTests(StressTestCase):
    """Flooders against the chat's flood control."""

    @inlineCallbacks
    def test_flooderDoesNotDelayOthers(self) -> Any:
        """
        Three clients send lines as fast as the socket takes them and never
        read; meanwhile every one of a probe's messages comes back to it,
        in order (how fast is a benchmark's question: ``bench/``), the room
        sees no more of the flood than the burst plus the rate allow over
        the time the flood actually lasted, and each flooder is cut after
        ``flood_disconnect`` seconds with its rooms told why.  Only hangs
        are bounded in time (the socket timeout, the test's timeout).
        """
        burst, rate, disconnect = 20, 5.0, 2.0
        _, hub, port = self.chat(
            max_per_address=0,
            flood_burst=burst,
            flood_rate=rate,
            flood_disconnect=disconnect,
        )
        flooders = yield deferToThread(
            in_threads, 3, lambda n: chat_client(port, f"flooder{n}", self.opened)
        )
        probe = yield deferToThread(chat_client, port, "probe", self.opened)
        before = rss()

        def flood(index: int) -> int:
            client = flooders[index]
            line = f"flood from {index} ".encode() + b"f" * 100 + b"\n"
            sent = 0
            deadline = time.monotonic() + disconnect + HANG_DEADLINE
            try:
                while time.monotonic() < deadline:
                    client.sock.sendall(line * 100)
                    sent += 100
            except (BrokenPipeError, ConnectionResetError):
                return sent  # cut
            except TimeoutError:
                pass
            raise AssertionError("the flooder was not cut")

        def measure() -> tuple[list[float], float]:
            started = time.monotonic()
            trips = []
            # 20 trips within the 2 s of flooding: within the burst and the
            # rate, so that the probe itself is never held back.
            for index in range(20):
                sent = time.monotonic()
                probe.send(f"probe {index}")
                probe.expect(f"#lobby <probe> probe {index}\r\n".encode())
                trips.append(time.monotonic() - sent)
                time.sleep(0.1)
            for index in range(3):
                probe.expect(f"-!- flooder{index} has quit (flooding)\r\n".encode())
            return trips, time.monotonic() - started

        def scenario() -> tuple[list[int], list[float], float]:
            with ThreadPoolExecutor(max_workers=4) as pool:
                flooding = [pool.submit(flood, index) for index in range(3)]
                trips, elapsed = pool.submit(measure).result()
                return [f.result() for f in flooding], trips, elapsed

        sent, trips, elapsed = yield deferToThread(scenario)
        grown = rss() - before
        self.assertEqual(len(trips), 20)
        seen = bytes(probe.received).count(b"> flood from ")
        # Each flooder: the burst at once, then the rate until cut; the time
        # is what the flood took here (a slow machine is not a failure).
        self.assertLessEqual(seen, 3 * (burst + rate * (elapsed + 1)))
        self.assertLess(seen, sum(sent), "the flooders were not held back")
        self.assertLess(grown, MEMORY_BOUND)
        self.assertEqual([s.nick for s in hub.sessions], ["probe"])
        figures.info(
            "flood: probe round trips max {max:.3f} s, median {median:.3f} s; "
            "{seen} flood lines said of {sent} sent",
            max=max(trips),
            median=sorted(trips)[len(trips) // 2],
            seen=seen,
            sent=sum(sent),
        )


class ConnectionLimitTests(StressTestCase):
    """The per-address limit for real, and a connection storm."""

    @inlineCallbacks
    def test_perAddressRefusal(self) -> Any:
        """
        Over loopback every client is 127.0.0.1: past ``max_per_address``
        the next one gets the refusal line and is closed, by the chat and
        the echo service alike; once one goes, a new one is admitted.
        """
        chat, _, chat_port = self.chat(max_per_address=3)
        echo = EchoFactory(Limits(max_per_address=3), reactor)
        echo_port = self.listen(echo)
        refusal = b"!!! too many connections from 127.0.0.1 (limit 3)\r\n"

        def crowd(port: int, greeting: bytes | None) -> list[RawClient]:
            admitted = []
            for _ in range(3):
                client = RawClient(port, opened=self.opened)
                if greeting:
                    client.expect(greeting)
                admitted.append(client)
            refused = RawClient(port, opened=self.opened)
            assert refused.read_to_end() == refusal, refused.received
            refused.close()
            admitted.pop().close()
            return admitted

        def again(port: int, greeting: bytes | None) -> None:
            client = RawClient(port, opened=self.opened)
            if greeting:
                client.expect(greeting)
            else:
                client.send("hello")
                client.expect(b"hello\r\n")
            client.close()

        for factory, port, greeting in [
            (chat, chat_port, GREETING),
            (echo, echo_port, None),
        ]:
            admitted = yield deferToThread(crowd, port, greeting)
            yield self.waitUntil(holds(factory, 2), HANG_DEADLINE, "a free slot")
            yield deferToThread(again, port, greeting)
            for client in admitted:
                client.close()
        yield self.waitUntil(lambda: not self.connected(), HANG_DEADLINE, "all closed")

    @inlineCallbacks
    def test_connectionStorm(self) -> Any:
        """
        2000 connections opened within seconds by 16 threads (each waits
        for its greeting before the next connect, as a listen backlog of 50
        requires), all held open, then 500 more refused by the per-address
        limit of another service: a chat client keeps getting every one of
        its messages back all along (how fast is ``bench/``'s question),
        every stormer got its greeting or refusal, and once they go the hub
        is empty again.  Only hangs are bounded in time.
        """
        storm = 2000
        needed = 2 * (storm + 600) + 200
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft < needed:
            if hard != resource.RLIM_INFINITY and hard < needed:
                raise SkipTest(
                    f"the storm needs {needed} file descriptors; the hard "
                    f"limit is {hard}"
                )
            resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))
            self.addCleanup(resource.setrlimit, resource.RLIMIT_NOFILE, (soft, hard))
        # No flood control: the probe pings a hundred times a second.
        # Every stormer is held open unregistered: no strangers' budget here
        # (tests/test_strangers.py tests it).
        _, hub, port = self.chat(
            ChatConfig(max_clients=storm + 10),
            max_per_address=0,
            flood_rate=0,
            max_strangers=0,
        )
        echo_port = self.listen(EchoFactory(Limits(max_per_address=16), reactor))
        probe = yield deferToThread(chat_client, port, "probe", self.opened)
        before = rss()
        threads = 16
        over = threading.Event()

        def stormer(index: int) -> list[RawClient]:
            clients = []
            for _ in range(storm // threads + (index < storm % threads)):
                client = RawClient(port, opened=self.opened)
                client.expect(GREETING)
                clients.append(client)
            return clients

        def refused(_: int) -> bytes:
            answers = b""
            for _ in range(500 // threads):
                client = RawClient(echo_port, opened=self.opened)
                answers += client.read_to_end()
                client.close()
            return answers

        def probing() -> list[float]:
            trips: list[float] = []
            while not over.is_set() or not trips:
                sent = time.monotonic()
                probe.send(f"ping {len(trips)}")
                probe.expect(f"#lobby <probe> ping {len(trips)}\r\n".encode())
                trips.append(time.monotonic() - sent)
                time.sleep(0.01)
            return trips

        def scenario() -> tuple[float, list[float], list[bytes]]:
            with ThreadPoolExecutor(max_workers=1) as pool:
                measuring = pool.submit(probing)
                try:
                    started = time.monotonic()
                    clients = [c for g in in_threads(threads, stormer) for c in g]
                    opened = time.monotonic() - started
                    # A second storm against a per-address limit: 16 stay,
                    # the rest are refused.
                    held = [RawClient(echo_port, opened=self.opened) for _ in range(16)]
                    answers = in_threads(threads, refused)
                    held[0].send("echo")
                    held[0].expect(b"echo\r\n")
                finally:
                    over.set()
                trips = measuring.result()
            for client in [*clients, *held, probe]:
                client.close()
            return opened, trips, answers

        opened, trips, answers = yield deferToThread(scenario)
        self.assertGreater(len(trips), 0)
        refusal = b"!!! too many connections from 127.0.0.1 (limit 16)\r\n"
        self.assertEqual(b"".join(answers), refusal * (500 // threads * threads))
        self.assertEqual(hub.stats.connections_peak, storm + 1)
        yield self.waitUntil(lambda: not self.connected(), HANG_DEADLINE, "all closed")
        grown = rss() - before
        self.assertEqual(hub.sessions, {})
        self.assertLess(grown, MEMORY_BOUND)
        figures.info(
            "storm: {storm} connections open in {opened:.2f} s; {count} probe "
            "round trips meanwhile, the longest {trip:.3f} s; memory grew "
            "{grown} KiB",
            storm=storm,
            opened=opened,
            count=len(trips),
            trip=max(trips),
            grown=grown // 1024,
        )


class AbruptDisconnectTests(StressTestCase):
    """Clients that vanish, mid-line or reset in the middle of a write."""

    @inlineCallbacks
    def test_resetWhileServerWrites(self) -> Any:
        """
        A client that stopped reading, with a line half sent and megabytes
        waiting for it in the server, resets its connection (``SO_LINGER``
        0, close): its room hears it quit, its nickname is free again, and
        nothing refers to its protocol any more.
        """
        factory, hub, port = self.chat(
            max_per_address=0, flood_rate=0, max_send_queue=64 * 1024 * 1024
        )
        alice = yield deferToThread(
            chat_client, port, "alice", self.opened, receive_buffer=4096
        )
        talker = yield deferToThread(chat_client, port, "talker", self.opened)
        protocol = self.chatProtocol(factory, "alice")

        def fill() -> None:
            alice.send("/join side", "/join lobby")
            alice.sock.sendall(b"half a li")
            text = "y" * 4000
            # 8 MB for alice; the talker reads its own echo as it goes.
            for start in range(0, 2000, 50):
                talker.send(*[f"{start + n} {text}" for n in range(50)])
                talker.expect(f"#lobby <talker> {start + 49} {text}\r\n".encode())

        yield deferToThread(fill)
        # The server is writing to alice: its buffer is full, bytes wait.
        self.assertTrue(protocol.outbox.blocked)
        self.assertFalse(protocol.closing)
        alive = weakref.ref(protocol)
        del protocol

        def vanish() -> None:
            alice.reset()
            talker.expect(b"-!- alice has quit (connection closed)\r\n")
            again = chat_client(port, "alice", self.opened)
            again.close()
            talker.close()

        yield deferToThread(vanish)
        yield self.waitUntil(lambda: not self.connected(), HANG_DEADLINE, "all closed")
        self.assertEqual(hub.sessions, {})
        self.assertEqual(hub.nicks, {})
        assert isinstance(hub.backend, LocalBackend)
        self.assertEqual(hub.backend.lookalikes, {})
        self.assertEqual(sorted(hub.rooms), ["lobby"])
        self.assertEqual(hub.rooms["lobby"].members, {})
        gc.collect()
        leaked = alive()
        if leaked is not None:
            self.fail(
                f"the protocol is still referred to by {gc.get_referrers(leaked)}"
            )

    @inlineCallbacks
    def test_vanishMidLine(self) -> Any:
        """
        Clients that go in the middle of a line.  One closes with unread
        lines waiting for it (the kernel resets the connection): the half
        line is dropped.  One ends its input (FIN, as a program that ends):
        the half line is handled as its last one, as documented.  Either
        way its room hears it quit, its nickname is free again, and nothing
        refers to its protocol any more.
        """
        factory, hub, port = self.chat(max_per_address=0)
        alice = yield deferToThread(chat_client, port, "alice", self.opened)
        carol = yield deferToThread(chat_client, port, "carol", self.opened)
        bob = yield deferToThread(chat_client, port, "bob", self.opened)
        gone = [
            weakref.ref(self.chatProtocol(factory, nick)) for nick in ("alice", "carol")
        ]

        def vanish() -> None:
            # alice has not read bob's arrival: closing resets.
            alice.sock.sendall(b"half a li")
            alice.close()
            bob.expect(b"-!- alice has quit (connection closed)\r\n")
            carol.expect(b"-!- alice has quit (connection closed)\r\n")
            carol.sock.sendall(b"half a li")
            carol.sock.shutdown(socket.SHUT_WR)
            bob.expect(
                b"#lobby <carol> half a li\r\n-!- carol has quit (end of input)\r\n"
            )
            carol.read_to_end()
            carol.close()
            for nick in ("alice", "carol"):
                chat_client(port, nick, self.opened).close()
            assert b"<alice> half" not in bob.received, bob.received
            bob.close()

        yield deferToThread(vanish)
        yield self.waitUntil(lambda: not self.connected(), HANG_DEADLINE, "all closed")
        assert isinstance(hub.backend, LocalBackend)
        self.assertEqual(
            (hub.sessions, hub.nicks, hub.backend.lookalikes), ({}, {}, {})
        )
        self.assertEqual(hub.rooms["lobby"].members, {})
        gc.collect()
        self.assertEqual([ref() for ref in gone], [None, None])


class NothingLostTests(StressTestCase):
    """A busy room with churn and a slow reader: every message, once, in order."""

    SENDERS = 4
    MESSAGES = 250

    @inlineCallbacks
    def test_everyMessageOnceInOrder(self) -> Any:
        """
        Four senders say 250 numbered messages each, in bursts; four
        receivers (one of them reading slowly, a few bytes at a time) and
        the senders themselves are in the room, while other clients keep
        joining, parting and leaving (some by reset): every client that
        stays gets every message exactly once, in each sender's order.  The
        senders say their second half only once the churners have done 12
        cycles, so that churn surely happens meanwhile, however fast or slow
        the machine.
        """
        # Generous flood control: the senders burst, that is not the point.
        _, hub, port = self.chat(max_per_address=0, flood_burst=1000, flood_rate=1000)
        senders = yield deferToThread(
            in_threads, self.SENDERS, lambda n: chat_client(port, f"s{n}", self.opened)
        )
        receivers = yield deferToThread(
            in_threads, 4, lambda n: chat_client(port, f"r{n}", self.opened)
        )
        sending = threading.Event()
        finished = threading.Event()
        churned = threading.Event()
        done: list[int] = []
        message = re.compile(rb"#lobby <(s\d+)> s\d+-(\d+)")

        def send(index: int) -> None:
            client = senders[index]
            for start in range(0, self.MESSAGES, 10):
                # Halfway, wait for churn (a deadline that only catches a hang).
                halfway = start == self.MESSAGES // 20 * 10
                if halfway and not churned.wait(4 * SOCKET_TIMEOUT):
                    raise AssertionError("the churners made no progress")
                client.send(*[f"s{index}-{n}" for n in range(start, start + 10)])
                time.sleep(0.005)

        def receive(client: RawClient, slow: bool) -> dict[str, list[int]]:
            seen: dict[str, list[int]] = {f"s{n}": [] for n in range(self.SENDERS)}
            deadline = time.monotonic() + HANG_DEADLINE
            while time.monotonic() < deadline:
                if slow:
                    client.sock.settimeout(SOCKET_TIMEOUT)
                    data = client.sock.recv(64)
                    client.received += data
                    client.at_end = not data
                    time.sleep(0.001)
                else:
                    client.receive()
                if client.at_end:
                    raise AssertionError(f"closed by the server: {client.received!r}")
                for line in client.lines():
                    match = message.fullmatch(line)
                    if match:
                        seen[match[1].decode()].append(int(match[2]))
                if all(
                    numbers and numbers[-1] == self.MESSAGES - 1
                    for numbers in seen.values()
                ):
                    return seen
            raise AssertionError({nick: len(n) for nick, n in seen.items()})

        def churn(index: int) -> int:
            cycles = 0
            sending.wait(SOCKET_TIMEOUT)
            while not finished.is_set():
                client = chat_client(port, f"c{index}x{cycles}", self.opened)
                client.send("/join other", "/part other", "/join lobby")
                client.expect(b"--- now talking in #lobby\r\n")
                if cycles % 3 == 0:
                    client.reset()
                elif cycles % 3 == 1:
                    client.send("/quit bye")
                    client.read_to_end()
                    client.close()
                else:
                    client.close()
                cycles += 1
                done.append(1)
                if len(done) >= 12:
                    churned.set()
            return cycles

        def scenario() -> tuple[list[dict[str, list[int]]], list[int]]:
            workers = self.SENDERS + len(receivers) + len(senders) + 3
            with ThreadPoolExecutor(max_workers=workers) as pool:
                churning = [pool.submit(churn, index) for index in range(3)]
                try:
                    receiving = [
                        pool.submit(receive, client, index == 0)
                        for index, client in enumerate(receivers)
                    ] + [pool.submit(receive, client, False) for client in senders]
                    sending.set()
                    for sent in [pool.submit(send, n) for n in range(self.SENDERS)]:
                        sent.result()
                    results = [r.result() for r in receiving]
                finally:
                    finished.set()
                return results, [c.result() for c in churning]

        results, cycles = yield deferToThread(scenario)
        expected = {f"s{n}": list(range(self.MESSAGES)) for n in range(self.SENDERS)}
        for result in results:
            self.assertEqual(result, expected)
        self.assertGreaterEqual(sum(cycles), 12, "no churn happened meanwhile")
        for client in senders + receivers:
            client.close()
        yield self.waitUntil(lambda: not self.connected(), HANG_DEADLINE, "all closed")
        self.assertEqual(hub.sessions, {})
        figures.info("nothing lost: {cycles} churn cycles", cycles=sum(cycles))
