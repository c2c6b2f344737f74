"""Regime(S): classify the market with hysteresis and run the symbol's strategy each decision cycle.

A decision cycle starts when ``decision_interval_ms`` of *event* time has passed since the last
one (every snapshot when 0; the first snapshot always starts one), so a replay makes the same
decisions as the live run. In a cycle the regime is evaluated, then the strategy emits exactly
one MandateSet.

A cycle's number is the event time (ns) of the snapshot that started it, kept strictly
increasing. The Arbitrator ignores a cycle number it has seen and action ids are made of them,
so numbers must never repeat: a count from 1 would start over after the Regime (or its Worker
process) restarts, and the next cycles would be dropped as duplicates and their orders
suppressed as already sent. Event time keeps moving forward across a restart.

Hysteresis works on two levels:

- thresholds come in enter/exit pairs: the current regime keeps its looser exit threshold;
- a new regime must be the candidate for ``confirm_cycles`` consecutive cycles. Cycles, not
  snapshots: the features behind the classification change only when a time bucket closes, so
  counting snapshots would confirm any blip within microseconds.

The one exception is data going insufficient (a snapshot that is not warm): the regime drops to
UNKNOWN at once, on any snapshot, because the strategy must never act on a guess.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from arbor.actors.assumptions import AssumptionRegistry
from arbor.actors.base import ActorContext, ActorLogic
from arbor.actors.regime.config import RegimeConfig
from arbor.messages import (
    EffectiveTradingStateChanged,
    FeatureSnapshot,
    MandateSet,
    OrderFilled,
    PositionChanged,
    PositionState,
    Regime,
    RegimeChanged,
    TradingState,
)
from arbor.strategy.api import FLAT, Context, PositionView, Strategy
from arbor.strategy.assumptions import Assumption
from arbor.strategy.loader import load_strategy

__all__ = ["RegimeConfig", "RegimeLogic", "classify", "explain", "mark_price"]

_UNKNOWN = Regime.UNKNOWN
_TRENDING = Regime.TRENDING
_VOLATILE = Regime.VOLATILE
_RANGING = Regime.RANGING


def classify(f: FeatureSnapshot, current: Regime, cfg: RegimeConfig) -> Regime:
    """The regime these features point to, given the current one (which keeps its exit threshold)."""
    if not f.warm:
        return _UNKNOWN
    if f.vol_ratio >= (cfg.vol_ratio_exit if current is _VOLATILE else cfg.vol_ratio_enter):
        return _VOLATILE
    if f.efficiency_ratio >= (cfg.trend_er_exit if current is _TRENDING else cfg.trend_er_enter):
        return _TRENDING
    return _RANGING


def explain(f: FeatureSnapshot, regime: Regime) -> str:
    """A short reason for classifying ``f`` as ``regime`` (built only when the regime switches)."""
    if regime is _UNKNOWN:
        return f"not warm ({f.samples} samples)"
    if regime is _VOLATILE:
        return f"vol_ratio {f.vol_ratio:.3g}"
    if regime is _TRENDING:
        return f"efficiency_ratio {f.efficiency_ratio:.3g}"
    return f"efficiency_ratio {f.efficiency_ratio:.3g}, vol_ratio {f.vol_ratio:.3g}"


def mark_price(f: FeatureSnapshot) -> Decimal:
    """The snapshot's mid (or last price) as a Decimal of 12 significant digits, free of float noise."""
    price = f.mid if f.mid > 0.0 else f.last_price
    return Decimal(format(price, ".12g"))


