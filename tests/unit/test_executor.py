"""ExecutorLogic: idempotent placement, answer tracking, timeouts and settlement by query."""

from __future__ import annotations

import hashlib
from decimal import Decimal as D

import pytest
from arbor.actors.executor import ExecutorConfig, ExecutorLogic, client_order_id
from arbor.actors.testing import ManualClock, make_ctx
from arbor.config.errors import ConfigError
from arbor.messages import (
    CancelOpenOrders,
    CancelOrder,
    DuplicateOrderSuppressed,
    OrderAccepted,
    OrderCanceled,
    OrderFilled,
    OrderIntent,
    OrderRejected,
    OrderStatus,
    OrderStatusReported,
    OrderTimedOut,
    OrderType,
    PlaceOrder,
    QueryOrder,
    RequestCancel,
    Side,
    SubmitOrder,
    TimerTick,
)

SYM = "BTCUSDT"
MS = 1_000_000
T0 = 1_700_000_000_000_000_000


def new_executor(**config) -> tuple[ExecutorLogic, ManualClock]:
    clock = ManualClock(T0)
    ctx = make_ctx(actor_id=f"{SYM}/executor", symbol=SYM, clock=clock)
    return ExecutorLogic(ctx, ExecutorConfig(**config)), clock


def submit(action_id: str = "a1", intent: OrderIntent = OrderIntent.ENTRY, qty: str = "1") -> SubmitOrder:
    return SubmitOrder(
        symbol=SYM,
        action_id=action_id,
        intent=intent,
        side=Side.BUY,
        qty=D(qty),
        order_type=OrderType.MARKET,
        limit_price=None,
        reduce_only=intent is not OrderIntent.ENTRY,
        ts_event_ns=0,
    )


def coid(action_id: str = "a1") -> str:
    return client_order_id("run", action_id)


def filled(fill_id: str, qty: str, cum: str, leaves: str, action: str = "a1", price: str = "100") -> OrderFilled:
    return OrderFilled(
        symbol=SYM,
        client_order_id=coid(action),
        venue_order_id="v1",
        fill_id=fill_id,
        side=Side.BUY,
        qty=D(qty),
        price=D(price),
        fee=D("0.01"),
        is_maker=False,
        cum_qty=D(cum),
        leaves_qty=D(leaves),
        ts_event_ns=0,
    )


def report(status: OrderStatus, filled_qty: str = "0", avg: str | None = None, action: str = "a1") -> OrderStatusReported:
    return OrderStatusReported(
        symbol=SYM,
        client_order_id=coid(action),
        status=status,
        venue_order_id="v1",
        filled_qty=D(filled_qty),
        avg_price=D(avg) if avg else None,
        ts_event_ns=0,
    )


def tick(ex: ExecutorLogic, clock: ManualClock, advance_ms: int) -> list:
    clock.advance(advance_ms * MS)
    return ex.on_timer_tick(TimerTick(ts_event_ns=clock.now_ns()))


def timed_out(action_id: str = "a1", qty: str = "1") -> tuple[ExecutorLogic, ManualClock]:
    ex, clock = new_executor()
    ex.on_submit_order(submit(action_id, qty=qty))
    tick(ex, clock, 2000)
    return ex, clock


def no_place_orders(out: list) -> bool:
    return not any(isinstance(m, PlaceOrder) for m in out)


# -- config and ids ------------------------------------------------------------------------


def test_client_order_id_is_derived_from_run_and_action():
    """The client order id is "ar" + blake2b-80 of "run|action", the same on every call."""
    expected = "ar" + hashlib.blake2b(b"run|a1", digest_size=10).hexdigest()
    assert client_order_id("run", "a1") == expected == client_order_id("run", "a1")
    assert client_order_id("run", "a2") != expected != client_order_id("other", "a1")


def test_client_order_id_is_valid_for_binance():
    """The id fits Binance's newClientOrderId: at most 36 characters of [0-9a-z]."""
    cid = client_order_id("run-2024-01-01", "BTCUSDT:cycle:123456")
    assert len(cid) == 22 and cid.isalnum() and cid == cid.lower()


@pytest.mark.parametrize("field,value", [("ack_timeout_ms", 0), ("query_interval_ms", -5), ("ack_timeout_ms", 1.5), ("query_interval_ms", True)])
def test_config_rejects_bad_values_naming_the_key(field, value):
    """A non-positive or non-integer timing is a ConfigError naming executor.<field>."""
    with pytest.raises(ConfigError) as err:
        ExecutorConfig(**{field: value}).validate()
    assert err.value.key == f"executor.{field}"


