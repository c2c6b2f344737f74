"""The operator API of a real ``--workers 2`` cluster, served by the launcher on 127.0.0.1."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from arbor.actors.distributed.placement import assign
from arbor.actors.testing import eventually
from arbor.adapters.operator.metric_schema import CLUSTER
from arbor.supervision.procs import alive, kill_all, listening
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import REPO_ROOT
from tests.distributed.cluster_helpers import SYMBOLS, Cluster, fast_config, free_port
from tests.http_helpers import call_json, get_ok
from tests.metrics_helpers import families_by_schema

NAMES = [s[0] for s in SYMBOLS]
TOKEN = "cluster-operator-token-0123456789"


class Operated:
    def __init__(self, cluster: Cluster, url: str) -> None:
        self.cluster, self.url = cluster, url


@pytest.fixture(scope="module")
def op(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Operated]:
    tmp = tmp_path_factory.mktemp("operated")
    port = free_port()
    # A hung Coordinator is killed after 6 s: the API sees it stale (2 s) well before.
    c = Cluster(tmp, workers=2, extra=f"hang_timeout_s = 6.0\n[operator]\nenabled = true\nport = {port}\n",
                env={"ARBOR_OPERATOR_TOKEN": TOKEN})
    try:
        c.wait_started()
        o = Operated(c, f"http://127.0.0.1:{port}")
        eventually(lambda: "operator API and dashboard on" in c.out_path.read_text(), timeout=30, interval=0.05)
        yield o
    finally:
        c.cleanup()
        assert not c.survivors(), f"processes left behind: {c.survivors()}"


def call(o: Operated, method: str, path: str, body: Any = None, token: str | None = TOKEN) -> tuple[int, Any]:
    return call_json(o.url + path, method, body, token, timeout=10)


def get(o: Operated, path: str) -> Any:
    return get_ok(o.url + path, TOKEN, timeout=10)


def test_refuses_to_start_without_a_token(tmp_path: Path) -> None:
    """operator.enabled without ARBOR_OPERATOR_TOKEN: exit 2 naming the variable, before any process starts."""
    port = free_port()
    config = fast_config(tmp_path, port, f"[operator]\nenabled = true\nport = {free_port()}\n")
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("ARBOR__")}, "ARBOR_OPERATOR_TOKEN": ""}
    done = subprocess.run([sys.executable, "-m", "arbor.actors.cluster.main", "--config", str(config), "--var-dir",
                           str(tmp_path / "var"), "--quiet", "--workers", "2"], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "ARBOR_OPERATOR_TOKEN" in done.stderr
    assert not (tmp_path / "var" / "cluster" / "pids.json").exists()


def test_needs_the_token_and_listens_on_loopback_only(op: Operated) -> None:
    """/healthz is open; API, metrics and commands answer 401 without the token; nothing listens beyond 127.0.0.1."""
    assert call(op, "GET", "/healthz", token=None) == (200, {"ok": True})
    for method, path in (("GET", "/api/state"), ("GET", "/api/positions"), ("GET", "/api/tree"), ("GET", "/metrics"),
                         ("POST", "/api/kill"), ("POST", "/api/reset")):
        assert call(op, method, path, token=None)[0] == 401, path
        assert call(op, method, path, token="wrong-token-wrong-token")[0] == 401, path
    launcher = listening([op.cluster.proc.pid])
    assert (("127.0.0.1", int(op.url.rsplit(":", 1)[1])) in {(a, p) for a, p, _ in launcher})
    assert [x for x in launcher if not x[0].startswith("127.")] == []
    assert op.cluster.non_loopback_listeners() == []


def test_state_and_positions_name_every_symbol_with_its_worker(op: Operated) -> None:
    """/api/state lists the 7 symbols on their hash-placed worker, healthy and ACTIVE; /api/positions the open ones."""
    placed = {s: k for k, syms in assign(NAMES, 2).items() for s in syms}
    op.cluster.wait_trading(workers=2)
    state = get(op, "/api/state")
    assert state["mode"] == "multi-process" and state["status"] == "running"
    assert {s: r["worker"] for s, r in state["symbols"].items()} == placed
    assert all(r["state"] == "ACTIVE" and r["health"] == "RUNNING" and not r["stale"] and r["position"]
               for r in state["symbols"].values())
    assert {n: (v["up"], v["pid"]) for n, v in state["nodes"].items()} == {
        n: (True, op.cluster.pid_of(n)) for n in ("coordinator", "worker-0", "worker-1")}
    eventually(lambda: get(op, "/api/positions")["positions"], timeout=30, interval=0.05)
    rows = get(op, "/api/positions")["positions"]
    assert all(r["worker"] == placed[r["symbol"]] and r["state"] != "FLAT" and r["qty"] != "0" for r in rows)
    # Each symbol's regime (from its worker), denials (from Risk) and decode failures, as in one process.
    eventually(lambda: all(r["regime"] not in (None, "UNKNOWN") for r in get(op, "/api/state")["symbols"].values()),
               timeout=30, interval=0.1)
    assert all(r["denials"] == 0 and r["decode_failures"] == 0 for r in get(op, "/api/state")["symbols"].values())


def test_tree_has_one_group_per_process(op: Operated) -> None:
    """/api/tree: the Coordinator with Risk and the Arbitrator, each Worker with its symbols' subtrees."""
    tree = get(op, "/api/tree")
    groups = {g["group"]: g for g in tree["groups"]}
    assert set(groups) == {"coordinator", "worker-0", "worker-1"} and tree["health"] == "ok"
    assert [a["id"] for a in groups["coordinator"]["actors"]] == ["risk", "arbitrator"]
    for k, syms in assign(NAMES, 2).items():
        assert [a["id"] for a in groups[f"worker-{k}"]["actors"]] == [f"{s}/supervisor" for s in syms]
        assert groups[f"worker-{k}"]["process"]["pid"] == op.cluster.pid_of(f"worker-{k}")


