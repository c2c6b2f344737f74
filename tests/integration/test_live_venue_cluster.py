"""The live cluster on real venues' wire formats: Binance market data and order entry on local fakes."""

from __future__ import annotations

import asyncio
import json
import sys
import threading
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from arbor.actors.cluster.live import LiveCluster
from arbor.actors.testing import eventually
from arbor.adapters.credentials import BINANCE_API_KEY, BINANCE_API_SECRET, BinanceCredentials
from arbor.adapters.recorded import read_hbt
from arbor.adapters.testing import FakeBinanceServer
from arbor.adapters.testing.binance_rest_server import BinanceRestServer, Fault
from arbor.config.settings import load_settings
from arbor.messages import (
    Action,
    ActionApproved,
    DecodeFailure,
    Direction,
    MandateKind,
    MandateSet,
    PlaceOrder,
    PositionChanged,
    RawMarketEvent,
    TradingState,
    TradingStateChanged,
)
from loguru import logger

FRAMES = 3000
STREAMS = ["depth@0ms", "trade", "bookTicker"]
API_KEY = "test-api-key-7f3a9c21e4b8d6"
API_SECRET = "test-api-secret-91c4e7a2b5d8f03e6a1c"


@pytest.fixture(scope="module")
def recording(shared_data: Path) -> tuple[list[bytes], dict]:
    """The first FRAMES enveloped frames of the BTCUSDT recording and its REST snapshot."""
    frames, snapshot = [], None
    for _, _, raw in read_hbt(shared_data / "binance_usdm/usdm_btcusdt_20240808.gz"):
        if raw.startswith(b'{"stream"'):
            frames.append(raw)
        else:
            snapshot = json.loads(raw)
        if len(frames) == FRAMES and snapshot is not None:
            return frames, snapshot
    raise AssertionError("recording too short")


