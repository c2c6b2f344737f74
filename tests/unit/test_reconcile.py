"""Reconciliation: the comparison, the executor's rounds, and what Position, Risk and the venues do with them."""

from __future__ import annotations

import itertools
from decimal import Decimal as D

import attrs
import pytest
from arbor.actors.executor import ExecutorConfig, ExecutorLogic, client_order_id
from arbor.actors.executor.orders import TrackedOrder
from arbor.actors.executor.reconcile import Outcome, ReconcilePolicy, compare
from arbor.actors.position import PositionLogic
from arbor.actors.position.snapshot import PositionSnapshot
from arbor.actors.risk import RiskConfig, RiskLogic
from arbor.actors.testing import ManualClock, make_ctx
from arbor.adapters.sim import PaperConfig, PaperVenueLogic, ShadowVenueLogic
from arbor.config.errors import ConfigError
from arbor.messages import (
    Action,
    ActionDenied,
    Direction,
    KillSwitchEngaged,
    MandateKind,
    OrderAccepted,
    OrderFilled,
    OrderIntent,
    OrderStatus,
    OrderType,
    PlaceOrder,
    PositionChanged,
    PositionReported,
    PositionState,
    QueryOrder,
    QueryPosition,
    RawMarketEvent,
    Reconcile,
    ReconciliationCompleted,
    RequestCancel,
    Side,
    SubmitOrder,
    TimerTick,
)
from arbor.messages.base import MarketEventKind

SYM = "BTCUSDT"
MS = 1_000_000
T0 = 1_700_000_000_000_000_000
_seq = itertools.count()


def report(qty: str, avg: str | None = "100", open_ids: tuple[str, ...] = (), ts: int = T0) -> PositionReported:
    return PositionReported(symbol=SYM, qty=D(qty), avg_price=D(avg) if avg else None, open_client_order_ids=open_ids,
                            ts_event_ns=ts)


def tracked(coid: str, status: OrderStatus) -> TrackedOrder:
    return TrackedOrder(client_order_id=coid, action_id=coid, intent=OrderIntent.ENTRY, side=Side.BUY, qty=D("1"),
                        order_type=OrderType.MARKET, limit_price=None, reduce_only=False, status=status, sent_ns=0,
                        awaiting_since_ns=0)


def verdict(local: str, rep: PositionReported, orders=(), attempt: int = 0, **policy):
    return compare(local_qty=D(local), orders={o.client_order_id: o for o in orders}, report=rep,
                   policy=ReconcilePolicy(**policy), attempt=attempt)


# -- the comparison ----------------------------------------------------------------------------


def test_agreement_is_none():
    """Equal quantities and no unknown venue orders: NONE."""
    assert verdict("0.5", report("0.5")).outcome is Outcome.NONE


@pytest.mark.parametrize("local, venue", [("1", "0.4"), ("1", "0"), ("-1", "-2"), ("-1", "0")])
def test_same_direction_or_flat_venue_is_adopted(local, venue):
    """With no live order, a venue position that is flat or on our side is the truth: SYNC_LOCAL."""
    assert verdict(local, report(venue)).outcome is Outcome.SYNC_LOCAL


@pytest.mark.parametrize("local, venue", [("0", "1"), ("1", "-1"), ("0", "-0.5")])
def test_unexplainable_position_is_drift(local, venue):
    """A position we never opened, or the opposite of ours, is DRIFT_UNRESOLVED by default."""
    assert verdict(local, report(venue)).outcome is Outcome.DRIFT_UNRESOLVED


def test_unexplainable_position_is_closed_when_allowed():
    """With emergency_close, an unexplainable venue position is flattened: EMERGENCY_CLOSE for its whole quantity."""
    v = verdict("1", report("-0.7"), emergency_close=True)
    assert v.outcome is Outcome.EMERGENCY_CLOSE and v.close_qty == D("-0.7")


def test_venue_position_without_price_cannot_be_adopted():
    """A same-direction venue position reported without an average price is drift, not adopted."""
    assert verdict("1", report("2", avg=None)).outcome is Outcome.DRIFT_UNRESOLVED


