"""The paper venue's matching engine and the shadow venue, driven directly with a manual clock."""

from __future__ import annotations

import itertools
import random
from decimal import Decimal as D

import pytest
from arbor.actors.testing import ManualClock, make_ctx
from arbor.adapters.sim import PaperConfig, PaperVenueLogic, ShadowVenueLogic
from arbor.config.errors import ConfigError
from arbor.messages import (
    OrderAccepted,
    OrderCanceled,
    OrderFilled,
    OrderRejected,
    OrderStatusReported,
    PlaceOrder,
    QueryOrder,
    RawMarketEvent,
    RequestCancel,
    TimerTick,
    evolve_message,
)
from arbor.messages.base import MarketEventKind, OrderStatus, OrderType, Side

SYM = "BTCUSDT"
MS = 1_000_000
_seq = itertools.count()


def venue(**cfg):
    clock = ManualClock()
    logic = PaperVenueLogic(make_ctx(f"{SYM}/venue", SYM, clock, seed=cfg.pop("seed", 7)), PaperConfig(**cfg))
    return logic, clock


def quote(clock, bid, ask, bid_qty="5", ask_qty="5"):
    now = clock.now_ns()
    return RawMarketEvent(
        symbol=SYM, venue="sim", ingest_seq=next(_seq), ts_event_ns=now, ts_recv_ns=now, kind=MarketEventKind.QUOTE,
        raw=b"", bid_price=D(bid), bid_qty=D(bid_qty), ask_price=D(ask), ask_qty=D(ask_qty),
    )  # fmt: skip


def trade(clock, price, qty, side):
    now = clock.now_ns()
    return RawMarketEvent(
        symbol=SYM, venue="sim", ingest_seq=next(_seq), ts_event_ns=now, ts_recv_ns=now, kind=MarketEventKind.TRADE,
        raw=b"", price=D(price), qty=D(qty), side=side,
    )  # fmt: skip


def place(clock, coid, side, qty, order_type=OrderType.MARKET, limit=None, reduce_only=False):
    return PlaceOrder(
        symbol=SYM, client_order_id=coid, side=side, qty=D(qty), order_type=order_type,
        limit_price=D(limit) if limit is not None else None, reduce_only=reduce_only, ts_event_ns=clock.now_ns(),
    )  # fmt: skip


def tick(clock):
    return TimerTick(ts_event_ns=clock.now_ns())


def query(clock, coid):
    return QueryOrder(symbol=SYM, client_order_id=coid, ts_event_ns=clock.now_ns())


def cancel(clock, coid):
    return RequestCancel(symbol=SYM, client_order_id=coid, ts_event_ns=clock.now_ns())


def submit(logic, clock, msg):
    """Send ``msg`` and let the latency pass; returns everything the venue answered."""
    out = logic.handle(msg)
    clock.advance(logic.config.latency_ms * MS)
    return out + logic.handle(tick(clock))


def fills(out):
    return [m for m in out if isinstance(m, OrderFilled)]


def of_type(out, cls):
    return [m for m in out if isinstance(m, cls)]


def test_orders_wait_for_the_latency():
    """A PlaceOrder is handled on the first event at or after submit time + latency, not before."""
    logic, clock = venue(latency_ms=20)
    logic.handle(quote(clock, "100", "101"))
    assert logic.handle(place(clock, "c1", Side.BUY, "1")) == []
    clock.advance(10 * MS)
    assert logic.handle(quote(clock, "100", "101")) == []
    clock.advance(10 * MS - 1)
    assert logic.handle(tick(clock)) == []
    clock.advance(1)
    out = logic.handle(tick(clock))
    assert [type(m) for m in out] == [OrderAccepted, OrderFilled]
    assert out[0].ts_event_ns == clock.now_ns()


def test_zero_latency_answers_at_once():
    """With latency 0 the order is handled while the PlaceOrder itself is handled."""
    logic, clock = venue(latency_ms=0)
    logic.handle(quote(clock, "100", "101"))
    out = logic.handle(place(clock, "c1", Side.BUY, "1"))
    assert [type(m) for m in out] == [OrderAccepted, OrderFilled]


