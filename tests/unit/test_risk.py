"""Risk: pre-trade checks, trading states, the latched kill switch and loss limits."""

from __future__ import annotations

import itertools
from decimal import Decimal as D

import attrs
import pytest
from arbor.actors.risk import RiskConfig, RiskLogic
from arbor.actors.testing import ManualClock, make_ctx
from arbor.config.errors import ConfigError
from arbor.messages import (
    Action,
    ActionApproved,
    ActionDenied,
    ActionNotApplicable,
    ActorFailed,
    AnnounceState,
    AssumptionHealthChanged,
    AssumptionStatus,
    CancelOpenOrders,
    Direction,
    EffectiveTradingStateChanged,
    EngageKillSwitch,
    KillSwitchEngaged,
    KillSwitchReset,
    KillSwitchResetRefused,
    MandateKind,
    PositionChanged,
    PositionState,
    ResetKillSwitch,
    SetTradingState,
    SymbolRecovered,
    TimerTick,
    TradingState,
    TradingStateChanged,
)

SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT")
MS = 1_000_000
DAY = 86_400 * 1_000_000_000
START = 1_700_000_000_000_000_000  # 2023-11-14 22:13:20 UTC
_cycles = itertools.count(1)  # unique action ids across a test


def make(clock: ManualClock | None = None, **overrides) -> RiskLogic:
    ctx = make_ctx("risk", "", clock or ManualClock(START))
    return RiskLogic(ctx, RiskConfig(**overrides), SYMBOLS)


def action(risk: RiskLogic, kind=MandateKind.ENTRY, symbol="BTCUSDT", qty="0.1", price="50000",
           direction=Direction.LONG, age_ms=0) -> Action:
    cycle = next(_cycles)
    now = risk.ctx.clock.now_ns()
    return Action(action_id=f"run:{symbol}:{cycle}", symbol=symbol, cycle=cycle, kind=kind, direction=direction,
                  qty=D(qty), mark_price=D(price), data_ts_ns=now - age_ms * MS, ts_event_ns=now, reason="test")


def without_effective(out):
    """Risk's events without what it tells the regimes (``EffectiveTradingStateChanged``)."""
    return [m for m in out if not isinstance(m, EffectiveTradingStateChanged)]


def verdict(out):
    return [m for m in out if isinstance(m, (ActionApproved, ActionDenied))]


def decide(risk: RiskLogic, **kw):
    """The single verdict of one action."""
    (v,) = verdict(risk.handle(action(risk, **kw)))
    return v


def denied_for(risk: RiskLogic, **kw) -> str | None:
    v = decide(risk, **kw)
    return v.reason if isinstance(v, ActionDenied) else None


def position(symbol="BTCUSDT", state=PositionState.OPEN, qty="0.1", direction=Direction.LONG, entry="50000",
             realized="0", fees="0", action_id="") -> PositionChanged:
    return PositionChanged(symbol=symbol, state=state, direction=direction if D(qty) else None, qty=D(qty),
                           avg_entry_price=D(entry) if D(qty) else None, realized_pnl=D(realized), fees=D(fees),
                           ts_event_ns=0, action_id=action_id)


def cancels(out) -> dict[str, bool]:
    return {m.symbol: m.entries_only for m in out if isinstance(m, CancelOpenOrders)}


# -- config -----------------------------------------------------------------------------------
def test_config_defaults_are_valid_and_decimal():
    """The default config validates and holds money as Decimal."""
    cfg = RiskConfig().validate()
    assert cfg.starting_equity == D("100000") and isinstance(cfg.maintenance_margin_rate, D)
    assert cfg.on_symbol_failure is TradingState.HALTED and cfg.kill_switch_flatten is False


@pytest.mark.parametrize("field,value", [
    ("starting_equity", "-1"), ("max_leverage", "0"), ("max_symbol_notional", "abc"),
    ("maintenance_margin_rate", "1"), ("max_daily_loss_pct", "0"), ("max_drawdown_pct", "1.5"),
    ("max_orders_per_window", 0), ("order_window_s", -5), ("stale_data_ms", 1.5),
    ("on_symbol_failure", "ACTIVE"), ("on_symbol_failure", "nonsense"), ("kill_switch_flatten", "yes"),
])
def test_config_validation_names_the_key(field, value):
    """A bad value raises ConfigError naming risk.<field>."""
    with pytest.raises(ConfigError) as err:
        RiskConfig(**{field: value}).validate()
    assert err.value.key == f"risk.{field}"


def test_config_target_leverage_above_max_is_rejected():
    """target_leverage may not exceed max_leverage."""
    with pytest.raises(ConfigError) as err:
        RiskConfig(target_leverage=6, max_leverage=5).validate()
    assert err.value.key == "risk.target_leverage"


def test_config_critical_distance_must_be_below_min():
    """critical_liq_distance_pct must be below min_liq_distance_pct."""
    with pytest.raises(ConfigError) as err:
        RiskConfig(critical_liq_distance_pct=0.2, min_liq_distance_pct=0.2).validate()
    assert err.value.key == "risk.critical_liq_distance_pct"


def test_config_from_mapping_converts_toml_values_and_rejects_unknown_keys():
    """TOML floats and strings become exact Decimals and states; an unknown key is named."""
    cfg = RiskConfig.from_mapping({"maintenance_margin_rate": 0.005, "on_symbol_failure": "REDUCING"})
    assert cfg.maintenance_margin_rate == D("0.005") and cfg.on_symbol_failure is TradingState.REDUCING
    with pytest.raises(ConfigError) as err:
        RiskConfig.from_mapping({"max_leverag": 3})
    assert err.value.key == "risk.max_leverag"


