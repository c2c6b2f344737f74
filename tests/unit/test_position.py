"""PositionLogic: the state machine, its invariants and its accounting."""

from __future__ import annotations

import itertools
from decimal import Decimal as D

import attrs
import pytest
from arbor.actors.position import (
    LEGAL_TRANSITIONS,
    IllegalTransition,
    InvariantViolation,
    PositionLogic,
    PositionSnapshot,
    UnexpectedFill,
    check_transition,
)
from arbor.actors.testing import ManualClock, make_ctx
from arbor.messages import (
    Action,
    ActionApproved,
    ActionNotApplicable,
    AnnounceState,
    CancelOrder,
    Direction,
    MandateKind,
    OrderAccepted,
    OrderCanceled,
    OrderFilled,
    OrderIntent,
    OrderRejected,
    OrderType,
    PositionChanged,
    PositionState,
    Side,
    SubmitOrder,
)

SYM = "BTCUSDT"
LONG, SHORT = Direction.LONG, Direction.SHORT
FLAT, ENTERING, OPEN, REDUCING, CLOSING = (
    PositionState.FLAT,
    PositionState.ENTERING,
    PositionState.OPEN,
    PositionState.REDUCING,
    PositionState.CLOSING,
)
_fill_seq = itertools.count()


def new_position() -> PositionLogic:
    return PositionLogic(make_ctx(actor_id=f"{SYM}/position", symbol=SYM, clock=ManualClock(1_000)))


def approve(kind: MandateKind, action_id: str, qty: str = "0", direction: Direction | None = None) -> ActionApproved:
    action = Action(
        action_id=action_id,
        symbol=SYM,
        cycle=1,
        kind=kind,
        direction=direction,
        qty=D(qty),
        mark_price=D("100"),
        data_ts_ns=0,
        ts_event_ns=0,
        reason="test",
    )
    return ActionApproved(symbol=SYM, action=action, ts_event_ns=0)


def fill(action_id: str, side: Side, qty: str, price: str, fee: str = "0", leaves: str = "1") -> OrderFilled:
    return OrderFilled(
        symbol=SYM,
        client_order_id="c",
        venue_order_id="v",
        fill_id=f"f{next(_fill_seq)}",
        side=side,
        qty=D(qty),
        price=D(price),
        fee=D(fee),
        is_maker=False,
        cum_qty=D(qty),
        leaves_qty=D(leaves),
        ts_event_ns=0,
        action_id=action_id,
    )


def rejected(action_id: str) -> OrderRejected:
    return OrderRejected(symbol=SYM, client_order_id="c", reason="insufficient_margin", ts_event_ns=0, action_id=action_id)


def canceled(action_id: str, filled: str = "0") -> OrderCanceled:
    return OrderCanceled(symbol=SYM, client_order_id="c", filled_qty=D(filled), reason="user", ts_event_ns=0, action_id=action_id)


def changes(out: list) -> list[PositionChanged]:
    return [m for m in out if isinstance(m, PositionChanged)]


def opened(direction: Direction = LONG, qty: str = "2", price: str = "100") -> PositionLogic:
    pos = new_position()
    pos.on_action_approved(approve(MandateKind.ENTRY, "e1", qty, direction))
    pos.on_order_filled(fill("e1", Side.opening(direction), qty, price, leaves="0"))
    return pos


# -- the transition table ------------------------------------------------------------------


def test_transition_table_is_exactly_the_documented_edges():
    """The legal edges are exactly those of the documented state machine."""
    assert {
        (FLAT, ENTERING),
        (ENTERING, OPEN),
        (ENTERING, FLAT),
        (OPEN, REDUCING),
        (OPEN, CLOSING),
        (REDUCING, OPEN),
        (REDUCING, FLAT),
        (REDUCING, CLOSING),
        (CLOSING, FLAT),
        (CLOSING, OPEN),
    } == LEGAL_TRANSITIONS


@pytest.mark.parametrize(
    "old,new", [(a, b) for a in PositionState for b in PositionState if (a, b) not in LEGAL_TRANSITIONS]
)
def test_every_illegal_transition_raises(old, new):
    """Every pair of states outside the table raises IllegalTransition."""
    with pytest.raises(IllegalTransition):
        check_transition(old, new)