class LoopThread:
    """An asyncio loop on a thread for the fake venues; ``call(coro_fn)`` runs on it and waits."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="test-venues", daemon=True)
        self.thread.start()

    def call(self, fn: Callable[[], Any], timeout: float = 10.0) -> Any:
        async def run() -> Any:
            result = fn()
            return await result if asyncio.iscoroutine(result) else result
        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


class Watch:
    """Counts what the cluster emits (thread-safe enough: one lock)."""

    wants_inputs = False

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.events = 0
        self.failures = 0
        self.mandates = 0
        self.states: list[TradingStateChanged] = []
        self.places: list[PlaceOrder] = []
        self.open_qtys: list[Decimal] = []

    def external(self, env: Any) -> None:
        pass

    def processed(self, actor_id: str, env: Any, now_ns: int) -> None:
        pass

    def emitted(self, env: Any, receivers: tuple[str, ...]) -> None:
        m = env.payload
        with self.lock:
            if type(m) is RawMarketEvent:
                self.events += m.part == 0
            elif type(m) is DecodeFailure:
                self.failures += 1
            elif type(m) is MandateSet:
                self.mandates += 1
            elif type(m) is TradingStateChanged:
                self.states.append(m)
            elif type(m) is PlaceOrder:
                self.places.append(m)
            elif type(m) is PositionChanged:
                self.open_qtys.append(m.qty)

    def places_open(self, rest: BinanceRestServer) -> bool:
        """Some order we placed has no final record at the venue yet."""
        with self.lock:
            coids = [p.client_order_id for p in self.places]
        return any(c not in rest.orders or rest.orders[c].is_open for c in coids) and bool(rest.orders)


class _Clock:
    def now_ns(self) -> int:
        return time.time_ns()


@pytest.fixture
def venues(recording):
    """A fake Binance market server replaying the recording, and a fake order-entry venue, on a loop thread."""
    frames, snapshot = recording
    lt = LoopThread()
    market = lt.call(lambda: FakeBinanceServer(frames, {"BTCUSDT": snapshot}, pace_s=0.0).start())
    rest = BinanceRestServer(BinanceCredentials(API_KEY, API_SECRET), _Clock(), {"BTCUSDT": Decimal("60000")})
    lt.call(rest.start)
    try:
        yield lt, market, rest
    finally:
        lt.call(market.close)
        lt.call(rest.close)
        lt.close()


def settings_for(server: FakeBinanceServer, var_dir: Path, **over: Any):
    run = {"mode": "paper", "tick_interval_ms": 50, "var_dir": str(var_dir), **over.pop("run", {})}
    return load_settings({
        "run": run,
        "market": {"source": "binance_usdm", "ws_url": server.ws_url, "rest_url": server.http_url,
                   "streams": STREAMS, **over.pop("market", {})},
        # A short not-found grace: the fake venue answers at once and never delivers an order late.
        "executor": {"ack_timeout_ms": 300, "query_interval_ms": 300, "not_found_grace_ms": 1500},
        "symbols": [{"symbol": "BTCUSDT", "venue": "binance_usdm", "strategy": "trend_following"}],
        **over,
    })


def running(settings, watch: Watch) -> LiveCluster:
    cluster = LiveCluster(settings, "test-run", observers=(watch,))
    cluster.start()
    return cluster


def risk_scope(cluster: LiveCluster, symbol: str) -> tuple[TradingState, str]:
    def read(d):
        rec = d.actors["risk"].controls.scopes[symbol]
        return rec.state, rec.who
    return cluster.runtime.ask("coordinator", read)


def test_paper_cluster_on_streamed_binance_data(venues, tmp_path):
    """Real recorded frames over the websocket reach the collectors undamaged and the strategy decides."""
    lt, market, _ = venues
    watch = Watch()
    cluster = running(settings_for(market, tmp_path / "var"), watch)
    try:
        eventually(lambda: market.finished.is_set(), timeout=30)
        # every frame sent plus the REST depth snapshot becomes a market event
        eventually(lambda: watch.events >= market.stats["frames_sent"] + 1, timeout=30)
        collector = cluster.runtime.ask("BTCUSDT", lambda d: d.actors["BTCUSDT/collector"].stats())
        assert watch.failures == 0
        assert collector["frames"] == market.stats["frames_sent"] + cluster.venues.feed.stats["snapshots_fetched"]
        assert watch.mandates > 0
        assert cluster.venues.feed.stats["book_syncs"] >= 1
        assert risk_scope(cluster, "BTCUSDT")[0] is TradingState.ACTIVE
    finally:
        cluster.stop()
    assert not cluster.runtime.alive_threads()


def test_gap_and_stall_move_the_symbol_to_reducing_and_back(venues, tmp_path):
    """A depth gap and a stalled feed each put BTCUSDT to REDUCING (who=feed) at Risk, and resync brings it back."""
    lt, market, _ = venues
    market.at_frame(600, market.inject_gap)
    market.at_frame(1500, market.stall)
    watch = Watch()
    cluster = running(settings_for(market, tmp_path / "var", market={"stale_after_s": 0.4}), watch)

    def states(reason: str) -> list[TradingState]:
        return [s.new for s in watch.states if s.scope == "BTCUSDT" and s.who == "feed"
                and (s.reason == reason or s.new is TradingState.ACTIVE)]

    try:
        eventually(lambda: states("book_desync")[:2] == [TradingState.REDUCING, TradingState.ACTIVE], timeout=20)
        eventually(lambda: any(s.reason == "stale_feed" for s in watch.states), timeout=20)
        assert risk_scope(cluster, "BTCUSDT") == (TradingState.REDUCING, "feed")
        lt.call(market.resume)
        eventually(lambda: risk_scope(cluster, "BTCUSDT")[0] is TradingState.ACTIVE, timeout=20)
        eventually(lambda: market.finished.is_set(), timeout=30)
        stats = cluster.venues.feed.stats
        assert stats["book_gaps"] >= 1 and stats["stale"] >= 1
        assert stats["disconnects"] >= 1 and stats["resubscribes"] >= 1
        assert watch.failures == 0
    finally:
        cluster.stop()


def _approve(cluster: LiveCluster, qty: str) -> None:
    now = time.time_ns()
    action = Action(action_id="test-entry-1", symbol="BTCUSDT", cycle=1, kind=MandateKind.ENTRY,
                    direction=Direction.LONG, qty=Decimal(qty), mark_price=Decimal("60000"), data_ts_ns=now,
                    ts_event_ns=now, reason="test")
    cluster.send("BTCUSDT/position", ActionApproved(symbol="BTCUSDT", action=action, ts_event_ns=now))


def position(cluster: LiveCluster) -> dict:
    return cluster.runtime.ask("BTCUSDT", lambda d: d.actors["BTCUSDT/position"].stats())


@pytest.mark.parametrize("fault", [None, "503", "hang", "503_processed", "hang_processed"])
def test_live_order_entry_against_the_binance_rest_venue(venues, monkeypatch, tmp_path, fault):
    """Live: our client order id reaches the venue once, fills and the position matches; lost answers are queried."""
    from arbor.actors.cluster.logs import configure_logging

    lt, market, rest = venues
    monkeypatch.setenv(BINANCE_API_KEY, API_KEY)
    monkeypatch.setenv(BINANCE_API_SECRET, API_SECRET)
    if fault == "503":
        rest.fail_next("POST", "/fapi/v1/order", Fault.http(503))
    elif fault == "503_processed":
        rest.fail_next("POST", "/fapi/v1/order", Fault.http(503, process=True))
    elif fault == "hang":
        rest.fail_next("POST", "/fapi/v1/order", Fault.hang())
    elif fault == "hang_processed":
        rest.fail_next("POST", "/fapi/v1/order", Fault.hang(process=True))
    settings = settings_for(market, tmp_path / "var", run={"mode": "live", "live_enabled": True, "venue_rest_url": rest.base_url,
                                         "venue_ws_url": rest.base_url, "venue_timeout_s": 0.5})
    sink = configure_logging(tmp_path / "logs", "DEBUG", console_level=None)
    watch = Watch()
    cluster = running(settings, watch)
    try:
        eventually(lambda: rest.user_stream_connections == 1, timeout=10)
        _approve(cluster, "0.010")
        eventually(lambda: len(watch.places) == 1, timeout=10)
        coid = watch.places[0].client_order_id
        def entry_posts() -> list[dict]:
            return [q for m, p, q in rest.requests if (m, p) == ("POST", "/fapi/v1/order")
                    and q.get("newClientOrderId") == coid]
        eventually(lambda: len(entry_posts()) == 1, timeout=10)
        if fault in ("503", "hang"):  # not processed: the query by client order id finds nothing, nothing re-sent
            eventually(lambda: position(cluster)["state"] == "FLAT" and rest.count("GET", "/fapi/v1/order") >= 1,
                       timeout=10)
            assert rest.orders == {}
        else:
            eventually(lambda: rest.orders.get(coid) is not None and rest.orders[coid].status == "FILLED", timeout=10)
            # processed: the fill (user-data stream, or the query's record) reaches the position
            eventually(lambda: Decimal("0.010") in watch.open_qtys, timeout=10)
        # the strategy may exit the position at once; whatever it did, the venue and we agree
        # (and every order placed reached the venue exactly once)
        eventually(lambda: not watch.places_open(rest) and len(watch.places) == rest.count("POST", "/fapi/v1/order")
                   and position(cluster)["qty"] == abs(rest.positions.get("BTCUSDT", (Decimal(0), 0))[0]), timeout=10)
        assert len(entry_posts()) == 1  # never a second order for the entry
    finally:
        cluster.stop()
        sink.close()
        logger.remove()
        logger.add(sys.stderr, level="WARNING")
    text = (tmp_path / "logs" / "arbor.jsonl").read_text()
    assert "LIVE trading" in text
    assert API_SECRET not in text and API_KEY not in text


def _write_config(tmp_path: Path, run: str) -> Path:
    cfg = tmp_path / "live.toml"
    cfg.write_text(f"[run]\nmode = \"live\"\n{run}\nvar_dir = \"{tmp_path / 'var'}\"\n")
    return cfg


def test_live_without_enable_flag_is_a_config_error(tmp_path, capsys, monkeypatch):
    """run.mode = live without run.live_enabled exits 2 naming the key."""
    from arbor.actors.cluster.main import main

    monkeypatch.setenv(BINANCE_API_KEY, API_KEY)
    monkeypatch.setenv(BINANCE_API_SECRET, API_SECRET)
    code = main(["--config", str(_write_config(tmp_path, "")), "--quiet", "--duration", "1"])
    err = capsys.readouterr().err
    assert code == 2
    assert "run.live_enabled" in err and API_SECRET not in err


@pytest.mark.parametrize("missing", [BINANCE_API_KEY, BINANCE_API_SECRET])
def test_live_without_credentials_is_a_config_error(tmp_path, capsys, monkeypatch, missing):
    """Live with live_enabled but a credential variable unset exits 2 naming the variable."""
    from arbor.actors.cluster.main import main

    monkeypatch.setenv(BINANCE_API_KEY, API_KEY)
    monkeypatch.setenv(BINANCE_API_SECRET, API_SECRET)
    monkeypatch.delenv(missing)
    code = main(["--config", str(_write_config(tmp_path, "live_enabled = true")), "--quiet", "--duration", "1"])
    err = capsys.readouterr().err
    assert code == 2
    assert missing in err and "configuration error" in err
    assert API_SECRET not in err and API_KEY not in err
