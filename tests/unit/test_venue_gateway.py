"""The live venue gateway, its port, the feed guard and the live/market settings, without any network."""

from __future__ import annotations

from decimal import Decimal

import pytest
from arbor.actors.testing import make_ctx
from arbor.adapters.credentials import BINANCE_API_KEY, BINANCE_API_SECRET
from arbor.adapters.venues.feed import FeedGuard, MarketFeed, stream_config
from arbor.adapters.venues.gateway import VenueGatewayLogic, VenuePort
from arbor.adapters.venues.reconnect import StreamStatus
from arbor.config.errors import ConfigError
from arbor.config.settings import load_settings
from arbor.messages import (
    OrderType,
    PlaceOrder,
    QueryOrder,
    QueryPosition,
    RequestCancel,
    SetTradingState,
    Side,
    TradingState,
)
from loguru import logger


def place(coid: str = "ar01") -> PlaceOrder:
    return PlaceOrder(symbol="BTCUSDT", client_order_id=coid, side=Side.BUY, qty=Decimal("0.01"),
                      order_type=OrderType.MARKET, limit_price=None, reduce_only=False, ts_event_ns=1)


def test_gateway_records_and_forwards_without_output():
    """Every executor request is recorded, handed to the port in order, and the logic emits nothing."""
    port, seen = VenuePort(), []
    port.connect(seen.append)
    gw = VenueGatewayLogic(make_ctx("BTCUSDT/venue", "BTCUSDT"), port)
    msgs = [place(), RequestCancel(symbol="BTCUSDT", client_order_id="ar01", ts_event_ns=2),
            QueryOrder(symbol="BTCUSDT", client_order_id="ar01", ts_event_ns=3), QueryPosition(symbol="BTCUSDT", ts_event_ns=4)]
    assert [gw.handle(m) for m in msgs] == [[], [], [], []]
    assert seen == msgs
    assert gw.stats()["requests_PlaceOrder"] == 1 and gw.stats()["port_connected"]


def test_port_buffers_until_a_worker_connects():
    """Requests before the worker exists are kept and delivered first, in order."""
    port, seen = VenuePort(), []
    port.submit("a")
    port.submit("b")
    assert port.pending == 2 and not port.connected
    port.connect(seen.append)
    port.submit("c")
    assert seen == ["a", "b", "c"] and port.pending == 0


def test_guard_gap_degrades_until_the_book_resyncs():
    """A desynced book degrades the symbol once; the next sync restores it."""
    g = FeedGuard(["BTCUSDT", "ETHUSDT"])
    assert g.on_status(StreamStatus(kind="book_desynced", symbol="BTCUSDT", detail="gap")) == [("BTCUSDT", "degrade", "book_desync")]
    assert g.on_status(StreamStatus(kind="book_desynced", symbol="BTCUSDT", detail="gap")) == []
    assert g.on_frame("BTCUSDT") == []  # frames alone do not fix a book
    assert g.on_status(StreamStatus(kind="book_synced", symbol="BTCUSDT")) == [("BTCUSDT", "restore", "feed valid")]
    assert not g.degraded("BTCUSDT") and not g.degraded("ETHUSDT")


def test_guard_stale_and_disconnect_clear_on_data():
    """Stale and disconnected degrade every symbol; each is valid again on its next frame (and synced book)."""
    g = FeedGuard(["BTCUSDT", "ETHUSDT"])
    assert g.on_status(StreamStatus(kind="stale")) == [("BTCUSDT", "degrade", "stale_feed"), ("ETHUSDT", "degrade", "stale_feed")]
    assert g.on_status(StreamStatus(kind="disconnected")) == []
    assert g.on_status(StreamStatus(kind="book_interrupted", symbol="BTCUSDT")) == []
    assert g.on_frame("ETHUSDT") == [("ETHUSDT", "restore", "feed valid")]
    assert g.on_frame("BTCUSDT") == []  # its book is still interrupted
    assert g.on_status(StreamStatus(kind="book_synced", symbol="BTCUSDT")) == [("BTCUSDT", "restore", "feed valid")]


class _Risk:
    """Risk's record of the scope, as the probe would read it, and what the feed sent."""

    def __init__(self, state: TradingState = TradingState.ACTIVE, who: str = "") -> None:
        self.record = (state, who)
        self.sent: list[SetTradingState] = []

    def send(self, receiver: str, msg: SetTradingState) -> None:
        assert receiver == "risk"
        self.sent.append(msg)
        self.record = (msg.state, msg.who)


