"""ClusterMetrics: an Observer writing Prometheus metrics into a registry it is given."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from arbor.adapters.operator.metrics import ClusterMetrics
from arbor.messages import (
    Action,
    ActionDenied,
    ActorRestarted,
    Direction,
    Envelope,
    KillSwitchEngaged,
    MandateKind,
    MarketEventKind,
    OrderFilled,
    OrderIntent,
    OrderRejected,
    OrderType,
    PlaceOrder,
    PositionChanged,
    PositionState,
    RawMarketEvent,
    ReconciliationCompleted,
    Side,
    SubmitOrder,
    TradingState,
    TradingStateChanged,
    VenuePayload,
)
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

T0 = 1_723_161_600_000_000_000


class Clock:
    def __init__(self) -> None:
        self.ns = T0

    def now_ns(self) -> int:
        return self.ns


class Perf:
    """A perf counter the test moves by hand."""

    def __init__(self) -> None:
        self.ns = 0

    def __call__(self) -> int:
        return self.ns


def env(msg_id: int, cause: int, payload: Any, sender: str = "BTCUSDT/executor") -> Envelope:
    return Envelope(msg_id=msg_id, sender=sender, receiver="", ts_event_ns=T0, ts_recv_ns=T0, causation_id=cause,
                    payload=payload)


def place(symbol: str = "BTCUSDT") -> PlaceOrder:
    return PlaceOrder(symbol=symbol, client_order_id="c1", side=Side.BUY, qty=Decimal("0.01"),
                      order_type=OrderType.MARKET, limit_price=None, reduce_only=False, ts_event_ns=T0)


def raw(symbol: str = "BTCUSDT") -> RawMarketEvent:
    return RawMarketEvent(symbol=symbol, venue="sim", ingest_seq=1, ts_event_ns=T0, ts_recv_ns=T0,
                          kind=MarketEventKind.TRADE, raw=b"{}", price=Decimal("1"), qty=Decimal("1"))


def value(reg: CollectorRegistry, name: str, **labels: str) -> float | None:
    return reg.get_sample_value(name, labels)


def make() -> tuple[ClusterMetrics, CollectorRegistry, Perf, Clock]:
    reg, perf, clock = CollectorRegistry(), Perf(), Clock()
    return ClusterMetrics(reg, clock, perf_ns=perf), reg, perf, clock


def test_tick_to_order_latency_follows_causation() -> None:
    """The latency runs from the market frame that entered to the PlaceOrder at the end of its causal chain."""
    m, reg, perf, _ = make()
    m.external(env(1, 0, VenuePayload(venue="sim", symbol="BTCUSDT", payload=b"{}"), sender="feed"))
    m.emitted(env(2, 1, raw(), sender="BTCUSDT/collector"), ())
    m.emitted(env(3, 2, SubmitOrder(symbol="BTCUSDT", action_id="a", intent=OrderIntent.ENTRY, side=Side.BUY,
                                    qty=Decimal("1"), order_type=OrderType.MARKET, limit_price=None,
                                    reduce_only=False, ts_event_ns=T0), sender="BTCUSDT/position"), ())
    perf.ns = 3_000_000  # 3 ms later
    m.emitted(env(4, 3, place()), ())
    assert value(reg, "arbor_tick_to_order_latency_seconds_count") == 1
    assert value(reg, "arbor_tick_to_order_latency_seconds_sum") == 0.003
    assert value(reg, "arbor_orders_total", status="placed") == 1


def test_orders_not_caused_by_market_data_have_no_latency() -> None:
    """A PlaceOrder caused by a timer or command is counted but not timed."""
    m, reg, _, _ = make()
    m.emitted(env(9, 0, place()), ())
    assert value(reg, "arbor_tick_to_order_latency_seconds_count") == 0
    assert value(reg, "arbor_orders_total", status="placed") == 1


def test_causation_memory_is_bounded() -> None:
    """Tracking causes never holds more than max_tracked entries, however many events pass."""
    reg = CollectorRegistry()
    m = ClusterMetrics(reg, Clock(), max_tracked=100)
    for i in range(1, 5000):
        m.external(env(2 * i, 0, VenuePayload(venue="sim", symbol="BTCUSDT", payload=b"{}"), sender="feed"))
        m.emitted(env(2 * i + 1, 2 * i, raw(), sender="BTCUSDT/collector"), ())
    assert len(m._entered) <= 100 and len(m._cause) <= 100
    assert value(reg, "arbor_market_events_total", symbol="BTCUSDT", venue="sim") == 4999


def test_venue_answers_are_counted_once() -> None:
    """Fills and rejects count when the venue emits them, not again when the executor forwards them."""
    m, reg, _, _ = make()
    fill = OrderFilled(symbol="BTCUSDT", client_order_id="c1", venue_order_id="v1", fill_id="f1", side=Side.BUY,
                       qty=Decimal("1"), price=Decimal("10"), fee=Decimal("0.01"), is_maker=False,
                       cum_qty=Decimal("1"), leaves_qty=Decimal("0"), ts_event_ns=T0)
    m.emitted(env(1, 0, fill, sender="BTCUSDT/venue"), ())
    m.emitted(env(2, 1, fill, sender="BTCUSDT/executor"), ())
    rej = OrderRejected(symbol="BTCUSDT", client_order_id="c2", reason="insufficient_margin: need 5", ts_event_ns=T0)
    m.emitted(env(3, 0, rej, sender="BTCUSDT/venue"), ())
    assert value(reg, "arbor_fills_total", symbol="BTCUSDT") == 1
    assert value(reg, "arbor_orders_total", status="filled") == 1
    assert value(reg, "arbor_order_rejects_total", reason="insufficient_margin") == 1


def test_reason_labels_are_bounded() -> None:
    """More distinct reject reasons than the cap fold into "other": no unbounded label set."""
    m, reg, _, _ = make()
    for i in range(100):
        m.emitted(env(i + 1, 0, OrderRejected(symbol="BTCUSDT", client_order_id=f"c{i}", reason=f"r{i}",
                                              ts_event_ns=T0), sender="BTCUSDT/venue"), ())
    families = {f.name: f for f in text_string_to_metric_families(generate_latest(reg).decode())}
    reasons = {s.labels["reason"] for s in families["arbor_order_rejects"].samples if s.name.endswith("_total")}
    assert len(reasons) <= 33 and "other" in reasons


def test_states_pnl_and_supervision() -> None:
    """Trading state, kill switch, PnL, restarts, denials and drift land in their gauges and counters."""
    m, reg, _, clock = make()
    m.emitted(env(1, 0, TradingStateChanged(scope="ETHUSDT", old=TradingState.ACTIVE, new=TradingState.HALTED,
                                            who="op", reason="x", ts_event_ns=T0), sender="risk"), ())
    m.emitted(env(2, 0, KillSwitchEngaged(who="op", reason="drill", ts_event_ns=T0), sender="risk"), ())
    m.emitted(env(3, 0, PositionChanged(symbol="ETHUSDT", state=PositionState.OPEN, direction=Direction.SHORT,
                                        qty=Decimal("2"), avg_entry_price=Decimal("100"), realized_pnl=Decimal("5"),
                                        fees=Decimal("1"), ts_event_ns=T0), sender="ETHUSDT/position"), ())
    m.emitted(env(4, 0, ActorRestarted(actor_id="ETHUSDT/feature", symbol="ETHUSDT", restarts=1, ts_event_ns=T0),
                  sender="ETHUSDT/supervisor"), ())
    action = Action(action_id="a", symbol="ETHUSDT", cycle=1, kind=MandateKind.ENTRY, direction=Direction.LONG,
                    qty=Decimal("1"), mark_price=Decimal("1"), data_ts_ns=T0, ts_event_ns=T0, reason="")
    m.emitted(env(5, 0, ActionDenied(symbol="ETHUSDT", action=action, reason="max_symbol_notional", detail="",
                                     ts_event_ns=T0), sender="risk"), ())
    m.emitted(env(6, 0, ReconciliationCompleted(symbol="ETHUSDT", outcome="DRIFT_UNRESOLVED", local_qty=Decimal("1"),
                                                venue_qty=Decimal("3"), venue_avg_price=None, detail="",
                                                ts_event_ns=T0), sender="ETHUSDT/executor"), ())
    m.emitted(env(7, 0, raw("ETHUSDT"), sender="ETHUSDT/collector"), ())
    clock.ns = T0 + 2_500_000_000
    m.sample_staleness()
    m.set_mailbox_depths({"risk": 4})
    m.journal_written(100)
    m.journal_fsynced(0.002)
    assert value(reg, "arbor_trading_state", scope="ETHUSDT") == 2
    assert value(reg, "arbor_kill_switch_engaged") == 1
    assert value(reg, "arbor_realized_pnl_quote", symbol="ETHUSDT") == 4
    assert value(reg, "arbor_actor_restarts_total", actor_type="feature") == 1
    assert value(reg, "arbor_risk_denials_total", reason="max_symbol_notional") == 1
    assert value(reg, "arbor_reconciliation_drift_qty", symbol="ETHUSDT") == 2
    assert value(reg, "arbor_market_data_age_seconds", symbol="ETHUSDT") == 2.5
    assert value(reg, "arbor_mailbox_depth_messages", actor="risk") == 4
    assert value(reg, "arbor_journal_written_bytes_total") == 100
    assert value(reg, "arbor_journal_fsync_seconds_count") == 1


def test_risk_status_sets_drawdown_equity_and_exposure() -> None:
    """Risk's status (money as strings) sets drawdown, equity and exposure gauges."""
    m, reg, _, _ = make()
    m.set_risk_status({"drawdown_pct": "0.0125", "equity": "98000", "gross_exposure": "5000",
                       "net_exposure": "-1000", "kill_switch": {"engaged": False}})
    assert value(reg, "arbor_drawdown_ratio") == 0.0125
    assert value(reg, "arbor_equity_quote") == 98000
    assert value(reg, "arbor_exposure_quote", kind="net") == -1000


def test_uses_only_the_given_registry() -> None:
    """Two instances in two registries do not collide (nothing touches the global default registry)."""
    a, b = CollectorRegistry(), CollectorRegistry()
    ClusterMetrics(a, Clock())
    ClusterMetrics(b, Clock())
    assert REGISTRY.get_sample_value("arbor_kill_switch_engaged") is None
