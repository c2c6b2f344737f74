"""Snapshots of Executor, Risk, Arbitrator and Position: exact round trips through the store, and restores."""

from __future__ import annotations

import itertools
from decimal import Decimal as D

import attrs
import pytest
from arbor.actors.arbitrator import ArbitratorConfig, ArbitratorLogic
from arbor.actors.executor import ExecutorConfig, ExecutorLogic, client_order_id
from arbor.actors.executor.reconcile import ReconcilePolicy
from arbor.actors.position import PositionLogic
from arbor.actors.risk import RiskConfig, RiskLogic
from arbor.actors.testing import ManualClock, make_ctx
from arbor.messages import (
    Action,
    ActionApproved,
    ActionDenied,
    ActorFailed,
    Direction,
    EngageKillSwitch,
    KillSwitchEngaged,
    Mandate,
    MandateKind,
    MandateSet,
    OrderAccepted,
    OrderFilled,
    OrderIntent,
    OrderType,
    PlaceOrder,
    PositionChanged,
    PositionState,
    QueryOrder,
    ReconciliationCompleted,
    Regime,
    SetTradingState,
    Side,
    SubmitOrder,
    SymbolQuarantined,
    SymbolRecovered,
    TimerTick,
    TradingState,
)
from arbor.supervision.snapshots import SnapshotCodec, SnapshotError
from arbor.supervision.store import StateStore

SYM = "BTCUSDT"
SYMBOLS = ("BTCUSDT", "ETHUSDT")
MS = 1_000_000
T0 = 1_700_000_000_000_000_000
_ids = itertools.count(1)


def store_at(tmp_path) -> StateStore:
    return StateStore(tmp_path / "state" / "arbor.sqlite", lambda: T0)


# -- executor ----------------------------------------------------------------------------------


def executor(clock: ManualClock | None = None) -> ExecutorLogic:
    ctx = make_ctx(actor_id=f"{SYM}/executor", symbol=SYM, clock=clock or ManualClock(T0))
    return ExecutorLogic(ctx, ExecutorConfig(), ReconcilePolicy(reconcile_interval_ms=0))


def submit(action_id: str, side: Side = Side.BUY, qty: str = "1") -> SubmitOrder:
    return SubmitOrder(symbol=SYM, action_id=action_id, intent=OrderIntent.ENTRY, side=side, qty=D(qty),
                       order_type=OrderType.MARKET, limit_price=None, reduce_only=False, ts_event_ns=0)


def fill(action_id: str, fill_id: str, qty: str, cum: str, leaves: str, side: Side = Side.BUY) -> OrderFilled:
    return OrderFilled(symbol=SYM, client_order_id=client_order_id("run", action_id), venue_order_id="v", fill_id=fill_id,
                       side=side, qty=D(qty), price=D("100.5"), fee=D("0.01"), is_maker=False, cum_qty=D(cum),
                       leaves_qty=D(leaves), ts_event_ns=0)


def busy_executor(clock: ManualClock) -> ExecutorLogic:
    """An executor with a filled, a partially filled, a timed-out (UNKNOWN) and an in-flight order."""
    ex = executor(clock)
    ex.handle(submit("done"))
    ex.handle(fill("done", "f1", "1", "1", "0"))
    ex.handle(submit("part", qty="2"))
    ex.handle(OrderAccepted(symbol=SYM, client_order_id=client_order_id("run", "part"), venue_order_id="v2", ts_event_ns=0))
    ex.handle(fill("part", "f2", "0.5", "0.5", "1.5"))
    ex.handle(submit("lost", side=Side.SELL, qty="0.3"))
    clock.advance(3000 * MS)
    ex.handle(TimerTick(ts_event_ns=clock.now_ns()))  # "lost" times out: UNKNOWN
    ex.handle(submit("fresh", qty="0.7"))  # PENDING_NEW
    return ex


