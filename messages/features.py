"""Numeric descriptions of a symbol's market over bounded windows."""

from __future__ import annotations

from arbor.messages.base import message


@message("FeatureSnapshot")
class FeatureSnapshot:
    """Features after one market event. Floats: this is feature math, not accounting."""

    symbol: str
    ts_event_ns: int
    ingest_seq: int
    mid: float
    last_price: float
    spread_bps: float
    ret_short: float  # log return over the short window
    ret_long: float  # log return over the long window
    realized_vol: float  # stdev of per-bucket log returns over the long window
    vol_ratio: float  # short-window vol / long-window vol (1.0 when unknown)
    efficiency_ratio: float  # |net move| / path length over the long window, 0..1
    vwap: float
    trade_imbalance: float  # (buy - sell) / (buy + sell) volume over the short window, -1..1
    cvd: float  # cumulative volume delta since start
    atr: float  # average true range of buckets over the long window
    liq_count: int  # forced orders in the short window
    liq_notional: float
    samples: int  # completed buckets in the long window
    warm: bool  # enough data for every feature
    # What the strategy declared (arbor.strategy.Inputs); empty for a strategy that declares none, so
    # a snapshot encoded before these fields existed still decodes.
    # bars: (interval, ((start_ns, open, high, low, close, volume), ...)) per declared interval, oldest first
    bars: tuple[tuple[str, tuple[tuple[int, float, float, float, float, float], ...]], ...] = ()
    # indicators: (name, value) for each declared indicator that is warm (Bollinger: name.middle/upper/lower)
    indicators: tuple[tuple[str, float], ...] = ()
    # trades: valid trade prints seen since start (the assumption registry's trade rate); 0 in a
    # snapshot encoded before this field existed
    trades: int = 0
