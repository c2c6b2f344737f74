"""bin/new-strategy writes a strategy and a test that pass, and the strategy backtests with bin/replay whatif."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO_ROOT

BIN = REPO_ROOT / "bin"


def run(*args: str, cwd: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ARBOR__")}
    return subprocess.run(list(args), cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def test_new_strategy_passes_its_test_and_backtests(tmp_path: Path, shared_data: Path) -> None:
    """The generated test passes under the venv's pytest; a what-if on a real recording places orders with it."""
    # the tutorial's commands (docs/strategies.md), with relative paths, from a fresh directory
    made = run(str(BIN / "new-strategy"), "ema_cross", "--dir", "strategies", cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    strategy = tmp_path / "strategies" / "ema_cross.py"
    test = tmp_path / "strategies" / "test_ema_cross.py"
    assert strategy.is_file() and test.is_file()

    tested = run(sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "strategies/test_ema_cross.py",
                 cwd=tmp_path)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "4 passed" in tested.stdout

    report = tmp_path / "whatif.json"
    hbt = shared_data / "binance_usdm" / "usdm_btcusdt_20240808.gz"
    spec = "symbols.*.strategy=strategies/ema_cross.py:EmaCross"
    backtest = run(str(BIN / "replay"), "whatif", "--hbt", str(hbt), "--set", spec, cwd=tmp_path, timeout=600)
    assert backtest.returncode == 0, backtest.stderr
    swept = run(str(BIN / "replay"), "whatif", "--hbt", str(hbt), "--set", spec, "--set",
                "symbols.*.strategy_params.fast=5", "--json", str(report), cwd=tmp_path, timeout=600)
    assert swept.returncode == 0, swept.stderr
    decisions = json.loads(report.read_text())["report"]["decisions"]
    assert decisions.get("PlaceOrder", 0) > 0


def test_new_strategy_refuses_to_overwrite_and_bad_names(tmp_path: Path) -> None:
    """An existing file or a name that is not snake_case is exit 2 with the reason."""
    assert run(str(BIN / "new-strategy"), "mine", "--dir", str(tmp_path), cwd=tmp_path).returncode == 0
    again = run(str(BIN / "new-strategy"), "mine", "--dir", str(tmp_path), cwd=tmp_path)
    assert again.returncode == 2 and "not overwriting" in again.stderr
    bad = run(str(BIN / "new-strategy"), "My-Strategy", "--dir", str(tmp_path), cwd=tmp_path)
    assert bad.returncode == 2 and "snake_case" in bad.stderr
