"""Connects a started ``ThreadedRuntime`` to real venues: the market stream and, in live mode, order entry.

``start_venues(settings, runtime, clock)`` is what ``LiveCluster.start`` calls when
``[market] source`` is a venue or ``run.mode = "live"``. It checks the combination first
(``check_venue_settings``: a ``ConfigError`` naming the key), prints the LIVE banner in live mode,
starts the I/O threads through the runtime (so ``runtime.stop()`` stops and joins them) and
connects every symbol's ``VenueGatewayLogic`` port to the order-entry worker.
"""

from __future__ import annotations

import asyncio
from typing import Any

from arbor.adapters.venues.feed import FEED_SENDER, MarketFeed, RiskProbe, stream_config
from arbor.adapters.venues.gateway import VenueGatewayLogic, VenueIOWorker, runtime_delivery
from arbor.config.errors import ConfigError
from loguru import logger

STREAMED_SOURCES = ("binance_usdm", "binance_spot", "hyperliquid")
LIVE_VENUES = ("binance_usdm",)

FUTURES_REST = "https://fapi.binance.com"
FUTURES_TESTNET_REST = "https://testnet.binancefuture.com"
FUTURES_USER_WS = "wss://fstream.binance.com"
FUTURES_TESTNET_USER_WS = "wss://stream.binancefuture.com"


def check_venue_settings(settings: Any) -> None:
    """Combinations the settings sections cannot check alone; ``ConfigError`` naming the key."""
    source = settings.market.source
    if source in STREAMED_SOURCES:
        for i, s in enumerate(settings.symbols):
            if s.venue != source:
                raise ConfigError(f"symbols[{i}].venue", f"market.source {source!r} streams {source} data; "
                                                         f"{s.symbol} is configured for {s.venue!r}")
    if source == "hyperliquid":
        from arbor.adapters.hyperliquid.stream import COIN_CHANNELS, GLOBAL_CHANNELS
        from arbor.adapters.venues.feed import BINANCE_DEFAULT_STREAMS

        streams = tuple(settings.market.streams)
        known = COIN_CHANNELS + GLOBAL_CHANNELS
        if streams != BINANCE_DEFAULT_STREAMS and not set(streams) <= set(known):
            raise ConfigError("market.streams", f"hyperliquid channels are {', '.join(known)}; got {', '.join(streams)}")
    if settings.run.mode == "live" and source not in LIVE_VENUES:
        raise ConfigError("market.source", f"live mode trades on a real venue's data; supported: "
                                           f"{', '.join(LIVE_VENUES)}, got {source!r}")


def order_endpoints(settings: Any) -> tuple[str, str]:
    """(REST base, user-data websocket base) of live order entry."""
    run, testnet = settings.run, settings.market.testnet
    rest = run.venue_rest_url or (FUTURES_TESTNET_REST if testnet else FUTURES_REST)
    ws = run.venue_ws_url or (FUTURES_TESTNET_USER_WS if testnet else FUTURES_USER_WS)
    if ws.startswith("http"):
        ws = "ws" + ws[4:]
    return rest.rstrip("/"), ws.rstrip("/")


def live_banner(settings: Any) -> str:
    net = "TESTNET" if settings.market.testnet else "MAINNET (real money)"
    rest, _ = order_endpoints(settings)
    symbols = ",".join(s.symbol for s in settings.symbols)
    bar = "!" * 72
    return (f"{bar}\n!! LIVE TRADING: real orders will be sent\n!! venue={settings.market.source} network={net}\n"
            f"!! order entry={rest}\n!! symbols={symbols}\n{bar}")


class VenueConnections:
    """What ``start_venues`` started: the market feed and the order-entry worker (either may be None)."""

    def __init__(self, feed: MarketFeed | None, worker: VenueIOWorker | None) -> None:
        self.feed = feed
        self.worker = worker


