"""
The outbox of one connection: everything it is sent leaves in the order it
was sent, within the send-queue limit, and as few writes as possible.

Three kinds of bytes go out, each through its own method:

- **replies** to what the client itself sent (:meth:`Outbox.reply`): within
  a read they are collected (:meth:`Outbox.begin_read`) and leave in one
  write at its end (:meth:`Outbox.end_read`);
- **deliveries** caused by other connections (:meth:`Outbox.deliver`): they
  wait for the end of the reactor turn and leave in one write however many
  reads of the turn brought them (:class:`TurnWriter`);
- both keep their order: a reply goes behind whatever deliveries wait, and
  before it the outbox calls ``sync`` (the hub backend's ``flush``), so that
  room messages said before the reply, still collected by the backend,
  reach this member first.  That is order by construction: a door never
  has to remember to flush.

With a ``gate`` (the history store's, :mod:`chatservice.stores.gate`),
nothing leaves while a commit of the store is in flight: what the turn
would write is *held*, and written, in order, once the newest commit of
the turn has returned (the :class:`TurnWriter` asks the gate once for all
the outboxes of its turn); what comes meanwhile goes behind it.  Each
chunk held is tagged with the epoch it waits for: once the gate closes
epochs, an outbox writes every chunk they cover in one write, so when the
commits batch turns (one in flight, the next collecting), a member gets
those turns in one ``send`` too, as without history.
So a member is never sent a message that is not in the history file yet,
and the reactor does not wait for the disk.

On a plain TCP connection with nothing buffered, writes go straight to the
socket (``socket.send``); only what the kernel does not take is handed to
the transport.  Twisted would buffer everything until the next reactor turn
and watch the socket for writability in between (two ``epoll_ctl`` calls and
a turn's delay per write).  Whether the transport holds anything is read
from its buffers (:func:`buffered`): Twisted has no public way to say it, so
the read is in one function, tried on each TCP transport first
(:func:`can_read_buffers`); a Twisted without those attributes gets no
write-through, and everything goes through ``transport.write``.

The connection is registered as a streaming producer on its transport:
Twisted pauses it once more than ``bufferSize`` waits to be written and
resumes it once everything is.  A paused (*blocked*) client's connection
stops reading from it, and what is written meanwhile counts against
``max_send_queue``; past that the client is cut off, since one that does
not read must not make the server hold everything for it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any, ClassVar, Protocol

from twisted.internet import abstract, tcp
from twisted.internet.interfaces import IReactorTime, ITCPTransport
from twisted.logger import Logger

from chatservice.conn.turns import end_of_turn
from chatservice.metrics.counters import DoorCounters

#: What a Twisted transport buffers before it pauses its producer
#: (``FileDescriptor.bufferSize``), for transports that do not say.
TRANSPORT_BUFFER = 2**16

#: The attributes of Twisted's TCP transport that :func:`buffered` reads.
_BUFFER_ATTRIBUTES = ("dataBuffer", "offset", "_tempDataLen")


def buffered(transport: Any) -> int:
    """
    The bytes a Twisted TCP transport holds, not yet written to the socket:
    what is left of its write buffer and what waits to join it.
    """
    return int(len(transport.dataBuffer) - transport.offset + transport._tempDataLen)


def can_read_buffers(transport: Any) -> bool:
    """Whether a transport has what :func:`buffered` reads (a feature test)."""
    return all(hasattr(transport, name) for name in _BUFFER_ATTRIBUTES)


def plain_tcp_transport() -> type | None:
    """
    The class of a plain TCP server connection, if this Twisted has it as
    the write-through needs, else ``None`` (then no connection writes
    through: correct, only slower): ``tcp.Server``, a public class, that is
    a ``FileDescriptor`` and an ``ITCPTransport`` (``getHandle`` gives the
    socket).  Checked once, at import; the buffers :func:`buffered` reads
    are checked on each transport (:func:`can_read_buffers`).
    """
    server = getattr(tcp, "Server", None)
    if (
        isinstance(server, type)
        and issubclass(server, abstract.FileDescriptor)
        and ITCPTransport.implementedBy(server)
        and callable(getattr(server, "getHandle", None))
    ):
        return server
    return None


#: See :func:`plain_tcp_transport`.
PLAIN_TCP: type | None = plain_tcp_transport()


class Gate(Protocol):
    """What an outbox needs of :class:`chatservice.stores.gate.DeliveryGate`."""

    @property
    def opened(self) -> int:
        """The newest epoch (commit) opened."""

    @property
    def closed(self) -> int:
        """Every epoch up to this one is closed."""

    def busy(self) -> bool:
        """Whether a commit is in flight."""

    def wait(self, epoch: int, callback: Callable[[int], None]) -> None:
        """Call ``callback`` with the newest closed epoch once ``epoch`` is."""


class OutboxOwner(Protocol):
    """What an outbox tells its connection."""

    def sendBlocked(self) -> None:
        """The client does not keep up: stop reading from it."""

    def sendResumed(self) -> None:
        """It caught up: read again."""

    def sendQueueExceeded(self) -> None:
        """More than the send queue waits for it: cut it off."""


class Outbox:
    """The outbox of one connection (see the module's description)."""

    __slots__ = (
        "_after_held",
        "_buffer_size",
        "_counters",
        "_limit",
        "_owner",
        "_socket",
        "_transport",
        "_writer",
        "blocked",
        "gate",
        "held",
        "pending",
        "queued",
        "sync",
        "waiting",
    )

    def __init__(
        self,
        owner: OutboxOwner,
        transport: Any,
        writer: TurnWriter,
        max_send_queue: int,
        sync: Callable[[], None] | None = None,
        counters: DoorCounters | None = None,
        gate: Gate | None = None,
    ) -> None:
        self._owner = owner
        #: The door's counters: bytes sent are added there.
        self._counters = counters if counters is not None else DoorCounters()
        self._transport = transport
        self._writer = writer
        self._limit = max_send_queue
        #: Called before a reply is sent (``None``: nothing to wait for).
        self.sync = sync
        #: Replies of the read being handled, or ``None`` outside a read.
        self.pending: list[bytes] | None = None
        #: Deliveries waiting for the end of the turn, or ``None``.
        self.queued: list[bytes] | None = None
        #: Whether the transport's buffer is full.
        self.blocked = False
        #: Bytes written since it filled up, counted against the send queue.
        self.waiting = 0
        #: The socket to write through to (plain TCP), or ``None``.
        self._socket: Any = None
        self._buffer_size: int = getattr(transport, "bufferSize", TRANSPORT_BUFFER)
        #: Writes wait at it for the history's commits (``None``: no store).
        self.gate = gate
        #: What waits for commits in flight, oldest first, one chunk per
        #: turn with the epoch it waits for (``None`` when nothing does):
        #: the gate releases them, in order, through :meth:`release`.
        self.held: deque[tuple[int, bytes]] | None = None
        #: Called once nothing is held (closing the connection).
        self._after_held: list[Callable[[], object]] | None = None

    def register(self, producer: object) -> None:
        """
        Register ``producer`` (the connection, which passes ``paused`` and
        ``drained`` on to this outbox) with the transport, as a streaming
        producer.
        """
        transport = self._transport
        # Exactly Twisted's plain TCP transport (not TLS over it, not a
        # subclass that may buffer on its own, not a test transport), as
        # found at import (:data:`PLAIN_TCP`), with the buffers we read.
        if (
            PLAIN_TCP is not None
            and type(transport) is PLAIN_TCP
            and can_read_buffers(transport)
        ):
            self._socket = self._transport.getHandle()
        transport.registerProducer(producer, True)

    # What the transport tells us

    def paused(self) -> None:
        """The transport's buffer is full."""
        # A TCP transport calls this again on every write while its buffer
        # is full: count from the first call only, or nothing ever adds up.
        if not self.blocked:
            self.blocked = True
            self.waiting = 0
        self._owner.sendBlocked()

    def drained(self) -> None:
        """The transport has written everything it held."""
        if self.blocked:
            self.blocked = False
            self._owner.sendResumed()

    # Writing

    def begin_read(self) -> None:
        """Collect the replies of the read about to be handled."""
        self.pending = []

    def in_read(self) -> bool:
        """Whether a read is being handled (replies are collected)."""
        return self.pending is not None

    def end_read(self) -> None:
        """Write the replies the read collected, in one write."""
        pending, self.pending = self.pending, None
        if pending:
            self.write(pending[0] if len(pending) == 1 else b"".join(pending))

    def reply(self, data: bytes) -> None:
        """Send the client something of its own: behind what waits for it."""
        if self.sync is not None:
            self.sync()
        self.write(data)

    def _must_hold(self) -> bool:
        """Whether what is written now waits (for a commit, or behind it)."""
        return self.held is not None or (self.gate is not None and self.gate.busy())

    def write(self, data: bytes) -> None:
        """Send bytes behind whatever waits; within a read, at its end."""
        if self.pending is not None:
            self.pending.append(data)
        elif self.queued is not None:
            self.queued.append(data)  # after what waits already
        elif self.gate is not None and self._must_hold():
            self.queued = [data]  # held at the end of the turn
            self._writer.add(self)
        elif self.blocked:
            self._write_blocked(data)
        else:
            self.send(data)

    def deliver(self, data: bytes) -> None:
        """
        Send bytes another connection caused (a chat message): everything
        delivered in one reactor turn leaves in one write at its end.
        """
        if self.pending is not None:
            self.pending.append(data)
        elif self.queued is not None:
            self.queued.append(data)
        elif self.blocked and not (self.gate is not None and self._must_hold()):
            # Counted against the send queue at once, not at the turn's end:
            # one turn's reads could otherwise pile up without limit.
            self._write_blocked(data)
        else:
            self.queued = [data]
            self._writer.add(self)

    def write_queued(self) -> bool:
        """
        Write the deliveries waiting for the end of the turn; ``True`` if
        they were held instead, for a commit in flight (or behind what is
        held): the caller then has the gate call :meth:`release` once the
        newest commit is closed (:meth:`TurnWriter.write` does, for every
        outbox of its turn at once).
        """
        queued, self.queued = self.queued, None
        if not queued:
            return False
        data = queued[0] if len(queued) == 1 else b"".join(queued)
        gate = self.gate
        # Inline (once per member per turn): held, or a commit in flight.
        if gate is not None and (self.held is not None or gate.closed < gate.opened):
            if self.held is None:
                self.held = deque()
            self.held.append((gate.opened, data))
            return True
        self.write(data)
        return False

    def release(self, closed: int) -> None:
        """
        Write, in one write, every chunk held for an epoch up to ``closed``
        (the gate has closed them: their commits have returned).
        """
        held = self.held
        if not held or held[0][0] > closed:
            return
        data = held.popleft()[1]
        if held and held[0][0] <= closed:
            # Several turns released at once (their commits batched).
            chunks = [data]
            while held and held[0][0] <= closed:
                chunks.append(held.popleft()[1])
            data = b"".join(chunks)
        if not held:
            self.held = None
        if self.blocked:
            self._write_blocked(data)
        else:
            self.send(data)
        if self.held is None and self._after_held:
            after, self._after_held = self._after_held, None
            for work in after:
                work()

    def when_written(self, work: Callable[[], object]) -> None:
        """Call ``work`` once nothing is held (at once if nothing is)."""
        if self.held is None:
            work()
        elif self._after_held is None:
            self._after_held = [work]
        else:
            self._after_held.append(work)

    def flush(self) -> None:
        """
        Write everything that waits, replies and deliveries, now (or, for a
        commit in flight, once it returns).
        """
        self.end_read()
        if self.write_queued():
            gate = self.gate
            assert gate is not None
            gate.wait(gate.opened, self.release)

    def discard(self) -> None:
        """The connection is gone: nothing more can be sent."""
        self.queued = None
        self.pending = None
        self.held = None
        self._after_held = None

    def send(self, data: bytes) -> None:
        """Write now: through to the socket when nothing is buffered."""
        transport = self._transport
        sock = self._socket
        size = len(data)
        self._counters.bytes_out += size
        if sock is not None and not transport.disconnecting and not buffered(transport):
            try:
                sent = sock.send(data)
            except OSError:
                sent = 0  # BlockingIOError, or Twisted's write reports it
            if sent == size:
                return
            data = data[sent:]
        transport.write(data)
        if self.blocked:
            # This write filled the transport's buffer (a turn's deliveries
            # can be large): what it holds beyond that buffer waits for a
            # client that does not keep up, and counts.
            excess = len(data) - self._buffer_size
            if excess > 0:
                self.waiting = excess
                if excess > self._limit:
                    self._owner.sendQueueExceeded()

    def _write_blocked(self, data: bytes) -> None:
        """Write to a client that does not keep up, within the send queue."""
        if self._socket is not None:
            # What really waits beyond the transport's buffer: a client that
            # reads, only a little slower than it is written to, catches up
            # on its own, and is not cut off for what it has read already.
            self.waiting = buffered(self._transport) + len(data) - self._buffer_size
        else:
            # Elsewhere everything written since the buffer filled counts.
            self.waiting += len(data)
        if self.waiting <= self._limit:
            self._counters.bytes_out += len(data)
            self._transport.write(data)
        else:
            self._owner.sendQueueExceeded()


class TurnWriter:
    """
    Writes the deliveries of every outbox that has some at the end of the
    reactor turn (:mod:`chatservice.conn.turns`): a message to a busy room
    costs each member one write for everything the turn's reads said there.
    One per listening factory.
    """

    log: ClassVar[Logger] = Logger()

    def __init__(self, clock: IReactorTime, name: str) -> None:
        self._turn = end_of_turn(clock)
        self._name = name
        self._outboxes: list[Outbox] = []

    def add(self, outbox: Outbox) -> None:
        """Write this outbox's deliveries at the end of the turn."""
        if not self._outboxes:
            self._turn.soon(self.write)
        self._outboxes.append(outbox)

    def write(self) -> None:
        """
        Write every waiting outbox's deliveries, one write each; those held
        for a commit in flight are released together once it returns.
        """
        outboxes, self._outboxes = self._outboxes, []
        held = []
        for outbox in outboxes:
            try:
                if outbox.write_queued():
                    held.append(outbox)
            except Exception:
                # Logged; the other connections still get theirs.
                self.log.failure("{service}: writing a delivery", service=self._name)
        if held:
            # The outboxes of one factory share its gate.
            gate = held[0].gate
            assert gate is not None
            gate.wait(gate.opened, lambda closed: self._release(held, closed))

    def _release(self, outboxes: list[Outbox], closed: int) -> None:
        for outbox in outboxes:
            try:
                if outbox.held is not None:  # else released with an earlier turn
                    outbox.release(closed)
            except Exception:
                self.log.failure("{service}: writing a delivery", service=self._name)
