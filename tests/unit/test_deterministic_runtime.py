"""The deterministic scheduler: time order, and nothing lost between bounded runs."""

from __future__ import annotations

from arbor.actors.base import ActorLogic
from arbor.actors.runtime import DeterministicRuntime, SimClock
from arbor.actors.testing import make_ctx
from arbor.messages import TimerTick


class Seen(ActorLogic):
    ROLE = "risk"

    def __init__(self) -> None:
        super().__init__(make_ctx("risk", ""))
        self.ticks: list[int] = []

    def on_timer_tick(self, msg: TimerTick) -> list:
        self.ticks.append(msg.ts_event_ns)
        return []


def test_bounded_runs_lose_no_input() -> None:
    """run(until_ns) stops before the first later input and a later run() delivers it."""
    seen = Seen()
    rt = DeterministicRuntime({"risk": seen}, SimClock(0))
    rt.add_inputs((t, "risk", TimerTick(ts_event_ns=t)) for t in (1, 2, 3, 4))
    rt.schedule(3, "risk", TimerTick(ts_event_ns=30))
    rt.run(until_ns=2)
    assert seen.ticks == [1, 2]
    rt.run()
    assert seen.ticks == [1, 2, 30, 3, 4]
