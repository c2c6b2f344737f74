"""Assumptions are journaled: a live run whose assumptions change health (one breaks and holds its
symbol in REDUCING) audits IDENTICAL, and its journal carries every change."""

from __future__ import annotations

from pathlib import Path

import msgpack
from arbor.actors.cluster.build import build_actors, market_frames, market_venue, supervisor_for
from arbor.actors.replay import audit_journal, build_held, open_journal_observer
from arbor.actors.runtime import HandlerClock, ThreadedRuntime
from arbor.actors.testing import eventually
from arbor.config.settings import build_settings
from arbor.messages.journal import Durability, JournalReader

from tests.replay.test_audit import fast_config

RUN_ID = "assumption-audit"


def test_live_run_with_assumption_changes_audits_identical(tmp_path: Path) -> None:
    """Health is recomputed from the journaled inbox and clock: the audit finds every output identical,
    the AssumptionHealthChanged records included, and Risk's REDUCING from a broken one."""
    raw = fast_config(tmp_path)
    raw["assumptions"] = [
        # wall-clock latency of a live feed is never below a nanosecond: BROKEN at once, BTCUSDT held down
        {"name": "instant_feed", "symbols": ["BTCUSDT"], "observation": "feed_latency_ms", "max": 1e-6,
         "min_samples": 3, "on_broken": "reduce"},
        {"name": "tight_spread", "observation": "spread_bps", "max": 1000.0, "quantile": 0.95, "min_samples": 3},
    ]
    settings = build_settings(raw)
    clock = HandlerClock()
    actors, built_ns = build_held(lambda: build_actors(settings, clock, RUN_ID), clock)
    observer = open_journal_observer(tmp_path, RUN_ID, raw, Durability(mode="interval", interval_ms=50),
                                     built_ns=built_ns)
    runtime = ThreadedRuntime(actors, clock, observers=(observer,), tick_interval_s=0.02,
                              supervise=supervisor_for(settings, clock, RUN_ID))
    runtime.start()
    try:
        runtime.feed(market_frames(settings, clock.now_ns()), market_venue(settings), paced=True)
        fed_until = clock.now_ns() + 3_000_000_000
        eventually(lambda: clock.now_ns() >= fed_until and observer.records > 0, timeout=10)
    finally:
        runtime.stop()
        observer.close()
    tags: dict[str, int] = {}
    for _, payload in JournalReader(observer.directory).records():
        obj = msgpack.unpackb(payload, raw=False, strict_map_key=False)
        if obj[0] == 1:
            tags[obj[1][6]] = tags.get(obj[1][6], 0) + 1
    assert tags.get("AssumptionHealthChanged.v1", 0) >= 5  # instant_feed BROKEN + tight_spread OK for each symbol
    assert tags.get("EffectiveTradingStateChanged.v1", 0) >= 1  # BTCUSDT held in REDUCING
    report = audit_journal(observer.directory)
    assert report.divergence is None
    assert report.incomplete == () and report.unverified == ()
