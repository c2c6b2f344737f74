"""The Binance market-data stream client against the local fake Binance server replaying real HBT frames."""

from __future__ import annotations

import asyncio
import itertools
import json
from pathlib import Path

import pytest
from arbor.actors.collector import CollectorLogic
from arbor.actors.testing import ManualClock, make_ctx
from arbor.actors.testing import until as _until
from arbor.adapters.binance.book import BookSync, Market
from arbor.adapters.binance.stream import BinanceMarketStream, StreamConfig
from arbor.adapters.binance.usdm import decode_usdm
from arbor.adapters.recorded import read_hbt
from arbor.adapters.testing import FakeBinanceServer
from arbor.adapters.venues.reconnect import StreamStatus
from arbor.messages.market import DecodeFailure, VenuePayload

FRAMES = 2500  # of the BTCUSDT recording: ~1,900 bookTickers, ~450 trades, ~170 diffs
STREAMS = ("depth@0ms", "trade", "bookTicker")


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


def ids(payloads, stream_suffix: str, key: str) -> list[int]:
    """The ids (trade id, update id) of the frames of one stream, in order."""
    out = []
    for p in payloads:
        obj = json.loads(p)
        if obj["stream"].endswith(stream_suffix):
            out.append(obj["data"][key])
    return out


class Run:
    """One client against one server: what the client handed on, its statuses, and the sleeps it asked for."""

    def __init__(self, server: FakeBinanceServer, **overrides) -> None:
        self.frames: list[tuple[str | None, bytes]] = []
        self.statuses: list[StreamStatus] = []
        self.sleeps: list[float] = []
        config = StreamConfig(market=Market.FUTURES, symbols=("BTCUSDT",), streams=STREAMS, ws_base=server.ws_url,
                              rest_base=server.http_url, backoff_initial_s=0.01, backoff_max_s=0.05, **overrides)
        self.stream = BinanceMarketStream(config, self._on_frame, on_status=self.statuses.append,
                                          clock=itertools.count(1).__next__, sleep=self._sleep)
        self.server = server

    def _on_frame(self, ts: int, symbol: str | None, payload: bytes) -> None:
        self.frames.append((symbol, payload))

    async def _sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)  # recorded, not waited: backoff is checked by value, tests stay fast
        await asyncio.sleep(0)

    @property
    def stream_frames(self) -> list[bytes]:
        return [p for _, p in self.frames if p.startswith(b'{"stream"')]

    def caught_up(self) -> bool:
        return self.server.finished.is_set() and len(self.stream_frames) >= self.server.stats["frames_sent"]




async def drive(frames, snapshot, arrange, *, pace_s: float = 0.0, act=None, **overrides) -> Run:
    """Serve ``frames`` with faults from ``arrange(server)``, run the client until it has everything sent."""
    async with FakeBinanceServer(frames, {"BTCUSDT": snapshot}, pace_s=pace_s) as server:
        arrange(server)
        run = Run(server, **overrides)
        task = asyncio.create_task(run.stream.run())
        try:
            if act is not None:
                await act(run)
            await until(run.caught_up)
            await until(lambda: run.stream.books["BTCUSDT"].valid)
        finally:
            run.stream.stop()
            await asyncio.wait_for(task, timeout=5)
    return run


def reference_book(frames, snapshot, upto_u: int) -> BookSync:
    """The book rebuilt offline from the recording up to update id ``upto_u``."""
    sync = BookSync("BTCUSDT", Market.FUTURES)
    sync.on_snapshot(snapshot["lastUpdateId"], snapshot["bids"], snapshot["asks"])
    for raw in frames:
        d = json.loads(raw)["data"]
        if d.get("e") == "depthUpdate" and d["u"] <= upto_u:
            sync.on_diff(d["U"], d["u"], d["pu"], d["b"], d["a"])
    return sync


def assert_book_matches_source(run: Run, frames, snapshot) -> None:
    book = run.stream.books["BTCUSDT"]
    assert book.last_update_id is not None, "the stream's book never synced"
    ref = reference_book(frames, snapshot, book.last_update_id)
    assert ref.last_update_id == book.last_update_id
    assert book.book.top(20) == ref.book.top(20)


def assert_same_events_as_source(run: Run, frames, skipped=()) -> None:
    sent = [f for i, f in enumerate(frames) if i not in set(skipped)]
    got = run.stream_frames
    assert ids(got, "@trade", "t") == ids(sent, "@trade", "t")
    assert ids(got, "@bookTicker", "u") == ids(sent, "@bookTicker", "u")
    assert ids(got, "@depth@0ms", "u") == ids(sent, "@depth@0ms", "u")


def test_reconnect_after_disconnects_loses_and_duplicates_nothing(recording):
    """Two server disconnects: the client reconnects, every trade/ticker/diff arrives once, the book stays exact."""
    frames, snapshot = recording

    def arrange(server):
        server.at_frame(800, server.disconnect)
        server.at_frame(1600, server.disconnect)

    run = asyncio.run(drive(frames, snapshot, arrange))
    assert_same_events_as_source(run, frames)
    s = run.stream.stats
    assert (s["disconnects"], s["reconnects"], s["resubscribes"]) == (2, 2, 2)
    assert s["book_gaps"] == 0  # nothing lost: the diff chain resumed without a new snapshot
    assert [st.kind for st in run.statuses].count("book_interrupted") == 2
    assert_book_matches_source(run, frames, snapshot)


