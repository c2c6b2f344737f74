"""FeatureLogic: features of hand-made event sequences against straightforward recomputation."""

from __future__ import annotations

import math
import statistics
from decimal import Decimal as D
from itertools import pairwise
from typing import Any

import pytest
from arbor.actors.feature import FeatureConfig, FeatureLogic
from arbor.actors.testing import handled, make_ctx
from arbor.config.errors import ConfigError
from arbor.messages import FeatureSnapshot, MarketEventKind, RawMarketEvent, Side
from arbor.messages.market import levels_text

T0 = 1_700_000_000_000_000_000  # a bucket boundary
SEC = 1_000_000_000
SMALL = FeatureConfig(bucket_ms=1000, short_window=3, long_window=6, min_samples=4)


class Feed:
    """Drives a FeatureLogic with numbered events and keeps the last snapshot."""

    def __init__(self, config: FeatureConfig = SMALL) -> None:
        self.logic = FeatureLogic(make_ctx("TEST/feature", "TEST"), config)
        self.seq = 0
        self.last: FeatureSnapshot | None = None

    def send(self, ts: int, kind: MarketEventKind, **fields: Any) -> list[FeatureSnapshot]:
        self.seq += 1
        ev = RawMarketEvent(symbol="TEST", venue="sim", ingest_seq=self.seq, ts_event_ns=ts, ts_recv_ns=ts,
                            kind=kind, raw=b"{}", **fields)
        out = self.logic.handle(ev)
        assert out is not None
        if out:
            self.last = out[-1]
        return out

    def quote(self, ts: int, mid: float, half_spread: float = 0.5) -> list[FeatureSnapshot]:
        return self.send(ts, MarketEventKind.QUOTE, bid_price=D(repr(mid - half_spread)), bid_qty=D("1"),
                         ask_price=D(repr(mid + half_spread)), ask_qty=D("1"))

    def trade(self, ts: int, price: float, qty: float, side: Side | None) -> list[FeatureSnapshot]:
        return self.send(ts, MarketEventKind.TRADE, price=D(repr(price)), qty=D(repr(qty)), side=side)

    def liquidation(self, ts: int, price: float, qty: float) -> list[FeatureSnapshot]:
        return self.send(ts, MarketEventKind.LIQUIDATION, price=D(repr(price)), qty=D(repr(qty)), side=Side.SELL)


def at(bucket: int, ms: int = 100) -> int:
    return T0 + bucket * SEC + ms * 1_000_000


def expected_windows(prices: list[list[float]], cfg: FeatureConfig) -> dict[str, float]:
    """Recompute the price-path features from the mids of each completed bucket, the obvious way."""
    closes = [prices[0][0]]
    ranges = []
    for bucket in prices:
        prev = closes[-1]
        ranges.append(max(prev, *bucket) - min(prev, *bucket))
        closes.append(bucket[-1])
    returns = [math.log(b / a) for a, b in pairwise(closes)][-cfg.long_window:]
    short = returns[-cfg.short_window:]
    vol = statistics.stdev(returns)
    return {
        "ret_long": math.log(closes[-1] / closes[-1 - len(returns)]),
        "ret_short": math.log(closes[-1] / closes[-1 - len(short)]),
        "realized_vol": vol,
        "vol_ratio": statistics.stdev(short) / vol,
        "efficiency_ratio": abs(sum(returns)) / sum(abs(r) for r in returns),
        "atr": statistics.fmean(ranges[-cfg.long_window:]),
        "samples": len(returns),
    }


PATH = [[100.0, 101.0], [102.0, 100.5], [103.0], [99.0, 104.0, 101.5], [101.5], [105.0, 106.0],
        [104.0, 103.0], [107.5], [106.0, 108.0], [110.0]]


def test_no_snapshot_before_a_price_is_known():
    """Events that carry no price (liquidation, mark) yield nothing until a quote or trade arrives."""
    feed = Feed()
    assert feed.liquidation(at(0), 100.0, 1.0) == []
    assert feed.send(at(0, 200), MarketEventKind.MARK, mark_price=D("100")) == []
    assert len(feed.quote(at(0, 300), 100.0)) == 1


