"""A reliable, ordered, batched link over a transport that may drop, duplicate or reorder.

thespian's TCP transport loses messages past ~1,050 queued and a peer process can die at any
moment, so cross-process decision traffic never relies on it alone:

- the sender numbers every item (an encoded envelope) with a per-link sequence number and sends
  items in **batches** (one transport message carries up to ``max_batch`` items);
- at most ``window`` items are unacknowledged at any time (the bounded in-flight window); the
  rest wait in the sender's backlog;
- the receiver delivers items strictly in order, exactly once: a duplicate (``seq`` already
  delivered) is skipped, a gap stops the batch there (go-back-N), and every batch is answered
  with a cumulative ``LinkAck(upto)``;
- when the oldest unacknowledged item is older than ``rto_s``, everything unacknowledged is
  sent again (timeouts back off, doubling up to ``max_rto_s``, and reset on progress).

Each sender has an ``epoch`` (its incarnation). A receiver that sees a newer epoch from the same
link name starts that link afresh at sequence 1; batches of an older epoch are ignored. The
classes are pure logic: time is passed in and nothing is sent here, so they are tested directly
with an injected lossy channel.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Iterable


@dataclass(frozen=True)
class LinkBatch:
    """Items ``first_seq, first_seq+1, ...`` of link ``link`` (sender name) in epoch ``epoch``."""

    link: str
    epoch: int
    first_seq: int
    items: tuple[bytes, ...]


@dataclass(frozen=True)
class LinkAck:
    """Every item of ``link``/``epoch`` up to and including ``upto`` was delivered."""

    link: str
    epoch: int
    upto: int


@dataclass
class SenderStats:
    submitted: int = 0
    batches: int = 0
    retransmitted_items: int = 0
    timeouts: int = 0
    acked: int = 0
    max_backlog: int = 0


class LinkSender:
    """The sending half; see the module docstring."""

    def __init__(self, link: str, epoch: int, window: int = 4096, max_batch: int = 256,
                 rto_s: float = 0.25, max_rto_s: float = 2.0) -> None:
        if window < 1 or max_batch < 1:
            raise ValueError("window and max_batch must be >= 1")
        self.link = link
        self.epoch = epoch
        self.window = window
        self.max_batch = max_batch
        self.base_rto_s = rto_s
        self.rto_s = rto_s
        self.max_rto_s = max_rto_s
        self._next_seq = 1
        self._unacked: deque[tuple[int, bytes]] = deque()
        self._backlog: deque[bytes] = deque()
        self._oldest_sent_at: float | None = None
        self.stats = SenderStats()

    @property
    def in_flight(self) -> int:
        return len(self._unacked)

    @property
    def backlog(self) -> int:
        return len(self._backlog)

    @property
    def idle(self) -> bool:
        return not self._unacked and not self._backlog

    def submit(self, item: bytes) -> None:
        self._backlog.append(item)
        self.stats.submitted += 1
        if len(self._backlog) > self.stats.max_backlog:
            self.stats.max_backlog = len(self._backlog)

    def submit_many(self, items: Iterable[bytes]) -> None:
        for item in items:
            self.submit(item)

    def on_ack(self, ack: LinkAck, now: float) -> None:
        if ack.link != self.link or ack.epoch != self.epoch:
            return
        progressed = False
        while self._unacked and self._unacked[0][0] <= ack.upto:
            self._unacked.popleft()
            self.stats.acked += 1
            progressed = True
        if progressed:
            self.rto_s = self.base_rto_s
            self._oldest_sent_at = now if self._unacked else None

    def due(self, now: float) -> list[LinkBatch]:
        """Batches to transmit now: retransmissions after a timeout, then new items within the window."""
        out: list[LinkBatch] = []
        if self._unacked and self._oldest_sent_at is not None and now - self._oldest_sent_at >= self.rto_s:
            self.stats.timeouts += 1
            self.rto_s = min(self.max_rto_s, self.rto_s * 2)
            items = list(self._unacked)
            for i in range(0, len(items), self.max_batch):
                chunk = items[i:i + self.max_batch]
                out.append(LinkBatch(self.link, self.epoch, chunk[0][0], tuple(b for _, b in chunk)))
                self.stats.retransmitted_items += len(chunk)
            self._oldest_sent_at = now
        while self._backlog and len(self._unacked) < self.window:
            n = min(self.max_batch, self.window - len(self._unacked), len(self._backlog))
            first = self._next_seq
            chunk = tuple(self._backlog.popleft() for _ in range(n))
            for i, item in enumerate(chunk):
                self._unacked.append((first + i, item))
            self._next_seq += n
            out.append(LinkBatch(self.link, self.epoch, first, chunk))
            if self._oldest_sent_at is None:
                self._oldest_sent_at = now
        self.stats.batches += len(out)
        return out


@dataclass
class _Peer:
    epoch: int
    expected: int = 1


@dataclass
class ReceiverStats:
    delivered: int = 0
    duplicates: int = 0
    gaps: int = 0
    stale: int = 0
    resets: int = 0


class LinkReceiver:
    """The receiving half: in-order, exactly-once delivery per (link, epoch)."""

    def __init__(self) -> None:
        self._peers: dict[str, _Peer] = {}
        self.stats = ReceiverStats()
        self.per_link: dict[str, int] = {}

    def on_batch(self, batch: LinkBatch) -> tuple[list[bytes], LinkAck | None]:
        """Items to deliver now, in order, and the ack to send back (``None`` for a stale epoch)."""
        peer = self._peers.get(batch.link)
        if peer is None or batch.epoch > peer.epoch:
            if peer is not None:
                self.stats.resets += 1
            peer = self._peers[batch.link] = _Peer(batch.epoch)
        elif batch.epoch < peer.epoch:
            self.stats.stale += 1
            return [], None
        out: list[bytes] = []
        seq = batch.first_seq
        for item in batch.items:
            if seq < peer.expected:
                self.stats.duplicates += 1
            elif seq == peer.expected:
                out.append(item)
                peer.expected += 1
            else:
                self.stats.gaps += 1
                break
            seq += 1
        self.stats.delivered += len(out)
        self.per_link[batch.link] = self.per_link.get(batch.link, 0) + len(out)
        return out, LinkAck(batch.link, peer.epoch, peer.expected - 1)

    def forget(self, link: str) -> None:
        self._peers.pop(link, None)
