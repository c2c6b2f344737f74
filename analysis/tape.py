"""A symbol's tape: the runtime Feature actor's view at every event, plus its trades and liquidations.

``build_tapes`` runs each symbol's events through ``FeatureLogic`` itself (``emit = "every_event"``),
so the mid, the spread, the trade imbalance and the liquidation-burst values here are the ones a
strategy sees in the runtime, at the same events. Times are event times made monotonic per symbol
(a late print keeps the time reached so far), so the tape can be searched by time.
"""

from __future__ import annotations

import random
from collections.abc import Iterable

import attrs
import numpy as np
import numpy.typing as npt
from arbor.actors.base import ActorContext
from arbor.actors.feature.config import FeatureConfig
from arbor.actors.feature.logic import FeatureLogic
from arbor.actors.runtime.clock import SimClock
from arbor.messages import FeatureSnapshot, MarketEventKind, RawMarketEvent, Side
from loguru import logger

__all__ = ["FEATURE_COLUMNS", "Flow", "Tape", "build_tapes"]

# The FeatureSnapshot fields a hypothesis may condition on (the tape keeps one column of each).
FEATURE_COLUMNS = ("mid", "spread_bps", "ret_short", "ret_long", "realized_vol", "vol_ratio", "efficiency_ratio",
                   "trade_imbalance", "cvd", "atr", "liq_count", "liq_notional")

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@attrs.frozen(kw_only=True)
class Flow:
    """One trade or liquidation: tape time, side (a trade's aggressor; a forced order's side), notional.

    ``window_count`` and ``window_notional`` are the runtime's ``liq_count`` and ``liq_notional``
    right after this event (``None`` before the feature knows a price)."""

    ts_ns: int
    side: Side
    notional: float
    window_count: int | None = None
    window_notional: float | None = None


@attrs.define(kw_only=True)
class Tape:
    symbol: str
    ts_ns: IntArray
    columns: dict[str, FloatArray]
    trades: list[Flow]
    liquidations: list[Flow]
    events: int

    @property
    def mid(self) -> FloatArray:
        return self.columns["mid"]

    def index_at(self, ts_ns: int) -> int:
        """The index of the last tape row at or before ``ts_ns`` (-1 before the first)."""
        return int(np.searchsorted(self.ts_ns, ts_ns, side="right")) - 1

    def mid_at(self, ts_ns: int) -> float | None:
        """The mid in effect at ``ts_ns``; ``None`` before the tape starts or after it ends."""
        if len(self.ts_ns) == 0 or ts_ns > self.ts_ns[-1]:
            return None
        i = self.index_at(ts_ns)
        return float(self.columns["mid"][i]) if i >= 0 else None


class _Builder:
    def __init__(self, symbol: str, config: FeatureConfig) -> None:
        clock = SimClock(0)
        ctx = ActorContext(actor_id=f"{symbol}/feature", symbol=symbol, clock=clock,
                           log=logger.bind(actor=f"{symbol}/feature", symbol=symbol), rng=random.Random(0),
                           run_id="analysis")
        self.symbol = symbol
        self.feature = FeatureLogic(ctx, attrs.evolve(config, emit="every_event"))
        self.now = -(2**63)
        self.ts: list[int] = []
        self.cols: dict[str, list[float]] = {c: [] for c in FEATURE_COLUMNS}
        self.trades: list[Flow] = []
        self.liquidations: list[Flow] = []
        self.events = 0

    def on_event(self, ev: RawMarketEvent) -> None:
        self.events += 1
        self.now = max(self.now, ev.ts_event_ns)
        out = self.feature.on_raw_market_event(ev)
        snap: FeatureSnapshot | None = out[0] if out else None
        if snap is not None:
            self.ts.append(self.now)
            for c in FEATURE_COLUMNS:
                self.cols[c].append(float(getattr(snap, c)))
        kind = ev.kind
        if kind is MarketEventKind.TRADE or kind is MarketEventKind.LIQUIDATION:
            if ev.price is None or ev.qty is None or ev.side is None or ev.price <= 0 or ev.qty <= 0:
                return
            notional = float(ev.price) * float(ev.qty)
            if kind is MarketEventKind.TRADE:
                self.trades.append(Flow(ts_ns=self.now, side=ev.side, notional=notional))
            else:
                self.liquidations.append(Flow(
                    ts_ns=self.now, side=ev.side, notional=notional,
                    window_count=snap.liq_count if snap is not None else None,
                    window_notional=snap.liq_notional if snap is not None else None))

    def tape(self) -> Tape:
        return Tape(symbol=self.symbol, ts_ns=np.asarray(self.ts, dtype=np.int64),
                    columns={c: np.asarray(v, dtype=np.float64) for c, v in self.cols.items()},
                    trades=self.trades, liquidations=self.liquidations, events=self.events)


def build_tapes(events: Iterable[RawMarketEvent], config: FeatureConfig | None = None) -> dict[str, Tape]:
    """One tape per symbol, in symbol order, from events in receive order."""
    cfg = (config or FeatureConfig()).validate()
    builders: dict[str, _Builder] = {}
    for ev in events:
        b = builders.get(ev.symbol)
        if b is None:
            b = builders[ev.symbol] = _Builder(ev.symbol, cfg)
        b.on_event(ev)
    return {s: builders[s].tape() for s in sorted(builders)}
