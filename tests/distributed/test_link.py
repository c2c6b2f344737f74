"""The reliable link layer on its own: ordered, exactly-once delivery over a lossy channel."""

from __future__ import annotations

import random
from dataclasses import replace

from arbor.actors.distributed.link import LinkAck, LinkBatch, LinkReceiver, LinkSender


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
        assert rx.stats.duplicates > 0 and rx.stats.held > 0  # reordered batches were held
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


def _seqs(first: int, n: int) -> tuple[bytes, ...]:
    return tuple(i.to_bytes(4, "big") for i in range(first, first + n))


def _ints(items) -> list[int]:
    return [int.from_bytes(x, "big") for x in items]


# -- a channel that delays (reorders across sends), drops and duplicates -----------------------

def run_delayed(n: int, drop: float, dup: float, max_delay: int, seed: int, window: int = 512, batch: int = 64,
                max_held: int = 8192, step: float = 0.01, rto_s: float = 0.05):
    """Send ``n`` items through a channel where each batch and ack is dropped with ``drop``, duplicated
    with ``dup`` and delayed 0..``max_delay`` steps, so batches overtake each other across sends."""
    rng = random.Random(seed)
    tx = LinkSender("worker-0", epoch=3, window=window, max_batch=batch, rto_s=rto_s)
    rx = LinkReceiver(max_held=max_held)
    tx.submit_many(i.to_bytes(4, "big") for i in range(n))
    to_rx: dict[int, list[LinkBatch]] = {}
    to_tx: dict[int, list[LinkAck]] = {}
    got: list[int] = []
    max_held_seen = 0
    t = 0
    while len(got) < n or not tx.idle:
        t += 1
        assert t < 200_000, "link made no progress"
        now = t * step
        for b in tx.due(now):
            for _ in range(2 if rng.random() < dup else 1):
                if rng.random() >= drop:
                    to_rx.setdefault(t + rng.randint(0, max_delay), []).append(b)
        for b in to_rx.pop(t, []):
            items, ack = rx.on_batch(b)
            assert ack is not None  # one epoch throughout: no batch is stale
            got.extend(_ints(items))
            max_held_seen = max(max_held_seen, sum(len(p.held) for p in rx._peers.values()))  # held right now
            if rng.random() >= drop:
                to_tx.setdefault(t + rng.randint(0, max_delay), []).append(ack)
        for a in to_tx.pop(t, []):
            tx.on_ack(a, now)
        assert tx.in_flight <= window
    assert max_held_seen <= max_held
    return got, tx, rx, max_held_seen


# -- holding items past a gap -----------------------------------------------------------------

def test_batches_past_a_gap_are_held_then_delivered_in_order_once():
    """Batches ahead of a gap are held, not delivered; filling the gap delivers everything in order."""
    rx = LinkReceiver()
    items, ack = rx.on_batch(LinkBatch("w", 1, 5, _seqs(5, 2)))
    assert items == [] and ack == LinkAck("w", 1, 0)
    items, ack = rx.on_batch(LinkBatch("w", 1, 3, _seqs(3, 2)))
    assert items == [] and ack == LinkAck("w", 1, 0)
    assert rx.stats.held == 4 and rx.stats.delivered == 0
    items, ack = rx.on_batch(LinkBatch("w", 1, 1, _seqs(1, 2)))
    assert _ints(items) == [1, 2, 3, 4, 5, 6]
    assert ack == LinkAck("w", 1, 6)
    assert rx.stats.delivered == 6


def test_held_items_are_never_delivered_twice():
    """A duplicate of a held item, or a resend of what the gap released, is skipped and counted."""
    rx = LinkReceiver()
    rx.on_batch(LinkBatch("w", 1, 3, _seqs(3, 2)))
    items, _ = rx.on_batch(LinkBatch("w", 1, 3, _seqs(3, 2)))  # duplicate while held
    assert items == [] and rx.stats.duplicates == 2 and rx.stats.held == 2
    items, ack = rx.on_batch(LinkBatch("w", 1, 1, _seqs(1, 5)))  # a resend spanning the held items
    assert _ints(items) == [1, 2, 3, 4, 5] and ack == LinkAck("w", 1, 5)
    assert rx.stats.duplicates == 4
    items, ack = rx.on_batch(LinkBatch("w", 1, 2, _seqs(2, 4)))
    assert items == [] and ack == LinkAck("w", 1, 5)
    assert rx.stats.delivered == 5


