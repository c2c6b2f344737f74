"""What a start makes of the var dir: a first run, a restored one, or a previous run's state lost."""

from __future__ import annotations

from pathlib import Path

import pytest
from arbor.actors.cluster.restart import STATE_LOST, previous_run_traces, start_messages, state_lost_reason
from arbor.messages import AnnounceState, EngageKillSwitch, Reconcile
from arbor.supervision.store import STORE_FILE, StateStore


def open_store(var: Path) -> StateStore:
    return StateStore.in_var_dir(var, clock_ns=lambda: 7)


def test_empty_var_dir_is_a_first_run(tmp_path: Path) -> None:
    """Nothing in the var dir: no traces, nothing lost."""
    with open_store(tmp_path) as store:
        assert previous_run_traces(tmp_path, store) == []
        assert state_lost_reason(tmp_path, store) is None


def test_reopened_store_is_restored_not_lost(tmp_path: Path) -> None:
    """A store that opens with its tables is the previous run's state: nothing lost."""
    open_store(tmp_path).close()
    (tmp_path / "trades.jsonl").write_text("{}\n")
    with open_store(tmp_path) as store:
        assert state_lost_reason(tmp_path, store) is None


@pytest.mark.parametrize("trace", ["journal", "trades.jsonl", "heartbeat.json"])
def test_whole_state_dir_gone_after_a_run_is_lost(tmp_path: Path, trace: str) -> None:
    """No state dir at all, but a journal run, a non-empty trade log or a heartbeat: state lost."""
    if trace == "journal":
        (tmp_path / "journal" / "20261202T180000-1").mkdir(parents=True)
    else:
        (tmp_path / trace).write_text("{}\n")
    with open_store(tmp_path) as store:
        reason = state_lost_reason(tmp_path, store)
    assert reason is not None and reason.startswith(STATE_LOST) and "missing" in reason


def test_empty_trade_log_alone_is_no_trace(tmp_path: Path) -> None:
    """start-cluster opens the trade log before the store: an empty one says nothing of a previous run."""
    (tmp_path / "trades.jsonl").write_text("")
    with open_store(tmp_path) as store:
        assert state_lost_reason(tmp_path, store) is None


def test_zero_byte_store_beside_its_marker_is_lost(tmp_path: Path) -> None:
    """The store's own marker with a 0-byte state file: state lost, named as empty."""
    open_store(tmp_path).close()
    for side in ("-wal", "-shm"):
        (tmp_path / f"{STORE_FILE}{side}").unlink(missing_ok=True)
    (tmp_path / STORE_FILE).write_bytes(b"")
    with open_store(tmp_path) as store:
        reason = state_lost_reason(tmp_path, store)
    assert reason is not None and "empty (0 bytes)" in reason


def test_start_announces_then_latches_then_reconciles() -> None:
    """At start: Risk and every Position announce, a lost state engages the latch, executors reconcile."""
    out = start_messages(("A", "B"), "state lost: test", 5)
    assert [(r, type(m)) for r, m in out] == [
        ("risk", AnnounceState), ("A/position", AnnounceState), ("B/position", AnnounceState),
        ("risk", EngageKillSwitch), ("A/executor", Reconcile), ("B/executor", Reconcile)]
    assert out[3][1].reason == "state lost: test"
    assert not [m for _, m in start_messages(("A",), None, 5) if isinstance(m, EngageKillSwitch)]
