"""The supervisor's incarnation counter: persisted, only growing."""

from __future__ import annotations

from pathlib import Path

from arbor.actors.distributed.incarnations import COUNTER_FILE, IncarnationCounter


def test_incarnations_count_up_from_one(tmp_path: Path) -> None:
    """A fresh state directory hands out 1, 2, 3, ..."""
    counter = IncarnationCounter(tmp_path)
    assert [counter.next() for _ in range(3)] == [1, 2, 3]


def test_a_reopened_counter_continues_above_every_number_handed_out(tmp_path: Path) -> None:
    """A new supervisor on the same state directory never hands out a number again."""
    first = IncarnationCounter(tmp_path)
    handed = [first.next() for _ in range(5)]
    assert IncarnationCounter(tmp_path).next() == max(handed) + 1


def test_an_unreadable_counter_restarts_at_one_and_is_rewritten(tmp_path: Path) -> None:
    """A garbage counter file starts the numbering again, and the next file written is valid."""
    path = tmp_path / COUNTER_FILE
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    assert IncarnationCounter(tmp_path).next() == 1
    assert IncarnationCounter(tmp_path).next() == 2
