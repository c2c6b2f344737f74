"""Which worker hosts which symbol: a stable, documented rule.

Rendezvous (highest-random-weight) hashing: symbol ``S`` goes to the slot ``k`` in ``0..N-1``
with the largest ``blake2b(f"{S}|worker-{k}")`` (8 bytes, big-endian). It depends only on the
symbol and the number of slots (never on Python's randomized ``hash()``, the order of the
config or the host), and when a slot is added only the symbols that move to the new slot move.
A ``[cluster.placement]`` table (``SYMBOL = slot``) overrides the rule for the symbols it names.
``assign`` bounds each slot's count (see there), so a few symbols are split evenly too.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping


def slot_weight(symbol: str, slot: int) -> int:
    return int.from_bytes(hashlib.blake2b(f"{symbol}|worker-{slot}".encode(), digest_size=8).digest(), "big")


def slot_of(symbol: str, slots: int, table: Mapping[str, int] | None = None) -> int:
    """The slot of ``symbol`` among ``slots`` workers (the table first, then rendezvous hashing)."""
    if slots < 1:
        raise ValueError("at least one worker slot is needed")
    if table and symbol in table:
        slot = int(table[symbol])
        if not 0 <= slot < slots:
            raise ValueError(f"placement of {symbol}: slot {slot} is not in 0..{slots - 1}")
        return slot
    return max(range(slots), key=lambda k: (slot_weight(symbol, k), -k))


def assign(symbols: Iterable[str], slots: int, table: Mapping[str, int] | None = None) -> dict[int, tuple[str, ...]]:
    """Every slot (possibly with no symbol) and its symbols, in config order.

    Balanced by count (bounded-load rendezvous): no slot takes more than ``ceil(n / slots)``
    symbols. Symbols the table pins are placed first (and count, even past the bound); then, in
    name order, each takes the slot of its rendezvous ranking (``slot_of``'s order) that still has
    room. With many symbols most land where ``slot_of`` says; with few (4 on 2 slots) the
    split is even, where pure hashing is lopsided with probability 5/8.
    """
    if slots < 1:
        raise ValueError("at least one worker slot is needed")
    names = list(dict.fromkeys(symbols))
    cap = -(-len(names) // slots)
    where: dict[str, int] = {}
    load = [0] * slots
    for s in names:
        if table and s in table:
            where[s] = slot_of(s, slots, table)
            load[where[s]] += 1
    for s in sorted(n for n in names if n not in where):
        ranked = sorted(range(slots), key=lambda k: (-slot_weight(s, k), k))
        k = next((k for k in ranked if load[k] < cap), ranked[0])
        where[s] = k
        load[k] += 1
    out: dict[int, list[str]] = {k: [] for k in range(slots)}
    for s in names:
        out[where[s]].append(s)
    return {k: tuple(v) for k, v in out.items()}