def test_difference_with_live_orders_is_asked_again_then_drift():
    """A difference while our orders are live may be fills in flight: undecided until the retries run out."""
    live = [tracked("c1", OrderStatus.NEW)]
    assert verdict("0", report("1"), live, attempt=0).outcome is None
    assert verdict("0", report("1"), live, attempt=2).outcome is None
    assert verdict("0", report("1"), live, attempt=3).outcome is Outcome.DRIFT_UNRESOLVED


def test_unknown_venue_orders_are_drift_by_default():
    """An open venue order we never placed is DRIFT_UNRESOLVED unless cancelling is allowed."""
    assert verdict("0", report("0", open_ids=("foreign",))).outcome is Outcome.DRIFT_UNRESOLVED


def test_unknown_venue_orders_are_cancelled_when_allowed():
    """With cancel_unknown_orders, foreign orders are cancelled and the position decides the outcome."""
    v = verdict("0", report("0", open_ids=("foreign",)), cancel_unknown_orders=True)
    assert v.outcome is Outcome.NONE and v.cancel == ("foreign",)


def test_venue_listing_a_settled_order_is_asked_again():
    """A venue snapshot older than our last answer (order finished here, open there) is not judged at once."""
    done = [tracked("c1", OrderStatus.FILLED)]
    assert verdict("0", report("0", open_ids=("c1",)), done).outcome is None
    assert verdict("0", report("0", open_ids=("c1",)), done, attempt=3).outcome is Outcome.DRIFT_UNRESOLVED


def test_policy_validation_names_the_key():
    """A negative interval is refused with the key it came from."""
    with pytest.raises(ConfigError) as err:
        ReconcilePolicy(reconcile_interval_ms=-1).validate()
    assert err.value.key == "executor.reconcile_interval_ms"


def test_policy_reads_executor_config_fields_when_present():
    """from_config takes the reconciliation fields an ExecutorConfig carries and defaults the rest."""
    @attrs.frozen
    class WithFields:
        emergency_close: bool = True
        reconcile_interval_ms: int = 0

    assert ReconcilePolicy.from_config(WithFields()) == ReconcilePolicy(emergency_close=True, reconcile_interval_ms=0)
    assert ReconcilePolicy.from_config(ExecutorConfig()) == ReconcilePolicy()


# -- the executor ------------------------------------------------------------------------------


def executor(**policy) -> tuple[ExecutorLogic, ManualClock]:
    clock = ManualClock(T0)
    ctx = make_ctx(actor_id=f"{SYM}/executor", symbol=SYM, clock=clock)
    policy.setdefault("reconcile_interval_ms", 0)
    return ExecutorLogic(ctx, ExecutorConfig(), ReconcilePolicy(**policy)), clock


def coid(action_id: str) -> str:
    return client_order_id("run", action_id)


def submit(action_id: str, side: Side = Side.BUY, qty: str = "1") -> SubmitOrder:
    return SubmitOrder(symbol=SYM, action_id=action_id, intent=OrderIntent.ENTRY, side=side, qty=D(qty),
                       order_type=OrderType.MARKET, limit_price=None, reduce_only=False, ts_event_ns=0)


def filled(c: str, fill_id: str, qty: str, side: Side = Side.BUY, leaves: str = "0") -> OrderFilled:
    return OrderFilled(symbol=SYM, client_order_id=c, venue_order_id="v", fill_id=fill_id, side=side, qty=D(qty),
                       price=D("100"), fee=D("0"), is_maker=False, cum_qty=D(qty), leaves_qty=D(leaves), ts_event_ns=0)


def completed(out) -> ReconciliationCompleted:
    (msg,) = [m for m in out if isinstance(m, ReconciliationCompleted)]
    return msg


