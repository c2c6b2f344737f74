"""A live cluster in this process: the actors on pykka threads, supervised, fed by the market."""

from __future__ import annotations

from typing import Any, Iterable

from actors.cluster.build import build_actors, market_frames, market_venue, supervisor_for
from actors.cluster.observers import SummaryBoard
from actors.runtime import HandlerClock, ThreadedRuntime
from actors.runtime.dispatcher import Observer
from config.settings import Settings
from supervision.faults import FaultPlan


class LiveCluster:
    """Builds, starts and stops the single-process live cluster (what ``bin/start-cluster`` runs)."""

    def __init__(self, settings: Settings, run_id: str, observers: Iterable[Observer] = (),
                 clock: HandlerClock | None = None) -> None:
        self.settings = settings
        self.run_id = run_id
        self.clock = clock or HandlerClock()
        self.board = SummaryBoard(tuple(s.symbol for s in settings.symbols))
        self.faults = FaultPlan(settings.faults, seed=settings.market.seed) if settings.faults else None
        self.runtime = ThreadedRuntime(
            build_actors(settings, self.clock, run_id, self.faults), self.clock,
            observers=(self.board, *observers),
            tick_interval_s=settings.run.tick_interval_ms / 1000,
            switch_interval_s=settings.run.switch_interval_ms / 1000,
            supervise=supervisor_for(settings, self.clock, run_id, self.faults),
            hang_timeout_s=settings.supervision.hang_timeout_ms / 1000)

    def start(self) -> None:
        self.runtime.start()
        self.runtime.feed(market_frames(self.settings, self.clock.now_ns()), market_venue(self.settings),
                          paced=self.settings.market.paced)

    def stop(self, timeout: float = 4.0) -> None:
        if self.faults is not None:
            self.faults.release.set()  # end any injected hang so its thread can stop
        self.runtime.stop(timeout=timeout)

    def send(self, receiver: str, msg: Any) -> None:
        self.runtime.send(receiver, msg)

    def supervision_status(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for g in self.runtime.groups():
            hooks = self.runtime.dispatcher(g).supervision
            if hooks is not None:
                out.update(hooks.status())
        return out
