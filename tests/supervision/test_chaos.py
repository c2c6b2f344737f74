"""A short chaos drill: random failures of every kind, and the safety figures stay at zero."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from arbor.actors.cluster.chaos import ChaosMonitor, main
from arbor.messages import Direction, Envelope, OrderFilled, PositionChanged, PositionState, Side


def test_chaos_drill_keeps_every_must_be_zero_figure_at_zero(tmp_path: Path, capsys) -> None:
    """Under random raises, hangs, thread kills and venue faults: no entry while not ACTIVE, no duplicate, no lost fill, no mismatch."""
    rc = main(["--duration", "20", "--rate", "0.004", "--seed", "3", "--var-dir", str(tmp_path)])
    out = capsys.readouterr().out
    assert "entries_sent_while_not_active         0" in out, out
    assert "duplicate_orders                      0" in out, out
    assert "lost_fills                            0" in out, out
    assert "position_mismatches                   0" in out, out
    assert rc == 0, out


def _fill_env(msg_id: int, sender: str, causation_id: int = 0) -> Envelope:
    fill = OrderFilled(symbol="BTCUSDT", client_order_id="c1", venue_order_id="v1", fill_id="f1", side=Side.BUY,
                       qty=Decimal("1"), price=Decimal("100"), fee=Decimal("0"), is_maker=False, cum_qty=Decimal("1"),
                       leaves_qty=Decimal("0"),
                       ts_event_ns=0)
    return Envelope(msg_id=msg_id, sender=sender, receiver="", ts_event_ns=0, ts_recv_ns=0, causation_id=causation_id,
                    payload=fill)


def test_chaos_counts_a_fill_lost_between_executor_and_position() -> None:
    """A fill the executor passed on but Position never applied is a lost fill; applied, it is not."""
    monitor = ChaosMonitor(("BTCUSDT",))
    monitor.emitted(_fill_env(1, "BTCUSDT/venue"), ("BTCUSDT/executor",))
    monitor.emitted(_fill_env(2, "BTCUSDT/executor", causation_id=1), ("BTCUSDT/position",))
    assert monitor.lost_fills() == 1
    changed = PositionChanged(symbol="BTCUSDT", state=PositionState.OPEN, direction=Direction.LONG, qty=Decimal("1"),
                              avg_entry_price=Decimal("100"), realized_pnl=Decimal("0"), fees=Decimal("0"),
                              ts_event_ns=0, action_id="a1", cause="filled")
    monitor.emitted(Envelope(msg_id=3, sender="BTCUSDT/position", receiver="risk", ts_event_ns=0, ts_recv_ns=0,
                             causation_id=2, payload=changed), ("risk",))
    assert monitor.lost_fills() == 0
