"""One truth after a restart: what the store restores reaches every consumer before the first
market event, and a lost store keeps the kill switch latched (deterministic runtime, real store)."""

from __future__ import annotations

import json
import os
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from arbor.actors.cluster.observers import TradeLog, iso
from arbor.actors.cluster.simulate import SimulatedCluster
from arbor.adapters.operator.local import ClusterFacts, RuntimeSource
from arbor.adapters.operator.metrics import ClusterMetrics
from arbor.adapters.operator.view import ClusterView
from arbor.config.settings import load_settings
from arbor.messages import (
    ALL_SYMBOLS,
    ActionApproved,
    ActionNotApplicable,
    EngageKillSwitch,
    MandateKind,
    OrderFilled,
    PositionChanged,
    PositionState,
    ResetKillSwitch,
    SetTradingState,
    Side,
    TradingState,
)
from arbor.messages.display import shown
from arbor.supervision.store import STORE_FILE
from prometheus_client import CollectorRegistry

FAST = {"feature": {"bucket_ms": 250, "short_window": 3, "long_window": 12, "min_samples": 4},
        "regime": {"decision_interval_ms": 250, "confirm_cycles": 1}}
T0 = 1_723_161_600_000_000_000
GAP_NS = 5_000_000_000  # between the first run's end and the restart


def cluster(var: Path, start_ns: int = T0, observers: tuple[Any, ...] = (), run_id: str = "run1") -> SimulatedCluster:
    return SimulatedCluster(load_settings(FAST), start_ns=start_ns, var_dir=var, observers=observers, run_id=run_id)


def reads(c: SimulatedCluster, facts: ClusterFacts) -> ClusterView:
    """The operator view's reads (state, positions) over a simulated cluster: they use only the board
    and the facts, never the runtime's ``ask``, which the deterministic runtime does not have."""
    return ClusterView(RuntimeSource(c.runtime, c.board, facts,  # type: ignore[arg-type]  # see above
                                     [s.symbol for s in c.settings.symbols]))


def open_symbol(c: SimulatedCluster) -> str | None:
    for s in c.settings.symbols:
        if c.logic(f"{s.symbol}/position").snapshot().state is PositionState.OPEN:
            return s.symbol
    return None


def run_until_open(c: SimulatedCluster, after_trade: TradeLog | None = None, limit_s: int = 300) -> str:
    """Run until some symbol is OPEN (with ``after_trade``: one that closed a trade before)."""
    for _ in range(limit_s):
        c.run_for(1)
        sym = open_symbol(c)
        if sym is None:
            continue
        if after_trade is None or any(json.loads(line)["symbol"] == sym
                                      for line in after_trade.path.read_text().splitlines()):
            return sym
    raise AssertionError("no position opened in time")


def restart_with_open_position(var: Path, observers: tuple[Any, ...] = ()) -> tuple[SimulatedCluster, str, Any]:
    first = cluster(var)
    sym = run_until_open(first)
    stored = first.logic(f"{sym}/position").snapshot()
    first.close()
    return cluster(var, first.clock.now_ns() + GAP_NS, observers, run_id="run2"), sym, stored


def test_restored_position_reaches_the_strategy_before_the_first_market_event(tmp_path: Path) -> None:
    """After a restart the strategy's PositionView is the stored position, before any market event."""
    c, sym, stored = restart_with_open_position(tmp_path)
    view = c.logic(f"{sym}/regime").position
    assert c.board.snapshot()["symbols"][sym]["events"] == 0
    assert (view.state, view.direction, view.qty, view.avg_entry_price) == (
        PositionState.OPEN, stored.direction, stored.qty, stored.avg_entry_price)


def test_restored_position_reaches_the_operator_view(tmp_path: Path) -> None:
    """/api/positions and /api/state show the restored position at start, with its real entry time."""
    log1 = TradeLog(tmp_path / "trades.jsonl", "paper", run_id="run1")
    first = cluster(tmp_path, observers=(log1,))
    sym = run_until_open(first)
    stored = first.logic(f"{sym}/position").snapshot()
    entered = [p for p in first.recorder.of_type(PositionChanged) if p.symbol == sym and p.cause == "filled"][-1]
    first.close()
    log1.close()
    log2 = TradeLog(tmp_path / "trades.jsonl", "paper", run_id="run2")
    facts = ClusterFacts()
    facts.restore_entries(log2.open_entry_times())
    c = cluster(tmp_path, first.clock.now_ns() + GAP_NS, observers=(facts, log2), run_id="run2")
    view = reads(c, facts)
    rows = {p["symbol"]: p for p in view.positions()["positions"]}
    assert rows[sym]["qty"] == str(stored.qty * stored.direction.sign)
    assert rows[sym]["entry_price"] == str(stored.avg_entry_price)
    assert rows[sym]["entry_time"] == iso(entered.ts_event_ns)
    assert view.state()["symbols"][sym]["position"] == "OPEN"