def test_quote_gives_mid_and_spread():
    """A quote sets mid to (bid + ask) / 2 and spread_bps to (ask - bid) / mid * 1e4."""
    feed = Feed()
    [snap] = feed.quote(at(0), 200.0, half_spread=0.1)
    assert snap.mid == pytest.approx(200.0)
    assert snap.spread_bps == pytest.approx(0.2 / 200.0 * 1e4)


def test_snapshot_echoes_symbol_time_and_sequence():
    """Each snapshot carries the symbol, event time and ingest_seq of the event behind it."""
    feed = Feed()
    [snap] = feed.quote(at(0, 123), 100.0)
    assert (snap.symbol, snap.ts_event_ns, snap.ingest_seq) == ("TEST", at(0, 123), 1)


def test_trades_without_book_set_mid_to_last_price():
    """Before any quote the reference price (mid) is the last trade price, and spread is 0."""
    feed = Feed()
    feed.trade(at(0), 100.0, 1.0, Side.BUY)
    [snap] = feed.trade(at(0, 200), 101.0, 1.0, Side.SELL)
    assert (snap.mid, snap.last_price, snap.spread_bps) == (101.0, 101.0, 0.0)


def test_trade_does_not_move_mid_once_book_is_known():
    """With a book the mid stays the book mid; the trade shows in last_price."""
    feed = Feed()
    feed.quote(at(0), 100.0)
    [snap] = feed.trade(at(0, 200), 100.5, 1.0, Side.BUY)
    assert (snap.mid, snap.last_price) == (100.0, 100.5)


def test_last_price_falls_back_to_mid_before_first_trade():
    """last_price is the mid until a trade prints (never NaN or 0)."""
    feed = Feed()
    [snap] = feed.quote(at(0), 100.0)
    assert snap.last_price == 100.0


def test_crossed_quote_is_ignored():
    """A quote with ask below bid does not change the book."""
    feed = Feed()
    feed.quote(at(0), 100.0)
    [snap] = feed.send(at(0, 200), MarketEventKind.QUOTE, bid_price=D("105"), ask_price=D("104"))
    assert snap.mid == 100.0
    assert feed.logic.stats()["ignored"] == 1


def test_depth_snapshot_sets_book_until_first_quote():
    """A SNAPSHOT's best levels set the book while no quote has been seen, and not after."""
    feed = Feed()
    [snap] = feed.send(at(0), MarketEventKind.SNAPSHOT, bids=levels_text(((D("99"), D("1")), (D("98"), D("2")))),
                       asks=levels_text(((D("102"), D("0")), (D("101"), D("1")))))
    assert snap.mid == 100.0
    feed.quote(at(0, 200), 200.0)
    [snap] = feed.send(at(0, 300), MarketEventKind.SNAPSHOT, bids=levels_text(((D("9"), D("1")),)), asks=levels_text(((D("11"), D("1")),)))
    assert snap.mid == 200.0


def test_cvd_accumulates_aggressor_volume_delta():
    """cvd adds buyer-aggressor volume and subtracts seller-aggressor volume, across buckets."""
    feed = Feed()
    feed.trade(at(0), 100.0, 2.0, Side.BUY)
    feed.trade(at(5), 100.0, 0.5, Side.SELL)
    feed.trade(at(20), 100.0, 1.0, None)  # unknown aggressor: volume for vwap only
    [snap] = feed.trade(at(40), 100.0, 0.25, Side.SELL)
    assert snap.cvd == pytest.approx(2.0 - 0.5 - 0.25)


def test_trade_imbalance_covers_short_window_only():
    """trade_imbalance is (buy - sell) / (buy + sell) over the open bucket and the last short_window buckets."""
    feed = Feed()  # short_window = 3
    feed.trade(at(0), 100.0, 3.0, Side.BUY)
    feed.trade(at(1), 100.0, 1.0, Side.SELL)
    [snap] = feed.trade(at(3), 100.0, 1.0, Side.SELL)  # buckets 0..2 completed: all trades count
    assert snap.trade_imbalance == pytest.approx((3.0 - 2.0) / 5.0)
    [snap] = feed.trade(at(4), 100.0, 1.0, Side.SELL)  # bucket 0 (the 3.0 buy) has left the window
    assert snap.trade_imbalance == pytest.approx(-1.0)