def test_logic_refuses_an_invalid_config():
    """RiskLogic validates its config at construction."""
    with pytest.raises(ConfigError):
        make(max_leverage=1, target_leverage=2)


# -- verdicts ---------------------------------------------------------------------------------
def test_entry_within_limits_is_approved():
    """An ENTRY inside every limit gets exactly one ActionApproved carrying the action."""
    risk = make()
    a = action(risk)
    assert risk.handle(a) == [ActionApproved(symbol="BTCUSDT", action=a, ts_event_ns=START)]


@pytest.mark.parametrize("kind", [MandateKind.HOLD, MandateKind.BLOCK])
def test_hold_and_block_get_no_verdict(kind):
    """HOLD and BLOCK produce no verdict but still update the mark and data time."""
    risk = make()
    assert risk.handle(action(risk, kind=kind, qty="0", price="51000")) == []
    assert risk.book.get("BTCUSDT").mark_price == D("51000")


def test_stale_data_denies_entry_and_fresh_data_allows_it():
    """An ENTRY on data older than stale_data_ms is denied; at the limit it passes."""
    risk = make()
    assert denied_for(risk, age_ms=5001) == "stale_data"
    assert denied_for(risk, age_ms=5000) is None


def test_stale_data_does_not_block_reducing_risk():
    """REDUCE and EXIT are not subject to the staleness check."""
    risk = make()
    risk.handle(position())
    assert denied_for(risk, kind=MandateKind.REDUCE, age_ms=60_000, qty="0.05") is None
    assert denied_for(risk, kind=MandateKind.EXIT, age_ms=60_000) is None


@pytest.mark.parametrize("kind", [MandateKind.ENTRY, MandateKind.REDUCE, MandateKind.EXIT])
def test_non_positive_qty_is_denied(kind):
    """An order action with qty <= 0 is denied as invalid_qty."""
    risk = make()
    assert denied_for(risk, kind=kind, qty="0") == "invalid_qty"
    assert denied_for(risk, kind=kind, qty="-1") == "invalid_qty"


def test_entry_without_a_price_is_denied():
    """An ENTRY with no positive mark price cannot be valued and is denied."""
    risk = make()
    assert denied_for(risk, price="0") == "invalid_price"


def test_symbol_notional_limit_counts_reservations_and_new_order():
    """Reserved + new notional of a symbol may reach max_symbol_notional, never pass it."""
    risk = make()
    assert denied_for(risk, qty="0.3") is None  # 15000 reserved
    assert denied_for(risk, qty="0.1") is None  # 20000: at the limit
    assert denied_for(risk, qty="0.001") == "max_symbol_notional"
    assert denied_for(risk, symbol="ETHUSDT", qty="0.001") is None


@pytest.mark.parametrize("state", [PositionState.ENTERING, PositionState.OPEN, PositionState.REDUCING,
                                   PositionState.CLOSING])
def test_entry_is_denied_while_the_symbol_is_not_flat(state):
    """An ENTRY for a symbol whose position is not FLAT is denied (position_not_flat): Position would
    only answer ActionNotApplicable, after Risk reserved notional and spent the order rate on it."""
    risk = make()
    risk.handle(position(state=state, qty="0" if state is PositionState.ENTERING else "0.1"))
    assert denied_for(risk, qty="0.01") == "position_not_flat"
    assert denied_for(risk, kind=MandateKind.EXIT, qty="0.1") is None
    assert denied_for(risk, symbol="ETHUSDT", qty="0.01") is None


def test_portfolio_notional_limit_is_gross_across_symbols():
    """Gross notional across symbols, reservations included, may not pass max_portfolio_notional."""
    risk = make()
    for s in ("BTCUSDT", "ETHUSDT", "SOLUSDT"):
        assert denied_for(risk, symbol=s, qty="0.4") is None  # 20000 each -> 60000
    assert denied_for(risk, symbol="XRPUSDT", qty="0.0001") == "max_portfolio_notional"


def test_leverage_limit_on_gross_notional_over_equity():
    """Gross notional after the order over equity may not pass max_leverage."""
    risk = make(starting_equity=10000, max_leverage=2, target_leverage=1, max_symbol_notional=100000,
                max_portfolio_notional=100000)
    assert denied_for(risk, qty="0.4") is None  # 20000 / 10000 = 2x
    assert denied_for(risk, symbol="ETHUSDT", qty="0.001") == "max_leverage"


def test_liquidation_distance_at_target_leverage():
    """An entry whose liquidation would sit closer than min_liq_distance_pct is denied."""
    near = make(max_leverage=5, target_leverage=5)  # 1/5 - 0.005 = 0.195 < 0.2
    far = make(max_leverage=5, target_leverage=4)  # 1/4 - 0.005 = 0.245
    assert denied_for(near) == "liquidation_distance"
    assert denied_for(far) is None


def test_liquidation_distance_uses_account_leverage_when_higher():
    """With cross exposure above target leverage, the account's leverage sets the distance."""
    risk = make(starting_equity=10000, max_leverage=5, target_leverage=1, max_symbol_notional=100000,
                max_portfolio_notional=100000)
    assert denied_for(risk, qty="0.9") is None  # 45000 / 10000 = 4.5x -> 0.217
    assert denied_for(risk, symbol="ETHUSDT", qty="0.08") == "liquidation_distance"  # 4.9x -> 0.199


