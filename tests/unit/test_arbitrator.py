"""Arbitrator: one Action per symbol per cycle, by authority, sized, within the position limit."""

from __future__ import annotations

import itertools
from decimal import Decimal as D

import attrs
import pytest
from arbor.actors.arbitrator import ArbitratorConfig, ArbitratorLogic
from arbor.actors.testing import ManualClock, handled, make_ctx
from arbor.config.errors import ConfigError
from arbor.messages import (
    Action,
    ActionDenied,
    ActionNotApplicable,
    Direction,
    KillSwitchEngaged,
    Mandate,
    MandateKind,
    MandateSet,
    PositionChanged,
    PositionState,
    Regime,
    TradingState,
    TradingStateChanged,
)

NOW = 1_700_000_000_000_000_000
K = MandateKind


def make(**overrides) -> ArbitratorLogic:
    ctx = make_ctx("arbitrator", "", ManualClock(NOW))
    return ArbitratorLogic(ctx, ArbitratorConfig(**overrides), {"ETHUSDT": D("0.01")})


def mandate(kind: MandateKind, direction=Direction.LONG, size="1", reason="") -> Mandate:
    return Mandate(kind=kind, direction=direction, size_hint=D(size), reason=reason or kind.value.lower())


def mset(*mandates: Mandate, symbol="BTCUSDT", cycle=1, price="50000") -> MandateSet:
    return MandateSet(symbol=symbol, cycle=cycle, ts_event_ns=NOW - 5, regime=Regime.TRENDING, strategy="trend",
                      mandates=tuple(mandates), mark_price=D(price), data_ts_ns=NOW - 10)


def act(arb: ArbitratorLogic, *mandates: Mandate, **kw) -> Action:
    (a,) = handled(arb, mset(*mandates, **kw))
    return a


def position(symbol="BTCUSDT", state=PositionState.OPEN, qty="0.2", direction=Direction.LONG,
             action_id="") -> PositionChanged:
    return PositionChanged(symbol=symbol, state=state, direction=direction if D(qty) else None, qty=D(qty),
                           avg_entry_price=D("50000") if D(qty) else None, realized_pnl=D("0"), fees=D("0"),
                           ts_event_ns=NOW, action_id=action_id)


# -- config -----------------------------------------------------------------------------------
def test_config_defaults():
    """Defaults: 3 concurrent positions, 10000 per full entry, lot 0.001."""
    cfg = ArbitratorConfig().validate()
    assert (cfg.max_concurrent_positions, cfg.entry_notional, cfg.default_qty_step) == (3, D("10000"), D("0.001"))


@pytest.mark.parametrize("field,value", [
    ("max_concurrent_positions", 0), ("max_concurrent_positions", 1.5), ("entry_notional", "-1"),
    ("default_qty_step", "0"), ("entry_notional", "lots"),
])
def test_config_validation_names_the_key(field, value):
    """A bad value raises ConfigError naming arbitrator.<field>."""
    with pytest.raises(ConfigError) as err:
        ArbitratorConfig(**{field: value}).validate()
    assert err.value.key == f"arbitrator.{field}"


def test_config_from_mapping_rejects_unknown_keys():
    """An unknown key in the arbitrator section is named."""
    with pytest.raises(ConfigError) as err:
        ArbitratorConfig.from_mapping({"max_positions": 2})
    assert err.value.key == "arbitrator.max_positions"


# -- authority --------------------------------------------------------------------------------
@pytest.mark.parametrize("first,second", list(itertools.permutations(list(K), 2)))
def test_higher_authority_wins_every_pair(first, second):
    """Of any two mandate kinds, in either order, the Action has the kind of higher authority."""
    arb = make()
    arb.handle(position(qty="0.2"))  # so EXIT and REDUCE have something to act on
    a = act(arb, mandate(first), mandate(second))
    assert a.kind is max(first, second, key=lambda k: k.authority)


def test_tie_takes_the_first_mandate():
    """Two mandates of equal authority: the first in the tuple is taken, never a mix."""
    arb = make()
    a = act(arb, mandate(K.ENTRY, Direction.SHORT, "0.5", "a"), mandate(K.ENTRY, Direction.LONG, "1", "b"))
    assert (a.direction, a.qty, a.reason) == (Direction.SHORT, D("0.1"), "a")


def test_no_mandates_is_hold():
    """An empty MandateSet becomes a HOLD."""
    a = act(make())
    assert a.kind is K.HOLD and a.qty == 0 and a.reason == "no mandates"


def test_one_action_per_symbol_per_cycle():
    """A second MandateSet for the same symbol and cycle produces nothing and is counted."""
    arb = make()
    act(arb, mandate(K.HOLD), cycle=7)
    assert arb.handle(mset(mandate(K.EXIT), cycle=7)) == []
    assert len(arb.handle(mset(mandate(K.HOLD), cycle=7, symbol="ETHUSDT"))) == 1
    assert len(arb.handle(mset(mandate(K.HOLD), cycle=8))) == 1
    assert arb.stats()["duplicates"] == 1


