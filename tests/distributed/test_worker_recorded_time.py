"""A multi-process Worker playing a recording runs on the recording's time, as one process does.

Before: a Worker compared recorded frame times (2024) with ``time.time_ns()``, so a paced feed
found the whole file due at once, and every node's clock was two years past the data (Risk denied
entries as ``stale_data``). Every node now derives one offset from the run id.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from arbor.actors.cluster.build import run_started_ns
from arbor.actors.distributed.worker import WorkerCore
from arbor.adapters.recorded.source import read_recordings
from arbor.config.settings import load_settings
from arbor.supervision.persist import StatePersister

from tests.integration.test_live_recorded_time import head_of_recording

RUN = "20261203T180000-7"


@pytest.fixture(autouse=True)
def no_writer_thread(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setattr(StatePersister, "start", lambda self: None)


def test_run_started_ns_reads_the_run_id() -> None:
    assert run_started_ns(RUN) == 1_796_320_800 * 10**9  # 2026-12-03 18:00:00 UTC


def test_a_paced_worker_plays_a_recording_at_its_pace(shared_data: Path, tmp_path: Path) -> None:
    path = head_of_recording(shared_data, tmp_path, 2000)
    stamps = [ts for ts, _, _ in read_recordings([path])]
    assert (stamps[-1] - stamps[0]) / 1e9 > 5  # the head spans more than 5 s of market
    settings = load_settings({"journal": {"enabled": False},
                              "market": {"source": "recorded", "recorded_files": [str(path)], "paced": True},
                              "symbols": [{"symbol": "BTCUSDT", "venue": "binance_usdm", "qty_step": "0.001"}]})
    run = datetime.now(UTC).strftime("%Y%m%dT%H%M%S") + "-7"  # a run started now, as the launcher names it
    w = WorkerCore(settings, run, str(tmp_path / "var"), 0, 1, ("BTCUSDT",), False, 1)
    try:
        assert w.clock.offset_ns == run_started_ns(run) - stamps[0]
        wait = w.feed(budget=len(stamps))
        fed = w.d.actors["BTCUSDT/collector"].stats()["frames"]
    finally:
        w.close()
    # The run started (on the recording's first frame) within the last second or two; only the
    # frames due on the node's own clock are played (it played all 2,000 at once before).
    due = sum(1 for ts in stamps if ts <= w.clock.now_ns())
    assert fed <= due < len(stamps)
    assert wait is not None and wait > 0