def test_restored_position_reaches_the_metrics(tmp_path: Path) -> None:
    """arbor_unrealized_pnl_quote follows the restored position from the first decision's mark."""
    registry = CollectorRegistry()
    metrics = ClusterMetrics(registry, None)
    c, sym, stored = restart_with_open_position(tmp_path, observers=(metrics,))
    c.run_for(3)
    mark = c.board.snapshot()["symbols"][sym]["mark"]
    pos = c.logic(f"{sym}/position").snapshot()
    assert pos.state is PositionState.OPEN and mark is not None, "still held at the first marks"
    expected = float((mark - stored.avg_entry_price) * stored.qty * stored.direction.sign)
    got = registry.get_sample_value("arbor_unrealized_pnl_quote", {"symbol": sym})
    assert got == pytest.approx(expected) and got != 0.0


def test_restored_position_is_managed_by_its_strategy(tmp_path: Path) -> None:
    """A restored position gets its exit from the strategy; no ENTRY is approved for it meanwhile."""
    c, sym, _ = restart_with_open_position(tmp_path)
    c.run_for(120)
    approved = [a.action for a in c.recorder.of_type(ActionApproved) if a.symbol == sym]
    first_exit = next(i for i, a in enumerate(approved) if a.kind in (MandateKind.EXIT, MandateKind.REDUCE))
    assert all(a.kind is not MandateKind.ENTRY for a in approved[:first_exit])
    assert not [n for n in c.recorder.of_type(ActionNotApplicable) if n.symbol == sym and n.kind is MandateKind.ENTRY]


def test_restored_trade_closes_with_its_own_entry_pnl_and_exit_fill(tmp_path: Path) -> None:
    """The trade closed after a restart keeps its entry (time, price, reason), a unique id, only its own
    PnL and fees, and the closing fill's price."""
    log1 = TradeLog(tmp_path / "trades.jsonl", "paper", run_id="run1")
    first = cluster(tmp_path, observers=(log1,))
    sym = run_until_open(first, after_trade=log1)
    entry_pc = [p for p in first.recorder.of_type(PositionChanged) if p.symbol == sym and p.cause == "filled"][-1]
    entry_fills = [f for f in first.recorder.of_type(OrderFilled, "/executor") if f.action_id == entry_pc.action_id]
    entry_action = next(a.action for a in first.recorder.of_type(ActionApproved) if a.action.action_id == entry_pc.action_id)
    first.close()
    log1.close()

    log2 = TradeLog(tmp_path / "trades.jsonl", "paper", run_id="run2")
    c = cluster(tmp_path, first.clock.now_ns() + GAP_NS, observers=(log2,), run_id="run2")
    c.run_for(120)
    log2.close()
    lines = [json.loads(line) for line in (tmp_path / "trades.jsonl").read_text().splitlines()]
    ids = [t["trade_id"] for t in lines]
    assert len(ids) == len(set(ids)), "trade ids repeat across runs"
    trade = next(t for t in lines[len(lines) - log2.trades_written:] if t["symbol"] == sym)
    assert trade["entry_price"] == str(entry_pc.avg_entry_price)
    assert trade["entry_mandate"] == entry_action.reason and trade["strategy"] == entry_action.strategy
    assert trade["entry_time"] == iso(entry_pc.ts_event_ns)
    closing = Side.closing(entry_pc.direction)
    exits = []
    for env, _ in c.recorder.emitted_log:
        m = env.payload
        if isinstance(m, PositionChanged) and m.symbol == sym and m.state is PositionState.FLAT:
            break
        if isinstance(m, OrderFilled) and env.sender == f"{sym}/executor" and m.side is closing:
            exits.append(m)
    exit_qty = sum((f.qty for f in exits), Decimal(0))
    assert exit_qty == entry_pc.qty, "the trade closed in the second run"
    exit_price = sum((f.price * f.qty for f in exits), Decimal(0)) / exit_qty
    assert Decimal(trade["exit_price"]) == shown(exit_price)
    sign = entry_pc.direction.sign
    realized = sum(((f.price - entry_pc.avg_entry_price) * f.qty * sign for f in exits), Decimal(0))
    assert Decimal(trade["realized_pnl"]) == shown(realized)
    assert Decimal(trade["fees"]) == shown(sum((f.fee for f in (*entry_fills, *exits)), Decimal(0)))


