"""A reliable, ordered, batched link over a transport that may drop, duplicate or reorder.

thespian's TCP transport loses messages past ~1,050 queued and a peer process can die at any
moment, so cross-process decision traffic never relies on it alone:

- the sender numbers every item (an encoded envelope) with a per-link sequence number and sends
  items in **batches** (one transport message carries up to ``max_batch`` items);
- at most ``window`` items are unacknowledged at any time (the bounded in-flight window); the
  rest wait in the sender's backlog;
- the receiver delivers items strictly in order, exactly once: a duplicate (``seq`` already
  delivered or held) is skipped; an item past a gap is held (at most ``max_held`` of them, more
  than a window) and delivered as soon as the gap is filled, so a batch that thespian delivers
  ahead of an earlier one (it does: separate sockets) costs no retransmission; every batch is
  answered with a cumulative ``LinkAck(upto)`` of what was delivered;
- an ack may travel on its own or ride on a batch going the other way (``LinkBatch.ack``), so
  a busy link costs one transport message per batch rather than two;
- when the oldest unacknowledged item is older than the retransmission timeout, every
  unacknowledged item sent that long ago is sent again (items sent since are probably on their
  way, or held past the gap). The timeout follows the measured round trip as TCP's does
  (``srtt + 4 * rttvar``, from items sent once, never below ``rto_s``, at most ``max_rtt_rto_s``):
  a receiver that is seconds behind (a Coordinator under two unpaced Workers) is slow, not
  lossy, and resending the window to it would only feed it duplicates. Timeouts back off,
  doubling up to ``max_rto_s`` above that, and reset on progress.

Each sender has an ``epoch`` (its incarnation). A receiver that sees a newer epoch from the same
link name starts that link afresh at sequence 1; batches of an older epoch are ignored. The
classes are pure logic: time is passed in and nothing is sent here, so they are tested directly
with an injected lossy channel.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class LinkAck:
    """Every item of ``link``/``epoch`` up to and including ``upto`` was delivered."""

    link: str
    epoch: int
    upto: int


@dataclass(frozen=True)
class LinkBatch:
    """Items ``first_seq, first_seq+1, ...`` of link ``link`` (sender name) in epoch ``epoch``;
    ``ack``, if any, acknowledges the reverse link (a piggybacked ``LinkAck``)."""

    link: str
    epoch: int
    first_seq: int
    items: tuple[bytes, ...]
    ack: LinkAck | None = None


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
                 rto_s: float = 0.25, max_rto_s: float = 2.0, max_rtt_rto_s: float = 10.0) -> None:
        if window < 1 or max_batch < 1:
            raise ValueError("window and max_batch must be >= 1")
        self.link = link
        self.epoch = epoch
        self.window = window
        self.max_batch = max_batch
        self.base_rto_s = rto_s
        self.rto_s = rto_s
        self.max_rto_s = max_rto_s
        self.max_rtt_rto_s = max_rtt_rto_s
        self._srtt: float | None = None
        self._rttvar = 0.0
        self._next_seq = 1
        self._unacked: deque[list] = deque()  # [seq, item, sent at, sent more than once], in seq order
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
        newest = None
        resent = False
        while self._unacked and self._unacked[0][0] <= ack.upto:
            newest = self._unacked.popleft()
            resent = resent or newest[3]
            self.stats.acked += 1
        if newest is not None:
            # Karn: no sample when the ack covers a retransmitted item. Its round trip is ambiguous,
            # and the items after it waited at the receiver for it, so theirs is not a round trip.
            if not resent:
                self._sample_rtt(now - newest[2])
            self.rto_s = self._rtt_rto()
            self._oldest_sent_at = now if self._unacked else None

    def _sample_rtt(self, rtt: float) -> None:
        if self._srtt is None:
            self._srtt, self._rttvar = rtt, rtt / 2
        else:
            self._rttvar = 0.75 * self._rttvar + 0.25 * abs(self._srtt - rtt)
            self._srtt = 0.875 * self._srtt + 0.125 * rtt

    def _rtt_rto(self) -> float:
        if self._srtt is None:
            return self.base_rto_s
        return min(self.max_rtt_rto_s, max(self.base_rto_s, self._srtt + 4 * self._rttvar))

    def due(self, now: float) -> list[LinkBatch]:
        """Batches to transmit now: retransmissions after a timeout, then new items within the window."""
        out: list[LinkBatch] = []
        if self._unacked and self._oldest_sent_at is not None and now - self._oldest_sent_at >= self.rto_s:
            self.stats.timeouts += 1
            # Overdue: sent at least ``rto_s`` ago, or before the timer last restarted.
            cutoff = max(now - self.rto_s, self._oldest_sent_at)
            self.rto_s = min(max(self.max_rto_s, self._rtt_rto()), self.rto_s * 2)
            run: list[list] = []
            # The head is what the cumulative ack waits for: it is resent at every timeout, even if
            # its last resend is younger than the items behind it (which the receiver may hold).
            head = self._unacked[0]
            for entry in self._unacked:
                overdue = entry[2] <= cutoff or entry is head
                if overdue and (not run or entry[0] == run[-1][0] + 1) and len(run) < self.max_batch:
                    run.append(entry)
                    continue
                if run:
                    out.append(self._resend(run, now))
                run = [entry] if overdue else []
            if run:
                out.append(self._resend(run, now))
            self._oldest_sent_at = min(e[2] for e in self._unacked)
        while self._backlog and len(self._unacked) < self.window:
            n = min(self.max_batch, self.window - len(self._unacked), len(self._backlog))
            first = self._next_seq
            chunk = tuple(self._backlog.popleft() for _ in range(n))
            for i, item in enumerate(chunk):
                self._unacked.append([first + i, item, now, False])
            self._next_seq += n
            out.append(LinkBatch(self.link, self.epoch, first, chunk))
            if self._oldest_sent_at is None:
                self._oldest_sent_at = now
        self.stats.batches += len(out)
        return out

    def _resend(self, run: list[list], now: float) -> LinkBatch:
        for entry in run:
            entry[2] = now
            entry[3] = True
        self.stats.retransmitted_items += len(run)
        return LinkBatch(self.link, self.epoch, run[0][0], tuple(e[1] for e in run))


@dataclass
class _Peer:
    epoch: int
    expected: int = 1
    held: dict[int, bytes] = field(default_factory=dict)  # seq -> item, past a gap


@dataclass
class ReceiverStats:
    delivered: int = 0
    duplicates: int = 0
    gaps: int = 0  # items that arrived past a gap (held, or dropped when the hold was full)
    held: int = 0  # of those, kept and delivered once the gap filled
    stale: int = 0
    resets: int = 0


class LinkReceiver:
    """The receiving half: in-order, exactly-once delivery per (link, epoch)."""

    def __init__(self, max_held: int = 8192) -> None:
        self._peers: dict[str, _Peer] = {}
        self.max_held = max_held
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
        held = peer.held
        seq = batch.first_seq
        for item in batch.items:
            if seq < peer.expected or seq in held:
                self.stats.duplicates += 1
            elif seq == peer.expected:
                out.append(item)
                peer.expected += 1
                while held and peer.expected in held:
                    out.append(held.pop(peer.expected))
                    peer.expected += 1
            else:
                self.stats.gaps += 1
                if seq - peer.expected > self.max_held or len(held) >= self.max_held:
                    break  # far ahead or too much held: the sender's retransmission brings it again
                held[seq] = item
                self.stats.held += 1
            seq += 1
        self.stats.delivered += len(out)
        self.per_link[batch.link] = self.per_link.get(batch.link, 0) + len(out)
        return out, LinkAck(batch.link, peer.epoch, peer.expected - 1)

    def forget(self, link: str) -> None:
        self._peers.pop(link, None)