def test_metrics_carry_symbol_and_process_gauges(op: Operated) -> None:
    """/metrics parses and has per-symbol state and position, the kill switch, and process up and restarts."""
    status, text = call(op, "GET", "/metrics")
    assert status == 200
    families = families_by_schema(text, CLUSTER)  # every family of the schema, with its labels, and no other
    up = {s.labels["node"]: s.value for s in families["arbor_node_up"].samples}
    assert up == {"coordinator": 1.0, "worker-0": 1.0, "worker-1": 1.0}
    assert {s.labels["symbol"] for s in families["arbor_position_qty"].samples} == set(NAMES)
    assert {s.labels["scope"] for s in families["arbor_trading_state"].samples} == {"*", *NAMES}
    assert [s.value for s in families["arbor_kill_switch_engaged"].samples] == [0.0]
    assert {s.labels["symbol"] for s in families["arbor_decode_failures"].samples
            if s.name == "arbor_decode_failures_total"} == set(NAMES)
    assert {s.labels["symbol"]: s.labels["worker"] for s in families["arbor_symbol_worker"].samples} == {
        s: str(k) for k, syms in assign(NAMES, 2).items() for s in syms}


def test_kill_stops_entries_on_every_worker_and_a_reset_with_a_reason_clears_it(op: Operated) -> None:
    """POST /api/kill: Risk's kill switch engages (coordinator events say who), no ENTRY is approved after it
    while both workers go on deciding; /api/reset needs a reason and then clears it."""
    c = op.cluster
    status, body = call(op, "POST", "/api/kill", {"reason": "drill", "who": "tester"})
    assert status == 200 and [(s["receiver"], s["message"]) for s in body["sent"]] == [("risk", "EngageKillSwitch.v1")]
    eventually(lambda: get(op, "/api/risk/status")["kill_switch"]["engaged"], timeout=10, interval=0.05)
    kill = next(e for e in c.events("coordinator") if e["ev"] == "kill" and e["who"] == "tester")
    assert kill["reason"] == "drill"
    assert any(e["sender"] == "operator:tester" and e["message"] == "EngageKillSwitch.v1"
               for e in c.events("operator"))  # on record before it was sent
    state = get(op, "/api/state")
    assert state["status"] == "paused" and state["active_symbols"] == [] and state["kill_switch"]["engaged"]
    # Both workers keep feeding and deciding; Risk refuses their entries.
    frames = {k: c.status(f"worker-{k}")["frames"] for k in (0, 1)}
    eventually(lambda: all(c.status(f"worker-{k}").get("frames", 0) > frames[k] + 300 for k in (0, 1)), timeout=30,
               interval=0.1)
    eventually(lambda: get(op, "/api/risk/status")["stats"]["denials"].get("kill_switch", 0) >= 1, timeout=30,
               interval=0.1)
    eventually(lambda: sum(r["denials"] for r in get(op, "/api/state")["symbols"].values()) >= 1, timeout=5,
               interval=0.05)
    assert not [e for e in c.events("coordinator") if e["ev"] == "approved" and e["kind"] == "ENTRY"
                and e["ts_ns"] > kill["ts_ns"]]
    eventually(lambda: any(e["type"] == "kill_switch" and e["data"]["engaged"]
                           for e in get(op, "/api/events/recent")["events"]), timeout=5, interval=0.05)

    assert call(op, "POST", "/api/reset", {})[0] == 400
    assert get(op, "/api/risk/status")["kill_switch"]["engaged"]
    assert call(op, "POST", "/api/reset", {"reason": "drill over", "who": "tester"})[0] == 200
    eventually(lambda: not get(op, "/api/risk/status")["kill_switch"]["engaged"], timeout=10, interval=0.05)
    assert any(e["ev"] == "kill_reset" and e["reason"] == "drill over" for e in c.events("coordinator"))
    eventually(lambda: get(op, "/api/state")["status"] == "running", timeout=5, interval=0.05)