def test_order_rate_limits_approvals_in_the_window_but_not_exits():
    """After max_orders_per_window approvals, ENTRY and REDUCE are denied; EXIT still passes."""
    risk = make(max_orders_per_window=2, order_window_s=60)
    risk.handle(position(symbol="ETHUSDT", qty="1", entry="2000"))
    assert denied_for(risk, qty="0.01") is None
    assert denied_for(risk, qty="0.01") is None
    assert denied_for(risk, qty="0.01") == "order_rate"
    assert denied_for(risk, kind=MandateKind.REDUCE, symbol="ETHUSDT", qty="0.5", price="2000") == "order_rate"
    assert denied_for(risk, kind=MandateKind.EXIT, symbol="ETHUSDT", qty="1", price="2000") is None


def test_order_rate_window_slides():
    """Approvals older than order_window_s no longer count."""
    clock = ManualClock(START)
    risk = make(clock, max_orders_per_window=1, order_window_s=60)
    assert denied_for(risk, qty="0.01") is None
    clock.advance(59 * 10**9)
    assert denied_for(risk, qty="0.01") == "order_rate"
    clock.advance(1 * 10**9)
    assert denied_for(risk, qty="0.01") is None


def test_reservation_is_released_when_the_position_leaves_entering():
    """An approved ENTRY's notional stays reserved while ENTERING and is released once OPEN or FLAT."""
    risk = make()
    a = decide(risk, qty="0.4").action  # 20000 reserved: the symbol is full
    risk.handle(position(state=PositionState.ENTERING, qty="0", action_id=a.action_id))
    assert risk.book.symbol_notional("BTCUSDT") == D("20000")
    risk.handle(position(state=PositionState.FLAT, qty="0", action_id=a.action_id))  # cancelled
    assert risk.book.symbol_notional("BTCUSDT") == 0
    assert denied_for(risk, qty="0.001") is None


def test_reservation_is_released_by_action_not_applicable():
    """An approved ENTRY the position could not act on no longer holds notional."""
    risk = make()
    a = decide(risk, qty="0.4").action
    risk.handle(ActionNotApplicable(symbol="BTCUSDT", action_id=a.action_id, kind=MandateKind.ENTRY,
                                    state="OPEN", ts_event_ns=START))
    assert risk.book.symbol_notional("BTCUSDT") == 0


def test_restored_flat_position_releases_a_lost_entrys_reservation():
    """A position re-announced FLAT after its process restarted frees an approval it never acted on."""
    risk = make()
    decide(risk, qty="0.4")  # approved, then lost with the worker that was to place it
    risk.handle(attrs.evolve(position(state=PositionState.FLAT, qty="0"), cause="restored"))
    assert risk.book.symbol_notional("BTCUSDT") == 0
    assert risk.book.reservations() == ()


def test_restored_entering_position_keeps_only_its_own_reservation():
    """A position re-announced ENTERING keeps its pending entry's reservation, none of the others."""
    risk = make()
    lost = decide(risk, qty="0.1").action
    kept = decide(risk, qty="0.2").action
    risk.handle(attrs.evolve(position(state=PositionState.ENTERING, qty="0", action_id=kept.action_id),
                             cause="restored"))
    assert [r.action_id for r in risk.book.reservations()] == [kept.action_id]
    assert lost.action_id != kept.action_id
    assert risk.book.symbol_notional("BTCUSDT") == D("10000")


def test_restored_position_of_one_symbol_leaves_other_symbols_reservations():
    """Re-announcing one symbol's position settles that symbol's reservations only."""
    risk = make()
    decide(risk, qty="0.1", symbol="ETHUSDT", price="2000")
    risk.handle(attrs.evolve(position(state=PositionState.FLAT, qty="0"), cause="restored"))
    assert risk.book.symbol_notional("ETHUSDT") == D("200")


def test_open_position_carries_its_own_exposure():
    """Once OPEN, the position's qty at the latest mark is the symbol's exposure, not the reservation."""
    risk = make()
    a = decide(risk, qty="0.2").action
    risk.handle(position(qty="0.2", action_id=a.action_id))
    risk.handle(action(risk, kind=MandateKind.HOLD, qty="0", price="60000"))
    assert risk.book.symbol_notional("BTCUSDT") == D("12000")
    assert risk.status()["gross_exposure"] == "12000.0"


def test_status_gives_each_symbols_pnl_net_of_fees_at_the_latest_mark():
    """A symbol's status pnl is realized - fees + unrealized at the last mark."""
    risk = make()
    risk.handle(position(qty="1", direction=Direction.SHORT, entry="2000", realized="150", fees="10",
                         symbol="ETHUSDT"))
    risk.handle(action(risk, kind=MandateKind.HOLD, symbol="ETHUSDT", qty="0", price="1900"))
    assert D(risk.status()["symbols"]["ETHUSDT"]["pnl"]) == D("240")
    assert D(risk.status()["symbols"]["BTCUSDT"]["pnl"]) == 0


def test_equity_counts_realized_fees_and_unrealized_short():
    """Equity = start + realized - fees + (mark - avg) * qty * sign, SHORT included."""
    risk = make()
    risk.handle(position(qty="1", direction=Direction.SHORT, entry="2000", realized="150", fees="10",
                         symbol="ETHUSDT"))
    risk.handle(action(risk, kind=MandateKind.HOLD, symbol="ETHUSDT", qty="0", price="1900"))
    assert risk.equity() == D("100000") + 150 - 10 + 100


# -- trading states -------------------------------------------------------------------------------
def test_pausing_a_symbol_denies_entries_allows_reduce_and_cancels_entry_orders():
    """REDUCING: ENTRY denied, REDUCE/EXIT allowed, entry orders of that symbol cancelled."""
    risk = make()
    risk.handle(position())
    out = risk.handle(SetTradingState(scope="BTCUSDT", state=TradingState.REDUCING, who="ops", reason="news"))
    assert out[0] == TradingStateChanged(scope="BTCUSDT", old=TradingState.ACTIVE, new=TradingState.REDUCING,
                                         who="ops", reason="news", ts_event_ns=START)
    assert cancels(out) == {"BTCUSDT": True}
    assert denied_for(risk) == "trading_state"
    assert denied_for(risk, kind=MandateKind.REDUCE, qty="0.05") is None
    assert denied_for(risk, symbol="ETHUSDT", qty="0.01") is None


