"""PositionLogic under any sequence of actions and venue answers a venue could legally send."""

from __future__ import annotations

import itertools
from decimal import Decimal
from fractions import Fraction

import attrs
from arbor.actors.position import PositionLogic, PositionSnapshot
from arbor.actors.testing import make_ctx
from arbor.messages import (
    Action,
    ActionApproved,
    ActionNotApplicable,
    CancelOrder,
    Direction,
    MandateKind,
    OrderCanceled,
    OrderFilled,
    OrderRejected,
    PositionChanged,
    PositionState,
    Side,
    SubmitOrder,
)
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

SYM = "ETHUSDT"
LOT = Decimal("0.001")
TICK = Decimal("0.01")
ORDER_STATES = {PositionState.ENTERING, PositionState.REDUCING, PositionState.CLOSING}


def _sign(side: Side) -> int:
    return 1 if side is Side.BUY else -1


class PositionMachine(RuleBasedStateMachine):
    """Drives a PositionLogic and keeps an independent model of its orders and books."""

    def __init__(self) -> None:
        super().__init__()
        self.pos = PositionLogic(make_ctx(actor_id=f"{SYM}/position", symbol=SYM))
        self.ids = itertools.count()
        self.live: dict | None = None  # the order the venue knows: action_id, side, qty, filled
        # Independent books in exact fractions: signed quantity, average cost, realized PnL.
        self.signed_qty = Fraction(0)
        self.avg = Fraction(0)
        self.pnl = Fraction(0)
        self.cash = Fraction(0)  # -sum(signed fill qty * price): equals PnL whenever flat
        self.fees = Decimal("0")

    # -- driving ------------------------------------------------------------------------------
    def _run(self, handler, msg) -> list:
        before = self.pos.snapshot()
        out = handler(msg)
        after = self.pos.snapshot()
        changed = [m for m in out if isinstance(m, PositionChanged)]
        moved = (before.state, before.qty) != (after.state, after.qty)
        assert len(changed) == (1 if moved else 0), (before, after, out)
        for c in changed:
            assert (c.state, c.direction, c.qty, c.avg_entry_price, c.realized_pnl, c.fees) == (
                after.state,
                after.direction,
                after.qty,
                after.avg_entry_price,
                after.realized_pnl,
                after.fees,
            )
        return out

    @rule(
        kind=st.sampled_from([MandateKind.ENTRY, MandateKind.REDUCE, MandateKind.EXIT, MandateKind.HOLD, MandateKind.BLOCK]),
        direction=st.sampled_from([Direction.LONG, Direction.SHORT, None]),
        lots=st.integers(0, 40),
    )
    def approve(self, kind, direction, lots):
        action_id = f"a{next(self.ids)}"
        action = Action(
            action_id=action_id,
            symbol=SYM,
            cycle=0,
            kind=kind,
            direction=direction,
            qty=lots * LOT,
            mark_price=Decimal("100"),
            data_ts_ns=0,
            ts_event_ns=0,
            reason="prop",
        )
        out = self._run(self.pos.on_action_approved, ActionApproved(symbol=SYM, action=action, ts_event_ns=0))
        for m in out:
            assert isinstance(m, (SubmitOrder, CancelOrder, PositionChanged, ActionNotApplicable))
            if isinstance(m, SubmitOrder):
                assert self.live is None, "a second live order"
                assert m.qty > 0 and m.reduce_only == (kind is not MandateKind.ENTRY)
                self.live = {"action_id": m.action_id, "side": m.side, "qty": m.qty, "filled": Decimal("0")}
            if isinstance(m, CancelOrder):
                assert self.live is not None and m.action_id == self.live["action_id"]

    @precondition(lambda self: self.live is not None)
    @rule(data=st.data(), price_ticks=st.integers(1, 500_000), fee_ticks=st.integers(-5, 50))
    def fill(self, data, price_ticks, fee_ticks):
        live = self.live
        remaining_lots = int((live["qty"] - live["filled"]) / LOT)
        qty = data.draw(st.integers(1, remaining_lots), label="fill_lots") * LOT
        price, fee = price_ticks * TICK, fee_ticks * TICK / 100
        live["filled"] += qty
        leaves = live["qty"] - live["filled"]
        msg = OrderFilled(
            symbol=SYM,
            client_order_id="c",
            venue_order_id="v",
            fill_id=f"f{next(self.ids)}",
            side=live["side"],
            qty=qty,
            price=price,
            fee=fee,
            is_maker=False,
            cum_qty=live["filled"],
            leaves_qty=leaves,
            ts_event_ns=0,
            action_id=live["action_id"],
        )
        self._book(live["side"], Fraction(qty), Fraction(price))
        self.fees += fee
        if leaves == 0:
            self.live = None
        self._run(self.pos.on_order_filled, msg)

    @precondition(lambda self: self.live is not None and self.live["filled"] == 0)
    @rule()
    def reject(self):
        msg = OrderRejected(symbol=SYM, client_order_id="c", reason="venue", ts_event_ns=0, action_id=self.live["action_id"])
        self.live = None
        self._run(self.pos.on_order_rejected, msg)

    @precondition(lambda self: self.live is not None)
    @rule()
    def cancel(self):
        live = self.live
        msg = OrderCanceled(
            symbol=SYM, client_order_id="c", filled_qty=live["filled"], reason="venue", ts_event_ns=0, action_id=live["action_id"]
        )
        self.live = None
        self._run(self.pos.on_order_canceled, msg)

    def _book(self, side: Side, qty: Fraction, price: Fraction) -> None:
        signed = qty * _sign(side)
        self.cash -= signed * price
        if self.signed_qty == 0 or (self.signed_qty > 0) == (signed > 0):
            new = self.signed_qty + signed
            self.avg = (self.avg * abs(self.signed_qty) + price * qty) / abs(new)
            self.signed_qty = new
        else:
            self.pnl += (price - self.avg) * qty * (1 if self.signed_qty > 0 else -1)
            self.signed_qty += signed
            assert self.signed_qty == 0 or (self.signed_qty > 0) == (signed < 0), "a reduce flipped the position"

    # -- properties ---------------------------------------------------------------------------
    @invariant()
    def snapshot_is_valid_and_rebuildable(self):
        snap = self.pos.snapshot()
        assert PositionSnapshot(**attrs.asdict(snap, recurse=False)) == snap
        assert snap.qty >= 0

    @invariant()
    def qty_is_signed_sum_of_fills(self):
        assert Fraction(self.pos.snapshot().signed_qty) == self.signed_qty

    @invariant()
    def live_order_matches_model(self):
        snap = self.pos.snapshot()
        if self.live is None:
            assert snap.order_qty is None and snap.state in (PositionState.FLAT, PositionState.OPEN)
        else:
            assert snap.state in ORDER_STATES and snap.action_id == self.live["action_id"]
            assert (snap.order_qty, snap.order_filled) == (self.live["qty"], self.live["filled"])

    @invariant()
    def pnl_and_fees_match_independent_books(self):
        snap = self.pos.snapshot()
        assert snap.fees == self.fees
        # Decimal keeps 28 significant digits in the average price; fractions are exact.
        assert abs(Fraction(snap.realized_pnl) - self.pnl) < Fraction(1, 10**9)
        if snap.state is PositionState.FLAT:
            assert abs(Fraction(snap.realized_pnl) - self.cash) < Fraction(1, 10**9)


TestPositionMachine = PositionMachine.TestCase
