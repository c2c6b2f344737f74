"""End to end on the simulated venue, in the deterministic runtime (bounded in simulated time)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from arbor.actors.cluster.simulate import SimulatedCluster
from arbor.config.settings import load_settings
from arbor.messages import (
    ActionApproved,
    ActionDenied,
    CancelOpenOrders,
    Direction,
    EngageKillSwitch,
    MandateKind,
    OrderCanceled,
    OrderFilled,
    OrderIntent,
    PlaceOrder,
    RequestCancel,
    Side,
    SubmitOrder,
)

SECONDS = 900


@pytest.fixture(scope="module")
def cluster() -> SimulatedCluster:
    c = SimulatedCluster(load_settings())
    c.run_for(SECONDS)
    return c


def venue_fills(c: SimulatedCluster, symbol: str) -> list[OrderFilled]:
    return [f for f in c.recorder.of_type(OrderFilled, "/venue") if f.symbol == symbol]


def test_orders_are_placed_and_filled(cluster: SimulatedCluster) -> None:
    """Within the bounded run the strategies trade: orders reach the venue and get filled."""
    assert cluster.recorder.of_type(PlaceOrder)
    assert cluster.recorder.of_type(OrderFilled, "/venue")


def test_both_directions_trade(cluster: SimulatedCluster) -> None:
    """Entries go both LONG and SHORT (direction is carried from mandate to order)."""
    sides = {a.action.direction for a in cluster.recorder.of_type(ActionApproved) if a.action.kind is MandateKind.ENTRY}
    assert sides == {Direction.LONG, Direction.SHORT}


def test_positions_equal_sum_of_fills(cluster: SimulatedCluster) -> None:
    """Every symbol's position (ours and the venue's) equals the signed sum of its fills."""
    for s in cluster.settings.symbols:
        fills = venue_fills(cluster, s.symbol)
        signed = sum((f.qty if f.side is Side.BUY else -f.qty for f in fills), Decimal(0))
        snap = cluster.logic(f"{s.symbol}/position").snapshot()
        ours = snap.qty * (snap.direction.sign if snap.direction else 0)
        assert ours == signed, s.symbol
        assert cluster.logic(f"{s.symbol}/venue").venue_position().qty == signed, s.symbol


def test_pnl_consistent_with_fills_and_fees(cluster: SimulatedCluster) -> None:
    """Realized PnL and fees recomputed from the fills (average cost) equal the position's."""
    for s in cluster.settings.symbols:
        qty = Decimal(0)  # signed
        avg = Decimal(0)
        realized = Decimal(0)
        fees = Decimal(0)
        for f in venue_fills(cluster, s.symbol):
            d = f.qty if f.side is Side.BUY else -f.qty
            fees += f.fee
            if qty == 0 or (qty > 0) == (d > 0):
                avg = (avg * abs(qty) + f.price * f.qty) / (abs(qty) + f.qty)
                qty += d
            else:
                closed = min(abs(d), abs(qty))
                realized += (f.price - avg) * closed * (1 if qty > 0 else -1)
                qty += d
                if qty == 0:
                    avg = Decimal(0)
        snap = cluster.logic(f"{s.symbol}/position").snapshot()
        assert snap.fees == fees, s.symbol
        assert abs(snap.realized_pnl - realized) < Decimal("1e-6"), s.symbol


def test_one_action_per_symbol_per_cycle(cluster: SimulatedCluster) -> None:
    """The arbitrator never emits two actions for the same symbol and cycle."""
    from arbor.messages import Action

    keys = [(a.symbol, a.cycle) for a in cluster.recorder.of_type(Action)]
    assert keys and len(keys) == len(set(keys))


def test_risk_denies_entries_past_symbol_limit() -> None:
    """With a per-symbol notional cap below any entry size, every entry is denied and none is sent."""
    c = SimulatedCluster(load_settings({"risk": {"max_symbol_notional": "500"}}))
    c.run_for(SECONDS)
    denied = c.recorder.of_type(ActionDenied)
    assert denied and all(d.reason == "max_symbol_notional" for d in denied if d.action.kind is MandateKind.ENTRY)
    assert not [s for s in c.recorder.of_type(SubmitOrder) if s.intent is OrderIntent.ENTRY]
    assert not c.recorder.of_type(PlaceOrder)


def test_kill_switch_stops_entries_and_cancels_open_orders() -> None:
    """Engaging the kill switch cancels resting entry orders and no entry is approved afterwards."""
    c = SimulatedCluster(load_settings({"position": {"entry_order_type": "LIMIT"}}))
    live: list[str] = []
    for _ in range(SECONDS):
        c.run_for(1)
        live = [s.symbol for s in c.settings.symbols
                if any(o.status.value == "NEW" for o in c.logic(f"{s.symbol}/executor").open_orders())]
        if live:
            break
    assert live, "no entry order was ever live"
    mark = len(c.recorder.emitted_log)
    c.runtime.send_now("risk", EngageKillSwitch(who="test", reason="drill"))
    c.run_for(120)
    after = [e.payload for e, _ in c.recorder.emitted_log[mark:]]
    cancels = {m.symbol for m in after if isinstance(m, CancelOpenOrders)}
    assert cancels == {s.symbol for s in c.settings.symbols}
    assert {m.symbol for m in after if isinstance(m, RequestCancel)} >= set(live)
    assert {m.symbol for m in after if isinstance(m, OrderCanceled)} >= set(live)
    assert not [m for m in after if isinstance(m, ActionApproved) and m.action.kind is MandateKind.ENTRY]
    assert not [m for m in after if isinstance(m, SubmitOrder) and m.intent is OrderIntent.ENTRY]
    for s in live:
        assert not c.logic(f"{s}/executor").open_orders()


def test_same_seed_same_decisions() -> None:
    """Two deterministic runs with the same settings produce identical decision streams."""
    def decisions() -> list:
        c = SimulatedCluster(load_settings())
        c.run_for(300)
        return [e.payload for e, _ in c.recorder.emitted_log if type(e.payload).__name__ in ("Action", "ActionApproved", "ActionDenied", "PlaceOrder", "OrderFilled")]

    assert decisions() == decisions()
