"""Clocks handed to actors through their context."""

from __future__ import annotations

import time


class WallClock:
    """The real clock, for the live runtime only."""

    def now_ns(self) -> int:
        return time.time_ns()


class SimClock:
    """A simulated clock the deterministic scheduler moves forward; it never goes backwards."""

    def __init__(self, start_ns: int = 0) -> None:
        self._now = start_ns

    def now_ns(self) -> int:
        return self._now

    def set(self, ns: int) -> None:
        # Recorded feeds may carry equal or (across venues) slightly older stamps; time stays put.
        if ns > self._now:
            self._now = ns
