"""The burst window: count and notional of events over the last N completed time buckets plus the open one.

One implementation for the runtime and for research. The Feature actor's ``liq_count`` and
``liq_notional`` are a ``BurstWindow`` of liquidations over ``feature.short_window`` buckets
(``actors/feature/logic.py`` closes the buckets as event time moves on); the offline detector
(``arbor.analysis.cascades``) drives the same class through ``BurstMeter``, which closes buckets by
the same rule from event times, so its window values at every event equal the runtime's.

Pure: no clock, no I/O; floats, summed in a fixed order, so results are bit-for-bit repeatable.
"""

from __future__ import annotations

from collections import deque

__all__ = ["BurstMeter", "BurstWindow"]


class BurstWindow:
    """Events counted and their notional summed over ``window`` completed buckets and the open one.

    ``add`` puts an event in the open bucket; ``close_bucket`` moves the open bucket into the
    window (the oldest drops out past ``window``). ``count`` and ``notional`` include the open bucket,
    so a burst shows at once. The window sums are taken when a bucket closes, then the open bucket's
    running values are added: the runtime's feature arithmetic, unchanged.
    """

    __slots__ = ("_cur_n", "_cur_notional", "_n", "_notional", "_w_n", "_w_notional")

    def __init__(self, window: int) -> None:
        if window <= 0:
            raise ValueError(f"a burst window needs at least one bucket, got {window}")
        self._n: deque[int] = deque(maxlen=window)
        self._notional: deque[float] = deque(maxlen=window)
        self._cur_n = 0
        self._cur_notional = 0.0
        self._w_n = 0
        self._w_notional = 0.0

    def add(self, notional: float | None) -> None:
        """One event in the open bucket; ``notional`` ``None`` counts it without notional."""
        self._cur_n += 1
        if notional is not None:
            self._cur_notional += notional

    def close_bucket(self) -> None:
        """The open bucket joins the window; a new, empty bucket opens."""
        self._n.append(self._cur_n)
        self._notional.append(self._cur_notional)
        self._cur_n = 0
        self._cur_notional = 0.0
        self._w_n = sum(self._n)
        self._w_notional = sum(self._notional)

    @property
    def count(self) -> int:
        return self._w_n + self._cur_n

    @property
    def notional(self) -> float:
        return self._w_notional + self._cur_notional


class BurstMeter:
    """A ``BurstWindow`` whose buckets close by event time, as the Feature actor closes them.

    ``at(ts_ns)`` must be called for every event of the stream (not only the counted ones): the
    open bucket is the latest event's, an event from an already closed bucket counts in the open one
    (a late print), and a jump of several buckets closes the empty ones in between (at most
    ``window`` of them: after that many the window holds only empty buckets anyway).
    """

    __slots__ = ("_bucket", "_bucket_ns", "_window", "window")

    def __init__(self, bucket_ms: int, window: int) -> None:
        if bucket_ms <= 0:
            raise ValueError(f"bucket_ms must be positive, got {bucket_ms}")
        self._bucket_ns = bucket_ms * 1_000_000
        self._window = window
        self._bucket: int | None = None
        self.window = BurstWindow(window)

    def at(self, ts_ns: int) -> None:
        """Event time moved to ``ts_ns``: close the buckets it leaves behind."""
        bucket = ts_ns // self._bucket_ns
        if self._bucket is None:
            self._bucket = bucket
        elif bucket > self._bucket:
            for _ in range(min(bucket - self._bucket, self._window + 1)):
                self.window.close_bucket()
            self._bucket = bucket

    def add(self, ts_ns: int, notional: float | None) -> None:
        """An event to count at ``ts_ns`` (``at`` is applied first)."""
        self.at(ts_ns)
        self.window.add(notional)
