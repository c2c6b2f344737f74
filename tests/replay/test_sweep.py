"""bin/replay sweep: declared-parameter search, deterministic parallel runs, ranking, best TOML, split."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import attrs
import pytest
from arbor.actors.replay import sweep
from arbor.actors.replay.whatif import hbt_config
from arbor.config.errors import ConfigError
from arbor.config.loader import load_raw
from arbor.strategy.params import Param

from tests.conftest import REPO_ROOT

BTC = "usdm_btcusdt_20240808.gz"
LIMIT = 12_000  # about 30 s of the BTCUSDT recording: a replay takes about a second


def btc(shared_data: Path) -> str:
    return str(shared_data / "binance_usdm" / BTC)


def btc_raw(shared_data: Path) -> dict:
    return hbt_config([btc(shared_data)], load_raw(environ={}), ())


def replay_cli(*args: str, cwd: Path = REPO_ROOT) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ARBOR__")}
    return subprocess.run([sys.executable, "-m", "arbor.actors.replay.cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


DECLARED = {
    "size_hint": [("X: s", Param(0.5, 0.0, 1.0))],
    "period": [("X: s", Param(8, 1, 50, kind=int))],
    "stop": [("X: s", Param(3.0, 0.0))],
    "long_only": [("X: s", Param(False, kind=bool))],
}


def test_parse_param_text_forms() -> None:
    """The command line's forms read as the spec file's: a list, a range with step or count, a bare name."""
    assert sweep.parse_param_text("a=1,2.5,3") == ("a", [1, 2.5, 3])
    assert sweep.parse_param_text("a=1..3") == ("a", {"low": 1, "high": 3})
    assert sweep.parse_param_text("a=0.1..0.5:0.2") == ("a", {"low": 0.1, "high": 0.5, "step": 0.2})
    assert sweep.parse_param_text("a=0..1/5") == ("a", {"low": 0, "high": 1, "count": 5})
    assert sweep.parse_param_text("a") == ("a", None)
    assert sweep.parse_param_text("flag=true,false") == ("flag", [True, False])


def test_grid_is_the_product_in_a_fixed_order() -> None:
    """A grid tries every combination of the axes' values, the first axis slowest."""
    spec = sweep.build_spec({"params": {"size_hint": {"low": 0.2, "high": 0.6, "step": 0.2}}},
                            [("period", [5, 10]), ("long_only", None)], DECLARED)
    configs = sweep.configurations(spec, DECLARED)
    assert len(configs) == 3 * 2 * 2
    assert configs[0] == {"size_hint": 0.2, "period": 5, "long_only": False}
    assert configs[-1] == {"size_hint": 0.6, "period": 10, "long_only": True}
    assert len({tuple(c.values()) for c in configs}) == 12


def test_random_draws_are_seeded_and_inside_the_bounds() -> None:
    """Random search draws the same configurations for one seed, others for another, all inside the bounds."""
    def draws(seed: int) -> list[dict]:
        spec = sweep.build_spec({}, [("size_hint", None), ("period", {"low": 2, "high": 40})], DECLARED,
                                method="random", trials=15, seed=seed)
        return sweep.configurations(spec, DECLARED)

    first = draws(1)
    assert first == draws(1) and first != draws(2)
    assert len(first) == 15
    assert all(0.0 < c["size_hint"] <= 1.0 and 2 <= c["period"] <= 40 and isinstance(c["period"], int)
               for c in first)


