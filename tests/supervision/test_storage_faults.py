"""A write error on a trading path (the trade log on a full disk) fails closed, loudly, and wedges nothing."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
from arbor.actors.cluster.build import build_actors, market_frames, market_venue, supervisor_for
from arbor.actors.cluster.observers import TradeLog
from arbor.actors.cluster.simulate import Recorder, SimulatedCluster
from arbor.actors.risk import RiskLogic
from arbor.actors.runtime import DeterministicRuntime, SimClock
from arbor.adapters.operator.liveness import EngineCycle, ErrorCounter, LivenessFiles
from arbor.adapters.operator.local import ClusterFacts, RuntimeSource
from arbor.adapters.operator.view import ClusterView
from arbor.config.settings import load_settings
from arbor.messages import ActorFailed, KillSwitchEngaged
from arbor.supervision.faults import FullDisk
from arbor.supervision.persist import StatePersister
from arbor.supervision.store import StateStore

START_NS = 1_723_161_600_000_000_000


@pytest.fixture(scope="module")
def full_disk(tmp_path_factory: pytest.TempPathFactory) -> tuple[SimulatedCluster, ClusterFacts]:
    """One simulated session whose trade log sits on a full disk (read-only use by every test here)."""
    disk = FullDisk(room=0)
    facts = ClusterFacts()
    trades = TradeLog(tmp_path_factory.mktemp("trades") / "trades.jsonl", "paper", sink=disk)
    c = SimulatedCluster(load_settings({}), observers=(trades, facts))
    c.run_for(900)
    assert disk.refused, "no trade closed: the test proves nothing"
    return c, facts


def test_trade_log_write_error_engages_the_kill_switch(full_disk: Any) -> None:
    """The first failed trade-log write reaches Risk as a storage failure and engages the kill switch."""
    c, _ = full_disk
    failed = [m for m in c.recorder.of_type(ActorFailed) if m.kind == "storage"]
    assert [m.actor_id for m in failed] == ["trade_log"]
    assert c.recorder.of_type(KillSwitchEngaged)
    assert c.logic("risk").controls.kill.engaged


def test_trade_log_write_error_wedges_no_position(full_disk: Any) -> None:
    """After a failed trade-log write every Position keeps applying the venue's fills."""
    c, _ = full_disk
    for s in c.settings.symbols:
        snap = c.logic(f"{s.symbol}/position").snapshot()
        assert snap.signed_qty == c.logic(f"{s.symbol}/venue").venue_position().qty, s.symbol
    assert c.runtime.dispatcher.observer_faults.keys() == {"trade_log"}


def test_trade_log_write_error_makes_api_state_unhealthy(full_disk: Any) -> None:
    """/api/state reports status error and names the writer that cannot write."""
    c, facts = full_disk
    state = ClusterView(RuntimeSource(c.runtime, c.board, facts, [s.symbol for s in c.settings.symbols])).state()
    assert state["status"] == "error" and "trade_log" in state["storage_faults"]


class _IdleView:
    """The liveness cycle's view of a cluster whose groups all answer, with the real storage facts."""

    def __init__(self, facts: ClusterFacts) -> None:
        self.facts = facts

    def mailbox_depths(self) -> tuple[dict[str, int], list[str]]:
        return {}, []

    def storage_faults(self) -> dict[str, str]:
        return dict(self.facts.snapshot()["storage_faults"])

    def record_engine_cycle(self, ts_ns: int) -> None:
        pass


def test_trade_log_write_error_keeps_the_heartbeat_degraded(full_disk: Any, tmp_path: Path) -> None:
    """Every heartbeat after the write error says degraded, not only the cycle that saw it."""
    c, facts = full_disk
    cycle = EngineCycle(LivenessFiles(tmp_path, fsync=False), ErrorCounter(), c.clock, interval_s=1.0,
                        view=_IdleView(facts), monotonic=iter([0.0, 1.0]).__next__)
    assert [cycle.run_once()["engine_status"] for _ in range(2)] == ["degraded", "degraded"]


