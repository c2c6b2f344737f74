"""Bars and indicators the strategy declares are built from trades inside the Feature actor."""

from __future__ import annotations

from decimal import Decimal

import pytest
from arbor.actors.feature.logic import FeatureLogic
from arbor.actors.testing import make_ctx
from arbor.config.errors import ConfigError
from arbor.messages import MarketEventKind, RawMarketEvent, Regime, Side
from arbor.strategy import Bar, Context, Indicator, Inputs
from arbor.strategy.inputs import BarBuilder, interval_ns

S = 1_000_000_000


def trade(ts: int, price: str, qty: str = "1", seq: int = 0) -> RawMarketEvent:
    return RawMarketEvent(symbol="BTCUSDT", venue="sim", kind=MarketEventKind.TRADE, ts_event_ns=ts, ts_recv_ns=ts, raw=b"",
                          ingest_seq=seq, price=Decimal(price), qty=Decimal(qty), side=Side.BUY)


def test_bars_are_ohlcv_of_trades_with_flat_gaps():
    """A 1s bar is the OHLCV of its trades; a second without trades is a flat bar of zero volume."""
    b = BarBuilder(Inputs(bars={"1s": 5}))
    for ts, p, q in ((0, 10.0, 1.0), (S // 2, 12.0, 2.0), (S - 1, 9.0, 1.0), (S + 1, 11.0, 1.0), (3 * S, 13.0, 1.0)):
        b.on_event(ts, p, q)
    [(interval, rows)] = b.bars
    assert interval == "1s"
    assert rows == ((0, 10.0, 12.0, 9.0, 9.0, 4.0), (S, 11.0, 11.0, 11.0, 11.0, 1.0), (2 * S, 11.0, 11.0, 11.0, 11.0, 0.0))


def test_indicators_update_on_closed_bars_only():
    """An SMA(2) on 1s bars is the mean of the last two closes, not moved by the open bar."""
    b = BarBuilder(Inputs(indicators={"slow": Indicator(kind="sma", interval="1s", period=2)}))
    b.on_event(0, 10.0, 1.0)
    b.on_event(S, 20.0, 1.0)
    assert b.indicators == ()
    b.on_event(2 * S, 99.0, 1.0)
    assert b.indicators == (("slow", 15.0),)
    assert b.bars == ()  # no bars asked for, only the indicator


def test_feature_actor_puts_bars_and_indicators_in_the_snapshot():
    """The FeatureSnapshot carries the declared bars and indicators, and the Context reads them back."""
    inputs = Inputs(bars={"1s": 3}, indicators={"bb": Indicator(kind="bollinger", interval="1s", period=2, k=1.0)})
    logic = FeatureLogic(make_ctx("BTCUSDT/feature", "BTCUSDT"), inputs=inputs)
    snaps = [s for i, p in enumerate(("10", "12", "14", "16")) for s in logic.on_raw_market_event(trade(i * S, p, seq=i))]
    ctx = Context(features=snaps[-1], regime=Regime.RANGING)
    assert ctx.bars("1s") == (Bar(0, 10.0, 10.0, 10.0, 10.0, 1.0), Bar(S, 12.0, 12.0, 12.0, 12.0, 1.0),
                              Bar(2 * S, 14.0, 14.0, 14.0, 14.0, 1.0))
    assert ctx.indicator("bb.middle") == 13.0 and ctx.indicator("bb.upper") == 14.0
    assert ctx.indicator("nope") is None and ctx.bars("5m") == ()


def test_no_inputs_keeps_the_snapshot_as_before():
    """A strategy that declares nothing gets snapshots with empty bars and indicators."""
    logic = FeatureLogic(make_ctx("BTCUSDT/feature", "BTCUSDT"))
    [snap] = logic.on_raw_market_event(trade(0, "10"))
    assert snap.bars == () and snap.indicators == ()


@pytest.mark.parametrize(("inputs", "words"), [
    (Inputs(bars={"5x": 3}), "bar interval '5x'"),
    (Inputs(bars={"1s": 0}), "must be an integer"),
    (Inputs(indicators={"a": Indicator(kind="macd", interval="1s")}), "unknown indicator 'macd'"),
    (Inputs(indicators={"a": Indicator(kind="ema", interval="1s", period=0)}), "period must be"),
])
def test_bad_inputs_are_config_errors(inputs, words):
    """A bad interval, history length or indicator is refused with the reason."""
    with pytest.raises(ConfigError, match=words):
        inputs.validate()


def test_interval_units():
    """Intervals are written 500ms, 5s, 1m or 1h."""
    assert [interval_ns(x) for x in ("500ms", "5s", "1m", "1h")] == [S // 2, 5 * S, 60 * S, 3600 * S]
