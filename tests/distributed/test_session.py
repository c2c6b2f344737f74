"""The session layer on its own: exactly-once, in-order delivery with resend on reconnect, no timers."""

from __future__ import annotations

import random

from arbor.adapters.link.session import LinkAck, LinkBatch, LinkReceiver, LinkSender


def _ints(items) -> list[int]:
    return [int.from_bytes(x, "big") for x in items]


def run(n: int, breaks: float, dup: float, max_delay: int, seed: int, window: int = 512, batch: int = 64):
    """Send ``n`` items through a channel that delays each frame 0..``max_delay`` steps (frames
    overtake each other), duplicates some, and at a step with probability ``breaks`` loses its
    connection with everything on it; the next step reconnects (sender rewinds, receiver resyncs),
    as the shim does on a zmq handshake."""
    rng = random.Random(seed)
    tx, rx = LinkSender("worker-0", epoch=7, window=window, max_batch=batch), LinkReceiver()
    tx.submit_many(i.to_bytes(4, "big") for i in range(n))
    ahead: list[tuple[int, LinkBatch]] = []
    back: list[tuple[int, LinkAck]] = []
    got: list[int] = []
    max_in_flight, reconnect = 0, False
    for step in range(100_000):
        if len(got) == n:
            break
        if reconnect:
            reconnect = False
            tx.rewind()
            ask = rx.resync("worker-0")
            if ask is not None:
                tx.on_ack(ask)
        for b in tx.due():
            for _ in range(2 if rng.random() < dup else 1):
                ahead.append((step + rng.randint(0, max_delay), b))
        max_in_flight = max(max_in_flight, tx.in_flight)
        if rng.random() < breaks:
            ahead.clear()
            back.clear()
            reconnect = True
            continue
        ready, ahead = [b for t, b in ahead if t <= step], [(t, b) for t, b in ahead if t > step]
        for b in ready:
            items, ack = rx.on_batch(b)
            got.extend(_ints(items))
            if ack is not None:
                back.append((step + rng.randint(0, max_delay), ack))
        acks, back = [a for t, a in back if t <= step], [(t, a) for t, a in back if t > step]
        for a in acks:
            tx.on_ack(a)
    else:
        raise AssertionError("the session made no progress")
    return got, tx, rx, max_in_flight


def test_burst_of_10000_arrives_once_in_order_without_loss():
    """A 10,000-envelope burst on a clean channel arrives exactly once, in order, batched, nothing resent."""
    got, tx, rx, max_in_flight = run(10_000, breaks=0.0, dup=0.0, max_delay=0, seed=1, window=4096, batch=256)
    assert got == list(range(10_000))
    assert max_in_flight <= 4096
    assert tx.stats.batches <= 10_000 // 256 + 2
    assert tx.stats.resent_items == 0 and tx.stats.rewinds == 0


def test_burst_survives_broken_connections_duplicates_and_reordering():
    """With a fifth of the steps breaking the connection, duplicates and frames overtaking each other,
    every item arrives exactly once, in order."""
    for seed in range(5):
        got, tx, rx, max_in_flight = run(10_000, breaks=0.2, dup=0.1, max_delay=3, seed=seed)
        assert got == list(range(10_000))
        assert max_in_flight <= 512
        assert tx.stats.rewinds > 0 and tx.stats.resent_items > 0
        assert rx.stats.duplicates > 0 and rx.stats.gaps > 0


def test_reordering_alone_is_repaired_by_resend_requests():
    """Without any loss, frames that overtake each other are repaired by the receiver's resend requests."""
    got, tx, rx, _ = run(10_000, breaks=0.0, dup=0.0, max_delay=4, seed=3)
    assert got == list(range(10_000))
    assert rx.stats.resend_requests > 0 and tx.stats.rewinds > 0


def test_window_bounds_in_flight_and_backlog_waits():
    """No more than ``window`` items are unacknowledged; the rest wait in the backlog."""
    tx = LinkSender("a", epoch=1, window=100, max_batch=30)
    tx.submit_many(bytes([i % 256]) for i in range(1000))
    batches = tx.due()
    assert sum(len(b.items) for b in batches) == 100
    assert all(len(b.items) <= 30 for b in batches)
    assert tx.in_flight == 100 and tx.backlog == 900
    tx.on_ack(LinkAck("a", 1, 50))
    assert sum(len(b.items) for b in tx.due()) == 50


def test_nothing_is_sent_twice_without_a_rewind():
    """Items go out once; only a rewind (reconnect, refused send, resend request) sends them again."""
    tx = LinkSender("a", epoch=1, window=10, max_batch=4)
    tx.submit_many(bytes([i]) for i in range(6))
    first = tx.due()
    assert [b.first_seq for b in first] == [1, 5] and tx.due() == []
    tx.on_ack(LinkAck("a", 1, 2))
    tx.rewind()
    again = tx.due()
    assert [(b.first_seq, len(b.items)) for b in again] == [(3, 4)]
    assert again[0].items == (bytes([2]), bytes([3]), bytes([4]), bytes([5]))