def test_reconcile_queries_every_live_order_then_the_position():
    """Reconcile asks about each order not seen finished, then for the position, in that order."""
    ex, _ = executor()
    ex.handle(submit("a"))
    ex.handle(submit("b"))
    ex.handle(submit("done"))
    ex.handle(filled(coid("done"), "f1", "1"))
    out = ex.handle(Reconcile(symbol=SYM, reason="restart", ts_event_ns=0))
    assert [type(m) for m in out] == [QueryOrder, QueryOrder, QueryPosition]
    assert [m.client_order_id for m in out[:2]] == [coid("a"), coid("b")]


def test_executor_tracks_the_signed_sum_of_forwarded_fills():
    """Buys add and sells subtract from the executor's own view of the position."""
    ex, _ = executor()
    ex.handle(submit("a", qty="1"))
    ex.handle(filled(coid("a"), "f1", "1"))
    ex.handle(submit("b", side=Side.SELL, qty="0.4"))
    ex.handle(filled(coid("b"), "f2", "0.4", side=Side.SELL))
    assert ex.local_qty == D("0.6")


def test_agreement_reports_none():
    """The venue agreeing gives ReconciliationCompleted NONE and changes nothing."""
    ex, _ = executor()
    ex.handle(submit("a"))
    ex.handle(filled(coid("a"), "f1", "1"))
    ex.handle(Reconcile(symbol=SYM, reason="t", ts_event_ns=0))
    msg = completed(ex.handle(report("1")))
    assert msg.outcome == "NONE" and msg.local_qty == msg.venue_qty == D("1")


def test_sync_local_adopts_the_venue_quantity():
    """SYNC_LOCAL sets the executor's position to the venue's and reports both quantities and the venue price."""
    ex, _ = executor()
    ex.handle(submit("a"))
    ex.handle(filled(coid("a"), "f1", "1"))
    msg = completed(ex.handle(report("0.25", avg="101.5")))
    assert (msg.outcome, msg.local_qty, msg.venue_qty, msg.venue_avg_price) == ("SYNC_LOCAL", D("1"), D("0.25"), D("101.5"))
    assert ex.local_qty == D("0.25") and completed(ex.handle(report("0.25", avg="101.5"))).outcome == "NONE"


def test_drift_is_reported_and_nothing_is_placed():
    """Without permission to fix, an unexplainable venue position is reported as DRIFT_UNRESOLVED only."""
    ex, _ = executor()
    out = ex.handle(report("2"))
    assert completed(out).outcome == "DRIFT_UNRESOLVED" and not any(isinstance(m, PlaceOrder) for m in out)


def test_emergency_close_places_a_deterministic_reduce_only_market_order():
    """EMERGENCY_CLOSE sends a reduce-only market order against the venue position; the same report never sends two."""
    ex, _ = executor(emergency_close=True)
    out = ex.handle(report("-0.3", ts=T0 + 7))
    (place,) = [m for m in out if isinstance(m, PlaceOrder)]
    assert (place.side, place.qty, place.order_type, place.reduce_only) == (Side.BUY, D("0.3"), OrderType.MARKET, True)
    assert place.client_order_id == client_order_id("run", f"reconcile:{SYM}:{T0 + 7}")
    assert completed(out).outcome == "EMERGENCY_CLOSE"
    assert not any(isinstance(m, PlaceOrder) for m in ex.handle(report("-0.3", ts=T0 + 7)))  # its order is live: undecided
    other, _ = executor(emergency_close=True)
    assert [m for m in other.handle(report("-0.3", ts=T0 + 7)) if isinstance(m, PlaceOrder)] == [place]


def test_emergency_close_answers_stay_in_the_executor_and_trigger_a_new_round():
    """The position never hears of the flattening order; when it is over, the venue is asked again."""
    ex, _ = executor(emergency_close=True)
    (place,) = [m for m in ex.handle(report("-0.3")) if isinstance(m, PlaceOrder)]
    c = place.client_order_id
    assert ex.handle(OrderAccepted(symbol=SYM, client_order_id=c, venue_order_id="v9", ts_event_ns=0)) == []
    out = ex.handle(filled(c, "f9", "0.3"))
    assert [type(m) for m in out] == [QueryPosition] and ex.local_qty == 0
    assert completed(ex.handle(report("0"))).outcome == "NONE"


