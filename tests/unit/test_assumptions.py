"""The assumption registry: each observation with known answers, health levels, windows, config errors."""

from __future__ import annotations

from decimal import Decimal as D

import pytest
from arbor.actors.assumptions import AssumptionRegistry, health, nearest_rank
from arbor.config.errors import ConfigError
from arbor.config.settings import load_settings
from arbor.messages import AssumptionStatus, OrderFilled, Side
from arbor.strategy import Assumption
from arbor.strategy.testing import make_snapshot

S = 1_000_000_000
T0 = 1_700_000_000 * S
OK, DRIFTING, BROKEN, UNKNOWN = (AssumptionStatus.OK, AssumptionStatus.DRIFTING, AssumptionStatus.BROKEN,
                                 AssumptionStatus.UNKNOWN)


def registry(*assumptions: Assumption, tick: str = "0.5") -> AssumptionRegistry:
    return AssumptionRegistry("BTCUSDT", assumptions, D(tick))


def feed(reg: AssumptionRegistry, values: list[dict], start: int = T0, step: int = S, latency_ns: int = 0) -> list:
    """One snapshot per ``step`` with the given features; every change they caused."""
    out = []
    for i, features in enumerate(values):
        ts = start + i * step
        out += reg.on_snapshot(make_snapshot(ts_event_ns=ts, **features), ts + latency_ns)
    return out


def status(reg: AssumptionRegistry, name: str) -> dict:
    return next(row for row in reg.status() if row["name"] == name)


def fill(side: Side, price: str, ts: int) -> OrderFilled:
    return OrderFilled(symbol="BTCUSDT", client_order_id="c", venue_order_id="v", fill_id=f"f{ts}", side=side,
                       qty=D("1"), price=D(price), fee=D("0"), is_maker=False, cum_qty=D("1"), leaves_qty=D("0"),
                       ts_event_ns=ts)


def test_nearest_rank_quantiles():
    """The q quantile is the smallest value with at least q of the values at or below it."""
    values = [float(v) for v in range(1, 21)]  # 1..20
    assert nearest_rank(values, 0.95) == 19.0
    assert nearest_rank(values, 0.5) == 10.0
    assert nearest_rank(values, 1.0) == 20.0
    assert nearest_rank([3.0], 0.01) == 3.0


def test_health_levels_for_upper_lower_and_band_bounds():
    """OK, DRIFTING within the margin of the bound, BROKEN past it; bands drift near either edge."""
    upper = Assumption(name="a", observation="spread_bps", max=10.0, drift_margin=0.2)
    assert [health(upper, v) for v in (7.9, 8.1, 10.0, 10.1)] == [OK, DRIFTING, DRIFTING, BROKEN]
    lower = Assumption(name="b", observation="trade_rate", min=5.0, drift_margin=0.2)
    assert [health(lower, v) for v in (6.1, 5.9, 5.0, 4.9)] == [OK, DRIFTING, DRIFTING, BROKEN]
    band = Assumption(name="c", observation="vol_ratio", min=0.5, max=2.0, drift_margin=0.1)
    assert [health(band, v) for v in (0.4, 0.6, 1.0, 1.9, 2.1)] == [BROKEN, DRIFTING, OK, DRIFTING, BROKEN]


def test_spread_quantile_over_the_window():
    """Spreads 1..20 bps: the 95th percentile is 19, so max 18 is BROKEN and max 30 OK."""
    strict = Assumption(name="strict", observation="spread_bps", max=18.0, quantile=0.95, window_s=60.0, min_samples=20)
    loose = Assumption(name="loose", observation="spread_bps", max=30.0, quantile=0.95, window_s=60.0, min_samples=20)
    reg = registry(strict, loose)
    changes = feed(reg, [{"spread_bps": float(v)} for v in range(1, 21)])
    assert [(c.name, c.old, c.new, c.value) for c in changes] == [("strict", UNKNOWN, BROKEN, 19.0),
                                                                  ("loose", UNKNOWN, OK, 19.0)]
    assert status(reg, "strict")["samples"] == 20 and status(reg, "strict")["since_ns"] == T0 + 19 * S


def test_too_few_samples_is_unknown_and_old_samples_leave_the_window():
    """Below min_samples nothing is said; samples older than window_s drop out and the verdict goes UNKNOWN."""
    a = Assumption(name="a", observation="spread_bps", max=5.0, window_s=10.0, min_samples=5)
    reg = registry(a)
    assert feed(reg, [{"spread_bps": 1.0}] * 4) == []
    [c] = feed(reg, [{"spread_bps": 1.0}], start=T0 + 4 * S)
    assert c.new is OK and c.samples == 5
    # 20 s later a single new sample: the old ones are out of the 10 s window
    [c] = feed(reg, [{"spread_bps": 1.0}], start=T0 + 24 * S)
    assert c.new is UNKNOWN and c.samples == 1