def test_action_carries_the_decision_context():
    """The Action has the run-scoped id, the set's regime, strategy, mark, data time and the clock's time."""
    arb = make()
    a = act(arb, mandate(K.ENTRY, Direction.LONG, "1", "breakout"), cycle=42)
    assert a == Action(action_id="run:BTCUSDT:42", symbol="BTCUSDT", cycle=42, kind=K.ENTRY,
                       direction=Direction.LONG, qty=D("0.2"), mark_price=D("50000"), data_ts_ns=NOW - 10,
                       ts_event_ns=NOW, reason="breakout", regime=Regime.TRENDING, strategy="trend")


def test_short_entry_keeps_its_direction():
    """A SHORT ENTRY mandate becomes a SHORT ENTRY action."""
    a = act(make(), mandate(K.ENTRY, Direction.SHORT))
    assert (a.kind, a.direction) == (K.ENTRY, Direction.SHORT)


def test_block_and_hold_carry_no_quantity():
    """BLOCK and HOLD actions have qty 0 and keep the mandate's reason."""
    arb = make()
    assert (act(arb, mandate(K.BLOCK, reason="spread"), cycle=1).qty,
            act(arb, mandate(K.HOLD), cycle=2).qty) == (0, 0)


# -- sizing -----------------------------------------------------------------------------------
def test_entry_qty_is_floored_to_the_lot_size():
    """ENTRY qty = size_hint * entry_notional / mark, floored to the qty step (never rounded up)."""
    a = act(make(), mandate(K.ENTRY, size="0.5"), price="30123.45")  # 0.16598... -> 0.165
    assert a.qty == D("0.165")


def test_entry_uses_the_symbols_own_lot_size():
    """A symbol with its own qty step is sized to that step."""
    a = act(make(), mandate(K.ENTRY, size="1"), symbol="ETHUSDT", price="3001")  # 3.3322 -> 3.33
    assert a.qty == D("3.33")


def test_entry_below_one_lot_becomes_hold():
    """An ENTRY too small for one lot becomes a HOLD that says why."""
    a = act(make(), mandate(K.ENTRY, size="0.000001"))
    assert a.kind is K.HOLD and "lot size" in a.reason


def test_entry_without_direction_becomes_hold():
    """An ENTRY with no direction is never guessed: it becomes a HOLD."""
    a = act(make(), mandate(K.ENTRY, direction=None))
    assert a.kind is K.HOLD and "direction" in a.reason


def test_reduce_is_a_floored_fraction_of_the_position():
    """REDUCE qty = size_hint * open qty floored to the step, in the position's direction."""
    arb = make()
    arb.handle(position(qty="0.25", direction=Direction.SHORT))
    a = act(arb, mandate(K.REDUCE, direction=None, size="0.5"))  # 0.125
    assert (a.kind, a.direction, a.qty) == (K.REDUCE, Direction.SHORT, D("0.125"))


def test_reduce_when_flat_becomes_hold():
    """REDUCE with nothing open becomes a HOLD."""
    a = act(make(), mandate(K.REDUCE, size="0.5"))
    assert a.kind is K.HOLD and "nothing to reduce" in a.reason


def test_exit_takes_the_whole_position_in_its_direction():
    """EXIT qty is the open qty, with the position's direction (SHORT here)."""
    arb = make()
    arb.handle(position(qty="0.3", direction=Direction.SHORT))
    a = act(arb, mandate(K.EXIT, direction=None))
    assert (a.kind, a.direction, a.qty) == (K.EXIT, Direction.SHORT, D("0.3"))


def test_exit_when_flat_becomes_hold():
    """EXIT with no position becomes a HOLD: nothing to exit."""
    a = act(make(), mandate(K.EXIT))
    assert a.kind is K.HOLD and "nothing to exit" in a.reason


# -- concurrent positions ------------------------------------------------------------------------
def fill_slots(arb: ArbitratorLogic) -> list[Action]:
    return [act(arb, mandate(K.ENTRY), symbol=s, price="100") for s in ("AUSDT", "BUSDT", "CUSDT")]


def test_entry_past_the_position_limit_is_blocked():
    """With max_concurrent_positions symbols busy, an ENTRY on another symbol becomes BLOCK."""
    arb = make()
    assert [a.kind for a in fill_slots(arb)] == [K.ENTRY] * 3
    a = act(arb, mandate(K.ENTRY, Direction.SHORT), symbol="DUSDT", price="100")
    assert (a.kind, a.qty, a.reason, a.direction) == (K.BLOCK, 0, "max_concurrent_positions", Direction.SHORT)
    assert arb.stats()["blocked_by_limit"] == 1


