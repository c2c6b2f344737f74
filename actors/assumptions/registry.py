"""Evaluating declared assumptions (``arbor.strategy.assumptions.Assumption``) over windows of
event time, inside the actor that hosts the registry (the symbol's Regime).

Pure: the host hands in feature snapshots and fills with the time of its context clock, and gets
back an ``AssumptionHealthChanged`` for every assumption whose health changed. Same inputs, same
health, so replay and audit see what the live run saw.

Health has one level of hysteresis: BROKEN lasts until the value is back at OK (a value hovering
at its bound would otherwise flap between BROKEN and DRIFTING, alerting every second).

A snapshot is sampled at most once per ``SAMPLE_INTERVAL_NS`` of event time (a Feature actor that
emits on every event would otherwise fill windows with thousands of near-equal samples and sort
them on every event); fills are always sampled.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from arbor.messages import AssumptionHealthChanged, AssumptionStatus, FeatureSnapshot, OrderFilled, Side
from arbor.strategy.assumptions import Assumption

SAMPLE_INTERVAL_NS = 250_000_000
_UNKNOWN = AssumptionStatus.UNKNOWN
_OK = AssumptionStatus.OK
_DRIFTING = AssumptionStatus.DRIFTING
_BROKEN = AssumptionStatus.BROKEN


def nearest_rank(values: Iterable[float], q: float) -> float:
    """The ``q`` quantile by nearest rank: the smallest value with at least ``q`` of them at or below it."""
    ordered = sorted(values)
    if not ordered:
        raise ValueError("no values")
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def health(a: Assumption, value: float) -> AssumptionStatus:
    """OK, DRIFTING (within ``drift_margin`` of a bound) or BROKEN (past it) for a measured value."""
    lo, hi, m = a.min, a.max, a.drift_margin
    if (hi is not None and value > hi) or (lo is not None and value < lo):
        return _BROKEN
    if lo is not None and hi is not None:
        edge = m * (hi - lo)
        return _DRIFTING if value > hi - edge or value < lo + edge else _OK
    if hi is not None:
        return _DRIFTING if value > hi - m * abs(hi) else _OK
    assert lo is not None
    return _DRIFTING if value < lo + m * abs(lo) else _OK


class Observation:
    """One assumption's window of samples and its current health."""

    def __init__(self, assumption: Assumption) -> None:
        self.assumption = assumption
        self._window_ns = int(assumption.window_s * 1e9)
        self._samples: deque[tuple[int, float]] = deque()
        self.status = _UNKNOWN
        self.value = 0.0
        self.since_ns = 0
        self.samples = 0
        self.entered: dict[str, int] = {}  # health changes by the status entered (arbor_assumption_changes_total)

    def add(self, ts_ns: int, value: float) -> None:
        if math.isfinite(value):
            self._samples.append((ts_ns, value))

    def measure(self, now_ns: int) -> float | None:
        """The statistic over the window ending at ``now_ns``; None while it holds too few samples."""
        horizon = now_ns - self._window_ns
        samples = self._samples
        while samples and samples[0][0] <= horizon:
            samples.popleft()
        self.samples = len(samples)
        a = self.assumption
        if len(samples) < a.min_samples:
            return None
        if a.observation == "trade_rate":  # samples are cumulative trade counts
            span_s = (samples[-1][0] - samples[0][0]) / 1e9
            return (samples[-1][1] - samples[0][1]) / span_s if span_s > 0 else None
        return nearest_rank((v for _, v in samples), a.quantile)

    def evaluate(self, symbol: str, now_ns: int) -> AssumptionHealthChanged | None:
        """Measure; the change of health, if any."""
        value = self.measure(now_ns)
        new = _UNKNOWN if value is None else health(self.assumption, value)
        if new is _DRIFTING and self.status is _BROKEN:
            new = _BROKEN  # hysteresis: a broken assumption recovers only once it is back to OK
        self.value = 0.0 if value is None else value
        if new is self.status:
            return None
        old, self.status, self.since_ns = self.status, new, now_ns
        self.entered[new.value] = self.entered.get(new.value, 0) + 1
        a = self.assumption
        return AssumptionHealthChanged(symbol=symbol, name=a.name, observation=a.observation, old=old, new=new,
                                       value=self.value, bound=a.bound, samples=self.samples, on_broken=a.on_broken,
                                       on_recover=a.on_recover, ts_event_ns=now_ns)

    def status_row(self) -> dict[str, Any]:
        a = self.assumption
        return {"name": a.name, "observation": a.observation, "status": self.status.value, "value": self.value,
                "bound": a.bound, "quantile": a.quantile, "window_s": a.window_s, "samples": self.samples,
                "since_ns": self.since_ns, "on_broken": a.on_broken, "on_recover": a.on_recover,
                "changes": dict(self.entered)}


