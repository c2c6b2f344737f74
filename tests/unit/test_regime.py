"""RegimeLogic: classification, hysteresis, decision cycles in event time, the MandateSet it emits."""

from __future__ import annotations

from decimal import Decimal as D
from typing import Any

import pytest
from arbor.actors.regime import RegimeConfig, RegimeLogic, mark_price
from arbor.actors.testing import ManualClock, handled, make_ctx
from arbor.config.errors import ConfigError
from arbor.messages import (
    Direction,
    FeatureSnapshot,
    MandateKind,
    MandateSet,
    PositionChanged,
    PositionState,
    Regime,
    RegimeChanged,
)

T0 = 1_700_000_000_000_000_000
MS = 1_000_000
RANGE = dict(efficiency_ratio=0.1, vol_ratio=1.0)
TREND = dict(efficiency_ratio=0.5, vol_ratio=1.0, ret_long=0.01)
VOLATILE = dict(efficiency_ratio=0.1, vol_ratio=3.0)


def snap(ts: int, warm: bool = True, **overrides: object) -> FeatureSnapshot:
    values: dict[str, object] = dict(
        symbol="TEST", ts_event_ns=ts, ingest_seq=1, mid=100.0, last_price=100.0, spread_bps=1.0,
        ret_short=0.0, ret_long=0.0, realized_vol=0.001, vol_ratio=1.0, efficiency_ratio=0.1, vwap=100.0,
        trade_imbalance=0.0, cvd=0.0, atr=1.0, liq_count=0, liq_notional=0.0, samples=60 if warm else 3,
        warm=warm,
    )
    values.update(overrides)
    return FeatureSnapshot(**values)  # type: ignore[arg-type]  # values of mixed types by field


def regime_logic(clock: ManualClock | None = None, **config: object) -> RegimeLogic:
    cfg = RegimeConfig(**{"decision_interval_ms": 0, **config})  # type: ignore[arg-type]  # values of mixed types by field
    return RegimeLogic(make_ctx("TEST/regime", "TEST", clock=clock), cfg)


def drive(logic: RegimeLogic, *features: dict, step_ms: int = 1000, start: int = 0) -> list:
    out: list[Any] = []
    for i, f in enumerate(features):
        out.extend(handled(logic, snap(T0 + (start + i) * step_ms * MS, **f)))
    return out


def changes(out: list) -> list[tuple[Regime, Regime]]:
    return [(m.old, m.new) for m in out if isinstance(m, RegimeChanged)]


def mandate_sets(out: list) -> list[MandateSet]:
    return [m for m in out if isinstance(m, MandateSet)]


# -- classification and hysteresis -------------------------------------------------------------
def test_unknown_while_not_warm():
    """Snapshots that are not warm leave the regime UNKNOWN, whatever the features say."""
    logic = regime_logic()
    out = drive(logic, *[dict(warm=False, **TREND)] * 10)
    assert changes(out) == [] and logic.regime is Regime.UNKNOWN
    assert all(ms.regime is Regime.UNKNOWN for ms in mandate_sets(out))


def test_switch_needs_confirm_cycles():
    """A new regime takes over on the confirm_cycles-th consecutive cycle, not before."""
    logic = regime_logic(confirm_cycles=3)
    assert changes(drive(logic, TREND, TREND)) == []
    assert changes(drive(logic, TREND, start=2)) == [(Regime.UNKNOWN, Regime.TRENDING)]


def test_confirm_cycles_one_switches_at_once():
    """With confirm_cycles = 1 the first evaluation switches."""
    logic = regime_logic(confirm_cycles=1)
    assert changes(drive(logic, VOLATILE)) == [(Regime.UNKNOWN, Regime.VOLATILE)]


def test_no_flapping_within_confirm_cycles():
    """Candidates that alternate never reach confirm_cycles in a row, so the regime never changes."""
    logic = regime_logic(confirm_cycles=3)
    drive(logic, RANGE, RANGE, RANGE)
    assert logic.regime is Regime.RANGING
    out = drive(logic, *[TREND, TREND, RANGE, VOLATILE, VOLATILE, RANGE] * 5, start=3)
    assert changes(out) == [] and logic.regime is Regime.RANGING


def test_interrupted_candidate_starts_counting_again():
    """An interruption resets the count: TREND, TREND, RANGE, TREND, TREND does not switch; one more does."""
    logic = regime_logic(confirm_cycles=3)
    drive(logic, RANGE, RANGE, RANGE)
    assert changes(drive(logic, TREND, TREND, RANGE, TREND, TREND, start=3)) == []
    assert changes(drive(logic, TREND, start=8)) == [(Regime.RANGING, Regime.TRENDING)]


