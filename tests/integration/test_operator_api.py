"""The operator API on a real ThreadedRuntime cluster (simulated venue, paced feed), bound to 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from arbor.actors.cluster.build import build_actors, market_frames, market_venue, supervisor_for
from arbor.actors.cluster.observers import SummaryBoard
from arbor.actors.runtime import HandlerClock, ThreadedRuntime
from arbor.actors.testing import eventually
from arbor.adapters.operator import (
    EventHub,
    EventStream,
    OperatorConfigError,
    OperatorServer,
    OperatorSurface,
    Webhook,
    token_from_env,
)
from arbor.adapters.operator.local import ClusterFacts, RuntimeSource
from arbor.adapters.operator.metric_schema import SINGLE
from arbor.adapters.operator.view import ClusterView
from arbor.config.settings import load_settings
from arbor.messages import Envelope, KillSwitchEngaged, ReleaseSymbol, SetTradingState
from prometheus_client import CollectorRegistry

from tests.http_helpers import call_json, get_ok
from tests.metrics_helpers import families_by_schema

TOKEN = "test-operator-token-0123456789"
# Small windows and fast decisions so a paced simulated market trades within seconds.
FAST = {
    "run": {"tick_interval_ms": 20},
    "feature": {"bucket_ms": 200, "min_samples": 5, "short_window": 3, "long_window": 10},
    "regime": {"decision_interval_ms": 200, "confirm_cycles": 2},
    "risk": {"max_orders_per_window": 1000},
}


class Cluster:
    def __init__(self, surface: OperatorSurface, runtime: ThreadedRuntime, url: str, journal: list[Envelope],
                 symbols: tuple[str, ...], actor_ids: list[str]) -> None:
        self.surface, self.runtime, self.url, self.journal = surface, runtime, url, journal
        self.symbols, self.actor_ids = symbols, actor_ids


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    settings = load_settings(FAST)
    clock = HandlerClock()
    symbols = tuple(s.symbol for s in settings.symbols)
    journal: list[Envelope] = []
    surface = OperatorSurface(symbols, clock, tmp_path_factory.mktemp("var"), TOKEN, port=0,
                              cycle_interval_s=0.2, journal=journal.append)
    board = SummaryBoard(symbols)
    actors = build_actors(settings, clock, "op-test")
    runtime = ThreadedRuntime(actors, clock, observers=(board, *surface.observers), tick_interval_s=0.02,
                              supervise=supervisor_for(settings, clock, "op-test"))
    runtime.start()
    try:
        url = surface.start(runtime, board)
        runtime.feed(market_frames(settings, clock.now_ns()), market_venue(settings), paced=True)
        yield Cluster(surface, runtime, url, journal, symbols, sorted(actors))
    finally:
        surface.stop()
        runtime.stop(timeout=4.0)


def call(c: Cluster, method: str, path: str, body: Any = None, token: str | None = TOKEN) -> tuple[int, Any]:
    return call_json(c.url + path, method, body, token, timeout=5)


def get(c: Cluster, path: str) -> Any:
    return get_ok(c.url + path, TOKEN, timeout=5)


def test_healthz_is_open_and_everything_else_needs_the_token(cluster: Cluster) -> None:
    """GET /healthz answers without a token; API, metrics and commands answer 401 without or with a wrong one."""
    assert call(cluster, "GET", "/healthz", token=None) == (200, {"ok": True})
    for method, path in (("GET", "/api/state"), ("GET", "/api/positions"), ("GET", "/api/risk/status"),
                         ("GET", "/api/tree"), ("GET", "/metrics"), ("POST", "/api/kill"), ("POST", "/api/pause")):
        assert call(cluster, method, path, token=None)[0] == 401, path
        assert call(cluster, method, path, token="wrong-token-wrong-token")[0] == 401, path


def test_server_refuses_to_start_without_a_token() -> None:
    """No token configured: a clear error naming ARBOR_OPERATOR_TOKEN, and nothing listens."""
    with pytest.raises(OperatorConfigError, match="ARBOR_OPERATOR_TOKEN"):
        token_from_env({})
    with pytest.raises(OperatorConfigError, match="ARBOR_OPERATOR_TOKEN"):
        OperatorServer(None, EventHub(), CollectorRegistry(), None)  # type: ignore[arg-type]  # the token check comes first
    with pytest.raises(OperatorConfigError):
        OperatorSurface(("BTCUSDT",), HandlerClock(), Path("."), "")
    assert token_from_env({"ARBOR_OPERATOR_TOKEN": TOKEN}) == TOKEN


def test_binds_localhost_by_default(cluster: Cluster) -> None:
    """The server listens on 127.0.0.1 unless told otherwise."""
    assert cluster.url.startswith("http://127.0.0.1:")


def test_state_reports_a_running_cluster(cluster: Cluster) -> None:
    """/api/state: running, its stage, cycles advancing, every symbol with trading state and regime."""
    eventually(lambda: get(cluster, "/api/state")["cycle_count"] >= 2, timeout=10)
    state = get(cluster, "/api/state")
    assert state["stage"] == "running" and state["status"] in ("running", "paused")
    assert set(state["symbols"]) == set(cluster.symbols)
    assert all({"state", "regime", "position"} <= set(r) for r in state["symbols"].values())
    assert state["uptime_s"] > 0 and state["last_cycle"].endswith("Z")


def test_positions_follow_the_board(cluster: Cluster) -> None:
    """/api/positions lists open positions sorted by symbol, qty signed by side, weights summing to one."""
    def some_open() -> bool:
        return bool(get(cluster, "/api/positions")["positions"])

    eventually(some_open, timeout=30, interval=0.1)
    body = get(cluster, "/api/positions")
    rows = body["positions"]
    if not rows:  # closed again between the two reads; the shape is still checked
        return
    assert [r["symbol"] for r in rows] == sorted(r["symbol"] for r in rows)
    for r in rows:
        assert (float(r["qty"]) > 0) == (r["side"] == "LONG")
        assert r["entry_time"] is None or r["entry_time"].endswith("Z")
    assert abs(sum(float(r["weight"]) for r in rows) - 1) < 1e-9
    assert body["totals"]["long"] + body["totals"]["short"] == len(rows)


def test_risk_status_is_read_on_the_coordinator(cluster: Cluster) -> None:
    """/api/risk/status is RiskLogic.status(): equity, limits, kill switch, per-symbol states."""
    status = get(cluster, "/api/risk/status")
    assert {"equity", "drawdown_pct", "kill_switch", "symbols", "gross_exposure"} <= set(status)
    assert set(status["symbols"]) == set(cluster.symbols)


def test_tree_lists_every_actor_with_mailbox_depth(cluster: Cluster) -> None:
    """/api/tree names every actor of the cluster, grouped as placed, each with state, health and mailbox."""
    tree = get(cluster, "/api/tree")
    seen = {a["id"]: a for g in tree["groups"] for a in g["actors"]}
    assert set(cluster.actor_ids) <= set(seen)
    assert all(isinstance(seen[a]["mailbox"], int) and seen[a]["health"] in ("ok", "degraded", "down")
               for a in cluster.actor_ids)
    assert {g["group"] for g in tree["groups"]} == {"coordinator", *cluster.symbols}


def test_reset_needs_a_reason(cluster: Cluster) -> None:
    """POST /api/reset without a reason is 400 and sends nothing."""
    before = len(cluster.journal)
    assert call(cluster, "POST", "/api/reset", {})[0] == 400
    assert call(cluster, "POST", "/api/reset", {"reason": "   "})[0] == 400
    assert len(cluster.journal) == before


def test_pause_and_resume_a_symbol_are_journaled(cluster: Cluster) -> None:
    """Pause sets the symbol REDUCING, resume ACTIVE; each command is journaled with who and why."""
    sym = cluster.symbols[1]
    status, body = call(cluster, "POST", "/api/pause", {"symbol": sym, "reason": "maintenance", "who": "alice"})
    assert status == 200 and body["sent"][0]["receiver"] == "risk"
    eventually(lambda: get(cluster, "/api/state")["symbols"][sym]["state"] == "REDUCING", timeout=5)
    assert sym not in get(cluster, "/api/state")["active_symbols"]
    env = cluster.journal[-1]
    assert env.payload == SetTradingState(scope=sym, state=env.payload.state, who="alice", reason="maintenance")
    assert env.sender == "operator:alice" and env.receiver == "risk"
    call(cluster, "POST", "/api/resume", {"symbol": sym, "reason": "done", "who": "alice"})
    eventually(lambda: get(cluster, "/api/state")["symbols"][sym]["state"] == "ACTIVE", timeout=5)


def test_unknown_symbol_is_rejected(cluster: Cluster) -> None:
    """A command for a symbol the cluster does not trade is 400."""
    assert call(cluster, "POST", "/api/pause", {"symbol": "NOPEUSDT"})[0] == 400
    assert call(cluster, "POST", "/api/flatten", {})[0] == 400


def test_kill_then_reset(cluster: Cluster) -> None:
    """Kill engages Risk's kill switch (status paused); a reset with a reason releases it."""
    assert call(cluster, "POST", "/api/kill", {"reason": "drill"})[0] == 200
    eventually(lambda: get(cluster, "/api/risk/status")["kill_switch"]["engaged"], timeout=5)
    eventually(lambda: get(cluster, "/api/state")["status"] == "paused", timeout=5)
    assert call(cluster, "POST", "/api/reset", {"reason": "drill over"})[0] == 200
    eventually(lambda: not get(cluster, "/api/risk/status")["kill_switch"]["engaged"], timeout=5)


