"""The Hyperliquid market-data stream client against the local fake websocket replaying real recorded messages."""

from __future__ import annotations

import asyncio
import itertools
import json
import socket
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from arbor.actors.cluster.live import LiveCluster
from arbor.actors.collector import CollectorLogic
from arbor.actors.testing import ManualClock, eventually, handled, make_ctx
from arbor.actors.testing import until as _until
from arbor.adapters.hyperliquid import make_hyperliquid_decoder
from arbor.adapters.hyperliquid.stream import HyperliquidMarketStream, HyperliquidStreamConfig
from arbor.adapters.testing.hyperliquid_ws_server import FakeHyperliquidWsServer, frame_key, recorded_frames
from arbor.adapters.venues.reconnect import StreamStatus
from arbor.config.settings import load_settings
from arbor.messages import DecodeFailure, RawMarketEvent
from arbor.messages.market import VenuePayload

COINS = ("BTC", "DYDX", "ARB")  # the coins with recorded trades, book/bbo and contexts between them
ROUNDS = 30
CHANNELS = ("trades", "l2Book", "bbo", "activeAssetCtx", "allMids")
SUBSCRIPTIONS = 4 * len(COINS) + 1


@pytest.fixture(scope="module")
def replay(shared_data: Path) -> list[bytes]:
    """The recorded frames of COINS (and allMids), replayed ROUNDS times."""
    frames = [f for f in recorded_frames(shared_data / "hyperliquid") if frame_key(f)[1] in (None, *COINS)]
    assert {frame_key(f)[0] for f in frames} == {"allMids", "l2Book", "bbo", "activeAssetCtx", "trades"}
    return frames * ROUNDS


def expected_calls(frames: list[bytes], sent: list[int]) -> list[tuple[str | None, bytes]]:
    """(symbol, payload) the client must hand on for the frames the server sent: allMids to every coin, a repeated trades frame not at all."""
    out: list[tuple[str | None, bytes]] = []
    seen_trades: set[bytes] = set()
    for i in sent:
        channel, coin = frame_key(frames[i])
        if channel == "allMids":
            out += [(c, frames[i]) for c in COINS]
        elif channel == "trades":
            if frames[i] not in seen_trades:
                seen_trades.add(frames[i])
                out.append((coin, frames[i]))
        else:
            out.append((coin, frames[i]))
    return out


class Run:
    """One client against one server: what the client handed on, its statuses, and the sleeps it asked for."""

    def __init__(self, server: FakeHyperliquidWsServer, frames: list[bytes], garbage: Sequence[bytes] = (), **overrides: Any) -> None:
        self.frames: list[tuple[str | None, bytes]] = []
        self.statuses: list[StreamStatus] = []
        self.sleeps: list[float] = []
        self.server, self.source, self.garbage = server, frames, list(garbage)
        config = HyperliquidStreamConfig(symbols=COINS, channels=CHANNELS, ws_base=server.ws_url, backoff_initial_s=0.01,
                                         backoff_max_s=0.05, **overrides)
        self.stream = HyperliquidMarketStream(config, lambda ts, s, p: self.frames.append((s, p)),
                                              on_status=self.statuses.append, clock=itertools.count(1).__next__,
                                              sleep=self._sleep)

    async def _sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)  # recorded, not waited: backoff is checked by value
        await asyncio.sleep(0)

    @property
    def market_frames(self) -> list[tuple[str | None, bytes]]:
        return [(s, p) for s, p in self.frames if p not in self.garbage]

    def caught_up(self) -> bool:
        return (self.server.finished.is_set()
                and len(self.market_frames) >= len(expected_calls(self.source, self.server.sent)))




async def drive(frames: list[bytes], arrange=lambda server: None, *, act=None, garbage=(), idle_timeout_s=60.0,
                **overrides: Any) -> Run:
    """Serve ``frames`` with faults from ``arrange(server)``; run the client until it has everything sent."""
    async with FakeHyperliquidWsServer(frames, pace_s=0.001, idle_timeout_s=idle_timeout_s) as server:
        arrange(server)
        run = Run(server, frames, garbage, **overrides)
        task = asyncio.create_task(run.stream.run())
        try:
            if act is not None:
                await act(run)
            await until(run.caught_up)
        finally:
            run.stream.stop()
            await asyncio.wait_for(task, timeout=5)
    return run