def test_flat_to_entering_on_entry():
    """An approved ENTRY while FLAT submits a market entry order and moves to ENTERING."""
    pos = new_position()
    out = pos.on_action_approved(approve(MandateKind.ENTRY, "e1", "0.5", LONG))
    assert out[0] == SubmitOrder(
        symbol=SYM,
        action_id="e1",
        intent=OrderIntent.ENTRY,
        side=Side.BUY,
        qty=D("0.5"),
        order_type=OrderType.MARKET,
        limit_price=None,
        reduce_only=False,
        ts_event_ns=1_000,
    )
    assert [(c.state, c.direction, c.qty, c.action_id) for c in changes(out)] == [(ENTERING, LONG, D("0"), "e1")]
    assert pos.snapshot().state is ENTERING


def test_entering_to_open_on_full_fill():
    """ENTERING becomes OPEN when the entry order is completely filled."""
    pos = new_position()
    pos.on_action_approved(approve(MandateKind.ENTRY, "e1", "1", LONG))
    out = pos.on_order_filled(fill("e1", Side.BUY, "1", "100", leaves="0"))
    assert [(c.state, c.qty, c.avg_entry_price) for c in changes(out)] == [(OPEN, D("1"), D("100"))]


def test_entering_to_flat_on_reject():
    """A rejected entry with nothing filled returns to FLAT."""
    pos = new_position()
    pos.on_action_approved(approve(MandateKind.ENTRY, "e1", "1", LONG))
    out = pos.on_order_rejected(rejected("e1"))
    assert [(c.state, c.direction, c.qty) for c in changes(out)] == [(FLAT, None, D("0"))]


def test_entering_to_flat_on_cancel():
    """A canceled entry with nothing filled returns to FLAT."""
    pos = new_position()
    pos.on_action_approved(approve(MandateKind.ENTRY, "e1", "1", SHORT))
    out = pos.on_order_canceled(canceled("e1"))
    assert changes(out)[0].state is FLAT and pos.snapshot() == PositionSnapshot(state=FLAT, action_id="e1")


def test_entering_to_open_on_cancel_after_partial_fill():
    """A canceled entry that was partly filled leaves the filled part OPEN."""
    pos = new_position()
    pos.on_action_approved(approve(MandateKind.ENTRY, "e1", "1", LONG))
    pos.on_order_filled(fill("e1", Side.BUY, "0.4", "100"))
    out = pos.on_order_canceled(canceled("e1", "0.4"))
    assert [(c.state, c.qty) for c in changes(out)] == [(OPEN, D("0.4"))]


def test_open_to_reducing_on_reduce():
    """An approved REDUCE while OPEN submits a reduce-only order capped at the open quantity."""
    pos = opened(qty="2")
    out = pos.on_action_approved(approve(MandateKind.REDUCE, "r1", "5"))
    order = out[0]
    assert (order.intent, order.side, order.qty, order.reduce_only) == (OrderIntent.REDUCE, Side.SELL, D("2"), True)
    assert changes(out)[0].state is REDUCING


def test_reducing_to_open_when_quantity_is_left():
    """A completed reduce order that leaves quantity returns to OPEN."""
    pos = opened(qty="2")
    pos.on_action_approved(approve(MandateKind.REDUCE, "r1", "0.5"))
    out = pos.on_order_filled(fill("r1", Side.SELL, "0.5", "110", leaves="0"))
    assert [(c.state, c.qty) for c in changes(out)] == [(OPEN, D("1.5"))]


def test_reducing_to_flat_when_quantity_reaches_zero():
    """A reduce order that takes the quantity to zero ends FLAT."""
    pos = opened(qty="2")
    pos.on_action_approved(approve(MandateKind.REDUCE, "r1", "2"))
    out = pos.on_order_filled(fill("r1", Side.SELL, "2", "110", leaves="0"))
    assert [(c.state, c.direction, c.qty, c.avg_entry_price) for c in changes(out)] == [(FLAT, None, D("0"), None)]


def test_reducing_to_open_on_reject():
    """A rejected reduce order returns to OPEN with the quantity unchanged."""
    pos = opened(qty="2")
    pos.on_action_approved(approve(MandateKind.REDUCE, "r1", "1"))
    out = pos.on_order_rejected(rejected("r1"))
    assert [(c.state, c.qty) for c in changes(out)] == [(OPEN, D("2"))]


def test_reducing_to_closing_when_exit_adopts_a_flattening_reduce():
    """An EXIT during a reduce that already takes the position to zero turns it into the close, with no new order."""
    pos = opened(qty="2")
    pos.on_action_approved(approve(MandateKind.REDUCE, "r1", "2"))
    out = pos.on_action_approved(approve(MandateKind.EXIT, "x1"))
    assert [type(m) for m in out] == [PositionChanged] and out[0].state is CLOSING
    assert pos.snapshot().action_id == "r1"


