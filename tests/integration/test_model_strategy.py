"""The example logistic model: fitted on recorded features into tmp_path, backtested, refused once tampered."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO_ROOT

EXAMPLE = REPO_ROOT / "examples" / "logistic"


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ARBOR__")}
    return subprocess.run(list(args), cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def test_fitted_model_backtests_and_a_tampered_one_exits_2(tmp_path: Path, shared_data: Path) -> None:
    """fit.py writes model and metadata; a what-if trades on it; a changed model file is exit 2 naming the checksum."""
    hbt = str(shared_data / "binance_usdm" / "usdm_btcusdt_20240808.gz")
    model = tmp_path / "logistic.json"
    fitted = run(sys.executable, str(EXAMPLE / "fit.py"), "--hbt", hbt, "--out", str(model), cwd=tmp_path)
    assert fitted.returncode == 0, fitted.stderr
    meta = json.loads(model.with_name("logistic.json.meta.json").read_text())
    assert meta["features"][:2] == ["ret_short", "ret_long"] and meta["interval"] == "1s"

    spec = f"symbols.*.strategy={EXAMPLE / 'logistic_strategy.py'}:LogisticStrategy"
    params = f"symbols.*.strategy_params.model={json.dumps(str(model))}"
    report = tmp_path / "whatif.json"
    backtest = run(str(REPO_ROOT / "bin" / "replay"), "whatif", "--hbt", hbt, "--set", spec, "--set", params,
                   "--json", str(report), cwd=tmp_path)
    assert backtest.returncode == 0, backtest.stderr
    assert json.loads(report.read_text())["report"]["decisions"].get("Action", 0) > 0

    model.write_text(model.read_text().replace('"bias": ', '"bias": 1'))
    refused = run(str(REPO_ROOT / "bin" / "replay"), "whatif", "--hbt", hbt, "--set", spec, "--set", params,
                  cwd=tmp_path)
    assert refused.returncode == 2, refused.stderr
    assert "checksum mismatch" in refused.stderr and str(model) in refused.stderr
    assert "Traceback" not in refused.stderr
