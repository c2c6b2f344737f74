"""What a cluster does at start with the state it restored: one truth for every consumer, and a
latched kill switch when that state was lost.

The store restores Position, Executor, Risk and the Arbitrator, but the strategy's position
view, the operator view, metrics and the trade log learn only from the traffic. So before the
first market event every Position and Risk is told to announce what it holds (``AnnounceState``),
and every executor reconciles with the venue.

A store that is missing, empty or corrupt while the var dir shows a previous run means the
positions, orders and latch of that run are unknown: the cluster starts with the kill switch
engaged (who ``state_store``, reason starting ``state lost``) and waits for an operator reset.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from arbor.actors.replay.recorder import JOURNAL_SUBDIR
from arbor.messages import AnnounceState, EngageKillSwitch, Reconcile
from arbor.supervision.store import StateStore

STATE_LOST_WHO = "state_store"
STATE_LOST = "state lost"  # the stable start of the kill switch's reason
TRADE_LOG = "trades.jsonl"
HEARTBEAT = "heartbeat.json"  # adapters.operator.liveness.HEARTBEAT (not imported: it imports the observers)
START = "start"  # the reason of the start's AnnounceState, so the cause of the PositionChanged it brings


def previous_run_traces(var_dir: Path | str, store: StateStore) -> list[str]:
    """What in ``var_dir`` shows that a cluster ran there before (read before this run writes any
    of it: the journal of this run is opened after the store)."""
    var = Path(var_dir)
    traces = []
    if store.marker_found:
        traces.append(f"store marker {store.marker.name}")
    journal = var / JOURNAL_SUBDIR
    if journal.is_dir() and any(p.is_dir() for p in journal.iterdir()):
        traces.append("journal runs")
    trades = var / TRADE_LOG
    if trades.is_file() and trades.stat().st_size > 0:
        traces.append(TRADE_LOG)
    if (var / HEARTBEAT).exists():  # written by the liveness cycle, which starts after the cluster
        traces.append(HEARTBEAT)
    return traces


def state_lost_reason(var_dir: Path | str, store: StateStore) -> str | None:
    """Why the stored state of a previous run is gone (None: restored, or a first run)."""
    if store.quarantine is not None:
        return f"{STATE_LOST}: store quarantined to {store.quarantine.moved_to.name} ({store.quarantine.reason})"
    if store.unsaved_found:
        return f"{STATE_LOST}: the previous process could not save its newest state ({store.unsaved_found})"
    traces = previous_run_traces(var_dir, store)
    if not traces:
        return None
    if store.in_memory:
        return f"{STATE_LOST}: store unusable after a previous run ({', '.join(traces)}): {store.degraded_reason}"
    if store.fresh:
        what = "empty (0 bytes)" if store.found_empty else "missing"
        return f"{STATE_LOST}: store {what} after a previous run ({', '.join(traces)})"
    return None


def start_messages(symbols: Iterable[str], lost: str | None, now_ns: int) -> list[tuple[str, Any]]:
    """(receiver, message) to send at start, in order, before any market event.

    Announcements go first, so the latch a lost state engages is announced once, by Risk itself.
    """
    syms = tuple(symbols)
    out: list[tuple[str, Any]] = [("risk", AnnounceState(reason=START))]
    out += [(f"{s}/position", AnnounceState(reason=START)) for s in syms]
    if lost is not None:
        out.append(("risk", EngageKillSwitch(who=STATE_LOST_WHO, reason=lost)))
    out += [(f"{s}/executor", Reconcile(symbol=s, reason="start", ts_event_ns=now_ns)) for s in syms]
    return out
