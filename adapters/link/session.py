"""The data plane's session layer: exactly-once, in-order delivery of envelopes per link.

The transport (``transport.ZmqPort``, TCP underneath) keeps order within a connection and loses
frames only when a connection breaks (what was queued on it), or refuses a send it cannot take
now (the peer is not connected, its queue is full). So the session needs no timers:

- the sender numbers every item (an encoded envelope) with a per-link sequence number and sends
  items in batches of at most ``max_batch``, at most ``window`` of them unacknowledged (the rest
  wait in its backlog);
- the receiver delivers items strictly in order, exactly once: an item already delivered is a
  duplicate and skipped; an item past a gap is dropped, and the receiver asks, once per gap, for
  a resend (``LinkAck.resend``); every batch is answered with a cumulative ``LinkAck(upto)``,
  alone or riding on a batch going the other way;
- the sender sends its unacknowledged items again (``rewind``) when asked to, when the transport
  refused a send, and when the connection was made again (the shim sees the handshake).

Each sender has an ``epoch``: its process's incarnation (``incarnations.IncarnationCounter``).
A receiver that sees a newer epoch on a link starts that link afresh at sequence 1; batches of
an older epoch are ignored. The classes are pure: nothing is sent and no clock is read here.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from itertools import islice


@dataclass(frozen=True)
class LinkAck:
    """Every item of ``link``/``epoch`` up to and including ``upto`` was delivered; ``resend``:
    items after ``upto`` were lost, send them again."""

    link: str
    epoch: int
    upto: int
    resend: bool = False


@dataclass(frozen=True)
class LinkBatch:
    """Items ``first_seq, first_seq+1, ...`` of link ``link`` (sender name) in epoch ``epoch``;
    ``ack``, if any, acknowledges the reverse link (a piggybacked ``LinkAck``). ``stamps``: when
    the sender sent it and the receiver read it (wall-clock ns), only while hops are traced."""

    link: str
    epoch: int
    first_seq: int
    items: tuple[bytes, ...]
    ack: LinkAck | None = None
    stamps: tuple[int, int] | None = field(default=None, compare=False)


@dataclass
class SenderStats:
    submitted: int = 0
    batches: int = 0
    acked: int = 0
    rewinds: int = 0
    resent_items: int = 0
    max_backlog: int = 0


class LinkSender:
    """The sending half; see the module docstring."""

    def __init__(self, link: str, epoch: int, window: int = 4096, max_batch: int = 256) -> None:
        if window < 1 or max_batch < 1:
            raise ValueError("window and max_batch must be >= 1")
        self.link = link
        self.epoch = epoch
        self.window = window
        self.max_batch = max_batch
        self._next_seq = 1
        self._unacked: deque[tuple[int, bytes]] = deque()  # (seq, item), in seq order
        self._sent = 0  # how many of ``_unacked`` (from the oldest) went out since the last rewind
        self._backlog: deque[bytes] = deque()
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

    def on_ack(self, ack: LinkAck) -> None:
        if ack.link != self.link or ack.epoch != self.epoch:
            return
        while self._unacked and self._unacked[0][0] <= ack.upto:
            self._unacked.popleft()
            self._sent = max(0, self._sent - 1)
            self.stats.acked += 1
        if ack.resend:
            self.rewind()

    def rewind(self) -> None:
        """Every unacknowledged item goes out again with the next ``due``."""
        if self._unacked:
            self.stats.rewinds += 1
        self._sent = 0

    def due(self) -> list[LinkBatch]:
        """Batches to send now: unacknowledged items not sent since a rewind, then new items
        within the window."""
        out: list[LinkBatch] = []
        while self._sent < len(self._unacked):
            run = list(islice(self._unacked, self._sent, self._sent + self.max_batch))
            self._sent += len(run)
            self.stats.resent_items += len(run)
            out.append(LinkBatch(self.link, self.epoch, run[0][0], tuple(item for _, item in run)))
        while self._backlog and len(self._unacked) < self.window:
            n = min(self.max_batch, self.window - len(self._unacked), len(self._backlog))
            first = self._next_seq
            chunk = tuple(self._backlog.popleft() for _ in range(n))
            self._unacked.extend(zip(range(first, first + n), chunk, strict=True))
            self._sent += n
            self._next_seq += n
            out.append(LinkBatch(self.link, self.epoch, first, chunk))
        self.stats.batches += len(out)
        return out


@dataclass
class _Peer:
    epoch: int
    expected: int = 1
    asked: int = 0  # ``expected`` when a resend was last asked for (once per gap)


@dataclass
class ReceiverStats:
    delivered: int = 0
    duplicates: int = 0
    gaps: int = 0  # items that arrived past a gap (dropped; a resend brings them again)
    resend_requests: int = 0
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
        resend = False
        seq = batch.first_seq
        for k, item in enumerate(batch.items):
            if seq < peer.expected:
                self.stats.duplicates += 1
            elif seq == peer.expected:
                out.append(item)
                peer.expected += 1
            else:
                self.stats.gaps += len(batch.items) - k
                if peer.asked != peer.expected:
                    peer.asked = peer.expected
                    resend = True
                    self.stats.resend_requests += 1
                break
            seq += 1
        self.stats.delivered += len(out)
        self.per_link[batch.link] = self.per_link.get(batch.link, 0) + len(out)
        return out, LinkAck(batch.link, peer.epoch, peer.expected - 1, resend)

    def resync(self, link: str) -> LinkAck | None:
        """After a reconnection: ask ``link``'s sender for everything after what was delivered
        (``None`` if nothing was ever received on it)."""
        peer = self._peers.get(link)
        if peer is None:
            return None
        peer.asked = peer.expected
        self.stats.resend_requests += 1
        return LinkAck(link, peer.epoch, peer.expected - 1, True)

    def forget(self, link: str) -> None:
        self._peers.pop(link, None)