def test_market_order_fills_partially_over_several_quotes():
    """A market order takes the displayed size of each quote until its quantity is done."""
    logic, clock = venue()
    logic.handle(quote(clock, "100", "101", ask_qty="0.3"))
    out = submit(logic, clock, place(clock, "c1", Side.BUY, "1"))
    clock.advance(MS)
    out += logic.handle(quote(clock, "100", "102", ask_qty="0.3"))
    clock.advance(MS)
    out += logic.handle(quote(clock, "100", "103", ask_qty="0.5"))
    f = fills(out)
    assert [(x.qty, x.price, x.cum_qty, x.leaves_qty) for x in f] == [
        (D("0.3"), D("101"), D("0.3"), D("0.7")),
        (D("0.3"), D("102"), D("0.6"), D("0.4")),
        (D("0.4"), D("103"), D("1.0"), D("0")),
    ]
    assert sum(x.qty for x in f) == D("1")
    assert len({x.fill_id for x in f}) == 3
    assert not any(x.is_maker for x in f)
    assert logic.order("c1").status is OrderStatus.FILLED


def test_taken_size_is_not_offered_again_until_the_next_quote():
    """After a market order took the displayed size, ticks on the same quote fill nothing more."""
    logic, clock = venue()
    logic.handle(quote(clock, "100", "101", ask_qty="0.2"))
    out = submit(logic, clock, place(clock, "c1", Side.BUY, "1"))
    assert sum(f.qty for f in fills(out)) == D("0.2")
    clock.advance(MS)
    assert logic.handle(tick(clock)) == []
    assert logic.order("c1").status is OrderStatus.PARTIALLY_FILLED


def test_sell_market_order_hits_the_bid():
    """A market sell fills at the best bid."""
    logic, clock = venue()
    logic.handle(quote(clock, "100", "101"))
    (f,) = fills(submit(logic, clock, place(clock, "c1", Side.SELL, "1")))
    assert (f.side, f.price, f.qty) == (Side.SELL, D("100"), D("1"))


def test_limit_order_rests_then_fills_on_cross_with_maker_fee():
    """A passive limit rests; when the ask falls through it, it fills at its limit as maker."""
    logic, clock = venue()
    logic.handle(quote(clock, "100", "101"))
    out = submit(logic, clock, place(clock, "c1", Side.BUY, "2", OrderType.LIMIT, "99.5"))
    assert [type(m) for m in out] == [OrderAccepted]
    clock.advance(MS)
    assert logic.handle(quote(clock, "99", "100")) == []
    clock.advance(MS)
    (f,) = fills(logic.handle(quote(clock, "98.5", "99", ask_qty="5")))
    assert (f.price, f.qty, f.is_maker) == (D("99.5"), D("2"), True)
    assert f.fee == D("99.5") * D("2") * D("2") / D("10000")


def test_print_through_a_resting_limit_fills_it():
    """A sell print below a resting buy limit fills it at the limit, up to the print's size."""
    logic, clock = venue()
    logic.handle(quote(clock, "100", "101"))
    submit(logic, clock, place(clock, "c1", Side.BUY, "1", OrderType.LIMIT, "99"))
    clock.advance(MS)
    (f,) = fills(logic.handle(trade(clock, "98.9", "0.4", Side.SELL)))
    assert (f.price, f.qty, f.is_maker, f.leaves_qty) == (D("99"), D("0.4"), True, D("0.6"))
    clock.advance(MS)
    assert fills(logic.handle(trade(clock, "99", "1", Side.SELL))) == []  # at the limit: queue unknown


def test_marketable_limit_takes_liquidity_then_rests():
    """A limit through the book fills as taker at the best price; the rest rests at its limit."""
    logic, clock = venue()
    logic.handle(quote(clock, "100", "101", ask_qty="0.5"))
    (f,) = fills(submit(logic, clock, place(clock, "c1", Side.BUY, "1", OrderType.LIMIT, "102")))
    assert (f.price, f.qty, f.is_maker) == (D("101"), D("0.5"), False)
    assert [o.client_order_id for o in logic.open_orders()] == ["c1"]