def test_halted_symbol_denies_everything_and_cancels_all_orders():
    """HALTED: every order action denied, all open orders of the symbol cancelled."""
    risk = make()
    risk.handle(position())
    out = risk.handle(SetTradingState(scope="BTCUSDT", state=TradingState.HALTED, who="ops", reason="venue"))
    assert cancels(out) == {"BTCUSDT": False}
    for kind in (MandateKind.ENTRY, MandateKind.REDUCE, MandateKind.EXIT):
        assert denied_for(risk, kind=kind) == "trading_state"


def test_resuming_a_symbol_allows_entries_again():
    """Back to ACTIVE, entries pass; the change is announced and nothing is cancelled."""
    risk = make()
    risk.handle(SetTradingState(scope="BTCUSDT", state=TradingState.REDUCING, who="ops", reason="pause"))
    out = risk.handle(SetTradingState(scope="BTCUSDT", state=TradingState.ACTIVE, who="ops", reason="resume"))
    assert [type(m) for m in out] == [TradingStateChanged, EffectiveTradingStateChanged]
    assert denied_for(risk) is None


def test_global_pause_affects_every_symbol_and_cancels_all_entries():
    """A global REDUCING denies entries on every symbol and cancels entry orders everywhere."""
    risk = make()
    out = risk.handle(SetTradingState(scope="*", state=TradingState.REDUCING, who="ops", reason="fomc"))
    assert cancels(out) == {s: True for s in SYMBOLS}
    assert all(denied_for(risk, symbol=s) == "trading_state" for s in SYMBOLS)
    risk.handle(SetTradingState(scope="*", state=TradingState.ACTIVE, who="ops", reason="done"))
    assert denied_for(risk) is None


def test_setting_the_same_state_emits_nothing():
    """A trading state that does not change produces no event and no cancels."""
    risk = make()
    assert risk.handle(SetTradingState(scope="BTCUSDT", state=TradingState.ACTIVE, who="ops", reason="x")) == []


# -- kill switch -------------------------------------------------------------------------------
def test_kill_switch_latches_until_reset_with_a_reason():
    """Engage: entries denied everywhere and entry orders cancelled; an empty reset is refused; a reset with a reason releases."""
    clock = ManualClock(START)
    risk = make(clock)
    out = risk.handle(EngageKillSwitch(who="alice", reason="manual"))
    assert out[0] == KillSwitchEngaged(who="alice", reason="manual", ts_event_ns=START)
    assert cancels(out) == {s: True for s in SYMBOLS}
    assert all(denied_for(risk, symbol=s) == "kill_switch" for s in SYMBOLS)
    assert risk.handle(ResetKillSwitch(who="alice", reason="  ")) == [
        KillSwitchResetRefused(who="alice", reason="a reset needs a reason", ts_event_ns=START)]
    assert denied_for(risk) == "kill_switch"
    clock.advance(10**9)
    assert without_effective(risk.handle(ResetKillSwitch(who="alice", reason="checked venue"))) == [
        KillSwitchReset(who="alice", reason="checked venue", ts_event_ns=START + 10**9)]
    assert denied_for(risk) is None


def test_kill_switch_never_resets_by_itself():
    """Days of ticks and actions do not release an engaged kill switch."""
    clock = ManualClock(START)
    risk = make(clock)
    risk.handle(EngageKillSwitch(who="alice", reason="manual"))
    for _ in range(5):
        clock.advance(DAY)
        risk.handle(TimerTick(ts_event_ns=clock.now_ns()))
    assert risk.status()["kill_switch"]["engaged"] is True
    assert denied_for(risk) == "kill_switch"


def test_kill_switch_engaged_twice_emits_once():
    """Engaging an engaged kill switch is idempotent: no second event, the first cause is kept."""
    risk = make()
    risk.handle(EngageKillSwitch(who="alice", reason="first"))
    assert risk.handle(EngageKillSwitch(who="bob", reason="second")) == []
    assert risk.status()["kill_switch"]["who"] == "alice"
    assert risk.stats()["kill_switch_engagements"] == 1


def test_kill_switch_allows_reducing_risk():
    """While the kill switch is engaged REDUCE and EXIT still pass (at least REDUCING)."""
    risk = make()
    risk.handle(position())
    risk.handle(EngageKillSwitch(who="alice", reason="manual"))
    assert denied_for(risk, kind=MandateKind.REDUCE, qty="0.05") is None
    assert denied_for(risk, kind=MandateKind.EXIT) is None


def test_kill_switch_flatten_approves_an_exit_for_every_open_position():
    """With kill_switch_flatten, engaging approves an EXIT of each open position in its direction."""
    risk = make(kill_switch_flatten=True)
    risk.handle(position(symbol="ETHUSDT", qty="2", direction=Direction.SHORT, entry="2000"))
    out = risk.handle(EngageKillSwitch(who="alice", reason="flatten"))
    exits = [m.action for m in out if isinstance(m, ActionApproved)]
    assert [(a.symbol, a.kind, a.direction, a.qty) for a in exits] == [
        ("ETHUSDT", MandateKind.EXIT, Direction.SHORT, D("2"))]
    assert cancels(out) == {s: True for s in SYMBOLS}


