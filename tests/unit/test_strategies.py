"""Strategy policies: the mandates of each regime and position situation, and parameter errors."""

from __future__ import annotations

from decimal import Decimal as D

import pytest
from arbor.actors.regime.strategies import MeanReversion, PositionView, TrendFollowing, make_strategy
from arbor.config.errors import ConfigError
from arbor.messages import Direction, FeatureSnapshot, MandateKind, PositionState, Regime
from hypothesis import given
from hypothesis import strategies as st

LONG, SHORT = Direction.LONG, Direction.SHORT
EXIT, BLOCK, REDUCE, ENTRY, HOLD = (MandateKind.EXIT, MandateKind.BLOCK, MandateKind.REDUCE, MandateKind.ENTRY,
                                    MandateKind.HOLD)
FLAT = PositionView()


def features(**overrides: object) -> FeatureSnapshot:
    values: dict[str, object] = dict(
        symbol="TEST", ts_event_ns=1, ingest_seq=1, mid=100.0, last_price=100.0, spread_bps=1.0,
        ret_short=0.0, ret_long=0.0, realized_vol=0.001, vol_ratio=1.0, efficiency_ratio=0.5, vwap=100.0,
        trade_imbalance=0.0, cvd=0.0, atr=1.0, liq_count=0, liq_notional=0.0, samples=60, warm=True,
    )
    values.update(overrides)
    return FeatureSnapshot(**values)  # type: ignore[arg-type]  # values of mixed types by field


def position(direction: Direction, qty: str = "1", entry: str = "100", state: PositionState = PositionState.OPEN,
             peak: str | None = None) -> PositionView:
    return PositionView(state=state, direction=direction, qty=D(qty), avg_entry_price=D(entry),
                        peak_qty=D(peak if peak is not None else qty))


def kinds(mandates: tuple) -> list[MandateKind]:
    return [m.kind for m in mandates]


TREND = TrendFollowing()
MR = MeanReversion()


# -- trend following ----------------------------------------------------------------------------
def test_trend_unknown_flat_blocks():
    """UNKNOWN and flat: BLOCK only."""
    assert kinds(TREND.evaluate(features(warm=False), Regime.UNKNOWN, FLAT)) == [BLOCK]


def test_trend_unknown_open_exits_and_blocks():
    """UNKNOWN with an open position: EXIT in the position's direction, and BLOCK."""
    out = TREND.evaluate(features(warm=False), Regime.UNKNOWN, position(LONG))
    assert kinds(out) == [EXIT, BLOCK] and out[0].direction is LONG


def test_trend_entry_long_in_uptrend():
    """TRENDING, flat, ret_long > 0 and buyers not outweighed: ENTRY LONG with size_hint 0.5."""
    [m] = TREND.evaluate(features(ret_long=0.01, trade_imbalance=0.2), Regime.TRENDING, FLAT)
    assert (m.kind, m.direction, m.size_hint) == (ENTRY, LONG, D("0.5"))
    assert m.reason


def test_trend_entry_short_in_downtrend():
    """TRENDING, flat, ret_long < 0 and sellers not outweighed: ENTRY SHORT."""
    [m] = TREND.evaluate(features(ret_long=-0.01, trade_imbalance=-0.3), Regime.TRENDING, FLAT)
    assert (m.kind, m.direction) == (ENTRY, SHORT)


def test_trend_no_entry_when_trade_flow_contradicts():
    """TRENDING up but sellers dominate the short-window flow: HOLD, no ENTRY."""
    assert kinds(TREND.evaluate(features(ret_long=0.01, trade_imbalance=-0.1), Regime.TRENDING, FLAT)) == [HOLD]


def test_trend_contra_imbalance_tolerance_allows_entry():
    """With contra_imbalance 0.2 a mildly contrary flow (-0.1) no longer vetoes the entry."""
    policy = TrendFollowing({"contra_imbalance": 0.2})
    [m] = policy.evaluate(features(ret_long=0.01, trade_imbalance=-0.1), Regime.TRENDING, FLAT)
    assert (m.kind, m.direction) == (ENTRY, LONG)