def test_fees_are_price_times_qty_times_bps():
    """Taker fee = price * qty * taker_bps / 10000, exactly, in Decimal."""
    logic, clock = venue(taker_fee_bps=D("4.5"))
    logic.handle(quote(clock, "60000.10", "60000.20", ask_qty="0.037"))
    (f,) = fills(submit(logic, clock, place(clock, "c1", Side.BUY, "0.037")))
    assert f.fee == D("60000.20") * D("0.037") * D("4.5") / D("10000")
    assert f.fee == D("0.99900333")
    assert logic.venue_position().fees == f.fee


def test_cancel_of_a_live_order_reports_the_filled_qty():
    """Cancelling a partly filled order answers OrderCanceled with what was filled."""
    logic, clock = venue()
    logic.handle(quote(clock, "100", "101", ask_qty="0.4"))
    submit(logic, clock, place(clock, "c1", Side.BUY, "1"))
    (c,) = submit(logic, clock, cancel(clock, "c1"))
    assert isinstance(c, OrderCanceled) and c.filled_qty == D("0.4")
    assert logic.order("c1").status is OrderStatus.CANCELED
    assert logic.open_orders() == []
    clock.advance(MS)
    assert fills(logic.handle(quote(clock, "100", "101"))) == []


def test_cancel_of_unknown_or_terminal_order_answers_nothing_but_counts():
    """A cancel for an unknown or filled order emits nothing and is counted."""
    logic, clock = venue()
    logic.handle(quote(clock, "100", "101"))
    submit(logic, clock, place(clock, "c1", Side.BUY, "1"))
    assert submit(logic, clock, cancel(clock, "c1")) == []
    assert submit(logic, clock, cancel(clock, "nope")) == []
    assert logic.stats()["cancel_unknown"] == 2
    assert logic.stats()["cancels"] == 0


def test_cancel_is_handled_after_the_place_sent_before_it():
    """Requests keep their order: a cancel sent right after a place cancels the placed order."""
    logic, clock = venue()
    logic.handle(quote(clock, "100", "101"))
    logic.handle(place(clock, "c1", Side.BUY, "1", OrderType.LIMIT, "90"))
    clock.advance(MS)
    logic.handle(cancel(clock, "c1"))
    clock.advance(30 * MS)
    out = logic.handle(tick(clock))
    assert [type(m) for m in out] == [OrderAccepted, OrderCanceled]


def _status_scenario(name):
    logic, clock = venue()
    if name != "no_market":
        logic.handle(quote(clock, "100", "101", ask_qty="0.5"))
    if name == "NEW":
        submit(logic, clock, place(clock, "c1", Side.BUY, "1", OrderType.LIMIT, "90"))
    elif name == "PARTIALLY_FILLED":
        submit(logic, clock, place(clock, "c1", Side.BUY, "1"))
    elif name == "FILLED":
        submit(logic, clock, place(clock, "c1", Side.BUY, "0.5"))
    elif name == "CANCELED":
        submit(logic, clock, place(clock, "c1", Side.BUY, "1", OrderType.LIMIT, "90"))
        submit(logic, clock, cancel(clock, "c1"))
    elif name == "no_market":
        submit(logic, clock, place(clock, "c1", Side.BUY, "1"))
    return logic, clock


@pytest.mark.parametrize(
    ("scenario", "status", "filled", "avg"),
    [
        ("NEW", OrderStatus.NEW, D("0"), None),
        ("PARTIALLY_FILLED", OrderStatus.PARTIALLY_FILLED, D("0.5"), D("101")),
        ("FILLED", OrderStatus.FILLED, D("0.5"), D("101")),
        ("CANCELED", OrderStatus.CANCELED, D("0"), None),
        ("no_market", OrderStatus.REJECTED, D("0"), None),
        ("NOT_FOUND", OrderStatus.NOT_FOUND, D("0"), None),
    ],
)
def test_query_reports_the_venue_record(scenario, status, filled, avg):
    """QueryOrder answers the order's status, filled quantity and average price."""
    logic, clock = _status_scenario(scenario)
    (r,) = submit(logic, clock, query(clock, "c1"))
    assert isinstance(r, OrderStatusReported)
    assert (r.status, r.filled_qty, r.avg_price) == (status, filled, avg)
    assert (r.venue_order_id != "") == (status not in (OrderStatus.NOT_FOUND, OrderStatus.REJECTED))