def test_executor_snapshot_round_trips_through_the_store(tmp_path):
    """Orders of every status with their fill ids, and the forwarded position, load back equal."""
    clock = ManualClock(T0)
    snap = busy_executor(clock).snapshot()
    assert snap.position_qty == D("1.5") and snap.orders[1].fill_ids == ("f2",)
    with store_at(tmp_path) as store:
        store.save_executor(SYM, snap)
    with store_at(tmp_path) as store:
        assert store.load_executor(SYM) == snap


def test_restored_executor_queries_unknown_and_in_flight_orders_never_resends(tmp_path):
    """After a restore, UNKNOWN and PENDING_NEW orders are queried on the next tick, and nothing is placed again."""
    clock = ManualClock(T0)
    with store_at(tmp_path) as store:
        store.save_executor(SYM, busy_executor(clock).snapshot())
        loaded = store.load_executor(SYM)
    clock.advance(60_000 * MS)
    ex = executor(clock)
    ex.restore(loaded)
    out = ex.handle(TimerTick(ts_event_ns=clock.now_ns()))
    queried = {m.client_order_id for m in out if isinstance(m, QueryOrder)}
    assert queried == {client_order_id("run", "lost"), client_order_id("run", "fresh")}
    assert not any(isinstance(m, PlaceOrder) for m in out)
    resent = ex.handle(submit("lost", side=Side.SELL, qty="0.3")) + ex.handle(submit("fresh", qty="0.7"))
    assert not any(isinstance(m, PlaceOrder) for m in resent) and ex.stats()["duplicates_suppressed"] == 2


def test_restored_executor_recognises_a_redelivered_fill(tmp_path):
    """A fill seen before the restart is a duplicate after it, not a second execution."""
    clock = ManualClock(T0)
    with store_at(tmp_path) as store:
        store.save_executor(SYM, busy_executor(clock).snapshot())
        loaded = store.load_executor(SYM)
    ex = executor(clock)
    ex.restore(loaded)
    assert ex.handle(fill("part", "f2", "0.5", "0.5", "1.5")) == []
    assert ex.stats()["duplicate_fills"] == 1 and ex.local_qty == D("1.5")


def test_crashed_handler_leaves_the_executor_snapshot_as_before(monkeypatch):
    """A handler that raises half way leaves the last good state, so the message can be delivered again."""
    clock = ManualClock(T0)
    ex = busy_executor(clock)
    before = ex.snapshot()

    def crash(*_):
        raise RuntimeError("bug after the fill id was recorded")

    monkeypatch.setattr(ex, "_apply_fill", crash)
    with pytest.raises(RuntimeError):
        ex.handle(fill("part", "f3", "1.5", "2", "0"))
    assert ex.snapshot() == before
    again = executor(clock)
    again.restore(ex.snapshot())
    (forwarded,) = again.handle(fill("part", "f3", "1.5", "2", "0"))
    assert forwarded.fill_id == "f3" and again.local_qty == D("3")


def test_executor_restore_refuses_another_symbols_snapshot():
    """A snapshot of one symbol cannot be restored into another symbol's executor."""
    snap = busy_executor(ManualClock(T0)).snapshot()
    other = ExecutorLogic(make_ctx(actor_id="ETHUSDT/executor", symbol="ETHUSDT"), ExecutorConfig())
    with pytest.raises(ValueError):
        other.restore(snap)


# -- risk --------------------------------------------------------------------------------------


def risk(clock: ManualClock) -> RiskLogic:
    return RiskLogic(make_ctx("risk", "", clock), RiskConfig(), SYMBOLS)


def entry(clock: ManualClock, symbol: str = SYM, qty: str = "0.1") -> Action:
    n = next(_ids)
    now = clock.now_ns()
    return Action(action_id=f"run:{symbol}:{n}", symbol=symbol, cycle=n, kind=MandateKind.ENTRY, direction=Direction.LONG,
                  qty=D(qty), mark_price=D("50000"), data_ts_ns=now, ts_event_ns=now, reason="t")