def test_trend_size_hint_param_is_used():
    """The size_hint parameter becomes the ENTRY mandate's size_hint."""
    [m] = TrendFollowing({"size_hint": 0.25}).evaluate(features(ret_long=0.01), Regime.TRENDING, FLAT)
    assert m.size_hint == D("0.25")


def test_trend_no_entry_without_direction():
    """TRENDING with ret_long exactly 0: HOLD."""
    assert kinds(TREND.evaluate(features(ret_long=0.0), Regime.TRENDING, FLAT)) == [HOLD]


def test_trend_open_in_trend_holds():
    """An open LONG in an uptrend within its stops: HOLD."""
    assert kinds(TREND.evaluate(features(ret_long=0.01, mid=101.0), Regime.TRENDING, position(LONG))) == [HOLD]


def test_trend_exit_when_trend_flips_long():
    """An open LONG exits when ret_long turns negative."""
    [m] = TREND.evaluate(features(ret_long=-0.001), Regime.TRENDING, position(LONG))
    assert (m.kind, m.direction, m.reason) == (EXIT, LONG, "trend flipped")


def test_trend_exit_when_trend_flips_short():
    """An open SHORT exits when ret_long turns positive."""
    [m] = TREND.evaluate(features(ret_long=0.001), Regime.TRENDING, position(SHORT))
    assert (m.kind, m.direction, m.reason) == (EXIT, SHORT, "trend flipped")


def test_trend_exit_when_ranging():
    """An open position exits when the regime becomes RANGING."""
    assert kinds(TREND.evaluate(features(ret_long=0.01), Regime.RANGING, position(LONG))) == [EXIT]


def test_trend_stop_loss_long():
    """An open LONG exits when price is more than stop_atr ATRs below entry."""
    f = features(ret_long=0.01, mid=96.9, atr=1.0)  # 3.1 ATR adverse
    [m] = TREND.evaluate(f, Regime.TRENDING, position(LONG, entry="100"))
    assert (m.kind, m.reason) == (EXIT, "stop loss")


def test_trend_within_stop_holds():
    """An adverse move just inside stop_atr ATRs is not a stop."""
    f = features(ret_long=0.01, mid=97.1, atr=1.0)
    assert kinds(TREND.evaluate(f, Regime.TRENDING, position(LONG, entry="100"))) == [HOLD]


def test_trend_stop_loss_short():
    """An open SHORT exits when price is more than stop_atr ATRs above entry."""
    f = features(ret_long=-0.01, mid=103.5, atr=1.0)
    [m] = TREND.evaluate(f, Regime.TRENDING, position(SHORT, entry="100"))
    assert (m.kind, m.direction, m.reason) == (EXIT, SHORT, "stop loss")


def test_trend_take_profit_short():
    """An open SHORT takes profit once price is more than take_profit_atr ATRs below entry."""
    f = features(ret_long=-0.01, mid=93.5, atr=1.0)
    [m] = TREND.evaluate(f, Regime.TRENDING, position(SHORT, entry="100"))
    assert (m.kind, m.reason) == (EXIT, "take profit")


def test_trend_volatile_flat_blocks():
    """VOLATILE and flat: BLOCK only."""
    assert kinds(TREND.evaluate(features(vol_ratio=3.0, ret_long=0.01), Regime.VOLATILE, FLAT)) == [BLOCK]


def test_trend_volatile_open_blocks_and_reduces_half():
    """VOLATILE with a full open position: BLOCK and REDUCE 0.5 in the position's direction."""
    out = TREND.evaluate(features(ret_long=0.01), Regime.VOLATILE, position(LONG, qty="2"))
    assert kinds(out) == [BLOCK, REDUCE]
    assert (out[1].size_hint, out[1].direction) == (D("0.5"), LONG)