# -- placement -----------------------------------------------------------------------------


def test_submit_places_order_and_records_it_pending():
    """A submit emits PlaceOrder with the deterministic id and records the order PENDING_NEW."""
    ex, _ = new_executor()
    out = ex.on_submit_order(submit())
    assert out == [
        PlaceOrder(
            symbol=SYM,
            client_order_id=coid(),
            side=Side.BUY,
            qty=D("1"),
            order_type=OrderType.MARKET,
            limit_price=None,
            reduce_only=False,
            ts_event_ns=T0,
        )
    ]
    order = ex.order(coid())
    assert (order.status, order.action_id, order.intent, order.sent_ns) == (OrderStatus.PENDING_NEW, "a1", OrderIntent.ENTRY, T0)


def test_repeated_submit_for_same_action_is_suppressed():
    """The same action submitted twice yields one PlaceOrder and one DuplicateOrderSuppressed."""
    ex, _ = new_executor()
    first = ex.on_submit_order(submit())
    second = ex.on_submit_order(submit())
    assert len(first) == 1 and isinstance(first[0], PlaceOrder)
    assert second == [DuplicateOrderSuppressed(symbol=SYM, client_order_id=coid(), action_id="a1", ts_event_ns=T0)]
    assert ex.stats()["duplicates_suppressed"] == 1


def test_submit_after_order_finished_is_still_suppressed():
    """Even a finished order's action is never placed again."""
    ex, _ = new_executor()
    ex.on_submit_order(submit())
    ex.on_order_rejected(OrderRejected(symbol=SYM, client_order_id=coid(), reason="x", ts_event_ns=0))
    assert no_place_orders(ex.on_submit_order(submit()))


# -- venue answers -------------------------------------------------------------------------


def test_answers_are_forwarded_with_action_id():
    """Accepted and filled answers reach the position carrying the order's action id."""
    ex, _ = new_executor()
    ex.on_submit_order(submit())
    ack = ex.on_order_accepted(OrderAccepted(symbol=SYM, client_order_id=coid(), venue_order_id="v1", ts_event_ns=0))
    fill = ex.on_order_filled(filled("f1", "1", "1", "0"))
    assert [m.action_id for m in ack + fill] == ["a1", "a1"]
    assert ex.order(coid()).status is OrderStatus.FILLED and ex.open_orders() == ()


def test_partial_fill_marks_order_partially_filled():
    """A fill that leaves quantity marks the order PARTIALLY_FILLED and keeps it open."""
    ex, _ = new_executor()
    ex.on_submit_order(submit())
    ex.on_order_filled(filled("f1", "0.4", "0.4", "0.6"))
    assert [o.status for o in ex.open_orders()] == [OrderStatus.PARTIALLY_FILLED]


def test_last_fill_after_lost_fills_queries_the_order_and_recovers_them():
    """Regression (explorer seed 115): the venue's answer with the first fills is lost, the last
    fill arrives with cum_qty covering them and leaves_qty 0. The order is not FILLED on our side
    (we saw 0.041 of 0.999): it is queried, and the venue's record brings the lost 0.958."""
    ex, clock = new_executor()
    ex.on_submit_order(submit(qty="0.999"))
    passed_on = ex.on_order_filled(filled("f2", "0.041", "0.999", "0"))
    assert [(m.cum_qty, m.leaves_qty) for m in passed_on] == [(D("0.041"), D("0.958"))]  # Position: still entering
    assert [o.status for o in ex.open_orders()] == [OrderStatus.UNKNOWN]
    assert any(isinstance(m, QueryOrder) for m in tick(ex, clock, 100))
    out = ex.on_order_status_reported(report(OrderStatus.FILLED, "0.999", "100"))
    recovered = [m for m in out if isinstance(m, OrderFilled)]
    assert [m.qty for m in recovered] == [D("0.958")]
    assert ex.order(coid()).filled_qty == D("0.999") and not ex.open_orders()


def test_duplicate_fill_is_counted_not_forwarded():
    """A fill whose fill_id was already seen is counted and not forwarded."""
    ex, _ = new_executor()
    ex.on_submit_order(submit())
    ex.on_order_filled(filled("f1", "0.4", "0.4", "0.6"))
    assert ex.on_order_filled(filled("f1", "0.4", "0.4", "0.6")) == []
    assert ex.stats()["duplicate_fills"] == 1 and ex.order(coid()).filled_qty == D("0.4")


