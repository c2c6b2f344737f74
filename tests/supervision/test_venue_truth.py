"""Venue truth (acks, fills, cancels, rejects) survives quarantine, release and restarts."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from arbor.messages import OrderFilled, ReconciliationCompleted, ReleaseSymbol, SymbolQuarantined, SymbolRecovered

from tests.supervision.helpers import cluster_with, timeline

FILL_CRASH = {"actor": "BTCUSDT/position", "on_message": 2, "message_type": "OrderFilled"}


def _venue_qty(c: Any) -> Decimal:
    return c.logic("BTCUSDT/venue").venue_position().qty


def _position_qty(c: Any) -> Decimal:
    return c.logic("BTCUSDT/position").snapshot().signed_qty


def _risk_qty(c: Any) -> Decimal:
    book = c.logic("risk").book.get("BTCUSDT")
    return book.qty * (book.direction.sign if book.direction else 0)


def _quarantined_on_fill() -> Any:
    c = cluster_with([FILL_CRASH], supervision={"intensity": 0, "period_s": 60})
    c.run_for(300)
    assert [m for m in timeline(c) if isinstance(m, SymbolQuarantined) and m.symbol == "BTCUSDT"]
    return c


def test_fill_that_trips_quarantine_is_applied_after_release() -> None:
    """A fill whose crash quarantines the symbol is held, and Position, Risk and the venue agree once released."""
    c = _quarantined_on_fill()
    c.runtime.send_now("BTCUSDT/supervisor", ReleaseSymbol(symbol="BTCUSDT", who="ops", reason="fixed"))
    c.run_for(60)
    assert _position_qty(c) == _venue_qty(c) == _risk_qty(c)
    assert [m for m in timeline(c) if isinstance(m, SymbolRecovered) and m.symbol == "BTCUSDT"]


def test_fills_are_held_not_dropped_while_quarantined() -> None:
    """The fill that crashed Position waits in its mailbox while the symbol is quarantined."""
    c = _quarantined_on_fill()
    held = c.runtime.dispatcher.mailbox("BTCUSDT/position")
    assert any(isinstance(e.payload, OrderFilled) for e in held)


def test_poison_fill_is_not_reported_as_agreement() -> None:
    """A fill set aside as poison leaves Position off the venue: reconciliation says so instead of "agree"."""
    faults = [FILL_CRASH, FILL_CRASH]  # the second spec counts from the retry on: it crashes too, poison
    c = cluster_with(faults)
    c.run_for(300)
    done = [m for m in timeline(c) if isinstance(m, ReconciliationCompleted) and m.symbol == "BTCUSDT"]
    assert done[-1].outcome == "DRIFT_UNRESOLVED"
    assert c.logic("risk").controls.kill.engaged
