"""bin/start-cluster as a user runs it: a real process, real threads, real signals."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from arbor.messages.journal import JournalReader, RunMetadata, unpack_record

from tests.conftest import REPO_ROOT


def start(tmp_path: Path, *args: str) -> subprocess.Popen:
    cfg = tmp_path / "fast.toml"
    cfg.write_text("[run]\nsummary_interval_s = 0.5\n[feature]\nmin_samples = 3\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ARBOR__")}
    return subprocess.Popen(
        [sys.executable, "-m", "arbor.actors.cluster.main", "--config", str(cfg), "--var-dir", str(tmp_path / "var"), *args],
        cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def wait_for_summary(proc: subprocess.Popen[str], timeout: float = 30.0) -> list[str]:
    lines: list[str] = []
    assert proc.stdout is not None  # started with stdout=PIPE
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        if line.startswith("symbol "):
            return lines
    raise AssertionError(f"no summary printed: {lines}")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_stops_cleanly_on_signal_within_five_seconds(tmp_path: Path, sig: int) -> None:
    """A running cluster stops on SIGTERM/SIGINT within 5 s, exits 0 and leaves no thread behind."""
    proc = start(tmp_path)
    try:
        wait_for_summary(proc)
        t0 = time.monotonic()
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=5)
        assert time.monotonic() - t0 < 5
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "stopped cleanly" in out
    assert "threads still alive" not in err
    log = (tmp_path / "var" / "logs" / "arbor.jsonl").read_text().splitlines()
    stopped = [json.loads(line) for line in log if "stopped in" in line]
    assert stopped and stopped[-1]["msg"].endswith("threads left: []")


def test_duration_run_writes_logs_and_summary(tmp_path: Path) -> None:
    """--duration ends the run by itself; JSON logs carry ts, level, actor and event_type."""
    proc = start(tmp_path, "--duration", "3")
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "final after" in out and "BTCUSDT" in out
    first = json.loads((tmp_path / "var" / "logs" / "arbor.jsonl").read_text().splitlines()[0])
    assert {"ts", "level", "msg", "actor", "event_type"} <= set(first)


@pytest.mark.parametrize("override,key", [
    ("[risk]\ntarget_leverage = \"9\"\n", "risk.target_leverage"),
    ("[risk]\nmax_levrage = 3\n", "risk.max_levrage"),
    ("[[symbols]]\nsymbol = \"btc\"\n", "symbols[0].symbol"),
])
def test_bad_config_exits_nonzero_naming_the_key(tmp_path: Path, override: str, key: str) -> None:
    """A bad configuration exits 2 with a message that names the offending key."""
    cfg = tmp_path / "bad.toml"
    cfg.write_text(override)
    proc = subprocess.run([sys.executable, "-m", "arbor.actors.cluster.main", "--config", str(cfg), "--duration", "1",
                           "--var-dir", str(tmp_path / "var")], cwd=REPO_ROOT, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 2
    assert key in proc.stderr


def test_live_mode_on_the_simulated_market_is_a_config_error(tmp_path: Path) -> None:
    """Live trading with credentials but a simulated market exits 2 naming market.source, before starting."""
    cfg = tmp_path / "live.toml"
    cfg.write_text('[run]\nmode = "live"\nlive_enabled = true\n')
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("ARBOR__")},
           "ARBOR_BINANCE_API_KEY": "k" * 20, "ARBOR_BINANCE_API_SECRET": "s" * 20}
    proc = subprocess.run([sys.executable, "-m", "arbor.actors.cluster.main", "--config", str(cfg), "--duration", "1",
                           "--var-dir", str(tmp_path / "var")], cwd=REPO_ROOT, capture_output=True, text=True,
                          timeout=60, env=env)
    assert proc.returncode == 2, proc.stderr
    assert "market.source" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "var").exists()


def test_environment_overrides_are_validated(tmp_path: Path) -> None:
    """ARBOR__SECTION__KEY variables override the files and are validated the same way."""
    env = dict(os.environ, ARBOR__RISK__MAX_LEVERAGE="0")
    proc = subprocess.run([sys.executable, "-m", "arbor.actors.cluster.main", "--duration", "1", "--var-dir",
                           str(tmp_path / "var")], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60, env=env)
    assert proc.returncode == 2
    assert "risk.max_leverage" in proc.stderr


def test_operator_metrics_carry_the_journals_bytes_and_fsyncs(tmp_path: Path) -> None:
    """With --operator, /metrics reports the journal's appended bytes and fsync latencies from the live run."""
    import re
    import urllib.request

    from arbor.actors.testing import eventually

    token = "0123456789abcdef0123"
    cfg = tmp_path / "op.toml"
    cfg.write_text("[run]\nsummary_interval_s = 0.5\n[operator]\nport = 0\n[journal]\ninterval_ms = 20\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ARBOR__")}
    env["ARBOR_OPERATOR_TOKEN"] = token
    proc = subprocess.Popen([sys.executable, "-m", "arbor.actors.cluster.main", "--config", str(cfg), "--operator",
                             "--var-dir", str(tmp_path / "var")], cwd=REPO_ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    assert proc.stdout is not None  # started with stdout=PIPE
    try:
        url = None
        deadline = time.monotonic() + 30
        while url is None and time.monotonic() < deadline:
            m = re.search(r"operator API and dashboard on (\S+)", proc.stdout.readline())
            url = m.group(1) if m else None
        assert url, "the operator API did not start"

        def metric(name: str) -> float:
            req = urllib.request.Request(url.rstrip("/") + "/metrics", headers={"Authorization": f"Bearer {token}"})
            text = urllib.request.urlopen(req, timeout=5).read().decode()
            m = re.search(rf"^{name} (\S+)$", text, re.M)
            return float(m.group(1)) if m else 0.0

        eventually(lambda: metric("arbor_journal_written_bytes_total") > 0
                   and metric("arbor_journal_fsync_seconds_count") > 0, timeout=20, interval=0.2)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=10)