def test_answer_for_unknown_order_is_counted_not_forwarded():
    """An answer about a client order id we never sent is counted and dropped."""
    ex, _ = new_executor()
    assert ex.on_order_filled(filled("f1", "1", "1", "0", action="ghost")) == []
    assert ex.on_order_accepted(OrderAccepted(symbol=SYM, client_order_id="nope", venue_order_id="v", ts_event_ns=0)) == []
    assert ex.stats()["unknown_answers"] == 2


def test_reject_is_forwarded_and_terminal():
    """A venue reject is forwarded with the action id and ends the order."""
    ex, _ = new_executor()
    ex.on_submit_order(submit())
    out = ex.on_order_rejected(OrderRejected(symbol=SYM, client_order_id=coid(), reason="margin", ts_event_ns=0))
    assert [(type(m), m.action_id) for m in out] == [(OrderRejected, "a1")]
    assert ex.order(coid()).status is OrderStatus.REJECTED


def test_cancel_that_overtakes_its_fills_is_held_until_they_arrive():
    """A cancel reporting more filled than seen is forwarded only after the missing fill."""
    ex, _ = new_executor()
    ex.on_submit_order(submit())
    cancel = OrderCanceled(symbol=SYM, client_order_id=coid(), filled_qty=D("0.3"), reason="user", ts_event_ns=0)
    assert ex.on_order_canceled(cancel) == []
    out = ex.on_order_filled(filled("f1", "0.3", "0.3", "0.7"))
    assert [type(m) for m in out] == [OrderFilled, OrderCanceled] and out[1].filled_qty == D("0.3")
    assert ex.order(coid()).status is OrderStatus.CANCELED


# -- cancels -------------------------------------------------------------------------------


def test_cancel_order_requests_cancel_of_live_order():
    """CancelOrder for a live order emits RequestCancel and marks it PENDING_CANCEL."""
    ex, _ = new_executor()
    ex.on_submit_order(submit())
    out = ex.on_cancel_order(CancelOrder(symbol=SYM, action_id="a1", reason="exit", ts_event_ns=0))
    assert out == [RequestCancel(symbol=SYM, client_order_id=coid(), ts_event_ns=T0)]
    assert ex.order(coid()).status is OrderStatus.PENDING_CANCEL


def test_cancel_of_unknown_or_finished_order_does_nothing():
    """CancelOrder for an unknown action or a finished order emits nothing."""
    ex, _ = new_executor()
    ex.on_submit_order(submit())
    ex.on_order_filled(filled("f1", "1", "1", "0"))
    assert ex.on_cancel_order(CancelOrder(symbol=SYM, action_id="a1", reason="x", ts_event_ns=0)) == []
    assert ex.on_cancel_order(CancelOrder(symbol=SYM, action_id="zz", reason="x", ts_event_ns=0)) == []


def test_cancel_open_orders_entries_only_spares_reducing_orders():
    """CancelOpenOrders(entries_only) cancels live ENTRY orders and leaves REDUCE/EXIT ones alone."""
    ex, _ = new_executor()
    ex.on_submit_order(submit("e1", OrderIntent.ENTRY))
    ex.on_submit_order(submit("r1", OrderIntent.REDUCE))
    ex.on_submit_order(submit("x1", OrderIntent.EXIT))
    out = ex.on_cancel_open_orders(CancelOpenOrders(symbol=SYM, entries_only=True, reason="kill", ts_event_ns=0))
    assert [m.client_order_id for m in out] == [coid("e1")]


def test_cancel_open_orders_all_cancels_every_live_order():
    """CancelOpenOrders without entries_only cancels every live order, and no finished one."""
    ex, _ = new_executor()
    for aid in ("e1", "r1", "x1"):
        ex.on_submit_order(submit(aid, OrderIntent.REDUCE))
    ex.on_order_filled(filled("f1", "1", "1", "0", action="r1"))
    out = ex.on_cancel_open_orders(CancelOpenOrders(symbol=SYM, entries_only=False, reason="halt", ts_event_ns=0))
    assert [m.client_order_id for m in out] == [coid("e1"), coid("x1")]


# -- timeouts and settlement ---------------------------------------------------------------


def test_no_timeout_before_ack_timeout():
    """An order waiting less than ack_timeout_ms stays PENDING_NEW and nothing is emitted."""
    ex, clock = new_executor()
    ex.on_submit_order(submit())
    assert tick(ex, clock, 1999) == [] and ex.order(coid()).status is OrderStatus.PENDING_NEW