def test_duplicate_client_order_id_is_rejected_and_the_original_kept():
    """A second PlaceOrder with a live or done id is rejected; the first order is untouched."""
    logic, clock = venue()
    logic.handle(quote(clock, "100", "101"))
    submit(logic, clock, place(clock, "c1", Side.BUY, "1", OrderType.LIMIT, "90"))
    (r,) = submit(logic, clock, place(clock, "c1", Side.SELL, "3"))
    assert isinstance(r, OrderRejected) and r.reason == "duplicate_client_order_id"
    rec = logic.order("c1")
    assert (rec.side, rec.qty, rec.status) == (Side.BUY, D("1"), OrderStatus.NEW)
    assert logic.stats()["rejects"] == {"duplicate_client_order_id": 1}


def test_a_rejected_client_order_id_may_be_sent_again():
    """An id whose order was rejected (never live) is accepted when sent again."""
    logic, clock = venue()
    (r,) = submit(logic, clock, place(clock, "c1", Side.BUY, "1"))
    assert r.reason == "no_market"
    logic.handle(quote(clock, "100", "101"))
    out = submit(logic, clock, place(clock, "c1", Side.BUY, "1"))
    assert [type(m) for m in out] == [OrderAccepted, OrderFilled]


def test_reduce_only_without_a_position_is_rejected():
    """A reduce-only order while flat is rejected."""
    logic, clock = venue()
    logic.handle(quote(clock, "100", "101"))
    (r,) = submit(logic, clock, place(clock, "c1", Side.SELL, "1", reduce_only=True))
    assert r.reason == "reduce_only_rejected"


def test_reduce_only_that_would_add_or_flip_is_rejected():
    """Reduce-only on the position's own side, or beyond its size, is rejected; a true reduce fills."""
    logic, clock = venue()
    logic.handle(quote(clock, "100", "101"))
    submit(logic, clock, place(clock, "open", Side.BUY, "1"))
    (add,) = submit(logic, clock, place(clock, "c1", Side.BUY, "0.5", reduce_only=True))
    (flip,) = submit(logic, clock, place(clock, "c2", Side.SELL, "1.5", reduce_only=True))
    assert add.reason == flip.reason == "reduce_only_rejected"
    out = submit(logic, clock, place(clock, "c3", Side.SELL, "1", reduce_only=True))
    assert sum(f.qty for f in fills(out)) == D("1")
    assert logic.venue_position().qty == 0


def test_working_reduce_only_order_is_canceled_when_the_position_is_gone():
    """A resting reduce-only order never opens a position: it is canceled once there is nothing to reduce."""
    logic, clock = venue()
    logic.handle(quote(clock, "100", "101"))
    submit(logic, clock, place(clock, "open", Side.BUY, "1"))
    submit(logic, clock, place(clock, "tp", Side.SELL, "1", OrderType.LIMIT, "110", reduce_only=True))
    out = submit(logic, clock, place(clock, "close", Side.SELL, "1"))
    (c,) = of_type(out, OrderCanceled)
    assert (c.client_order_id, c.reason) == ("tp", "reduce_only")
    clock.advance(MS)
    assert logic.handle(quote(clock, "111", "112")) == []
    assert logic.venue_position().qty == 0


def test_venue_position_is_the_signed_sum_of_fills():
    """After random buys and sells, the venue's qty is the signed sum and avg/realized PnL agree."""
    logic, clock = venue(latency_ms=0)
    rnd = random.Random(3)
    out = []
    for i in range(60):
        mid = D(100 + rnd.randint(-5, 5))
        clock.advance(MS)
        out += logic.handle(quote(clock, mid - D("0.5"), mid + D("0.5"), "0.7", "0.7"))
        side = Side.BUY if rnd.random() < 0.5 else Side.SELL
        out += logic.handle(place(clock, f"c{i}", side, str(D(rnd.randint(1, 20)) / 10)))
    f = fills(out)
    signed = sum((x.qty if x.side is Side.BUY else -x.qty) for x in f)
    pos = logic.venue_position()
    assert pos.qty == signed
    assert pos.fees == sum(x.fee for x in f)
    # Realized + unrealized at a price P equals the cash flow of all fills marked at P.
    mark = D("100")
    cash = sum((-x.qty if x.side is Side.BUY else x.qty) * x.price for x in f)
    assert abs(pos.realized_pnl + (mark - pos.avg_price) * pos.qty - (cash + signed * mark)) < D("1e-18")