def test_undecided_round_is_asked_again_after_the_query_interval():
    """A difference while orders are live yields nothing now and a fresh query round query_interval_ms later."""
    ex, clock = executor()
    ex.handle(submit("a"))
    assert ex.handle(report("1")) == [] and ex.stats()["reconcile_deferrals"] == 1
    clock.advance(1999 * MS)
    assert not any(isinstance(m, QueryPosition) for m in ex.handle(TimerTick(ts_event_ns=clock.now_ns())))
    clock.advance(1 * MS)
    out = ex.handle(TimerTick(ts_event_ns=clock.now_ns()))
    assert [type(m) for m in out][-2:] == [QueryOrder, QueryPosition]


def test_undecided_round_ends_in_drift_after_the_retries():
    """A difference that persists while orders stay live becomes DRIFT_UNRESOLVED after the retries."""
    ex, _ = executor(retries=2)
    ex.handle(submit("a"))
    assert ex.handle(report("1")) == [] and ex.handle(report("1")) == []
    assert completed(ex.handle(report("1"))).outcome == "DRIFT_UNRESOLVED"


def test_unknown_venue_orders_are_cancelled_when_allowed_by_the_executor():
    """With cancel_unknown_orders, each unknown venue order gets a RequestCancel."""
    ex, _ = executor(cancel_unknown_orders=True)
    out = ex.handle(report("0", open_ids=("x1", "x2")))
    assert [m.client_order_id for m in out if isinstance(m, RequestCancel)] == ["x1", "x2"]
    assert completed(out).outcome == "NONE"


def test_periodic_reconciliation_runs_every_interval():
    """With reconcile_interval_ms set, a tick past the interval starts a round; 0 never does."""
    ex, clock = executor(reconcile_interval_ms=30_000)
    clock.advance(29_999 * MS)
    assert ex.handle(TimerTick(ts_event_ns=clock.now_ns())) == []
    clock.advance(1 * MS)
    assert [type(m) for m in ex.handle(TimerTick(ts_event_ns=clock.now_ns()))] == [QueryPosition]
    off, off_clock = executor(reconcile_interval_ms=0)
    off_clock.advance(10**6 * MS)
    assert off.handle(TimerTick(ts_event_ns=off_clock.now_ns())) == []


def test_unanswered_round_is_asked_again_after_the_ack_timeout():
    """A QueryPosition nobody answers is sent again after ack_timeout_ms."""
    ex, clock = executor()
    ex.handle(Reconcile(symbol=SYM, reason="t", ts_event_ns=0))
    clock.advance(2000 * MS)
    assert [type(m) for m in ex.handle(TimerTick(ts_event_ns=clock.now_ns()))] == [QueryPosition]


# -- the position ------------------------------------------------------------------------------


def position(snapshot: PositionSnapshot | None = None) -> PositionLogic:
    pos = PositionLogic(make_ctx(actor_id=f"{SYM}/position", symbol=SYM))
    if snapshot is not None:
        pos.restore(snapshot)
    return pos


def rec(outcome: str, venue: str, avg: str | None = "101") -> ReconciliationCompleted:
    return ReconciliationCompleted(symbol=SYM, outcome=outcome, local_qty=D("0"), venue_qty=D(venue),
                                   venue_avg_price=D(avg) if avg else None, detail="", ts_event_ns=0)


def test_position_adopts_a_venue_position_from_flat():
    """SYNC_LOCAL on a FLAT position with a short venue position opens it SHORT at the venue price."""
    pos = position()
    (changed,) = pos.handle(rec("SYNC_LOCAL", "-0.5"))
    assert isinstance(changed, PositionChanged) and changed.cause == "reconciled"
    assert (changed.state, changed.direction, changed.qty, changed.avg_entry_price) == (
        PositionState.OPEN, Direction.SHORT, D("0.5"), D("101"))


