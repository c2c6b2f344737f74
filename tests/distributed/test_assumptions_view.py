"""/api/assumptions across processes: read from the Workers' status files, a stale Worker's symbols unavailable."""

from __future__ import annotations

from pathlib import Path

from tests.distributed.test_operator_cluster import _risk, _view, _write_status

ROW = {"name": "calm", "observation": "vol_ratio", "status": "BROKEN", "value": 1.9, "bound": "<= 1.6",
       "quantile": 0.5, "window_s": 10.0, "samples": 10, "since_ns": 1_723_161_818_000_000_000,
       "on_broken": "reduce", "on_recover": "resume"}


def test_assumptions_come_from_fresh_worker_status_files(tmp_path: Path) -> None:
    """A fresh Worker's rows are shown with since as ISO time and Risk's holds; a stale Worker's symbol is unavailable."""
    view = _view(tmp_path)  # built first: the files must be fresh (< 1 s) when it reads them
    risk = {**_risk("BTCUSDT", "ETHUSDT"), "assumption_holds": {"BTCUSDT": {"broken": ["calm"], "needs_operator": False}}}
    _write_status(tmp_path, "coordinator", 0.0, risk=risk, risk_stats={})
    _write_status(tmp_path, "worker-0", 0.0, symbols={"BTCUSDT": {"health": "RUNNING", "assumptions": [ROW]}})
    _write_status(tmp_path, "worker-1", 5.0, symbols={"ETHUSDT": {"health": "RUNNING", "assumptions": [ROW]}})
    body = view.assumptions()
    assert [r["status"] for r in body["symbols"]["BTCUSDT"]] == ["BROKEN"]
    assert body["symbols"]["BTCUSDT"][0]["since"] == "2024-08-09T00:03:38.000Z"
    assert body["unavailable"] == ["ETHUSDT"] and "ETHUSDT" not in body["symbols"]
    assert body["counts"]["BROKEN"] == 1 and body["holds"]["BTCUSDT"]["broken"] == ["calm"]


def test_cluster_metrics_carry_each_workers_assumptions(tmp_path: Path) -> None:
    """/metrics across processes: arbor_assumption_status, _value and _changes_total per symbol and
    assumption, from the Workers' status rows, as one process serves them; a stale Worker's are not shown."""
    from arbor.adapters.operator.cluster_view import NodeCollector

    view = _view(tmp_path)
    _write_status(tmp_path, "coordinator", 0.0, risk=_risk("BTCUSDT", "ETHUSDT"), risk_stats={})
    row = {**ROW, "changes": {"DRIFTING": 2, "BROKEN": 1, "OK": 1}}
    _write_status(tmp_path, "worker-0", 0.0, symbols={"BTCUSDT": {"health": "RUNNING", "assumptions": [row]}})
    _write_status(tmp_path, "worker-1", 5.0, symbols={"ETHUSDT": {"health": "RUNNING", "assumptions": [row]}})
    samples = {(s.name, s.labels.get("symbol"), s.labels.get("assumption"), s.labels.get("status")): s.value
               for fam in NodeCollector(view.source).collect() if fam.name.startswith("arbor_assumption")
               for s in fam.samples}
    assert samples == {
        ("arbor_assumption_status", "BTCUSDT", "calm", None): 2.0,
        ("arbor_assumption_value", "BTCUSDT", "calm", None): 1.9,
        ("arbor_assumption_changes_total", "BTCUSDT", "calm", "DRIFTING"): 2.0,
        ("arbor_assumption_changes_total", "BTCUSDT", "calm", "BROKEN"): 1.0,
        ("arbor_assumption_changes_total", "BTCUSDT", "calm", "OK"): 1.0,
    }