def test_reject_rate_draws_from_the_seeded_rng():
    """reject_rate rejects a share of orders with "venue_rejected", the same ones for the same seed."""

    def run(seed):
        logic, clock = venue(latency_ms=0, reject_rate=0.5, seed=seed)
        logic.handle(quote(clock, "100", "101", "1000", "1000"))
        out = []
        for i in range(40):
            out += logic.handle(place(clock, f"c{i}", Side.BUY, "0.1"))
        return [m.client_order_id for m in of_type(out, OrderRejected)], logic.stats()

    rejected, stats = run(1)
    assert 5 < len(rejected) < 35
    assert run(1)[0] == rejected
    assert run(2)[0] != rejected
    assert stats["rejects"] == {"venue_rejected": len(rejected)}


def test_transient_errors_reject_with_their_reason():
    """transient_error_rate=1 rejects every new order with "transient_error"."""
    logic, clock = venue(transient_error_rate=1.0)
    logic.handle(quote(clock, "100", "101"))
    (r,) = submit(logic, clock, place(clock, "c1", Side.BUY, "1"))
    assert isinstance(r, OrderRejected) and r.reason == "transient_error"
    assert logic.venue_position().qty == 0


def test_dropped_ack_leaves_the_order_done_and_only_a_query_tells():
    """With the response lost nothing is emitted, yet the venue filled it and a query says so."""
    logic, clock = venue(drop_ack_rate=1.0)
    logic.handle(quote(clock, "100", "101"))
    assert submit(logic, clock, place(clock, "c1", Side.BUY, "1")) == []
    (r,) = submit(logic, clock, query(clock, "c1"))
    assert (r.status, r.filled_qty, r.avg_price) == (OrderStatus.FILLED, D("1"), D("101"))
    assert logic.venue_position().qty == D("1")
    assert (logic.stats()["dropped_acks"], logic.stats()["dropped_fills"]) == (1, 1)


def test_fill_delay_holds_fills_back():
    """An accepted order does not fill before fill_delay_ms has passed."""
    logic, clock = venue(fill_delay_ms=50)
    logic.handle(quote(clock, "100", "101"))
    out = submit(logic, clock, place(clock, "c1", Side.BUY, "1"))
    assert [type(m) for m in out] == [OrderAccepted]
    clock.advance(49 * MS)
    assert logic.handle(tick(clock)) == []
    clock.advance(MS)
    assert len(fills(logic.handle(tick(clock)))) == 1


def test_last_trade_is_the_market_until_a_quote_arrives():
    """Without any quote, a market order fills at the last print's price up to its size."""
    logic, clock = venue()
    logic.handle(trade(clock, "100.5", "0.3", Side.BUY))
    (f,) = fills(submit(logic, clock, place(clock, "c1", Side.BUY, "1")))
    assert (f.price, f.qty) == (D("100.5"), D("0.3"))


def test_quantity_off_the_step_is_rejected():
    """A quantity that is not a multiple of qty_step is rejected as invalid."""
    logic, clock = venue()
    logic.handle(quote(clock, "100", "101"))
    (r,) = submit(logic, clock, place(clock, "c1", Side.BUY, "0.0005"))
    assert r.reason == "invalid_qty"


def test_stats_count_orders_fills_and_rejects():
    """stats() counts orders, fills, rejects by reason and cancels."""
    logic, clock = venue()
    submit(logic, clock, place(clock, "x", Side.BUY, "1"))
    logic.handle(quote(clock, "100", "101"))
    submit(logic, clock, place(clock, "a", Side.BUY, "1"))
    submit(logic, clock, place(clock, "b", Side.BUY, "1", OrderType.LIMIT, "90"))
    submit(logic, clock, cancel(clock, "b"))
    s = logic.stats()
    assert (s["orders"], s["accepted"], s["fills"], s["rejected"], s["cancels"]) == (3, 2, 1, 1, 1)
    assert s["rejects"] == {"no_market": 1}


