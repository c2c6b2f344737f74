"""Audit replay: a live multi-threaded run reproduces exactly; an altered output is caught where it is."""

from __future__ import annotations

import io
import shutil
from decimal import Decimal
from pathlib import Path

import msgpack
import pytest
from arbor.actors.cluster.build import build_actors, market_frames, market_venue
from arbor.actors.replay import audit_journal, build_held, open_journal_observer
from arbor.actors.replay.cli import audit_command
from arbor.actors.runtime import HandlerClock, ThreadedRuntime
from arbor.actors.testing import eventually
from arbor.config.loader import deep_merge, load_raw
from arbor.config.settings import build_settings
from arbor.messages import Envelope, TimerTick
from arbor.messages.codec import Codec
from arbor.messages.journal import (
    Durability,
    JournalReader,
    JournalWriter,
    RunMetadata,
    encode_external,
    encode_run_started,
)
from arbor.messages.journal.format import FRAME, FRAME_SIZE, decode_header, iter_frames

RUN_ID = "live-audit"


def fast_config(var_dir: Path) -> dict:
    """Defaults tuned so a few seconds of simulated market reach decisions, orders and fills."""
    raw = deep_merge(load_raw(environ={}), {
        "run": {"tick_interval_ms": 20, "var_dir": str(var_dir)},
        "feature": {"bucket_ms": 50, "short_window": 5, "long_window": 20, "min_samples": 5},
        "regime": {"decision_interval_ms": 100, "confirm_cycles": 1},
        "paper": {"latency_ms": 5},
    })
    for s in raw["symbols"]:
        s.update(events_per_s=300.0, base_vol=0.002)
    return raw