def collect(frames: list[tuple[str | None, bytes]]) -> tuple[list[RawMarketEvent], list[DecodeFailure]]:
    """Every handed-on frame through its coin's CollectorLogic (unroutable ones through the first coin's)."""
    clock = ManualClock(0)
    collectors = {c: CollectorLogic(make_ctx(f"{c}/collector", c, clock), make_hyperliquid_decoder(c)) for c in COINS}
    events: list[RawMarketEvent] = []
    failures: list[DecodeFailure] = []
    for symbol, payload in frames:
        coin = symbol or COINS[0]
        for msg in handled(collectors[coin], VenuePayload(venue="hyperliquid", symbol=coin, payload=payload)):
            (failures if isinstance(msg, DecodeFailure) else events).append(msg)
    return events, failures


def tids(frames: list[tuple[str | None, bytes]]) -> list[int]:
    return [t["tid"] for _, p in frames if frame_key(p)[0] == "trades" for t in json.loads(p)["data"]]


def test_every_replayed_frame_arrives_exactly_and_decodes(replay):
    """Each frame the server pushes reaches the callback byte for byte, routed to its coin, and decodes with no DecodeFailure."""
    run = asyncio.run(drive(replay))
    assert run.frames == expected_calls(replay, run.server.sent)
    assert len(run.server.sent) == len(replay)
    events, failures = collect(run.frames)
    assert failures == []
    kinds = {(e.symbol, e.kind.value.lower()) for e in events}
    assert {("BTC", "trade"), ("DYDX", "snapshot"), ("DYDX", "quote"), ("ARB", "mark"), ("BTC", "mark")} <= kinds
    s = run.stream.stats
    assert s["subscription_acks"] == s["subscriptions_sent"] == SUBSCRIPTIONS
    assert s["unparsed_frames"] == 0 and s["disconnects"] == 0
    trade_frames = sum(frame_key(f)[0] == "trades" for f in replay) // ROUNDS
    assert s["duplicates_dropped"] == (ROUNDS - 1) * trade_frames  # the replay repeats each trades frame


def test_reconnect_resubscribes_and_keeps_delivering(replay):
    """A server disconnect: the client reconnects with backoff, subscribes again, drops the recent-trades repeat, loses nothing."""
    def arrange(server):
        server.at_frame(len(replay) // 2, server.disconnect)

    run = asyncio.run(drive(replay, arrange))
    s = run.stream.stats
    assert s["disconnects"] == 1 and s["reconnects"] == 1 and s["resubscribes"] == 1
    assert run.server.stats["subscribes"] == 2 * SUBSCRIPTIONS
    assert run.server.stats["trade_snapshots"] >= 1
    assert run.frames == expected_calls(replay, run.server.sent)
    assert len(tids(run.frames)) == len(set(tids(run.frames)))  # every trade exactly once
    assert [st.kind for st in run.statuses] == ["connected", "disconnected", "reconnected"]
    assert collect(run.frames)[1] == []


def test_a_stall_is_reported_stale_while_pings_keep_the_connection(replay):
    """Frames stop on an open socket: pings keep it past the server's idle limit, the feed is reported stale, then resumes."""
    def arrange(server):
        server.at_frame(100, server.stall)

    async def act(run):
        await until(lambda: run.stream.stats["stale"] >= 1 and run.server.stats["pings"] >= 3)
        run.server.resume()

    run = asyncio.run(drive(replay, arrange, act=act, idle_timeout_s=0.6, stale_after_s=0.5, ping_interval_s=0.1,
                            reconnect_on_stale=False))
    s = run.stream.stats
    assert s["stale"] == 1 and s["pongs"] >= 3 and s["disconnects"] == 0
    assert run.server.stats["idle_closes"] == 0
    assert any(st.kind == "stale" for st in run.statuses)
    assert run.frames == expected_calls(replay, run.server.sent)


def test_stale_feed_is_replaced_when_asked(replay):
    """With reconnect_on_stale, a stalled connection is closed, a new one subscribes, and the feed completes."""
    def arrange(server):
        server.at_frame(50, server.stall)

    async def act(run):
        await until(lambda: run.stream.stats["stale"] >= 1)
        run.server.resume()

    run = asyncio.run(drive(replay, arrange, act=act, stale_after_s=0.2))
    s = run.stream.stats
    assert s["stale"] >= 1 and s["reconnects"] >= 1 and s["resubscribes"] >= 1
    assert run.frames == expected_calls(replay, run.server.sent)


def test_garbage_frames_become_decode_failures_and_the_stream_goes_on(replay):
    """Garbage frames reach a collector as DecodeFailures; every real frame still arrives and decodes."""
    garbage = [b"not json at all", b'{"channel":"trades","data":[{"coin":"BTC","px":"1"}]}', b'{"channel":"bbo"',
               b'{"channel":"error","data":"Invalid subscription"}']

    def arrange(server):
        server.at_frame(40, lambda: server.send_garbage(garbage))

    run = asyncio.run(drive(replay, arrange, garbage=garbage))
    events, failures = collect(run.frames)
    assert sorted(f.raw for f in failures) == sorted(garbage)
    assert run.market_frames == expected_calls(replay, run.server.sent)
    assert run.stream.stats["unparsed_frames"] == 3 and run.stream.stats["error_frames"] == 1


def test_connect_failures_back_off_exponentially_with_jitter():
    """Nobody listening: each retry waits about twice as long as the last (+-25% jitter), capped."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    sleeps: list[float] = []

    async def main() -> None:
        config = HyperliquidStreamConfig(symbols=("BTC",), ws_base=f"ws://127.0.0.1:{port}", backoff_initial_s=0.1,
                                         backoff_max_s=0.8, open_timeout_s=1.0)

        async def sleep(s: float) -> None:
            sleeps.append(s)
            if len(sleeps) >= 6:
                stream.stop()
            await asyncio.sleep(0)

        stream = HyperliquidMarketStream(config, lambda *a: None, sleep=sleep)
        await asyncio.wait_for(stream.run(), timeout=10)
        assert stream.stats["connect_failures"] == 6

    asyncio.run(main())
    for i, s in enumerate(sleeps):
        base = min(0.8, 0.1 * 2**i)
        assert 0.75 * base <= s <= 1.25 * base


def test_config_keeps_symbols_as_coins_and_builds_the_url():
    """Symbols are coin names as configured; the URL is the venue's /ws (or the override's)."""
    config = HyperliquidStreamConfig(symbols=("BTC", "ETH"), channels=("trades", "allMids"))
    assert config.url == "wss://api.hyperliquid.xyz/ws"
    assert HyperliquidStreamConfig(symbols=("BTC",), testnet=True).url == "wss://api.hyperliquid-testnet.xyz/ws"
    assert config.subscriptions == ({"type": "trades", "coin": "BTC"}, {"type": "trades", "coin": "ETH"}, {"type": "allMids"})
    with pytest.raises(ValueError, match="channels"):
        HyperliquidStreamConfig(symbols=("BTC",), channels=("depth",))


# -- the paper cluster on the stream ---------------------------------------------------------------


class LoopThread:
    """An asyncio loop on a thread for the fake venue; ``call(coro_fn)`` runs on it and waits."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="test-hl-venue", daemon=True)
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
    """Counts market events and decode failures per symbol."""

    wants_inputs = False

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.events: dict[str, int] = {}
        self.failures = 0

    def external(self, env: Any) -> None:
        pass

    def processed(self, actor_id: str, env: Any, now_ns: int) -> None:
        pass

    def emitted(self, env: Any, receivers: tuple[str, ...]) -> None:
        m = env.payload
        with self.lock:
            if type(m) is RawMarketEvent and m.part == 0:
                self.events[m.symbol] = self.events.get(m.symbol, 0) + 1
            elif type(m) is DecodeFailure:
                self.failures += 1


