"""``NodeLoop``: one node's turn, shared by the Coordinator and the Worker, free of thespian.

A turn delivers the link frames that came in (every ack at once, then batches for at most
``INBOX_SLICE_S``), does the node's own work (a Worker's due market frames), the housekeeping
that is due (timer ticks, the status file, the latency file, the liveness check, the state
commit) and sends what is due, each batch carrying the ack owed to its peer. While the next of
these is due within ``TURN_S`` the loop waits for it on the data sockets and goes round again;
then it returns how long the node may sleep. What the node does when something is due
(write a file, exit an orphan) is the shim's, passed in as callables; time comes from the
injected ``clock`` (seconds, monotonic), so tests run a loop in simulated time on a fake port.

Runs on the node's only thread (the thespian actor's): nothing here locks.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Protocol

from arbor.adapters.link.session import LinkAck, LinkBatch

STATUS_EVERY_S = 0.25
LATENCY_EVERY_S = 2.0
LIVENESS_EVERY_S = 0.25
# Link frames a node handles per turn before it polls (heartbeat, timers) and lets I/O in again:
# a Coordinator behind two unpaced Workers has seconds of decisions waiting in its sockets.
INBOX_SLICE_S = 0.02
# A node's turn: while its next piece of work (a Worker's next frame, an owed ack, a poll) is due
# within the turn, it waits for it in its own select on the data sockets instead of going back
# through thespian's loop (measured: a third of a paced Worker's CPU went to thespian's per-wake
# selector set-up and the Waker's thread hand-off). thespian's own messages (control: exit,
# pokes, membership) wait at most this long.
TURN_S = 0.02
# While a Worker feeds a backlog, it looks at its data sockets at least this often, so an
# approval from the Coordinator is not held up behind market data.
INBOUND_POLL_S = 0.0003
# A decision queued for another node goes out at once, unless the node sent a batch less than
# this long ago: then it rides with what the rest of the dispatcher run produces (a busy node
# still sends batches, not one frame per envelope).
LINGER_S = 0.001
# An owed ack waits at most this long for a batch going back to ride on. Acks only free the
# sender's window (4096 items) and bound what a reconnect resends; they are on no decision's
# path. At 20 ms nearly every decision batch got an ack frame of its own: four thread wake-ups
# (the sender's timer, both zmq I/O threads, the peer's thread) per decision on a shared host.
ACK_DELAY_S = 0.2


class Port(Protocol):
    """The data plane as the loop uses it (``transport.ZmqPort``; a list-backed fake in tests)."""

    inbox: deque[LinkBatch]
    acks: list[LinkAck]

    def send(self, peer: str, msg: LinkBatch | LinkAck) -> bool: ...
    def pump(self) -> None: ...
    def pending(self) -> bool: ...
    def wait(self, timeout: float) -> bool: ...
    def receive(self) -> None: ...
    def take_connected(self) -> bool: ...


class LinkCore(Protocol):
    """What the loop needs of a node core (``nodes.CoordinatorCore``, ``nodes.WorkerCore``)."""

    def on_ack(self, ack: LinkAck) -> None: ...
    def on_batch(self, batch: LinkBatch) -> LinkAck | None: ...
    def due(self) -> list[tuple[str, LinkBatch]]: ...
    def rewind(self, peer: str) -> None: ...
    def resync(self, peer: str) -> LinkAck | None: ...


@dataclass
class _Owed:
    ack: LinkAck
    by: float  # send alone at this time (clock) at the latest
    items: int  # items it covers


def _nothing() -> None:
    return None


class NodeLoop:
    """Inbound frames, owed acks, outbound batches and what else is due, for one node.

    ``peer_of`` names the peer a received batch came from (a Worker: always ``coordinator``; the
    Coordinator: the batch's link, ``worker-K``). ``split_batches``: handle a batch item by item,
    sending after each what it produced (the Coordinator: an approval need not wait for the
    decisions queued behind it in the same batch). ``background`` is the core's periodic work
    besides the link, as ``(due(now) -> bool, run(now))`` pairs (timer ticks); ``commit`` the
    same for the state commit, which runs after the turn's batches went out;
    ``on_status(with_latency)`` and ``on_liveness()`` are called when they are due. ``turn_s``:
    how long a turn may wait for its next due work on the data sockets (``cluster.turn_ms``).
    """

    def __init__(self, core: LinkCore, port: Port | None, *, peer_of: Callable[[LinkBatch], str],
                 ack_items: int = 1024, ack_delay_s: float = ACK_DELAY_S, poll_s: float = 0.002,
                 split_batches: bool = False, work: Callable[[], float] | None = None,
                 background: tuple[tuple[Callable[[float], bool], Callable[[float], Any]], ...] = (),
                 commit: tuple[Callable[[float], bool], Callable[[float], Any]] | None = None,
                 on_status: Callable[[bool], None] | None = None, on_liveness: Callable[[], None] = _nothing,
                 turn_s: float = TURN_S, clock: Callable[[], float] = time.monotonic) -> None:
        self.core = core
        self.port = port
        self.peer_of = peer_of
        self.ack_items = max(1, ack_items)
        self.ack_delay_s = ack_delay_s
        self.poll_s = poll_s
        self.split_batches = split_batches
        self.work = work or (lambda: self.poll_s)
        self.background = background
        self.commit = commit
        self.on_status = on_status
        self.on_liveness = on_liveness
        self.clock = clock
        self.turn_s = turn_s  # 0: never wait on the data sockets here; thespian's watch of them wakes the node
        self.held = False  # True: link traffic waits (a Worker that does not know its Coordinator's port yet)
        self.stopped = False
        self.last_turn = clock()
        self._owed: dict[str, _Owed] = {}
        self._sent_at = float("-inf")
        self._in_polled = float("-inf")
        self._next_status = self._next_latency = self._next_live = float("-inf")

    # -- what the shim and tests look at ----------------------------------------------------
    def owed(self) -> dict[str, LinkAck]:
        """The acks this node owes, by peer, not yet sent."""
        return {p: o.ack for p, o in self._owed.items()}

    def forget_peer(self, peer: str) -> None:
        """``peer`` is gone: nothing is owed to it any more."""
        self._owed.pop(peer, None)

    # -- inbound ----------------------------------------------------------------------------
    def on_batch(self, batch: LinkBatch, peer: str) -> None:
        """Deliver a batch; its piggybacked ack first, and our ack is owed to ``peer``."""
        if self.split_batches and len(batch.items) > 1:
            for i, item in enumerate(batch.items):
                self._on_batch(LinkBatch(batch.link, batch.epoch, batch.first_seq + i, (item,),
                                         batch.ack if i == 0 else None, batch.stamps), peer)
                self.flush()
            return
        self._on_batch(batch, peer)

    def _on_batch(self, batch: LinkBatch, peer: str) -> None:
        if batch.ack is not None:
            self.core.on_ack(batch.ack)
        ack = self.core.on_batch(batch)
        if ack is None:
            return
        if ack.resend:  # a gap: the peer resends at once, not after our ack delay
            self._owed.pop(peer, None)
            self._send(peer, ack)
            return
        owed = self._owed.get(peer)
        if owed is None:
            self._owed[peer] = _Owed(ack, self.clock() + self.ack_delay_s, len(batch.items))
        else:
            owed.ack = ack
            owed.items += len(batch.items)

    def inbox(self) -> bool:
        """Handle received link frames: every ack at once (an ack queued behind seconds of
        decisions would stall the peer's window), then batches for at most ``INBOX_SLICE_S``.
        True if batches are left (the shim polls again at once)."""
        port = self.port
        if port is None:
            return False
        if port.take_connected():
            self.resync("coordinator")
        if not (port.acks or port.inbox):
            return False
        acks, port.acks = port.acks, []
        for a in acks:
            self.core.on_ack(a)
        until = self.clock() + INBOX_SLICE_S
        inbox = port.inbox
        while inbox and self.clock() < until:
            m = inbox.popleft()
            self.on_batch(m, self.peer_of(m))
        self.flush()
        return bool(inbox)

    def wait_inbound(self, timeout: float) -> None:
        """Wait up to ``timeout`` seconds for link frames on the data plane and read them."""
        if self.port is None:
            return
        ready = self.port.wait(timeout)
        self._in_polled = self.clock()
        if ready:
            self.port.receive()

    def decisions_first(self) -> None:
        """Before a piece of background work (timer ticks, the status, the state commit: each
        0.2-1 ms of this thread): handle the link frames already waiting on the data sockets and
        send what they produce, so a decision that came in meanwhile does not wait for it."""
        if self.port is not None and not self.stopped:
            self.wait_inbound(0)
            self.inbox()

    def resync(self, peer: str) -> None:
        """The connection to ``peer`` is (again) up: resend what it has not acknowledged and ask
        it for what did not arrive from it."""
        ask = self.core.resync(peer)
        if ask is not None:
            self._send(peer, ask)
        self.flush()

    # -- outbound ---------------------------------------------------------------------------
    def _send(self, peer: str, msg: LinkBatch | LinkAck) -> bool:
        """Onto the data plane only (never thespian); False if it refused it."""
        return self.port is not None and self.port.send(peer, msg)

    def flush(self) -> None:
        """Send the batches that are due, each carrying the ack owed to its peer; then the acks
        that have waited long enough on their own."""
        if self.held:
            return
        refused: set[str] = set()
        for peer, batch in self.core.due():
            if peer in refused:
                continue  # rewound: it goes again, in order, with the next flush
            owed = self._owed.pop(peer, None)
            if owed is not None:
                batch = replace(batch, ack=owed.ack)
            if not self._send(peer, batch):
                refused.add(peer)
                self.core.rewind(peer)
                if owed is not None:
                    self._owed[peer] = owed
            self._sent_at = self.clock()
        if self._owed:
            now = self.clock()
            for peer, o in list(self._owed.items()):
                if now >= o.by or o.items >= self.ack_items:
                    del self._owed[peer]
                    self._send(peer, o.ack)
        if self.port is not None:
            self.port.pump()

    def send_now(self) -> None:
        """The core queued an envelope for another node, mid-run: send it now (see ``LINGER_S``)."""
        if self.clock() - self._sent_at >= LINGER_S:
            self.flush()

    def between_runs(self) -> None:
        """After each dispatcher run of a Worker's feed: send what it produced, and every
        ``INBOUND_POLL_S`` handle what the Coordinator sent meanwhile."""
        self.flush()
        if self.clock() - self._in_polled >= INBOUND_POLL_S:
            self.decisions_first()

    def next_wake(self, cap: float) -> float:
        """Seconds until the next owed ack must go, or the status or liveness check is due, at most
        ``cap`` (the core's own next due work: ``work()``'s answer)."""
        due = min(self._next_status if self.on_status is not None else float("inf"), self._next_live)
        if self._owed:
            due = min(due, *(o.by for o in self._owed.values()))
        return max(0.0, min(cap, due - self.clock()))

    # -- the turn ---------------------------------------------------------------------------
    def housekeeping(self) -> None:
        """The background work that is due, each piece after the decisions already waiting."""
        now = self.clock()
        for due, run in self.background:
            if due(now):
                self.decisions_first()
                run(self.clock())
        now = self.clock()
        if self.on_status is not None and now >= self._next_status:
            self.decisions_first()
            self._next_status = now + STATUS_EVERY_S
            with_latency = now >= self._next_latency
            if with_latency:
                self._next_latency = now + LATENCY_EVERY_S
            self.on_status(with_latency)
        if now >= self._next_live:
            self._next_live = now + LIVENESS_EVERY_S
            self.on_liveness()

    def turn(self) -> float:
        """Deliver what came in, the node's work, housekeeping, send, then the state commit; while
        the next of these is due within ``TURN_S``, wait for it here (a link frame ends the wait
        at once) and go round again. Returns seconds until the node should turn again (0: at once)."""
        until = self.clock() + self.turn_s
        while True:
            self.last_turn = self.clock()
            more = self.inbox()
            wait = self.work()
            self.housekeeping()
            self.flush()
            if self.commit is not None and self.commit[0](self.clock()):
                self.decisions_first()  # the commit costs 0.2-1 ms: what came meanwhile goes out first
                self.commit[1](self.clock())
            nxt = 0.0 if more else self.next_wake(wait)
            if self.port is None or self.stopped or nxt >= until - self.clock():
                return nxt
            if nxt > 0:
                self.wait_inbound(nxt)

    def overdue(self, limit_s: float) -> float:
        """How long the last turn is overdue beyond ``limit_s`` (0: it is not)."""
        late = self.clock() - self.last_turn
        return late if late > limit_s else 0.0
