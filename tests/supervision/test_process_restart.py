"""Kill the whole process mid-run, start again from the same var/: nothing forgotten, nothing doubled."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from arbor.messages import Codec, PlaceOrder, ReconciliationCompleted
from arbor.messages.journal import JournalReader, decode_record, repair
from arbor.supervision.store import StateStore

from tests.conftest import REPO_ROOT

FAST = """
[run]
summary_interval_s = 0.5
tick_interval_ms = 50
[feature]
bucket_ms = 250
short_window = 3
long_window = 12
min_samples = 4
[regime]
decision_interval_ms = 250
confirm_cycles = 1
[position]
entry_order_type = "LIMIT"
"""


def start(var: Path, cfg: Path, *extra: str, env: dict[str, str] | None = None) -> subprocess.Popen:
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("ARBOR__")}, **(env or {})}
    return subprocess.Popen([sys.executable, "-m", "arbor.actors.cluster.main", "--config", str(cfg), "--var-dir", str(var),
                             *extra], cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def read_store(var: Path) -> tuple[dict, dict]:
    store = StateStore.in_var_dir(var)
    try:
        positions = {s: store.load_position(s) for s in ("BTCUSDT", "ETHUSDT", "SOLUSDT", "BNBUSDT")}
        orders = {s: store.load_executor(s) for s in positions}
    finally:
        store.close()
    return positions, orders


def journal_messages(var: Path, runs: tuple[str, ...] | None = None) -> list:
    """Every journaled message of the runs in ``var`` (only those named in ``runs`` if given)."""
    codec = Codec()
    out = []
    for run in sorted((var / "journal").iterdir()):
        if runs is not None and run.name not in runs:
            continue
        repair(run)
        for _, payload in JournalReader(run).records():
            try:
                kind, env = decode_record(codec, payload)
            except Exception:
                continue
            if env is not None:
                out.append(env.payload)
    return out


def test_sigkill_then_restart_recovers_positions_and_orders_without_duplicates(tmp_path: Path) -> None:
    """After SIGKILL, a restart from the same var/ restores positions and orders, reconciles, and sends nothing twice."""
    cfg = tmp_path / "fast.toml"
    cfg.write_text(FAST)
    var = tmp_path / "var"
    proc = start(var, cfg)
    assert proc.stdout is not None  # started with stdout=PIPE
    deadline = time.monotonic() + 90
    try:
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if " OPEN " in line:
                break
        else:
            raise AssertionError("no position opened in time")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    _, orders = read_store(var)
    assert any(o is not None and o.orders for o in orders.values()), "orders placed before the kill were persisted"

    proc2 = start(var, cfg, "--duration", "6")
    out, err = proc2.communicate(timeout=60)
    assert proc2.returncode == 0, err
    messages = journal_messages(var)
    outcomes = [m.outcome for m in messages if isinstance(m, ReconciliationCompleted)]
    assert outcomes and "DRIFT_UNRESOLVED" not in outcomes
    coids = [m.client_order_id for m in messages if isinstance(m, PlaceOrder)]
    assert len(coids) == len(set(coids)), "an order was sent twice"
    positions2, _ = read_store(var)
    store = StateStore.in_var_dir(var)
    try:
        from arbor.adapters.sim.paper import PaperVenueSnapshot

        for sym, pos in positions2.items():
            venue = store.get(f"venue:{sym}", PaperVenueSnapshot)
            ours = (pos.qty * pos.direction.sign) if pos is not None and pos.direction else 0
            assert ours == (venue.pos_qty if venue is not None else 0), sym
    finally:
        store.close()


def test_corrupt_state_file_is_quarantined_and_the_cluster_starts_degraded(tmp_path: Path) -> None:
    """A garbage state file is moved aside as *.corrupted.<ts>; the cluster runs anyway."""
    cfg = tmp_path / "fast.toml"
    cfg.write_text(FAST)
    var = tmp_path / "var"
    (var / "state").mkdir(parents=True)
    (var / "state" / "arbor.sqlite").write_bytes(b"this is not a database" * 100)
    proc = start(var, cfg, "--duration", "3")
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert list((var / "state").glob("arbor.sqlite.corrupted.*"))
    log = [json.loads(line) for line in (var / "logs" / "arbor.jsonl").read_text().splitlines()]
    assert any(line.get("event_type") == "store_degraded" for line in log)
