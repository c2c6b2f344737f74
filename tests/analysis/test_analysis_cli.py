"""bin/analyze: the commands of docs/analysis.md, their output and their exit codes."""

from __future__ import annotations

import io
import itertools
import json
import subprocess
from pathlib import Path

import pytest
from arbor.analysis import events as events_module
from arbor.analysis.cascades import CascadeParams, label_cascades, to_jsonl
from arbor.analysis.cli import EXIT_OK, EXIT_TOO_FEW, EXIT_USAGE, main
from arbor.analysis.events import EventSource, decode_frames
from arbor.analysis.tape import build_tapes

REPO = Path(__file__).resolve().parents[2]
_READ = events_module.read_source
_CACHE: dict[tuple[str, ...], EventSource] = {}


@pytest.fixture
def cached_reads(monkeypatch):
    """Each recording is read once for all the commands below (the reading itself is tested elsewhere)."""
    def read(paths):
        key = tuple(str(p) for p in paths)
        if key not in _CACHE:
            _CACHE[key] = _READ(paths)
        return _CACHE[key]

    monkeypatch.setattr(events_module, "read_source", read)


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    try:
        code = main(list(argv), out=out, err=err)
    except SystemExit as exc:  # argparse
        code = int(exc.code or 0)
    return code, out.getvalue(), err.getvalue()


def test_cascades_on_the_recordings_finds_none(usdm_files, cached_reads):
    """docs: bin/analyze cascades on the two USD-M files: no liquidations there, so no cascade (exit 0)."""
    code, out, _ = run("cascades", *usdm_files)
    assert code == EXIT_OK
    assert out.splitlines()[-1] == ("0 cascades, 0 waves from BTCUSDT: 0 liquidations, ETHUSDT: 0 liquidations "
                                    "(source liquidations); decode failures 0")


def test_cascades_trade_proxy_writes_json_lines(usdm_files, cached_reads, tmp_path):
    """docs: --source trades as a proxy; the table says so, --jsonl holds one line per cascade and wave."""
    path = tmp_path / "labels.jsonl"
    code, out, _ = run("cascades", "--source", "trades", "--burst-notional", "5000000", "--min-notional", "10000000",
                       "--jsonl", str(path), *usdm_files)
    assert code == EXIT_OK
    assert "2 cascades, 8 waves" in out and "a PROXY for liquidations" in out
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert [r["kind"] for r in rows].count("cascade") == 2 and len(rows) == 10
    assert {r["source"] for r in rows} == {"trades"}
    code, again, _ = run("cascades", "--source", "trades", "--burst-notional", "5000000", "--min-notional",
                         "10000000", "--jsonl", "-", *usdm_files)
    assert again == path.read_text()


@pytest.mark.parametrize(("name", "samples"), [("sell-imbalance-reverts", "samples     26 (BTCUSDT 15, ETHUSDT 11)"),
                                               ("taker-burst-reverts", "samples     21 (BTCUSDT 7, ETHUSDT 14)"),
                                               ("vol-expansion-persists", "samples     23 (BTCUSDT 12, ETHUSDT 11)")])
def test_validate_the_shipped_hypotheses(name, samples, usdm_files, cached_reads, tmp_path):
    """docs: bin/analyze validate NAME on both files prints the report; --json writes the same numbers."""
    code, out, _ = run("validate", name, *usdm_files)
    assert code == EXIT_OK
    assert samples in out and "p-value" in out and "95% CI" in out
    path = tmp_path / "r.json"
    assert run("validate", "--json", str(path), name, *usdm_files)[0] == EXIT_OK
    doc = json.loads(path.read_text())
    assert doc["hypothesis"] == name and f"{doc['p_value']:.4f}" in out


def test_validate_refuses_too_few_samples(usdm_files, cached_reads):
    """docs: exit 3 and a message, no report, below the minimum."""
    code, out, err = run("validate", "--min-samples", "100", "sell-imbalance-reverts", *usdm_files)
    assert (code, out) == (EXIT_TOO_FEW, "")
    assert "too few samples for sell-imbalance-reverts: 26 on BTCUSDT, ETHUSDT, at least 100 needed" in err


def test_validate_a_declared_hypothesis_file(usdm_files, cached_reads, tmp_path):
    """docs: a hypothesis declared in TOML runs like a shipped one."""
    path = tmp_path / "wide-spread.toml"
    path.write_text((REPO / "examples" / "hypotheses" / "wide-spread.toml").read_text())
    code, out, err = run("validate", str(path), *usdm_files)
    assert code in (EXIT_OK, EXIT_TOO_FEW), err
    assert "wide-spread" in (out + err)


@pytest.mark.parametrize("argv", [
    ("validate", "no-such-hypothesis", "x.gz"),
    ("validate", "sell-imbalance-reverts", "/no/such/file.gz"),
    ("validate", "sell-imbalance-reverts"),
    ("cascades", "--min-count", "0", "/no/such/file.gz"),
    ("cascades", "--source", "bids", "x"),
    ("cascades", str(REPO / "README.md")),
])
def test_bad_arguments_exit_2_with_a_message(argv, capsys):
    code, out, err = run(*argv)
    err += capsys.readouterr().err  # argparse's own messages go to sys.stderr
    assert code == EXIT_USAGE
    assert err.strip() and "Traceback" not in err


def test_list_names_the_shipped_hypotheses():
    code, out, _ = run("validate", "list")
    assert code == EXIT_OK
    assert [line.split(":")[0] for line in out.splitlines()] == ["sell-imbalance-reverts", "taker-burst-reverts",
                                                                  "vol-expansion-persists"]


def test_a_journal_is_labeled_like_the_market_it_recorded(tmp_path):
    """docs: a journaled simulated run (seed 60: two cascades in its first minute) gives the labels of the
    simulated market's own frames."""
    from arbor.actors.cluster.build import market_frames
    from arbor.actors.replay.recorder import record_simulated_run
    from arbor.config.loader import load_raw
    from arbor.config.settings import build_settings

    raw = load_raw(environ={})
    raw["market"]["seed"] = 60
    journal = record_simulated_run(tmp_path, raw, 60, run_id="cascades")
    code, out, err = run("cascades", "--min-count", "1", "--min-notional", "0", "--cascade-gap-s", "10",
                         "--jsonl", "-", str(journal))
    assert code == EXIT_OK, err
    rows = [json.loads(line) for line in out.splitlines()]
    assert [(r["symbol"], r["side"]) for r in rows if r["kind"] == "cascade"] == [("BNBUSDT", "SELL"),
                                                                                  ("SOLUSDT", "BUY")]
    start = 1_723_161_600_000_000_000
    frames = ((ts, "sim", sym, p) for ts, sym, p in
              itertools.takewhile(lambda f: f[0] <= start + 60 * 10**9, market_frames(build_settings(raw), start)))
    events, _ = decode_frames(frames)
    params = CascadeParams(min_count=1, min_notional=0.0, cascade_gap_s=10.0)
    assert out == to_jsonl(label_cascades(build_tapes(events), params))


def test_bin_analyze_runs_as_a_command():
    """The bin/ script: the same bootstrap as the others, exit codes passed through."""
    done = subprocess.run([str(REPO / "bin" / "analyze"), "validate", "list"], capture_output=True, text=True,
                          timeout=300, check=False)
    assert done.returncode == 0 and "taker-burst-reverts" in done.stdout
    done = subprocess.run([str(REPO / "bin" / "analyze"), "cascades", "--window", "0", "x"], capture_output=True,
                          text=True, timeout=300, check=False)
    assert done.returncode == 2 and "Traceback" not in done.stderr