def test_trend_volatile_reduces_once_per_position():
    """Once the position is down to half its peak, VOLATILE only BLOCKs (no halving every cycle)."""
    out = TREND.evaluate(features(ret_long=0.01), Regime.VOLATILE, position(LONG, qty="1", peak="2"))
    assert kinds(out) == [BLOCK]


def test_trend_volatile_no_second_reduce_while_reducing():
    """No new REDUCE while a reduce order is in flight."""
    pos = position(LONG, qty="2", state=PositionState.REDUCING)
    assert kinds(TREND.evaluate(features(ret_long=0.01), Regime.VOLATILE, pos)) == [BLOCK]


def test_trend_volatile_stop_still_exits():
    """A stop hit in a VOLATILE market is an EXIT (with BLOCK)."""
    out = TREND.evaluate(features(mid=90.0, atr=1.0), Regime.VOLATILE, position(LONG))
    assert kinds(out) == [EXIT, BLOCK]


def test_trend_pending_entry_does_not_enter_again():
    """While an entry order is unfilled (ENTERING, qty 0) a trend gives HOLD, not a second ENTRY."""
    pending = PositionView(state=PositionState.ENTERING, direction=LONG)
    assert kinds(TREND.evaluate(features(ret_long=0.01), Regime.TRENDING, pending)) == [HOLD]


def test_trend_partially_filled_entry_is_managed():
    """A partly filled entry (ENTERING, qty > 0) is exposure: a trend flip exits it."""
    pos = position(LONG, qty="0.5", state=PositionState.ENTERING)
    assert kinds(TREND.evaluate(features(ret_long=-0.01), Regime.TRENDING, pos)) == [EXIT]


def test_trend_ranging_flat_holds():
    """RANGING and flat: HOLD."""
    assert kinds(TREND.evaluate(features(ret_long=0.01), Regime.RANGING, FLAT)) == [HOLD]


# -- mean reversion -----------------------------------------------------------------------------
def test_mr_entry_short_when_stretched_above_vwap():
    """RANGING, flat, z = (mid - vwap) / atr >= 1.5: ENTRY SHORT with size_hint 0.3."""
    [m] = MR.evaluate(features(mid=101.5, vwap=100.0, atr=1.0), Regime.RANGING, FLAT)
    assert (m.kind, m.direction, m.size_hint) == (ENTRY, SHORT, D("0.3"))


def test_mr_entry_long_when_stretched_below_vwap():
    """RANGING, flat, z <= -1.5: ENTRY LONG."""
    [m] = MR.evaluate(features(mid=98.0, vwap=100.0, atr=1.0), Regime.RANGING, FLAT)
    assert (m.kind, m.direction) == (ENTRY, LONG)


def test_mr_holds_near_vwap():
    """RANGING, flat, |z| < 1.5: HOLD."""
    assert kinds(MR.evaluate(features(mid=101.4, vwap=100.0, atr=1.0), Regime.RANGING, FLAT)) == [HOLD]


def test_mr_exit_when_back_at_vwap():
    """An open LONG exits once |z| <= z_exit."""
    [m] = MR.evaluate(features(mid=99.8, vwap=100.0, atr=1.0), Regime.RANGING, position(LONG, entry="98"))
    assert (m.kind, m.direction) == (EXIT, LONG)


def test_mr_exit_on_overshoot_through_vwap():
    """An open SHORT whose price fell through VWAP (z = -1) exits too."""
    [m] = MR.evaluate(features(mid=99.0, vwap=100.0, atr=1.0), Regime.RANGING, position(SHORT, entry="102"))
    assert (m.kind, m.direction) == (EXIT, SHORT)


def test_mr_holds_while_still_stretched():
    """An open SHORT with price still well above VWAP: HOLD."""
    out = MR.evaluate(features(mid=101.0, vwap=100.0, atr=1.0), Regime.RANGING, position(SHORT, entry="102"))
    assert kinds(out) == [HOLD]


@pytest.mark.parametrize("regime", [Regime.TRENDING, Regime.VOLATILE])
def test_mr_exit_when_regime_leaves_ranging(regime):
    """An open position exits when the regime turns TRENDING or VOLATILE."""
    assert kinds(MR.evaluate(features(mid=98.0), regime, position(LONG, entry="98"))) == [EXIT]