def test_pause_of_one_symbol_reaches_risk(op: Operated) -> None:
    """POST /api/pause for one symbol makes it REDUCING at Risk; resume makes it ACTIVE again."""
    sym = NAMES[1]
    assert call(op, "POST", "/api/pause", {"symbol": "NOPEUSDT"})[0] == 400
    assert call(op, "POST", "/api/pause", {"symbol": sym, "reason": "news"})[0] == 200
    eventually(lambda: get(op, "/api/state")["symbols"][sym]["state"] == "REDUCING", timeout=10, interval=0.05)
    assert call(op, "POST", "/api/resume", {"symbol": sym, "reason": "news over"})[0] == 200
    eventually(lambda: get(op, "/api/state")["symbols"][sym]["state"] == "ACTIVE", timeout=10, interval=0.05)


def test_flatten_exits_an_open_position_and_release_reaches_the_symbols_worker(op: Operated) -> None:
    """Flatten sets a held symbol REDUCING and its position ends FLAT; release goes to "<symbol>/supervisor"."""
    def held() -> str | None:
        book = get(op, "/api/risk/status")["symbols"]
        return next((s for s, b in sorted(book.items()) if Decimal(b["qty"]) > 0), None)

    eventually(lambda: held() is not None, timeout=30, interval=0.05)
    sym = held() or NAMES[0]
    status, body = call(op, "POST", "/api/flatten", {"symbol": sym, "reason": "test"})
    assert status == 200, body
    assert [s["message"] for s in body["sent"]] in (["SetTradingState.v1"], ["SetTradingState.v1", "Action.v1"])
    if len(body["sent"]) == 2:  # still held when the book was read: Risk approves the operator's EXIT
        eventually(lambda: any(e["ev"] == "approved" and e["kind"] == "EXIT"
                               and e["action_id"].startswith(f"operator:{sym}:flatten:")
                               for e in op.cluster.events("coordinator")), timeout=10, interval=0.05)
    eventually(lambda: get(op, "/api/state")["symbols"][sym]["state"] == "REDUCING", timeout=10, interval=0.05)
    eventually(lambda: get(op, "/api/state")["symbols"][sym]["position"] == "FLAT", timeout=20, interval=0.05)
    assert call(op, "POST", "/api/resume", {"symbol": sym, "reason": "test over"})[0] == 200
    status, body = call(op, "POST", "/api/release", {"symbol": sym, "reason": "drill"})
    assert status == 200 and [(s["receiver"], s["message"]) for s in body["sent"]] == [
        (f"{sym}/supervisor", "ReleaseSymbol.v1")]
    assert call(op, "POST", "/api/release", {"reason": "no symbol"})[0] == 400


def test_a_hung_coordinator_shows_down_refuses_commands_and_the_api_outlives_its_restart(op: Operated) -> None:
    """A stopped Coordinator reads as down within ~2 s (never healthy) and commands answer 503; the supervisor
    restarts it, the API answers throughout, and the new Coordinator starts with the kill switch latched."""
    c = op.cluster
    victim = c.pid_of("coordinator")
    kill_all([victim], signal.SIGSTOP)
    eventually(lambda: not get(op, "/api/state")["nodes"]["coordinator"]["up"], timeout=10, interval=0.05)
    state = get(op, "/api/state")
    assert state["status"] == "error" and state["active_symbols"] == []
    assert all(r["state"] == "UNKNOWN" for r in state["symbols"].values())
    assert call(op, "GET", "/api/risk/status")[0] == 503
    assert call(op, "POST", "/api/pause", {"reason": "while down"})[0] == 503
    assert call(op, "POST", "/api/kill", {"reason": "while down"})[0] == 503

    def back() -> bool:
        node = get(op, "/api/state")["nodes"]["coordinator"]
        return node["up"] and node["pid"] != victim

    eventually(back, timeout=60, interval=0.1)
    assert not alive(victim)
    assert get(op, "/api/state")["nodes"]["coordinator"]["restarts"] == 1
    assert get(op, "/api/risk/status")["kill_switch"]["engaged"]  # latched when the old one died
    events = get(op, "/api/events/recent")["events"]
    assert any(e["type"] == "process_down" and e["data"]["node"] == "coordinator" for e in events)
    assert call(op, "POST", "/api/reset", {"reason": "coordinator back"})[0] == 200
    eventually(lambda: not get(op, "/api/risk/status")["kill_switch"]["engaged"], timeout=10, interval=0.05)


