"""Incremental indicators: O(1) work and bounded memory per update, ``value`` None until warm.

Each takes one bar's values per ``update`` (``close``; ATR also ``high`` and ``low``; VWAP also
``volume``). They are plain objects so the same code runs in live, paper and replay. Windows are
rolling sums over a deque of ``period`` values (``SMA``, ``Bollinger``, ``ZScore``, ``VWAP``);
``EMA`` is seeded with the SMA of its first ``period`` values; ``RSI`` and ``ATR`` use Wilder's
smoothing (seeded with the mean of the first ``period`` changes / true ranges).
"""

from __future__ import annotations

import math
from collections import deque

import attrs

__all__ = ["ATR", "EMA", "RSI", "SMA", "VWAP", "Band", "Bollinger", "ZScore"]


def _period(period: int) -> int:
    if isinstance(period, bool) or not isinstance(period, int) or period < 1:
        raise ValueError(f"period must be an integer >= 1, got {period!r}")
    return period


class _Window:
    """A rolling sum and sum of squares over the last ``period`` values.

    The sums are of ``x - shift`` (``shift``: the first value seen), so a variance of prices near
    60,000 does not cancel away in ``E[x^2] - E[x]^2``.
    """

    def __init__(self, period: int) -> None:
        self.period = _period(period)
        self._values: deque[float] = deque()
        self._shift: float | None = None
        self._sum = 0.0
        self._squares = 0.0

    def push(self, x: float) -> None:
        if self._shift is None:
            self._shift = x
        d = x - self._shift
        self._values.append(d)
        self._sum += d
        self._squares += d * d
        if len(self._values) > self.period:
            old = self._values.popleft()
            self._sum -= old
            self._squares -= old * old

    @property
    def full(self) -> bool:
        return len(self._values) == self.period

    @property
    def total(self) -> float:
        return self._sum + (self._shift or 0.0) * len(self._values)

    def mean(self) -> float:
        return (self._shift or 0.0) + self._sum / self.period

    def stdev(self) -> float:
        """Population standard deviation of the window (clamped at 0 against rounding)."""
        m = self._sum / self.period
        return math.sqrt(max(self._squares / self.period - m * m, 0.0))


class SMA:
    """Simple moving average of the last ``period`` closes."""

    def __init__(self, period: int) -> None:
        self._w = _Window(period)

    def update(self, close: float, high: float = 0.0, low: float = 0.0, volume: float = 0.0) -> None:
        self._w.push(close)

    @property
    def value(self) -> float | None:
        return self._w.mean() if self._w.full else None


class EMA:
    """Exponential moving average, ``alpha = 2 / (period + 1)``, seeded with the first SMA."""

    def __init__(self, period: int) -> None:
        self._n = _period(period)
        self._alpha = 2.0 / (period + 1)
        self._seed = 0.0
        self._count = 0
        self._value: float | None = None

    def update(self, close: float, high: float = 0.0, low: float = 0.0, volume: float = 0.0) -> None:
        if self._value is None:
            self._seed += close
            self._count += 1
            if self._count == self._n:
                self._value = self._seed / self._n
            return
        self._value += self._alpha * (close - self._value)

    @property
    def value(self) -> float | None:
        return self._value


class _Wilder:
    """Wilder's smoothing: the mean of the first ``period`` inputs, then ``(prev*(n-1) + x) / n``."""

    def __init__(self, period: int) -> None:
        self._n = _period(period)
        self._seed = 0.0
        self._count = 0
        self.value: float | None = None

    def push(self, x: float) -> None:
        if self.value is None:
            self._seed += x
            self._count += 1
            if self._count == self._n:
                self.value = self._seed / self._n
            return
        self.value = (self.value * (self._n - 1) + x) / self._n


class RSI:
    """Relative strength index (0..100) of close-to-close changes; 100 when there were no losses."""

    def __init__(self, period: int = 14) -> None:
        self._gain = _Wilder(period)
        self._loss = _Wilder(period)
        self._prev: float | None = None

    def update(self, close: float, high: float = 0.0, low: float = 0.0, volume: float = 0.0) -> None:
        if self._prev is not None:
            change = close - self._prev
            self._gain.push(max(change, 0.0))
            self._loss.push(max(-change, 0.0))
        self._prev = close

    @property
    def value(self) -> float | None:
        gain, loss = self._gain.value, self._loss.value
        if gain is None or loss is None:
            return None
        if loss == 0.0:
            return 100.0 if gain > 0.0 else 50.0
        return 100.0 - 100.0 / (1.0 + gain / loss)


class ATR:
    """Average true range (Wilder): true range is max(high, prev close) - min(low, prev close)."""

    def __init__(self, period: int = 14) -> None:
        self._avg = _Wilder(period)
        self._prev: float | None = None

    def update(self, close: float, high: float = 0.0, low: float = 0.0, volume: float = 0.0) -> None:
        hi, lo = max(high, close), min(low, close) if low > 0.0 else close
        if self._prev is not None:
            hi, lo = max(hi, self._prev), min(lo, self._prev)
        self._avg.push(hi - lo)
        self._prev = close

    @property
    def value(self) -> float | None:
        return self._avg.value


@attrs.frozen
class Band:
    """A Bollinger band: the middle (SMA) and ``k`` population standard deviations either side."""

    middle: float
    upper: float
    lower: float


class Bollinger:
    """Bollinger bands over ``period`` closes, ``k`` standard deviations wide."""

    def __init__(self, period: int = 20, k: float = 2.0) -> None:
        self._w = _Window(period)
        self._k = k

    def update(self, close: float, high: float = 0.0, low: float = 0.0, volume: float = 0.0) -> None:
        self._w.push(close)

    @property
    def value(self) -> Band | None:
        if not self._w.full:
            return None
        mid, dev = self._w.mean(), self._k * self._w.stdev()
        return Band(middle=mid, upper=mid + dev, lower=mid - dev)


class VWAP:
    """Volume-weighted average of the typical price (high + low + close) / 3 over ``period`` bars.

    The sums are taken over the window's values (``math.fsum``, correctly rounded), not kept as
    running totals: a bar with a large volume leaving the window would leave its rounding residue
    in them, large beside a window of tiny volumes (0.27 ppm of the price was seen)."""

    def __init__(self, period: int) -> None:
        self.period = _period(period)
        self._pv: deque[float] = deque(maxlen=self.period)
        self._v: deque[float] = deque(maxlen=self.period)

    def update(self, close: float, high: float = 0.0, low: float = 0.0, volume: float = 0.0) -> None:
        typical = (max(high, close) + (min(low, close) if low > 0.0 else close) + close) / 3.0
        self._pv.append(typical * volume)
        self._v.append(volume)

    @property
    def value(self) -> float | None:
        if len(self._v) < self.period:
            return None
        volume = math.fsum(self._v)
        return math.fsum(self._pv) / volume if volume > 0.0 else None


class ZScore:
    """How many (population) standard deviations the last close is from the mean of ``period``; 0 when flat."""

    def __init__(self, period: int) -> None:
        self._w = _Window(period)
        self._last = 0.0

    def update(self, close: float, high: float = 0.0, low: float = 0.0, volume: float = 0.0) -> None:
        self._w.push(close)
        self._last = close

    @property
    def value(self) -> float | None:
        if not self._w.full:
            return None
        dev = self._w.stdev()
        return (self._last - self._w.mean()) / dev if dev > 1e-12 * max(abs(self._last), 1.0) else 0.0
