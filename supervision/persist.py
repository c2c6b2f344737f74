"""Keeping actors' durable state in the StateStore, without putting SQLite on every hot path.

After every handler that completes (never after one that raised), the persister looks at what
changed and queues the actor's snapshot, keyed by actor, so only the newest one is written.
A writer thread commits queued snapshots in batches (sqlite3 releases the GIL while it commits,
so that work runs beside the actors); a process with one thread of actors (a cluster node) has no
writer thread and commits them itself between its turns of work (``flush_due``). Two things are
synchronous:

* **write-ahead for orders**: when the executor is about to send an order, its state (with the
  order in PENDING_NEW) is committed *before* the order is routed, together with every snapshot
  queued before it (the position's move to ENTERING that led to the order), so a crash can never
  leave an order at the venue that a restarted executor or position does not know about. If that
  commit fails, ``after_handle`` raises ``WriteAheadFailed``: the dispatcher then treats the
  executor's handler as failed and routes none of its output, so the order is never sent;
* **the simulated exchange's records**: committed before it answers, as a real venue's are;
* **restore**: ``load(actor_id)`` first flushes what is queued, so a restarted actor gets the
  state after the last handler that completed, never a half-applied change (a snapshot the disk
  refused is still queued: that one, never the older state committed before it).

Snapshots are immutable values taken between handlers, so handing them to another thread is safe.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from arbor.actors.base import WriteAheadFailed
from arbor.actors.topology import role_of, symbol_of
from arbor.messages import MandateSet, PlaceOrder, RawMarketEvent, TimerTick
from arbor.supervision.store import StateStore
from loguru import logger

PERSISTED_ROLES = frozenset({"position", "executor", "risk", "arbitrator", "venue"})


class StatePersister:
    """See the module docstring. ``venue`` state is kept only for the simulated exchange."""

    def __init__(self, store: StateStore, flush_interval_s: float = 0.05, threaded: bool = True,
                 after_write_ahead: Callable[[str], None] | None = None) -> None:
        """``threaded=False``: no writer thread; the owner calls ``flush_due`` when it has time
        (a node's single thread, between its turns of work: a writer thread taking the GIL
        between SQLite calls delayed that thread's decisions). ``after_write_ahead(actor_id)``:
        called after an order's write-ahead committed, before the order is routed (a fault hook:
        ``faults.StorageFaults.write_ahead_done`` crashes the process there)."""
        self.store = store
        self._after_write_ahead = after_write_ahead
        self._threaded = threaded
        self._flushed_at = 0.0
        self._pending: dict[str, Any] = {}
        self._qlock = threading.Lock()
        self._wlock = threading.Lock()  # held while writing: a newer write never loses to an older one
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._interval = flush_interval_s
        self._thread: threading.Thread | None = None
        self._last: dict[str, Any] = {}
        self.writes = 0
        self.write_ahead = 0
        self.errors = 0
        self._faults: dict[str, str] = {}  # actor id -> its first write error, not yet reported
        self._reported: set[str] = set()

    # -- lifecycle --------------------------------------------------------------------------
    def start(self) -> None:
        if not self._threaded:
            return
        self._thread = threading.Thread(target=self._run, name="arbor-persist", daemon=True)
        self._thread.start()

    def due(self, now: float) -> bool:
        """Whether ``flush_due(now)`` would commit something."""
        return bool(self._pending) and now - self._flushed_at >= self._interval

    def next_due(self, now: float) -> float:
        """Seconds from ``now`` until ``flush_due`` would commit (infinite while nothing is queued)."""
        return max(0.0, self._flushed_at + self._interval - now) if self._pending else float("inf")

    def flush_due(self, now: float) -> None:
        """Without a writer thread: commit what is queued if ``flush_interval_s`` has passed
        since the last time (``now``: ``time.monotonic()``)."""
        if self.due(now):
            self._flushed_at = now
            self.flush()

    def abandon(self) -> None:
        """The process died: what is queued is lost, nothing more is written (a crash drill)."""
        self._stop.set()
        self._wake.set()
        with self._qlock:
            self._pending = {}

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(5.0)
        self.flush()

    # -- the dispatcher hook ----------------------------------------------------------------
    def after_handle(self, actor_id: str, logic: Any, msg: Any, out: list[Any] | None) -> None:
        """Called on the actor's thread after a handler completed, before its outputs are routed."""
        role = role_of(actor_id)
        if role not in PERSISTED_ROLES:
            return
        inner = getattr(logic, "inner", logic)
        snapshot = getattr(inner, "snapshot", None)
        if snapshot is None:
            return
        if role == "position":
            snap = snapshot()
            if snap is self._last.get(actor_id):
                return
            self._last[actor_id] = snap
        elif role == "arbitrator" and type(msg) is MandateSet and not any(a.kind.value != "HOLD" for a in out or ()):
            return  # a HOLD cycle changes nothing durable
        elif type(msg) in (TimerTick, RawMarketEvent) and not out:
            return  # nothing durable changed (the simulated venue's book is rebuilt from quotes)
        else:
            snap = snapshot()
        if role == "executor" and out and any(type(m) is PlaceOrder for m in out):
            self._write_now(actor_id, snap)  # raises WriteAheadFailed: then the order is not routed
            if self._after_write_ahead is not None:
                self._after_write_ahead(actor_id)
            return
        if role == "venue" and out:
            # The simulated exchange commits its records before it answers, as a real one does:
            # after a crash it must never "forget" a fill it already reported.
            self._write_now(actor_id, snap)
            return
        with self._qlock:
            self._pending[actor_id] = snap
        if self._threaded and not self._wake.is_set():  # set() locks and notifies: once per wake
            self._wake.set()

    # -- restore ----------------------------------------------------------------------------
    def load(self, actor_id: str) -> Any:
        """The newest state of ``actor_id``: the last one committed after everything queued is
        written or, when the disk refused that write, the snapshot still queued (a restart must
        not go back to an older committed state while the process holds a newer one: explorer
        seeds 3103, 3204)."""
        self.flush()
        with self._qlock:
            held = self._pending.get(actor_id)
        if held is not None:
            return held
        role, sym = role_of(actor_id), symbol_of(actor_id)
        st = self.store
        if role == "position":
            return st.load_position(sym)
        if role == "executor":
            return st.load_executor(sym)
        if role == "risk":
            return st.load_risk()
        if role == "arbitrator":
            return st.load_arbitrator()
        if role == "venue":
            from arbor.adapters.sim.paper import PaperOrderState, PaperVenueSnapshot

            return st.load_venue(sym, PaperVenueSnapshot, PaperOrderState)
        return None

    # -- writing ----------------------------------------------------------------------------
    def flush(self) -> None:
        with self._wlock:
            with self._qlock:
                batch, self._pending = self._pending, {}
            self._write(batch)

    def _write_now(self, actor_id: str, snap: Any) -> None:
        """Commit ``snap`` now, together with its symbol's snapshots queued before it, in one
        transaction.

        Those are the states that led here (the position that moved to ENTERING before the
        executor placed its order): committing the write-ahead without them could restore an
        executor with an order its position never asked for; and Risk's and the Arbitrator's
        (the approval behind the order), where they share the process. Other symbols' snapshots
        stay queued (nothing of one symbol's subtree depends on another's): with no writer
        thread, up to an interval of every symbol's changes would otherwise ride on each order.
        """
        symbol = symbol_of(actor_id)
        with self._wlock:
            with self._qlock:
                pending = self._pending
                batch = {aid: pending.pop(aid) for aid in [a for a in pending if symbol_of(a) in (symbol, "")]}
            batch[actor_id] = snap
            try:
                with self.store.transaction():
                    for aid, s in batch.items():
                        self._save(aid, s)
            except Exception as exc:
                # Not written, so not sent: the order fails its handler (WriteAheadFailed). The states
                # that led to it go back in the queue (unless a newer one is already there).
                self.errors += 1
                del batch[actor_id]
                with self._qlock:
                    for aid, s in batch.items():
                        self._pending.setdefault(aid, s)
                    # Reported like any write error (take_faults): the disk trading depends on
                    # refuses writes, whatever rode on this commit (the simulated exchange's commit
                    # carries the symbol's snapshots, and no supervisor watches the exchange).
                    if actor_id not in self._reported:
                        self._faults.setdefault(actor_id, f"{type(exc).__name__}: {exc}")
                self.store.mark_unsaved(f"write-ahead of {actor_id}: {exc!r}")
                logger.bind(actor=actor_id, event_type="write_ahead_failed").opt(exception=exc).critical(
                    "write-ahead of {} failed, its order is not sent: {!r}", actor_id, exc)
                raise WriteAheadFailed(f"write-ahead of {actor_id} failed: {exc!r}") from exc
            self.writes += len(batch)
            self.write_ahead += 1

    def _run(self) -> None:
        # At most one commit per interval: snapshots queued meanwhile are coalesced (one per actor),
        # so a steady stream of changes costs one transaction per interval, not one per change.
        last = 0.0
        while not self._stop.is_set():
            self._wake.wait(self._interval)
            self._wake.clear()
            wait = last + self._interval - time.monotonic()
            if wait > 0 and self._stop.wait(wait):
                break  # stop() writes what is left
            self.flush()
            last = time.monotonic()

    def _write(self, batch: dict[str, Any]) -> None:
        if not batch:
            return
        try:
            with self.store.transaction():
                for actor_id, snap in batch.items():
                    self._save(actor_id, snap)
            self.writes += len(batch)
            with self._qlock:
                if not self._pending:
                    self.store.clear_unsaved()  # everything held is committed
        except Exception:
            # One bad snapshot must not sink the others: write them one by one and report each failure.
            for actor_id, snap in batch.items():
                try:
                    with self.store.transaction():
                        self._save(actor_id, snap)
                    self.writes += 1
                except Exception as exc:  # loud, and fails closed: supervision reports it (take_faults)
                    self.errors += 1
                    with self._qlock:
                        if actor_id not in self._reported:
                            self._faults.setdefault(actor_id, f"{type(exc).__name__}: {exc}")
                        # Kept for the next flush (unless a newer one is queued): a snapshot the
                        # disk refused is not lost, or a restart would restore an older state
                        # beside its neighbours' newer ones (explorer seed 215).
                        self._pending.setdefault(actor_id, snap)
                    self.store.mark_unsaved(f"saving {actor_id}: {exc!r}")
                    logger.bind(actor=actor_id, event_type="store_write_failed").opt(exception=exc).error(
                        "could not persist {}: {!r}", actor_id, exc)

    def take_faults(self) -> dict[str, str]:
        """Write errors (actor id -> first error) not reported yet; each is handed out once."""
        with self._qlock:
            faults, self._faults = self._faults, {}
            self._reported.update(faults)
        return faults

    def _save(self, actor_id: str, snap: Any) -> None:
        st = self.store
        role, sym = role_of(actor_id), symbol_of(actor_id)
        if role == "position":
            st.save_position(sym, snap)
        elif role == "executor":
            st.save_executor(sym, snap)
        elif role == "risk":
            st.save_risk(snap)
        elif role == "arbitrator":
            st.save_arbitrator(snap)
        elif role == "venue":
            st.save_venue(sym, snap)


def restore_all(actors: dict[str, Any], persister: StatePersister) -> list[str]:
    """Cold start: give every persisted actor its stored state; returns the actor ids restored."""
    restored = []
    for actor_id, logic in actors.items():
        if role_of(actor_id) not in PERSISTED_ROLES:
            continue
        inner = getattr(logic, "inner", logic)
        if not hasattr(inner, "restore"):
            continue
        snap = persister.load(actor_id)
        if snap is not None:
            inner.restore(snap)
            restored.append(actor_id)
    return restored


AfterHandle = Callable[[str, Any, Any, "list[Any] | None"], None]
