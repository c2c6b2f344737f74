"""Strategy policies: pure functions from (features, regime, position) to mandates.

A policy never sizes orders or checks limits (the Arbitrator and Risk do); it only says what it
wants this cycle. Every policy is deterministic: the same inputs give the same mandates.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from decimal import Decimal
from types import MappingProxyType
from typing import Any, Protocol

import attrs
from arbor.config.errors import ConfigError
from arbor.messages import Direction, FeatureSnapshot, Mandate, MandateKind, PositionState, Regime

__all__ = ["MeanReversion", "PositionView", "StrategyPolicy", "TrendFollowing", "make_strategy", "STRATEGIES"]

_ZERO = Decimal("0")
_TINY = 1e-12


def _hold(reason: str) -> tuple[Mandate, ...]:
    return (Mandate(kind=MandateKind.HOLD, reason=reason),)


# Mandates are immutable, so the ones without parameters are built once.
_BLOCK_UNKNOWN = Mandate(kind=MandateKind.BLOCK, reason="regime unknown")
_BLOCK_VOLATILE = Mandate(kind=MandateKind.BLOCK, reason="volatile")
_HOLD_IN_TREND = _hold("in trend")
_HOLD_NO_DIRECTION = _hold("no trend direction")
_HOLD_CONTRA_FLOW = _hold("trade flow against trend")
_HOLD_PENDING = _hold("order pending")
_HOLD_NO_TREND = _hold("no trend")
_HOLD_REVERTING = _hold("waiting for reversion")
_HOLD_NEAR_VWAP = _hold("near vwap")
_HOLD_NOT_RANGING = _hold("not ranging")


@attrs.frozen(kw_only=True)
class PositionView:
    """What a strategy knows of the symbol's position (from the latest PositionChanged).

    ``peak_qty`` is the largest quantity since the position last left FLAT, so a policy can tell
    whether it has already reduced this position.
    """

    state: PositionState = PositionState.FLAT
    direction: Direction | None = None
    qty: Decimal = _ZERO
    avg_entry_price: Decimal | None = None
    peak_qty: Decimal = _ZERO

    @property
    def is_open(self) -> bool:
        """Exposure a policy may manage: OPEN, REDUCING, or a partly filled entry."""
        if self.direction is None or self.qty <= 0:
            return False
        return self.state in (PositionState.OPEN, PositionState.REDUCING, PositionState.ENTERING)

    @property
    def is_flat(self) -> bool:
        return self.state is PositionState.FLAT

    @property
    def is_pending(self) -> bool:
        """An order is in flight and there is nothing to manage yet (unfilled entry) or any more (closing)."""
        return not self.is_flat and not self.is_open


FLAT = PositionView()


class StrategyPolicy(Protocol):
    name: str

    def decide(self, features: FeatureSnapshot, regime: Regime, position: PositionView) -> tuple[Mandate, ...]:
        """The mandates of one decision cycle (at least one)."""


# -- parameters ---------------------------------------------------------------------------------
@attrs.frozen
class _Param:
    default: float
    low: float
    high: float = math.inf
    low_open: bool = True  # the low bound itself is not allowed

    def check(self, key: str, value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float, Decimal)):
            raise ConfigError(f"strategy_params.{key}", f"must be a number, got {value!r}")
        v = float(value)
        too_low = v <= self.low if self.low_open else v < self.low
        if not math.isfinite(v) or too_low or v > self.high:
            bound = "(" if self.low_open else "["
            raise ConfigError(f"strategy_params.{key}", f"must be in {bound}{self.low}, {self.high}], got {value!r}")
        return v


def _parse(spec: Mapping[str, _Param], params: Mapping[str, Any]) -> dict[str, float]:
    if not isinstance(params, Mapping):
        raise ConfigError("strategy_params", f"must be a table, got {type(params).__name__}")
    for key in params:
        if key not in spec:
            raise ConfigError(f"strategy_params.{key}", f"unknown parameter (known: {', '.join(sorted(spec))})")
    return {key: p.check(key, params[key]) if key in params else p.default for key, p in spec.items()}


def _hint(value: float) -> Decimal:
    return Decimal(repr(value))


def _sign(x: float) -> int:
    return (x > 0.0) - (x < 0.0)


# -- trend following ----------------------------------------------------------------------------
class TrendFollowing:
    """Ride a confirmed trend; step aside when it ends or the market turns violent.

    - UNKNOWN: BLOCK (and EXIT an open position: its features can no longer be trusted).
    - open: EXIT on a stop (adverse move > ``stop_atr`` ATRs from entry), a take profit
      (> ``take_profit_atr`` ATRs), a trend flip (``ret_long`` against the position) or a RANGING
      regime. VOLATILE adds BLOCK, and REDUCE ``reduce_fraction`` once per position (only while
      the quantity is still above the midpoint between peak and target), so a long volatile spell
      does not halve the position every cycle.
    - flat and TRENDING: ENTRY in the direction of ``ret_long`` unless the trade imbalance leans
      against it by more than ``contra_imbalance``.
    - otherwise HOLD (VOLATILE: BLOCK).
    """

    name = "trend_following"
    PARAMS = MappingProxyType({
        "size_hint": _Param(0.5, 0.0, 1.0),
        "stop_atr": _Param(3.0, 0.0),
        "take_profit_atr": _Param(6.0, 0.0),
        "reduce_fraction": _Param(0.5, 0.0, 1.0),
        "contra_imbalance": _Param(0.0, 0.0, 1.0, low_open=False),
    })

    def __init__(self, params: Mapping[str, Any] | None = None) -> None:
        p = _parse(self.PARAMS, params or {})
        self.params = MappingProxyType(p)
        self._size = _hint(p["size_hint"])
        self._stop_atr = p["stop_atr"]
        self._tp_atr = p["take_profit_atr"]
        self._reduce = p["reduce_fraction"]
        self._reduce_hint = _hint(p["reduce_fraction"])
        self._contra = p["contra_imbalance"]

    def decide(self, features: FeatureSnapshot, regime: Regime, position: PositionView) -> tuple[Mandate, ...]:
        if regime is Regime.UNKNOWN:
            if position.is_open:
                return (Mandate(kind=MandateKind.EXIT, direction=position.direction, reason="regime unknown"),
                        _BLOCK_UNKNOWN)
            return (_BLOCK_UNKNOWN,)
        volatile = regime is Regime.VOLATILE
        block = (_BLOCK_VOLATILE,) if volatile else ()
        if position.is_open:
            why = self._exit_reason(features, regime, position)
            if why:
                return (Mandate(kind=MandateKind.EXIT, direction=position.direction, reason=why), *block)
            if volatile and self._may_reduce(position):
                reduce = Mandate(kind=MandateKind.REDUCE, direction=position.direction,
                                 size_hint=self._reduce_hint, reason="volatile")
                return (*block, reduce)
            return block or _HOLD_IN_TREND
        if block:
            return block
        if position.is_flat and regime is Regime.TRENDING:
            trend = _sign(features.ret_long)
            if trend == 0:
                return _HOLD_NO_DIRECTION
            if features.trade_imbalance * trend < -self._contra:
                return _HOLD_CONTRA_FLOW
            direction = Direction.LONG if trend > 0 else Direction.SHORT
            return (Mandate(kind=MandateKind.ENTRY, direction=direction, size_hint=self._size,
                            reason=f"trend {direction.value.lower()}"),)
        return _HOLD_PENDING if position.is_pending else _HOLD_NO_TREND

    def _exit_reason(self, f: FeatureSnapshot, regime: Regime, pos: PositionView) -> str:
        sign = pos.direction.sign  # type: ignore[union-attr]  # is_open guarantees a direction
        if pos.avg_entry_price is not None and f.atr > 0.0:
            move = (f.mid - float(pos.avg_entry_price)) * sign
            if -move > self._stop_atr * f.atr:
                return "stop loss"
            if move > self._tp_atr * f.atr:
                return "take profit"
        if regime is Regime.RANGING:
            return "trend ended"
        if regime is Regime.TRENDING and f.ret_long * sign < 0.0:
            return "trend flipped"
        return ""

    def _may_reduce(self, pos: PositionView) -> bool:
        if pos.state is PositionState.REDUCING or pos.peak_qty <= 0:
            return False
        # reduced once already when qty is at or below the midpoint between peak and target
        return float(pos.qty) > float(pos.peak_qty) * (1.0 - self._reduce / 2.0)


# -- mean reversion -----------------------------------------------------------------------------
class MeanReversion:
    """Fade stretches away from VWAP while the market ranges.

    ``z = (mid - vwap) / atr``. RANGING and flat: ENTRY SHORT at ``z >= z_entry``, LONG at
    ``z <= -z_entry``. Open: EXIT once price is back within ``z_exit`` of VWAP or beyond it (an
    overshoot through the mean is an exit too), or when the regime turns TRENDING or VOLATILE.
    UNKNOWN: BLOCK. Otherwise HOLD.
    """

    name = "mean_reversion"
    PARAMS = MappingProxyType({
        "size_hint": _Param(0.3, 0.0, 1.0),
        "z_entry": _Param(1.5, 0.0),
        "z_exit": _Param(0.3, 0.0, low_open=False),
    })

    def __init__(self, params: Mapping[str, Any] | None = None) -> None:
        p = _parse(self.PARAMS, params or {})
        if p["z_exit"] >= p["z_entry"]:
            raise ConfigError("strategy_params.z_exit", f"must be below z_entry {p['z_entry']}, got {p['z_exit']}")
        self.params = MappingProxyType(p)
        self._size = _hint(p["size_hint"])
        self._z_entry = p["z_entry"]
        self._z_exit = p["z_exit"]

    def decide(self, features: FeatureSnapshot, regime: Regime, position: PositionView) -> tuple[Mandate, ...]:
        if regime is Regime.UNKNOWN:
            return (_BLOCK_UNKNOWN,)
        z = (features.mid - features.vwap) / max(features.atr, _TINY)
        if position.is_open:
            if regime is not Regime.RANGING:
                return (Mandate(kind=MandateKind.EXIT, direction=position.direction,
                                reason=f"regime {regime.value.lower()}"),)
            if z * position.direction.sign >= -self._z_exit:  # type: ignore[union-attr]  # is_open guarantees a direction
                return (Mandate(kind=MandateKind.EXIT, direction=position.direction, reason="back at vwap"),)
            return _HOLD_REVERTING
        if position.is_flat and regime is Regime.RANGING:
            if z >= self._z_entry:
                return (Mandate(kind=MandateKind.ENTRY, direction=Direction.SHORT, size_hint=self._size,
                                reason="stretched above vwap"),)
            if z <= -self._z_entry:
                return (Mandate(kind=MandateKind.ENTRY, direction=Direction.LONG, size_hint=self._size,
                                reason="stretched below vwap"),)
            return _HOLD_NEAR_VWAP
        return _HOLD_PENDING if position.is_pending else _HOLD_NOT_RANGING


STRATEGIES: Mapping[str, Callable[[Mapping[str, Any]], StrategyPolicy]] = MappingProxyType({
    TrendFollowing.name: TrendFollowing,
    MeanReversion.name: MeanReversion,
})


def make_strategy(name: str, params: Mapping[str, Any] | None = None) -> StrategyPolicy:
    """The named policy with validated parameters; ConfigError names ``strategy`` or the bad parameter."""
    factory = STRATEGIES.get(name) if isinstance(name, str) else None
    if factory is None:
        raise ConfigError("strategy", f"unknown strategy {name!r} (known: {', '.join(sorted(STRATEGIES))})")
    return factory(params or {})
