"""Feature(S): numeric descriptions of one symbol's market over bounded windows of time buckets.

Event time (``ts_event_ns``) is cut into buckets of ``bucket_ms``. Every event updates O(1) live
state; the window statistics are recomputed only when a bucket closes, over deques that never
hold more than ``long_window`` buckets. Which events yield a FeatureSnapshot is ``emit``
(FeatureConfig): every one (``"every_event"``), or (``"bucket"``) only those the regime can act
on. The regime acts on a snapshot when it is not warm or when a decision cycle is due (event
time ``decision_interval_ms`` past the last cycle's snapshot); the feature keeps that cadence
itself, starting from the same first snapshot, so it emits exactly the snapshots that start a
cycle, every snapshot until warm, and the first snapshot of each new bucket (a fresh view for
observers). Its regime then decides the same, from the same snapshots, as with every event.
The one difference: a regime restarted on its own (its feature kept) starts its first cycle on
the next snapshot emitted, at most one bucket or one decision interval later, not on the next
event. Without the regime's cadence (``decision_interval_ms=None``) "bucket" emits every event.

The reference price is the book mid once a valid quote is known, the last trade price before
that; it is the snapshot's ``mid``, and ``last_price`` falls back to it until a trade prints
(``spread_bps`` is 0.0 without a book), so a snapshot never carries NaN. A bucket records the
reference price's close and range; the range starts at the price carried in from the previous
bucket, so it is a true range (gaps between buckets count). The first bucket's return is
measured from the first price seen, so every completed bucket with a price contributes exactly
one return. Returns are log returns; the efficiency ratio is |sum| / sum of |returns|.

Two kinds of window:

- price-path features (``ret_*``, ``realized_vol``, ``vol_ratio``, ``efficiency_ratio``,
  ``atr``, ``samples``) cover the last N *completed* buckets and change only when one closes;
- flow features (``vwap``, ``trade_imbalance``, ``liq_*``) cover the last N completed buckets
  *plus* the open one, so a burst of trades or liquidations shows at once.

Buckets in which nothing happened are filled in as flat and empty (at most ``long_window + 1``
of them: after that many every window holds only empty buckets anyway), so windows measure time,
not activity.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any

from arbor.actors.base import ActorContext, ActorLogic
from arbor.actors.feature.config import FeatureConfig
from arbor.analysis.bursts import BurstWindow
from arbor.messages import FeatureSnapshot, MarketEventKind, RawMarketEvent, Side
from arbor.messages.market import float_levels
from arbor.strategy.inputs import NO_INPUTS, BarBuilder, Inputs

__all__ = ["FeatureConfig", "FeatureLogic"]

_TRADE = MarketEventKind.TRADE
_QUOTE = MarketEventKind.QUOTE
_SNAPSHOT = MarketEventKind.SNAPSHOT
_LIQUIDATION = MarketEventKind.LIQUIDATION
_BUY = Side.BUY
_SELL = Side.SELL


def _sample_stdev(values: list[float]) -> float:
    """Sample standard deviation (n - 1); 0.0 for fewer than two values."""
    n = len(values)
    if n < 2:
        return 0.0
    mean = sum(values) / n
    return math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))


class FeatureLogic(ActorLogic):
    """Turns RawMarketEvents of one symbol into FeatureSnapshots. Pure: no clock, no I/O."""

    ROLE = "feature"

    def __init__(self, ctx: ActorContext, config: FeatureConfig | None = None,
                 decision_interval_ms: int | None = None, inputs: Inputs = NO_INPUTS) -> None:
        """``decision_interval_ms`` is the regime's decision cadence (needed by ``emit = "bucket"``);
        ``inputs`` the bars and indicators the symbol's strategy declared (built from trades here)."""
        super().__init__(ctx)
        self._bars = BarBuilder(inputs)
        self._with_bars = self._bars.active
        self.config = cfg = (config or FeatureConfig()).validate()
        self._bucket_ns = cfg.bucket_ms * 1_000_000
        # emit = "bucket": the regime's cadence, and the time of the snapshot that started its last cycle
        self._every_event = cfg.emit == "every_event" or decision_interval_ms is None
        self._decision_ns = (decision_interval_ms or 0) * 1_000_000
        self._last_decision_ns: int | None = None
        self._short = cfg.short_window
        self._long = cfg.long_window
        self._min_samples = cfg.min_samples

        # live state
        self._bid = 0.0
        self._ask = 0.0
        self._quoted = False  # a QUOTE was seen: snapshots no longer set the book
        self._last = 0.0  # last trade price; 0.0 = none yet
        self._price = 0.0  # reference price: mid if the book is known, else last; 0.0 = none yet
        self._cvd = 0.0
        self._trades = 0  # valid trade prints since start

        # the open bucket
        self._bucket: int | None = None
        self._hi = 0.0
        self._lo = 0.0
        self._cur_buy = 0.0
        self._cur_sell = 0.0
        self._cur_pv = 0.0
        self._cur_v = 0.0

        # completed buckets (bounded)
        self._closes: deque[float] = deque(maxlen=self._long + 1)
        self._returns: deque[float] = deque(maxlen=self._long)
        self._ranges: deque[float] = deque(maxlen=self._long)
        self._buy: deque[float] = deque(maxlen=self._short)
        self._sell: deque[float] = deque(maxlen=self._short)
        # liquidation bursts: the one implementation the offline wave detector shares (arbor.analysis)
        self._liq = BurstWindow(self._short)
        self._pv: deque[float] = deque(maxlen=self._long)
        self._v: deque[float] = deque(maxlen=self._long)

        # window statistics, recomputed when a bucket closes
        self._ret_short = 0.0
        self._ret_long = 0.0
        self._vol = 0.0
        self._vol_ratio = 1.0
        self._er = 0.0
        self._atr = 0.0
        self._w_buy = 0.0
        self._w_sell = 0.0
        self._w_pv = 0.0
        self._w_v = 0.0

        self._events = 0
        self._snapshots = 0
        self._buckets_closed = 0
        self._ignored = 0

    # -- handler ----------------------------------------------------------------------------
    def on_raw_market_event(self, ev: RawMarketEvent) -> list[Any]:
        """Update the features with one event; a FeatureSnapshot once a price is known (see ``emit``)."""
        self._events += 1
        ts = ev.ts_event_ns
        bucket = ts // self._bucket_ns
        rolled = False
        if bucket != self._bucket:
            if self._bucket is None:
                self._bucket = bucket
            elif bucket > self._bucket:
                self._roll(self._bucket, bucket)
                rolled = True
            # an event from an already closed bucket (late print) counts in the open one

        kind = ev.kind
        if self._with_bars:
            traded = kind is _TRADE and ev.price is not None and ev.price > 0
            self._bars.on_event(ts, float(ev.price) if traded else None,  # type: ignore[arg-type]
                                float(ev.qty) if traded and ev.qty is not None and ev.qty > 0 else 0.0)
        if kind is _TRADE:
            self._on_trade(ev)
        elif kind is _QUOTE:
            self._on_quote(ev)
        elif kind is _LIQUIDATION:
            self._on_liquidation(ev)
        elif kind is _SNAPSHOT and not self._quoted:
            self._on_book_snapshot(ev)
        # DEPTH diffs are not a book, MARK and OPEN_INTEREST feed no feature yet

        if self._price <= 0.0:
            return []
        if self._every_event:
            return [self._snapshot(ev)]
        # emit = "bucket": the regime's check, made here (same arithmetic on the same times)
        last = self._last_decision_ns
        if last is None or ts - last >= self._decision_ns:
            self._last_decision_ns = ts
        elif not rolled and len(self._returns) >= self._min_samples:
            return []
        return [self._snapshot(ev)]

    # -- event kinds ------------------------------------------------------------------------
    def _on_trade(self, ev: RawMarketEvent) -> None:
        if ev.price is None or ev.price <= 0:
            self._ignored += 1
            return
        price = float(ev.price)
        qty = float(ev.qty) if ev.qty is not None and ev.qty > 0 else 0.0
        self._trades += 1
        self._last = price
        self._cur_v += qty
        self._cur_pv += price * qty
        side = ev.side
        if side is _BUY:  # buyer was the aggressor
            self._cur_buy += qty
            self._cvd += qty
        elif side is _SELL:
            self._cur_sell += qty
            self._cvd -= qty
        if self._bid <= 0.0:
            self._set_price(price)

    def _on_quote(self, ev: RawMarketEvent) -> None:
        bid, ask = ev.bid_price, ev.ask_price
        if bid is None or ask is None or bid <= 0 or ask < bid:
            self._ignored += 1
            return
        self._quoted = True
        self._set_book(float(bid), float(ask))

    def _on_book_snapshot(self, ev: RawMarketEvent) -> None:
        # The levels stay text until here (messages.market); floats are enough for the mid.
        bids = [p for p, q in float_levels(ev.bids) if q > 0]
        asks = [p for p, q in float_levels(ev.asks) if q > 0]
        if not bids or not asks:
            return
        bid, ask = max(bids), min(asks)
        if bid <= 0 or ask < bid:
            self._ignored += 1
            return
        self._set_book(bid, ask)

    def _on_liquidation(self, ev: RawMarketEvent) -> None:
        self._liq.add(float(ev.price) * float(ev.qty) if ev.price is not None and ev.qty is not None else None)

    def _set_book(self, bid: float, ask: float) -> None:
        self._bid = bid
        self._ask = ask
        self._set_price((bid + ask) * 0.5)

    def _set_price(self, price: float) -> None:
        if self._price <= 0.0:  # the first price: base of the first bucket's return
            self._closes.append(price)
            self._hi = self._lo = price
        elif price > self._hi:
            self._hi = price
        elif price < self._lo:
            self._lo = price
        self._price = price

    # -- buckets ----------------------------------------------------------------------------
    def _roll(self, open_bucket: int, bucket: int) -> None:
        """Close ``open_bucket`` and any empty ones up to ``bucket``, then recompute the windows."""
        self._close_bucket()
        empty = min(bucket - open_bucket - 1, self._long + 1)
        for _ in range(empty):
            self._close_bucket()
        self._bucket = bucket
        self._recompute()

    def _close_bucket(self) -> None:
        self._buckets_closed += 1
        self._buy.append(self._cur_buy)
        self._sell.append(self._cur_sell)
        self._pv.append(self._cur_pv)
        self._v.append(self._cur_v)
        self._liq.close_bucket()
        self._cur_buy = self._cur_sell = self._cur_pv = self._cur_v = 0.0
        price = self._price
        if price > 0.0:
            self._returns.append(math.log(price / self._closes[-1]))
            self._closes.append(price)
            self._ranges.append(self._hi - self._lo)
            self._hi = self._lo = price

    def _recompute(self) -> None:
        closes = self._closes
        returns = list(self._returns)
        n = len(returns)
        if n:
            short = returns[-self._short:]
            self._ret_long = math.log(closes[-1] / closes[0])
            self._ret_short = math.log(closes[-1] / closes[-1 - len(short)])
            path = sum(abs(r) for r in returns)
            self._er = min(1.0, abs(sum(returns)) / path) if path > 0.0 else 0.0
            self._vol = _sample_stdev(returns)
            vol_short = _sample_stdev(short)
            self._vol_ratio = vol_short / self._vol if self._vol > 0.0 and len(short) >= 2 else 1.0
            self._atr = sum(self._ranges) / len(self._ranges)
        self._w_buy = sum(self._buy)
        self._w_sell = sum(self._sell)
        self._w_pv = sum(self._pv)
        self._w_v = sum(self._v)

    # -- output -----------------------------------------------------------------------------
    def _snapshot(self, ev: RawMarketEvent) -> FeatureSnapshot:
        self._snapshots += 1
        price = self._price
        bid, ask = self._bid, self._ask
        spread_bps = (ask - bid) / price * 10_000.0 if bid > 0.0 else 0.0
        volume = self._w_v + self._cur_v
        vwap = (self._w_pv + self._cur_pv) / volume if volume > 0.0 else price
        buy = self._w_buy + self._cur_buy
        sell = self._w_sell + self._cur_sell
        flow = buy + sell
        samples = len(self._returns)
        return FeatureSnapshot(
            symbol=ev.symbol,
            ts_event_ns=ev.ts_event_ns,
            ingest_seq=ev.ingest_seq,
            mid=price,
            last_price=self._last if self._last > 0.0 else price,
            spread_bps=spread_bps,
            ret_short=self._ret_short,
            ret_long=self._ret_long,
            realized_vol=self._vol,
            vol_ratio=self._vol_ratio,
            efficiency_ratio=self._er,
            vwap=vwap,
            trade_imbalance=(buy - sell) / flow if flow > 0.0 else 0.0,
            cvd=self._cvd,
            atr=self._atr,
            liq_count=self._liq.count,
            liq_notional=self._liq.notional,
            samples=samples,
            warm=samples >= self._min_samples,
            bars=self._bars.bars,
            indicators=self._bars.indicators,
            trades=self._trades,
        )

    @property
    def emit(self) -> str:
        """The emission in effect: ``"bucket"``, or ``"every_event"`` (configured, or no regime cadence given)."""
        return "every_event" if self._every_event else "bucket"

    @property
    def warm(self) -> bool:
        """Enough completed buckets for every feature (what a recovering symbol waits for)."""
        return len(self._returns) >= self._min_samples

    def stats(self) -> dict[str, Any]:
        return {
            "events": self._events,
            "snapshots": self._snapshots,
            "buckets_closed": self._buckets_closed,
            "ignored": self._ignored,
            "samples": len(self._returns),
        }