def damage(path: Path, how: str) -> None:
    for side in ("-wal", "-shm"):
        p = path.with_name(path.name + side)
        if p.exists():
            p.unlink()
    data = path.read_bytes()
    if how == "missing":
        path.unlink()
    elif how == "empty":
        path.write_bytes(b"")
    elif how == "truncated":
        path.write_bytes(data[: len(data) // 3])
    elif how == "random":
        path.write_bytes(os.urandom(len(data)))
    elif how == "bad_header":
        path.write_bytes(b"not sqlite at all" + data[17:])


def latched_run(var: Path) -> SimulatedCluster:
    first = cluster(var)
    first.at(2, "risk", SetTradingState(scope=ALL_SYMBOLS, state=TradingState.REDUCING, who="op", reason="drill"))
    first.at(2, "risk", EngageKillSwitch(who="op", reason="drill"))
    first.run_for(5)
    first.close()
    return first


@pytest.mark.parametrize("how", ["missing", "empty", "truncated", "random", "bad_header"])
def test_damaged_store_after_a_run_starts_with_the_kill_switch_engaged(tmp_path: Path, how: str) -> None:
    """A missing, empty, truncated or corrupt store after a previous run starts latched ("state lost")
    and approves no entry until an operator resets it with a reason."""
    first = cluster(tmp_path)
    first.run_for(5)
    first.close()
    damage(tmp_path / STORE_FILE, how)
    c = cluster(tmp_path, first.clock.now_ns() + GAP_NS, run_id="run2")
    kill = c.logic("risk").controls.kill
    assert kill.engaged and kill.reason.startswith("state lost"), kill
    assert c.board.snapshot()["kill_switch"]["engaged"]
    c.run_for(30)
    assert not [a for a in c.recorder.of_type(ActionApproved) if a.action.kind is MandateKind.ENTRY]
    c.runtime.send_now("risk", ResetKillSwitch(who="op", reason="checked the venue"))
    c.run_for(60)
    assert not c.logic("risk").controls.kill.engaged
    assert [a for a in c.recorder.of_type(ActionApproved) if a.action.kind is MandateKind.ENTRY]


def test_fresh_var_dir_starts_with_the_kill_switch_released(tmp_path: Path) -> None:
    """A first run on an empty var dir is not a lost state: it starts ACTIVE and trades."""
    c = cluster(tmp_path)
    assert not c.logic("risk").controls.kill.engaged
    c.run_for(30)
    assert [a for a in c.recorder.of_type(ActionApproved) if a.action.kind is MandateKind.ENTRY]


def test_restored_latch_and_global_state_reach_the_operator_view_and_metrics(tmp_path: Path) -> None:
    """After a restart with the latch engaged and global REDUCING, /api/state, the summary and
    arbor_trading_state{scope="*"} agree with Risk."""
    first = latched_run(tmp_path)
    registry = CollectorRegistry()
    metrics = ClusterMetrics(registry, None)
    metrics.init_symbols(tuple(s.symbol for s in first.settings.symbols))
    facts = ClusterFacts()
    c = cluster(tmp_path, first.clock.now_ns() + GAP_NS, observers=(metrics, facts), run_id="run2")
    risk = c.logic("risk").status()
    assert risk["kill_switch"]["engaged"] and risk["global_state"] == "REDUCING"
    view = reads(c, facts)
    view.set_stage("running")
    state = view.state()
    assert state["global_state"] == "REDUCING" and state["kill_switch"]["engaged"]
    assert state["status"] == "paused" and state["active_symbols"] == []
    assert "ENGAGED" in c.board.render().splitlines()[0] and "global=REDUCING" in c.board.render()
    assert registry.get_sample_value("arbor_trading_state", {"scope": ALL_SYMBOLS}) == TradingState.REDUCING.restriction
    assert registry.get_sample_value("arbor_kill_switch_engaged") == 1
