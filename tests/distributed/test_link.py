"""The reliable link layer on its own: ordered, exactly-once delivery over a lossy channel."""

from __future__ import annotations

import random

from actors.distributed.link import LinkAck, LinkBatch, LinkReceiver, LinkSender


def run_lossy(n: int, drop: float, dup: float, reorder: float, seed: int, window: int = 512, batch: int = 64):
    rng = random.Random(seed)
    tx = LinkSender("worker-0", epoch=7, window=window, max_batch=batch, rto_s=0.05)
    rx = LinkReceiver()
    for i in range(n):
        tx.submit(i.to_bytes(4, "big"))
    got: list[int] = []
    now = 0.0
    max_in_flight = 0
    steps = 0
    while len(got) < n:
        steps += 1
        assert steps < 100_000, "link made no progress"
        now += 0.01
        wire: list[LinkBatch] = tx.due(now)
        max_in_flight = max(max_in_flight, tx.in_flight)
        out: list[LinkBatch] = []
        for b in wire:
            if rng.random() < drop:
                continue
            out.append(b)
            if rng.random() < dup:
                out.append(b)
        if len(out) > 1 and rng.random() < reorder:
            rng.shuffle(out)
        acks: list[LinkAck] = []
        for b in out:
            items, ack = rx.on_batch(b)
            got.extend(int.from_bytes(x, "big") for x in items)
            if ack is not None:
                acks.append(ack)
        for a in acks:
            if rng.random() >= drop:
                tx.on_ack(a, now)
    return got, tx, rx, max_in_flight


def test_burst_of_10000_arrives_once_in_order_without_loss():
    """A 10,000-envelope burst on a clean channel arrives exactly once, in order, batched."""
    got, tx, rx, max_in_flight = run_lossy(10_000, drop=0.0, dup=0.0, reorder=0.0, seed=1, window=4096, batch=256)
    assert got == list(range(10_000))
    assert max_in_flight <= 4096
    assert tx.stats.batches <= 10_000 // 256 + 2
    assert tx.stats.retransmitted_items == 0


def test_burst_survives_drops_duplicates_and_reordering():
    """With 20% of batches and acks dropped, duplicates and reordering, every item arrives once, in order."""
    for seed in range(5):
        got, tx, rx, max_in_flight = run_lossy(10_000, drop=0.2, dup=0.1, reorder=0.3, seed=seed)
        assert got == list(range(10_000))
        assert max_in_flight <= 512
        assert tx.stats.retransmitted_items > 0
        assert rx.stats.duplicates > 0 or rx.stats.gaps > 0
        assert tx.idle or tx.in_flight > 0  # acks may still be on the way; nothing is delivered twice


def test_window_bounds_in_flight_and_backlog_waits():
    """No more than ``window`` items are unacknowledged; the rest wait in the backlog."""
    tx = LinkSender("a", epoch=1, window=100, max_batch=30)
    for i in range(1000):
        tx.submit(bytes([i % 256]))
    batches = tx.due(0.0)
    assert sum(len(b.items) for b in batches) == 100
    assert all(len(b.items) <= 30 for b in batches)
    assert tx.in_flight == 100 and tx.backlog == 900
    tx.on_ack(LinkAck("a", 1, 50), 0.01)
    assert sum(len(b.items) for b in tx.due(0.02)) == 50


def test_new_epoch_restarts_the_link_and_stale_epoch_is_ignored():
    """A restarted sender (newer epoch) starts afresh at 1; batches of the old epoch are dropped."""
    rx = LinkReceiver()
    items, ack = rx.on_batch(LinkBatch("w", 1, 1, (b"a", b"b")))
    assert items == [b"a", b"b"] and ack == LinkAck("w", 1, 2)
    items, ack = rx.on_batch(LinkBatch("w", 2, 1, (b"c",)))
    assert items == [b"c"] and ack == LinkAck("w", 2, 1)
    items, ack = rx.on_batch(LinkBatch("w", 1, 3, (b"x",)))
    assert items == [] and ack is None


def test_acks_of_another_epoch_do_not_release_items():
    """An ack for a different epoch or link never removes unacknowledged items."""
    tx = LinkSender("w", epoch=5, window=10)
    tx.submit(b"x")
    tx.due(0.0)
    tx.on_ack(LinkAck("w", 4, 1), 0.0)
    tx.on_ack(LinkAck("other", 5, 1), 0.0)
    assert tx.in_flight == 1
    tx.on_ack(LinkAck("w", 5, 1), 0.0)
    assert tx.idle