@pytest.mark.parametrize("pos", [FLAT, position(LONG)])
def test_mr_unknown_blocks(pos):
    """UNKNOWN: BLOCK, flat or open."""
    assert kinds(MR.evaluate(features(warm=False), Regime.UNKNOWN, pos)) == [BLOCK]


def test_mr_no_entry_outside_ranging():
    """Flat in TRENDING, even when stretched: HOLD."""
    assert kinds(MR.evaluate(features(mid=105.0, vwap=100.0), Regime.TRENDING, FLAT)) == [HOLD]


def test_mr_zero_atr_does_not_divide_by_zero():
    """With atr 0 and mid at vwap the decision is HOLD, not an error."""
    assert kinds(MR.evaluate(features(atr=0.0), Regime.RANGING, FLAT)) == [HOLD]


# -- properties of every policy -----------------------------------------------------------------
_positions = st.one_of(
    st.just(FLAT),
    st.builds(PositionView, state=st.sampled_from(list(PositionState)), direction=st.sampled_from([LONG, SHORT]),
              qty=st.decimals(min_value=0, max_value=10, places=3),
              avg_entry_price=st.decimals(min_value=1, max_value=200, places=2),
              peak_qty=st.decimals(min_value=0, max_value=10, places=3)),
)
_features = st.builds(
    features,
    mid=st.floats(50, 150), vwap=st.floats(50, 150), atr=st.floats(0, 5), ret_long=st.floats(-0.1, 0.1),
    trade_imbalance=st.floats(-1, 1),
)


@given(name=st.sampled_from(["trend_following", "mean_reversion"]), f=_features,
       regime=st.sampled_from(list(Regime)), pos=_positions)
def test_every_decision_is_sound(name, f, regime, pos):
    """Any input gives >= 1 mandate, the same ones twice; ENTRY only when flat and with a direction; BLOCK in UNKNOWN."""
    policy = make_strategy(name, {})
    out = policy.evaluate(f, regime, pos)
    assert out and out == policy.evaluate(f, regime, pos)
    for m in out:
        if m.kind is ENTRY:
            assert pos.is_flat and m.direction is not None and 0 < m.size_hint <= 1
    if regime is Regime.UNKNOWN:
        assert BLOCK in kinds(out) and ENTRY not in kinds(out)


# -- make_strategy ------------------------------------------------------------------------------
def test_make_strategy_builds_by_name():
    """make_strategy returns the named policy with its name."""
    assert make_strategy("mean_reversion", {"z_entry": 2}).name == "mean_reversion"


def test_make_strategy_unknown_name():
    """An unknown strategy name is a ConfigError on key 'strategy'."""
    with pytest.raises(ConfigError) as err:
        make_strategy("martingale", {})
    assert err.value.key == "strategy"


def test_make_strategy_unknown_param():
    """An unknown parameter is a ConfigError naming strategy_params.<key>."""
    with pytest.raises(ConfigError) as err:
        make_strategy("trend_following", {"z_entry": 1.5})
    assert err.value.key == "strategy_params.z_entry"


@pytest.mark.parametrize("value", [0, -0.5, 1.5, "0.5", True, float("nan")])
def test_make_strategy_invalid_size_hint(value):
    """A size_hint that is not a number in (0, 1] is a ConfigError naming strategy_params.size_hint."""
    with pytest.raises(ConfigError) as err:
        make_strategy("trend_following", {"size_hint": value})
    assert err.value.key == "strategy_params.size_hint"


def test_make_strategy_z_exit_must_be_below_z_entry():
    """mean_reversion with z_exit >= z_entry is a ConfigError naming strategy_params.z_exit."""
    with pytest.raises(ConfigError) as err:
        make_strategy("mean_reversion", {"z_entry": 1.0, "z_exit": 1.0})
    assert err.value.key == "strategy_params.z_exit"
