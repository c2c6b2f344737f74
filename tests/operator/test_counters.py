"""One counter definition in both run modes: the same traffic counted by the single-process observers
(``SummaryBoard``, ``ClusterFacts``) and by the Worker's and Coordinator's probes gives the same
per-symbol events, decisions, orders, fills, denials and decode failures, and the one view shows
the same numbers over either source."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from arbor.actors.cluster.counters import COUNTERS
from arbor.actors.cluster.files import EventFile
from arbor.actors.cluster.probes import CoordinatorEvents, WorkerProbe
from arbor.actors.cluster.simulate import SimulatedCluster
from arbor.adapters.operator.cluster_view import EventFollower, NodeCollector, NodesSource
from arbor.adapters.operator.events import EventHub, EventStream
from arbor.adapters.operator.local import ClusterFacts, RuntimeSource
from arbor.adapters.operator.metrics import ClusterMetrics
from arbor.adapters.operator.view import ClusterView
from arbor.config.settings import load_settings
from arbor.messages import EngageKillSwitch
from prometheus_client import CollectorRegistry

from tests.distributed.test_operator_cluster import _NoSupervisor, _write_status

FAST = {"feature": {"bucket_ms": 250, "short_window": 3, "long_window": 12, "min_samples": 4},
        "regime": {"decision_interval_ms": 250, "confirm_cycles": 1}}


def _run(tmp_path: Path, *observers: Any) -> tuple[SimulatedCluster, ClusterFacts, WorkerProbe, CoordinatorEvents]:
    """A simulated cluster observed by both modes' counters, run until it has placed orders."""
    settings = load_settings(FAST)
    symbols = tuple(s.symbol for s in settings.symbols)
    facts = ClusterFacts()
    probe = WorkerProbe(symbols, EventFile(tmp_path / "worker.jsonl"), incarnation=1)
    coord = CoordinatorEvents(tmp_path, EventFile(tmp_path / "coordinator.jsonl"))
    c = SimulatedCluster(settings, var_dir=tmp_path / "var", observers=(facts, probe, coord, *observers))
    for _ in range(300):
        c.run_for(1)
        if sum(r["orders"] for r in probe.rows.values()) >= 2:
            break
    return c, facts, probe, coord


def test_both_modes_count_the_same_traffic_the_same_way(tmp_path: Path) -> None:
    """Per symbol, the board and facts count what the Worker's probe and the Coordinator's denials count."""
    c, facts, probe, coord = _run(tmp_path)
    board = c.board.snapshot()["symbols"]
    assert sum(r["orders"] for r in board.values()) >= 2 and sum(r["decisions"] for r in board.values()) > 0
    for s, r in board.items():
        single = {k: r[k] for k in COUNTERS}
        multi = {k: probe.rows[s].get(k) for k in COUNTERS if k != "denials"} | {"denials": coord.denials.get(s, 0)}
        assert single == multi, s
    c.close()


def _place(c: SimulatedCluster, probe: WorkerProbe, var: Path, coord: CoordinatorEvents) -> NodesSource:
    """The status files a two-worker cluster would write for this traffic, and a source over them."""
    symbols = tuple(s.symbol for s in c.settings.symbols)
    assignment = {0: symbols[::2], 1: symbols[1::2]}
    follower = EventFollower(var / "cluster" / "events", ("coordinator", "worker-0", "worker-1"), EventHub())
    source = NodesSource(var, assignment, _NoSupervisor(), follower)  # type: ignore[arg-type]  # a stand-in
    _write_status(var, "coordinator", 0.0, risk=c.logic("risk").status(), risk_stats={},
                  denials_by_symbol=dict(coord.denials))
    for slot, placed in assignment.items():
        _write_status(var, f"worker-{slot}", 0.0, symbols={s: {**probe.rows[s], "health": "RUNNING",
                                                                "position": "FLAT", "qty": "0"} for s in placed})
    return source


