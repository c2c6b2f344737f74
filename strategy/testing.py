"""Helpers for testing a strategy without a runtime: a FeatureSnapshot from a few keyword values."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from arbor.messages import FeatureSnapshot

__all__ = ["make_snapshot"]

_DEFAULTS: dict[str, Any] = {
    "symbol": "BTCUSDT", "ts_event_ns": 1, "ingest_seq": 1, "mid": 100.0, "last_price": 100.0, "spread_bps": 1.0,
    "ret_short": 0.0, "ret_long": 0.0, "realized_vol": 0.001, "vol_ratio": 1.0, "efficiency_ratio": 0.1,
    "vwap": 100.0, "trade_imbalance": 0.0, "cvd": 0.0, "atr": 1.0, "liq_count": 0, "liq_notional": 0.0,
    "samples": 60, "warm": True, "trades": 0,
}


def make_snapshot(indicators: Mapping[str, float] | None = None,
                  bars: Mapping[str, Sequence[tuple[int, float, float, float, float, float]]] | None = None,
                  **features: Any) -> FeatureSnapshot:
    """A warm snapshot of plausible values; override any built-in feature by keyword."""
    unknown = set(features) - set(_DEFAULTS)
    if unknown:
        raise TypeError(f"not a feature: {', '.join(sorted(unknown))}")
    return FeatureSnapshot(**{**_DEFAULTS, **features},
                           indicators=tuple(sorted((indicators or {}).items())),
                           bars=tuple((k, tuple(v)) for k, v in (bars or {}).items()))
