"""Risk's entry reservations never outlive their orders, across recovery and restore."""

from __future__ import annotations

from decimal import Decimal as D

from arbor.actors.risk import RiskConfig, RiskLogic
from arbor.actors.testing import ManualClock, make_ctx
from arbor.messages import (
    Action,
    ActionApproved,
    Direction,
    MandateKind,
    PositionChanged,
    PositionState,
    SymbolRecovered,
)

T0 = 1_700_000_000_000_000_000
SYMBOLS = ("BTCUSDT", "ETHUSDT")


def _risk() -> RiskLogic:
    return RiskLogic(make_ctx("risk", "", ManualClock(T0)), RiskConfig(), SYMBOLS)


def _approve(r: RiskLogic, symbol: str, n: int) -> str:
    action = Action(action_id=f"run:{symbol}:{n}", symbol=symbol, cycle=n, kind=MandateKind.ENTRY, direction=Direction.LONG,
                    qty=D("0.1"), mark_price=D("50000"), data_ts_ns=T0, ts_event_ns=T0, reason="t")
    out = r.handle(action)
    assert out is not None and any(isinstance(m, ActionApproved) for m in out)
    return action.action_id


def _entering(symbol: str, action_id: str) -> PositionChanged:
    return PositionChanged(symbol=symbol, state=PositionState.ENTERING, direction=Direction.LONG, qty=D("0"),
                           avg_entry_price=None, realized_pnl=D("0"), fees=D("0"), ts_event_ns=T0, action_id=action_id)


def test_restored_risk_keeps_no_reservation_without_an_entering_position() -> None:
    """A stored reservation whose symbol shows no ENTERING position is not restored: its order died with the process."""
    r = _risk()
    _approve(r, "ETHUSDT", 1)
    fresh = _risk()
    fresh.restore(r.snapshot())
    assert fresh.book.reservations() == ()


def test_restored_risk_keeps_the_reservation_of_an_entering_position() -> None:
    """A reservation backed by an ENTERING position is restored: its order may still fill."""
    r = _risk()
    aid = _approve(r, "ETHUSDT", 1)
    r.handle(_entering("ETHUSDT", aid))
    fresh = _risk()
    fresh.restore(r.snapshot())
    assert [res.action_id for res in fresh.book.reservations()] == [aid]


def test_recovered_symbol_releases_reservations_no_entry_backs() -> None:
    """SymbolRecovered releases the symbol's reservations when its position is not ENTERING."""
    r = _risk()
    _approve(r, "ETHUSDT", 1)
    r.handle(SymbolRecovered(symbol="ETHUSDT", ts_event_ns=T0))
    assert r.book.reservations() == ()
