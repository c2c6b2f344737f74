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
from arbor.adapters.operator.metric_schema import register
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
    PositionState,
    RawMarketEvent,
    ReconciliationCompleted,
    SubmitOrder,
    SymbolQuarantined,
    SymbolRecovered,
    TradingStateChanged,
    VenuePayload,
)
from arbor.messages.assumptions import status_level
from prometheus_client import CollectorRegistry

NS_PER_S = 1e9
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
        self.tick_to_order = register("arbor_tick_to_order_latency_seconds", r)
        self.market_events = register("arbor_market_events_total", r)
        self.decode_failures = register("arbor_decode_failures_total", r)
        self.mailbox_depth = register("arbor_mailbox_depth_messages", r)
        self.failures = register("arbor_actor_failures_total", r)
        self.restarts = register("arbor_actor_restarts_total", r)
        self.quarantines = register("arbor_symbol_quarantines_total", r)
        self.poison = register("arbor_poison_messages_total", r)
        self.dead_letters = register("arbor_dead_letters_total", r)
        self.trading_state = register("arbor_trading_state", r)
        self.kill_switch = register("arbor_kill_switch_engaged", r)
        self.orders = register("arbor_orders_total", r)
        self.rejects = register("arbor_order_rejects_total", r)
        self.approvals = register("arbor_risk_approvals_total", r)
        self.denials = register("arbor_risk_denials_total", r)
        self.fills = register("arbor_fills_total", r)
        self.position_qty = register("arbor_position_qty", r)
        self.position_open = register("arbor_position_open", r)
        self.symbol_up = register("arbor_symbol_up", r)
        self.realized = register("arbor_realized_pnl_quote", r)
        self.unrealized = register("arbor_unrealized_pnl_quote", r)
        self.drawdown = register("arbor_drawdown_ratio", r)
        self.equity = register("arbor_equity_quote", r)
        self.exposure = register("arbor_exposure_quote", r)
        self.drift = register("arbor_reconciliation_drift_qty", r)
        self.reconciliations = register("arbor_reconciliations_total", r)
        self.assumption_status = register("arbor_assumption_status", r)
        self.assumption_value = register("arbor_assumption_value", r)
        self.assumption_changes = register("arbor_assumption_changes_total", r)
        self.staleness = register("arbor_market_data_age_seconds", r)
        self.journal_bytes = register("arbor_journal_written_bytes_total", r)
        self.journal_fsync = register("arbor_journal_fsync_seconds", r)
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
            elif t is ActionApproved:
                self.approvals.labels(msg.action.kind.value).inc()
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
        self.position_qty.labels(m.symbol).set(float(m.qty * m.direction.sign) if m.direction is not None else float(m.qty))
        self.position_open.labels(m.symbol).set(0 if m.state is PositionState.FLAT else 1)
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
            self.symbol_up.labels(m.symbol).set(0)
        elif t is SymbolRecovered:
            self.symbol_up.labels(m.symbol).set(1)
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
            self.position_qty.labels(s).set(0)
            self.position_open.labels(s).set(0)
            self.symbol_up.labels(s).set(1)

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
                self.assumption_status.labels(symbol, a["name"]).set(status_level(a["status"]))
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
    SymbolRecovered: ClusterMetrics._supervision,
    PoisonMessageQuarantined: ClusterMetrics._supervision,
    DeadLetter: ClusterMetrics._supervision,
    DecodeFailure: ClusterMetrics._decode_failure,
    ReconciliationCompleted: ClusterMetrics._reconciled,
}