def test_paper_cluster_runs_on_the_hyperliquid_stream(replay, tmp_path):
    """[market] source = "hyperliquid": the recorded frames stream into every coin's collector with no DecodeFailure."""
    lt = LoopThread()
    server = lt.call(lambda: FakeHyperliquidWsServer(replay, pace_s=0.001).start())
    settings = load_settings({
        "run": {"mode": "paper", "tick_interval_ms": 50, "var_dir": str(tmp_path / "var")},
        "market": {"source": "hyperliquid", "ws_url": server.ws_url, "streams": list(CHANNELS)},
        "symbols": [{"symbol": c, "venue": "hyperliquid", "strategy": "trend_following"} for c in COINS],
    })
    watch = Watch()
    cluster = LiveCluster(settings, "test-run", observers=(watch,))
    cluster.start()
    try:
        assert cluster.venues.feed is not None
        eventually(lambda: server.finished.is_set(), timeout=30)
        want = expected_calls(replay, server.sent)

        def frames_in() -> int:
            return sum(cluster.runtime.ask(c, lambda d, c=c: d.actors[f"{c}/collector"].stats())["frames"] for c in COINS)

        eventually(lambda: frames_in() >= len(want), timeout=30)
        assert frames_in() == len(want)
        assert watch.failures == 0
        assert all(watch.events.get(c, 0) > 0 for c in COINS)
        stats = cluster.venues.feed.stats
        assert stats["subscription_acks"] == SUBSCRIPTIONS and stats["unparsed_frames"] == 0
    finally:
        cluster.stop()
        lt.call(server.close)
        lt.close()
    assert not cluster.runtime.alive_threads()


async def until(condition, timeout: float = 10.0) -> None:
    await _until(condition, timeout)
