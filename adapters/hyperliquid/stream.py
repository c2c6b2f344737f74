"""A Hyperliquid market-data websocket client that keeps going: reconnects, resubscribes, reports.

``HyperliquidMarketStream`` opens one connection to ``wss://api.hyperliquid.xyz/ws`` (testnet
``wss://api.hyperliquid-testnet.xyz/ws``), subscribes every configured coin to the configured
channels (default ``trades``, ``l2Book``, ``bbo``, ``activeAssetCtx``; ``allMids`` is accepted too)
with ``{"method": "subscribe", "subscription": {"type": ..., "coin": ...}}`` and hands every market
frame, as the bytes received and with a receive time from the injected clock, to
``on_frame(ts_recv_ns, SYMBOL or None, payload)``. Same shape as ``adapters.binance.stream``.

Symbols are coins: a configured symbol is the Hyperliquid coin name exactly (``BTC``, ``ETH``,
``DYDX``), never derived from a Binance-style pair (``BTCUSDT`` is not mapped to ``BTC``).

Routing: a single-coin frame (trades, l2Book, bbo, activeAssetCtx) goes to its coin; an
``allMids`` frame goes to every configured symbol (each collector's decoder takes its own coin);
a frame that is not JSON or has no readable coin goes with symbol ``None`` (the feed gives it to a
collector, which journals a ``DecodeFailure``), and so does an ``error`` frame (also logged).
Control frames (``subscriptionResponse``, ``pong``) are counted, not handed on.

Hyperliquid's connection rules, and what this client does about them:

- The server closes a connection idle for 60 s: the client sends ``{"method": "ping"}`` after
  ``ping_interval_s`` without a frame (the server answers ``{"channel": "pong"}``); no frame at
  all within ``pong_timeout_s`` of a ping is a dead connection, closed and replaced.
- After any disconnect: reconnect with exponential backoff and jitter (from the injected rng) and
  subscribe again to everything (counted as ``resubscribes``).
- A new ``trades`` subscription first sends recent trades, which after a reconnect repeats trades
  already handed on: a trades frame whose every trade id was seen (last ``dedupe_window`` ids per
  coin) is dropped and counted (``duplicates_dropped``); a frame with any new trade goes on as received.
- No market frame for ``stale_after_s`` (pongs do not count: a stalled feed that still answers
  pings is stale): reported (``stale`` status, counted) and, by default, the connection replaced.

Every disconnect, reconnect, resubscribe and stale period is logged and counted in ``stats``;
``on_status`` receives a ``StreamStatus`` for each. Runs on one asyncio event loop; ``on_frame``
and ``on_status`` are called on it and must not block.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import attrs
import websockets
from arbor.adapters.venues.reconnect import Reconnector, StreamStatus
from loguru import logger
from websockets.asyncio.client import ClientConnection, connect

MAINNET_WS = "wss://api.hyperliquid.xyz"
TESTNET_WS = "wss://api.hyperliquid-testnet.xyz"

COIN_CHANNELS = ("trades", "l2Book", "bbo", "activeAssetCtx")
GLOBAL_CHANNELS = ("allMids",)
DEFAULT_CHANNELS = COIN_CHANNELS
_CONTROL = frozenset({"subscriptionResponse", "pong"})
_MAX_SUBSCRIPTIONS = 1000  # Hyperliquid's per-IP websocket subscription limit

OnFrame = Callable[[int, "str | None", bytes], None]


def _names(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(values)


@attrs.frozen(kw_only=True)
class HyperliquidStreamConfig:
    """What to subscribe to and how patient to be; the URL can point at a local fake."""

    symbols: tuple[str, ...] = attrs.field(converter=_names)  # Hyperliquid coin names, as configured
    channels: tuple[str, ...] = attrs.field(default=DEFAULT_CHANNELS, converter=_names)
    testnet: bool = False
    ws_base: str | None = None  # e.g. ws://127.0.0.1:PORT; "/ws" is appended unless present
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 30.0
    backoff_jitter: float = 0.25  # +-25% of each delay
    stale_after_s: float = 10.0
    reconnect_on_stale: bool = True
    ping_interval_s: float = 20.0  # the server closes connections idle for 60 s
    pong_timeout_s: float = 10.0
    open_timeout_s: float = 10.0
    dedupe_window: int = 4096

    def __attrs_post_init__(self) -> None:
        if not self.symbols or not all(type(s) is str and s for s in self.symbols):
            raise ValueError("configure at least one coin")
        unknown = [c for c in self.channels if c not in COIN_CHANNELS + GLOBAL_CHANNELS]
        if unknown or not self.channels:
            raise ValueError(f"unsupported Hyperliquid channels {unknown}; known: "
                             f"{', '.join(COIN_CHANNELS + GLOBAL_CHANNELS)}")
        if len(self.subscriptions) > _MAX_SUBSCRIPTIONS:
            raise ValueError(f"{len(self.subscriptions)} subscriptions; Hyperliquid allows {_MAX_SUBSCRIPTIONS}")
        if min(self.stale_after_s, self.ping_interval_s, self.pong_timeout_s) <= 0:
            raise ValueError("stale_after_s, ping_interval_s and pong_timeout_s must be > 0")

    @property
    def subscriptions(self) -> tuple[dict[str, str], ...]:
        out: list[dict[str, str]] = []
        for channel in self.channels:
            if channel in GLOBAL_CHANNELS:
                out.append({"type": channel})
            else:
                out += [{"type": channel, "coin": coin} for coin in self.symbols]
        return tuple(out)

    @property
    def url(self) -> str:
        base = (self.ws_base or (TESTNET_WS if self.testnet else MAINNET_WS)).rstrip("/")
        return base if base.endswith("/ws") else f"{base}/ws"


class HyperliquidMarketStream:
    """One websocket connection carrying every configured coin's subscriptions."""

    def __init__(self, config: HyperliquidStreamConfig, on_frame: OnFrame, *,
                 on_status: Callable[[StreamStatus], None] | None = None,
                 clock: Callable[[], int] = time.time_ns,
                 rng: random.Random | None = None,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
                 log: Any = logger) -> None:
        self.config = config
        self._on_frame = on_frame
        self._clock = clock
        self._log = log.bind(actor="hyperliquid-stream", venue="hyperliquid")
        self._symbols = frozenset(config.symbols)
        self._seen: dict[str, tuple[set[int], deque[int]]] = {}
        self.stats: dict[str, int] = dict.fromkeys((
            "connects", "connect_failures", "disconnects", "reconnects", "resubscribes", "subscriptions_sent",
            "subscription_acks", "stale", "pings_sent", "pongs", "pong_timeouts", "frames", "unparsed_frames",
            "error_frames", "duplicates_dropped"), 0)
        self._link = Reconnector(backoff_initial_s=config.backoff_initial_s, backoff_max_s=config.backoff_max_s,
                                 backoff_jitter=config.backoff_jitter, rng=rng or random.Random(0), sleep=sleep,
                                 log=self._log, on_status=on_status, stats=self.stats)
        self._stopping = self._link.stopping
        self._status = self._link.status

    # -- public ------------------------------------------------------------------------------------

    def stop(self) -> None:
        """Ask ``run`` to close its connection and return."""
        self._stopping.set()

    async def run(self) -> None:
        """Connect, subscribe, stream and reconnect until ``stop()``; returns after closing."""
        while not self._stopping.is_set():
            ws = await self._connect()
            if ws is None:
                return
            reader = asyncio.create_task(self._read(ws))
            stop = asyncio.create_task(self._stopping.wait())
            await asyncio.wait({reader, stop}, return_when=asyncio.FIRST_COMPLETED)
            stop.cancel()
            if self._stopping.is_set():
                await ws.close()
                await asyncio.gather(reader, return_exceptions=True)
                return
            await asyncio.gather(reader, return_exceptions=True)
            self.stats["disconnects"] += 1
            self._log.warning("disconnected (close code {})", ws.close_code)
            self._status("disconnected", detail=f"close code {ws.close_code}")

    # -- connection --------------------------------------------------------------------------------

    async def _connect(self) -> ClientConnection | None:
        cfg = self.config

        async def open_connection() -> ClientConnection:
            # Keep-alive is Hyperliquid's application ping (below), not websocket protocol pings.
            ws = await connect(cfg.url, ping_interval=None, open_timeout=cfg.open_timeout_s,
                               max_size=2**23, proxy=None)
            try:
                for sub in cfg.subscriptions:
                    await ws.send(json.dumps({"method": "subscribe", "subscription": sub}, separators=(",", ":")))
            except BaseException:
                await ws.close()  # a half-subscribed connection is not kept: the retry opens a new one
                raise
            self.stats["subscriptions_sent"] += len(cfg.subscriptions)
            return ws

        n = len(cfg.subscriptions)
        return await self._link.connect(open_connection, what=f"{cfg.url} ({n} subscriptions)",
                                        detail=f"{n} subscriptions")

    async def _read(self, ws: ClientConnection) -> None:
        cfg = self.config
        loop = asyncio.get_running_loop()
        last_data = last_rx = loop.time()
        ping_sent: float | None = None
        stale_reported = False
        while True:
            now = loop.time()
            deadlines = [ping_sent + cfg.pong_timeout_s if ping_sent is not None else last_rx + cfg.ping_interval_s]
            if not stale_reported:
                deadlines.append(last_data + cfg.stale_after_s)
            try:
                payload = await asyncio.wait_for(ws.recv(decode=False), timeout=max(0.0, min(deadlines) - now))
            except TimeoutError:
                now = loop.time()
                if now >= last_data + cfg.stale_after_s and not stale_reported:
                    self.stats["stale"] += 1
                    self._log.warning("stale feed: no market frame for {}s", cfg.stale_after_s)
                    self._status("stale", detail=f"no market frame for {cfg.stale_after_s}s")
                    if cfg.reconnect_on_stale:
                        await ws.close(code=1000, reason="stale")
                        return
                    stale_reported = True  # once per silent period
                if ping_sent is not None and now >= ping_sent + cfg.pong_timeout_s:
                    self.stats["pong_timeouts"] += 1
                    self._log.warning("no pong within {}s: connection presumed dead", cfg.pong_timeout_s)
                    await ws.close(code=1000, reason="pong timeout")
                    return
                if ping_sent is None and now >= last_rx + cfg.ping_interval_s:
                    try:
                        await ws.send('{"method":"ping"}')
                    except websockets.exceptions.ConnectionClosed:
                        return
                    self.stats["pings_sent"] += 1
                    ping_sent = now
                continue
            except websockets.exceptions.ConnectionClosed:
                return
            last_rx = loop.time()
            ping_sent = None
            if self._on_payload(payload if type(payload) is bytes else bytes(payload)):
                last_data = last_rx
                stale_reported = False

    # -- frames ------------------------------------------------------------------------------------

    def _on_payload(self, payload: bytes) -> bool:
        """Route one frame; True if it was market data (or garbage in its place), False for control."""
        ts = self._clock()
        try:
            frame = json.loads(payload)
            channel = frame["channel"]
            if channel in _CONTROL:
                self.stats["pongs" if channel == "pong" else "subscription_acks"] += 1
                return False
            if channel == "error":
                self.stats["error_frames"] += 1
                self._log.error("venue error frame: {}", payload[:300])
                raise ValueError("error frame")
            data = frame["data"]
            if channel == "allMids":
                self.stats["frames"] += 1
                for symbol in self.config.symbols:
                    self._on_frame(ts, symbol, payload)
                return True
            coin = (data[0] if channel == "trades" else data)["coin"]
            if type(coin) is not str:
                raise ValueError("coin is not a string")
            if channel == "trades" and self._duplicate(coin, data):
                self.stats["duplicates_dropped"] += 1
                return True
        except Exception:  # garbage: the collector turns it into a DecodeFailure; routing is all we lose
            self.stats["unparsed_frames"] += 1
            self.stats["frames"] += 1
            self._on_frame(ts, None, payload)
            return True
        self.stats["frames"] += 1
        self._on_frame(ts, coin, payload)
        return True

    def _duplicate(self, coin: str, trades: Any) -> bool:
        """All of this frame's trade ids were handed on already (remembers the new ones)."""
        tids: list[int] = []
        for t in trades:
            if type(t) is dict:
                tid = t.get("tid")
                if type(tid) is not int:
                    return False
                tids.append(tid)
        if not tids:
            return False
        seen, order = self._seen.setdefault(coin, (set(), deque()))
        new = [t for t in tids if t not in seen]
        for tid in new:
            seen.add(tid)
            order.append(tid)
            if len(order) > self.config.dedupe_window:
                seen.discard(order.popleft())
        return not new


__all__ = ["HyperliquidMarketStream", "HyperliquidStreamConfig", "COIN_CHANNELS", "GLOBAL_CHANNELS", "DEFAULT_CHANNELS"]
