"""Prometheus metrics of a running cluster, in a registry the caller owns.

``ClusterMetrics`` is an Observer (it runs on group threads: a lock-free counter increment or a
short locked dict update per message) plus setters for what is sampled rather than observed:
mailbox depths, Risk's status (drawdown, equity, exposure), data staleness, and the journal's
bytes and fsync latency. Label sets are bounded: symbols, venues, actor types, scopes, order
statuses and stable reason codes (capped, the rest counted as ``other``); never an order id.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

from arbor.actors.topology import role_of
from arbor.messages import (
    ALL_SYMBOLS,
    Action,
    ActionApproved,
    ActionDenied,
    ActorFailed,
    ActorRestarted,
    AssumptionHealthChanged,
    DeadLetter,
    DecodeFailure,
    Envelope,
    FeatureSnapshot,
    KillSwitchEngaged,
    KillSwitchReset,
    MandateSet,
    OrderAccepted,
    OrderCanceled,
    OrderFilled,
    OrderRejected,
    OrderTimedOut,
    PlaceOrder,
    PoisonMessageQuarantined,
    PositionChanged,
    RawMarketEvent,
    ReconciliationCompleted,
    SubmitOrder,
    SymbolQuarantined,
    TradingStateChanged,
    VenuePayload,
)
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

NS_PER_S = 1e9
LATENCY_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
# Messages on the path from a market frame to an order: only their causation is remembered.
_PATH = frozenset({RawMarketEvent, FeatureSnapshot, MandateSet, Action, ActionApproved, SubmitOrder})
_MAX_HOPS = 16
MAX_REASONS = 32


class _Bounded(dict):
    """An insertion-ordered dict that forgets its oldest keys beyond ``limit`` (caller holds the lock)."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit

    def put(self, key: int, value: int) -> None:
        self[key] = value
        if len(self) > self.limit:
            del self[next(iter(self))]