def test_position_adopts_a_flat_venue():
    """SYNC_LOCAL to a flat venue closes an OPEN position, keeping realized PnL."""
    pos = position(PositionSnapshot(state=PositionState.OPEN, direction=Direction.LONG, qty=D("1"),
                                    avg_entry_price=D("100"), realized_pnl=D("5")))
    (changed,) = pos.handle(rec("SYNC_LOCAL", "0", avg=None))
    assert (changed.state, changed.qty, changed.realized_pnl) == (PositionState.FLAT, D("0"), D("5"))


def test_position_with_a_live_order_adopts_nothing():
    """While the position has a live order, SYNC_LOCAL changes nothing."""
    snap = PositionSnapshot(state=PositionState.ENTERING, direction=Direction.LONG, action_id="a1", order_qty=D("1"))
    pos = position(snap)
    assert pos.handle(rec("SYNC_LOCAL", "1")) == [] and pos.snapshot() == snap


@pytest.mark.parametrize("outcome", ["EMERGENCY_CLOSE", "DRIFT_UNRESOLVED"])
def test_position_ignores_other_outcomes(outcome):
    """Outcomes other than NONE and SYNC_LOCAL leave the position alone."""
    assert position().handle(rec(outcome, "1")) == []


def test_position_agreeing_with_the_venue_changes_nothing():
    """NONE with the position equal to the venue's quantity emits nothing."""
    snap = PositionSnapshot(state=PositionState.OPEN, direction=Direction.LONG, qty=D("1"), avg_entry_price=D("100"))
    pos = position(snap)
    assert pos.handle(rec("NONE", "1", avg="101")) == [] and pos.snapshot() == snap


def test_position_differing_from_an_agreeing_executor_adopts_the_venue_and_says_so():
    """NONE from the executor while Position holds what the venue does not: Position goes flat and reports SYNC_LOCAL."""
    pos = position(PositionSnapshot(state=PositionState.OPEN, direction=Direction.LONG, qty=D("1"), avg_entry_price=D("100")))
    changed, report = pos.handle(rec("NONE", "0", avg=None))
    assert isinstance(changed, PositionChanged) and changed.state is PositionState.FLAT
    assert isinstance(report, ReconciliationCompleted)
    assert (report.outcome, report.local_qty, report.venue_qty) == ("SYNC_LOCAL", D("1"), D("0"))


def test_position_with_a_live_order_and_a_lost_fill_reports_drift():
    """A live order while Position differs from what the executor forwarded: DRIFT_UNRESOLVED, nothing adopted."""
    snap = PositionSnapshot(state=PositionState.CLOSING, direction=Direction.LONG, qty=D("1"), avg_entry_price=D("100"),
                            action_id="a2", order_qty=D("1"))
    pos = position(snap)
    (report,) = pos.handle(rec("NONE", "0", avg=None))
    assert report.outcome == "DRIFT_UNRESOLVED" and pos.snapshot() == snap


# -- risk --------------------------------------------------------------------------------------


def risk() -> RiskLogic:
    return RiskLogic(make_ctx("risk", "", ManualClock(T0)), RiskConfig(), (SYM,))


def test_drift_engages_the_kill_switch():
    """DRIFT_UNRESOLVED engages the kill switch as "reconciliation" and shows the drift in status."""
    r = risk()
    out = r.handle(rec("DRIFT_UNRESOLVED", "2"))
    (engaged,) = [m for m in out if isinstance(m, KillSwitchEngaged)]
    assert engaged.who == "reconciliation" and SYM in engaged.reason
    status = r.status()
    assert status["kill_switch"]["engaged"] and status["drift"] == [SYM]
    assert status["reconciliation"][SYM]["outcome"] == "DRIFT_UNRESOLVED"


@pytest.mark.parametrize("outcome", ["NONE", "SYNC_LOCAL", "EMERGENCY_CLOSE"])
def test_other_outcomes_leave_the_kill_switch_alone(outcome):
    """Only DRIFT_UNRESOLVED engages the kill switch; the outcome is still recorded."""
    r = risk()
    assert r.handle(rec(outcome, "1")) == []
    assert not r.status()["kill_switch"]["engaged"] and r.status()["reconciliation"][SYM]["outcome"] == outcome