def test_reordered_window_is_held_entirely_and_needs_no_retransmission():
    """A full default window (4,096) arriving in reverse batch order is held and delivered once, with no resend."""
    tx = LinkSender("w", epoch=1)  # window 4096, batch 256
    rx = LinkReceiver()  # holds up to 8192
    for i in range(1, 4097):
        tx.submit(i.to_bytes(4, "big"))
    wire = tx.due(0.0)
    assert len(wire) == 16
    got: list[int] = []
    for b in reversed(wire):
        items, ack = rx.on_batch(b)
        got += _ints(items)
        tx.on_ack(ack, 0.01)
    assert got == list(range(1, 4097))
    assert rx.stats.held == 4096 - 256 and rx.stats.duplicates == 0
    assert tx.idle and tx.due(10.0) == [] and tx.stats.retransmitted_items == 0


def test_hold_is_bounded_and_overflow_is_retransmitted_not_lost():
    """Past ``max_held`` items ahead of the gap nothing more is held or acked; a resend brings it, each applied once."""
    tx = LinkSender("w", epoch=1, window=20_000, max_batch=256, rto_s=0.25)
    rx = LinkReceiver()
    assert rx.max_held == 8192
    tx.submit_many(i.to_bytes(4, "big") for i in range(1, 20_001))
    wire = tx.due(0.0)
    got: list[int] = []
    for b in wire[1:]:  # the first batch (1..256) is lost
        items, ack = rx.on_batch(b)
        assert items == [] and ack == LinkAck("w", 1, 0)
        tx.on_ack(ack, 0.01)
    # Held: 257 .. 1 + 8192 (never more than max_held past the next expected item); the rest dropped.
    assert rx.stats.held == 8193 - 256
    assert tx.in_flight == 20_000  # nothing dropped was acknowledged
    assert tx.due(0.2) == []
    resent = tx.due(0.25)
    assert sum(len(b.items) for b in resent) == 20_000  # all were sent at 0.0: all overdue
    for b in resent:
        items, ack = rx.on_batch(b)
        got += _ints(items)
        tx.on_ack(ack, 0.3)
    assert got == list(range(1, 20_001))
    assert rx.stats.delivered == 20_000
    assert rx.stats.duplicates == 8193 - 256  # the held ones, sent again
    assert tx.idle


def test_small_hold_on_a_lossy_reordering_channel_loses_nothing():
    """A receiver whose hold overflows all the time still delivers every item exactly once, in order."""
    for seed in range(3):
        got, tx, rx, _ = run_delayed(3_000, drop=0.2, dup=0.2, max_delay=6, seed=seed, window=1024, batch=32,
                                     max_held=40)
        assert got == list(range(3_000))
        assert rx.stats.gaps > rx.stats.held > 0  # some held, some dropped for lack of room


def test_burst_with_loss_reorder_and_duplicates_is_held_and_arrives_once_in_order():
    """10,000 items, 20% of batches and acks lost, duplicated, delayed past each other: exactly once, in order."""
    for seed in range(3):
        got, tx, rx, max_held_seen = run_delayed(10_000, drop=0.2, dup=0.1, max_delay=5, seed=seed)
        assert got == list(range(10_000))
        assert rx.stats.delivered == 10_000
        assert rx.stats.held > 0 and max_held_seen > 0  # the hold was exercised
        assert rx.stats.duplicates > 0 and tx.stats.retransmitted_items > 0
        assert tx.idle


def test_reordering_without_loss_costs_no_retransmission():
    """Batches that overtake each other (within the timeout) are held: nothing is sent twice."""
    got, tx, rx, _ = run_delayed(5_000, drop=0.0, dup=0.0, max_delay=3, seed=4, rto_s=0.25)
    assert got == list(range(5_000))
    assert rx.stats.held > 0
    assert tx.stats.retransmitted_items == 0 and rx.stats.duplicates == 0


