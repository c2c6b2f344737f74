"""A short chaos drill: random failures of every kind, and the safety figures stay at zero."""

from __future__ import annotations

from pathlib import Path

from arbor.actors.cluster.chaos import main


def test_chaos_drill_keeps_every_must_be_zero_figure_at_zero(tmp_path: Path, capsys) -> None:
    """Under random raises, hangs, thread kills and venue faults: no entry while not ACTIVE, no duplicate, no lost fill, no mismatch."""
    rc = main(["--duration", "20", "--rate", "0.004", "--seed", "3", "--var-dir", str(tmp_path)])
    out = capsys.readouterr().out
    assert "entries_sent_while_not_active         0" in out, out
    assert "duplicate_orders                      0" in out, out
    assert "lost_fills                            0" in out, out
    assert "position_mismatches                   0" in out, out
    assert rc == 0, out
