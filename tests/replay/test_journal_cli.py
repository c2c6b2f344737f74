"""bin/journal: segments, stats, dump with filters, verify and repair."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from arbor.actors.replay.journal_cli import main
from arbor.actors.replay.recorder import record_simulated_run
from arbor.config.loader import load_raw

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def journal(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A journal of 60 simulated seconds in small segments, so there are several."""
    return record_simulated_run(tmp_path_factory.mktemp("sim"), load_raw(environ={}), 60, run_id="cli",
                                segment_bytes=1024 * 1024)


def run(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    code = main(list(argv), out=out, err=io.StringIO())
    return code, out.getvalue()


def test_segments_lists_every_segment(journal: Path) -> None:
    """segments prints one ok line per segment file."""
    code, text = run("segments", str(journal))
    files = sorted(journal.glob("segment-*.arj"))
    assert code == 0 and len(files) > 1
    assert all(f.name in text for f in files) and text.count(" ok") == len(files)


def test_stats_counts_kinds_and_types(journal: Path) -> None:
    """stats counts records by kind (DERIVED_INPUT too: the collector's events are not journaled) and message type."""
    code, text = run("stats", str(journal))
    assert code == 0
    for word in ("INPUT", "OUTPUT", "EXTERNAL", "RUN_STARTED", "DERIVED_INPUT", "VenuePayload.v1", "TimerTick.v1"):
        assert word in text


def test_dump_filters_by_type_kind_symbol_and_time(journal: Path) -> None:
    """dump writes JSON lines, filtered by message type (INPUTs by the message they name), kind, symbol, time."""
    code, text = run("dump", str(journal), "--type", "PlaceOrder")
    rows = [json.loads(line) for line in text.splitlines()]
    outputs = [r for r in rows if r["kind"] == "OUTPUT"]
    assert code == 0 and outputs and all(r["type"] == "PlaceOrder.v1" for r in outputs)
    assert all(r["actor"].endswith("/venue") for r in rows if r["kind"] == "INPUT")

    _, text = run("dump", str(journal), "--kind", "input", "--symbol", "ETHUSDT", "--limit", "50")
    rows = [json.loads(line) for line in text.splitlines()]
    assert len(rows) == 50 and all(r["kind"] == "INPUT" for r in rows)
    assert all(r["actor"].startswith("ETHUSDT/") or r["actor"] in ("risk", "arbitrator") for r in rows)

    _, text = run("dump", str(journal), "--kind", "external", "--since", "2024-08-09T00:00:10Z",
                  "--until", "2024-08-09T00:00:11Z")
    rows = [json.loads(line) for line in text.splitlines()]
    assert rows and all("2024-08-09T00:00:10" in r["recv"] for r in rows)


def test_verify_then_repair_then_verify(journal: Path, tmp_path: Path) -> None:
    """verify exits 1 on a damaged segment, repair quarantines it, verify then exits 0."""
    copy = tmp_path / "j"
    shutil.copytree(journal, copy)
    assert run("verify", str(copy))[0] == 0
    seg = sorted(copy.glob("segment-*.arj"))[0]
    data = bytearray(seg.read_bytes())
    data[-100] ^= 0x01
    seg.write_bytes(bytes(data))
    code, text = run("verify", str(copy))
    assert code == 1 and "crc_mismatch" in text
    code, text = run("repair", str(copy))
    assert code == 0 and "quarantined" in text
    code, text = run("verify", str(copy))
    assert code == 0 and "GAP" in text


def test_missing_directory_exits_2(tmp_path: Path) -> None:
    """Any subcommand on a directory that does not exist exits 2."""
    assert run("stats", str(tmp_path / "nope"))[0] == 2


def test_module_entry_point_runs(journal: Path) -> None:
    """python -m arbor.actors.replay.journal_cli (what bin/journal execs) runs as a program."""
    done = subprocess.run([sys.executable, "-m", "arbor.actors.replay.journal_cli", "verify", str(journal)], cwd=REPO,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "OK" in done.stdout