class ClusterMetrics:
    """Observer and sampler feeding the metrics below into ``registry``."""

    wants_inputs = False

    def __init__(self, registry: CollectorRegistry, clock: Any, *, perf_ns: Callable[[], int] = time.perf_counter_ns,
                 max_tracked: int = 20_000) -> None:
        self.registry = registry
        self._clock = clock
        self._perf_ns = perf_ns
        self._lock = threading.Lock()
        self._entered = _Bounded(max_tracked)  # external market frame msg_id -> perf ns
        self._cause = _Bounded(max_tracked)  # path message msg_id -> causation msg_id
        self._last_event_ns: dict[str, int] = {}
        self._reasons: dict[str, set[str]] = {}
        r = registry
        self.tick_to_order = Histogram(
            "arbor_tick_to_order_latency_seconds", "From a market frame entering the runtime to the PlaceOrder it caused",
            registry=r, buckets=LATENCY_BUCKETS)
        self.market_events = Counter("arbor_market_events_total", "Decoded market events", ["symbol", "venue"], registry=r)
        self.decode_failures = Counter("arbor_decode_failures_total", "Frames that could not be decoded",
                                       ["symbol", "venue"], registry=r)
        self.mailbox_depth = Gauge("arbor_mailbox_depth_messages", "Messages waiting in an actor's mailbox",
                                   ["actor"], registry=r)
        self.failures = Counter("arbor_actor_failures_total", "Actor failures", ["actor_type"], registry=r)
        self.restarts = Counter("arbor_actor_restarts_total", "Actor restarts", ["actor_type"], registry=r)
        self.quarantines = Counter("arbor_symbol_quarantines_total", "Symbols quarantined by supervision",
                                   ["symbol"], registry=r)
        self.poison = Counter("arbor_poison_messages_total", "Messages set aside after crashing an actor twice",
                              ["actor_type"], registry=r)
        self.dead_letters = Counter("arbor_dead_letters_total", "Messages without a handler or receiver",
                                    ["actor_type"], registry=r)
        self.trading_state = Gauge("arbor_trading_state", "Trading state per scope: 0 ACTIVE, 1 REDUCING, 2 HALTED "
                                   "(scope '*' is global)", ["scope"], registry=r)
        self.kill_switch = Gauge("arbor_kill_switch_engaged", "1 while the kill switch is engaged", registry=r)
        self.orders = Counter("arbor_orders_total", "Order events by status", ["status"], registry=r)
        self.rejects = Counter("arbor_order_rejects_total", "Venue rejections by reason", ["reason"], registry=r)
        self.denials = Counter("arbor_risk_denials_total", "Actions Risk denied, by reason", ["reason"], registry=r)
        self.fills = Counter("arbor_fills_total", "Executions", ["symbol"], registry=r)
        self.realized = Gauge("arbor_realized_pnl_quote", "Realized PnL net of fees since start, quote currency",
                              ["symbol"], registry=r)
        self.unrealized = Gauge("arbor_unrealized_pnl_quote", "Unrealized PnL at the last mark, quote currency",
                                ["symbol"], registry=r)
        self.drawdown = Gauge("arbor_drawdown_ratio", "Drawdown of equity from its peak (0.05 = 5%)", registry=r)
        self.equity = Gauge("arbor_equity_quote", "Account equity as Risk books it", registry=r)
        self.exposure = Gauge("arbor_exposure_quote", "Exposure, quote currency", ["kind"], registry=r)
        self.drift = Gauge("arbor_reconciliation_drift_qty", "|venue qty - local qty| at the last reconciliation",
                           ["symbol"], registry=r)
        self.reconciliations = Counter("arbor_reconciliations_total", "Reconciliations by outcome", ["outcome"],
                                       registry=r)
        self.assumption_status = Gauge("arbor_assumption_status", "Health of a declared market assumption: "
                                       "-1 UNKNOWN, 0 OK, 1 DRIFTING, 2 BROKEN", ["symbol", "assumption"], registry=r)
        self.assumption_value = Gauge("arbor_assumption_value", "The measured statistic of a market assumption "
                                      "(at its last change, or the last operator-cycle sample)", ["symbol", "assumption"],
                                      registry=r)
        self.assumption_changes = Counter("arbor_assumption_changes_total", "Health changes of market assumptions, "
                                          "by the status entered", ["symbol", "assumption", "status"], registry=r)
        self.staleness = Gauge("arbor_market_data_age_seconds", "Age of the newest market event per symbol",
                               ["symbol"], registry=r)
        self.journal_bytes = Counter("arbor_journal_written_bytes_total", "Bytes appended to the journal", registry=r)
        self.journal_fsync = Histogram("arbor_journal_fsync_seconds", "Journal fsync latency", registry=r,
                                       buckets=(0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0))
        self._marks: dict[str, tuple[Decimal, Decimal] | None] = {}  # symbol -> (avg entry, signed qty)

    # -- Observer ----------------------------------------------------------------------------
    def external(self, env: Envelope) -> None:
        if type(env.payload) is VenuePayload:
            now = self._perf_ns()
            with self._lock:
                self._entered.put(env.msg_id, now)

    def processed(self, actor_id: str, env: Envelope, now_ns: int = 0) -> None:
        pass

    def emitted(self, env: Envelope, receivers: tuple[str, ...]) -> None:
        msg = env.payload
        t = type(msg)
        if t in _PATH:
            with self._lock:
                self._cause.put(env.msg_id, env.causation_id)
            if t is RawMarketEvent:
                self.market_events.labels(msg.symbol, msg.venue).inc()
                self._last_event_ns[msg.symbol] = msg.ts_recv_ns
            elif t is MandateSet:
                self._on_mark(msg.symbol, msg.mark_price)
            return
        handler = _HANDLERS.get(t)
        if handler is not None:
            handler(self, env)

    def _place_order(self, env: Envelope) -> None:
        self.orders.labels("placed").inc()
        now = self._perf_ns()
        started = None
        with self._lock:
            root = env.causation_id
            for _ in range(_MAX_HOPS):
                started = self._entered.get(root)
                if started is not None or not root:
                    break
                root = self._cause.get(root, 0)
        if started is None:
            return  # caused by a timer or a command, not by market data (or already forgotten)
        self.tick_to_order.observe((now - started) / NS_PER_S)

    def _venue_order(self, env: Envelope) -> None:
        if not env.sender.endswith("/venue"):
            return  # the executor forwards venue answers: count each once
        msg = env.payload
        t = type(msg)
        if t is OrderAccepted:
            self.orders.labels("accepted").inc()
        elif t is OrderFilled:
            self.fills.labels(msg.symbol).inc()
            if msg.leaves_qty == 0:
                self.orders.labels("filled").inc()
        elif t is OrderCanceled:
            self.orders.labels("canceled").inc()
        elif t is OrderRejected:
            self.orders.labels("rejected").inc()
            self.rejects.labels(self._bounded_reason("reject", msg.reason)).inc()

    def _timed_out(self, env: Envelope) -> None:
        self.orders.labels("timed_out").inc()

    def _denied(self, env: Envelope) -> None:
        self.denials.labels(self._bounded_reason("deny", env.payload.reason)).inc()

    def _bounded_reason(self, kind: str, reason: str) -> str:
        code = reason.split(":", 1)[0].strip()[:48] or "unknown"
        with self._lock:
            seen = self._reasons.setdefault(kind, set())
            if code in seen:
                return code
            if len(seen) >= MAX_REASONS:
                return "other"
            seen.add(code)
            return code

    def _position(self, env: Envelope) -> None:
        m: PositionChanged = env.payload
        self.realized.labels(m.symbol).set(float(m.realized_pnl - m.fees))
        with self._lock:
            if m.qty and m.avg_entry_price is not None and m.direction is not None:
                self._marks[m.symbol] = (m.avg_entry_price, m.qty * m.direction.sign)
            else:
                self._marks[m.symbol] = None
        if not m.qty:
            self.unrealized.labels(m.symbol).set(0.0)

    def _on_mark(self, symbol: str, mark: Decimal) -> None:
        with self._lock:
            held = self._marks.get(symbol)
        self.unrealized.labels(symbol).set(float((mark - held[0]) * held[1]) if held else 0.0)

    def _trading_state(self, env: Envelope) -> None:
        m: TradingStateChanged = env.payload
        self.trading_state.labels(m.scope).set(m.new.restriction)

    def _assumption(self, env: Envelope) -> None:
        m: AssumptionHealthChanged = env.payload
        self.assumption_status.labels(m.symbol, m.name).set(m.new.level)
        self.assumption_value.labels(m.symbol, m.name).set(m.value)
        self.assumption_changes.labels(m.symbol, m.name, m.new.value).inc()

    def _kill(self, env: Envelope) -> None:
        self.kill_switch.set(1 if type(env.payload) is KillSwitchEngaged else 0)

    def _supervision(self, env: Envelope) -> None:
        m = env.payload
        t = type(m)
        if t is ActorFailed:
            self.failures.labels(role_of(m.actor_id)).inc()
        elif t is ActorRestarted:
            self.restarts.labels(role_of(m.actor_id)).inc()
        elif t is SymbolQuarantined:
            self.quarantines.labels(m.symbol).inc()
        elif t is PoisonMessageQuarantined:
            self.poison.labels(role_of(m.actor_id)).inc()
        elif t is DeadLetter:
            self.dead_letters.labels(role_of(m.receiver) if m.receiver != "?" else "unrouted").inc()

    def _decode_failure(self, env: Envelope) -> None:
        m: DecodeFailure = env.payload
        self.decode_failures.labels(m.symbol, m.venue).inc()

    def _reconciled(self, env: Envelope) -> None:
        m: ReconciliationCompleted = env.payload
        self.reconciliations.labels(m.outcome).inc()
        self.drift.labels(m.symbol).set(float(abs(m.venue_qty - m.local_qty)) if m.outcome == "DRIFT_UNRESOLVED" else 0.0)

    # -- samplers and setters ----------------------------------------------------------------
    def init_symbols(self, symbols: tuple[str, ...]) -> None:
        """Create the per-symbol series at zero so dashboards see them before the first event."""
        self.trading_state.labels(ALL_SYMBOLS).set(0)
        self.kill_switch.set(0)
        for s in symbols:
            self.trading_state.labels(s).set(0)
            self.realized.labels(s).set(0)
            self.unrealized.labels(s).set(0)
            self.drift.labels(s).set(0)
            self.fills.labels(s)

    def set_mailbox_depths(self, depths: Mapping[str, int]) -> None:
        for actor, depth in depths.items():
            self.mailbox_depth.labels(actor).set(depth)

    def set_risk_status(self, status: Mapping[str, Any]) -> None:
        """Drawdown, equity and exposure from ``RiskLogic.status()`` (money as strings)."""
        self.drawdown.set(float(status["drawdown_pct"]))
        self.equity.set(float(status["equity"]))
        self.exposure.labels("gross").set(float(status["gross_exposure"]))
        self.exposure.labels("net").set(float(status["net_exposure"]))
        self.kill_switch.set(1 if status["kill_switch"]["engaged"] else 0)

    def set_assumptions(self, rows: Mapping[str, list[Mapping[str, Any]]]) -> None:
        """Current health and value per symbol's assumption (``OperatorView.assumptions()["symbols"]``)."""
        for symbol, assumptions in rows.items():
            for a in assumptions:
                self.assumption_status.labels(symbol, a["name"]).set(_LEVELS.get(a["status"], -1))
                self.assumption_value.labels(symbol, a["name"]).set(float(a["value"]))

    def sample_staleness(self) -> None:
        now = self._clock.now_ns()
        for symbol, ts in list(self._last_event_ns.items()):
            self.staleness.labels(symbol).set(max(0.0, (now - ts) / NS_PER_S))

    def journal_written(self, nbytes: int) -> None:
        """The journal appended ``nbytes`` (call from the journal writer)."""
        self.journal_bytes.inc(nbytes)

    def journal_fsynced(self, seconds: float) -> None:
        self.journal_fsync.observe(seconds)