def busy_risk(clock: ManualClock) -> RiskLogic:
    """Risk with an open position, a pending entry, an operator pause, a supervision hold, a quarantine and a latch."""
    r = risk(clock)
    r.handle(PositionChanged(symbol=SYM, state=PositionState.OPEN, direction=Direction.LONG, qty=D("0.2"),
                             avg_entry_price=D("49000.5"), realized_pnl=D("-3.25"), fees=D("1.10"), ts_event_ns=0))
    r.handle(entry(clock, "ETHUSDT"))
    r.handle(SetTradingState(scope="*", state=TradingState.REDUCING, who="ops", reason="maintenance"))
    r.handle(ActorFailed(actor_id="ETHUSDT/feature", symbol="ETHUSDT", kind="exception", error="boom", message_tag="x",
                         ts_event_ns=0))
    r.handle(SymbolQuarantined(symbol="ETHUSDT", reason="3 restarts in 10s", ts_event_ns=0))
    clock.advance(5 * MS)
    r.handle(EngageKillSwitch(who="alice", reason="venue outage"))
    return r


def test_risk_snapshot_round_trips_through_the_store(tmp_path):
    """Latch, states with who set them, supervision holds, quarantines, anchors, books and reservations load back equal."""
    snap = busy_risk(ManualClock(T0)).snapshot()
    assert snap.controls.kill.engaged and snap.reservations and snap.controls.quarantines
    with store_at(tmp_path) as store:
        store.save_risk(snap)
    with store_at(tmp_path) as store:
        assert store.load_risk() == snap


def test_risk_snapshot_reusing_unchanged_records_equals_one_built_afresh():
    """Snapshots taken between changes (reusing the records of unchanged books and scopes) equal
    snapshots rebuilt from scratch, whichever part changed."""
    clock = ManualClock(T0)
    r = risk(clock)

    def afresh():
        return r.snapshot(fresh=True)

    steps = [
        PositionChanged(symbol=SYM, state=PositionState.OPEN, direction=Direction.LONG, qty=D("0.2"),
                        avg_entry_price=D("49000.5"), realized_pnl=D("0"), fees=D("0.1"), ts_event_ns=0),
        entry(clock, "ETHUSDT"),
        SetTradingState(scope="ETHUSDT", state=TradingState.REDUCING, who="ops", reason="x"),
        ActorFailed(actor_id="BTCUSDT/feature", symbol=SYM, kind="exception", error="boom", message_tag="x",
                    ts_event_ns=0),
        SymbolRecovered(symbol=SYM, ts_event_ns=0),
        entry(clock, SYM),
        EngageKillSwitch(who="alice", reason="drill"),
    ]
    for msg in steps:
        r.handle(msg)
        assert r.snapshot() == afresh(), type(msg).__name__
        assert r.snapshot() == r.snapshot()


def test_risk_store_writes_only_what_changed_and_always_loads_back_the_last_snapshot(tmp_path):
    """Saving Risk after each change rewrites only the parts that differ from the last save (an
    unchanged snapshot writes no row at all), and what loads back equals the last snapshot, whichever
    part changed; a transaction that rolled back leaves nothing assumed written."""
    clock = ManualClock(T0)
    r = risk(clock)
    steps = [
        PositionChanged(symbol=SYM, state=PositionState.OPEN, direction=Direction.LONG, qty=D("0.2"),
                        avg_entry_price=D("49000.5"), realized_pnl=D("0"), fees=D("0.1"), ts_event_ns=0),
        entry(clock, "ETHUSDT"),
        SetTradingState(scope="ETHUSDT", state=TradingState.REDUCING, who="ops", reason="x"),
        SymbolQuarantined(symbol="ETHUSDT", reason="3 restarts in 10s", ts_event_ns=0),
        entry(clock, SYM),
        EngageKillSwitch(who="alice", reason="drill"),
    ]
    with store_at(tmp_path) as store:
        store.save_risk(r.snapshot())
        for msg in steps:
            clock.advance(MS)
            r.handle(msg)
            store.save_risk(r.snapshot())
            assert store.load_risk() == r.snapshot(), type(msg).__name__
            before = store.changes
            store.save_risk(r.snapshot())
            assert store.changes == before, "an unchanged snapshot was written again"
        # One book changes: its row, and the reservation the position settled (the extra row).
        before = store.changes
        r.handle(PositionChanged(symbol=SYM, state=PositionState.OPEN, direction=Direction.LONG, qty=D("0.3"),
                                 avg_entry_price=D("49000.5"), realized_pnl=D("0"), fees=D("0.1"), ts_event_ns=0))
        store.save_risk(r.snapshot())
        assert store.changes - before == 2
        # A save inside a transaction that rolls back was never written: the next save writes it.
        r.handle(SetTradingState(scope=SYM, state=TradingState.REDUCING, who="ops", reason="y"))
        with pytest.raises(RuntimeError), store.transaction():
            store.save_risk(r.snapshot())
            raise RuntimeError("disk full")
        store.save_risk(r.snapshot())
        assert store.load_risk() == r.snapshot()
    with store_at(tmp_path) as store:
        assert store.load_risk() == r.snapshot()