# -- piggybacked acks ---------------------------------------------------------------------------

def _loaded_sender() -> LinkSender:
    tx = LinkSender("w", epoch=2, window=100, max_batch=25)
    tx.submit_many(bytes([i % 256]) for i in range(300))
    tx.due(0.0)
    return tx


def test_piggybacked_ack_releases_the_window_like_a_standalone_ack():
    """An ack riding on a reverse batch has exactly the effect of the same ack sent alone."""
    alone, riding = _loaded_sender(), _loaded_sender()
    rx = LinkReceiver()
    back = LinkSender("c", epoch=9)
    back.submit(b"verdict")
    (reverse,) = back.due(0.0)
    reverse = replace(reverse, ack=LinkAck("w", 2, 60))
    alone.on_ack(LinkAck("w", 2, 60), 0.125)
    items, _ = rx.on_batch(reverse)  # the carrier batch is delivered as usual
    assert items == [b"verdict"]
    riding.on_ack(reverse.ack, 0.125)
    for s in (alone, riding):
        assert s.in_flight == 40 and s.stats.acked == 60
    assert alone.rto_s == riding.rto_s
    assert [(b.first_seq, b.items) for b in alone.due(0.25)] == [(b.first_seq, b.items) for b in riding.due(0.25)]
    assert riding.in_flight == 100 and riding.backlog == 140


def test_two_way_traffic_with_piggybacked_acks_arrives_once_in_order():
    """Both directions busy, each ack riding on the next reverse batch (alone only when there is none
    for a while), 20% of frames lost and the rest reordered: every item arrives once, in order."""
    rng = random.Random(11)
    n = 3_000
    tx = {"a": LinkSender("a", 1, window=512, max_batch=32, rto_s=0.05),
          "b": LinkSender("b", 1, window=512, max_batch=32, rto_s=0.05)}
    rx = {"a": LinkReceiver(), "b": LinkReceiver()}
    other = {"a": "b", "b": "a"}
    got: dict[str, list[int]] = {"a": [], "b": []}  # what each side received
    owed: dict[str, list] = {}  # side -> [the ack it owes the other side, steps it has waited]
    submitted = {"a": 0, "b": 0}
    standalone = piggybacked = 0
    step = 0
    while not (len(got["a"]) == n == len(got["b"]) and tx["a"].idle and tx["b"].idle):
        step += 1
        assert step < 50_000, "link made no progress"
        now = step * 0.01
        for me in ("a", "b"):
            peer = other[me]
            k = min(16, n - submitted[me])  # a steady stream of decisions
            tx[me].submit_many(i.to_bytes(4, "big") for i in range(submitted[me], submitted[me] + k))
            submitted[me] += k
            wire = tx[me].due(now)
            if me in owed:
                if wire:
                    wire[0] = replace(wire[0], ack=owed.pop(me)[0])
                    piggybacked += 1
                elif owed[me][1] >= 2:  # the delayed ack's time is up: it goes alone
                    ack = owed.pop(me)[0]
                    standalone += 1
                    if rng.random() >= 0.2:
                        tx[peer].on_ack(ack, now)
                else:
                    owed[me][1] += 1
            rng.shuffle(wire)
            for b in wire:
                if rng.random() < 0.2:
                    continue
                if b.ack is not None:
                    tx[peer].on_ack(b.ack, now)
                items, ack = rx[peer].on_batch(b)
                got[peer].extend(_ints(items))
                owed[peer] = [ack, 0]
    assert got["a"] == list(range(n)) and got["b"] == list(range(n))
    assert piggybacked > standalone


# -- retransmission: only what is overdue -------------------------------------------------------

