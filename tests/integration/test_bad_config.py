"""bin/start-cluster with a bad configuration: exit 2 naming the key or path, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from arbor.config.errors import ConfigError
from arbor.config.settings import load_settings

from tests.conftest import REPO_ROOT


def start_cluster(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ARBOR__")}
    return subprocess.run([sys.executable, "-m", "arbor.actors.cluster.main", "--duration", "0.5", "--quiet", *args],
                          cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(("toml", "key"), [
    ("[risk]\nmax_leverage = nan\n", "risk.max_leverage"),
    ("[risk]\nmax_leverage = inf\n", "risk.max_leverage"),
    ("[risk]\nmax_leverage = 1e30\n", "risk.max_leverage"),
    ("[risk]\nmax_leverage = \"1e30\"\n", "risk.max_leverage"),
    ("[risk]\nmax_leverage = 1000\n", "risk.max_leverage"),
    ("[paper]\nlatency_ms = 99999999999999999999999\n", "paper.latency_ms"),
    ("[supervision]\nperiod_s = nan\n", "supervision.period_s"),
    ("[cluster]\nperiod_s = nan\n", "cluster.period_s"),
    ("[[symbols]]\nsymbol = \"BTCUSDT\"\nevents_per_s = inf\n", "symbols[0].events_per_s"),
])
def test_bad_numbers_exit_2_naming_the_key(tmp_path: Path, toml: str, key: str) -> None:
    """Non-finite floats, absurd leverage and huge integers are configuration errors that name their key."""
    cfg = tmp_path / "bad.toml"
    cfg.write_text(toml)
    done = start_cluster(tmp_path, "--config", str(cfg), "--var-dir", str(tmp_path / "var"))
    assert done.returncode == 2, done.stderr
    assert f"'{key}'" in done.stderr
    assert "Traceback" not in done.stderr


def test_config_naming_a_directory_exits_2(tmp_path: Path) -> None:
    """--config naming a directory is a configuration error naming the path."""
    done = start_cluster(tmp_path, "--config", str(tmp_path), "--var-dir", str(tmp_path / "var"))
    assert done.returncode == 2, done.stderr
    assert str(tmp_path) in done.stderr and "Traceback" not in done.stderr


def test_unusable_var_dir_exits_2(tmp_path: Path) -> None:
    """A var dir that cannot be written (here: below a regular file) is a configuration error naming it."""
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    var = blocker / "var"
    done = start_cluster(tmp_path, "--var-dir", str(var))
    assert done.returncode == 2, done.stderr
    assert "run.var_dir" in done.stderr and "Traceback" not in done.stderr


def test_every_float_is_checked_finite_wherever_it_is() -> None:
    """The finite check is generic: a nan anywhere in the tree (here a strategy parameter) names its key."""
    with pytest.raises(ConfigError) as err:
        load_settings({"symbols": [{"symbol": "BTCUSDT", "strategy_params": {"size_hint": float("nan")}}]})
    assert err.value.key == "symbols[0].strategy_params.size_hint"


def test_bad_strategy_file_exits_2_naming_file_class_and_reason(tmp_path: Path) -> None:
    """A strategy file that fails to load stops bin/start-cluster and bin/replay whatif with exit 2, naming it."""
    strategy = tmp_path / "broken_strategy.py"
    strategy.write_text("class Mine:\n    pass\n")
    cfg = tmp_path / "bad.toml"
    cfg.write_text(f'[[symbols]]\nsymbol = "BTCUSDT"\nstrategy = "{strategy}:Mine"\n')
    done = start_cluster(tmp_path, "--config", str(cfg), "--var-dir", str(tmp_path / "var"))
    assert done.returncode == 2, done.stderr
    assert "symbols[0].strategy" in done.stderr and str(strategy) in done.stderr and "'Mine'" in done.stderr
    assert "not a subclass" in done.stderr and "Traceback" not in done.stderr
    hbt = REPO_ROOT / ".." / "shared" / "data" / "binance_usdm" / "usdm_btcusdt_20240808.gz"
    env = {k: v for k, v in os.environ.items() if not k.startswith("ARBOR__")}
    replay = subprocess.run([sys.executable, "-m", "arbor.actors.replay.cli", "whatif", "--hbt", str(hbt),
                             "--set", f"symbols.*.strategy={strategy}:Mine"],
                            cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert replay.returncode == 2, replay.stderr
    assert str(strategy) in replay.stderr and "'Mine'" in replay.stderr and "Traceback" not in replay.stderr


@pytest.mark.parametrize(("toml", "key"), [
    ("[[assumptions]]\nname = \"tight\"\nobservation = \"spread\"\nmax = 5.0\n", "assumptions[0].observation"),
    ("[[assumptions]]\nname = \"tight\"\nobservation = \"spread_bps\"\nmax = 5.0\non_broken = \"panic\"\n",
     "assumptions[0].on_broken"),
    ("[[assumptions]]\nname = \"tight\"\nobservation = \"spread_bps\"\nmax = nan\n", "assumptions[0].max"),
])
def test_bad_assumption_exits_2_naming_the_key(tmp_path: Path, toml: str, key: str) -> None:
    """A bad [[assumptions]] table stops start-cluster with exit 2 and the dotted key, no traceback."""
    cfg = tmp_path / "bad.toml"
    cfg.write_text(toml)
    done = start_cluster(tmp_path, "--config", str(cfg), "--var-dir", str(tmp_path / "var"))
    assert done.returncode == 2, done.stderr
    assert f"'{key}'" in done.stderr
    assert "Traceback" not in done.stderr