def test_exit_during_partial_reduce_cancels_the_reduce():
    """An EXIT during a reduce that leaves quantity cancels the reduce order and stays REDUCING."""
    pos = opened(qty="2")
    pos.on_action_approved(approve(MandateKind.REDUCE, "r1", "1"))
    out = pos.on_action_approved(approve(MandateKind.EXIT, "x1"))
    assert out == [CancelOrder(symbol=SYM, action_id="r1", reason="exit:x1", ts_event_ns=1_000)]
    assert pos.snapshot().state is REDUCING


def test_open_to_closing_on_exit():
    """An approved EXIT while OPEN submits a reduce-only order for the full quantity."""
    pos = opened(direction=SHORT, qty="3")
    out = pos.on_action_approved(approve(MandateKind.EXIT, "x1"))
    order = out[0]
    assert (order.intent, order.side, order.qty, order.reduce_only) == (OrderIntent.EXIT, Side.BUY, D("3"), True)
    assert changes(out)[0].state is CLOSING


def test_closing_to_flat_on_fill():
    """A filled close order ends FLAT."""
    pos = opened(qty="1")
    pos.on_action_approved(approve(MandateKind.EXIT, "x1"))
    out = pos.on_order_filled(fill("x1", Side.SELL, "1", "90", leaves="0"))
    assert changes(out)[0].state is FLAT


def test_closing_to_open_on_cancel_with_quantity_left():
    """A close order canceled after a partial fill returns to OPEN with the rest."""
    pos = opened(qty="1")
    pos.on_action_approved(approve(MandateKind.EXIT, "x1"))
    pos.on_order_filled(fill("x1", Side.SELL, "0.25", "90"))
    out = pos.on_order_canceled(canceled("x1", "0.25"))
    assert [(c.state, c.qty) for c in changes(out)] == [(OPEN, D("0.75"))]


def test_closing_to_open_when_venue_ends_order_short():
    """A fill with leaves_qty 0 completes the order even when quantity is left, settling on OPEN."""
    pos = opened(qty="1")
    pos.on_action_approved(approve(MandateKind.EXIT, "x1"))
    out = pos.on_order_filled(fill("x1", Side.SELL, "0.5", "90", leaves="0"))
    assert [(c.state, c.qty) for c in changes(out)] == [(OPEN, D("0.5"))]


def test_exit_while_entering_cancels_entry_and_waits():
    """An EXIT during an entry asks to cancel the entry order and stays ENTERING until the venue answers."""
    pos = new_position()
    pos.on_action_approved(approve(MandateKind.ENTRY, "e1", "1", LONG))
    out = pos.on_action_approved(approve(MandateKind.EXIT, "x1"))
    assert out == [CancelOrder(symbol=SYM, action_id="e1", reason="exit:x1", ts_event_ns=1_000)]
    assert pos.snapshot().state is ENTERING


# -- races and bugs ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "setup,kind",
    [
        ("open", MandateKind.ENTRY),
        ("entering", MandateKind.ENTRY),
        ("flat", MandateKind.REDUCE),
        ("entering", MandateKind.REDUCE),
        ("flat", MandateKind.EXIT),
        ("closing", MandateKind.EXIT),
        ("closing", MandateKind.REDUCE),
    ],
)
def test_action_not_applicable_in_state_is_a_message(setup, kind):
    """An approved action that does not fit the current state yields ActionNotApplicable and changes nothing."""
    pos = {"flat": new_position, "open": opened}.get(setup, opened)()
    if setup == "entering":
        pos = new_position()
        pos.on_action_approved(approve(MandateKind.ENTRY, "e1", "1", LONG))
    if setup == "closing":
        pos.on_action_approved(approve(MandateKind.EXIT, "x0"))
    before = pos.snapshot()
    out = pos.on_action_approved(approve(kind, "late", "1", LONG))
    assert out == [ActionNotApplicable(symbol=SYM, action_id="late", kind=kind, state=before.state.value, ts_event_ns=1_000)]
    assert pos.snapshot() == before


@pytest.mark.parametrize("kind", [MandateKind.HOLD, MandateKind.BLOCK])
def test_hold_and_block_do_nothing(kind):
    """HOLD and BLOCK emit nothing and change nothing."""
    pos = opened()
    before = pos.snapshot()
    assert pos.on_action_approved(approve(kind, "h1")) == [] and pos.snapshot() == before