def test_stop_closes_the_api_and_leaves_no_process(op: Operated) -> None:
    """SIGTERM: exit 0, the URL was printed, the API is gone and no process of the cluster is left."""
    c = op.cluster
    known = set(c.tree()) | {v for v in c.pids().values() if v}
    code, out, err = c.stop()
    assert code == 0, err
    assert f"operator API and dashboard on {op.url}" in out
    eventually(lambda: not [p for p in known | c.seen_pids if alive(p)], timeout=5)
    with pytest.raises(OSError):
        urllib.request.urlopen(op.url + "/healthz", timeout=2)


# -- the view over status files, without a cluster ------------------------------------------
class _NoSupervisor:
    def status(self) -> tuple[Any, float]:
        return None, 0.0


def _write_status(var: Path, name: str, age_s: float, **fields: Any) -> None:
    d = var / "cluster" / "status"
    d.mkdir(parents=True, exist_ok=True)
    (d / f"{name}.json").write_text(json.dumps({"pid": os.getpid(), "ts_ns": time.time_ns() - int(age_s * 1e9),
                                                **fields}))


def _view(var: Path) -> Any:
    from arbor.adapters.operator.cluster_view import EventFollower, NodesSource
    from arbor.adapters.operator.events import EventHub
    from arbor.adapters.operator.view import ClusterView

    hub = EventHub()
    follower = EventFollower(var / "cluster" / "events", ("coordinator", "worker-0", "worker-1"), hub)
    source = NodesSource(var, {0: ("BTCUSDT",), 1: ("ETHUSDT",)}, _NoSupervisor(), follower)  # type: ignore[arg-type]  # a stand-in
    return ClusterView(source, hub=hub)


def _risk(*symbols: str) -> dict[str, Any]:
    return {"kill_switch": {"engaged": False, "who": "", "reason": "", "ts_event_ns": 0}, "global_state": "ACTIVE",
            "symbols": {s: {"state": "ACTIVE", "effective": "ACTIVE", "qty": "0", "notional": "0"} for s in symbols},
            "quarantined": {}, "equity": "1000", "drawdown_pct": "0", "gross_exposure": "0", "net_exposure": "0"}


def test_a_worker_with_an_old_status_file_is_shown_down_never_healthy(tmp_path: Path) -> None:
    """A worker whose status is 5 s old: its symbols read DOWN and stale, its group down, arbor_symbol_up 0."""
    from arbor.adapters.operator.cluster_view import NodeCollector

    row = {"health": "RUNNING", "position": "FLAT", "qty": "0", "events": 1, "orders": 0, "fills": 0}
    _write_status(tmp_path, "coordinator", 0.1, risk=_risk("BTCUSDT", "ETHUSDT"), risk_stats={})
    _write_status(tmp_path, "worker-0", 0.1, symbols={"BTCUSDT": row})
    _write_status(tmp_path, "worker-1", 5.0, symbols={"ETHUSDT": row})
    view = _view(tmp_path)
    view.set_stage("running")
    state = view.state()
    assert state["status"] == "degraded"
    assert (state["symbols"]["BTCUSDT"]["health"], state["symbols"]["BTCUSDT"]["stale"]) == ("RUNNING", False)
    assert (state["symbols"]["ETHUSDT"]["health"], state["symbols"]["ETHUSDT"]["stale"]) == ("DOWN", True)
    assert state["active_symbols"] == ["BTCUSDT"] and not state["nodes"]["worker-1"]["up"]
    groups = {g["group"]: g["health"] for g in view.tree()["groups"]}
    assert groups == {"coordinator": "ok", "worker-0": "ok", "worker-1": "down"}
    assert view.mailbox_depths() == ({}, ["worker-1"])
    ups = {s.labels["symbol"]: s.value for fam in NodeCollector(view.source).collect() if fam.name == "arbor_symbol_up"
           for s in fam.samples}
    assert ups == {"BTCUSDT": 1.0, "ETHUSDT": 0.0}