def _feed(risk: _Risk) -> MarketFeed:
    settings = load_settings({"market": {"source": "binance_usdm"},
                              "symbols": [{"symbol": "BTCUSDT", "venue": "binance_usdm"}]})
    return MarketFeed(stream_config(settings), "binance_usdm", risk.send, lambda scope: risk.record,
                      clock=None, log=logger)


def test_feed_sets_reducing_and_lifts_only_its_own():
    """Degrade sends REDUCING who=feed; recovery sends ACTIVE only while the state is still the feed's."""
    risk = _Risk()
    feed = _feed(risk)
    feed.enact("BTCUSDT", "degrade", "book_desync")
    assert [(m.state, m.who, m.reason) for m in risk.sent] == [(TradingState.REDUCING, "feed", "book_desync")]
    risk.record = (TradingState.REDUCING, "operator")  # an operator pauses meanwhile
    feed.enact("BTCUSDT", "restore", "feed valid")
    assert len(risk.sent) == 1 and risk.record == (TradingState.REDUCING, "operator")


def test_feed_never_loosens_an_operator_or_supervision_state():
    """A symbol already HALTED or paused by someone else is left alone, and not lifted on recovery."""
    for record in ((TradingState.HALTED, "supervision"), (TradingState.REDUCING, "operator")):
        risk = _Risk(*record)
        feed = _feed(risk)
        feed.enact("BTCUSDT", "degrade", "stale_feed")
        feed.enact("BTCUSDT", "restore", "feed valid")
        assert risk.sent == [] and risk.record == record


def test_feed_restores_its_own_state():
    """The feed's REDUCING is lifted to ACTIVE when the data is valid again."""
    risk = _Risk()
    feed = _feed(risk)
    feed.enact("BTCUSDT", "degrade", "stale_feed")
    feed.enact("BTCUSDT", "restore", "feed valid")
    assert [m.state for m in risk.sent] == [TradingState.REDUCING, TradingState.ACTIVE]


def test_live_settings_need_the_flag_and_every_credential(monkeypatch):
    """run.mode = live: without live_enabled, or with a credential unset, a ConfigError names the key or variable."""
    monkeypatch.setenv(BINANCE_API_KEY, "k")
    monkeypatch.setenv(BINANCE_API_SECRET, "s")
    with pytest.raises(ConfigError) as exc:
        load_settings({"run": {"mode": "live"}})
    assert exc.value.key == "run.live_enabled"
    for name in (BINANCE_API_KEY, BINANCE_API_SECRET):
        monkeypatch.setenv(BINANCE_API_KEY, "k")
        monkeypatch.setenv(BINANCE_API_SECRET, "s")
        monkeypatch.delenv(name)
        with pytest.raises(ConfigError) as exc:
            load_settings({"run": {"mode": "live", "live_enabled": True}})
        assert name in str(exc.value)
    monkeypatch.setenv(BINANCE_API_KEY, "k")
    monkeypatch.setenv(BINANCE_API_SECRET, "s")
    assert load_settings({"run": {"mode": "live", "live_enabled": True}}).run.mode == "live"


@pytest.mark.parametrize("market,key", [
    ({"source": "binance_perp"}, "market.source"),
    ({"source": "binance_usdm", "ws_url": "http://x"}, "market.ws_url"),
    ({"source": "binance_usdm", "rest_url": "ws://x"}, "market.rest_url"),
    ({"source": "binance_usdm", "stale_after_s": 0}, "market.stale_after_s"),
])
def test_market_settings_name_the_bad_key(market, key):
    """Bad streamed-market settings are errors naming the key."""
    with pytest.raises(ConfigError) as exc:
        load_settings({"market": market})
    assert exc.value.key == key


def test_stream_config_follows_testnet_and_overrides():
    """testnet selects Binance's testnet endpoints; explicit URLs win."""
    symbols = [{"symbol": "BTCUSDT", "venue": "binance_usdm"}]
    cfg = stream_config(load_settings({"market": {"source": "binance_usdm", "testnet": True}, "symbols": symbols}))
    assert cfg.url.startswith("wss://stream.binancefuture.com/stream?streams=btcusdt@trade")
    assert cfg.rest_url == "https://testnet.binancefuture.com"
    cfg = stream_config(load_settings({"market": {"source": "binance_usdm", "ws_url": "ws://127.0.0.1:1"},
                                       "symbols": symbols}))
    assert cfg.url.startswith("ws://127.0.0.1:1/stream")