def test_restored_risk_keeps_the_engaged_kill_switch(tmp_path):
    """A restarted Risk keeps the latch with its who/why/when and still denies entries."""
    clock = ManualClock(T0)
    before = busy_risk(clock)
    with store_at(tmp_path) as store:
        store.save_risk(before.snapshot())
        loaded = store.load_risk()
    after = risk(clock)
    after.restore(loaded)
    kill = after.status()["kill_switch"]
    assert kill == {"engaged": True, "who": "alice", "reason": "venue outage", "ts_event_ns": T0 + 5 * MS}
    out = after.handle(entry(clock))
    assert [m.reason for m in out if isinstance(m, ActionDenied)] == ["kill_switch"]
    assert after.handle(EngageKillSwitch(who="bob", reason="again")) == []  # already latched: no second engagement


def test_restored_risk_keeps_states_holds_and_quarantines(tmp_path):
    """Operator and supervision states survive a restart, and recovery still returns the held symbol."""
    clock = ManualClock(T0)
    with store_at(tmp_path) as store:
        store.save_risk(busy_risk(clock).snapshot())
        loaded = store.load_risk()
    r = risk(clock)
    r.restore(loaded)
    status = r.status()
    assert status["global_state"] == "REDUCING" and status["symbols"]["ETHUSDT"]["state"] == "HALTED"
    assert status["quarantined"]["ETHUSDT"]["reason"] == "3 restarts in 10s"
    assert status["symbols"][SYM]["qty"] == "0.2" and status["equity"] == busy_risk(ManualClock(T0)).status()["equity"]
    out = r.handle(SymbolRecovered(symbol="ETHUSDT", ts_event_ns=0))
    assert r.controls.state("ETHUSDT") is TradingState.ACTIVE and out


def test_restored_risk_keeps_loss_limit_anchors(tmp_path):
    """The day, the day's starting equity and the peak survive a restart."""
    clock = ManualClock(T0)
    r = busy_risk(clock)
    r.limits.peak = D("123456.78")
    with store_at(tmp_path) as store:
        store.save_risk(r.snapshot())
        loaded = store.load_risk()
    again = risk(clock)
    again.restore(loaded)
    assert (again.limits.day, again.limits.day_anchor, again.limits.peak) == (r.limits.day, r.limits.day_anchor, D("123456.78"))


# -- arbitrator --------------------------------------------------------------------------------


def arbitrator(max_positions: int = 1) -> ArbitratorLogic:
    ctx = make_ctx("arbitrator", "", ManualClock(T0))
    return ArbitratorLogic(ctx, ArbitratorConfig(max_concurrent_positions=max_positions), {})