def test_cluster_metrics_follow_the_schema_and_count_as_one_process_does(tmp_path: Path) -> None:
    """From status files alone: the families, types and labels of the schema's cluster mode (Risk's only
    while the Coordinator is fresh); decoded events per symbol under the venue that decoded them."""
    from arbor.adapters.operator.cluster_view import NodeCollector
    from prometheus_client import CollectorRegistry, generate_latest

    row = {"health": "RUNNING", "position": "LONG", "direction": "SHORT", "qty": "0.5", "events": 7, "orders": 2,
           "fills": 1, "decode_failures": 1, "venue": "binance_usdm"}
    _write_status(tmp_path, "coordinator", 0.1, risk=_risk("BTCUSDT", "ETHUSDT"),
                  risk_stats={"approvals": {"ENTRY": 2}, "denials": {"max_position": 1}})
    _write_status(tmp_path, "worker-0", 0.1, symbols={"BTCUSDT": row})
    _write_status(tmp_path, "worker-1", 0.1, symbols={"ETHUSDT": {**row, "orders": 3, "venue": None}})
    registry = CollectorRegistry()
    registry.register(NodeCollector(_view(tmp_path).source, venue="sim"))
    families = families_by_schema(generate_latest(registry).decode(), CLUSTER, optional=frozenset({
        "arbor_node_restarts_total", "arbor_node_rss_bytes"}))  # no supervisor and no rss in these files
    events = {(s.labels["symbol"], s.labels["venue"]): s.value for s in families["arbor_market_events"].samples
              if s.name == "arbor_market_events_total"}
    assert events == {("BTCUSDT", "binance_usdm"): 7.0, ("ETHUSDT", "sim"): 7.0}
    assert [(s.labels["status"], s.value) for s in families["arbor_orders"].samples
            if s.name == "arbor_orders_total"] == [("placed", 5.0)]
    assert {s.labels["symbol"]: s.value for s in families["arbor_position_qty"].samples} == {
        "BTCUSDT": -0.5, "ETHUSDT": -0.5}
    _write_status(tmp_path, "coordinator", 5.0, risk=_risk("BTCUSDT", "ETHUSDT"), risk_stats={})
    stale = {f.name for f in text_string_to_metric_families(generate_latest(registry).decode())}
    assert "arbor_trading_state" not in stale and "arbor_equity_quote" not in stale  # never shown out of date


def test_events_files_are_followed_from_where_they_ended(tmp_path: Path) -> None:
    """Lines already in a file at start are skipped; a node's operator events are published as its
    EventStream made them (its raw lines are not translated again); a torn last line waits for its end."""
    from arbor.adapters.operator.events import CRITICAL, OPERATOR_EVENT, WARNING, make_event

    kill = make_event("kill_switch", 1, CRITICAL, "kill switch ENGAGED by ops: drill", {"engaged": True, "who": "ops"},
                      alert=True)
    failed = make_event("actor_failed", 2, WARNING, "BTCUSDT/worker failed (died)", {"actor_id": "BTCUSDT/worker"})
    events = tmp_path / "cluster" / "events"
    events.mkdir(parents=True)
    (events / "coordinator.jsonl").write_text(json.dumps({"ev": OPERATOR_EVENT, "event": kill}) + "\n")
    view = _view(tmp_path)
    with open(events / "coordinator.jsonl", "a") as fh:
        fh.write(json.dumps({"ev": "kill", "who": "ops", "reason": "drill", "ts_ns": 1}) + "\n")
        fh.write(json.dumps({"ev": OPERATOR_EVENT, "event": kill, "ts_ns": 1}) + "\n")
        fh.write(json.dumps({"ev": "failed", "symbol": "BTCUSDT", "actor_id": "BTCUSDT/worker", "kind": "died"}) + "\n")
        fh.write(json.dumps({"ev": OPERATOR_EVENT, "event": failed})[:20])
    assert view.source.follower.poll() == 3
    assert [(e["type"], e["data"]["who"], e.get("alert")) for e in view.hub.recent()] == [("kill_switch", "ops", True)]
    with open(events / "coordinator.jsonl", "a") as fh:
        fh.write(json.dumps({"ev": OPERATOR_EVENT, "event": failed})[20:] + "\n")
    assert view.source.follower.poll() == 1
    assert view.hub.recent()[-1]["type"] == "actor_failed" and view.source.follower.take() == 1
