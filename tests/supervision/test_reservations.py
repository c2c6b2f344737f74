"""No entry reservation outlives its order: approvals that die in a failure release what they reserved."""

from __future__ import annotations

from arbor.messages import ActionApproved, MandateKind, PoisonMessageQuarantined, ReleaseSymbol, SymbolQuarantined

from tests.supervision.helpers import cluster_with, timeline

APPROVAL_CRASH = {"actor": "BTCUSDT/position", "on_message": 1, "message_type": "ActionApproved"}


def _btc_reservations(c) -> list[str]:
    return [r.action_id for r in c.logic("risk").book.reservations() if r.symbol == "BTCUSDT"]


def test_poison_entry_approval_releases_its_reservation() -> None:
    """An ENTRY approval set aside as poison is answered as not applicable: Risk keeps no reservation for it."""
    c = cluster_with([APPROVAL_CRASH, APPROVAL_CRASH])  # the second spec fires on the retry: poison
    poison: list[PoisonMessageQuarantined] = []
    c.run_for(200)  # the first BTCUSDT entry is decided at about 217 s
    for _ in range(1000):  # until the poison, and no further: a later entry would sweep reservations
        c.run_for(0.1)
        poison = [m for m in timeline(c) if isinstance(m, PoisonMessageQuarantined) and m.symbol == "BTCUSDT"]
        if poison:
            break
    assert poison and poison[0].message_tag == "ActionApproved.v1"
    first = next(m for m in timeline(c) if isinstance(m, ActionApproved) and m.symbol == "BTCUSDT")
    assert first.action.kind is MandateKind.ENTRY
    assert first.action.action_id not in _btc_reservations(c)


def test_entry_approval_dropped_by_quarantine_releases_its_reservation() -> None:
    """An ENTRY approval whose crash quarantines the symbol is released on the operator's release, not kept forever."""
    c = cluster_with([APPROVAL_CRASH], supervision={"intensity": 0, "period_s": 60})
    c.run_for(300)
    assert [m for m in timeline(c) if isinstance(m, SymbolQuarantined) and m.symbol == "BTCUSDT"]
    first = next(m for m in timeline(c) if isinstance(m, ActionApproved) and m.symbol == "BTCUSDT")
    c.runtime.send_now("BTCUSDT/supervisor", ReleaseSymbol(symbol="BTCUSDT", who="ops", reason="fixed"))
    c.run_for(30)
    assert first.action.action_id not in _btc_reservations(c)
