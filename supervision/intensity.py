"""Restart intensity: at most N restarts within T seconds."""

from __future__ import annotations

from collections import deque


class RestartIntensity:
    """Counts restarts in a sliding window; ``record`` says whether the limit is now exceeded."""

    def __init__(self, intensity: int, period_s: float) -> None:
        self.intensity = intensity
        self.period_ns = int(period_s * 1e9)
        self._times: deque[int] = deque()
        self.total = 0

    def record(self, now_ns: int) -> bool:
        """Count one restart at ``now_ns``; True when more than ``intensity`` fall in the period."""
        self._times.append(now_ns)
        self.total += 1
        while self._times and now_ns - self._times[0] > self.period_ns:
            self._times.popleft()
        return len(self._times) > self.intensity

    def in_period(self) -> int:
        return len(self._times)

    def reset(self) -> None:
        self._times.clear()