def test_open_positions_hold_slots():
    """Symbols whose positions are not FLAT count toward the limit."""
    arb = make(max_concurrent_positions=2)
    arb.handle(position(symbol="AUSDT"))
    arb.handle(position(symbol="BUSDT", state=PositionState.CLOSING))
    assert act(arb, mandate(K.ENTRY), symbol="CUSDT").kind is K.BLOCK


def test_a_busy_symbol_is_not_blocked_by_the_limit():
    """A symbol already holding a slot is not blocked by the limit."""
    arb = make()
    fill_slots(arb)
    assert act(arb, mandate(K.ENTRY), symbol="AUSDT", cycle=2, price="100").kind is K.ENTRY


def test_denied_entry_releases_its_slot():
    """An ENTRY denied by Risk frees its slot."""
    arb = make()
    first = fill_slots(arb)[0]
    arb.handle(ActionDenied(symbol="AUSDT", action=first, reason="max_leverage", detail="", ts_event_ns=NOW))
    assert act(arb, mandate(K.ENTRY), symbol="DUSDT").kind is K.ENTRY


def test_not_applicable_entry_releases_its_slot():
    """An ENTRY the position could not act on frees its slot."""
    arb = make()
    first = fill_slots(arb)[0]
    arb.handle(ActionNotApplicable(symbol="AUSDT", action_id=first.action_id, kind=K.ENTRY, state="OPEN",
                                   ts_event_ns=NOW))
    assert act(arb, mandate(K.ENTRY), symbol="DUSDT").kind is K.ENTRY


def test_cancelled_entry_releases_its_slot():
    """ENTERING then FLAT (cancelled or rejected entry) frees the slot."""
    arb = make()
    first = fill_slots(arb)[0]
    arb.handle(position(symbol="AUSDT", state=PositionState.ENTERING, qty="0", action_id=first.action_id))
    assert act(arb, mandate(K.ENTRY), symbol="DUSDT", cycle=1).kind is K.BLOCK
    arb.handle(position(symbol="AUSDT", state=PositionState.FLAT, qty="0", action_id=first.action_id))
    assert act(arb, mandate(K.ENTRY), symbol="DUSDT", cycle=2).kind is K.ENTRY


def test_restored_flat_position_releases_a_lost_entrys_slot():
    """A position re-announced FLAT after its process restarted frees the slot of an entry it never acted on."""
    arb = make()
    fill_slots(arb)  # AUSDT's entry was approved, then lost with its worker
    arb.handle(attrs.evolve(position(symbol="AUSDT", state=PositionState.FLAT, qty="0"), cause="restored"))
    assert act(arb, mandate(K.ENTRY), symbol="DUSDT").kind is K.ENTRY


def test_closed_position_releases_its_slot():
    """A position that closes back to FLAT frees its slot."""
    arb = make(max_concurrent_positions=1)
    arb.handle(position(symbol="AUSDT"))
    assert act(arb, mandate(K.ENTRY), symbol="BUSDT", cycle=1).kind is K.BLOCK
    arb.handle(position(symbol="AUSDT", state=PositionState.FLAT, qty="0"))
    assert act(arb, mandate(K.ENTRY), symbol="BUSDT", cycle=2).kind is K.ENTRY


def test_unrelated_flat_report_does_not_release_a_pending_entry():
    """A FLAT report not about the pending entry (position was already FLAT) keeps the slot held."""
    arb = make(max_concurrent_positions=1)
    act(arb, mandate(K.ENTRY), symbol="AUSDT")
    arb.handle(position(symbol="AUSDT", state=PositionState.FLAT, qty="0", action_id="older"))
    assert act(arb, mandate(K.ENTRY), symbol="BUSDT").kind is K.BLOCK


# -- status -------------------------------------------------------------------------------------
def test_status_tracks_kill_switch_and_trading_states():
    """Kill switch and trading-state events are reflected in status(), and produce nothing."""
    arb = make()
    assert arb.handle(KillSwitchEngaged(who="ops", reason="x", ts_event_ns=NOW)) == []
    arb.handle(TradingStateChanged(scope="*", old=TradingState.ACTIVE, new=TradingState.REDUCING, who="ops",
                                   reason="x", ts_event_ns=NOW))
    st = arb.status()
    assert st["kill_switch_engaged"] is True and st["global_state"] == "REDUCING"


def test_stats_count_actions_by_kind():
    """stats() counts the actions issued by kind."""
    arb = make()
    act(arb, mandate(K.ENTRY), cycle=1)
    act(arb, mandate(K.HOLD), cycle=2)
    act(arb, cycle=3)
    assert arb.stats()["actions"] == {"ENTRY": 1, "HOLD": 2}