@pytest.mark.parametrize("reason", ["\u200b", "\u200b\u2060\ufeff", "\u00a0\u3000", "\u200e\n"])
def test_reset_with_only_invisible_characters_is_refused(reason):
    """A reset whose reason has no visible character (zero-width, format, spaces) leaves the latch engaged."""
    risk = make()
    risk.handle(EngageKillSwitch(who="alice", reason="manual"))
    (out,) = risk.handle(ResetKillSwitch(who="alice", reason=reason))
    assert isinstance(out, KillSwitchResetRefused)
    assert risk.controls.kill.engaged


def test_reset_when_not_engaged_is_refused():
    """A reset of a kill switch that is not engaged is answered with a refusal."""
    risk = make()
    (out,) = risk.handle(ResetKillSwitch(who="alice", reason="why not"))
    assert isinstance(out, KillSwitchResetRefused)


# -- supervision -------------------------------------------------------------------------------
def failed(symbol: str, actor: str) -> ActorFailed:
    return ActorFailed(actor_id=actor, symbol=symbol, kind="exception", error="boom", message_tag="X.v1",
                       ts_event_ns=START)


def test_symbol_actor_failure_halts_the_symbol_and_cancels():
    """A failed symbol actor moves that symbol to on_symbol_failure (HALTED) and cancels its orders."""
    risk = make()
    out = risk.handle(failed("BTCUSDT", "BTCUSDT/feature"))
    assert out[0].new is TradingState.HALTED and out[0].who == "supervision"
    assert cancels(out) == {"BTCUSDT": False}
    assert denied_for(risk) == "trading_state"
    assert denied_for(risk, symbol="ETHUSDT", qty="0.01") is None


def test_symbol_failure_policy_reducing_cancels_entries_only():
    """With on_symbol_failure=REDUCING the symbol may still reduce; entry orders are cancelled."""
    risk = make(on_symbol_failure="REDUCING")
    risk.handle(position())
    out = risk.handle(failed("BTCUSDT", "BTCUSDT/executor"))
    assert cancels(out) == {"BTCUSDT": True}
    assert denied_for(risk) == "trading_state"
    assert denied_for(risk, kind=MandateKind.EXIT) is None


def test_singleton_failure_engages_the_kill_switch():
    """A failed singleton (symbol "") engages the global kill switch, who=supervision."""
    risk = make()
    out = risk.handle(failed("", "arbitrator"))
    assert isinstance(out[0], KillSwitchEngaged) and out[0].who == "supervision"
    assert all(denied_for(risk, symbol=s) == "kill_switch" for s in SYMBOLS)


def test_recovery_returns_a_supervised_symbol_to_active():
    """SymbolRecovered brings a symbol supervision put down back to ACTIVE."""
    risk = make()
    risk.handle(failed("BTCUSDT", "BTCUSDT/feature"))
    (out,) = without_effective(risk.handle(SymbolRecovered(symbol="BTCUSDT", ts_event_ns=START)))
    assert out.new is TradingState.ACTIVE and out.who == "supervision"
    assert denied_for(risk) is None


def test_recovery_does_not_resume_an_operator_pause():
    """A symbol the operator paused stays paused after its recovery."""
    risk = make()
    risk.handle(SetTradingState(scope="BTCUSDT", state=TradingState.REDUCING, who="ops", reason="pause"))
    risk.handle(failed("BTCUSDT", "BTCUSDT/feature"))
    risk.handle(SymbolRecovered(symbol="BTCUSDT", ts_event_ns=START))
    assert risk.controls.state("BTCUSDT") is TradingState.REDUCING


def test_operator_decision_during_failure_wins_over_recovery():
    """An operator who sets a state while supervision holds the symbol down keeps it after recovery."""
    risk = make()
    risk.handle(failed("BTCUSDT", "BTCUSDT/feature"))
    risk.handle(SetTradingState(scope="BTCUSDT", state=TradingState.REDUCING, who="ops", reason="keep"))
    assert without_effective(risk.handle(SymbolRecovered(symbol="BTCUSDT", ts_event_ns=START))) == []
    assert risk.controls.state("BTCUSDT") is TradingState.REDUCING


def test_recovery_of_a_symbol_never_failed_changes_nothing():
    """SymbolRecovered for a symbol supervision did not put down changes no state (its regime is told it again)."""
    risk = make()
    out = risk.handle(SymbolRecovered(symbol="BTCUSDT", ts_event_ns=START))
    assert without_effective(out) == [] and effective(out) == {"BTCUSDT": TradingState.ACTIVE}


