"""Symbol placement: a stable rendezvous-hash rule with a config override."""

from __future__ import annotations

import itertools

from arbor.actors.distributed.placement import assign, slot_of, slot_weight

SYMBOLS = [f"SYM{i}USDT" for i in range(40)]


def test_rule_is_the_documented_rendezvous_hash():
    """A symbol goes to the slot with the highest blake2b weight."""
    for s in SYMBOLS:
        assert slot_of(s, 3) == max(range(3), key=lambda k: slot_weight(s, k))


def test_assignment_is_stable_and_spreads_symbols():
    """Same inputs, same placement; every slot gets symbols; config order does not matter."""
    a = assign(SYMBOLS, 2)
    assert a == assign(SYMBOLS, 2)
    assert all(a[k] for k in a)
    assert {s: k for k, v in assign(list(reversed(SYMBOLS)), 2).items() for s in v} == {s: k for k, v in a.items() for s in v}


def test_adding_a_slot_moves_only_symbols_to_the_new_slot():
    """Going from 2 to 3 workers, a symbol either stays or moves to worker 2."""
    for s in SYMBOLS:
        before, after = slot_of(s, 2), slot_of(s, 3)
        assert after == before or after == 2


def test_placement_table_overrides_the_rule():
    """A [cluster.placement] entry pins a symbol to a slot."""
    s = SYMBOLS[0]
    other = 1 - slot_of(s, 2)
    assert slot_of(s, 2, {s: other}) == other


def test_four_symbols_on_two_workers_split_two_and_two():
    """Small symbol counts are balanced by count: every 4 of the 40 symbols land 2/2 on 2 slots."""
    for four in itertools.combinations(SYMBOLS[:10], 4):
        a = assign(four, 2)
        assert sorted(len(v) for v in a.values()) == [2, 2], a
    assert sorted(len(v) for v in assign(["BTCUSDT", "ETHUSDT", "SOLUSDT", "BNBUSDT"], 2).values()) == [2, 2]


def test_no_slot_takes_more_than_its_share_and_pins_still_hold():
    """At most ceil(n / slots) symbols per slot (7 on 3: 3/2/2); a pinned symbol stays on its slot."""
    a = assign(SYMBOLS[:7], 3)
    assert max(len(v) for v in a.values()) == 3 and sum(len(v) for v in a.values()) == 7
    pinned = assign(SYMBOLS[:4], 2, {SYMBOLS[0]: 1, SYMBOLS[1]: 1})
    assert set(pinned[1]) >= {SYMBOLS[0], SYMBOLS[1]} and sorted(len(v) for v in pinned.values()) == [2, 2]