def test_a_gap_asks_for_a_resend_once_and_the_resend_fills_it():
    """Items past a gap are dropped and the resend is asked for once; the rewound items then arrive in order."""
    tx, rx = LinkSender("w", epoch=2, window=100, max_batch=2), LinkReceiver()
    tx.submit_many(i.to_bytes(4, "big") for i in range(6))
    b1, b2, b3 = tx.due()
    items, ack = rx.on_batch(b1)
    assert _ints(items) == [0, 1] and not ack.resend
    items, ack = rx.on_batch(b3)  # b2 was lost with a connection
    assert items == [] and ack == LinkAck("w", 2, 2, resend=True)
    tx.on_ack(ack)
    _, again = rx.on_batch(b3)
    assert again == LinkAck("w", 2, 2)  # asked once for this gap
    got = []
    for b in tx.due():
        items, ack = rx.on_batch(b)
        got += _ints(items)
    assert got == [2, 3, 4, 5] and ack == LinkAck("w", 2, 6)
    assert rx.stats.delivered == 6


def test_resync_asks_for_everything_after_what_was_delivered():
    """After a reconnection the receiver asks for all after its last delivered item; nothing is asked of a link never heard."""
    rx = LinkReceiver()
    assert rx.resync("w") is None
    rx.on_batch(LinkBatch("w", 4, 1, (b"a", b"b", b"c")))
    assert rx.resync("w") == LinkAck("w", 4, 3, resend=True)


def test_new_epoch_restarts_the_link_and_stale_epoch_is_ignored():
    """A restarted sender (newer epoch) starts afresh at 1; batches of the old epoch are dropped."""
    rx = LinkReceiver()
    items, ack = rx.on_batch(LinkBatch("w", 1, 1, (b"a", b"b")))
    assert items == [b"a", b"b"] and ack == LinkAck("w", 1, 2)
    items, ack = rx.on_batch(LinkBatch("w", 2, 1, (b"c",)))
    assert items == [b"c"] and ack == LinkAck("w", 2, 1)
    items, ack = rx.on_batch(LinkBatch("w", 1, 3, (b"x",)))
    assert items == [] and ack is None


def test_acks_of_another_epoch_or_link_do_not_release_items():
    """An ack for a different epoch or link never removes unacknowledged items, nor rewinds."""
    tx = LinkSender("w", epoch=5, window=10)
    tx.submit(b"x")
    tx.due()
    tx.on_ack(LinkAck("w", 4, 1, resend=True))
    tx.on_ack(LinkAck("other", 5, 1, resend=True))
    assert tx.in_flight == 1 and tx.due() == []
    tx.on_ack(LinkAck("w", 5, 1))
    assert tx.idle


def test_two_way_traffic_with_piggybacked_acks_arrives_once_in_order():
    """Both directions at once, each ack riding on the next batch the other way, deliver everything once."""
    a, b = LinkSender("a", epoch=1, window=64, max_batch=8), LinkSender("b", epoch=1, window=64, max_batch=8)
    ra, rb = LinkReceiver(), LinkReceiver()  # ra receives b's link at a; rb receives a's at b
    a.submit_many(i.to_bytes(4, "big") for i in range(1000))
    b.submit_many(i.to_bytes(4, "big") for i in range(700))
    got_a, got_b, owed_a, owed_b = [], [], None, None
    for _ in range(10_000):
        if a.idle and b.idle:
            break
        for batch in a.due():
            if owed_a is not None:
                batch, owed_a = LinkBatch(batch.link, batch.epoch, batch.first_seq, batch.items, owed_a), None
            if batch.ack is not None:
                b.on_ack(batch.ack)
            items, owed_b = rb.on_batch(batch)
            got_b += _ints(items)
        for batch in b.due():
            if owed_b is not None:
                batch, owed_b = LinkBatch(batch.link, batch.epoch, batch.first_seq, batch.items, owed_b), None
            if batch.ack is not None:
                a.on_ack(batch.ack)
            items, owed_a = ra.on_batch(batch)
            got_a += _ints(items)
        if owed_b is not None and b.backlog == 0:  # nothing going back to ride on: the ack goes alone
            a.on_ack(owed_b)
            owed_b = None
        if owed_a is not None and a.backlog == 0:
            b.on_ack(owed_a)
            owed_a = None
    assert got_b == list(range(1000)) and got_a == list(range(700))
    assert a.idle and b.idle