def test_vwap_is_volume_weighted_over_long_window():
    """vwap is sum(price * qty) / sum(qty) over the open bucket and the last long_window buckets."""
    feed = Feed()  # long_window = 6
    feed.trade(at(0), 90.0, 10.0, Side.BUY)
    feed.trade(at(1), 100.0, 1.0, Side.BUY)
    [snap] = feed.trade(at(2), 103.0, 3.0, Side.SELL)
    assert snap.vwap == pytest.approx((900.0 + 100.0 + 309.0) / 14.0)
    [snap] = feed.trade(at(7), 103.0, 1.0, Side.SELL)  # bucket 0 has left the window
    assert snap.vwap == pytest.approx((100.0 + 309.0 + 103.0) / 5.0)


def test_vwap_is_mid_without_trades():
    """Without trades in the window vwap equals the mid."""
    feed = Feed()
    [snap] = feed.quote(at(0), 123.0)
    assert snap.vwap == 123.0


def test_liquidations_counted_over_short_window():
    """liq_count and liq_notional sum forced orders of the open bucket and the last short_window buckets."""
    feed = Feed()  # short_window = 3
    feed.quote(at(0), 100.0)
    feed.liquidation(at(0, 200), 100.0, 2.0)
    [snap] = feed.liquidation(at(2), 99.0, 1.0)
    assert (snap.liq_count, snap.liq_notional) == (2, pytest.approx(299.0))
    [snap] = feed.quote(at(4), 100.0)  # bucket 0 is out of the window
    assert (snap.liq_count, snap.liq_notional) == (1, pytest.approx(99.0))
    [snap] = feed.quote(at(6), 100.0)
    assert (snap.liq_count, snap.liq_notional) == (0, 0.0)


@pytest.mark.parametrize("completed", [2, 3, 6, 10])
def test_window_features_match_recomputation(completed):
    """Returns, realized vol, vol ratio, efficiency ratio and ATR equal a direct recomputation."""
    feed = Feed()
    for bucket, prices in enumerate(PATH[:completed]):
        for i, p in enumerate(prices):
            feed.quote(at(bucket, 100 + 100 * i), p)
    [snap] = feed.quote(at(completed, 10), 500.0)  # closes the last bucket; its own price is not in a window
    want = expected_windows(PATH[:completed], SMALL)
    for name, value in want.items():
        assert getattr(snap, name) == pytest.approx(value, rel=1e-9, abs=1e-12), name


def test_price_path_features_change_only_when_a_bucket_closes():
    """Within the open bucket, new prices leave returns, vol and ATR unchanged."""
    feed = Feed()
    for bucket, prices in enumerate(PATH[:5]):
        for i, p in enumerate(prices):
            feed.quote(at(bucket, 100 + 100 * i), p)
    [a] = feed.quote(at(5, 100), 150.0)
    [b] = feed.quote(at(5, 900), 50.0)
    fields = ("ret_short", "ret_long", "realized_vol", "vol_ratio", "efficiency_ratio", "atr", "samples")
    assert [getattr(a, f) for f in fields] == [getattr(b, f) for f in fields]


def test_vol_ratio_is_one_while_unknown():
    """vol_ratio is 1.0 until two returns exist."""
    feed = Feed()
    feed.quote(at(0), 100.0)
    [snap] = feed.quote(at(1), 101.0)
    assert snap.vol_ratio == 1.0


def test_efficiency_ratio_is_zero_on_flat_path():
    """With no movement at all the efficiency ratio is 0, not NaN."""
    feed = Feed()
    for bucket in range(5):
        feed.quote(at(bucket), 100.0)
    assert feed.last is not None and feed.last.efficiency_ratio == 0.0