_LEVELS = {"UNKNOWN": -1, "OK": 0, "DRIFTING": 1, "BROKEN": 2}

_HANDLERS: dict[type, Callable[[ClusterMetrics, Envelope], None]] = {
    AssumptionHealthChanged: ClusterMetrics._assumption,
    PlaceOrder: ClusterMetrics._place_order,
    OrderAccepted: ClusterMetrics._venue_order,
    OrderFilled: ClusterMetrics._venue_order,
    OrderCanceled: ClusterMetrics._venue_order,
    OrderRejected: ClusterMetrics._venue_order,
    OrderTimedOut: ClusterMetrics._timed_out,
    ActionDenied: ClusterMetrics._denied,
    PositionChanged: ClusterMetrics._position,
    TradingStateChanged: ClusterMetrics._trading_state,
    KillSwitchEngaged: ClusterMetrics._kill,
    KillSwitchReset: ClusterMetrics._kill,
    ActorFailed: ClusterMetrics._supervision,
    ActorRestarted: ClusterMetrics._supervision,
    SymbolQuarantined: ClusterMetrics._supervision,
    PoisonMessageQuarantined: ClusterMetrics._supervision,
    DeadLetter: ClusterMetrics._supervision,
    DecodeFailure: ClusterMetrics._decode_failure,
    ReconciliationCompleted: ClusterMetrics._reconciled,
}