@pytest.mark.parametrize(
    ("field", "value"),
    [("latency_ms", -1), ("reject_rate", 1.5), ("drop_ack_rate", -0.1), ("taker_fee_bps", 4.0), ("fill_delay_ms", 0.5)],
)
def test_bad_paper_config_names_the_key(field, value):
    """validate() raises ConfigError keyed venue.paper.<field>."""
    with pytest.raises(ConfigError) as err:
        PaperConfig(**{field: value}).validate()
    assert err.value.key == f"venue.paper.{field}"


def test_shadow_venue_never_fills():
    """The shadow venue rejects every order with "shadow_mode", cancels nothing, and knows no order."""
    clock = ManualClock()
    logic = ShadowVenueLogic(make_ctx(f"{SYM}/venue", SYM, clock))
    assert logic.handle(quote(clock, "100", "101")) == []
    (r,) = logic.handle(place(clock, "c1", Side.BUY, "1"))
    assert isinstance(r, OrderRejected) and r.reason == "shadow_mode"
    clock.advance(100 * MS)
    assert logic.handle(quote(clock, "99", "100")) == []
    assert logic.handle(cancel(clock, "c1")) == []
    (q,) = logic.handle(query(clock, "c1"))
    assert q.status is OrderStatus.NOT_FOUND and q.filled_qty == 0
    assert logic.stats()["shadow_rejects"] == 1
    assert ShadowVenueLogic.ROLE == "venue" and logic.handles(RawMarketEvent)


def test_paper_venue_fills_against_simulated_frames():
    """Fed decoded simulator frames, a market order fills in full at quoted asks on the tick grid."""
    from arbor.adapters.decoding import decoder_for
    from arbor.adapters.sim import SimMarket, SimSymbol

    spec = SimSymbol(symbol=SYM, start_price=D("60000"), tick_size=D("0.10"), qty_step=D("0.001"))
    start = 1_723_161_255_000_000_000
    decode = decoder_for("sim")
    clock = ManualClock(start)
    logic = PaperVenueLogic(make_ctx(f"{SYM}/venue", SYM, clock), PaperConfig())
    out = []
    market = SimMarket([spec], seed=4, start_ns=start)
    for n, (ts, sym, payload) in enumerate(market.frames(until_ns=start + 60 * 10**9)):
        clock.set(ts)
        for fields in decode(payload):
            event = RawMarketEvent(symbol=sym, venue="sim", ingest_seq=n, ts_recv_ns=ts, raw=payload, **fields)
            out += logic.handle(event)
        if n == 50:
            out += logic.handle(place(clock, "big", Side.BUY, "25"))
    f = fills(out)
    assert sum(x.qty for x in f) == D("25") and len(f) > 1
    assert all(x.price % spec.tick_size == 0 and not x.is_maker for x in f)
    assert logic.venue_position().qty == D("25")


# -- order history and snapshots --------------------------------------------------------------
def filled_orders(logic, clock, n, start=0):
    """Place and fill ``n`` market buys against a deep quote."""
    logic.handle(quote(clock, "99", "1000", "100", "1000"))
    for i in range(start, start + n):
        assert fills(submit(logic, clock, place(clock, f"c{i}", Side.BUY, "0.01")))


def test_settled_orders_beyond_the_history_are_forgotten_oldest_first():
    """At most ``order_history`` settled orders are kept; a forgotten one is unknown to queries."""
    logic, clock = venue(latency_ms=0, order_history=3)
    filled_orders(logic, clock, 5)
    logic.handle(place(clock, "c5", Side.BUY, "0.01"))  # the next arrival trims the history
    kept = [st.place.client_order_id for st in logic.snapshot().orders]
    assert kept == ["c2", "c3", "c4", "c5"]
    answer = submit(logic, clock, query(clock, "c0"))
    assert [m.status for m in of_type(answer, OrderStatusReported)] == [OrderStatus.NOT_FOUND]


def test_live_orders_are_never_forgotten():
    logic, clock = venue(latency_ms=0, order_history=1)
    logic.handle(quote(clock, "99", "1000", "100", "1000"))
    submit(logic, clock, place(clock, "rest", Side.BUY, "0.01", OrderType.LIMIT, limit="90"))
    filled_orders(logic, clock, 3)
    logic.handle(place(clock, "c9", Side.BUY, "0.01"))
    kept = [st.place.client_order_id for st in logic.snapshot().orders]
    assert "rest" in kept and kept[-1] == "c9"


