"""A write error on a trading path (the trade log on a full disk) fails closed and wedges nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from arbor.actors.cluster.observers import TradeLog
from arbor.actors.cluster.simulate import SimulatedCluster
from arbor.config.settings import load_settings
from arbor.messages import ActorFailed, KillSwitchEngaged
from arbor.supervision.faults import FullDisk


def _full_disk_cluster(tmp_path: Path) -> tuple[SimulatedCluster, FullDisk]:
    disk = FullDisk(room=0)
    trades = TradeLog(tmp_path / "trades.jsonl", "paper", sink=disk)
    c = SimulatedCluster(load_settings({}), observers=(trades,))
    c.run_for(900)
    assert disk.refused, "no trade closed: the test proves nothing"
    return c, disk


def _qty(c: Any, sym: str) -> tuple[Any, Any]:
    return c.logic(f"{sym}/position").snapshot().signed_qty, c.logic(f"{sym}/venue").venue_position().qty


def test_trade_log_write_error_engages_the_kill_switch(tmp_path: Path) -> None:
    """The first failed trade-log write reaches Risk as a storage failure and engages the kill switch."""
    c, _ = _full_disk_cluster(tmp_path)
    failed = [m for m in c.recorder.of_type(ActorFailed) if m.kind == "storage"]
    assert [m.actor_id for m in failed] == ["trade_log"]
    assert c.recorder.of_type(KillSwitchEngaged)
    assert c.logic("risk").controls.kill.engaged


def test_trade_log_write_error_wedges_no_position(tmp_path: Path) -> None:
    """After a failed trade-log write every Position keeps applying the venue's fills."""
    c, _ = _full_disk_cluster(tmp_path)
    for s in c.settings.symbols:
        ours, venue = _qty(c, s.symbol)
        assert ours == venue, s.symbol
    assert c.runtime.dispatcher.observer_faults.keys() == {"trade_log"}