def test_timeout_resends_only_overdue_items_after_a_partial_ack():
    """After a partial ack, a timeout resends the items sent before the timer restarted, not those sent since."""
    tx = LinkSender("w", epoch=1, window=1000, max_batch=100, rto_s=0.25)
    tx.submit_many(bytes([i % 256]) for i in range(300))
    assert [b.first_seq for b in tx.due(0.0)] == [1, 101, 201]
    tx.on_ack(LinkAck("w", 1, 150), 0.125)  # RTT 0.125: timeout 0.125 + 4 * 0.0625 = 0.375
    assert tx.rto_s == 0.375
    tx.submit_many(bytes([i % 256]) for i in range(300))
    assert [b.first_seq for b in tx.due(0.25)] == [301, 401, 501]
    assert tx.due(0.49) == []
    resent = tx.due(0.5)  # 0.375 after the ack restarted the timer
    assert [(b.first_seq, len(b.items)) for b in resent] == [(151, 100), (251, 50)]
    assert tx.stats.retransmitted_items == 150 and tx.stats.timeouts == 1
    assert tx.rto_s == 0.75  # doubled
    # Next timeout: 0.75 after the oldest send (0.25): the items sent at 0.25 are now overdue, the
    # ones just resent (at 0.5) are not, except the head (151), which every timeout resends.
    assert tx.due(0.99) == []
    resent = tx.due(1.0)
    assert [(b.first_seq, len(b.items)) for b in resent] == [(151, 1), (301, 100), (401, 100), (501, 100)]
    assert tx.stats.retransmitted_items == 451


def test_overdue_items_are_resent_in_batches_of_at_most_max_batch():
    """Overdue items are resent as runs of consecutive sequence numbers, at most ``max_batch`` each."""
    tx = LinkSender("w", epoch=1, window=1000, max_batch=64, rto_s=0.25)
    tx.submit_many(bytes(1) for _ in range(200))
    tx.due(0.0)
    tx.on_ack(LinkAck("w", 1, 10), 0.0625)  # timer restarts at 0.0625; RTT sample keeps rto at 0.25
    assert tx.rto_s == 0.25
    resent = tx.due(0.3125)
    assert [(b.first_seq, len(b.items)) for b in resent] == [(11, 64), (75, 64), (139, 62)]
    assert all(len(b.items) <= 64 for b in resent)


# -- the adaptive retransmission timeout ---------------------------------------------------------

def _rtt_sample(tx: LinkSender, sent_at: float, rtt: float) -> None:
    tx.submit(b"x")
    (b,) = tx.due(sent_at)
    tx.on_ack(LinkAck(tx.link, tx.epoch, b.first_seq), sent_at + rtt)


def test_timeout_follows_the_measured_round_trip():
    """The timeout is srtt + 4 * rttvar: three times the first sample, then near a steady RTT."""
    tx = LinkSender("w", epoch=1, rto_s=0.25, max_rtt_rto_s=10.0)
    assert tx.rto_s == 0.25
    _rtt_sample(tx, 0.0, 0.5)
    assert tx.rto_s == 1.5  # 0.5 + 4 * 0.25
    t = 1.0
    for _ in range(60):
        _rtt_sample(tx, t, 0.5)
        t += 1.0
    assert 0.5 <= tx.rto_s < 0.55
    for _ in range(60):
        _rtt_sample(tx, t, 2.0)  # the receiver fell behind: the timeout follows
        t += 3.0
    assert 2.0 <= tx.rto_s < 2.2


def test_timeout_stays_within_its_bounds():
    """A tiny RTT never takes the timeout below ``rto_s``; a huge one never above ``max_rtt_rto_s``."""
    fast = LinkSender("w", epoch=1, rto_s=0.25, max_rtt_rto_s=10.0)
    for i in range(20):
        _rtt_sample(fast, float(i), 0.001)
    assert fast.rto_s == 0.25
    slow = LinkSender("w", epoch=1, rto_s=0.25, max_rtt_rto_s=10.0)
    _rtt_sample(slow, 0.0, 8.0)
    assert slow.rto_s == 10.0
    for i in range(20):
        _rtt_sample(slow, 100.0 + 100 * i, 30.0)
    assert slow.rto_s == 10.0


def test_rtt_of_a_retransmitted_item_is_not_sampled():
    """Karn's rule: an ack for a resent item does not feed the RTT estimate."""
    tx = LinkSender("w", epoch=1, rto_s=0.25)
    tx.submit(b"x")
    tx.due(0.0)
    assert len(tx.due(0.25)) == 1  # resent
    tx.on_ack(LinkAck("w", 1, 1), 5.0)  # 5 s after the first send: ambiguous, not a sample
    assert tx.rto_s == 0.25
    _rtt_sample(tx, 6.0, 0.125)
    assert tx.rto_s == 0.375  # the first real sample, as if it were the only one


