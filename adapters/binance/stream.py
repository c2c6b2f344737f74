"""A Binance market-data websocket client that keeps going: reconnects, rotates, resyncs, reports.

``BinanceMarketStream`` connects to a combined stream (``/stream?streams=a/b/c``) for the
configured symbols and streams and hands every frame, as the bytes received and with a receive
time from the injected clock, to ``on_frame(ts_recv_ns, SYMBOL or None, payload)``. For each
depth stream it keeps a ``BookSync`` and fetches the REST snapshot whenever the book needs one
(first connect, a gap, a stale snapshot); the snapshot body is handed to ``on_frame`` too, so
the collector journals it as a SNAPSHOT event.

Binance's connection rules, and what this client does about them:

- Pings: the server pings (futures every 3 min, spot every 20 s) and disconnects a client that
  does not pong; ``websockets`` answers automatically. The client also pings every
  ``ping_interval_s`` so a half-open TCP connection is noticed (application-level keepalive).
- A connection lives at most 24 h: after ``max_connection_age_s`` the client opens a new
  connection, keeps both until the new one delivers data (``overlap_timeout_s`` at most), then
  closes the old one. Frames seen on both are de-duplicated by trade id, aggregate id or update
  id (event time for streams without an id), so the rotation has neither a gap nor a duplicate.
- After any disconnect: reconnect with exponential backoff and jitter (from the injected rng).
  A synced book is marked INTERRUPTED (not valid): it is valid again only if the next diff
  chains onto the last one; if anything was lost, that is a gap and a new snapshot is fetched.
- No frame for ``stale_after_s``: reported (``stale`` status, counted) and, by default, treated
  as a dead connection and replaced.
- REST 429/418: wait ``Retry-After`` (or the backoff, whichever is longer), then retry; 5xx and
  network errors: backoff and retry; at most ``rest_max_attempts`` tries per snapshot.

Every disconnect, reconnect, resubscribe, rotation and resync is logged and counted in
``stats``; ``on_status`` receives a ``StreamStatus`` for each. Runs on one asyncio event loop;
``on_frame`` and ``on_status`` are called on it and must not block.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import attrs
import websockets
from arbor.adapters.binance.book import BookState, BookSync, BookTransition, Market
from arbor.adapters.venues.reconnect import Reconnector, StreamStatus
from loguru import logger
from websockets.asyncio.client import ClientConnection, connect

FUTURES_WS = "wss://fstream.binance.com"
FUTURES_REST = "https://fapi.binance.com"
FUTURES_TESTNET_WS = "wss://stream.binancefuture.com"
FUTURES_TESTNET_REST = "https://testnet.binancefuture.com"
SPOT_WS = "wss://stream.binance.com:9443"
SPOT_REST = "https://api.binance.com"
SPOT_TESTNET_WS = "wss://stream.testnet.binance.vision"
SPOT_TESTNET_REST = "https://testnet.binance.vision"

_MAX_STREAMS = {Market.FUTURES: 200, Market.SPOT: 1024}  # per connection, Binance's limits
_DEPTH_PATH = {Market.FUTURES: "/fapi/v1/depth", Market.SPOT: "/api/v3/depth"}

OnFrame = Callable[[int, "str | None", bytes], None]


@attrs.frozen(kw_only=True)
class StreamConfig:
    """What to subscribe to and how patient to be; every URL can point at a local fake."""

    market: Market = attrs.field(converter=Market)
    symbols: tuple[str, ...] = attrs.field(converter=lambda s: tuple(x.upper() for x in s))
    streams: tuple[str, ...] = ("trade", "bookTicker", "depth@100ms")
    testnet: bool = False
    ws_base: str | None = None
    rest_base: str | None = None
    snapshot_limit: int = 1000
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 30.0
    backoff_jitter: float = 0.25  # +-25% of each delay
    max_connection_age_s: float = 23.5 * 3600  # Binance cuts every connection at 24 h
    overlap_timeout_s: float = 10.0
    stale_after_s: float = 10.0
    reconnect_on_stale: bool = True
    ping_interval_s: float | None = 20.0
    ping_timeout_s: float | None = 20.0
    open_timeout_s: float = 10.0
    rest_timeout_s: float = 10.0
    rest_max_attempts: int = 5

    def __attrs_post_init__(self) -> None:
        count = len(self.symbols) * len(self.streams)
        if count == 0 or count > _MAX_STREAMS[self.market]:
            raise ValueError(f"{count} streams on one connection; Binance {self.market.value} allows 1..{_MAX_STREAMS[self.market]}")

    @property
    def stream_names(self) -> tuple[str, ...]:
        return tuple(f"{s.lower()}@{stream}" for s in self.symbols for stream in self.streams)

    @property
    def url(self) -> str:
        base = self.ws_base or {
            (Market.FUTURES, False): FUTURES_WS, (Market.FUTURES, True): FUTURES_TESTNET_WS,
            (Market.SPOT, False): SPOT_WS, (Market.SPOT, True): SPOT_TESTNET_WS,
        }[(self.market, self.testnet)]
        return f"{base.rstrip('/')}/stream?streams={'/'.join(self.stream_names)}"

    @property
    def rest_url(self) -> str:
        base = self.rest_base or {
            (Market.FUTURES, False): FUTURES_REST, (Market.FUTURES, True): FUTURES_TESTNET_REST,
            (Market.SPOT, False): SPOT_REST, (Market.SPOT, True): SPOT_TESTNET_REST,
        }[(self.market, self.testnet)]
        return base.rstrip("/")

    @property
    def depth_symbols(self) -> tuple[str, ...]:
        """Symbols with a diff-depth stream (``depth`` or ``depth@...``, not partial ``depth5``)."""
        has_diff = any(s == "depth" or s.startswith("depth@") for s in self.streams)
        return self.symbols if has_diff else ()


class BinanceMarketStream:
    """One combined-stream connection (two during a rotation) for the configured symbols."""

    def __init__(self, config: StreamConfig, on_frame: OnFrame, *,
                 on_status: Callable[[StreamStatus], None] | None = None,
                 clock: Callable[[], int] = time.time_ns,
                 rng: random.Random | None = None,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
                 log: Any = logger) -> None:
        self.config = config
        self._on_frame = on_frame
        self._clock = clock
        self._sleep = sleep
        self._log = log.bind(actor="binance-stream", venue=f"binance_{config.market.value}")
        self.books = {s: BookSync(s, config.market) for s in config.depth_symbols}
        self._last_id: dict[str, int] = {}
        self._snapshot_tasks: dict[str, asyncio.Task] = {}
        self._http: aiohttp.ClientSession | None = None
        self.stats: dict[str, int] = dict.fromkeys((
            "connects", "connect_failures", "disconnects", "reconnects", "resubscribes", "rotations", "stale",
            "frames", "duplicates_dropped", "unparsed_frames", "snapshots_fetched", "snapshot_failures",
            "rest_retries", "rest_429", "rest_5xx", "book_gaps", "book_syncs"), 0)
        self._link = Reconnector(backoff_initial_s=config.backoff_initial_s, backoff_max_s=config.backoff_max_s,
                                 backoff_jitter=config.backoff_jitter, rng=rng or random.Random(0), sleep=sleep,
                                 log=self._log, on_status=on_status, stats=self.stats)
        self._stopping = self._link.stopping
        self._status = self._link.status
        self._backoff = self._link.backoff

    # -- public ------------------------------------------------------------------------------------

    def stop(self) -> None:
        """Ask ``run`` to close its connections and return."""
        self._stopping.set()

    async def run(self) -> None:
        """Connect, stream, reconnect and rotate until ``stop()``; returns after closing everything."""
        async with aiohttp.ClientSession() as http:
            self._http = http
            try:
                await self._supervise()
            finally:
                for task in self._snapshot_tasks.values():
                    task.cancel()
                await asyncio.gather(*self._snapshot_tasks.values(), return_exceptions=True)
                self._http = None

    # -- connections -------------------------------------------------------------------------------

    async def _supervise(self) -> None:
        cfg = self.config
        loop = asyncio.get_running_loop()
        while not self._stopping.is_set():
            ws = await self._connect()
            if ws is None:
                return
            seen = _Delivered()
            reader = asyncio.create_task(self._read(ws, seen))
            opened = loop.time()
            while True:
                stop = asyncio.create_task(self._stopping.wait())
                age_left = max(0.0, cfg.max_connection_age_s - (loop.time() - opened))
                done, _ = await asyncio.wait({reader, stop}, timeout=age_left, return_when=asyncio.FIRST_COMPLETED)
                stop.cancel()
                if self._stopping.is_set():
                    await ws.close()
                    await asyncio.gather(reader, return_exceptions=True)
                    return
                if reader in done:
                    break  # the connection ended: reconnect (outer loop)
                rotated = await self._rotate(ws, reader, seen)
                if rotated is None and self._stopping.is_set():
                    await ws.close()
                    await asyncio.gather(reader, return_exceptions=True)
                    return
                if rotated is None:
                    break
                ws, reader, seen = rotated
                opened = loop.time()
            await asyncio.gather(reader, return_exceptions=True)
            self.stats["disconnects"] += 1
            self._status("disconnected", detail=f"close code {ws.close_code}")
            for book in self.books.values():
                self._book_transition(book.interrupt("feed disconnected"))

    async def _rotate(self, old: ClientConnection, old_reader: asyncio.Task, old_seen: _Delivered,
                      ) -> tuple[ClientConnection, asyncio.Task, _Delivered] | None:
        """Open the successor before closing ``old``, so the 24 h cut leaves no gap.

        ``old`` is closed only once it has itself delivered the successor's first frame: every
        frame published before the successor subscribed has then been read from ``old`` (closing
        it earlier would discard what it had received but not yet read).
        """
        new = await self._connect(rotation=True)
        if new is None:
            return None
        seen = _Delivered()
        reader = asyncio.create_task(self._read(new, seen))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config.overlap_timeout_s
        stop = asyncio.create_task(self._stopping.wait())
        first = asyncio.create_task(seen.first())
        await asyncio.wait({first, stop}, timeout=self.config.overlap_timeout_s, return_when=asyncio.FIRST_COMPLETED)
        overlapped = False
        if first.done():
            overlap = asyncio.create_task(old_seen.reached(*first.result()))
            await asyncio.wait({overlap, old_reader, stop}, timeout=max(0.0, deadline - loop.time()),
                               return_when=asyncio.FIRST_COMPLETED)
            overlapped = overlap.done() or old_reader.done()
            overlap.cancel()
        first.cancel()
        stop.cancel()
        if self._stopping.is_set():  # stopping mid-rotation: the successor goes too
            await new.close()
            await asyncio.gather(reader, return_exceptions=True)
            return None
        if not overlapped:
            self._log.warning("rotation: no overlap with the new connection within {}s; switching anyway",
                              self.config.overlap_timeout_s)
        await old.close()
        await asyncio.gather(old_reader, return_exceptions=True)
        self.stats["rotations"] += 1
        self._status("rotated", detail="connection replaced before the 24 h limit")
        return new, reader, seen

    async def _connect(self, rotation: bool = False) -> ClientConnection | None:
        cfg = self.config

        async def open_connection() -> ClientConnection:
            return await connect(cfg.url, ping_interval=cfg.ping_interval_s, ping_timeout=cfg.ping_timeout_s,
                                 open_timeout=cfg.open_timeout_s, max_size=2**23, proxy=None)

        # The stream list is in the URL: every new connection resubscribes.
        return await self._link.connect(open_connection, what=cfg.url, rotation=rotation)

    async def _read(self, ws: ClientConnection, seen: _Delivered) -> None:
        stale_after = self.config.stale_after_s
        while True:
            try:
                payload = await asyncio.wait_for(ws.recv(decode=False), timeout=stale_after)
            except TimeoutError:
                self.stats["stale"] += 1
                self._log.warning("stale feed: no frame for {}s", stale_after)
                self._status("stale", detail=f"no frame for {stale_after}s")
                if self.config.reconnect_on_stale:
                    await ws.close(code=1000, reason="stale")
                    return
                continue
            except websockets.exceptions.ConnectionClosed:
                return
            seen.delivered(self._on_payload(payload if type(payload) is bytes else bytes(payload)))

    # -- frames ------------------------------------------------------------------------------------

    def _on_payload(self, payload: bytes) -> tuple[str, int] | None:
        """Route one frame; return its (stream, id) when it has one (duplicates included)."""
        ts = self._clock()
        try:
            frame = json.loads(payload)
            stream, data = frame["stream"], frame["data"]
            symbol = stream.partition("@")[0].upper()
        except Exception:  # garbage: the collector turns it into a DecodeFailure; routing is all we lose
            self.stats["unparsed_frames"] += 1
            self.stats["frames"] += 1
            self._on_frame(ts, None, payload)
            return None
        seen_id = _frame_id(data)
        if seen_id is not None:
            last = self._last_id.get(stream)
            if last is not None and seen_id <= last:
                self.stats["duplicates_dropped"] += 1  # the overlap of a rotation
                return stream, seen_id
            self._last_id[stream] = seen_id
        self.stats["frames"] += 1
        self._on_frame(ts, symbol, payload)
        book = self.books.get(symbol)
        if book is not None and type(data) is dict and data.get("e") == "depthUpdate":
            try:
                transition = book.on_diff(data["U"], data["u"], data.get("pu"), data["b"], data["a"])
            except Exception as exc:  # malformed diff: the collector reports it; the book cannot trust it
                transition = book.reset(f"unreadable diff: {type(exc).__name__}")
            self._book_transition(transition)
            if book.resync_needed:
                self._want_snapshot(symbol)
        return None if seen_id is None else (stream, seen_id)

    def _book_transition(self, transition: BookTransition | None) -> None:
        if transition is None:
            return
        if transition.state is BookState.SYNCED:
            kind = "book_synced"
            self.stats["book_syncs"] += transition.reason.startswith("snapshot")
        elif transition.state is BookState.INTERRUPTED:
            kind = "book_interrupted"
        else:
            kind = "book_desynced"
            self.stats["book_gaps"] += transition.reason.startswith(("gap", "snapshot"))
        self._log.info("book {} {}: {}", transition.symbol, transition.state.value, transition.reason)
        self._status(kind, transition.symbol, transition.reason)

    # -- REST snapshot -----------------------------------------------------------------------------

    def _want_snapshot(self, symbol: str) -> None:
        task = self._snapshot_tasks.get(symbol)
        if task is None or task.done():
            self._snapshot_tasks[symbol] = asyncio.create_task(self._resync(symbol), name=f"snapshot-{symbol}")

    async def _resync(self, symbol: str) -> None:
        book = self.books[symbol]
        attempt = 0
        while book.resync_needed and not self._stopping.is_set():
            body = await self._get_snapshot(symbol)
            if body is None:
                self.stats["snapshot_failures"] += 1
                self._status("snapshot_failed", symbol, "REST snapshot failed; retrying on the next diff")
                return
            self.stats["snapshots_fetched"] += 1
            self._on_frame(self._clock(), symbol, body)
            try:
                snap = json.loads(body)
                transition = book.on_snapshot(snap["lastUpdateId"], snap["bids"], snap["asks"])
            except Exception as exc:
                self._log.warning("unreadable depth snapshot for {}: {}", symbol, exc)
                transition = None
            self._book_transition(transition)
            if book.state is BookState.AWAITING_BRIDGE:
                return  # waiting for the diff that spans the snapshot; a later gap asks again
            if book.resync_needed:  # the snapshot was older than the buffered diffs
                await self._sleep(self._backoff(attempt))
                attempt += 1

    async def _get_snapshot(self, symbol: str) -> bytes | None:
        cfg = self.config
        assert self._http is not None
        url = f"{cfg.rest_url}{_DEPTH_PATH[cfg.market]}"
        params = {"symbol": symbol, "limit": str(cfg.snapshot_limit)}
        for attempt in range(cfg.rest_max_attempts):
            delay = self._backoff(attempt)
            try:
                async with self._http.get(url, params=params, timeout=aiohttp.ClientTimeout(total=cfg.rest_timeout_s)) as resp:
                    body = await resp.read()
                    if resp.status == 200:
                        return body
                    if resp.status in (418, 429):
                        self.stats["rest_429"] += 1
                        delay = max(delay, _retry_after(resp.headers.get("Retry-After")))
                    elif resp.status >= 500:
                        self.stats["rest_5xx"] += 1
                    reason = f"HTTP {resp.status}"
            except (TimeoutError, aiohttp.ClientError) as exc:
                reason = f"{type(exc).__name__}: {exc}"
            self.stats["rest_retries"] += 1
            self._log.warning("depth snapshot {} failed ({}); retry in {:.2f}s", symbol, reason, delay)
            self._status("rest_retry", symbol, f"{reason}; retry in {delay:.2f}s")
            await self._sleep(delay)
        return None


class _Delivered:
    """What one connection has delivered: the last frame id per stream, and its first identified frame."""

    def __init__(self) -> None:
        self._last: dict[str, int] = {}
        self._first: tuple[str, int] | None = None
        self._changed = asyncio.Event()

    def delivered(self, key: tuple[str, int] | None) -> None:
        if key is None:
            return
        self._last[key[0]] = key[1]
        if self._first is None:
            self._first = key
        self._changed.set()

    async def first(self) -> tuple[str, int]:
        while self._first is None:
            await self._wait()
        return self._first

    async def reached(self, stream: str, frame_id: int) -> None:
        while self._last.get(stream, frame_id - 1) < frame_id:
            await self._wait()

    async def _wait(self) -> None:
        self._changed.clear()
        await self._changed.wait()


def _frame_id(data: Any) -> int | None:
    """The id that orders a stream's frames: trade id, aggregate id, update id, else event time."""
    if type(data) is not dict:
        return None
    event = data.get("e")
    key = "t" if event == "trade" else "a" if event == "aggTrade" else "u" if "u" in data else "E"
    value = data.get(key)
    return value if type(value) is int else None


def _retry_after(header: str | None) -> float:
    try:
        return max(0.0, float(header)) if header is not None else 0.0
    except ValueError:
        return 0.0