def entry_mandates(symbol: str, cycle: int) -> MandateSet:
    return MandateSet(symbol=symbol, cycle=cycle, ts_event_ns=T0, regime=Regime.TRENDING, strategy="t",
                      mandates=(Mandate(kind=MandateKind.ENTRY, direction=Direction.LONG, size_hint=D("1")),),
                      mark_price=D("50000"), data_ts_ns=T0)


def test_arbitrator_snapshot_round_trips_through_the_store(tmp_path):
    """Positions view, pending entries, kill switch and trading states load back equal."""
    arb = arbitrator(max_positions=3)
    arb.handle(PositionChanged(symbol=SYM, state=PositionState.OPEN, direction=Direction.SHORT, qty=D("0.200"),
                               avg_entry_price=D("1"), realized_pnl=D("0"), fees=D("0"), ts_event_ns=0))
    arb.handle(entry_mandates("ETHUSDT", 1))
    arb.handle(KillSwitchEngaged(who="a", reason="b", ts_event_ns=0))
    snap = arb.snapshot()
    with store_at(tmp_path) as store:
        store.save_arbitrator(snap)
        assert store.load_arbitrator() == snap


def test_arbitrator_store_skips_a_snapshot_equal_to_the_last_written(tmp_path):
    """An unchanged Arbitrator snapshot is not written again; a changed one is, and loads back."""
    arb = arbitrator(max_positions=3)
    with store_at(tmp_path) as store:
        store.save_arbitrator(arb.snapshot())
        before = store.changes
        store.save_arbitrator(arb.snapshot())
        assert store.changes == before
        arb.handle(entry_mandates("ETHUSDT", 1))
        store.save_arbitrator(arb.snapshot())
        assert store.changes == before + 1
        assert store.load_arbitrator() == arb.snapshot()


def test_restored_arbitrator_still_counts_held_slots():
    """A restarted arbitrator blocks an entry when restored positions fill the limit."""
    arb = arbitrator(max_positions=1)
    arb.handle(entry_mandates("ETHUSDT", 1))  # pending entry holds the only slot
    again = arbitrator(max_positions=1)
    again.restore(arb.snapshot())
    (action,) = again.handle(entry_mandates(SYM, 1))
    assert action.kind is MandateKind.BLOCK and action.reason == "max_concurrent_positions"


# -- position and the codec --------------------------------------------------------------------


def test_position_restored_from_the_store_continues(tmp_path):
    """A position saved while ENTERING is restored and accepts the fill of its live order."""
    ctx = make_ctx(actor_id=f"{SYM}/position", symbol=SYM)
    pos = PositionLogic(ctx)
    now = ctx.clock.now_ns()
    act = Action(action_id="a1", symbol=SYM, cycle=1, kind=MandateKind.ENTRY, direction=Direction.LONG, qty=D("0.5"),
                 mark_price=D("100"), data_ts_ns=now, ts_event_ns=now, reason="t")
    pos.handle(ActionApproved(symbol=SYM, action=act, ts_event_ns=now))
    with store_at(tmp_path) as store:
        store.save_position(SYM, pos.snapshot())
        again = PositionLogic(make_ctx(actor_id=f"{SYM}/position", symbol=SYM))
        again.restore(store.load_position(SYM))
    out = again.handle(attrs.evolve(fill("a1", "f1", "0.5", "0.5", "0"), action_id="a1"))
    assert out[0].state is PositionState.OPEN and out[0].qty == D("0.5")


def test_codec_keeps_decimals_exact_and_refuses_floats():
    """Decimals keep their exponent through the codec; a float where a Decimal belongs is an error."""
    codec = SnapshotCodec()
    rec = ReconciliationCompleted(symbol=SYM, outcome="NONE", local_qty=D("1.000"), venue_qty=D("1E+2"),
                                  venue_avg_price=None, detail="", ts_event_ns=1)
    back = codec.decode(codec.encode(rec), ReconciliationCompleted)
    assert back == rec and str(back.local_qty) == "1.000" and str(back.venue_qty) == "1E+2"
    with pytest.raises(SnapshotError):
        codec.decode(codec.encode(rec).replace('"1.000"', "1.0"), ReconciliationCompleted)