def test_fill_for_another_action_raises():
    """A fill that does not belong to the live order is an inconsistency and raises."""
    pos = new_position()
    pos.on_action_approved(approve(MandateKind.ENTRY, "e1", "1", LONG))
    with pytest.raises(UnexpectedFill):
        pos.on_order_filled(fill("other", Side.BUY, "1", "100"))


def test_fill_without_live_order_raises():
    """A fill while no order is live raises."""
    with pytest.raises(UnexpectedFill):
        opened().on_order_filled(fill("e1", Side.BUY, "1", "100"))


def test_overfill_raises():
    """A fill beyond the order's quantity raises."""
    pos = new_position()
    pos.on_action_approved(approve(MandateKind.ENTRY, "e1", "1", LONG))
    with pytest.raises(UnexpectedFill):
        pos.on_order_filled(fill("e1", Side.BUY, "1.5", "100"))


def test_late_cancel_of_finished_order_is_counted_not_applied():
    """A cancel or reject for an order that is already over changes nothing and is counted."""
    pos = opened()
    before = pos.snapshot()
    assert pos.on_order_canceled(canceled("e1")) == [] and pos.on_order_rejected(rejected("e1")) == []
    assert pos.snapshot() == before and pos.stats()["stale_order_events"] == 2


def test_order_accepted_changes_nothing():
    """An accepted order is recorded only: no output, no state change."""
    pos = new_position()
    pos.on_action_approved(approve(MandateKind.ENTRY, "e1", "1", LONG))
    before = pos.snapshot()
    ack = OrderAccepted(symbol=SYM, client_order_id="c", venue_order_id="v", ts_event_ns=0, action_id="e1")
    assert pos.on_order_accepted(ack) == [] and pos.snapshot() == before


# -- accounting ----------------------------------------------------------------------------


def test_short_entry_sells_and_profits_when_price_falls():
    """A SHORT entry sells to open, buys to close, and realizes (entry - exit) * qty."""
    pos = new_position()
    out = pos.on_action_approved(approve(MandateKind.ENTRY, "e1", "2", SHORT))
    assert out[0].side is Side.SELL
    pos.on_order_filled(fill("e1", Side.SELL, "2", "100", leaves="0"))
    pos.on_action_approved(approve(MandateKind.EXIT, "x1"))
    out = pos.on_order_filled(fill("x1", Side.BUY, "2", "90", leaves="0"))
    assert changes(out)[0].realized_pnl == D("20")


def test_partial_fills_keep_state_and_report_quantity():
    """Each partial fill keeps the state and emits one PositionChanged with the new quantity."""
    pos = new_position()
    pos.on_action_approved(approve(MandateKind.ENTRY, "e1", "1", LONG))
    out1 = pos.on_order_filled(fill("e1", Side.BUY, "0.3", "100"))
    out2 = pos.on_order_filled(fill("e1", Side.BUY, "0.3", "110"))
    assert [(c.state, c.qty) for c in changes(out1) + changes(out2)] == [(ENTERING, D("0.3")), (ENTERING, D("0.6"))]
    assert len(out1) == len(out2) == 1


def test_entry_price_is_quantity_weighted():
    """The average entry price weights each entry fill by its quantity."""
    pos = new_position()
    pos.on_action_approved(approve(MandateKind.ENTRY, "e1", "4", LONG))
    pos.on_order_filled(fill("e1", Side.BUY, "1", "100"))
    pos.on_order_filled(fill("e1", Side.BUY, "3", "120", leaves="0"))
    assert pos.snapshot().avg_entry_price == D("115")


def test_pnl_excludes_fees_which_accumulate_separately():
    """Realized PnL is (exit - avg) * qty * sign; fees of every fill add up on their own."""
    pos = new_position()
    pos.on_action_approved(approve(MandateKind.ENTRY, "e1", "2", LONG))
    pos.on_order_filled(fill("e1", Side.BUY, "2", "100", fee="0.2", leaves="0"))
    pos.on_action_approved(approve(MandateKind.REDUCE, "r1", "1"))
    pos.on_order_filled(fill("r1", Side.SELL, "1", "105", fee="0.1", leaves="0"))
    pos.on_action_approved(approve(MandateKind.EXIT, "x1"))
    pos.on_order_filled(fill("x1", Side.SELL, "1", "97", fee="-0.05", leaves="0"))
    snap = pos.snapshot()
    assert (snap.state, snap.realized_pnl, snap.fees) == (FLAT, D("2"), D("0.25"))
    assert pos.stats()["fills"] == 3