class _FullDiskStore(StateStore):
    """A state store on a full disk: every transaction fails as SQLite does when it cannot grow."""

    def transaction(self) -> Any:
        raise sqlite3.OperationalError("database or disk is full")


def test_state_store_write_error_engages_the_kill_switch(tmp_path: Path) -> None:
    """A snapshot the store cannot save reaches Risk as a storage failure and engages the kill switch."""
    settings = load_settings({})
    clock = SimClock(START_NS)
    persister = StatePersister(_FullDiskStore(tmp_path / "state.sqlite", clock.now_ns), threaded=False)
    recorder = Recorder()
    runtime = DeterministicRuntime(build_actors(settings, clock, "sim", None), clock, observers=(recorder,),
                                   tick_interval_ns=settings.run.tick_interval_ms * 1_000_000,
                                   supervise=supervisor_for(settings, clock, "sim", None, persister))
    runtime.add_market(market_frames(settings, START_NS), market_venue(settings))
    runtime.run(until_ns=START_NS + 10 * 10**9)
    persister.flush()  # the queued snapshots: every write fails
    runtime.run(until_ns=START_NS + 11 * 10**9)
    failed = [m for m in recorder.of_type(ActorFailed) if m.kind == "storage"]
    assert failed and {m.actor_id for m in failed} == {"state_store"}
    risk = runtime.actors["risk"]
    assert isinstance(risk, RiskLogic) and risk.controls.kill.engaged


def test_journal_write_error_engages_the_kill_switch_at_once(tmp_path: Path) -> None:
    """Found by the explorer (seed 10, journal full from 3.6 s): a journal append that fails on a
    full disk stopped journaling with a log line only; nothing failed closed until an order's
    write-ahead was refused, and the kill switch never engaged. Now the journal's first write
    error reaches Risk as a storage failure of the journal at once and engages the kill switch."""
    from arbor.actors.replay.recorder import JournalObserver
    from arbor.messages.codec import Codec
    from arbor.messages.journal import Durability
    from arbor.supervision.faults import FaultyJournalWriter, StorageFaults

    faults = StorageFaults()
    writer = FaultyJournalWriter(tmp_path / "journal", run_id="j", durability=Durability(mode="rotation"),
                                 clock_ns=lambda: START_NS, check=faults.journal_append)
    journal = JournalObserver(writer, Codec(), clock_ns=lambda: START_NS)
    c = SimulatedCluster(load_settings({}), observers=(journal,))
    c.run_for(5)
    faults.journal_full = True
    c.run_for(0.5)
    assert faults.refused["journal"] and not journal.healthy
    failed = [m for m in c.recorder.of_type(ActorFailed) if m.kind == "storage"]
    assert [m.actor_id for m in failed] == ["journal"]
    assert c.logic("risk").controls.kill.engaged
    journal.close()


def test_a_snapshot_the_full_disk_refused_is_written_once_the_disk_has_room(tmp_path: Path) -> None:
    """Found by the explorer (seed 215, store full 4.7-7.7 s): a queued Position snapshot whose
    commit the full disk refused was dropped. The position never changed again, so the store kept
    its older ENTERING state beside the executor's newer FILLED order; the restarted Position
    disagreed with its executor (DRIFT_UNRESOLVED) for good and was flat against a venue long
    0.083. A refused snapshot now stays queued (unless a newer one is) and is written by the
    next flush once the disk has room."""
    from decimal import Decimal
    from types import SimpleNamespace

    from arbor.actors.position.snapshot import PositionSnapshot
    from arbor.messages import Direction, PositionState
    from arbor.supervision.faults import StorageFaults

    faults = StorageFaults()
    store = StateStore(tmp_path / "state.sqlite", lambda: START_NS, write_fault=faults.store_commit)
    persister = StatePersister(store, threaded=False)
    opened = PositionSnapshot(state=PositionState.OPEN, direction=Direction.LONG, qty=Decimal("0.083"),
                              avg_entry_price=Decimal("60005.2"), action_id="a1")
    faults.store_full = True
    persister.after_handle("BTCUSDT/position", SimpleNamespace(snapshot=lambda: opened), object(), [])
    persister.flush()
    assert faults.refused["store"] and persister.take_faults() == {
        "BTCUSDT/position": "OperationalError: database or disk is full (injected)"}
    assert store.load_position("BTCUSDT") is None
    faults.store_full = False
    persister.flush()
    assert store.load_position("BTCUSDT") == opened
    store.close()