def test_release_goes_to_the_symbol_supervisor(cluster: Cluster) -> None:
    """POST /api/release sends ReleaseSymbol to "<symbol>/supervisor" and journals it."""
    sym = cluster.symbols[0]
    status, body = call(cluster, "POST", "/api/release", {"symbol": sym, "reason": "fixed feed"})
    assert status == 200 and body["sent"] == [{"msg_id": body["sent"][0]["msg_id"], "receiver": f"{sym}/supervisor",
                                               "message": "ReleaseSymbol.v1"}]
    assert isinstance(cluster.journal[-1].payload, ReleaseSymbol)


def test_flatten_exits_an_open_position(cluster: Cluster) -> None:
    """Flatten sets the symbol REDUCING and exits what it holds: the position ends FLAT."""
    def open_symbol() -> str | None:
        rows = get(cluster, "/api/positions")["positions"]
        return rows[0]["symbol"] if rows else None

    eventually(lambda: open_symbol() is not None, timeout=30, interval=0.05)
    sym = open_symbol() or cluster.symbols[0]
    status, body = call(cluster, "POST", "/api/flatten", {"symbol": sym, "reason": "test"})
    assert status == 200 and body["sent"][0]["message"] == "SetTradingState.v1"
    eventually(lambda: get(cluster, "/api/state")["symbols"][sym]["state"] == "REDUCING", timeout=5)
    eventually(lambda: get(cluster, "/api/state")["symbols"][sym]["position"] == "FLAT", timeout=10)
    call(cluster, "POST", "/api/resume", {"symbol": sym, "reason": "test over"})