def test_repeated_timeouts_back_off_to_the_cap_and_progress_resets():
    """Each timeout doubles the timeout up to ``max_rto_s``; an ack brings it back to the RTT-based value."""
    tx = LinkSender("w", epoch=1, rto_s=0.25, max_rto_s=2.0)
    tx.submit(b"x")
    tx.due(0.0)
    fired = []
    t = 0.0
    while len(fired) < 7:
        t += 0.0625
        if tx.due(t):
            fired.append(t)
    assert fired == [0.25, 0.75, 1.75, 3.75, 5.75, 7.75, 9.75]  # waits 0.25, 0.5, 1, 2, 2, 2, 2
    assert tx.rto_s == 2.0 and tx.stats.timeouts == 7
    tx.submit(b"y")
    tx.due(t)
    tx.on_ack(LinkAck("w", 1, 1), t + 0.0625)  # progress (a resent item: no RTT sample)
    assert tx.rto_s == 0.25
    assert tx.due(t + 0.0625 + 0.1875) == []
    assert len(tx.due(t + 0.0625 + 0.25)) == 1


def test_backoff_never_exceeds_the_larger_bound():
    """However many timeouts, the timeout is at most ``max(max_rto_s, max_rtt_rto_s)``; with an RTT-based
    timeout above ``max_rto_s`` it stays at that value (no doubling)."""
    tx = LinkSender("w", epoch=1, rto_s=0.25, max_rto_s=2.0, max_rtt_rto_s=10.0)
    _rtt_sample(tx, 0.0, 1.0)  # timeout 3.0, above max_rto_s
    assert tx.rto_s == 3.0
    tx.submit(b"x")
    tx.due(10.0)
    t = 10.0
    for _ in range(200):
        t += 0.5
        tx.due(t)
        assert tx.rto_s <= 10.0
    assert tx.rto_s == 3.0 and tx.stats.timeouts > 5


def test_a_lost_resend_of_the_gap_is_resent_at_the_next_timeout():
    """The first unacknowledged item (the gap the receiver waits on) is resent at every timeout."""
    tx = LinkSender("w", epoch=1, window=1000, max_batch=10, rto_s=0.25)
    rx = LinkReceiver()
    for k in range(4):  # four batches sent by four polls, 1/64 s apart; the first is lost, the others held
        tx.submit_many(bytes([i]) for i in range(10))
        (b,) = tx.due(k / 64)
        if k:
            assert rx.on_batch(b) == ([], LinkAck("w", 1, 0))
    resends: list[tuple[float, int]] = []
    t = 0.0
    while t < 1.0:  # every resend is lost
        t += 1 / 64
        resends += [(t, b.first_seq) for b in tx.due(t)]
    assert resends[0] == (0.25, 1)
    # The gap (seq 1) is due again at most one backed-off timeout (0.5 s) after its resend, not only
    # after 11, 21 and 31 (held by the receiver) each had a timeout of their own (2.25 s, before the fix).
    assert any(seq == 1 and at <= 0.75 for at, seq in resends[1:]), resends


def test_an_ack_covering_a_resent_item_takes_no_rtt_sample():
    """An ack that covers a retransmitted item measures the loss recovery, not the round trip: no sample."""
    tx = LinkSender("w", epoch=1, window=1000, max_batch=10, rto_s=0.25)
    rx = LinkReceiver()
    tx.submit_many(bytes(1) for _ in range(10))
    (lost,) = tx.due(0.0)
    tx.submit_many(bytes(1) for _ in range(10))
    (held,) = tx.due(1 / 64)
    assert rx.on_batch(held) == ([], LinkAck("w", 1, 0))
    (resent,) = tx.due(0.25)
    assert resent.first_seq == 1
    _, ack = rx.on_batch(resent)
    tx.on_ack(ack, 0.25 + 1 / 64)  # the round trip is ~0; item 20 (sent once) waited 0.25 s for the gap
    assert tx.idle
    assert tx.rto_s == 0.25  # not 0.75: the recovery time, 0.25, is no round trip