def test_efficiency_ratio_is_one_on_straight_path():
    """A path that only goes one way has efficiency ratio 1."""
    feed = Feed()
    for bucket in range(5):
        feed.quote(at(bucket), 100.0 + bucket)
    assert feed.last is not None and feed.last.efficiency_ratio == pytest.approx(1.0)


def test_warm_after_min_samples_completed_buckets():
    """warm turns true exactly when min_samples buckets have completed."""
    feed = Feed()  # min_samples = 4
    warm = []
    for bucket in range(7):
        [snap] = feed.quote(at(bucket), 100.0 + bucket % 2)
        warm.append((snap.samples, snap.warm))
    assert warm == [(0, False), (1, False), (2, False), (3, False), (4, True), (5, True), (6, True)]


def test_empty_buckets_are_filled_flat():
    """Buckets without events count as completed, with a zero return and no range."""
    feed = Feed()
    feed.quote(at(0), 100.0)
    [snap] = feed.quote(at(3), 101.0)  # buckets 0, 1, 2 completed; 1 and 2 were empty
    assert snap.samples == 3
    assert snap.ret_long == 0.0 and snap.atr == 0.0


def test_long_gap_fills_at_most_one_window():
    """A gap of a million buckets leaves full, flat windows and costs at most one window of work."""
    feed = Feed()
    feed.quote(at(0), 100.0)
    feed.quote(at(1), 110.0)
    [snap] = feed.quote(at(1_000_000), 120.0)
    assert snap.samples == SMALL.long_window
    assert (snap.ret_long, snap.atr, snap.realized_vol) == (0.0, 0.0, 0.0)
    assert feed.logic.stats()["buckets_closed"] <= 2 + SMALL.long_window + 1


def test_late_event_counts_in_open_bucket():
    """An event older than the open bucket is applied to the open bucket, never reopening a closed one."""
    feed = Feed()
    feed.quote(at(0), 100.0)
    feed.quote(at(2), 100.0)
    [snap] = feed.trade(at(0, 500), 100.0, 1.0, Side.BUY)
    assert snap.samples == 2 and snap.trade_imbalance == 1.0


def test_memory_is_bounded_over_a_long_run():
    """After many buckets every window deque holds at most long_window (+1 for closes) entries."""
    feed = Feed()
    for bucket in range(500):
        feed.quote(at(bucket), 100.0 + (bucket % 7))
        feed.trade(at(bucket, 500), 100.0, 1.0, Side.BUY)
    logic = feed.logic
    deques = [v for v in vars(logic).values() if hasattr(v, "maxlen")]
    assert deques and all(len(d) <= SMALL.long_window + 1 for d in deques)
    assert feed.last is not None and feed.last.samples == SMALL.long_window


@pytest.mark.parametrize(
    ("changes", "key"),
    [
        ({"bucket_ms": 0}, "feature.bucket_ms"),
        ({"short_window": 1}, "feature.short_window"),
        ({"long_window": 10}, "feature.long_window"),
        ({"min_samples": 61}, "feature.min_samples"),
        ({"min_samples": True}, "feature.min_samples"),
    ],
)
def test_config_errors_name_the_key(changes, key):
    """An invalid FeatureConfig raises ConfigError naming feature.<field>."""
    with pytest.raises(ConfigError) as err:
        FeatureConfig(**changes).validate()
    assert err.value.key == key


def test_from_mapping_rejects_unknown_key():
    """An unknown key in the feature section is a ConfigError naming it."""
    with pytest.raises(ConfigError) as err:
        FeatureConfig.from_mapping({"bucket_sec": 1})
    assert err.value.key == "feature.bucket_sec"


# -- emit = "bucket" ------------------------------------------------------------------------------