def test_metrics_parse_and_follow_the_schema(cluster: Cluster) -> None:
    """/metrics is Prometheus text that parses and serves exactly the one-process families of the metric schema."""
    eventually(lambda: "arbor_mailbox_depth_messages{" in call(cluster, "GET", "/metrics")[1], timeout=10)
    status, text = call(cluster, "GET", "/metrics")
    families = families_by_schema(text, SINGLE)  # every family of the schema, with its labels, and no other
    assert {s.labels["symbol"] for s in families["arbor_symbol_up"].samples} == set(cluster.symbols)
    assert {s.labels["symbol"] for s in families["arbor_position_open"].samples} == set(cluster.symbols)


def test_websocket_streams_events_and_needs_the_token(cluster: Cluster) -> None:
    """/ws/events refuses a client without the token and streams a trading-state event to one with it."""
    sym = cluster.symbols[2]

    async def run() -> dict[str, Any]:
        async with aiohttp.ClientSession() as session:
            with pytest.raises(aiohttp.WSServerHandshakeError) as denied:
                await session.ws_connect(cluster.url + "/ws/events")
            assert denied.value.status == 401
            async with session.ws_connect(cluster.url + "/ws/events?backlog=0",
                                          protocols=("arbor.bearer", TOKEN)) as ws:
                await asyncio.get_running_loop().run_in_executor(
                    None, lambda: call(cluster, "POST", "/api/pause", {"symbol": sym, "reason": "ws test"}))
                deadline = time.monotonic() + 10
                while time.monotonic() < deadline:
                    msg = await ws.receive(timeout=deadline - time.monotonic())
                    ev = json.loads(msg.data)
                    if ev["type"] == "trading_state" and ev["data"]["scope"] == sym:
                        return ev
                raise AssertionError("no trading_state event")

    ev = asyncio.run(run())
    assert ev["data"]["new"] == "REDUCING" and ev["ts"].endswith("Z") and ev["severity"] == "warning"
    call(cluster, "POST", "/api/resume", {"symbol": sym, "reason": "ws test over"})