def test_trending_keeps_its_exit_threshold():
    """Once TRENDING, an efficiency ratio between exit (0.25) and enter (0.35) stays TRENDING."""
    logic = regime_logic(confirm_cycles=1)
    drive(logic, TREND)
    assert changes(drive(logic, *[dict(efficiency_ratio=0.3)] * 5, start=1)) == []
    assert changes(drive(logic, dict(efficiency_ratio=0.2), start=6)) == [(Regime.TRENDING, Regime.RANGING)]


def test_ranging_needs_enter_threshold_to_trend():
    """From RANGING, an efficiency ratio of 0.3 (below enter 0.35) is still RANGING."""
    logic = regime_logic(confirm_cycles=1)
    drive(logic, RANGE)
    assert changes(drive(logic, *[dict(efficiency_ratio=0.3)] * 5, start=1)) == []


def test_volatile_keeps_its_exit_threshold():
    """Once VOLATILE, a vol_ratio of 1.5 (between exit 1.4 and enter 2.0) stays VOLATILE; 1.3 leaves."""
    logic = regime_logic(confirm_cycles=1)
    drive(logic, VOLATILE)
    assert changes(drive(logic, dict(vol_ratio=1.5, efficiency_ratio=0.1), start=1)) == []
    assert changes(drive(logic, dict(vol_ratio=1.3, efficiency_ratio=0.1), start=2)) == [
        (Regime.VOLATILE, Regime.RANGING)]


def test_volatile_takes_precedence_over_trending():
    """High vol_ratio with a high efficiency ratio is VOLATILE."""
    logic = regime_logic(confirm_cycles=1)
    drive(logic, dict(vol_ratio=2.5, efficiency_ratio=0.9))
    assert logic.regime is Regime.VOLATILE


def test_falls_to_unknown_immediately_when_data_goes_insufficient():
    """A snapshot that is not warm drops the regime to UNKNOWN at once, even between decision cycles."""
    logic = regime_logic(confirm_cycles=3, decision_interval_ms=1000)
    drive(logic, TREND, TREND, TREND)
    assert logic.regime is Regime.TRENDING
    out = logic.handle(snap(T0 + 2 * 1000 * MS + 10 * MS, warm=False))  # 10 ms after the last cycle
    assert changes(out) == [(Regime.TRENDING, Regime.UNKNOWN)] and mandate_sets(out) == []


def test_regime_changed_carries_symbol_reason_and_clock_time():
    """RegimeChanged names the symbol, a reason, and the clock time of the switch."""
    clock = ManualClock(T0 + 5)
    logic = regime_logic(clock=clock, confirm_cycles=1)
    [rc] = [m for m in drive(logic, TREND) if isinstance(m, RegimeChanged)]
    assert (rc.symbol, rc.ts_event_ns) == ("TEST", T0 + 5) and "efficiency_ratio" in rc.reason


# -- decision cycles -----------------------------------------------------------------------------
def test_decision_cycles_follow_event_time():
    """With a 1000 ms interval and a snapshot every 100 ms, one MandateSet per ten snapshots."""
    logic = regime_logic(decision_interval_ms=1000)
    out = drive(logic, *[RANGE] * 35, step_ms=100)
    sets = mandate_sets(out)
    assert [ms.data_ts_ns for ms in sets] == [T0 + k * 1000 * MS for k in range(4)]
    assert [ms.cycle for ms in sets] == [ms.data_ts_ns for ms in sets]  # numbered by event time


def test_decision_cadence_ignores_the_clock():
    """Advancing the wall clock without new event time starts no cycle."""
    clock = ManualClock(T0)
    logic = regime_logic(clock=clock, decision_interval_ms=1000)
    logic.handle(snap(T0))
    clock.advance(60_000 * MS)
    assert mandate_sets(logic.handle(snap(T0 + 500 * MS))) == []


def test_interval_zero_decides_on_every_snapshot():
    """decision_interval_ms = 0 gives one MandateSet per snapshot."""
    logic = regime_logic(decision_interval_ms=0)
    out = drive(logic, *[RANGE] * 5, step_ms=1)
    assert [ms.cycle for ms in mandate_sets(out)] == [T0 + k * MS for k in range(5)]


def test_cycle_numbers_never_repeat_even_at_one_event_time_or_after_a_restart():
    """Snapshots at the same event time still get increasing numbers, and a fresh Regime (a restart)
    numbers after everything the old one used, so the Arbitrator drops none of its cycles as seen."""
    logic = regime_logic(decision_interval_ms=0)
    first = [ms.cycle for ms in mandate_sets(drive(logic, *[RANGE] * 3, step_ms=0))]
    assert first == [T0, T0 + 1, T0 + 2]
    restarted = regime_logic(decision_interval_ms=0)
    later = restarted.handle(snap(T0 + 1 * MS, **RANGE))
    assert [ms.cycle for ms in mandate_sets(later)] == [T0 + MS] and max(first) < T0 + MS
    assert restarted.stats()["cycles"] == 1 and restarted.stats()["last_cycle"] == T0 + MS