@pytest.mark.parametrize(("table", "params", "options", "key"), [
    ({}, [("nope", [1])], {}, "sweep.params.nope"),
    ({}, [("size_hint", [0.5, 1.5])], {}, "sweep.params.size_hint"),
    ({}, [("size_hint", {"low": 0.5, "high": 2.0, "count": 3})], {}, "sweep.params.size_hint"),
    ({}, [("stop", None)], {"method": "random"}, "sweep.params.stop"),  # no upper bound declared
    ({}, [("period", {"low": 2, "high": 9, "step": 0.5})], {}, "sweep.params.period"),
    ({}, [("size_hint", {"low": 0.1, "high": 0.9})], {}, "sweep.params.size_hint"),  # grid: no step or count
    ({}, [("size_hint", [0.5])], {"objective": "cagr"}, "sweep.objective"),
    ({}, [("size_hint", [0.5])], {"max_drawdown": 0.0}, "sweep.max_drawdown"),
    ({}, [("size_hint", [0.5])], {"split": 1.0}, "sweep.split"),
    ({}, [("size_hint", [0.5])], {"method": "bayes"}, "sweep.method"),
    ({}, [("size_hint", [0.5])], {"period": "1 minute"}, "sweep.period"),
    ({"bogus": 1, "params": {"size_hint": [0.5]}}, [], {}, "sweep.bogus"),
    ({}, [], {}, "sweep.params"),
])
def test_bad_spec_names_the_key(table: dict, params: list, options: dict, key: str) -> None:
    """An unknown parameter, a value outside the declared bounds or a bad option names its key."""
    with pytest.raises(ConfigError) as err:
        sweep.build_spec(table, params, DECLARED, **options)
    assert err.value.key == key


def _outcome(index: int, **figures: float | int | None) -> sweep.Outcome:
    base = {"net_pnl": 0.0, "profit_factor": None, "wins": 0, "losses": 0, "sharpe": None,
            "max_drawdown_pct": 0.0}
    return sweep.Outcome(index=index, params={"i": index}, figures={**base, **figures})


def test_rank_puts_the_drawdown_cap_and_undefined_objectives_last() -> None:
    """Within the cap before over it, a defined objective before an undefined one, then higher first."""
    outcomes = [
        _outcome(0, net_pnl=5.0, max_drawdown_pct=0.05),  # best PnL, over the cap
        _outcome(1, net_pnl=1.0, max_drawdown_pct=0.01),
        _outcome(2, net_pnl=3.0, max_drawdown_pct=0.02),
    ]
    ranked = sweep.rank(outcomes, "net_pnl", 0.02)
    assert [o.index for o in ranked] == [2, 1, 0]
    assert [o.within_cap for o in ranked] == [True, True, False]
    pf = [_outcome(0, profit_factor=1.5, wins=3, losses=2), _outcome(1, wins=0, losses=0),
          _outcome(2, wins=2, losses=0)]  # no loss and a win: an infinite profit factor
    assert [o.index for o in sweep.rank(pf, "profit_factor", None)] == [2, 0, 1]
    assert math.isinf(sweep.objective_value(pf[2].figures, "profit_factor") or 0)


def test_same_configuration_gives_the_same_digest_in_workers_and_here(shared_data: Path) -> None:
    """A configuration replayed twice in worker processes and once in this process gives one digest."""
    raw = sweep.with_params(btc_raw(shared_data), {"size_hint": 0.25})
    task = sweep.RunTask(index=0, raw=raw, limit=LIMIT)
    other = sweep.RunTask(index=1, raw=sweep.with_params(raw, {"size_hint": 0.75}), limit=LIMIT)
    in_workers = sweep.run_tasks([task, other, task], jobs=2)
    here = sweep.run_tasks([task], jobs=1)
    assert in_workers[0]["digest"] == in_workers[2]["digest"] == here[0]["digest"]
    assert in_workers[0] == {**here[0], "elapsed_s": in_workers[0]["elapsed_s"]}
    assert in_workers[1]["digest"] != in_workers[0]["digest"]
    assert in_workers[0]["inputs"] == LIMIT and in_workers[0]["trades"] > 0