class RegimeLogic(ActorLogic):
    """Turns FeatureSnapshots into RegimeChanged events and one MandateSet per decision cycle."""

    ROLE = "regime"

    def __init__(self, ctx: ActorContext, config: RegimeConfig | None = None,
                 assumptions: tuple[Assumption, ...] = (), tick_size: Decimal = Decimal("0.1")) -> None:
        """``assumptions``: the configured ones for this symbol (risk limits'); they join the
        strategy's own, replacing one of the same name."""
        super().__init__(ctx)
        self.config = cfg = (config or RegimeConfig()).validate()
        self.strategy: Strategy = load_strategy(cfg.strategy, cfg.strategy_params)
        declared = {a.name: a for a in self.strategy.assumptions()}
        declared.update((a.name, a) for a in assumptions)
        self.assumptions = AssumptionRegistry(ctx.symbol, declared.values(), tick_size)
        self._interval_ns = cfg.decision_interval_ms * 1_000_000
        self._confirm = cfg.confirm_cycles
        self._regime = _UNKNOWN
        self._candidate = _UNKNOWN
        self._candidate_count = 0
        self._last_decision_ns: int | None = None
        self._cycle = 0  # the last cycle's number (see the module docstring)
        self._cycles = 0  # how many cycles this instance ran
        self._changes = 0
        self._snapshots = 0
        self.position: PositionView = FLAT
        # The symbol's effective state at Risk (its scope, the global one, the kill switch), as
        # last told; ACTIVE until told otherwise (Risk tells every other state at start).
        self.trading_state = TradingState.ACTIVE
        self._mark_src = 0.0  # the float behind the cached Decimal mark price
        self._mark = Decimal(0)

    @property
    def regime(self) -> Regime:
        return self._regime

    # -- handlers ---------------------------------------------------------------------------
    def on_feature_snapshot(self, snap: FeatureSnapshot) -> list[Any]:
        """RegimeChanged on a switch; a MandateSet when a decision cycle is due."""
        self._snapshots += 1
        out: list[Any] = []
        if self.assumptions:
            out += self._assumption_changes(self.assumptions.on_snapshot(snap, self.ctx.clock.now_ns()))
        if not snap.warm and self._regime is not _UNKNOWN:
            out.append(self._switch(snap, _UNKNOWN, explain(snap, _UNKNOWN)))
        last = self._last_decision_ns
        if last is not None and snap.ts_event_ns - last < self._interval_ns:
            return out
        self._last_decision_ns = snap.ts_event_ns
        self._cycle = max(self._cycle + 1, snap.ts_event_ns)
        self._cycles += 1
        self._evaluate(snap, out)
        out.append(MandateSet(
            symbol=snap.symbol,
            cycle=self._cycle,
            ts_event_ns=self.ctx.clock.now_ns(),
            regime=self._regime,
            strategy=self.strategy.name,
            mandates=tuple(self.strategy.decide(Context(
                features=snap, regime=self._regime, position=self.position,
                trading_state=self.trading_state, now_ns=self.ctx.clock.now_ns()))),
            mark_price=self._mark_price(snap),
            data_ts_ns=snap.ts_event_ns,
        ))
        return out

    def on_position_changed(self, msg: PositionChanged) -> list[Any]:
        """Keep the position view the strategy decides on."""
        if msg.state is PositionState.FLAT:
            self.position = FLAT
            return []
        peak = max(self.position.peak_qty, msg.qty)
        self.position = PositionView(state=msg.state, direction=msg.direction, qty=msg.qty,
                                     avg_entry_price=msg.avg_entry_price, peak_qty=peak)
        return []

    def on_order_filled(self, msg: OrderFilled) -> list[Any]:
        """A fill of this symbol: its slippage feeds the assumptions that observe it."""
        return self._assumption_changes(self.assumptions.on_fill(msg)) if self.assumptions else []

    def _assumption_changes(self, changes: list[Any]) -> list[Any]:
        for c in changes:
            level = "WARNING" if c.new.value in ("DRIFTING", "BROKEN") else "INFO"
            self.ctx.log.log(level, "assumption {} {} -> {}: {} {:.6g} (bound {}, {} samples)", c.name, c.old.value,
                             c.new.value, c.observation, c.value, c.bound, c.samples)
        return changes

    def on_effective_trading_state_changed(self, msg: EffectiveTradingStateChanged) -> list[Any]:
        """Keep the state Risk holds the symbol in, for the strategy's context."""
        self.trading_state = msg.state
        return []

    def adopt_trading_state(self, previous: RegimeLogic) -> None:
        """A restarted Regime keeps what Risk told the instance it replaces (Risk tells only changes)."""
        self.trading_state = previous.trading_state

    def _mark_price(self, snap: FeatureSnapshot) -> Decimal:
        # the mid rarely moves between cycles; formatting a Decimal is the costliest step of a cycle
        price = snap.mid if snap.mid > 0.0 else snap.last_price
        if price != self._mark_src:
            self._mark_src = price
            self._mark = mark_price(snap)
        return self._mark

    # -- regime -----------------------------------------------------------------------------
    def _evaluate(self, snap: FeatureSnapshot, out: list[Any]) -> None:
        new = classify(snap, self._regime, self.config)
        if new is self._regime:
            self._candidate, self._candidate_count = new, 0
            return
        if new is _UNKNOWN:
            out.append(self._switch(snap, new, explain(snap, new)))
            return
        if new is self._candidate:
            self._candidate_count += 1
        else:
            self._candidate, self._candidate_count = new, 1
        if self._candidate_count >= self._confirm:
            out.append(self._switch(snap, new, f"{explain(snap, new)} for {self._candidate_count} cycles"))

    def _switch(self, snap: FeatureSnapshot, new: Regime, reason: str) -> RegimeChanged:
        old = self._regime
        self._regime = new
        self._candidate, self._candidate_count = new, 0
        self._changes += 1
        return RegimeChanged(symbol=snap.symbol, old=old, new=new, ts_event_ns=self.ctx.clock.now_ns(),
                             reason=reason)

    def stats(self) -> dict[str, Any]:
        return {
            "regime": self._regime.value,
            "cycles": self._cycles,
            "last_cycle": self._cycle,
            "regime_changes": self._changes,
            "snapshots": self._snapshots,
            "assumption_changes": self.assumptions.changes,
        }
