"""A market source that dies for good fails closed: its symbols HALTED at Risk, exit status non-zero (issue 14)."""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
from pathlib import Path
from typing import cast

from arbor.actors.cluster.live import LiveCluster
from arbor.actors.risk.logic import RiskLogic
from arbor.actors.testing import eventually
from arbor.config.settings import load_settings
from arbor.messages import TradingState

from tests.conftest import REPO_ROOT


def dying_recording(shared_data: Path, tmp_path: Path, good_lines: int = 2500) -> Path:
    """The first lines of the real USD-M BTCUSDT recording, then a line the reader cannot read."""
    out = tmp_path / "usdm_btcusdt_20240808.gz"
    with gzip.open(shared_data / "binance_usdm" / "usdm_btcusdt_20240808.gz", "rb") as src, gzip.open(out, "wb") as dst:
        for _ in range(good_lines):
            dst.write(src.readline())
        dst.write(b"not-a-receive-time {}\n")
    return out


def recorded_settings(path: Path, tmp_path: Path) -> dict:
    return {"run": {"var_dir": str(tmp_path / "var")}, "journal": {"enabled": False},
            "market": {"source": "recorded", "recorded_files": [str(path)], "paced": False},
            "symbols": [{"symbol": "BTCUSDT", "venue": "binance_usdm"}]}


def test_market_source_dying_halts_its_symbols(shared_data: Path, tmp_path: Path) -> None:
    """When the recorded feed dies mid-file, Risk moves every symbol to HALTED and the run reports it."""
    cluster = LiveCluster(load_settings(recorded_settings(dying_recording(shared_data, tmp_path), tmp_path)), "t",
                          persist=False)
    cluster.start()
    try:
        risk = cast(RiskLogic, cluster.runtime.dispatcher("coordinator").actors["risk"])
        eventually(lambda: risk.controls.state("BTCUSDT") is TradingState.HALTED, timeout=20)
    finally:
        cluster.stop()
    assert any("arbor-feed" in what for what in cluster.stopped_for_good())


def test_start_cluster_exits_nonzero_when_the_market_source_died(shared_data: Path, tmp_path: Path) -> None:
    """bin/start-cluster whose market source died exits 1 at the end, not 0."""
    path = dying_recording(shared_data, tmp_path)
    cfg = tmp_path / "dying.toml"
    cfg.write_text(f'[journal]\nenabled = false\n[market]\nsource = "recorded"\nrecorded_files = ["{path}"]\n'
                   f'paced = false\n[[symbols]]\nsymbol = "BTCUSDT"\nvenue = "binance_usdm"\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("ARBOR__")}
    proc = subprocess.run([sys.executable, "-m", "arbor.actors.cluster.main", "--config", str(cfg), "--duration", "3",
                           "--quiet", "--var-dir", str(tmp_path / "var")], cwd=REPO_ROOT, capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert "stopped for good: thread arbor-feed died" in proc.stderr


def test_start_cluster_exits_nonzero_when_a_symbol_is_quarantined(tmp_path: Path) -> None:
    """A symbol's group that failed past its intensity (stopped until an operator releases it) makes exit 1."""
    cfg = tmp_path / "quarantine.toml"
    faults = ", ".join(f'{{actor = "BTCUSDT/feature", on_message = {n}}}' for n in (20, 40, 60, 80))
    cfg.write_text(f'faults = [{faults}]\n[journal]\nenabled = false\n[market]\npaced = false\n'
                   '[supervision]\nintensity = 3\nperiod_s = 60.0\nbackoff_base_ms = 0\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("ARBOR__")}
    proc = subprocess.run([sys.executable, "-m", "arbor.actors.cluster.main", "--config", str(cfg), "--duration", "4",
                           "--quiet", "--var-dir", str(tmp_path / "var")], cwd=REPO_ROOT, capture_output=True, text=True,
                          env=env, timeout=60)
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert "stopped for good: symbol BTCUSDT quarantined" in proc.stderr
