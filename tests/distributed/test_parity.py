"""A multi-process run leaves what a single-process run leaves: journal, trade log, an audit that passes."""

from __future__ import annotations

import io
import json
import signal
import subprocess
import sys
from pathlib import Path

from arbor.actors.replay.cli import audit_command
from arbor.actors.replay.journal_io import node_journals
from arbor.actors.testing import eventually

from tests.conftest import REPO_ROOT
from tests.distributed.cluster_helpers import Cluster


def test_two_worker_run_writes_a_journal_per_node_a_trade_log_and_audits_identical(tmp_path: Path) -> None:
    """Each node journals into <var>/journal/<run>/<node>; the audit of all of them is IDENTICAL; bin/report reads the trade log."""
    c = Cluster(tmp_path, workers=2, max_positions=3)
    try:
        c.wait_started()
        c.wait_trading(workers=2)
        # round trips, so entries, fills and exits cross between the nodes: the trade log has an exit
        trade_log = c.var / "trades.jsonl"
        eventually(lambda: trade_log.exists() and trade_log.read_text().strip() != "", timeout=90, interval=0.2)
        code, _out, err = c.stop(signal.SIGTERM)
        assert code == 0, err
    finally:
        c.cleanup()
    runs = list((c.var / "journal").iterdir())
    assert len(runs) == 1
    nodes = node_journals(runs[0])
    assert [d.name for d in nodes] == ["coordinator", "worker-0", "worker-1"]
    out, errs = io.StringIO(), io.StringIO()
    assert audit_command(runs[0], allow_repair=False, out=out, err=errs) == 0, out.getvalue() + errs.getvalue()
    text = out.getvalue()
    assert text.count("IDENTICAL") == 3
    # every node's audit checked real traffic: inputs and outputs, not an empty run
    checked = [line for line in text.splitlines() if line.startswith("audited run(s)")]
    assert len(checked) == 3 and all(" 0 inputs" not in line for line in checked)

    trades = [json.loads(line) for line in (c.var / "trades.jsonl").read_text().splitlines()]
    assert trades, "no trade in the trade log"
    report = subprocess.run([sys.executable, "-m", "arbor.adapters.operator.report", "--trades",
                             str(c.var / "trades.jsonl"), "--out", str(tmp_path / "reports")],
                            cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)
    assert report.returncode == 0, report.stderr
    assert list((tmp_path / "reports").iterdir())