def test_both_modes_metrics_count_the_same_traffic_the_same_way(tmp_path: Path) -> None:
    """/metrics: decoded events, decode failures, fills per symbol and placed orders are equal in one
    process (``ClusterMetrics``) and across processes (``NodeCollector`` over the probes' rows)."""
    registry = CollectorRegistry()
    metrics = ClusterMetrics(registry, None)
    c, _, probe, coord = _run(tmp_path, metrics)
    cluster = CollectorRegistry()
    cluster.register(NodeCollector(_place(c, probe, tmp_path / "multi", coord), venue="sim"))

    def samples(reg: CollectorRegistry) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        names = ("arbor_market_events_total", "arbor_decode_failures_total", "arbor_fills_total")
        return {(s.name, tuple(sorted(s.labels.items()))): s.value for fam in reg.collect() for s in fam.samples
                if s.name in names or (s.name == "arbor_orders_total" and s.labels.get("status") == "placed")}

    one, many = samples(registry), samples(cluster)
    assert any(k[0] == "arbor_orders_total" and v >= 2 for k, v in one.items())
    assert {k: v for k, v in many.items() if v} == {k: v for k, v in one.items() if v}
    c.close()


def test_the_view_shows_the_same_counters_over_either_source(tmp_path: Path) -> None:
    """``/api/state`` symbols and decision cycles: equal whether read in-process or from status files."""
    c, facts, probe, coord = _run(tmp_path)
    symbols = tuple(s.symbol for s in c.settings.symbols)
    single = ClusterView(RuntimeSource(c.runtime, c.board, facts, symbols))  # type: ignore[arg-type]  # reads only board and facts
    view = ClusterView(_place(c, probe, tmp_path / "multi", coord))
    one, many = single.state(), view.state()
    assert one["decision_cycles"] == many["decision_cycles"] and one["decision_cycles"] > 0
    assert one["last_decision"] == many["last_decision"] is not None
    for s in symbols:
        assert {k: one["symbols"][s][k] for k in COUNTERS} == {k: many["symbols"][s][k] for k in COUNTERS}, s
    c.close()


def test_the_event_stream_is_the_same_in_both_modes(tmp_path: Path) -> None:
    """The operator events of one run, made in one process (``EventStream`` on the runtime) and across
    processes (each node's probe writes its ``EventStream``'s events, the follower publishes them),
    are the same events: one translation from traffic to events."""
    one_hub = EventHub(backlog=100_000)
    events = tmp_path / "events"
    events.mkdir()
    follower_hub = EventHub(backlog=100_000)
    # In the simulated cluster both probes see all the traffic (a real node sees its own share), so
    # each node's file alone must carry every event the one process streams.
    follower = EventFollower(events, ("worker",), follower_hub)
    coord_hub = EventHub(backlog=100_000)
    coord_follower = EventFollower(events, ("coordinator",), coord_hub)
    probe = WorkerProbe(tuple(s.symbol for s in load_settings(FAST).symbols), EventFile(events / "worker.jsonl"), 1)
    coord = CoordinatorEvents(tmp_path, EventFile(events / "coordinator.jsonl"))
    c = SimulatedCluster(load_settings(FAST), var_dir=tmp_path / "var",
                         observers=(EventStream(one_hub), probe, coord))
    for _ in range(300):
        c.run_for(1)
        if sum(r["fills"] for r in probe.rows.values()) >= 2:
            break
    c.runtime.send_now("risk", EngageKillSwitch(who="tester", reason="drill"))  # the Coordinator's events too
    c.run_for(1)
    probe.flush()
    coord.flush()
    follower.poll()
    coord_follower.poll()
    one, many = one_hub.recent(), follower_hub.recent()
    assert {e["type"] for e in one} >= {"order", "fill", "kill_switch", "risk_denied"}
    key = lambda e: (e["type"], e["ts"], e["message"])  # noqa: E731
    assert sorted(map(key, many)) == sorted(map(key, one))
    assert sorted(map(key, coord_hub.recent())) == sorted(map(key, one))
    c.close()
