"""Damaged journals: a torn or garbage tail is cut and quarantined, and the rest still replays."""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import pytest
from arbor.actors.replay import audit_journal
from arbor.actors.replay.recorder import record_simulated_run
from arbor.config.loader import load_raw
from arbor.messages.journal import JournalReader


@pytest.fixture(scope="module")
def sim_journal(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small journal of the default cluster on the deterministic scheduler (60 simulated seconds)."""
    return record_simulated_run(tmp_path_factory.mktemp("sim"), load_raw(environ={}), 60, run_id="recovery")


def copy_of(journal: Path, tmp_path: Path) -> tuple[Path, Path]:
    dst = tmp_path / "j"
    shutil.copytree(journal, dst)
    return dst, sorted(dst.glob("segment-*.arj"))[-1]


def record_count(journal: Path) -> int:
    return sum(1 for _ in JournalReader(journal).records())


def quarantined_files(journal: Path) -> list[Path]:
    return sorted(journal.glob("*.corrupted.*"))


def test_clean_journal_audits_identical(sim_journal: Path) -> None:
    """The undamaged journal audits identical and needs no repair."""
    report = audit_journal(sim_journal)
    assert report.identical and report.repaired is None and report.incomplete == ()


def test_truncated_mid_record_loses_only_that_record(sim_journal: Path, tmp_path: Path) -> None:
    """A journal cut inside its last record opens, quarantines the torn bytes and replays the rest."""
    journal, last = copy_of(sim_journal, tmp_path)
    before = record_count(sim_journal)
    size = last.stat().st_size
    with open(last, "r+b") as f:
        f.truncate(size - 3)
    report = audit_journal(journal)
    assert report.identical
    assert report.records == before - 1
    assert report.repaired is not None
    assert [q.reason for q in report.repaired.quarantined] == ["length_past_end"]
    assert len(quarantined_files(journal)) == 1
    assert record_count(journal) == before - 1


def test_random_bytes_appended_are_quarantined(sim_journal: Path, tmp_path: Path) -> None:
    """Garbage after the last record is moved to a quarantine file; every record still replays."""
    journal, last = copy_of(sim_journal, tmp_path)
    before = record_count(sim_journal)
    garbage = random.Random(7).randbytes(500)
    with open(last, "ab") as f:
        f.write(garbage)
    report = audit_journal(journal)
    assert report.identical and report.records == before
    assert report.repaired is not None
    (q,) = report.repaired.quarantined
    assert q.bytes_moved == len(garbage)
    assert quarantined_files(journal)[0].read_bytes() == garbage


def test_flipped_byte_mid_journal_cuts_there_and_replays_what_came_before(sim_journal: Path, tmp_path: Path) -> None:
    """A checksum failure mid-segment keeps the records before it, and those still audit identical."""
    journal, last = copy_of(sim_journal, tmp_path)
    data = bytearray(last.read_bytes())
    data[len(data) // 2] ^= 0x55
    last.write_bytes(bytes(data))
    report = audit_journal(journal)
    assert report.identical
    assert 0 < report.records < record_count(sim_journal)
    assert report.repaired is not None
    assert [q.reason for q in report.repaired.quarantined] == ["crc_mismatch"]