def test_unanswered_order_becomes_unknown_and_is_queried():
    """After ack_timeout_ms without an answer the order is UNKNOWN: OrderTimedOut and QueryOrder, no re-send."""
    ex, clock = new_executor()
    ex.on_submit_order(submit())
    out = tick(ex, clock, 2000)
    now = clock.now_ns()
    assert out == [
        OrderTimedOut(symbol=SYM, client_order_id=coid(), action_id="a1", ts_event_ns=now),
        QueryOrder(symbol=SYM, client_order_id=coid(), ts_event_ns=now),
    ]
    assert ex.order(coid()).status is OrderStatus.UNKNOWN and ex.stats()["timeouts"] == 1


def test_unknown_order_is_requeried_every_interval_never_resent():
    """An UNKNOWN order is queried again every query_interval_ms and never placed again."""
    ex, clock = timed_out()
    outs = [tick(ex, clock, 1000) for _ in range(6)]
    assert [[type(m) for m in out] for out in outs] == [[], [QueryOrder], [], [QueryOrder], [], [QueryOrder]]
    assert no_place_orders(ex.on_submit_order(submit()))


def test_unanswered_cancel_becomes_unknown():
    """A cancel request without an answer in ack_timeout_ms makes the order UNKNOWN and queried."""
    ex, clock = new_executor()
    ex.on_submit_order(submit())
    ex.on_order_accepted(OrderAccepted(symbol=SYM, client_order_id=coid(), venue_order_id="v1", ts_event_ns=0))
    tick(ex, clock, 500)
    ex.on_cancel_order(CancelOrder(symbol=SYM, action_id="a1", reason="exit", ts_event_ns=0))
    out = tick(ex, clock, 2000)
    assert [type(m) for m in out] == [OrderTimedOut, QueryOrder]


def test_report_not_found_after_the_grace_settles_as_rejected():
    """NOT_FOUND once the order can no longer reach the venue means it never arrived: the position
    gets OrderRejected(not_found_at_venue)."""
    ex, clock = timed_out()
    clock.advance(60_000 * MS)
    out = ex.on_order_status_reported(report(OrderStatus.NOT_FOUND))
    assert [(type(m), m.reason, m.action_id) for m in out] == [(OrderRejected, "not_found_at_venue", "a1")]
    assert ex.order(coid()).status is OrderStatus.REJECTED and no_place_orders(out)


def test_early_not_found_keeps_the_order_unknown_and_queried_until_it_appears():
    """A NOT_FOUND soon after sending is not final: the order stays UNKNOWN (no reject, so the
    position cannot re-enter), is queried again, and a late acceptance and fill still count."""
    ex, clock = timed_out()
    out = ex.on_order_status_reported(report(OrderStatus.NOT_FOUND))
    assert out == [] and ex.order(coid()).status is OrderStatus.UNKNOWN
    assert ex.stats()["early_not_found"] == 1
    assert [type(m) for m in tick(ex, clock, 2000)] == [QueryOrder]
    ex.on_order_accepted(OrderAccepted(symbol=SYM, client_order_id=coid(), venue_order_id="v1", ts_event_ns=0))
    out = ex.on_order_filled(filled("f1", "1", "1", "0"))
    assert [(m.qty, m.action_id) for m in out] == [(D("1"), "a1")]
    assert ex.order(coid()).status is OrderStatus.FILLED


def test_not_found_grace_is_counted_from_when_the_order_was_sent():
    """Queried again and again, an order the venue never saw is rejected once the grace has run out."""
    ex, clock = new_executor(not_found_grace_ms=5000)
    ex.on_submit_order(submit())
    tick(ex, clock, 2000)
    assert ex.on_order_status_reported(report(OrderStatus.NOT_FOUND)) == []
    tick(ex, clock, 2000)
    assert ex.on_order_status_reported(report(OrderStatus.NOT_FOUND)) == []
    tick(ex, clock, 1000)
    out = ex.on_order_status_reported(report(OrderStatus.NOT_FOUND))
    assert [(type(m), m.reason) for m in out] == [(OrderRejected, "not_found_at_venue")]


def test_report_new_settles_as_working_order():
    """NEW at the venue makes the order NEW again; nothing is forwarded or re-sent."""
    ex, clock = timed_out()
    assert ex.on_order_status_reported(report(OrderStatus.NEW)) == []
    assert ex.order(coid()).status is OrderStatus.NEW and tick(ex, clock, 10_000) == []