def _random_walk_events(seed: int, n: int) -> list[RawMarketEvent]:
    """Quotes and trades at irregular times (gaps, bursts, late prints) over many buckets."""
    import random

    rng = random.Random(seed)
    ts, mid, out = T0, 100.0, []
    for seq in range(1, n + 1):
        ts += rng.choice([1, 5, 40, 150, 400, 900, 2500, 7000]) * 1_000_000
        late = rng.random() < 0.02
        mid *= math.exp(rng.gauss(0.0, 0.002))
        event_ts = ts - 1_500_000_000 if late else ts
        if rng.random() < 0.7:
            ev = RawMarketEvent(symbol="TEST", venue="sim", ingest_seq=seq, ts_event_ns=event_ts, ts_recv_ns=ts,
                                kind=MarketEventKind.QUOTE, raw=b"{}", bid_price=D(f"{mid - 0.05:.2f}"),
                                bid_qty=D("1"), ask_price=D(f"{mid + 0.05:.2f}"), ask_qty=D("1"))
        else:
            ev = RawMarketEvent(symbol="TEST", venue="sim", ingest_seq=seq, ts_event_ns=event_ts, ts_recv_ns=ts,
                                kind=MarketEventKind.TRADE, raw=b"{}", price=D(f"{mid:.2f}"),
                                qty=D(f"{rng.uniform(0.001, 2):.3f}"), side=rng.choice([Side.BUY, Side.SELL]))
        out.append(ev)
    return out


@pytest.mark.parametrize("interval_ms", [0, 250, 1000, 1700, 5000])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_bucket_emission_gives_the_regime_the_same_decisions(interval_ms: int, seed: int) -> None:
    """With emit = "bucket" the regime emits exactly what it emits when fed every event."""
    from arbor.actors.regime import RegimeConfig, RegimeLogic
    from arbor.actors.testing import ManualClock

    def run(emit: str) -> tuple[list[object], int]:
        cfg = FeatureConfig(bucket_ms=1000, short_window=3, long_window=8, min_samples=4, emit=emit)
        feature = FeatureLogic(make_ctx("TEST/feature", "TEST"), cfg, decision_interval_ms=interval_ms)
        clock = ManualClock()
        regime = RegimeLogic(make_ctx("TEST/regime", "TEST", clock=clock),
                             RegimeConfig(decision_interval_ms=interval_ms, confirm_cycles=2, trend_er_enter=0.3,
                                          trend_er_exit=0.2, vol_ratio_enter=1.5, vol_ratio_exit=1.2))
        decisions: list[object] = []
        snapshots = 0
        for ev in _random_walk_events(seed, 3000):
            clock.set(ev.ts_recv_ns)
            for snap in handled(feature, ev):
                snapshots += 1
                decisions.extend(handled(regime, snap))
        return decisions, snapshots

    every, every_snaps = run("every_event")
    bucket, bucket_snaps = run("bucket")
    assert every and bucket == every
    if interval_ms >= 1000:
        assert bucket_snaps < every_snaps / 2


def test_bucket_emission_without_the_regime_cadence_emits_every_event() -> None:
    """Not told the regime's cadence, "bucket" cannot know when a cycle is due: it emits every event."""
    feed = Feed(FeatureConfig(bucket_ms=1000, short_window=3, long_window=6, min_samples=1, emit="bucket"))
    for i in range(30):
        assert len(feed.quote(at(i // 3, 100 + i), 100.0 + i)) == 1


def test_bucket_emission_skips_events_between_cycles_once_warm() -> None:
    """Warm, between bucket closes and decision cycles, an event yields no snapshot."""
    cfg = FeatureConfig(bucket_ms=1000, short_window=2, long_window=4, min_samples=2, emit="bucket")
    logic = FeatureLogic(make_ctx("TEST/feature", "TEST"), cfg, decision_interval_ms=1000)
    feed = Feed(cfg)
    feed.logic = logic
    emitted = [len(feed.quote(at(b, ms), 100.0 + b)) for b in range(6) for ms in (100, 400, 700)]
    # until warm (2 closed buckets: from bucket 2) every event; then the first event of each bucket,
    # which is also where each cycle falls due (buckets are as long as the decision interval)
    assert emitted == [1, 1, 1, 1, 1, 1, 1, 0, 0, 1, 0, 0, 1, 0, 0, 1, 0, 0]


def test_emit_must_be_a_known_mode() -> None:
    with pytest.raises(ConfigError, match="feature.emit"):
        FeatureConfig(emit="sometimes").validate()