def test_out_of_order_snapshot_starts_no_cycle():
    """A snapshot older than the last decision does not start a cycle."""
    logic = regime_logic(decision_interval_ms=1000)
    logic.handle(snap(T0 + 5000 * MS))
    assert mandate_sets(logic.handle(snap(T0))) == []


def test_mandate_set_fields():
    """A MandateSet carries symbol, cycle, clock time, regime, strategy name, mark price and data time."""
    clock = ManualClock(T0 + 777)
    logic = regime_logic(clock=clock, confirm_cycles=1, strategy="mean_reversion")
    [ms] = mandate_sets(logic.handle(snap(T0 + 3, mid=2500.25, vwap=2500.25, **RANGE)))
    assert (ms.symbol, ms.cycle, ms.ts_event_ns, ms.regime, ms.strategy, ms.mark_price, ms.data_ts_ns) == (
        "TEST", T0 + 3, T0 + 777, Regime.RANGING, "mean_reversion", D("2500.25"), T0 + 3)
    assert [m.kind for m in ms.mandates] == [MandateKind.HOLD]


def test_regime_change_comes_before_the_mandate_set():
    """In the cycle that switches, RegimeChanged precedes the MandateSet, which already uses the new regime."""
    logic = regime_logic(confirm_cycles=1)
    out = drive(logic, VOLATILE)
    assert [type(m) for m in out] == [RegimeChanged, MandateSet]
    assert out[1].regime is Regime.VOLATILE


def test_mark_price_drops_float_noise():
    """The mark price is the mid to 12 significant digits: 50000.050000000003 -> 50000.05."""
    assert mark_price(snap(T0, mid=50000.050000000003)) == D("50000.05")


def test_unknown_regime_blocks():
    """While UNKNOWN every MandateSet of trend_following is a BLOCK."""
    logic = regime_logic()
    [ms] = mandate_sets(logic.handle(snap(T0, warm=False)))
    assert [m.kind for m in ms.mandates] == [MandateKind.BLOCK]


# -- position view -------------------------------------------------------------------------------
def position_changed(state: PositionState, qty: str, direction: Direction | None = Direction.SHORT) -> PositionChanged:
    return PositionChanged(symbol="TEST", state=state, direction=direction, qty=D(qty),
                           avg_entry_price=D("100") if direction else None, realized_pnl=D("0"), fees=D("0"),
                           ts_event_ns=T0)


def test_position_view_follows_position_changed():
    """The strategy's position view mirrors the latest PositionChanged and remembers the peak quantity."""
    logic = regime_logic()
    assert logic.handle(position_changed(PositionState.OPEN, "2")) == []
    logic.handle(position_changed(PositionState.OPEN, "1"))
    view = logic.position
    assert (view.state, view.direction, view.qty, view.avg_entry_price, view.peak_qty) == (
        PositionState.OPEN, Direction.SHORT, D("1"), D("100"), D("2"))


def test_flat_position_resets_the_view():
    """A FLAT PositionChanged resets the view, peak included."""
    logic = regime_logic()
    logic.handle(position_changed(PositionState.OPEN, "2"))
    logic.handle(position_changed(PositionState.FLAT, "0", direction=None))
    assert logic.position.is_flat and logic.position.peak_qty == 0


def test_strategy_decides_on_the_position():
    """An open SHORT in a RANGING market makes trend_following EXIT in direction SHORT."""
    logic = regime_logic(confirm_cycles=1)
    logic.handle(position_changed(PositionState.OPEN, "1"))
    [ms] = mandate_sets(drive(logic, RANGE))
    assert [(m.kind, m.direction) for m in ms.mandates] == [(MandateKind.EXIT, Direction.SHORT)]


def test_stats_count_cycles_and_changes():
    """stats() reports the regime, the cycles run and the regime changes."""
    logic = regime_logic(confirm_cycles=1)
    drive(logic, TREND, TREND, RANGE)
    stats = logic.stats()
    assert (stats["regime"], stats["cycles"], stats["regime_changes"]) == ("RANGING", 3, 2)


# -- config -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("changes_", "key"),
    [
        ({"decision_interval_ms": -1}, "regime.decision_interval_ms"),
        ({"confirm_cycles": 0}, "regime.confirm_cycles"),
        ({"trend_er_exit": 0.5}, "regime.trend_er_exit"),
        ({"vol_ratio_exit": 2.5}, "regime.vol_ratio_exit"),
        ({"trend_er_enter": 1.5}, "regime.trend_er_enter"),
        ({"strategy": "nope"}, "regime.strategy"),
        ({"strategy_params": {"size_hint": 2}}, "regime.strategy_params.size_hint"),
    ],
)
def test_config_errors_name_the_key(changes_, key):
    """An invalid RegimeConfig raises ConfigError naming regime.<field> (strategy errors included)."""
    with pytest.raises(ConfigError) as err:
        RegimeConfig(**changes_).validate()
    assert err.value.key == key
