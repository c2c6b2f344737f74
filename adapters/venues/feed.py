"""Real market data into the live cluster, and the symbol held back while that data is bad.

``MarketFeed`` runs a ``BinanceMarketStream`` (or, for ``[market] source = "hyperliquid"``, a
``HyperliquidMarketStream``: same callbacks, same statuses) on its own asyncio loop (a thread the runtime joins
on stop). Every frame goes into a thread-safe queue that ``frames()`` yields from, and
``ThreadedRuntime.feed(feed.frames(), venue, paced=False, batch=1)`` turns each into the same
envelope the recorded and simulated markets use: sender ``"feed"``, a ``VenuePayload`` to
``"{SYMBOL}/collector"``, receive time = the runtime clock, the runtime's flow control. A frame
the stream could not even route (not JSON) goes to the first symbol's collector, which journals
it as a ``DecodeFailure``: nothing is dropped silently.

``FeedGuard`` is the pure part: stream statuses and frames in, trading-state intents out. A
symbol is *degraded* while its book is desynced or interrupted (a gap, a disconnect) or the feed
is stale; it is valid again when the book resyncs and frames flow. On degrade the shell sends
``SetTradingState(scope=SYMBOL, state=REDUCING, who="feed", reason=...)`` to Risk, on recovery
``ACTIVE`` with ``who="feed"``, but only to undo what the feed itself set. Risk enforces that
rule on its own thread (``TradingControls.feed_set``): the feed only lowers an ACTIVE scope and
only lifts a state it set, and a pause set by anyone else takes ownership of the scope, so no
operator command can be overridden by the feed, however the two race. The feed also reads Risk's
record before sending, only to avoid pointless commands.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from arbor.adapters.binance.book import Market
from arbor.adapters.binance.stream import BinanceMarketStream, StreamConfig
from arbor.adapters.hyperliquid.stream import DEFAULT_CHANNELS, HyperliquidMarketStream, HyperliquidStreamConfig
from arbor.adapters.venues.reconnect import StreamStatus
from arbor.messages import SetTradingState, TradingState

FEED_WHO = "feed"
FEED_SENDER = "market_feed"  # SetTradingState's sender (not "feed": that marks flow-controlled market batches)

# (symbol, "degrade" | "restore", reason)
Intent = tuple[str, str, str]


class FeedGuard:
    """Which symbols the feed currently cannot vouch for; pure, no I/O, no clock."""

    def __init__(self, symbols: Iterable[str]) -> None:
        self.problems: dict[str, dict[str, str]] = {s: {} for s in symbols}
        self.transitions = 0

    def degraded(self, symbol: str) -> bool:
        return bool(self.problems.get(symbol))

    def on_status(self, status: StreamStatus) -> list[Intent]:
        kind = status.kind
        if kind == "stale":
            return self._add_all("stale", "stale_feed")
        if kind == "disconnected":
            return self._add_all("connection", "feed_disconnected")
        if status.symbol is None or status.symbol not in self.problems:
            return []
        if kind == "book_desynced":
            return self._add(status.symbol, "book", "book_desync")
        if kind == "book_interrupted":
            return self._add(status.symbol, "book", "book_interrupted")
        if kind == "book_synced":
            return self._clear(status.symbol, "book")
        return []

    def on_frame(self, symbol: str | None) -> list[Intent]:
        """Data for ``symbol`` arrived: the feed is neither stale nor down for it."""
        if symbol is None:
            return []
        problems = self.problems.get(symbol)
        if not problems or ("stale" not in problems and "connection" not in problems):
            return []
        problems.pop("stale", None)
        problems.pop("connection", None)
        return self._restored(symbol) if not problems else []

    def _add_all(self, key: str, reason: str) -> list[Intent]:
        out: list[Intent] = []
        for s in self.problems:
            out += self._add(s, key, reason)
        return out

    def _add(self, symbol: str, key: str, reason: str) -> list[Intent]:
        problems = self.problems[symbol]
        was = bool(problems)
        problems[key] = reason
        if was:
            return []
        self.transitions += 1
        return [(symbol, "degrade", reason)]

    def _clear(self, symbol: str, key: str) -> list[Intent]:
        problems = self.problems[symbol]
        if key not in problems:
            return []
        del problems[key]
        return [] if problems else self._restored(symbol)

    def _restored(self, symbol: str) -> list[Intent]:
        self.transitions += 1
        return [(symbol, "restore", "feed valid")]


BINANCE_DEFAULT_STREAMS = ("trade", "bookTicker", "depth@100ms")  # MarketSettings.streams' default


def stream_config(settings: Any) -> StreamConfig | HyperliquidStreamConfig:
    """The stream of ``[market]`` (source binance_usdm | binance_spot | hyperliquid) for the configured symbols."""
    m = settings.market
    if m.source == "hyperliquid":
        # Symbols are Hyperliquid coin names as configured. ``streams`` left at its (Binance) default
        # means the default channels; otherwise it names Hyperliquid channels (checked by wiring).
        channels = DEFAULT_CHANNELS if tuple(m.streams) == BINANCE_DEFAULT_STREAMS else tuple(m.streams)
        return HyperliquidStreamConfig(symbols=tuple(s.symbol for s in settings.symbols), channels=channels,
                                       testnet=m.testnet, ws_base=m.ws_url or None, stale_after_s=m.stale_after_s)
    market = Market.FUTURES if m.source == "binance_usdm" else Market.SPOT
    return StreamConfig(market=market, symbols=tuple(s.symbol for s in settings.symbols), streams=tuple(m.streams),
                        testnet=m.testnet, ws_base=m.ws_url or None, rest_base=m.rest_url or None,
                        stale_after_s=m.stale_after_s)


class RiskProbe:
    """Reads Risk's record of one scope on the coordinator's own thread: ``(state, who)`` or None."""

    def __init__(self, runtime: Any) -> None:
        self._runtime = runtime

    def __call__(self, scope: str) -> tuple[TradingState, str] | None:
        def read(d: Any) -> tuple[TradingState, str] | None:
            risk = d.actors.get("risk")
            controls = getattr(getattr(risk, "inner", risk), "controls", None)
            rec = controls.scopes.get(scope) if controls is not None else None
            return (rec.state, rec.who) if rec is not None else None

        try:
            return self._runtime.ask("coordinator", read, timeout=2.0)
        except Exception:
            return None


class MarketFeed:
    """A Binance market stream on its own loop, feeding the runtime and holding back bad symbols."""

    def __init__(self, config: StreamConfig | HyperliquidStreamConfig, venue: str, send: Callable[[str, Any], None],
                 probe: Callable[[str], tuple[TradingState, str] | None], *, clock: Any, log: Any,
                 rng: Any = None) -> None:
        self.config = config
        self.venue = venue
        self._send = send  # send(receiver, msg): an external input into the runtime
        self._probe = probe
        self._clock = clock
        self._log = log.bind(actor="market-feed", event_type="feed_status")
        self._rng = rng
        self.guard = FeedGuard(config.symbols)
        self.held: dict[str, bool] = {s: False for s in config.symbols}  # the feed's own REDUCING stands
        self._frames: queue.SimpleQueue[tuple[int, str, bytes] | None] = queue.SimpleQueue()
        self._fallback = config.symbols[0]
        self.stream: BinanceMarketStream | HyperliquidMarketStream | None = None
        self.unroutable = 0
        self.sent: list[SetTradingState] = []
        self._pool: ThreadPoolExecutor | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.finished = threading.Event()

    # -- runtime side -----------------------------------------------------------------------------
    def frames(self, stop: threading.Event, poll_s: float = 0.05) -> Iterator[tuple[int, str, bytes]]:
        """What the runtime's feed thread plays: blocks for the next frame, ends when ``stop`` is set."""
        get = self._frames.get
        while not stop.is_set():
            try:
                item = get(timeout=poll_s)
            except queue.Empty:
                continue
            if item is None:
                return
            yield item

    def run_until(self, stop: threading.Event, poll_s: float = 0.05) -> None:
        """The stream thread's body: stream until ``stop`` is set, then close and log the stats."""
        try:
            asyncio.run(self._main(stop, poll_s))
        finally:
            self._frames.put(None)
            self.finished.set()

    @property
    def stats(self) -> dict[str, int]:
        return dict(self.stream.stats) if self.stream is not None else {}

    # -- the loop ---------------------------------------------------------------------------------
    async def _main(self, stop: threading.Event, poll_s: float) -> None:
        self._loop = asyncio.get_running_loop()
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="arbor-feed-guard")
        kwargs = {"rng": self._rng} if self._rng is not None else {}
        stream_cls = HyperliquidMarketStream if isinstance(self.config, HyperliquidStreamConfig) else BinanceMarketStream
        self.stream = stream_cls(self.config, self._on_frame, on_status=self._on_status,  # type: ignore[arg-type]  # the config's type picks the class
                                 clock=self._clock.now_ns, log=self._log, **kwargs)
        task = asyncio.create_task(self.stream.run(), name="market-stream")
        try:
            while not stop.is_set() and not task.done():
                await asyncio.sleep(poll_s)
        finally:
            self.stream.stop()
            try:
                await asyncio.wait_for(task, timeout=2.0)
            except (TimeoutError, Exception) as exc:  # noqa: BLE001 - stopping: report, never raise
                self._log.warning("market stream did not stop cleanly: {!r}", exc)
            self._pool.shutdown(wait=True, cancel_futures=False)
            self._log.info("market feed stopped; stream stats {}", self.stream.stats)

    def _on_frame(self, ts_ns: int, symbol: str | None, payload: bytes) -> None:
        if symbol is None:
            symbol = self._fallback  # unparsed: the collector journals it as a DecodeFailure
        elif symbol not in self.held:
            self.unroutable += 1
            self._log.error("frame for unsubscribed symbol {!r} not fed ({} so far)", symbol, self.unroutable)
            return
        self._frames.put((ts_ns, symbol, payload))
        if self.guard.problems[symbol]:
            self._apply(self.guard.on_frame(symbol))

    def _on_status(self, status: StreamStatus) -> None:
        stats = self.stream.stats if self.stream is not None else {}
        log = self._log.warning if status.kind in ("disconnected", "stale", "book_desynced", "snapshot_failed") else self._log.info
        log("feed {} {} {} (disconnects={} reconnects={} resubscribes={} stale={} gaps={})", status.kind,
            status.symbol or "*", status.detail, stats.get("disconnects"), stats.get("reconnects"),
            stats.get("resubscribes"), stats.get("stale"), stats.get("book_gaps"))
        self._apply(self.guard.on_status(status))

    def _apply(self, intents: list[Intent]) -> None:
        if not intents or self._pool is None:
            return
        for intent in intents:  # one worker thread: intents reach Risk in the order they happened
            self._pool.submit(self.enact, *intent)

    def enact(self, symbol: str, what: str, reason: str) -> None:
        """Degrade (``what="degrade"``: REDUCING) or restore (ACTIVE) ``symbol`` for ``reason``: read
        Risk's record, then send only what the feed may send. The feed runs it on its guard thread,
        one intent after another; called directly, it runs on the caller's."""
        record = self._probe(symbol)
        state, who = record if record is not None else (TradingState.ACTIVE, "")
        if what == "degrade":
            if state is not TradingState.ACTIVE and who != FEED_WHO:
                self._log.warning("{} already {} (set by {!r}): the feed leaves it", symbol, state.value, who)
                return
            self._emit(symbol, TradingState.REDUCING, reason)
            self.held[symbol] = True
        else:
            if not self.held[symbol]:
                return
            self.held[symbol] = False
            # ACTIVE at Risk: our REDUCING has not landed yet (it will, before this) or was lifted already.
            if state is TradingState.ACTIVE or (state is TradingState.REDUCING and who == FEED_WHO):
                self._emit(symbol, TradingState.ACTIVE, reason)
            else:
                self._log.warning("{} is {} (set by {!r}), not the feed's: left as it is", symbol, state.value, who)

    def _emit(self, symbol: str, state: TradingState, reason: str) -> None:
        msg = SetTradingState(scope=symbol, state=state, who=FEED_WHO, reason=reason)
        self.sent.append(msg)
        self._log.warning("feed sets {} {}: {}", symbol, state.value, reason)
        self._send("risk", msg)
