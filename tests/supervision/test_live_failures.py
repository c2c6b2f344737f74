"""Failures on the live pykka runtime: handlers that raise, hang, or kill their thread."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from arbor.actors.cluster.live import LiveCluster
from arbor.actors.cluster.simulate import Recorder
from arbor.actors.testing import eventually
from arbor.config.settings import load_settings
from arbor.messages import ActorFailed, RawMarketEvent, SymbolRecovered

from tests.supervision.helpers import entries_sent

FAST: dict[str, Any] = {
    "feature": {"bucket_ms": 200, "short_window": 3, "long_window": 10, "min_samples": 4},
    "regime": {"decision_interval_ms": 200, "confirm_cycles": 1},
    "run": {"tick_interval_ms": 50, "switch_interval_ms": 0.5},
    "supervision": {"hang_timeout_ms": 300},
    "symbols": [{"symbol": s, "events_per_s": 50.0, "start_price": p, "tick_size": "0.01"}
                for s, p in (("BTCUSDT", "60000"), ("ETHUSDT", "3000"))],
}


def run_live(fault: dict[str, Any], var_dir: Path) -> tuple[LiveCluster, Recorder]:
    settings = load_settings({"faults": [fault], **FAST, "run": {**FAST["run"], "var_dir": str(var_dir)}})
    rec = Recorder()
    c = LiveCluster(settings, "live-test", observers=(rec,))
    c.start()
    return c, rec


def events(rec: Recorder) -> list[Any]:
    return [e.payload for e, _ in list(rec.emitted_log)]


def btc_recovered(rec: Recorder) -> bool:
    return any(isinstance(m, SymbolRecovered) and m.symbol == "BTCUSDT" for m in events(rec))


@pytest.mark.parametrize("kind", ["raise", "hang", "kill"])
def test_live_failure_is_detected_and_recovered_fail_closed(kind: str, tmp_path: Path) -> None:
    """A raising, hanging or thread-killing handler is detected, its subtree restarted, and no entry is sent until recovery."""
    c, rec = run_live({"actor": "BTCUSDT/feature", "kind": kind, "on_message": 40, "hang_ms": 20000}, tmp_path)
    try:
        eventually(lambda: any(isinstance(m, ActorFailed) for m in events(rec)), timeout=20)
        failed = [m for m in events(rec) if isinstance(m, ActorFailed)]
        assert failed[0].actor_id == "BTCUSDT/feature"
        assert failed[0].kind == {"raise": "exception", "hang": "hang", "kill": "died"}[kind]
        eventually(lambda: btc_recovered(rec), timeout=30)
        ev = events(rec)
        start = next(i for i, m in enumerate(ev) if isinstance(m, ActorFailed))
        end = next(i for i, m in enumerate(ev) if isinstance(m, SymbolRecovered) and m.symbol == "BTCUSDT")
        assert not entries_sent(ev[start:end], "BTCUSDT")
        eth_during = [m for m in ev[start:end] if isinstance(m, RawMarketEvent) and m.symbol == "ETHUSDT"]
        assert eth_during, "the other symbol kept receiving market data"
        seqs = [m.ingest_seq for m in ev if isinstance(m, RawMarketEvent) and m.symbol == "BTCUSDT"]
        assert seqs == list(range(1, len(seqs) + 1)), "no market data lost across the restart"
    finally:
        c.stop()
    assert not c.runtime.alive_threads()