class AssumptionRegistry:
    """The assumptions of one symbol (its strategy's and the configured ones), evaluated together."""

    def __init__(self, symbol: str, assumptions: Iterable[Assumption], tick_size: Decimal = Decimal("0.1")) -> None:
        self.symbol = symbol
        self.observations = tuple(Observation(a) for a in assumptions)
        names = [o.assumption.name for o in self.observations]
        if len(set(names)) != len(names):
            raise ValueError(f"{symbol}: assumption names repeat: {names}")
        self._by_kind: dict[str, tuple[Observation, ...]] = {}
        for o in self.observations:
            self._by_kind[o.assumption.observation] = (*self._by_kind.get(o.assumption.observation, ()), o)
        self._tick = float(tick_size)
        self._last_sample_ns: int | None = None
        self._reference = 0.0  # the mid a fill is measured against
        self.changes = 0

    def __bool__(self) -> bool:
        return bool(self.observations)

    def on_snapshot(self, snap: FeatureSnapshot, now_ns: int) -> list[AssumptionHealthChanged]:
        """Sample the snapshot (at most once per SAMPLE_INTERVAL_NS of event time) and re-evaluate."""
        if snap.mid > 0.0:
            self._reference = snap.mid
        last = self._last_sample_ns
        if last is not None and snap.ts_event_ns - last < SAMPLE_INTERVAL_NS:
            return []
        self._last_sample_ns = snap.ts_event_ns
        ts = snap.ts_event_ns
        by_kind = self._by_kind
        for o in by_kind.get("spread_bps", ()):
            if snap.mid > 0.0:
                o.add(ts, snap.spread_bps)
        for o in by_kind.get("vol_ratio", ()):
            if snap.warm:
                o.add(ts, snap.vol_ratio)
        for o in by_kind.get("trade_rate", ()):
            o.add(ts, float(snap.trades))
        for o in by_kind.get("feed_latency_ms", ()):
            o.add(ts, (now_ns - snap.ts_event_ns) / 1e6)
        return self._evaluate(ts)

    def on_fill(self, fill: OrderFilled) -> list[AssumptionHealthChanged]:
        """Sample a fill's adverse slippage in ticks against the last mid (none known yet: skipped)."""
        observers = self._by_kind.get("slippage_ticks", ())
        if not observers or self._reference <= 0.0 or self._tick <= 0.0:
            return []
        sign = 1.0 if fill.side is Side.BUY else -1.0
        ticks = (float(fill.price) - self._reference) * sign / self._tick
        for o in observers:
            o.add(fill.ts_event_ns, ticks)
        return self._evaluate(fill.ts_event_ns)

    def _evaluate(self, now_ns: int) -> list[AssumptionHealthChanged]:
        out = []
        for o in self.observations:
            change = o.evaluate(self.symbol, now_ns)
            if change is not None:
                out.append(change)
        self.changes += len(out)
        return out

    def status(self) -> list[dict[str, Any]]:
        """Each assumption's current health, value and since when (JSON-ready)."""
        return [o.status_row() for o in self.observations]


def regime_assumptions(regime: Any) -> list[dict[str, Any]]:
    """The assumption rows of a symbol's Regime actor (unwrapped from a fault wrapper); [] without one."""
    registry = getattr(getattr(regime, "inner", regime), "assumptions", None)
    return registry.status() if isinstance(registry, AssumptionRegistry) else []
