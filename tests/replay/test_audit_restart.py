"""Audit replay of a run that restored state from var/ (a second run on a used var dir) is IDENTICAL."""

from __future__ import annotations

from pathlib import Path

from arbor.actors.cluster.live import LiveCluster
from arbor.actors.replay import audit_journal, open_journal_observer
from arbor.actors.testing import eventually
from arbor.config.settings import build_settings

from tests.replay.test_audit import fast_config


def run_once(var_dir: Path, run_id: str, seconds: float, raw: dict | None = None) -> tuple[LiveCluster, Path]:
    """One start-cluster run in this process (the same LiveCluster and journal wiring), stopped after ``seconds``
    (configuration: ``raw``, by default ``fast_config``)."""
    raw = raw if raw is not None else fast_config(var_dir)
    settings = build_settings(raw)

    def journal(built_ns: int, restored: dict):
        return open_journal_observer(var_dir, run_id, raw, "interval", built_ns=built_ns, restored=restored)

    cluster = LiveCluster(settings, run_id, journal=journal)
    cluster.start()
    try:
        until = cluster.clock.now_ns() + int(seconds * 1e9)
        eventually(lambda: cluster.clock.now_ns() >= until, timeout=seconds + 10)
    finally:
        cluster.stop()
    assert cluster.journal is not None
    return cluster, cluster.journal.directory


def test_audit_of_a_run_that_restored_state_is_identical(tmp_path):
    """The second run on one var dir starts from restored state, and its journal audits IDENTICAL."""
    first, _ = run_once(tmp_path, "first", 3.0)
    assert first.persister.write_ahead > 0  # the first run placed orders: there is state to restore
    second, journal = run_once(tmp_path, "second", 2.0)
    assert second.restored
    report = audit_journal(journal)
    assert report.divergence is None, report.divergence