# -- loss limits -------------------------------------------------------------------------------
def test_daily_loss_engages_the_kill_switch_and_denies_entries_for_the_day():
    """Realizing the daily loss limit engages the kill switch (who=risk); after a reset entries stay denied until the next UTC day."""
    clock = ManualClock(START)
    risk = make(clock)
    risk.handle(TimerTick(ts_event_ns=START))  # anchors the day at 100000
    out = risk.handle(position(state=PositionState.FLAT, qty="0", realized="-3000"))
    assert isinstance(out[0], KillSwitchEngaged) and out[0].who == "risk"
    assert denied_for(risk) == "kill_switch"
    risk.handle(ResetKillSwitch(who="alice", reason="reviewed"))
    assert denied_for(risk) == "daily_loss"
    clock.set((START // DAY + 1) * DAY)  # next UTC midnight: new anchor
    assert denied_for(risk) is None


def test_daily_loss_below_the_limit_allows_entries():
    """A loss smaller than max_daily_loss_pct trips nothing."""
    risk = make()
    risk.handle(TimerTick(ts_event_ns=START))
    assert risk.handle(position(state=PositionState.FLAT, qty="0", realized="-2999")) == []
    assert denied_for(risk) is None


def test_daily_anchor_is_the_equity_before_the_days_first_event():
    """A loss realized by the first event of a day still counts against that day."""
    risk = make()
    out = risk.handle(position(state=PositionState.FLAT, qty="0", realized="-3500"))
    assert isinstance(out[0], KillSwitchEngaged)
    assert risk.status()["daily_pnl"] == "-3500"


def test_drawdown_from_peak_engages_the_kill_switch():
    """An unrealized fall of max_drawdown_pct from peak equity engages the kill switch on the next check."""
    clock = ManualClock(START)
    risk = make(clock, max_daily_loss_pct=0.5)
    risk.handle(position(qty="0.4", entry="50000"))
    risk.handle(action(risk, kind=MandateKind.HOLD, qty="0", price="55000"))  # peak 102000
    clock.advance(DAY)  # a new day: the daily loss is not what trips
    out = risk.handle(action(risk, kind=MandateKind.HOLD, qty="0", price="42250"))  # 96900: -5%
    assert [type(m) for m in out][0] is KillSwitchEngaged and "drawdown" in out[0].reason
    risk.handle(ResetKillSwitch(who="alice", reason="accepted"))
    assert denied_for(risk, symbol="ETHUSDT", qty="0.01", price="2000") is None  # reset re-bases the peak


def test_drawdown_limit_denies_entries_while_hit():
    """With the drawdown latched, an ENTRY is denied as drawdown even if the kill switch is off."""
    risk = make(max_daily_loss_pct=0.5)
    risk.handle(position(state=PositionState.FLAT, qty="0", realized="-5000"))
    risk.controls.kill.engaged = False  # isolate the drawdown check from the kill switch
    assert denied_for(risk) == "drawdown"


def test_limits_are_checked_on_timer_ticks():
    """A TimerTick alone re-checks the loss limits."""
    risk = make()
    risk.handle(TimerTick(ts_event_ns=START))
    risk.book.get("BTCUSDT").realized_pnl = D("-6000")  # as if restored from the store
    risk.book.invalidate()  # as a restore does after changing books
    out = risk.handle(TimerTick(ts_event_ns=START))
    assert isinstance(out[0], KillSwitchEngaged)


# -- status and monitoring ----------------------------------------------------------------------
def test_tick_reports_stale_data_of_open_positions_without_killing():
    """A tick lists open positions on stale data as warnings and leaves the kill switch alone."""
    clock = ManualClock(START)
    risk = make(clock)
    risk.handle(position())
    risk.handle(action(risk, kind=MandateKind.HOLD, qty="0"))
    clock.advance(6000 * MS)
    assert risk.handle(TimerTick(ts_event_ns=clock.now_ns())) == []
    assert any("BTCUSDT" in w for w in risk.status()["warnings"])


def test_stale_data_engages_the_kill_switch_when_configured():
    """With kill_on_stale_data, stale data under an open position engages the kill switch."""
    clock = ManualClock(START)
    risk = make(clock, kill_on_stale_data=True)
    risk.handle(position())
    risk.handle(action(risk, kind=MandateKind.HOLD, qty="0"))
    clock.advance(6000 * MS)
    out = risk.handle(TimerTick(ts_event_ns=clock.now_ns()))
    assert isinstance(out[0], KillSwitchEngaged)


def test_status_is_a_plain_snapshot():
    """status() reports trading permission, kill switch, states, equity, limits and exposure."""
    risk = make()
    risk.handle(SetTradingState(scope="ETHUSDT", state=TradingState.REDUCING, who="ops", reason="x"))
    st = risk.status()
    assert st["trading_allowed"] is True and st["kill_switch"]["engaged"] is False
    assert st["global_state"] == "ACTIVE" and st["symbols"]["ETHUSDT"]["state"] == "REDUCING"
    assert st["equity"] == "100000" and st["daily_loss_limit_pct"] == "0.03"
    assert st["drawdown_limit_pct"] == "0.05" and st["max_portfolio_notional"] == "60000"
    assert {"daily_pnl", "daily_pnl_pct", "drawdown_pct", "gross_exposure", "net_exposure", "warnings"} <= set(st)


def test_stats_count_approvals_and_denials_by_reason():
    """stats() counts approvals by kind and denials by reason code."""
    risk = make()
    decide(risk)
    decide(risk, age_ms=10_000)
    decide(risk, qty="0")
    assert risk.stats()["approvals"] == {"ENTRY": 1}
    assert risk.stats()["denials"] == {"stale_data": 1, "invalid_qty": 1}


def test_reduce_and_exit_skip_the_exposure_checks():
    """A position already over every exposure limit may still be reduced and exited."""
    risk = make(starting_equity=1000)
    risk.handle(position(qty="2"))  # 100000 notional: over symbol, portfolio and leverage limits
    assert denied_for(risk, symbol="ETHUSDT", qty="0.001") == "max_portfolio_notional"
    assert denied_for(risk, kind=MandateKind.REDUCE, qty="1") is None
    assert denied_for(risk, kind=MandateKind.EXIT, qty="2") is None


def test_feed_never_lifts_an_operators_pause():
    """A feed 'restore' cannot override a pause an operator set, even one that raced the feed's own degrade."""
    from arbor.actors.risk import RiskConfig, RiskLogic
    from arbor.actors.testing import make_ctx
    from arbor.messages import SetTradingState, TradingState

    risk = RiskLogic(make_ctx("risk", ""), RiskConfig(), ("BTCUSDT",))
    risk.handle(SetTradingState(scope="BTCUSDT", state=TradingState.REDUCING, who="feed", reason="stale_feed"))
    risk.handle(SetTradingState(scope="BTCUSDT", state=TradingState.REDUCING, who="ops", reason="pause"))
    out = risk.handle(SetTradingState(scope="BTCUSDT", state=TradingState.ACTIVE, who="feed", reason="feed valid"))
    assert out == []
    assert risk.controls.state("BTCUSDT") is TradingState.REDUCING


def test_feed_lifts_only_what_it_set_and_never_lowers_a_halt():
    """The feed restores its own REDUCING to ACTIVE, but leaves a HALTED set by someone else alone."""
    from arbor.actors.risk import RiskConfig, RiskLogic
    from arbor.actors.testing import make_ctx
    from arbor.messages import SetTradingState, TradingState

    risk = RiskLogic(make_ctx("risk", ""), RiskConfig(), ("BTCUSDT",))
    risk.handle(SetTradingState(scope="BTCUSDT", state=TradingState.REDUCING, who="feed", reason="book_desync"))
    risk.handle(SetTradingState(scope="BTCUSDT", state=TradingState.ACTIVE, who="feed", reason="feed valid"))
    assert risk.controls.state("BTCUSDT") is TradingState.ACTIVE
    risk.handle(SetTradingState(scope="BTCUSDT", state=TradingState.HALTED, who="ops", reason="halt"))
    assert risk.handle(SetTradingState(scope="BTCUSDT", state=TradingState.REDUCING, who="feed", reason="stale")) == []
    assert risk.controls.state("BTCUSDT") is TradingState.HALTED


# -- prices no venue sends (issue 14: defence in depth behind the decoders) -----------------------
@pytest.mark.parametrize("price", ["0", "-1", "NaN", "Infinity", "sNaN"])
@pytest.mark.parametrize("kind", [MandateKind.ENTRY, MandateKind.REDUCE, MandateKind.EXIT])
def test_action_with_a_mark_not_positive_and_finite_is_denied(kind, price):
    """An order action whose mark price is not positive and finite is denied invalid_price, never a crash."""
    risk = make()
    assert denied_for(risk, kind=kind, price=price) == "invalid_price"
    assert risk.stats()["refused_prices"] == 1


@pytest.mark.parametrize("price", ["0", "NaN", "-3"])
def test_a_bad_mark_never_values_the_book(price):
    """A bad mark (on a HOLD too) leaves the last good mark in place: equity stays a finite number."""
    risk = make()
    risk.handle(position(qty="0.1", entry="50000"))
    risk.handle(action(risk, kind=MandateKind.HOLD, price="51000"))
    before = risk.equity()
    risk.handle(action(risk, kind=MandateKind.HOLD, price=price))
    assert risk.equity() == before
    assert risk.book.get("BTCUSDT").mark_price == D("51000")


@pytest.mark.parametrize("entry", ["0", "-1", "NaN"])
def test_position_at_a_fill_price_not_positive_and_finite_halts_new_risk(entry):
    """A position entered at a price no venue fills at is refused as a valuation and its symbol stops entries."""
    risk = make()
    out = risk.handle(position(qty="0.1", entry=entry))
    assert risk.controls.state("BTCUSDT") is not TradingState.ACTIVE
    assert risk.equity().is_finite() and risk.equity() == risk.config.starting_equity
    assert any(isinstance(m, TradingStateChanged) and m.scope == "BTCUSDT" for m in out)
    assert denied_for(risk, kind=MandateKind.ENTRY) == "trading_state"
    assert risk.stats()["refused_prices"] == 1


def test_announce_state_repeats_the_latch_and_every_scope_not_active():
    """AnnounceState emits KillSwitchEngaged and a TradingStateChanged per non-ACTIVE scope, with
    their original who, why and when; nothing for ACTIVE scopes or a released latch."""
    clock = ManualClock(START)
    risk = make(clock)
    assert risk.handle(AnnounceState(reason="start")) == []
    risk.handle(SetTradingState(scope="*", state=TradingState.REDUCING, who="op", reason="pause"))
    risk.handle(EngageKillSwitch(who="op", reason="drill"))
    clock.advance(10**9)
    out = risk.handle(AnnounceState(reason="start"))
    assert [m for m in out if isinstance(m, TradingStateChanged)] == [TradingStateChanged(
        scope="*", old=TradingState.ACTIVE, new=TradingState.REDUCING, who="op", reason="pause", ts_event_ns=START)]
    assert [m for m in out if isinstance(m, KillSwitchEngaged)] == [KillSwitchEngaged(who="op", reason="drill",
                                                                                      ts_event_ns=START)]
    assert not [m for m in out if isinstance(m, CancelOpenOrders)]


def effective(out) -> dict[str, TradingState]:
    return {m.symbol: m.state for m in out if isinstance(m, EffectiveTradingStateChanged)}


def test_global_state_change_tells_every_symbol_its_effective_state():
    """A global pause tells each symbol's regime REDUCING; resuming tells ACTIVE except to a symbol paused on its own."""
    risk = make()
    assert effective(risk.handle(SetTradingState(scope="BTCUSDT", state=TradingState.HALTED, who="op", reason="x"))) == {
        "BTCUSDT": TradingState.HALTED}
    assert effective(risk.handle(SetTradingState(scope="*", state=TradingState.REDUCING, who="op", reason="x"))) == {
        "ETHUSDT": TradingState.REDUCING, "SOLUSDT": TradingState.REDUCING}
    assert effective(risk.handle(SetTradingState(scope="*", state=TradingState.ACTIVE, who="op", reason="x"))) == {
        "ETHUSDT": TradingState.ACTIVE, "SOLUSDT": TradingState.ACTIVE}


def test_kill_switch_tells_every_symbol_reducing_and_reset_active():
    """The latch binds every symbol to at least REDUCING; its reset releases them."""
    risk = make()
    assert set(effective(risk.handle(EngageKillSwitch(who="op", reason="x"))).values()) == {TradingState.REDUCING}
    assert set(effective(risk.handle(ResetKillSwitch(who="op", reason="ok"))).values()) == {TradingState.ACTIVE}


def test_recovered_symbol_is_told_its_state_even_unchanged():
    """A recovered symbol's (possibly new) regime is told its state, also when recovery changed nothing."""
    risk = make(on_symbol_failure="REDUCING")
    risk.handle(SetTradingState(scope="BTCUSDT", state=TradingState.REDUCING, who="op", reason="pause"))
    assert effective(risk.handle(ActorFailed(actor_id="BTCUSDT/feature", symbol="BTCUSDT", kind="exception",
                                             error="x", message_tag="", ts_event_ns=START))) == {}
    assert effective(risk.handle(SymbolRecovered(symbol="BTCUSDT", ts_event_ns=START))) == {"BTCUSDT": TradingState.REDUCING}


def test_announce_state_tells_every_restricted_symbol():
    """At start, every symbol whose effective state is not ACTIVE is told it (regimes assume ACTIVE)."""
    risk = make()
    risk.handle(SetTradingState(scope="ETHUSDT", state=TradingState.HALTED, who="op", reason="x"))
    restored = make()
    restored.restore(risk.snapshot())
    assert effective(restored.handle(AnnounceState(reason="start"))) == {"ETHUSDT": TradingState.HALTED}


def health(name="calm", new="BROKEN", old="OK", on_broken="reduce", on_recover="resume", symbol="BTCUSDT"):
    return AssumptionHealthChanged(symbol=symbol, name=name, observation="vol_ratio", old=AssumptionStatus(old),
                                   new=AssumptionStatus(new), value=2.5, bound="<= 1.6", samples=10,
                                   on_broken=on_broken, on_recover=on_recover, ts_event_ns=START)


def test_broken_assumption_reduces_and_its_recovery_resumes():
    """BROKEN with on_broken=reduce: REDUCING (entries denied, entries cancelled); back to OK with resume: ACTIVE."""
    risk = make()
    out = risk.handle(health())
    [changed] = [m for m in out if isinstance(m, TradingStateChanged)]
    assert (changed.new, changed.who) == (TradingState.REDUCING, "assumptions")
    assert cancels(out) == {"BTCUSDT": True}
    assert denied_for(risk) == "trading_state"
    assert risk.handle(health(new="DRIFTING", old="BROKEN")) != []  # no longer broken: resumed
    assert risk.controls.state("BTCUSDT") is TradingState.ACTIVE and denied_for(risk) is None


def test_unknown_is_no_recovery_and_every_broken_assumption_must_clear():
    """UNKNOWN keeps the hold; with two broken assumptions the symbol resumes only after both cleared."""
    risk = make()
    risk.handle(health("calm"))
    risk.handle(health("tight"))
    assert without_effective(risk.handle(health("calm", new="UNKNOWN", old="BROKEN"))) == []
    risk.handle(health("calm", new="OK", old="UNKNOWN"))
    assert risk.controls.state("BTCUSDT") is TradingState.REDUCING
    risk.handle(health("tight", new="OK", old="BROKEN"))
    assert risk.controls.state("BTCUSDT") is TradingState.ACTIVE


def test_operator_recovery_waits_for_the_operator():
    """on_recover=operator: the recovered assumption leaves the symbol REDUCING until an operator resumes it."""
    risk = make()
    risk.handle(health(on_recover="operator"))
    assert without_effective(risk.handle(health(new="OK", old="BROKEN", on_recover="operator"))) == []
    assert risk.controls.state("BTCUSDT") is TradingState.REDUCING
    assert risk.status()["assumption_holds"] == {}


def test_alert_only_assumption_and_an_operator_pause_are_left_alone():
    """on_broken=alert changes nothing; a symbol the operator paused is neither taken over nor resumed."""
    risk = make()
    assert risk.handle(health(on_broken="alert")) == []
    risk.handle(SetTradingState(scope="ETHUSDT", state=TradingState.REDUCING, who="ops", reason="pause"))
    assert risk.handle(health(symbol="ETHUSDT")) == []
    risk.handle(health(symbol="ETHUSDT", new="OK", old="BROKEN"))
    assert risk.controls.scopes["ETHUSDT"].who == "ops"


def test_assumption_hold_survives_a_restart_of_risk():
    """The hold is durable: a restored Risk still resumes the symbol when the assumption recovers."""
    risk = make()
    risk.handle(health())
    restored = make()
    restored.restore(risk.snapshot())
    restored.handle(health(new="OK", old="UNKNOWN"))
    assert restored.controls.state("BTCUSDT") is TradingState.ACTIVE


def test_recovery_from_a_failure_keeps_a_broken_assumption_reducing():
    """Supervision's recovery restores ACTIVE, but a still-broken assumption puts the symbol back to REDUCING."""
    risk = make()
    risk.handle(ActorFailed(actor_id="BTCUSDT/feature", symbol="BTCUSDT", kind="exception", error="x",
                            message_tag="", ts_event_ns=START))
    risk.handle(health())  # HALTED by supervision: the hold is recorded, the state left alone
    assert risk.controls.state("BTCUSDT") is TradingState.HALTED
    risk.handle(SymbolRecovered(symbol="BTCUSDT", ts_event_ns=START))
    assert risk.controls.state("BTCUSDT") is TradingState.REDUCING
