"""Clocks handed to actors through their context."""

from __future__ import annotations

import threading
import time


class WallClock:
    """The real clock, for the live runtime only."""

    def now_ns(self) -> int:
        return time.time_ns()


class HandlerClock:
    """The live clock as actors see it: wall time that holds still while one handler runs.

    The dispatcher calls ``begin()`` before a handler (the returned time is journaled with the
    input) and ``end()`` after it; every ``now_ns()`` inside reads that one instant, so a replay
    that sets the same instant reproduces the handler exactly. Outside a handler it is the wall
    clock. The held time is per thread, so groups on different threads do not interfere.

    ``offset_ns`` is subtracted from the wall clock: a live run that plays a recording runs on the
    recording's time (``offset_ns`` = wall time at the start minus the recording's first frame),
    so paced frames are released at their recorded pace and data ages (Risk's ``stale_data``, the
    staleness metric) compare recorded event times with a clock of the same era.
    """

    def __init__(self, offset_ns: int = 0) -> None:
        self._local = threading.local()
        self.offset_ns = offset_ns

    def now_ns(self) -> int:
        held = getattr(self._local, "now", None)
        return held if held is not None else time.time_ns() - self.offset_ns

    def wall_ns(self) -> int:
        """The unshifted wall clock, for what outside monitors compare with theirs (the heartbeat)."""
        return time.time_ns()

    def begin(self) -> int:
        now = time.time_ns() - self.offset_ns
        self._local.now = now
        return now

    def end(self) -> None:
        self._local.now = None


class SimClock:
    """A simulated clock the deterministic scheduler moves forward; it never goes backwards."""

    def __init__(self, start_ns: int = 0) -> None:
        self._now = start_ns

    def now_ns(self) -> int:
        return self._now

    def begin(self) -> int:
        return self._now

    def end(self) -> None:
        pass

    def set(self, ns: int) -> None:
        # Recorded feeds may carry equal or (across venues) slightly older stamps; time stays put.
        if ns > self._now:
            self._now = ns