def test_liveness_files_are_written_each_cycle(cluster: Cluster) -> None:
    """The engine cycle writes heartbeat.json and a run.jsonl line with engine_status and errors_this_cycle."""
    files = cluster.surface.cycle.files
    eventually(lambda: files.heartbeat_path.exists() and len(files.run_log_path.read_text().splitlines()) >= 2,
               timeout=10)
    line = json.loads(files.run_log_path.read_text().splitlines()[-1])
    assert line["engine_status"] in ("ok", "degraded") and isinstance(line["errors_this_cycle"], int)


def test_slow_client_drops_oldest_and_is_told() -> None:
    """A client that does not read keeps only the newest events and gets a dropped count; publishing never waits."""
    hub = EventHub(client_queue=5, backlog=0)

    async def run() -> list[dict[str, Any]]:
        hub.attach(asyncio.get_running_loop())
        client = hub.subscribe()
        t0 = time.monotonic()
        def publish() -> None:
            for i in range(1000):
                hub.publish({"type": "t", "n": i})

        publisher = threading.Thread(target=publish)
        publisher.start()
        publisher.join(5)
        assert time.monotonic() - t0 < 2
        while hub.published < 1000:
            await asyncio.sleep(0)
        for _ in range(5):
            await asyncio.sleep(0)  # let the queued fan-outs run
        return await asyncio.wait_for(client.get_batch(), 2)

    batch = asyncio.run(run())
    assert batch[0]["type"] == "dropped" and batch[0]["count"] == 995
    assert [e["n"] for e in batch[1:]] == [995, 996, 997, 998, 999]


def test_alert_is_posted_to_the_webhook() -> None:
    """An alert (kill switch engaged) is POSTed as JSON to the configured webhook."""
    async def run() -> dict[str, Any]:
        got: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

        async def receive(request: web.Request) -> web.Response:
            await got.put(await request.json())
            return web.Response(status=204)

        app = web.Application()
        app.router.add_post("/hook", receive)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        host, port = runner.addresses[0][:2]
        webhook = Webhook(f"http://{host}:{port}/hook")
        await webhook.open()
        hub = EventHub()
        hub.attach(asyncio.get_running_loop(), on_alert=webhook)
        stream = EventStream(hub)
        env = Envelope(msg_id=1, sender="risk", receiver="", ts_event_ns=1_723_161_600_000_000_000,
                       ts_recv_ns=0, causation_id=0, payload=KillSwitchEngaged(who="risk", reason="drawdown: 5%",
                                                                               ts_event_ns=1_723_161_600_000_000_000))
        threading.Thread(target=stream.emitted, args=(env, ())).start()  # as from a group thread
        first = await asyncio.wait_for(got.get(), 5)
        second = await asyncio.wait_for(got.get(), 5)
        await webhook.close()
        await runner.cleanup()
        return {first["type"]: first, second["type"]: second}

    posted = asyncio.run(run())
    assert posted["kill_switch"]["severity"] == "critical" and posted["kill_switch"]["alert"] is True
    assert posted["loss_limit"]["data"]["limit"] == "drawdown"


def test_stop_returns_within_two_seconds_with_a_client_connected() -> None:
    """stop() closes an open websocket and returns within 2 s."""
    class Idle:
        def groups(self) -> list[str]:
            return []

    hub = EventHub()
    server = OperatorServer(ClusterView(RuntimeSource(Idle(), SummaryBoard(()), ClusterFacts(), ())), hub,  # type: ignore[arg-type]  # Idle stands in for a runtime
                            CollectorRegistry(), TOKEN, port=0)
    url = server.start()
    connected = threading.Event()
    closed = threading.Event()

    async def client() -> None:
        async with (
            aiohttp.ClientSession() as session,
            session.ws_connect(url + "/ws/events", headers={"Authorization": f"Bearer {TOKEN}"}) as ws,
        ):
            connected.set()
            await ws.receive(timeout=10)
        closed.set()

    t = threading.Thread(target=lambda: asyncio.run(client()))
    t.start()
    assert connected.wait(5)
    t0 = time.monotonic()
    server.stop()
    assert time.monotonic() - t0 < 2.0
    t.join(5)
    assert closed.is_set()