def test_injected_gap_resyncs_the_book(recording):
    """A skipped depth diff is a gap: the book goes invalid, a snapshot is fetched, and it is valid and exact again."""
    frames, snapshot = recording
    arranged = {}

    def arrange(server):
        server.at_frame(1200, server.inject_gap)
        arranged["server"] = server

    run = asyncio.run(drive(frames, snapshot, arrange))
    skipped = arranged["server"].skipped
    assert len(skipped) == 1
    assert_same_events_as_source(run, frames, skipped)
    book = run.stream.books["BTCUSDT"]
    assert run.stream.stats["book_gaps"] == 1 and book.counters["gaps"] == 1
    assert run.stream.stats["snapshots_fetched"] >= 2 and book.valid
    kinds = [st.kind for st in run.statuses if st.kind.startswith("book_")]
    assert kinds[-2:] == ["book_desynced", "book_synced"]
    assert_book_matches_source(run, frames, snapshot)


def test_stale_feed_is_detected_and_replaced(recording):
    """A stalled server (socket open, no frames) is reported stale; the client reconnects and misses nothing."""
    frames, snapshot = recording

    async def act(run):
        await until(lambda: run.stream.stats["stale"] >= 1)
        run.server.resume()

    def arrange(server):
        server.at_frame(1000, server.stall)

    run = asyncio.run(drive(frames, snapshot, arrange, act=act, stale_after_s=0.3))
    assert run.stream.stats["stale"] >= 1 and run.stream.stats["reconnects"] >= 1
    assert any(st.kind == "stale" for st in run.statuses)
    assert_same_events_as_source(run, frames)


def test_garbage_frames_become_decode_failures_and_the_stream_goes_on(recording):
    """Garbage frames reach the collector as DecodeFailures; every real frame still arrives and decodes."""
    frames, snapshot = recording
    garbage = [b"not json at all", b'{"stream":"btcusdt@trade","data":{"e":"trade","p":"1"}}', b'{"stream":"btcusdt@trade"']

    def arrange(server):
        server.at_frame(500, lambda: server.send_garbage(garbage))

    run = asyncio.run(drive(frames, snapshot, arrange))
    clock = ManualClock(0)
    collectors = {"BTCUSDT": CollectorLogic(make_ctx("BTCUSDT/collector", "BTCUSDT", clock), decode_usdm),
                  "": CollectorLogic(make_ctx("binance_usdm/collector", "", clock), decode_usdm)}  # unroutable frames
    failures = []
    for symbol, payload in run.frames:
        for msg in collectors[symbol or ""].handle(VenuePayload(venue="binance_usdm", symbol=symbol or "", payload=payload)):
            if isinstance(msg, DecodeFailure):
                failures.append(msg.raw)
    assert sorted(failures) == sorted(garbage)
    assert run.stream.stats["unparsed_frames"] == 2
    real = [p for p in run.stream_frames if p not in garbage]
    assert ids(real, "@trade", "t") == ids(frames, "@trade", "t")


def test_rest_429_is_retried_after_retry_after_with_backoff(recording):
    """Two 429s (Retry-After 1.5 s) and a 503 on the snapshot: retried, waiting at least Retry-After; the book syncs."""
    frames, snapshot = recording

    def arrange(server):
        server.fail_rest(429, times=2, retry_after=1.5)
        server.fail_rest(503, times=1)

    run = asyncio.run(drive(frames, snapshot, arrange))
    s = run.stream.stats
    assert (s["rest_429"], s["rest_5xx"], s["rest_retries"]) == (2, 1, 3)
    assert run.sleeps[:3][0] >= 1.5 and run.sleeps[:3][1] >= 1.5
    assert 0 < run.sleeps[2] < 1.5  # the 5xx: plain exponential backoff with jitter
    assert run.stream.books["BTCUSDT"].valid


def test_proactive_rotation_overlaps_without_gap_or_duplicate(recording):
    """Connections older than the age limit are replaced with an overlap: no gap, no duplicate, the book never breaks."""
    frames, snapshot = recording
    run = asyncio.run(drive(frames[:1500], snapshot, lambda server: None, pace_s=0.001, max_connection_age_s=0.4))
    s = run.stream.stats
    assert s["rotations"] >= 1 and s["reconnects"] == 0 and s["book_gaps"] == 0
    assert s["duplicates_dropped"] >= 1  # the overlap was real: both connections delivered a frame
    assert_same_events_as_source(run, frames[:1500])
    assert not any(st.kind == "book_desynced" for st in run.statuses)


def test_stop_during_a_rotation_returns_promptly(recording):
    """A stop while a rotation waits for the new connection's first frame ends the stream at once, not after the overlap timeout."""
    frames, snapshot = recording

    async def scenario() -> float:
        async with FakeBinanceServer(frames[:50], {"BTCUSDT": snapshot}) as server:
            run = Run(server, max_connection_age_s=0.2, overlap_timeout_s=60.0)
            task = asyncio.create_task(run.stream.run())
            await until(run.caught_up)  # the feed is exhausted: the successor will never deliver a frame
            await until(lambda: run.stream.stats["connects"] >= 2)  # a rotation has begun
            loop = asyncio.get_running_loop()
            started = loop.time()
            run.stream.stop()
            await asyncio.wait_for(task, timeout=10)
            return loop.time() - started

    assert asyncio.run(scenario()) < 5.0  # the overlap timeout is 60 s


async def until(condition, timeout: float = 8.0) -> None:
    await _until(condition, timeout)