def test_trade_rate_is_trades_per_second_over_the_window():
    """Ten trades a second for ten seconds measures 10/s: OK against min 5, BROKEN against min 20."""
    ok = Assumption(name="ok", observation="trade_rate", min=5.0, window_s=60.0, min_samples=5)
    bad = Assumption(name="bad", observation="trade_rate", min=20.0, window_s=60.0, min_samples=5)
    reg = registry(ok, bad)
    changes = feed(reg, [{"trades": 10 * i} for i in range(11)])
    assert {c.name: (c.new, c.value) for c in changes} == {"ok": (OK, 10.0), "bad": (BROKEN, 10.0)}


def test_feed_latency_is_clock_minus_event_time():
    """Snapshots handled 120 ms after their exchange time measure 120 ms: BROKEN against max 100."""
    a = Assumption(name="lat", observation="feed_latency_ms", max=100.0, quantile=0.99, min_samples=3)
    reg = registry(a)
    [c] = feed(reg, [{}] * 3, latency_ns=120_000_000)
    assert c.new is BROKEN and c.value == pytest.approx(120.0)


def test_vol_ratio_samples_only_warm_snapshots():
    """A snapshot that is not warm is no evidence of volatility; the median of the warm ones is measured."""
    a = Assumption(name="v", observation="vol_ratio", min=0.5, max=2.0, min_samples=3)
    reg = registry(a)
    assert feed(reg, [{"vol_ratio": 5.0, "warm": False}] * 5) == []
    [c] = feed(reg, [{"vol_ratio": 1.0}, {"vol_ratio": 1.2}, {"vol_ratio": 3.0}], start=T0 + 5 * S)
    assert c.new is OK and c.value == 1.2


def test_slippage_is_adverse_ticks_from_the_last_mid():
    """A buy 1.5 above a mid of 100 with tick 0.5 is 3 ticks adverse; a sell above the mid is favourable (negative)."""
    a = Assumption(name="slip", observation="slippage_ticks", max=2.0, quantile=1.0, min_samples=1, window_s=600.0)
    reg = registry(a, tick="0.5")
    feed(reg, [{"mid": 100.0}])
    [c] = reg.on_fill(fill(Side.SELL, "101", T0 + S))  # -2 ticks: favourable
    assert c.new is OK and c.value == -2.0
    [c] = reg.on_fill(fill(Side.BUY, "101.5", T0 + 2 * S))
    assert c.new is BROKEN and c.value == 3.0


def test_broken_recovers_only_back_at_ok():
    """Hysteresis: from BROKEN a value in the drift band stays BROKEN; back under it, OK."""
    a = Assumption(name="a", observation="spread_bps", max=10.0, quantile=1.0, window_s=0.5, min_samples=1)
    reg = registry(a)
    got = [c.new for c in feed(reg, [{"spread_bps": v} for v in (5.0, 12.0, 9.0, 9.5, 3.0)])]
    assert got == [OK, BROKEN, OK]


def test_snapshots_are_sampled_at_most_every_250ms():
    """A Feature actor emitting on every event adds one sample per 250 ms of event time, not one per event."""
    a = Assumption(name="a", observation="spread_bps", max=10.0, min_samples=1)
    reg = registry(a)
    feed(reg, [{}] * 100, step=10_000_000)  # one second at 10 ms
    assert status(reg, "a")["samples"] == 4


@pytest.mark.parametrize(("change", "key"), [
    ({"observation": "spread"}, "assumptions[0].observation"),
    ({"max": None}, "assumptions[0].max"),
    ({"quantile": 1.5}, "assumptions[0].quantile"),
    ({"window_s": 0}, "assumptions[0].window_s"),
    ({"on_broken": "panic"}, "assumptions[0].on_broken"),
    ({"on_recover": "later"}, "assumptions[0].on_recover"),
    ({"symbols": ["XRPUSDT"]}, "assumptions[0].symbols"),
    ({"min": 9.0}, "assumptions[0].min"),
    ({"colour": "red"}, "assumptions[0].colour"),
])
def test_bad_assumption_config_names_the_key(change, key):
    """Every bad [[assumptions]] value is a ConfigError naming its dotted key."""
    entry = {"name": "tight", "observation": "spread_bps", "max": 5.0, **change}
    entry = {k: v for k, v in entry.items() if v is not None}
    with pytest.raises(ConfigError) as err:
        load_settings({"assumptions": [entry]})
    assert err.value.key == key


def test_configured_assumption_applies_to_its_symbols_and_replaces_a_strategy_one():
    """symbols = ["ETHUSDT"] reaches only ETHUSDT's registry; "*" reaches all."""
    s = load_settings({"assumptions": [
        {"name": "tight", "observation": "spread_bps", "max": 5.0, "symbols": ["ETHUSDT"]},
        {"name": "busy", "observation": "trade_rate", "min": 1.0},
    ]})
    assert [a.name for a in s.assumptions_for("ETHUSDT")] == ["tight", "busy"]
    assert [a.name for a in s.assumptions_for("BTCUSDT")] == ["busy"]
