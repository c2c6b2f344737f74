"""Liveness files: heartbeat and run.jsonl, written atomically; corruption quarantined, never fatal."""

from __future__ import annotations

import json
import time
from pathlib import Path

from arbor.actors.runtime.clock import HandlerClock
from arbor.adapters.operator.liveness import EngineCycle, ErrorCounter, LivenessFiles
from arbor.messages import DecodeFailure, Envelope

T0 = 1_723_161_600_000_000_000


class Clock:
    def __init__(self) -> None:
        self.ns = T0

    def now_ns(self) -> int:
        return self.ns


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_beat_writes_heartbeat_and_one_run_line(tmp_path: Path) -> None:
    """Each beat replaces the heartbeat and appends exactly one run.jsonl line."""
    files = LivenessFiles(tmp_path, fsync=False)
    files.beat(T0, "ok", 0, 1)
    files.beat(T0 + 1, "degraded", 3, 2)
    hb = json.loads(files.heartbeat_path.read_text())
    assert hb["cycle"] == 2 and hb["engine_status"] == "degraded" and hb["errors_this_cycle"] == 3
    assert hb["ts"] == "2024-08-09T00:00:00.000Z"
    assert [(r["engine_status"], r["errors_this_cycle"]) for r in lines(files.run_log_path)] == [("ok", 0), ("degraded", 3)]
    assert not list(tmp_path.glob(".*.tmp"))


def test_run_log_survives_a_restart(tmp_path: Path) -> None:
    """A new writer keeps the existing valid lines and appends after them."""
    LivenessFiles(tmp_path, fsync=False).beat(T0, "ok", 0, 1)
    LivenessFiles(tmp_path, fsync=False).beat(T0 + 1, "ok", 0, 1)
    assert len(lines(tmp_path / "run.jsonl")) == 2


def test_corrupt_run_log_is_quarantined_and_rewritten(tmp_path: Path) -> None:
    """A torn run.jsonl is renamed *.corrupted.<ts>; the valid lines before the damage are kept."""
    good = json.dumps({"ts": "x", "engine_status": "ok", "errors_this_cycle": 0})
    (tmp_path / "run.jsonl").write_text(good + "\n" + '{"ts": "y", "engine_st')
    files = LivenessFiles(tmp_path, fsync=False)
    quarantined = list(tmp_path.glob("run.jsonl.corrupted.*"))
    assert len(quarantined) == 1 and quarantined[0].read_text().endswith('"engine_st')
    files.beat(T0, "ok", 0, 1)
    assert [r["ts"] for r in lines(files.run_log_path)] == ["x", "2024-08-09T00:00:00.000Z"]


def test_corrupt_heartbeat_is_quarantined(tmp_path: Path) -> None:
    """Garbage in heartbeat.json is set aside and a fresh heartbeat written."""
    (tmp_path / "heartbeat.json").write_bytes(b"\x00\xffnot json")
    files = LivenessFiles(tmp_path, fsync=False)
    assert len(list(tmp_path.glob("heartbeat.json.corrupted.*"))) == 1
    files.beat(T0, "ok", 0, 1)
    assert json.loads(files.heartbeat_path.read_text())["engine_status"] == "ok"


def test_run_log_is_bounded(tmp_path: Path) -> None:
    """Beyond max_lines the log rolls to run.jsonl.1 and starts again: each rewrite costs a bounded amount."""
    files = LivenessFiles(tmp_path, max_lines=10, fsync=False)
    for i in range(25):
        files.beat(T0 + i, "ok", 0, i)
    assert len(lines(files.run_log_path)) == 5
    assert len(lines(tmp_path / "run.jsonl.1")) == 10


def test_errors_since_last_cycle_make_the_engine_degraded(tmp_path: Path) -> None:
    """A cycle with errors reports degraded with the count; the next quiet cycle is ok again."""
    errors = ErrorCounter()
    cycle = EngineCycle(LivenessFiles(tmp_path, fsync=False), errors, Clock(), interval_s=1.0,
                        monotonic=iter([0.0, 1.0, 2.0]).__next__)
    failure = DecodeFailure(symbol="BTCUSDT", venue="sim", ingest_seq=1, ts_recv_ns=T0, error="bad", raw=b"x")
    for i in range(2):
        errors.emitted(Envelope(msg_id=i, sender="BTCUSDT/collector", receiver="", ts_event_ns=T0, ts_recv_ns=T0,
                                causation_id=0, payload=failure), ())
    assert cycle.run_once()["engine_status"] == "degraded"
    assert cycle.run_once()["engine_status"] == "ok"
    assert [r["errors_this_cycle"] for r in lines(tmp_path / "run.jsonl")] == [2, 0]


def test_late_cycle_raises_missed_heartbeat(tmp_path: Path) -> None:
    """A cycle that comes more than two intervals after the last is degraded and alerts."""
    alerts: list[tuple] = []

    class Stream:
        def alert(self, *args: object) -> None:
            alerts.append(args)

    cycle = EngineCycle(LivenessFiles(tmp_path, fsync=False), ErrorCounter(), Clock(), interval_s=1.0,
                        stream=Stream(), monotonic=iter([0.0, 5.0]).__next__)
    assert cycle.run_once()["engine_status"] == "ok"
    assert cycle.run_once()["engine_status"] == "degraded"
    assert alerts and alerts[0][0] == "missed_heartbeat"


def test_the_heartbeat_is_wall_time_while_the_actors_run_on_a_recording(tmp_path: Path) -> None:
    """A live run on a two-year-old recording shifts the actors' clock (HandlerClock.offset_ns);
    the heartbeat a monitor compares with its own clock stays wall time (it showed 2024 before)."""
    two_years = 2 * 365 * 86_400 * 10**9
    cycle = EngineCycle(LivenessFiles(tmp_path, fsync=False), ErrorCounter(), HandlerClock(offset_ns=two_years),
                        interval_s=1.0, monotonic=iter([0.0]).__next__)
    before = time.time_ns()
    ts = cycle.run_once()["ts_ns"]
    assert before <= ts <= time.time_ns()