@pytest.fixture(scope="module")
def live_journal(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A journal of the cluster on pykka threads, wall clock, paced simulated feed (as start-cluster runs it)."""
    var_dir = tmp_path_factory.mktemp("live")
    raw = fast_config(var_dir)
    settings = build_settings(raw)
    clock = HandlerClock()
    actors, built_ns = build_held(lambda: build_actors(settings, clock, RUN_ID), clock)
    observer = open_journal_observer(var_dir, RUN_ID, raw, Durability(mode="interval", interval_ms=50),
                                     built_ns=built_ns)
    runtime = ThreadedRuntime(actors, clock, observers=(observer,), tick_interval_s=0.02)
    runtime.start()
    try:
        runtime.feed(market_frames(settings, clock.now_ns()), market_venue(settings), paced=True)
        fed_until = clock.now_ns() + 3_000_000_000
        eventually(lambda: clock.now_ns() >= fed_until and observer.records > 0, timeout=10)
    finally:
        runtime.stop()
        observer.close()
    assert observer.healthy
    return observer.directory


def copy_with_altered_output(src: Path, dst: Path, type_tag: str, field: str = "price") -> int:
    """Copy a journal record for record, adding 1 to a Decimal ``field`` of the first OUTPUT of ``type_tag``."""
    altered = -1
    reader = JournalReader(src)
    with JournalWriter(dst, run_id="copy", durability=Durability(mode="rotation"), clock_ns=lambda: 1) as w:
        for index, payload in reader.records():
            obj = msgpack.unpackb(payload, raw=False, strict_map_key=False)
            if altered < 0 and obj[0] == 1 and obj[1][6] == type_tag:
                body = obj[1][7]
                body[field] = str(Decimal(body[field]) + 1)
                payload = msgpack.packb(obj, use_bin_type=True)
                altered = index
            assert w.append(payload) == index
    assert altered >= 0, f"no {type_tag} in the journal"
    return altered


def test_live_threaded_run_audits_identical(live_journal: Path) -> None:
    """Every actor of a multi-threaded live run reproduces its journaled outputs exactly."""
    report = audit_journal(live_journal)
    assert report.divergence is None
    assert report.runs == (RUN_ID,)
    assert report.inputs > 1000 and report.outputs > 500
    assert report.incomplete == () and report.unverified == ()


def test_live_run_reached_orders_and_fills(live_journal: Path) -> None:
    """The audited run is not trivial: it holds decisions, orders and fills."""
    tags = set()
    for _, payload in JournalReader(live_journal).records():
        obj = msgpack.unpackb(payload, raw=False, strict_map_key=False)
        if obj[0] == 1:
            tags.add(obj[1][6])
    assert {"Action.v1", "PlaceOrder.v1", "OrderFilled.v1"} <= tags


def test_altered_output_diverges_at_exactly_that_record(live_journal: Path, tmp_path: Path) -> None:
    """A changed Decimal in one OUTPUT record is the reported divergence: that record, that actor."""
    altered = copy_with_altered_output(live_journal, tmp_path / "copy", "OrderFilled.v1")
    report = audit_journal(tmp_path / "copy")
    d = report.divergence
    assert d is not None
    assert d.record_index == altered
    assert d.reason == "output differs"
    assert d.expected.price == d.actual.price + 1
    assert d.actor_id.endswith("/venue") or d.actor_id.endswith("/executor")
    assert d.chain[0].kind == "EXTERNAL" and d.chain[-1].envelope.msg_id == d.input.msg_id


def test_audit_command_exit_codes(live_journal: Path, tmp_path: Path) -> None:
    """bin/replay audit exits 0 when identical, 1 on divergence (printing the chain), 2 when unreadable."""
    out, err = io.StringIO(), io.StringIO()
    assert audit_command(live_journal, allow_repair=True, out=out, err=err) == 0
    assert "IDENTICAL" in out.getvalue()

    copy_with_altered_output(live_journal, tmp_path / "copy", "PlaceOrder.v1", "qty")
    out = io.StringIO()
    assert audit_command(tmp_path / "copy", allow_repair=True, out=out, err=err) == 1
    assert "DIVERGED" in out.getvalue() and "causal chain" in out.getvalue()

    assert audit_command(tmp_path / "missing", allow_repair=True, out=out, err=err) == 2


def test_journal_without_run_metadata_is_unreadable(tmp_path: Path) -> None:
    """A journal whose records do not start with run metadata exits 2."""
    codec = Codec()
    with JournalWriter(tmp_path / "j", run_id="x", durability=Durability(mode="rotation"), clock_ns=lambda: 1) as w:
        w.append(encode_external(codec, Envelope(msg_id=1, sender="timer", receiver="risk", ts_event_ns=1,
                                                 ts_recv_ns=1, causation_id=0, payload=TimerTick(ts_event_ns=1))))
    err = io.StringIO()
    assert audit_command(tmp_path / "j", allow_repair=True, out=io.StringIO(), err=err) == 2
    assert "metadata" in err.getvalue()


def test_recorded_configuration_that_no_longer_validates_is_unreadable(tmp_path: Path) -> None:
    """Run metadata whose configuration cannot build the actors exits 2."""
    meta = RunMetadata(run_id="bad", config={"nonsense": {}}, started_ns=1)
    with JournalWriter(tmp_path / "j", run_id="bad", durability=Durability(mode="rotation"), clock_ns=lambda: 1) as w:
        w.append(encode_run_started(meta))
    assert audit_command(tmp_path / "j", allow_repair=True, out=io.StringIO(), err=io.StringIO()) == 2


def _payload_offset_near_middle(data: bytes) -> tuple[int, int]:
    """``(frame start, a payload byte)`` of the record holding the segment's middle byte (or the next one)."""
    buf = memoryview(data)
    _header, offset = decode_header(buf)
    for start, stop in iter_frames(buf, offset, []):
        if stop > len(data) // 2:
            return start - FRAME_SIZE, (start + stop) // 2
    raise AssertionError("the segment holds no record past its middle")


def test_damaged_journal_with_no_repair_is_unreadable(live_journal: Path, tmp_path: Path) -> None:
    """--no-repair refuses a journal with a checksum failure instead of changing it.

    The flipped byte is inside a record's payload: a checksum mismatch is damage wherever it is. (It
    used to be the segment's middle byte, which now and then fell in a record's length prefix: see
    the next test for why that reads differently.)"""
    shutil.copytree(live_journal, tmp_path / "j")
    seg = sorted((tmp_path / "j").glob("segment-*.arj"))[0]
    data = bytearray(seg.read_bytes())
    _frame, payload_byte = _payload_offset_near_middle(bytes(data))
    data[payload_byte] ^= 0xFF
    seg.write_bytes(bytes(data))
    assert audit_command(tmp_path / "j", allow_repair=False, out=io.StringIO(), err=io.StringIO()) == 2


def test_a_length_prefix_past_the_end_of_the_last_segment_reads_as_its_torn_tail(live_journal: Path,
                                                                                tmp_path: Path) -> None:
    """A record whose length runs past the end of the last segment is what a crash mid-write leaves;
    without --repair the journal is read up to it (a live writer's unfinished record), nothing changed,
    and the audit says so. (A length prefix damaged after writing looks the same: that is why.)"""
    shutil.copytree(live_journal, tmp_path / "j")
    segments = sorted((tmp_path / "j").glob("segment-*.arj"))
    seg = segments[-1]
    data = bytearray(seg.read_bytes())
    frame, _payload_byte = _payload_offset_near_middle(bytes(data))
    data[frame:frame + 4] = FRAME.pack(len(data), 0)[:4]  # a length no record in this file can have
    seg.write_bytes(bytes(data))
    before = seg.read_bytes()
    out = io.StringIO()
    assert audit_command(tmp_path / "j", allow_repair=False, out=out, err=io.StringIO()) == 0
    assert seg.read_bytes() == before
    # never silently: the audit says where it stopped reading and how much it did not replay
    assert (f"note: {seg.name}: read up to byte {frame}, where a record runs past the end (length_past_end)"
            in out.getvalue()), out.getvalue()
    assert f"the {len(data) - frame:,} bytes after it are not replayed" in out.getvalue()