FAST_TRADING = """[run]
summary_interval_s = 0.5
tick_interval_ms = 20
[feature]
bucket_ms = 50
short_window = 5
long_window = 20
min_samples = 5
[regime]
decision_interval_ms = 100
confirm_cycles = 1
[paper]
latency_ms = 5
[[symbols]]
symbol = "BTCUSDT"
strategy = "trend_following"
start_price = "60000"
tick_size = "0.1"
qty_step = "0.001"
events_per_s = 300.0
base_vol = 0.002
"""


def test_readme_replay_walkthrough_audits_identical_on_a_used_var_dir(tmp_path: Path) -> None:
    """Two runs of bin/start-cluster on one var dir (the second restores state): the second journal audits IDENTICAL."""
    cfg = tmp_path / "trading.toml"
    cfg.write_text(FAST_TRADING)
    env = {k: v for k, v in os.environ.items() if not k.startswith("ARBOR__")}
    var = tmp_path / "var"
    for _ in range(2):
        done = subprocess.run([sys.executable, "-m", "arbor.actors.cluster.main", "--config", str(cfg), "--var-dir",
                               str(var), "--duration", "4", "--quiet"], cwd=REPO_ROOT, env=env, capture_output=True,
                              text=True, timeout=60)
        assert done.returncode == 0, done.stderr
    journals = sorted((var / "journal").iterdir())
    assert len(journals) == 2
    _, first = next(JournalReader(journals[-1]).records())
    assert RunMetadata.from_primitive(unpack_record(first)[1]).restored  # the second run did restore state
    audit = subprocess.run([sys.executable, "-m", "arbor.actors.replay.cli", "audit", str(journals[-1])], cwd=REPO_ROOT,
                           env=env, capture_output=True, text=True, timeout=120)
    assert audit.returncode == 0, audit.stdout + audit.stderr  # 0: IDENTICAL, 1: diverged
