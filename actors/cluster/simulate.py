"""A whole cluster on the deterministic scheduler: for tests, backtests and what-if replay.

The very same actor logic as ``start-cluster``, but single-threaded in simulated time, so the
same settings and inputs give the same decisions every run.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from arbor.actors.cluster.build import build_actors, market_frames, market_venue, supervisor_for
from arbor.actors.cluster.observers import SummaryBoard
from arbor.actors.cluster.restart import start_messages, state_lost_reason
from arbor.actors.runtime import DeterministicRuntime, SimClock
from arbor.actors.runtime.dispatcher import Observer
from arbor.config.settings import Settings
from arbor.messages import Envelope
from arbor.supervision.faults import FaultPlan, StorageFaults
from arbor.supervision.persist import StatePersister, restore_all
from arbor.supervision.store import StateStore


class Recorder:
    """Keeps every emitted envelope (and optionally external inputs) in order; for tests and audits."""

    wants_inputs = False

    def __init__(self, keep_external: bool = False) -> None:
        self.emitted_log: list[tuple[Envelope, tuple[str, ...]]] = []
        self.external_log: list[Envelope] = []
        self._keep_external = keep_external

    def external(self, env: Envelope) -> None:
        if self._keep_external:
            self.external_log.append(env)

    def emitted(self, env: Envelope, receivers: tuple[str, ...]) -> None:
        self.emitted_log.append((env, receivers))

    def processed(self, actor_id: str, env: Envelope, now_ns: int) -> None:
        pass

    def of_type(self, t: type, sender_suffix: str | None = None) -> list[Any]:
        return [e.payload for e, _ in self.emitted_log
                if type(e.payload) is t and (sender_suffix is None or e.sender.endswith(sender_suffix))]

    def envelopes_of(self, t: type) -> list[Envelope]:
        return [e for e, _ in self.emitted_log if type(e.payload) is t]


class SimulatedCluster:
    """Builds every actor from ``settings`` and runs them on the deterministic scheduler."""

    def __init__(self, settings: Settings, start_ns: int = 1_723_161_600_000_000_000, run_id: str = "sim",
                 observers: Iterable[Observer] = (), var_dir: Path | None = None,
                 storage_faults: StorageFaults | None = None, journal: Callable[[], Observer] | None = None) -> None:
        """``var_dir``: keep durable state in ``<var_dir>/state`` and start as ``start-cluster``
        does from it (restore, announce, fail closed on a lost store, reconcile); ``close()``
        commits what is queued and closes the store, ``crash()`` loses what is queued.
        ``storage_faults``: the fault hooks of the store's commits and of the write-ahead.
        ``journal()`` opens the journal observer after the store is opened and the var dir's
        traces of a previous run are read, as ``start-cluster`` opens it (a journal of this run
        opened before would read as a previous run's); it observes before ``observers``."""
        self.settings = settings
        self.start_ns = start_ns
        self.clock = SimClock(start_ns)
        self.board = SummaryBoard(tuple(s.symbol for s in settings.symbols))
        self.recorder = Recorder()
        self.faults = FaultPlan(settings.faults, seed=settings.market.seed) if settings.faults else None
        self.actors = build_actors(settings, self.clock, run_id, self.faults)
        self.store: StateStore | None = None
        self.persister: StatePersister | None = None
        self.state_lost: str | None = None
        if var_dir is not None:
            sf = storage_faults
            self.store = StateStore.in_var_dir(var_dir, clock_ns=self.clock.now_ns,
                                               write_fault=sf.store_commit if sf is not None else None)
            self.persister = StatePersister(self.store, threaded=False,
                                            after_write_ahead=sf.write_ahead_done if sf is not None else None)
            restore_all(self.actors, self.persister)
            self.state_lost = state_lost_reason(var_dir, self.store)
        self.journal = journal() if journal is not None else None
        first = (self.journal,) if self.journal is not None else ()
        self.runtime = DeterministicRuntime(
            self.actors, self.clock, observers=(self.board, self.recorder, *first, *observers),
            tick_interval_ns=settings.run.tick_interval_ms * 1_000_000,
            supervise=supervisor_for(settings, self.clock, run_id, self.faults, self.persister))
        if var_dir is not None:
            for receiver, msg in start_messages((s.symbol for s in settings.symbols), self.state_lost, start_ns):
                self.runtime.send_now(receiver, msg)
        self.runtime.add_market(market_frames(settings, start_ns), market_venue(settings))

    def close(self) -> None:
        """Commit the queued durable state and close the store (no-op without a ``var_dir``)."""
        if self.persister is not None and self.store is not None:
            self.persister.stop()
            self.store.close()

    def crash(self) -> None:
        """The process dies (after a ``ProcessCrash``): what is queued for the store is lost, what
        was committed stays (no-op without a ``var_dir``)."""
        if self.persister is not None and self.store is not None:
            self.persister.abandon()
            self.store.close()

    def run_for(self, seconds: float) -> int:
        """Advance simulated time by ``seconds`` (market frames, ticks and scheduled commands)."""
        return self.runtime.run(until_ns=self.clock.now_ns() + int(seconds * 1e9))

    def run_all(self, max_inputs: int | None = None) -> int:
        return self.runtime.run(max_inputs=max_inputs)

    def at(self, seconds_from_start: float, receiver: str, msg: Any) -> None:
        """Schedule an operator command at a time relative to the start."""
        self.runtime.schedule(self.start_ns + int(seconds_from_start * 1e9), receiver, msg)

    def logic(self, actor_id: str) -> Any:
        return self.runtime.actors[actor_id]
