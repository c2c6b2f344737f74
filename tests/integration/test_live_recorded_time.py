"""A live run on a recorded market runs on the recording's time.

Before: the live cluster's clock was the wall clock, two years after the USD-M recording, so a
paced feed found every frame long due and played the file at once, and Risk denied every entry
as ``stale_data`` ("data is 73,158,000,440 ms old"): 213 denials and no order in 150 s.
"""

from __future__ import annotations

import gzip
import time
from pathlib import Path

from arbor.actors.cluster.build import market_clock
from arbor.actors.cluster.live import LiveCluster
from arbor.actors.runtime.dispatcher import QuietObserver
from arbor.adapters.recorded.source import read_recordings
from arbor.config.settings import Settings, load_settings
from arbor.messages import ActionApproved, ActionDenied, Envelope

RECORDING = ("binance_usdm", "usdm_btcusdt_20240808.gz")


def head_of_recording(shared_data: Path, tmp_path: Path, lines: int) -> Path:
    """The first ``lines`` lines of the real USD-M BTCUSDT recording (read at test time, written to tmp)."""
    out = tmp_path / RECORDING[1]
    with gzip.open(shared_data.joinpath(*RECORDING), "rb") as src, gzip.open(out, "wb") as dst:
        for _ in range(lines):
            dst.write(src.readline())
    return out


def settings_for(path: Path, tmp_path: Path, paced: bool) -> Settings:
    return load_settings({"run": {"var_dir": str(tmp_path / "var")}, "journal": {"enabled": False},
                          "market": {"source": "recorded", "recorded_files": [str(path)], "paced": paced},
                          "symbols": [{"symbol": "BTCUSDT", "venue": "binance_usdm", "qty_step": "0.001"}]})


class Decisions(QuietObserver):
    def __init__(self) -> None:
        self.approved = 0
        self.denied: dict[str, int] = {}

    def emitted(self, env: Envelope, receivers: tuple[str, ...]) -> None:
        m = env.payload
        if type(m) is ActionApproved:
            self.approved += 1
        elif type(m) is ActionDenied:
            self.denied[m.reason] = self.denied.get(m.reason, 0) + 1


def test_the_clock_of_a_recorded_run_starts_at_the_first_frame(shared_data: Path, tmp_path: Path) -> None:
    path = head_of_recording(shared_data, tmp_path, 50)
    first = next(iter(read_recordings([path])))[0]
    wall = time.time_ns()
    clock = market_clock(settings_for(path, tmp_path, paced=True), wall)
    assert clock.offset_ns == wall - first
    assert first <= clock.now_ns() < first + 60 * 10**9
    assert market_clock(load_settings({}), wall).offset_ns == 0  # the simulated market: wall time


def test_a_paced_recording_plays_at_its_recorded_pace(shared_data: Path, tmp_path: Path) -> None:
    """The feed ends no sooner than the recording's own span (it ended at once before)."""
    path = head_of_recording(shared_data, tmp_path, 700)
    stamps = [ts for ts, _, _ in read_recordings([path])]
    span_s = (stamps[-1] - stamps[0]) / 1e9
    assert span_s > 1.5, "the head of the recording spans more than a second and a half"
    started = time.monotonic()  # the clock starts on the first frame when the cluster is built
    cluster = LiveCluster(settings_for(path, tmp_path, paced=True), "t", persist=False)
    cluster.start()
    try:
        assert cluster.runtime.wait_idle(timeout=span_s + 30)
        took = time.monotonic() - started
    finally:
        cluster.stop()
    assert cluster.runtime.frames_fed == len(stamps)
    assert took >= span_s * 0.95, f"{len(stamps)} frames spanning {span_s:.2f}s of market played in {took:.2f}s"


def test_entries_on_a_recording_are_not_denied_as_stale(shared_data: Path, tmp_path: Path) -> None:
    """Unpaced, 110 s of recorded market: strategies warm up and enter; no entry is denied as stale."""
    path = head_of_recording(shared_data, tmp_path, 30_000)
    decisions = Decisions()
    cluster = LiveCluster(settings_for(path, tmp_path, paced=False), "t", observers=(decisions,), persist=False)
    cluster.start()
    try:
        assert cluster.runtime.wait_idle(timeout=120)
    finally:
        cluster.stop()
    assert decisions.approved > 0, decisions.denied
    assert "stale_data" not in decisions.denied, decisions.denied
