"""A live cluster in this process: the actors on pykka threads, supervised, fed by the market."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

from arbor.actors.cluster.build import build_actors, market_clock, market_frames, market_venue, supervisor_for
from arbor.actors.cluster.observers import SummaryBoard
from arbor.actors.cluster.restart import start_messages, state_lost_reason
from arbor.actors.replay.recorder import JournalObserver, build_held
from arbor.actors.runtime import HandlerClock, ThreadedRuntime
from arbor.actors.runtime.dispatcher import Observer
from arbor.config.settings import Settings
from arbor.messages import SetTradingState, TradingState
from arbor.supervision.faults import FaultPlan
from arbor.supervision.group import Health
from arbor.supervision.persist import StatePersister, restore_all
from arbor.supervision.store import StateStore
from loguru import logger

MARKET_THREADS = ("arbor-feed", "arbor-market-stream")  # the threads that bring the market in
MARKET_SOURCE = "market_source"  # who halts the symbols when the market source dies


class LiveCluster:
    """Builds, starts and stops the single-process live cluster (what ``bin/start-cluster`` runs)."""

    def __init__(self, settings: Settings, run_id: str, observers: Iterable[Observer] = (),
                 clock: HandlerClock | None = None,
                 journal: Callable[[int, dict[str, Any]], JournalObserver] | None = None, persist: bool = True) -> None:
        """``journal(built_ns, restored)`` opens the journal observer once the actors are built and
        restored (the instant they were built at is what an audit replay holds the clock at while
        rebuilding them; ``restored`` maps each actor restored from the store to its state, which the
        replay restores it from)."""
        self.settings = settings
        self.run_id = run_id
        self.clock = clock or market_clock(settings, time.time_ns())
        self.board = SummaryBoard(tuple(s.symbol for s in settings.symbols))
        self.faults = FaultPlan(settings.faults, seed=settings.market.seed) if settings.faults else None
        actors, built_ns = build_held(lambda: build_actors(settings, self.clock, run_id, self.faults), self.clock)
        # Durable state lives in var/state/arbor.sqlite: a restarted process picks up its positions,
        # orders in flight, kill-switch latch and trading states, then reconciles with the venue.
        store = self.store = StateStore.in_var_dir(settings.run.var_dir) if persist else None
        self.persister = StatePersister(store) if store is not None else None
        self.restored: list[str] = []
        self.state_lost: str | None = None
        if store is not None and self.persister is not None:
            if store.degraded:
                logger.bind(actor="cluster", event_type="store_degraded").error(
                    "state store degraded, starting without stored state: {}", store.degraded_reason)
            self.restored = restore_all(actors, self.persister)
            self.state_lost = state_lost_reason(settings.run.var_dir, store)
            if self.state_lost is not None:
                logger.bind(actor="cluster", event_type="state_lost").critical(
                    "{}: starting with the kill switch engaged; reconcile, then reset it with a reason", self.state_lost)
        restored_state: dict[str, Any] = {}
        for aid in self.restored:
            inner: Any = getattr(actors[aid], "inner", actors[aid])  # restored, so it has snapshot()
            restored_state[aid] = inner.snapshot()
        self.journal = journal(built_ns, restored_state) if journal is not None else None
        extra = (self.journal,) if self.journal is not None else ()
        self.runtime = ThreadedRuntime(
            actors, self.clock,
            observers=(*extra, self.board, *observers),  # the journal first: what it refuses nobody counts
            tick_interval_s=settings.run.tick_interval_ms / 1000,
            switch_interval_s=settings.run.switch_interval_ms / 1000,
            supervise=supervisor_for(settings, self.clock, run_id, self.faults, self.persister),
            hang_timeout_s=settings.supervision.hang_timeout_ms / 1000,
            on_thread_died=self._thread_died)

    def start(self) -> None:
        from arbor.adapters.venues.wiring import STREAMED_SOURCES

        streamed = self.settings.market.source in STREAMED_SOURCES or self.settings.run.mode == "live"
        if streamed:
            from arbor.adapters.venues.wiring import check_venue_settings

            check_venue_settings(self.settings)  # before anything starts
        if self.persister is not None:
            self.persister.start()
        self.runtime.start()
        # Before any market event: every consumer learns the restored state, a lost state latches
        # the kill switch, and local state (restored or fresh) is reconciled with the venue.
        for receiver, msg in start_messages((s.symbol for s in self.settings.symbols), self.state_lost,
                                            self.clock.now_ns()):
            self.runtime.send(receiver, msg)
        if streamed:
            from arbor.adapters.venues.wiring import start_venues

            self.venues = start_venues(self.settings, self.runtime, self.clock)
        else:
            self.runtime.feed(market_frames(self.settings, self.clock.now_ns()), market_venue(self.settings),
                              paced=self.settings.market.paced)

    def stop(self, timeout: float = 4.0) -> None:
        if self.faults is not None:
            self.faults.release.set()  # end any injected hang so its thread can stop
        self.runtime.stop(timeout=timeout)
        if self.persister is not None:
            self.persister.stop()
        if self.store is not None:
            self.store.close()
        if self.journal is not None:
            self.journal.close()

    def _thread_died(self, name: str, exc: BaseException) -> None:
        """Fail closed when the market source dies for good: every symbol HALTED at Risk (cancels only)."""
        if name not in MARKET_THREADS:
            return
        reason = f"market source died: {exc!r}"[:300]
        for s in self.settings.symbols:
            self.runtime.send("risk", SetTradingState(scope=s.symbol, state=TradingState.HALTED, who=MARKET_SOURCE,
                                                      reason=reason), sender=MARKET_SOURCE)

    def stopped_for_good(self) -> list[str]:
        """What stopped during the run and did not come back: dead background threads (the market
        source among them), quarantined symbols and escalated singletons. Empty after a healthy run."""
        out = [f"thread {name} died: {why}" for name, why in self.runtime.thread_failures]
        for group in self.runtime.groups():
            hooks = self.runtime.dispatcher(group).supervision
            for sup in hooks.supervisors if hooks is not None else ():
                if getattr(sup, "health", None) is Health.QUARANTINED:
                    out.append(f"symbol {sup.symbol} quarantined: {sup.last_failure}")
                if getattr(sup, "escalated", False):
                    out.append(f"singletons escalated past their restart intensity: {sup.last_failure}")
        return out

    def send(self, receiver: str, msg: Any) -> None:
        self.runtime.send(receiver, msg)

    def supervision_status(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for g in self.runtime.groups():
            hooks = self.runtime.dispatcher(g).supervision
            if hooks is not None:
                out.update(hooks.status())
        return out
