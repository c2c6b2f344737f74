"""The trade log across restarts: open trades kept beside it, continued, or closed as not observed."""

from __future__ import annotations

import json
from decimal import Decimal as D
from pathlib import Path
from typing import Any

from arbor.actors.cluster.observers import TradeLog
from arbor.adapters.operator.report import load_trades
from arbor.messages import Direction, Envelope, OrderFilled, PositionChanged, PositionState, Side

T = 1_723_161_600_000_000_000


def env(payload: Any, sender: str = "X/position") -> Envelope:
    return Envelope(msg_id=1, sender=sender, receiver="", ts_event_ns=0, ts_recv_ns=0, causation_id=0, payload=payload)


def pc(state: PositionState, qty: str, cause: str, ts: int, realized: str = "0", fees: str = "0",
       avg: str = "100") -> Envelope:
    q = D(qty)
    return env(PositionChanged(symbol="X", state=state, direction=Direction.LONG if state is not PositionState.FLAT
                               else None, qty=q, avg_entry_price=D(avg) if q else None, realized_pnl=D(realized),
                               fees=D(fees), ts_event_ns=ts, action_id="a", cause=cause))


def fill(qty: str, price: str, fee: str, side: Side = Side.SELL) -> Envelope:
    return env(OrderFilled(symbol="X", client_order_id="c", venue_order_id="v", fill_id=price, side=side, qty=D(qty),
                           price=D(price), fee=D(fee), is_maker=False, cum_qty=D(qty), leaves_qty=D(0), ts_event_ns=0,
                           action_id="a"), sender="X/executor")


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_open_trade_is_continued_by_the_next_run(tmp_path: Path) -> None:
    """A trade open when a run stops is closed by the next run under its own id, entry and base PnL."""
    path = tmp_path / "trades.jsonl"
    first = TradeLog(path, "paper", run_id="r1")
    first.emitted(pc(PositionState.FLAT, "0", "start", T, realized="7", fees="1"), ())  # an earlier trade's PnL
    first.emitted(fill("2", "100", "0.2", side=Side.BUY), ())
    first.emitted(pc(PositionState.OPEN, "2", "filled", T + 1, realized="7", fees="1.2"), ())
    first.close()
    second = TradeLog(path, "paper", run_id="r2")
    assert second.open_entry_times() == {"X": T + 1}
    second.emitted(pc(PositionState.OPEN, "2", "start", T + 10, realized="7", fees="1.2"), ())
    second.emitted(fill("2", "103", "0.3"), ())
    second.emitted(pc(PositionState.FLAT, "0", "filled", T + 20, realized="13", fees="1.5"), ())
    (t,) = lines(path)
    assert t["trade_id"] == "X-r1-1" and t["entry_price"] == "100" and t["exit_price"] == "103"
    assert (D(t["realized_pnl"]), D(t["fees"])) == (D(6), D("0.5"))
    assert not (tmp_path / "trades.open.json").read_text().strip("{}")


def test_recorded_trade_whose_position_is_gone_at_restart_is_not_observed(tmp_path: Path) -> None:
    """A recorded open trade announced FLAT at start is written with null PnL, and the report leaves it out."""
    path = tmp_path / "trades.jsonl"
    first = TradeLog(path, "paper", run_id="r1")
    first.emitted(pc(PositionState.OPEN, "2", "filled", T), ())
    first.close()
    second = TradeLog(path, "paper", run_id="r2")
    second.emitted(pc(PositionState.FLAT, "0", "start", T + 10), ())
    (t,) = lines(path)
    assert t["realized_pnl"] is None and t["exit_price"] is None and t["exit_reason"].startswith("not observed")
    assert load_trades(path) == []


def test_restored_position_without_a_record_starts_a_trade_from_the_restart(tmp_path: Path) -> None:
    """A position announced open with no record opens a trade that counts only what follows the restart."""
    path = tmp_path / "trades.jsonl"
    log = TradeLog(path, "paper", run_id="r2")
    log.emitted(pc(PositionState.OPEN, "2", "start", T, realized="7", fees="1"), ())
    log.emitted(fill("2", "101", "0.1"), ())
    log.emitted(pc(PositionState.FLAT, "0", "filled", T + 5, realized="9", fees="1.1"), ())
    (t,) = lines(path)
    assert t["entry_mandate"] == "restored without a trade record"
    assert (D(t["realized_pnl"]), D(t["fees"])) == (D(2), D("0.1"))


def test_record_of_a_trade_already_written_is_dropped_on_load(tmp_path: Path) -> None:
    """A crash between writing a closed trade and updating the open records does not reopen it."""
    path = tmp_path / "trades.jsonl"
    log = TradeLog(path, "paper", run_id="r1")
    log.emitted(pc(PositionState.OPEN, "2", "filled", T), ())
    stale = (tmp_path / "trades.open.json").read_text()
    log.emitted(pc(PositionState.FLAT, "0", "filled", T + 5, realized="1"), ())
    log.close()
    (tmp_path / "trades.open.json").write_text(stale)
    assert TradeLog(path, "paper", run_id="r2").open_entry_times() == {}
