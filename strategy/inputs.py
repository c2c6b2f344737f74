"""What a strategy reads besides the built-in features: bars at named intervals and indicators on
them. The Feature actor builds both from the trades it sees (``BarBuilder``), so live, paper and
replay compute them with the same code from the same events.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Mapping
from typing import Any

import attrs
from arbor.config.errors import ConfigError
from arbor.strategy import indicators as ind

__all__ = ["INDICATOR_KINDS", "Bar", "BarBuilder", "Indicator", "Inputs", "interval_ns"]

INDICATOR_KINDS: Mapping[str, Any] = {
    "ema": ind.EMA, "sma": ind.SMA, "rsi": ind.RSI, "atr": ind.ATR,
    "bollinger": ind.Bollinger, "vwap": ind.VWAP, "zscore": ind.ZScore,
}
_UNITS = {"ms": 1_000_000, "s": 1_000_000_000, "m": 60_000_000_000, "h": 3_600_000_000_000}
_INTERVAL = re.compile(r"^([1-9][0-9]*)(ms|s|m|h)$")
MAX_HISTORY = 10_000  # bars kept per interval: bounded memory, and a snapshot stays small


def interval_ns(interval: str) -> int:
    """``"500ms"``, ``"5s"``, ``"1m"``, ``"1h"`` in nanoseconds; ConfigError otherwise."""
    m = _INTERVAL.match(interval) if isinstance(interval, str) else None
    if m is None:
        raise ConfigError("strategy", f"bar interval {interval!r} is not like 500ms, 5s, 1m or 1h")
    return int(m.group(1)) * _UNITS[m.group(2)]


@attrs.frozen
class Bar:
    """One OHLCV bar of trades; ``start_ns`` is the event time its interval begins."""

    start_ns: int
    open: float
    high: float
    low: float
    close: float
    volume: float


@attrs.frozen(kw_only=True)
class Indicator:
    """``Indicator(kind="ema", interval="5s", period=12)``; ``k`` is Bollinger's width."""

    kind: str
    interval: str
    period: int = 14
    k: float = 2.0

    def build(self) -> Any:
        factory = INDICATOR_KINDS.get(self.kind)
        if factory is None:
            raise ConfigError("strategy", f"unknown indicator {self.kind!r} (known: {', '.join(INDICATOR_KINDS)})")
        try:
            return factory(self.period, self.k) if self.kind == "bollinger" else factory(self.period)
        except ValueError as exc:
            raise ConfigError("strategy", f"indicator {self.kind}: {exc}") from None


@attrs.frozen(kw_only=True)
class Inputs:
    """``bars``: interval -> bars of history the strategy wants; ``indicators``: name -> Indicator."""

    bars: Mapping[str, int] = attrs.field(factory=dict)
    indicators: Mapping[str, Indicator] = attrs.field(factory=dict)

    def intervals(self) -> list[str]:
        """Every interval a bar or an indicator needs, each once, in a stable order."""
        names = set(self.bars) | {i.interval for i in self.indicators.values()}
        for name in names:
            interval_ns(name)
        return sorted(names, key=interval_ns)

    def validate(self) -> Inputs:
        for name, n in self.bars.items():
            interval_ns(name)
            if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_HISTORY:
                raise ConfigError("strategy", f"bars[{name!r}] must be an integer in [1, {MAX_HISTORY}], got {n!r}")
        for indicator in self.indicators.values():
            indicator.build()
        self.intervals()
        return self


NO_INPUTS = Inputs()


class _Series:
    """The bars of one interval and the indicators fed by them."""

    def __init__(self, interval: str, keep: int, indicators: dict[str, Any]) -> None:
        self.interval = interval
        self.width = interval_ns(interval)
        self.keep = keep
        self.closed: deque[tuple[int, float, float, float, float, float]] = deque(maxlen=keep)
        self.indicators = indicators
        self.start: int | None = None
        self.o = self.h = self.l = self.c = self.v = 0.0
        self.traded = False  # the open bar has a trade (else it is flat at the last close)
        self.view: tuple[tuple[int, float, float, float, float, float], ...] = ()

    def advance(self, ts: int) -> bool:
        """Close the open bar (and flat empty ones) if ``ts`` is past it; True when any closed."""
        if self.start is None or ts < self.start + self.width:
            return False
        gaps = min((ts - self.start) // self.width - 1, max(self.keep, 1))
        self._close(self.start)
        for i in range(gaps):
            self.o = self.h = self.l = self.c
            self.v = 0.0
            self._close(self.start + (i + 1) * self.width)
        self.start = ts - ts % self.width
        self.o = self.h = self.l = self.c
        self.v = 0.0
        self.traded = False
        self.view = tuple(self.closed)
        return True

    def _close(self, start: int) -> None:
        self.closed.append((start, self.o, self.h, self.l, self.c, self.v))
        for indicator in self.indicators.values():
            indicator.update(self.c, self.h, self.l, self.v)

    def trade(self, ts: int, price: float, qty: float) -> None:
        if self.start is None:
            self.start = ts - ts % self.width
        if not self.traded:
            self.traded = True
            self.o = self.h = self.l = self.c = price
            self.v = qty
            return
        self.h = max(self.h, price)
        self.l = min(self.l, price)
        self.c = price
        self.v += qty


class BarBuilder:
    """OHLCV bars from trades at every declared interval, and the declared indicators on closed bars.

    A bar is the open, high, low, close and volume of its trades. It closes when an event (of any
    kind) arrives at or past its end; intervals without trades are flat bars of zero volume at the
    last close, so bars measure time, not activity.
    """

    def __init__(self, inputs: Inputs) -> None:
        inputs.validate()
        self._series = []
        for interval in inputs.intervals():
            mine = {name: i.build() for name, i in inputs.indicators.items() if i.interval == interval}
            self._series.append(_Series(interval, inputs.bars.get(interval, 0), mine))
        self._bars_view: tuple[tuple[str, tuple[tuple[int, float, float, float, float, float], ...]], ...] = ()
        self._ind_view: tuple[tuple[str, float], ...] = ()
        self._wanted_bars = set(inputs.bars)

    @property
    def active(self) -> bool:
        return bool(self._series)

    def on_event(self, ts: int, price: float | None = None, qty: float = 0.0) -> None:
        """Advance every interval to ``ts``; add the trade when ``price`` is given."""
        changed = False
        for s in self._series:
            changed |= s.advance(ts)
            if price is not None:
                s.trade(ts, price, qty)
        if changed:
            self._refresh()

    def _refresh(self) -> None:
        self._bars_view = tuple((s.interval, s.view) for s in self._series if s.interval in self._wanted_bars)
        values: list[tuple[str, float]] = []
        for s in self._series:
            for name, indicator in s.indicators.items():
                v = indicator.value
                if isinstance(v, ind.Band):
                    values += [(f"{name}.middle", v.middle), (f"{name}.upper", v.upper), (f"{name}.lower", v.lower)]
                elif v is not None:
                    values.append((name, float(v)))
        self._ind_view = tuple(sorted(values))

    @property
    def bars(self) -> tuple[tuple[str, tuple[tuple[int, float, float, float, float, float], ...]], ...]:
        return self._bars_view

    @property
    def indicators(self) -> tuple[tuple[str, float], ...]:
        return self._ind_view