def test_split_fits_in_sample_and_replays_the_best_held_out(shared_data: Path) -> None:
    """With a split the in-sample and held-out windows partition the inputs; the best gets both figures."""
    raw = btc_raw(shared_data)
    declared = sweep.declared_params(raw)
    spec = sweep.build_spec({}, [("size_hint", [0.25, 0.5])], declared, split=0.6, objective="net_pnl")
    result = sweep.execute(sweep.plan_sweep(raw, spec, declared), limit=LIMIT, jobs=2)
    best = result.best
    assert best is not None and best.out_of_sample is not None
    assert best.figures["inputs"] + best.out_of_sample["inputs"] == LIMIT
    assert result.in_sample is not None and result.held_out is not None
    assert result.in_sample[1] == result.held_out[0]
    assert all(o.out_of_sample is None for o in result.ranked[1:])
    assert [o.figures["net_pnl"] for o in result.ranked] == sorted((o.figures["net_pnl"] for o in result.ranked),
                                                                   reverse=True)
    text = sweep.render(result)
    assert "out-of-sample" in text and "in-sample: the first 60%" in text


def test_period_gives_a_sharpe_on_a_run_too_short_to_annualise(shared_data: Path) -> None:
    """On 30 s of market the annualised Sharpe is undefined; per 5 s periods it is a number."""
    task = sweep.RunTask(index=0, raw=sweep.with_params(btc_raw(shared_data), {"size_hint": 0.5}), limit=LIMIT)
    annual, per_5s = sweep.run_tasks([task, attrs.evolve(task, period_ns=5_000_000_000)], jobs=1)
    assert annual["sharpe"] is None and annual["annualised_note"]
    assert isinstance(per_5s["sharpe"], float) and per_5s["annualised_note"] is None
    assert per_5s["digest"] == annual["digest"]


def test_sweep_cli_ranks_and_writes_a_best_toml_whatif_reproduces(shared_data: Path, tmp_path: Path) -> None:
    """bin/replay sweep ranks the grid, and whatif --config on its best TOML reproduces the best digest."""
    best, out = tmp_path / "best.toml", tmp_path / "sweep.json"
    spec = tmp_path / "spec.toml"
    spec.write_text('[sweep]\nobjective = "net_pnl"\n[sweep.params]\nsize_hint = [0.25, 0.5]\n')
    done = replay_cli("sweep", "--hbt", btc(shared_data), "--limit", str(LIMIT), "--spec", str(spec),
                      "--param", "contra_imbalance=0,0.5", "--jobs", "2", "--best", str(best), "--json", str(out))
    assert done.returncode == 0, done.stderr
    assert "ranked by net_pnl" in done.stdout and "Traceback" not in done.stderr
    report = json.loads(out.read_text())
    ranked = report["ranked"]
    assert len(ranked) == 4 and [r["rank"] for r in ranked] == [1, 2, 3, 4]
    assert [r["objective"] for r in ranked] == sorted((r["objective"] for r in ranked), reverse=True)
    params = tomllib.loads(best.read_text())["symbols"][0]["strategy_params"]
    assert params == ranked[0]["params"]
    whatif = replay_cli("whatif", "--hbt", btc(shared_data), "--limit", str(LIMIT), "--config", str(best))
    assert whatif.returncode == 0, whatif.stderr
    assert f"decision digest   {ranked[0]['figures']['digest']}" in whatif.stdout


@pytest.mark.parametrize(("args", "key"), [
    (["--param", "nope=1,2"], "sweep.params.nope"),
    (["--param", "size_hint=0.5,1.5"], "sweep.params.size_hint"),
    (["--param", "size_hint=0.5", "--objective", "cagr"], "sweep.objective"),
    (["--param", "size_hint=0.5", "--max-drawdown", "2"], "sweep.max_drawdown"),
])
def test_bad_sweep_spec_exits_2_naming_the_key(shared_data: Path, args: list[str], key: str) -> None:
    """A bad sweep spec on the command line is exit 2 naming the key and the reason, never a traceback."""
    done = replay_cli("sweep", "--hbt", btc(shared_data), "--limit", "100", *args)
    assert done.returncode == 2, done.stderr
    assert f"'{key}'" in done.stderr and "Traceback" not in done.stderr