def start_venues(settings: Any, runtime: Any, clock: Any) -> VenueConnections:
    """Start the market stream and (live) the order-entry worker on threads the runtime joins on stop."""
    check_venue_settings(settings)
    log = logger.bind(actor="venues", event_type="lifecycle")
    symbols = tuple(s.symbol for s in settings.symbols)
    # The runtime's stop event and thread spawner: runtime.stop() sets the one and joins the other.
    stopping, spawn = runtime._stop, runtime._spawn
    worker = None
    if settings.run.mode == "live":
        worker = _binance_worker(settings, runtime, clock, symbols)
        banner = live_banner(settings)
        print(banner, flush=True)
        log.warning("LIVE trading: venue={} testnet={} symbols={}", settings.market.source, settings.market.testnet,
                    ",".join(symbols))
        spawn(lambda: worker.run_until(stopping), "arbor-venue-io")
        for s in symbols:
            logic = runtime.dispatcher(s).actors[f"{s}/venue"]
            gateway = getattr(logic, "inner", logic)
            if not isinstance(gateway, VenueGatewayLogic):
                raise RuntimeError(f"{s}/venue is {type(gateway).__name__}, not the live gateway")
            gateway.port.connect(worker.submit)
    feed = None
    if settings.market.source in STREAMED_SOURCES:
        config = stream_config(settings)
        feed = MarketFeed(config, settings.market.source,
                          lambda receiver, msg: runtime.send(receiver, msg, sender=FEED_SENDER),
                          RiskProbe(runtime), clock=clock, log=logger)
        log.info("market stream {} testnet={} url={}", settings.market.source, settings.market.testnet, config.url)
        spawn(lambda: feed.run_until(stopping), "arbor-market-stream")
        runtime.feed(feed.frames(stopping), settings.market.source, paced=False, batch=1)
    return VenueConnections(feed, worker)


def _binance_worker(settings: Any, runtime: Any, clock: Any, symbols: tuple[str, ...]) -> VenueIOWorker:
    from arbor.adapters.binance.rest import BinanceFuturesRest, BinanceRestConfig
    from arbor.adapters.binance.userdata import BinanceUserDataStream
    from arbor.adapters.credentials import MissingCredential, binance_credentials_from_env

    try:
        creds = binance_credentials_from_env()
    except MissingCredential as exc:
        raise ConfigError("run.mode", f"live: {exc}") from None
    rest_url, ws_url = order_endpoints(settings)
    wlog = logger.bind(actor="venue-io", venue="binance_usdm")
    config = BinanceRestConfig(request_timeout_s=settings.run.venue_timeout_s)

    def client(session: Any) -> BinanceFuturesRest:
        return BinanceFuturesRest(rest_url, creds, session, clock, asyncio.sleep, config, log=wlog)

    async def setup(rest: BinanceFuturesRest) -> None:
        await rest.sync_time()

    def user_stream(rest: BinanceFuturesRest, session: Any, deliver: Any) -> BinanceUserDataStream:
        return BinanceUserDataStream(rest, ws_url, session, clock, asyncio.sleep, deliver,
                                     log=wlog.bind(stream="user_data"))

    return VenueIOWorker(client, runtime_delivery(runtime, symbols, wlog), log=wlog, setup=setup,
                         user_stream=user_stream)


def hyperliquid_worker(base_url: str, credentials: Any, runtime: Any, clock: Any, symbols: tuple[str, ...]) -> VenueIOWorker:
    """Order entry on Hyperliquid through the same gateway (not yet selectable from the config)."""
    from arbor.adapters.hyperliquid.exchange import HyperliquidExchange

    wlog = logger.bind(actor="venue-io", venue="hyperliquid")

    def client(session: Any) -> HyperliquidExchange:
        return HyperliquidExchange(base_url, credentials, session, clock, asyncio.sleep, log=wlog)

    async def setup(ex: HyperliquidExchange) -> None:
        await ex.load_meta()

    return VenueIOWorker(client, runtime_delivery(runtime, symbols, wlog), log=wlog, setup=setup)


__all__ = ["STREAMED_SOURCES", "VenueConnections", "check_venue_settings", "live_banner", "order_endpoints",
           "start_venues", "hyperliquid_worker"]