def test_a_settled_orders_record_is_built_once_and_survives_restore():
    """Snapshots share the record of a settled order (so a store writes it once); a restored venue too."""
    logic, clock = venue(latency_ms=0)
    filled_orders(logic, clock, 2)
    first, second = logic.snapshot(), logic.snapshot()
    assert all(a is b for a, b in zip(first.orders, second.orders, strict=True))
    again, _ = venue(latency_ms=0)
    again.restore(second)
    assert again.snapshot() == second
    assert all(a is b for a, b in zip(again.snapshot().orders, second.orders, strict=True))


def test_order_history_must_be_positive():
    with pytest.raises(ConfigError, match="venue.paper.order_history"):
        PaperConfig(order_history=0).validate()


# -- market data no venue sends: refused, never traded on (issue 14) ------------------------------
def recorded_quote(shared_data, clock):
    """The first bookTicker of the real USD-M BTCUSDT recording, as the collector would hand it on."""
    import gzip

    from arbor.adapters.binance.usdm import decode_usdm

    with gzip.open(shared_data / "binance_usdm" / "usdm_btcusdt_20240808.gz", "rb") as fh:
        for line in fh:
            payload = line.rstrip(b"\n").partition(b" ")[2]
            if b"@bookTicker" in payload:
                (fields,) = decode_usdm(payload)
                now = clock.now_ns()
                return RawMarketEvent(symbol=SYM, venue="binance_usdm", ingest_seq=next(_seq), ts_recv_ns=now,
                                      raw=payload, **{**fields, "ts_event_ns": now})
    raise AssertionError("no bookTicker in the recording")


def test_buy_is_never_filled_at_an_ask_of_zero(shared_data):
    """A quote with ask 0 (built past the decoder from a real bookTicker) is refused: no fill at 0."""
    logic, clock = venue()
    good = recorded_quote(shared_data, clock)
    logic.handle(evolve_message(good, ask_price=D("0")))
    out = submit(logic, clock, place(clock, "c1", Side.BUY, "0.01"))
    assert all(f.price > 0 for f in fills(out))
    assert logic.venue_position().qty == 0
    assert logic.stats()["refused_market_data"] == 1


def test_crossed_ask_gives_no_fill_and_no_fake_pnl(shared_data):
    """A short closed while the ask reads 0.02 (below the bid) is not filled there: no fake realized PnL."""
    logic, clock = venue()
    good = recorded_quote(shared_data, clock)
    logic.handle(good)
    submit(logic, clock, place(clock, "open", Side.SELL, "0.08"))
    assert logic.venue_position().qty == D("-0.08")
    clock.advance(MS)
    logic.handle(evolve_message(good, ask_price=D("0.02"), ts_event_ns=clock.now_ns()))
    out = submit(logic, clock, place(clock, "close", Side.BUY, "0.08", reduce_only=True))
    assert fills(out) == [] and [r.reason for r in of_type(out, OrderRejected)] == ["no_market"]
    assert logic.venue_position().realized_pnl == 0
    clock.advance(MS)
    logic.handle(evolve_message(good, ts_event_ns=clock.now_ns()))  # the market is sane again
    out = submit(logic, clock, place(clock, "close2", Side.BUY, "0.08", reduce_only=True))
    assert [f.price for f in fills(out)] == [good.ask_price]
    assert logic.venue_position().qty == 0


@pytest.mark.parametrize("field", ["bid_price", "ask_price"])
@pytest.mark.parametrize("value", ["-1", "NaN", "Infinity", "0"])
def test_quote_prices_not_positive_and_finite_are_refused(field, value):
    """Quotes with a price that is not positive and finite are counted and leave no market to fill on."""
    logic, clock = venue()
    logic.handle(evolve_message(quote(clock, "100", "101"), **{field: D(value)}))
    (r,) = submit(logic, clock, place(clock, "c1", Side.BUY, "1"))
    assert r.reason == "no_market"
    assert logic.stats()["refused_market_data"] == 1


