"""The multi-process summary printed by bin/start-cluster --workers N, from the nodes' status files."""

from __future__ import annotations

import json
from pathlib import Path

from arbor.actors.cluster.summary import render_summary


def _status(var: Path, name: str, data: dict) -> None:
    path = var / "cluster" / "status" / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))


def test_summary_shows_each_symbols_pnl_and_the_total(tmp_path: Path) -> None:
    """Each symbol's line carries Risk's PnL for it, and a total line sums them with the equity."""
    _status(tmp_path, "coordinator", {"risk": {"global_state": "ACTIVE", "kill_switch": {"engaged": False},
                                               "equity": "10012.50",
                                               "symbols": {"BTCUSDT": {"effective": "ACTIVE", "pnl": "15.25"},
                                                           "ETHUSDT": {"effective": "ACTIVE", "pnl": "-2.75"}}}})
    _status(tmp_path, "worker-0", {"symbols": {"BTCUSDT": {"health": "RUNNING", "position": "OPEN", "qty": "0.1"}}})
    _status(tmp_path, "worker-1", {"symbols": {"ETHUSDT": {"health": "RUNNING", "position": "FLAT", "qty": "0"}}})
    lines = render_summary(tmp_path, {0: ("BTCUSDT",), 1: ("ETHUSDT",)}).splitlines()
    assert "pnl" in lines[1].split()
    pnl_col = lines[1].split().index("pnl")
    rows = {ln.split()[0]: ln.split() for ln in lines[2:]}
    assert rows["BTCUSDT"][pnl_col] == "15.25" and rows["ETHUSDT"][pnl_col] == "-2.75"
    assert rows["total"][1:] == ["12.50", "equity", "10012.50"]


def test_summary_without_a_coordinator_status_shows_no_pnl_rather_than_zero(tmp_path: Path) -> None:
    """Before the Coordinator has written its status, PnL reads '?', never a made-up 0."""
    _status(tmp_path, "worker-0", {"symbols": {"BTCUSDT": {"health": "RUNNING", "position": "FLAT", "qty": "0"}}})
    lines = render_summary(tmp_path, {0: ("BTCUSDT",)}).splitlines()
    pnl_col = lines[1].split().index("pnl")
    assert lines[2].split()[pnl_col] == "?"
    assert lines[-1].split()[1] == "?"
