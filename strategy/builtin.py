"""The built-in strategies, written on the public API (arbor.strategy) as examples.

Both are pure and deterministic; they read only the built-in features of the context.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from types import MappingProxyType
from typing import Any

from arbor.config.errors import ConfigError
from arbor.messages import Direction, FeatureSnapshot, Mandate, MandateKind, PositionState, Regime
from arbor.strategy.api import Context, PositionView, Strategy
from arbor.strategy.params import Param

__all__ = ["BUILTIN", "MeanReversion", "TrendFollowing"]

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


def _hint(value: float) -> Decimal:
    return Decimal(repr(value))


def _sign(x: float) -> int:
    return (x > 0.0) - (x < 0.0)


# -- trend following ----------------------------------------------------------------------------
class TrendFollowing(Strategy):
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
        "size_hint": Param(0.5, 0.0, 1.0),
        "stop_atr": Param(3.0, 0.0),
        "take_profit_atr": Param(6.0, 0.0),
        "reduce_fraction": Param(0.5, 0.0, 1.0),
        "contra_imbalance": Param(0.0, 0.0, 1.0, low_open=False),
    })

    def __init__(self, params: Mapping[str, Any] | None = None) -> None:
        super().__init__(params)
        p = self.params
        self._size = _hint(p["size_hint"])
        self._stop_atr = p["stop_atr"]
        self._tp_atr = p["take_profit_atr"]
        self._reduce: float = p["reduce_fraction"]
        self._reduce_hint = _hint(p["reduce_fraction"])
        self._contra = p["contra_imbalance"]

    def decide(self, ctx: Context) -> tuple[Mandate, ...]:
        features, regime, position = ctx.features, ctx.regime, ctx.position
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
class MeanReversion(Strategy):
    """Fade stretches away from VWAP while the market ranges.

    ``z = (mid - vwap) / atr``. RANGING and flat: ENTRY SHORT at ``z >= z_entry``, LONG at
    ``z <= -z_entry``. Open: EXIT once price is back within ``z_exit`` of VWAP or beyond it (an
    overshoot through the mean is an exit too), or when the regime turns TRENDING or VOLATILE.
    UNKNOWN: BLOCK. Otherwise HOLD.
    """

    name = "mean_reversion"
    PARAMS = MappingProxyType({
        "size_hint": Param(0.3, 0.0, 1.0),
        "z_entry": Param(1.5, 0.0),
        "z_exit": Param(0.3, 0.0, low_open=False),
    })

    def check_params(self, params: Mapping[str, Any]) -> None:
        if params["z_exit"] >= params["z_entry"]:
            raise ConfigError("strategy_params.z_exit",
                              f"must be below z_entry {params['z_entry']}, got {params['z_exit']}")

    def __init__(self, params: Mapping[str, Any] | None = None) -> None:
        super().__init__(params)
        p = self.params
        self._size = _hint(p["size_hint"])
        self._z_entry = p["z_entry"]
        self._z_exit = p["z_exit"]

    def decide(self, ctx: Context) -> tuple[Mandate, ...]:
        features, regime, position = ctx.features, ctx.regime, ctx.position
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


BUILTIN: Mapping[str, type[Strategy]] = MappingProxyType({
    TrendFollowing.name: TrendFollowing,
    MeanReversion.name: MeanReversion,
})