def test_report_partially_filled_synthesizes_the_missing_fill():
    """PARTIALLY_FILLED beyond what we saw forwards one synthesized fill at avg_price with a deterministic id."""
    ex, _ = timed_out()
    out = ex.on_order_status_reported(report(OrderStatus.PARTIALLY_FILLED, "0.4", "101.5"))
    assert len(out) == 1
    fill = out[0]
    assert (fill.fill_id, fill.qty, fill.price, fill.fee, fill.leaves_qty, fill.action_id) == (
        f"{coid()}:recon:0.4",
        D("0.4"),
        D("101.5"),
        D("0"),
        D("0.6"),
        "a1",
    )
    assert ex.order(coid()).status is OrderStatus.PARTIALLY_FILLED


def test_report_filled_synthesizes_only_the_unseen_part():
    """FILLED forwards a fill for just the quantity we had not seen, completing the order."""
    ex, _ = timed_out()
    ex.on_order_filled(filled("f1", "0.25", "0.25", "0.75"))
    out = ex.on_order_status_reported(report(OrderStatus.FILLED, "1", "100"))
    assert [(type(m), m.qty, m.leaves_qty) for m in out] == [(OrderFilled, D("0.75"), D("0"))]
    assert ex.order(coid()).status is OrderStatus.FILLED and ex.open_orders() == ()


def test_report_canceled_forwards_cancel_after_missing_fill():
    """CANCELED forwards the missing fill first, then OrderCanceled with the venue's filled quantity."""
    ex, _ = timed_out()
    out = ex.on_order_status_reported(report(OrderStatus.CANCELED, "0.5", "99"))
    assert [type(m) for m in out] == [OrderFilled, OrderCanceled]
    assert out[1].filled_qty == D("0.5") and ex.order(coid()).status is OrderStatus.CANCELED


def test_report_rejected_forwards_reject():
    """REJECTED at the venue forwards OrderRejected and ends the order."""
    ex, _ = timed_out()
    out = ex.on_order_status_reported(report(OrderStatus.REJECTED))
    assert [(type(m), m.action_id) for m in out] == [(OrderRejected, "a1")]
    assert ex.order(coid()).status is OrderStatus.REJECTED


def test_unpriced_missing_fill_is_not_assumed():
    """A report of unseen fills without a price forwards nothing and keeps the order UNKNOWN."""
    ex, clock = timed_out()
    assert ex.on_order_status_reported(report(OrderStatus.FILLED, "1", None)) == []
    assert ex.order(coid()).status is OrderStatus.UNKNOWN and ex.stats()["unpriced_reports"] == 1
    assert [type(m) for m in tick(ex, clock, 2000)] == [QueryOrder]


def test_real_fill_after_reconciliation_is_not_counted_twice():
    """A late real fill already covered by a synthesized one is treated as a duplicate."""
    ex, _ = timed_out()
    ex.on_order_status_reported(report(OrderStatus.PARTIALLY_FILLED, "0.4", "100"))
    assert ex.on_order_filled(filled("f1", "0.4", "0.4", "0.6")) == []
    out = ex.on_order_filled(filled("f2", "0.6", "1", "0"))
    assert [(m.qty, m.action_id) for m in out] == [(D("0.6"), "a1")]
    assert ex.order(coid()).filled_qty == D("1")


def test_late_answer_for_settled_order_is_not_forwarded():
    """Once an order is terminal, a further reject, cancel or report changes nothing and is counted."""
    ex, clock = timed_out()
    clock.advance(60_000 * MS)
    ex.on_order_status_reported(report(OrderStatus.NOT_FOUND))
    assert ex.on_order_accepted(OrderAccepted(symbol=SYM, client_order_id=coid(), venue_order_id="v", ts_event_ns=0)) == []
    assert ex.on_order_status_reported(report(OrderStatus.NEW)) == []
    assert ex.order(coid()).status is OrderStatus.REJECTED and ex.stats()["stale_answers"] == 2


def test_stats_count_orders_by_status():
    """stats() counts orders by status along with the event counters."""
    ex, _ = new_executor()
    ex.on_submit_order(submit("a1"))
    ex.on_submit_order(submit("a2"))
    ex.on_order_filled(filled("f1", "1", "1", "0", action="a2"))
    stats = ex.stats()
    assert stats["orders_by_status"] == {"FILLED": 1, "PENDING_NEW": 1} and stats["open_orders"] == 1