def test_every_change_carries_clock_time_and_cumulative_totals():
    """PositionChanged carries the context clock's time and the cumulative PnL and fees."""
    clock = ManualClock(5_000)
    pos = PositionLogic(make_ctx(symbol=SYM, clock=clock))
    pos.on_action_approved(approve(MandateKind.ENTRY, "e1", "1", LONG))
    clock.set(7_000)
    out = pos.on_order_filled(fill("e1", Side.BUY, "1", "100", fee="0.1", leaves="0"))
    assert (out[0].ts_event_ns, out[0].fees, out[0].cause) == (7_000, D("0.1"), "filled")


# -- snapshot invariants and restore -------------------------------------------------------

_BAD_SNAPSHOTS = {
    "flat with qty": dict(state=FLAT, qty=D("1"), avg_entry_price=D("1")),
    "flat with direction": dict(state=FLAT, direction=LONG),
    "flat with price": dict(state=FLAT, avg_entry_price=D("1")),
    "open without qty": dict(state=OPEN, direction=LONG),
    "open without direction": dict(state=OPEN, qty=D("1"), avg_entry_price=D("1")),
    "negative qty": dict(state=OPEN, direction=LONG, qty=D("-1"), avg_entry_price=D("1")),
    "entering without direction": dict(state=ENTERING, action_id="e", order_qty=D("1")),
    "entering without order": dict(state=ENTERING, direction=LONG, action_id="e"),
    "qty without price": dict(state=OPEN, direction=LONG, qty=D("1")),
    "reducing without qty": dict(state=REDUCING, direction=SHORT, action_id="r", order_qty=D("1")),
    "closing without direction": dict(state=CLOSING, qty=D("1"), avg_entry_price=D("1"), action_id="x", order_qty=D("1")),
    "order overfilled": dict(state=ENTERING, direction=LONG, qty=D("2"), avg_entry_price=D("1"), action_id="e", order_qty=D("1"), order_filled=D("2")),
    "reduce flips position": dict(state=REDUCING, direction=LONG, qty=D("1"), avg_entry_price=D("1"), action_id="r", order_qty=D("2")),
    "open with live order": dict(state=OPEN, direction=LONG, qty=D("1"), avg_entry_price=D("1"), order_qty=D("1")),
}


@pytest.mark.parametrize("fields", list(_BAD_SNAPSHOTS.values()), ids=list(_BAD_SNAPSHOTS))
def test_snapshot_rejects_impossible_positions(fields):
    """A PositionSnapshot that breaks an invariant cannot be constructed."""
    with pytest.raises(InvariantViolation):
        PositionSnapshot(**fields)


def test_snapshot_evolve_is_checked_too():
    """Changing a valid snapshot into an impossible one raises as well."""
    with pytest.raises(InvariantViolation):
        attrs.evolve(PositionSnapshot(state=FLAT), qty=D("1"))


def test_restore_rebuilds_a_position_mid_order():
    """A position restored from a snapshot continues exactly where the original was."""
    original = new_position()
    original.on_action_approved(approve(MandateKind.ENTRY, "e1", "1", SHORT))
    original.on_order_filled(fill("e1", Side.SELL, "0.4", "100"))
    restored = new_position()
    restored.restore(original.snapshot())
    out = restored.on_order_filled(fill("e1", Side.SELL, "0.6", "100", leaves="0"))
    assert [(c.state, c.direction, c.qty) for c in changes(out)] == [(OPEN, SHORT, D("1"))]


def test_announce_state_emits_the_restored_position_as_it_is():
    """AnnounceState makes a restored position a PositionChanged (cause = the reason), changing nothing."""
    pos = new_position()
    stored = PositionSnapshot(state=PositionState.OPEN, direction=Direction.SHORT, qty=D("3"),
                              avg_entry_price=D("101.5"), realized_pnl=D("4"), fees=D("0.5"), action_id="run1:X:7")
    pos.restore(stored)
    (pc,) = changes(pos.handle(AnnounceState(reason="start")))
    assert (pc.state, pc.direction, pc.qty, pc.avg_entry_price, pc.realized_pnl, pc.fees, pc.action_id, pc.cause) == (
        PositionState.OPEN, Direction.SHORT, D("3"), D("101.5"), D("4"), D("0.5"), "run1:X:7", "start")
    assert pos.snapshot() is stored