# -- the venues --------------------------------------------------------------------------------


def quote(clock: ManualClock) -> RawMarketEvent:
    now = clock.now_ns()
    return RawMarketEvent(symbol=SYM, venue="sim", ingest_seq=next(_seq), ts_event_ns=now, ts_recv_ns=now,
                          kind=MarketEventKind.QUOTE, raw=b"", bid_price=D("99"), bid_qty=D("5"), ask_price=D("100"),
                          ask_qty=D("5"))


def paper() -> tuple[PaperVenueLogic, ManualClock]:
    clock = ManualClock(T0)
    return PaperVenueLogic(make_ctx(f"{SYM}/venue", SYM, clock), PaperConfig(latency_ms=0)), clock


def test_paper_venue_reports_its_position_and_open_orders():
    """The paper venue answers QueryPosition with its signed quantity, average price and working orders."""
    v, clock = paper()
    v.handle(quote(clock))
    v.handle(PlaceOrder(symbol=SYM, client_order_id="m1", side=Side.SELL, qty=D("1"), order_type=OrderType.MARKET,
                        limit_price=None, reduce_only=False, ts_event_ns=0))
    v.handle(PlaceOrder(symbol=SYM, client_order_id="l1", side=Side.BUY, qty=D("1"), order_type=OrderType.LIMIT,
                        limit_price=D("90"), reduce_only=False, ts_event_ns=0))
    (rep,) = v.handle(QueryPosition(symbol=SYM, ts_event_ns=0))
    assert (rep.qty, rep.avg_price, rep.open_client_order_ids) == (D("-1"), D("99"), ("l1",))


def test_flat_paper_venue_reports_no_price():
    """A flat paper venue reports qty 0 without an average price."""
    v, _ = paper()
    (rep,) = v.handle(QueryPosition(symbol=SYM, ts_event_ns=0))
    assert (rep.qty, rep.avg_price, rep.open_client_order_ids) == (D("0"), None, ())


def test_shadow_venue_reports_flat():
    """The shadow venue is always flat with no orders."""
    (rep,) = ShadowVenueLogic(make_ctx(f"{SYM}/venue", SYM)).handle(QueryPosition(symbol=SYM, ts_event_ns=0))
    assert (rep.qty, rep.avg_price, rep.open_client_order_ids) == (D("0"), None, ())


def test_fills_missed_while_down_are_settled_before_the_position_is_compared():
    """A fill the executor never saw is synthesized by the order query, so the comparison then agrees."""
    ex, clock = executor()
    v = PaperVenueLogic(make_ctx(f"{SYM}/venue", SYM, clock), PaperConfig(latency_ms=0))
    v.handle(quote(clock))
    (place,) = ex.handle(submit("a"))
    v.handle(place)  # accepted and filled at the venue; both answers are lost
    answers = [a for q in ex.handle(Reconcile(symbol=SYM, reason="restart", ts_event_ns=0)) for a in v.handle(q)]
    out = [m for a in answers for m in ex.handle(a)]
    assert [m.qty for m in out if isinstance(m, OrderFilled)] == [D("1")]
    assert completed(out).outcome == "NONE" and ex.local_qty == D("1")


def test_drift_through_risk_denies_entries():
    """An unexplained venue position ends with Risk's kill switch engaged and entries denied."""
    ex, _ = executor()
    r = risk()
    r.handle(completed(ex.handle(report("3"))))
    now = r.ctx.clock.now_ns()
    action = Action(action_id="x", symbol=SYM, cycle=1, kind=MandateKind.ENTRY, direction=Direction.LONG, qty=D("0.01"),
                    mark_price=D("100"), data_ts_ns=now, ts_event_ns=now, reason="t")
    assert [m.reason for m in r.handle(action) if isinstance(m, ActionDenied)] == ["kill_switch"]