def test_bad_spec_file_exits_2_naming_it(shared_data: Path, tmp_path: Path) -> None:
    """A spec file with an unknown key, or that is not TOML, is exit 2 naming the key or the file."""
    spec = tmp_path / "spec.toml"
    spec.write_text("[sweep]\nobjectiv = 'sharpe'\n[sweep.params]\nsize_hint = [0.5]\n")
    done = replay_cli("sweep", "--hbt", btc(shared_data), "--spec", str(spec))
    assert done.returncode == 2 and "'sweep.objectiv'" in done.stderr and "Traceback" not in done.stderr
    spec.write_text("[sweep\n")
    done = replay_cli("sweep", "--hbt", btc(shared_data), "--spec", str(spec))
    assert done.returncode == 2 and "'--spec'" in done.stderr and str(spec) in done.stderr


def test_newcomer_sweeps_two_parameters_of_their_own_strategy(shared_data: Path, tmp_path: Path) -> None:
    """The README's flow: a strategy from bin/new-strategy, fast and slow swept with a split; the
    combinations its check_params refuses are reported, not run."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ARBOR__")}
    made = subprocess.run([str(REPO_ROOT / "bin" / "new-strategy"), "ema_cross", "--dir", "strategies"], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=300)
    assert made.returncode == 0, made.stderr
    done = subprocess.run([str(REPO_ROOT / "bin" / "replay"), "sweep", "--hbt", btc(shared_data),
                           "--set", "symbols.*.strategy=strategies/ema_cross.py:EmaCross", "--limit", str(LIMIT),
                           "--param", "fast=3,8", "--param", "slow=8,13", "--split", "0.7", "--period", "5s",
                           "--objective", "sharpe", "--json", "sweep.json"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    report = json.loads((tmp_path / "sweep.json").read_text())
    assert sorted((r["params"]["fast"], r["params"]["slow"]) for r in report["ranked"]) == [(3, 8), (3, 13), (8, 13)]
    assert [r["params"] for r in report["refused"]] == [{"fast": 8, "slow": 8}]
    assert report["ranked"][0]["out_of_sample"]["inputs"] > 0
    assert "refused by the strategy: fast=8, slow=8" in done.stdout
    best = tomllib.loads((tmp_path / "var" / "sweep" / "best.toml").read_text())
    assert best["symbols"][0]["strategy"] == "strategies/ema_cross.py:EmaCross"


def test_sweep_of_a_journal_and_its_best_toml(tmp_path: Path) -> None:
    """A journaled run sweeps too; whatif --journal --config on the best TOML reproduces the best digest."""
    from arbor.actors.replay.recorder import record_simulated_run

    journal = record_simulated_run(tmp_path / "var", load_raw(environ={}), 60, run_id="sweep-src")
    best, out = tmp_path / "best.toml", tmp_path / "sweep.json"
    done = replay_cli("sweep", "--journal", str(journal), "--param", "size_hint=0.2,0.6", "--jobs", "2",
                      "--best", str(best), "--json", str(out))
    assert done.returncode == 0, done.stderr
    ranked = json.loads(out.read_text())["ranked"]
    assert len({r["figures"]["digest"] for r in ranked}) == 2
    whatif = replay_cli("whatif", "--journal", str(journal), "--config", str(best))
    assert whatif.returncode == 0, whatif.stderr
    assert f"decision digest   {ranked[0]['figures']['digest']}" in whatif.stdout


def test_truncated_recording_exits_2_naming_it(shared_data: Path, tmp_path: Path) -> None:
    """A recording cut short, found unreadable inside the workers, is exit 2 naming it, not a traceback."""
    cut = tmp_path / "cut.gz"
    cut.write_bytes(Path(btc(shared_data)).read_bytes()[:200_000])
    done = replay_cli("sweep", "--hbt", str(cut), "--param", "size_hint=0.2,0.4", "--jobs", "2",
                      "--best", str(tmp_path / "best.toml"))
    assert done.returncode == 2, done.stderr
    assert "unreadable recording" in done.stderr and str(cut) in done.stderr and "Traceback" not in done.stderr