def flat_position_and_entry(symbol: str, action_id: str) -> tuple[PositionLogic, ActionApproved]:
    """A FLAT position of ``symbol`` and an approved long ENTRY for it."""
    ctx = make_ctx(actor_id=f"{symbol}/position", symbol=symbol)
    now = ctx.clock.now_ns()
    act = Action(action_id=action_id, symbol=symbol, cycle=1, kind=MandateKind.ENTRY, direction=Direction.LONG,
                 qty=D("0.5"), mark_price=D("100"), data_ts_ns=now, ts_event_ns=now, reason="t")
    return PositionLogic(ctx), ActionApproved(symbol=symbol, action=act, ts_event_ns=now)


def test_order_write_ahead_commits_the_position_queued_before_it(tmp_path):
    """The executor's write-ahead commits, in the same transaction, the position's move to ENTERING
    still queued for the writer thread: a crash right after it restores both, never an executor
    with an order its position does not know of."""
    from arbor.supervision.persist import StatePersister

    pos, approved = flat_position_and_entry(SYM, "a1")
    with store_at(tmp_path) as store:
        persister = StatePersister(store)  # not started: nothing is written unless synchronously
        persister.after_handle(f"{SYM}/position", pos, approved, pos.handle(approved))
        ex = executor()
        out = ex.handle(submit("a1"))
        assert any(isinstance(m, PlaceOrder) for m in out)
        persister.after_handle(f"{SYM}/executor", ex, submit("a1"), out)
        # read straight from the store: no flush
        assert store.load_position(SYM).state is PositionState.ENTERING
        assert store.load_executor(SYM) == ex.snapshot()


def test_without_a_writer_thread_queued_snapshots_commit_when_their_owner_says(tmp_path):
    """``threaded=False`` (a cluster node): no thread; ``flush_due`` commits the queue at most once
    per interval, so the node's thread does it between its turns, never a thread beside it."""
    import threading

    from arbor.supervision.persist import StatePersister

    pos, approved = flat_position_and_entry(SYM, "a1")
    with store_at(tmp_path) as store:
        persister = StatePersister(store, flush_interval_s=0.05, threaded=False)
        threads = threading.active_count()
        persister.start()
        assert threading.active_count() == threads
        persister.flush_due(10.0)  # nothing queued: nothing to do, and the interval is not spent
        persister.after_handle(f"{SYM}/position", pos, approved, pos.handle(approved))
        persister.flush_due(10.0)
        assert store.load_position(SYM).state is PositionState.ENTERING
        persister.after_handle(f"{SYM}/position", pos, approved, [])  # same snapshot: nothing queued
        flat = PositionLogic(make_ctx(actor_id=f"{SYM}/position", symbol=SYM))
        persister.after_handle(f"{SYM}/position", flat, approved, [])
        persister.flush_due(10.03)  # within the interval of the last commit: stays queued
        assert store.load_position(SYM).state is PositionState.ENTERING
        persister.flush_due(10.06)
        assert store.load_position(SYM).state is PositionState.FLAT
        persister.stop()


def test_order_write_ahead_leaves_other_symbols_queued(tmp_path):
    """The write-ahead takes its own symbol's queued snapshots (and the singletons'), not every
    symbol's: those stay queued for the next periodic commit."""
    from arbor.supervision.persist import StatePersister

    with store_at(tmp_path) as store:
        persister = StatePersister(store, threaded=False)
        other = "ETHUSDT"
        eth, approved = flat_position_and_entry(other, "e1")
        persister.after_handle(f"{other}/position", eth, approved, eth.handle(approved))
        ex = executor()
        out = ex.handle(submit("a1"))
        persister.after_handle(f"{SYM}/executor", ex, submit("a1"), out)
        assert store.load_executor(SYM) == ex.snapshot()
        assert store.load_position(other) is None  # still queued
        persister.flush()
        assert store.load_position(other).state is PositionState.ENTERING
