"""The burst window is one implementation: the Feature actor's liq_* and the offline meter agree at every event."""

from __future__ import annotations

import random

import pytest
from arbor.actors.feature import FeatureConfig
from arbor.adapters.sim.market import SimMarket
from arbor.analysis.bursts import BurstMeter, BurstWindow
from arbor.analysis.events import decode_frames
from arbor.analysis.tape import build_tapes
from arbor.messages import Side

from tests.analysis.helpers import SEC, SIM_BTC, T0, Events


def test_window_counts_open_bucket_and_drops_the_oldest():
    """count/notional cover the open bucket and the last `window` closed ones; None counts without notional."""
    w = BurstWindow(2)
    w.add(100.0)
    w.add(None)
    assert (w.count, w.notional) == (2, 100.0)
    w.close_bucket()
    w.add(50.0)
    assert (w.count, w.notional) == (3, 150.0)
    w.close_bucket()
    w.close_bucket()  # the first bucket drops out
    assert (w.count, w.notional) == (1, 50.0)
    with pytest.raises(ValueError, match="at least one bucket"):
        BurstWindow(0)


def test_meter_closes_buckets_by_event_time_and_keeps_late_prints_in_the_open_one():
    """A jump of buckets empties the window; an event from a closed bucket counts in the open one."""
    m = BurstMeter(1000, 3)
    m.add(T0, 10.0)
    m.add(T0 + 2 * SEC, 20.0)
    m.add(T0 + 1 * SEC, 5.0)  # late: bucket 1 is closed, it counts in bucket 2
    assert (m.window.count, m.window.notional) == (3, 35.0)
    m.at(T0 + 5 * SEC)  # buckets 2, 3, 4 closed: bucket 0 dropped out
    assert (m.window.count, m.window.notional) == (2, 25.0)
    m.at(T0 + 60 * SEC)
    assert (m.window.count, m.window.notional) == (0, 0.0)


def _random_events(seed: int) -> Events:
    rng = random.Random(seed)
    ev = Events()
    t = T0
    mid = 100.0
    for _ in range(3000):
        t += int(rng.expovariate(1 / 0.15) * SEC) if rng.random() > 0.01 else int(rng.uniform(5, 40) * SEC)
        late = t - int(rng.uniform(0, 2.5) * SEC) if rng.random() < 0.05 else t
        mid *= 1 + rng.gauss(0, 0.0005)
        r = rng.random()
        if r < 0.5:
            ev.quote(late, round(mid, 2))
        elif r < 0.8:
            ev.trade(late, round(mid, 2), round(rng.uniform(0.01, 3), 3), rng.choice((Side.BUY, Side.SELL)))
        else:
            ev.liquidation(late, round(mid, 2), round(rng.uniform(0.01, 3), 3), rng.choice((Side.BUY, Side.SELL)))
    return ev


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_meter_equals_the_feature_actor_at_every_liquidation(seed):
    """BurstMeter fed only the liquidations (at tape time) gives exactly the runtime's liq_count and
    liq_notional (bit for bit), across gaps, empty buckets and late prints."""
    cfg = FeatureConfig(bucket_ms=1000, short_window=4, long_window=8, min_samples=2)
    [tape] = build_tapes(_random_events(seed).events, cfg).values()
    assert len(tape.liquidations) > 400
    meter = BurstMeter(cfg.bucket_ms, cfg.short_window)
    checked = 0
    for f in tape.liquidations:
        meter.add(f.ts_ns, f.notional)
        if f.window_count is not None:
            assert (meter.window.count, meter.window.notional) == (f.window_count, f.window_notional)
            checked += 1
    assert checked > 400


def test_meter_equals_the_feature_actor_on_the_simulated_wire_format():
    """Simulated Binance frames with forceOrder cascades, decoded by the collectors: the same equality."""
    market = SimMarket([SIM_BTC], seed=7, start_ns=T0)
    frames = ((ts, "sim", sym, payload) for ts, sym, payload in market.frames(until_ns=T0 + 900 * SEC))
    events, failures = decode_frames(frames)
    assert failures == {}
    [tape] = build_tapes(events).values()
    assert len(tape.liquidations) >= 10
    meter = BurstMeter(1000, FeatureConfig().short_window)
    for f in tape.liquidations:
        meter.add(f.ts_ns, f.notional)
        assert (meter.window.count, meter.window.notional) == (f.window_count, f.window_notional)
    assert max(f.window_count or 0 for f in tape.liquidations) >= 3