def test_an_actor_restarted_while_the_disk_refuses_its_snapshot_restores_the_newest_state(tmp_path: Path) -> None:
    """Found by the explorer (seeds 3103, 3204: store full for 3 s): Risk halted a symbol whose
    collector failed, the full disk refused that snapshot, and Risk itself then crashed; its
    restart restored the older committed state, with the symbol ACTIVE and no event saying so,
    and it approved entries for the halted symbol. A restarted actor now gets the newest state
    the process holds: the refused snapshot still queued, not the store's older one."""
    from decimal import Decimal
    from types import SimpleNamespace

    from arbor.actors.position.snapshot import PositionSnapshot
    from arbor.messages import Direction, PositionState
    from arbor.supervision.faults import StorageFaults

    faults = StorageFaults()
    store = StateStore(tmp_path / "state.sqlite", lambda: START_NS, write_fault=faults.store_commit)
    persister = StatePersister(store, threaded=False)
    entering = PositionSnapshot(state=PositionState.ENTERING, direction=Direction.LONG, qty=Decimal("0"), action_id="a1",
                                order_qty=Decimal("0.083"))
    opened = PositionSnapshot(state=PositionState.OPEN, direction=Direction.LONG, qty=Decimal("0.083"),
                              avg_entry_price=Decimal("60005.2"), action_id="a1")
    persister.after_handle("BTCUSDT/position", SimpleNamespace(snapshot=lambda: entering), object(), [])
    persister.flush()
    faults.store_full = True
    persister.after_handle("BTCUSDT/position", SimpleNamespace(snapshot=lambda: opened), object(), [])
    assert persister.load("BTCUSDT/position") == opened
    assert store.load_position("BTCUSDT") == entering  # the disk still refuses it
    faults.store_full = False
    assert persister.load("BTCUSDT/position") == opened and store.load_position("BTCUSDT") == opened
    store.close()


def test_a_latch_the_full_disk_kept_from_the_store_survives_a_restart(tmp_path: Path) -> None:
    """Found by the explorer (seed 114, store full 6.4-9.4 s, a restart at 9.37 s): the kill
    switch engaged while the disk refused every commit, so the store still held Risk unlatched;
    the restarted process came up with the latch released and traded (9 entries). A failed write
    now leaves ``<store>.unsaved`` beside the store (cleared once everything held is committed);
    a process that starts while it is there engages the kill switch (state lost)."""
    from arbor.actors.cluster.restart import STATE_LOST_WHO
    from arbor.messages import EngageKillSwitch
    from arbor.supervision.faults import StorageFaults

    faults = StorageFaults()
    first = SimulatedCluster(load_settings({}), start_ns=START_NS, var_dir=tmp_path, storage_faults=faults)
    first.run_for(3)
    faults.store_full = True
    first.runtime.send_now("risk", EngageKillSwitch(who="ops", reason="drill"))
    first.run_for(1)
    first.close()  # the last flush fails too
    assert faults.refused["store"] and (tmp_path / "state" / "arbor.sqlite.unsaved").exists()
    faults.store_full = False
    second = SimulatedCluster(load_settings({}), start_ns=START_NS + 5 * 10**9, var_dir=tmp_path, storage_faults=faults)
    kill = second.logic("risk").controls.kill
    assert kill.engaged and kill.who == STATE_LOST_WHO
    second.run_for(2)
    second.close()  # everything held is committed: the marker goes, the latch stays in the store
    assert not (tmp_path / "state" / "arbor.sqlite.unsaved").exists()
    third = SimulatedCluster(load_settings({}), start_ns=START_NS + 8 * 10**9, var_dir=tmp_path)
    assert third.logic("risk").controls.kill.engaged
    third.close()
