"""Symbol placement: a stable rendezvous-hash rule with a config override."""

from __future__ import annotations

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