@pytest.mark.parametrize("value", ["-5", "NaN", "0", "Infinity"])
def test_trade_prices_not_positive_and_finite_are_refused(value):
    """A print at a price that is not positive and finite neither quotes the book nor fills a resting order."""
    logic, clock = venue()
    logic.handle(trade(clock, value, "1", Side.SELL))
    (r,) = submit(logic, clock, place(clock, "c1", Side.BUY, "1"))
    assert r.reason == "no_market"
    logic.handle(quote(clock, "100", "101"))
    submit(logic, clock, place(clock, "c2", Side.BUY, "1", OrderType.LIMIT, "99"))
    clock.advance(MS)
    assert fills(logic.handle(trade(clock, value, "1", Side.SELL))) == []
    assert logic.stats()["refused_market_data"] == 2


def test_duplicate_fill_rate_delivers_the_same_fill_twice():
    """A duplicated fill report carries the same fill id; the venue's record counts it once."""
    logic, clock = venue(latency_ms=0, duplicate_fill_rate=1.0)
    logic.handle(quote(clock, "100", "101"))
    out = logic.handle(place(clock, "c1", Side.BUY, "1"))
    got = fills(out)
    assert len(got) == 2 and got[0] == got[1]
    assert logic.order("c1").filled_qty == D("1") and logic.venue_position().qty == D("1")
    assert logic.stats()["duplicated_fills"] == 1


def test_late_fill_arrives_after_the_reports_made_meanwhile():
    """A late fill report is held back late_fill_ms: the order's status query, answered in between,
    already says FILLED; the fill itself comes after it."""
    logic, clock = venue(latency_ms=0, late_fill_rate=1.0, late_fill_ms=100)
    logic.handle(quote(clock, "100", "101"))
    out = logic.handle(place(clock, "c1", Side.BUY, "1"))
    assert of_type(out, OrderAccepted) and not fills(out)
    clock.advance(50 * MS)
    status = logic.handle(query(clock, "c1"))
    assert status[0].status is OrderStatus.FILLED and not fills(status)
    clock.advance(50 * MS)
    late = logic.handle(tick(clock))
    assert [f.client_order_id for f in fills(late)] == ["c1"] and logic.stats()["late_fills"] == 1


def test_disconnect_loses_requests_and_reports_until_it_is_over():
    """While the connection is down nothing sent arrives and nothing the venue says is delivered;
    working orders keep filling at the venue (its records know)."""
    logic, clock = venue(latency_ms=0, disconnect_rate=1.0, disconnect_ms=1000)
    logic.handle(quote(clock, "100", "101", ask_qty="0.5"))
    assert of_type(logic.handle(place(clock, "c1", Side.BUY, "1")), OrderAccepted)
    assert logic.handle(tick(clock)) == []  # the tick drops the connection
    assert logic.stats()["disconnects"] == 1
    assert logic.handle(place(clock, "c2", Side.BUY, "1")) == [] and logic.order("c2") is None
    assert logic.handle(quote(clock, "100", "101", ask_qty="5")) == []  # c1 fills, the report is lost
    assert logic.order("c1").filled_qty == D("1")
    assert logic.stats()["lost_requests"] == 1 and logic.stats()["lost_reports"] == 1
    clock.advance(1000 * MS)
    assert logic.handle(query(clock, "c1"))[0].status is OrderStatus.FILLED  # back up


def test_ending_fault_injection_still_delivers_what_is_held_on_the_wire():
    """After ``end_fault_injection`` no fault is drawn any more (nothing held back, duplicated,
    rejected, dropped or disconnected); a fill report already held back is still delivered at its
    time (venue truth is never lost)."""
    logic, clock = venue(latency_ms=0, late_fill_rate=1.0, late_fill_ms=100, duplicate_fill_rate=1.0)
    logic.handle(quote(clock, "100", "101"))
    assert not fills(logic.handle(place(clock, "c1", Side.BUY, "1")))  # held back
    logic.end_fault_injection()
    rates = ("reject_rate", "drop_ack_rate", "transient_error_rate", "duplicate_fill_rate", "late_fill_rate",
             "disconnect_rate")
    assert all(getattr(logic.config, r) == 0 for r in rates) and logic.config.late_fill_ms == 100
    got = fills(logic.handle(place(clock, "c2", Side.BUY, "1")))
    assert [f.client_order_id for f in got] == ["c2"]  # neither held back nor duplicated
    clock.advance(100 * MS)
    assert [f.client_order_id for f in fills(logic.handle(tick(clock)))] == ["c1"]
    assert logic.venue_position().qty == D("2")
