"""What-if replay: same inputs and configuration give the same decisions, byte for byte."""

from __future__ import annotations

import io
import json
from argparse import Namespace
from pathlib import Path

import pytest
from arbor.actors.replay import apply_overrides, run_whatif
from arbor.actors.replay.cli import whatif_command
from arbor.actors.replay.recorder import record_simulated_run
from arbor.actors.replay.whatif import (
    hbt_config,
    journal_config,
    journal_inputs,
    journal_metadata,
    journal_ticks,
    market_inputs,
)
from arbor.config.errors import ConfigError
from arbor.config.loader import load_raw
from arbor.config.settings import build_settings
from arbor.messages.codec import Codec

USDM_FILES = ("usdm_btcusdt_20240808.gz", "usdm_ethusdt_20240808.gz")


def usdm_settings(shared_data: Path, *sets: str):
    files = [str(shared_data / "binance_usdm" / f) for f in USDM_FILES]
    return build_settings(hbt_config(files, load_raw(environ={}), sets))


def test_recorded_usdm_whatif_is_repeatable_and_sensitive_to_strategy(shared_data: Path) -> None:
    """Two runs on the real USD-M recording give one digest; another strategy size_hint gives another."""
    base = usdm_settings(shared_data)
    first = run_whatif(base, market_inputs(base))
    again = run_whatif(base, market_inputs(base))
    assert first.inputs == again.inputs == 168_609
    assert first.decisions.get("Action", 0) > 0 and first.decisions.get("PlaceOrder", 0) > 0
    assert first.digest == again.digest
    assert first.report == again.report

    changed = usdm_settings(shared_data, "symbols.*.strategy_params.size_hint=0.25")
    other = run_whatif(changed, market_inputs(changed))
    assert other.digest != first.digest


@pytest.fixture(scope="module")
def sim_journal(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return record_simulated_run(tmp_path_factory.mktemp("sim"), load_raw(environ={}), 120, run_id="whatif-src")


def test_journal_whatif_replays_market_and_regenerates_ticks(sim_journal: Path) -> None:
    """A journal's external inputs replay without its timer ticks, identically twice."""
    codec = Codec()
    settings = build_settings(journal_config(journal_metadata(sim_journal), None, ()))
    first = run_whatif(settings, journal_inputs(sim_journal, codec))
    again = run_whatif(settings, journal_inputs(sim_journal, codec))
    assert first.digest == again.digest
    assert first.inputs == sum(1 for _ in journal_inputs(sim_journal, codec)) > 0
    assert first.decisions.get("Action", 0) > 0


def test_journal_whatif_replays_recorded_ticks_at_the_recorded_interval(sim_journal: Path) -> None:
    """At the recorded tick interval the journal's own ticks replay (same decisions as generating them on
    the simulated run's grid); at another interval the ticks are generated."""
    codec = Codec()
    meta = journal_metadata(sim_journal)
    own = build_settings(journal_config(meta, None, ()))
    assert journal_ticks(meta, own)
    assert not journal_ticks(meta, build_settings(journal_config(meta, None, ["run.tick_interval_ms=50"])))
    ticks = sum(1 for i in journal_inputs(sim_journal, codec, ticks=True)) - sum(1 for _ in journal_inputs(sim_journal, codec))
    assert ticks > 0
    recorded = run_whatif(own, journal_inputs(sim_journal, codec, ticks=True), recorded_ticks=True)
    generated = run_whatif(own, journal_inputs(sim_journal, codec))
    # the simulated run's ticks were on the scheduler's own grid: replaying them changes nothing
    assert recorded.digest == generated.digest


def test_parity_needs_a_journal(tmp_path: Path) -> None:
    """--parity with recordings instead of a journal is exit 2 naming the option."""
    err = io.StringIO()
    args = Namespace(journal=None, hbt=[str(tmp_path / "x.gz")], config=None, set=[], limit=None, json=None,
                     trades_csv=None, parity=True)
    assert whatif_command(args, out=io.StringIO(), err=err) == 2
    assert "--parity" in err.getvalue()


def test_whatif_command_writes_json_report(sim_journal: Path, tmp_path: Path) -> None:
    """bin/replay whatif prints the digest and writes the same report as JSON."""
    out = io.StringIO()
    args = Namespace(journal=sim_journal, hbt=None, config=None, set=["regime.confirm_cycles=2"], limit=None,
                     json=tmp_path / "report.json", trades_csv=tmp_path / "trades.csv")
    assert whatif_command(args, out=out, err=io.StringIO()) == 0
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["digest"] in out.getvalue()
    for key in ("trades", "win_rate", "max_drawdown", "sharpe", "decisions", "denials_by_reason", "metrics",
                "trade_list"):
        assert key in report["report"]
    assert "decisions" not in report, "one fill count: the report's (venue fills), not a second one"
    m = report["report"]["metrics"]
    assert report["report"]["sharpe"] is None and m["annualised_note"].startswith("too short")
    rows = (tmp_path / "trades.csv").read_text().splitlines()
    assert len(rows) == 1 + report["report"]["trades"] == 1 + len(report["report"]["trade_list"])
    assert sum(st["trades"] for st in m["by_exit_reason"].values()) == report["report"]["trades"]


def test_whatif_command_rejects_bad_override(sim_journal: Path) -> None:
    """An override that fails validation exits 2 naming the key."""
    err = io.StringIO()
    args = Namespace(journal=sim_journal, hbt=None, config=None, set=["risk.max_leverage=-1"], limit=10, json=None)
    assert whatif_command(args, out=io.StringIO(), err=err) == 2
    assert "risk.max_leverage" in err.getvalue()


def test_overrides_address_symbols_by_name_index_and_star() -> None:
    """--set reaches one symbol by name or index, or every symbol with *; values read as TOML."""
    raw = {"symbols": [{"symbol": "A1"}, {"symbol": "B2"}], "risk": {"x": 1}}
    out = apply_overrides(raw, ["symbols.B2.strategy=mean_reversion", "symbols[0].qty_step=\"0.1\"",
                                "symbols.*.strategy_params.size_hint=0.2", "risk.max_leverage=3"])
    assert out["symbols"][1]["strategy"] == "mean_reversion"
    assert out["symbols"][0]["qty_step"] == "0.1"
    assert all(s["strategy_params"] == {"size_hint": 0.2} for s in out["symbols"])
    assert out["risk"] == {"x": 1, "max_leverage": 3}
    assert raw["risk"] == {"x": 1}
    with pytest.raises(ConfigError):
        apply_overrides(raw, ["symbols.ZZ.strategy=x"])
