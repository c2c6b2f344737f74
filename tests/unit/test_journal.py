"""The journal storage layer: framing, rotation, durability policies, repair and verification."""

from __future__ import annotations

import os
import random
import stat
from decimal import Decimal
from pathlib import Path

import pytest
from arbor.actors.testing import ManualClock
from arbor.messages import Codec, CodecError, Envelope, TimerTick, UnknownMessageType
from arbor.messages.journal import (
    CorruptJournal,
    Durability,
    JournalClosed,
    JournalLocked,
    JournalReader,
    JournalWriter,
    RecordKind,
    UnsupportedJournal,
    decode_record,
    encode_record,
    repair,
    segment_name,
)
from arbor.messages.journal.format import FRAME_SIZE
from arbor.messages.orders import OrderCanceled
from loguru import logger

ROTATION = Durability(mode="rotation")
MS = 1_000_000


class CountingFsync:
    """Stands in for os.fsync and counts calls on segment files and on directories separately."""

    def __init__(self) -> None:
        self.files = 0
        self.dirs = 0

    def __call__(self, fd: int) -> None:
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            self.dirs += 1
        else:
            self.files += 1


def writer(path: Path, *, clock: ManualClock | None = None, **kw) -> JournalWriter:
    kw.setdefault("durability", ROTATION)
    kw.setdefault("fsync", CountingFsync())
    return JournalWriter(path, run_id="test-run", clock_ns=(clock or ManualClock()).now_ns, **kw)


def payloads(n: int, seed: int = 1) -> list[bytes]:
    rng = random.Random(seed)
    return [rng.randbytes(rng.randint(1, 120)) for _ in range(n)]


def write_all(path: Path, items: list[bytes], **kw) -> None:
    with writer(path, **kw) as w:
        for p in items:
            w.append(p)


def segment_paths(path: Path) -> list[Path]:
    return sorted(path.glob("segment-*.arj"))


def quarantine_files(path: Path) -> list[Path]:
    return sorted(path.glob("*.corrupted.*"))


def record_offsets(seg: Path) -> list[int]:
    """Byte offset of each record frame in a clean segment (test-side re-parse of the format)."""
    data = seg.read_bytes()
    info_len = int.from_bytes(data[8:12], "little")
    off = 16 + info_len
    offsets = []
    while off < len(data):
        offsets.append(off)
        off += FRAME_SIZE + int.from_bytes(data[off : off + 4], "little")
    return offsets


# -- writing and reading ---------------------------------------------------------------------


def test_records_round_trip_across_rotations(tmp_path):
    """Every appended payload comes back once, in order, with its index, across many segments."""
    items = payloads(2000)
    write_all(tmp_path, items, segment_bytes=4096)
    assert len(segment_paths(tmp_path)) > 10
    assert list(JournalReader(tmp_path).records()) == list(enumerate(items))


def test_append_returns_consecutive_indices(tmp_path):
    """append returns 0, 1, 2, ... and next_index is one past the last."""
    with writer(tmp_path, segment_bytes=256) as w:
        assert [w.append(p) for p in payloads(50)] == list(range(50))
        assert w.next_index == 50


def test_segments_are_named_by_first_index_and_bounded_in_size(tmp_path):
    """Each segment is named after its first record and stays within segment_bytes."""
    write_all(tmp_path, payloads(500), segment_bytes=1024)
    infos = JournalReader(tmp_path).segments()
    assert [i.path.name for i in infos] == [segment_name(i.first_index) for i in infos]
    assert all(i.size_bytes <= 1024 for i in infos)
    assert [i.first_index for i in infos[1:]] == [i.end_index for i in infos[:-1]]


def test_a_record_larger_than_a_segment_gets_a_segment_of_its_own(tmp_path):
    """An oversized record is written whole, alone in its segment."""
    big = b"B" * 5000
    write_all(tmp_path, [b"a", big, b"c"], segment_bytes=1024)
    infos = JournalReader(tmp_path).segments()
    assert [i.record_count for i in infos] == [1, 1, 1]
    assert list(JournalReader(tmp_path).records()) == [(0, b"a"), (1, big), (2, b"c")]


def test_records_from_start_skips_earlier_records(tmp_path):
    """records(start) begins exactly at index start, even mid-segment."""
    items = payloads(300)
    write_all(tmp_path, items, segment_bytes=1024)
    assert list(JournalReader(tmp_path).records(start=137)) == list(enumerate(items))[137:]


def test_segment_headers_carry_run_and_versions(tmp_path):
    """segments() exposes the header: run id, creation time, format and schema versions."""
    clock = ManualClock(start_ns=42)
    write_all(tmp_path, [b"x"], clock=clock)
    (info,) = JournalReader(tmp_path).segments()
    assert (info.header.run_id, info.header.created_ns) == ("test-run", 42)
    assert (info.header.format_version, info.schema_version) == (1, 2)


def test_reopening_continues_in_a_new_segment(tmp_path):
    """A reopened journal appends after the last record, in a new segment."""
    write_all(tmp_path, [b"a", b"b"])
    with writer(tmp_path) as w:
        assert w.append(b"c") == 2
    assert [p.name for p in segment_paths(tmp_path)] == [segment_name(0), segment_name(2)]
    assert list(JournalReader(tmp_path).records()) == [(0, b"a"), (1, b"b"), (2, b"c")]


def test_a_header_only_last_segment_is_replaced_on_reopen(tmp_path):
    """A writer closed before its first append leaves nothing that blocks the next one."""
    write_all(tmp_path, [b"a"])
    with writer(tmp_path) as w:
        w.append(b"b")
    seg = tmp_path / segment_name(1)
    seg.write_bytes(seg.read_bytes()[: record_offsets(seg)[0]])  # header only
    with writer(tmp_path) as w:
        assert w.append(b"c") == 1
    assert list(JournalReader(tmp_path).records()) == [(0, b"a"), (1, b"c")]


def test_empty_payload_is_refused(tmp_path):
    """A zero-length record is refused: it would be indistinguishable from a zeroed tail."""
    with writer(tmp_path) as w, pytest.raises(ValueError):
        w.append(b"")


def test_append_after_close_raises(tmp_path):
    """A closed writer refuses appends with JournalClosed."""
    w = writer(tmp_path)
    w.close()
    with pytest.raises(JournalClosed):
        w.append(b"x")


def test_second_writer_on_the_same_journal_is_refused(tmp_path):
    """Only one writer holds a journal; the next can open once it is closed."""
    with writer(tmp_path):
        with pytest.raises(JournalLocked):
            writer(tmp_path)
        with pytest.raises(JournalLocked):
            repair(tmp_path)
    writer(tmp_path).close()


# -- durability policies -----------------------------------------------------------------------


def test_every_record_policy_fsyncs_each_append(tmp_path):
    """Under every_record, each append is fsynced before it returns, and close adds none."""
    fsync = CountingFsync()
    with writer(tmp_path, durability=Durability(mode="every_record"), fsync=fsync) as w:
        for i, p in enumerate(payloads(25)):
            w.append(p)
            assert fsync.files == i + 1
    assert fsync.files == 25


def test_interval_policy_fsyncs_at_most_once_per_interval(tmp_path):
    """Under interval, an append syncs only once interval_ms has passed since the last sync."""
    clock, fsync = ManualClock(), CountingFsync()
    w = writer(tmp_path, clock=clock, durability=Durability(mode="interval", interval_ms=10), fsync=fsync)
    for _ in range(100):  # 100 appends, 1 ms apart: a sync at 10, 20, ..., 100 ms
        clock.advance(1 * MS)
        w.append(b"x")
    assert fsync.files == 10
    w.close()
    assert fsync.files == 10  # nothing left unsynced


def test_interval_policy_sync_if_due_covers_a_quiet_writer(tmp_path):
    """sync_if_due syncs a pending tail once the interval passed, and not before."""
    clock, fsync = ManualClock(), CountingFsync()
    w = writer(tmp_path, clock=clock, durability=Durability(mode="interval", interval_ms=10), fsync=fsync)
    w.append(b"x")
    w.sync_if_due()
    assert fsync.files == 0
    clock.advance(10 * MS)
    w.sync_if_due()
    assert fsync.files == 1
    w.close()


def test_rotation_policy_fsyncs_only_on_rotation_and_close(tmp_path):
    """Under rotation, each finished segment is fsynced once, plus once at close."""
    fsync = CountingFsync()
    w = writer(tmp_path, durability=ROTATION, fsync=fsync, segment_bytes=1024)
    for p in payloads(400):
        w.append(p)
    segments = len(segment_paths(tmp_path))
    assert segments > 3 and fsync.files == segments - 1
    w.close()
    assert fsync.files == segments
    assert fsync.dirs >= segments  # each new segment's directory entry was made durable


def test_flush_fsyncs_under_any_policy(tmp_path):
    """flush makes pending records durable even under the rotation policy, and is free when clean."""
    fsync = CountingFsync()
    with writer(tmp_path, durability=ROTATION, fsync=fsync) as w:
        w.append(b"x")
        w.flush()
        w.flush()
        assert fsync.files == 1


def test_a_failed_fsync_closes_the_writer_and_a_reopen_keeps_what_reached_the_file(tmp_path):
    """An I/O error while appending is raised, the writer closes, and the journal reopens cleanly."""

    def failing_fsync(fd: int) -> None:
        if not stat.S_ISDIR(os.fstat(fd).st_mode):
            raise OSError("disk on fire")

    w = writer(tmp_path, durability=Durability(mode="every_record"), fsync=failing_fsync)
    with pytest.raises(OSError, match="disk on fire"):
        w.append(b"a")
    with pytest.raises(JournalClosed):
        w.append(b"b")
    with writer(tmp_path) as again:
        assert again.append(b"c") == 1
    assert list(JournalReader(tmp_path).records()) == [(0, b"a"), (1, b"c")]


def test_durability_rejects_unknown_modes():
    """Durability accepts only the three documented modes and a positive interval."""
    with pytest.raises(ValueError):
        Durability(mode="sometimes")
    with pytest.raises(ValueError):
        Durability(mode="interval", interval_ms=0)


# -- damage and repair ---------------------------------------------------------------------------


def test_truncated_mid_record_is_cut_exactly_at_the_torn_record(tmp_path):
    """A record torn by truncation is quarantined byte for byte; every earlier record is kept."""
    items = payloads(10)
    write_all(tmp_path, items)
    (seg,) = segment_paths(tmp_path)
    data = seg.read_bytes()
    last = record_offsets(seg)[-1]
    seg.write_bytes(data[:-3])

    report = repair(tmp_path, clock_ns=lambda: 777)

    (q,) = report.quarantined
    assert (q.offset, q.reason, q.whole_segment) == (last, "length_past_end", False)
    assert q.quarantine_path == tmp_path / f"{seg.name}.corrupted.777"
    assert q.quarantine_path.read_bytes() == data[last:-3]
    assert seg.read_bytes() == data[:last]
    assert list(JournalReader(tmp_path).records()) == list(enumerate(items[:9]))


def test_truncated_inside_a_length_prefix_is_cut_there(tmp_path):
    """A torn length prefix is quarantined and earlier records are kept."""
    write_all(tmp_path, [b"a", b"b", b"c"])
    (seg,) = segment_paths(tmp_path)
    last = record_offsets(seg)[-1]
    seg.write_bytes(seg.read_bytes()[: last + 3])
    (q,) = repair(tmp_path).quarantined
    assert (q.offset, q.bytes_moved, q.reason) == (last, 3, "short_length_prefix")
    assert list(JournalReader(tmp_path).records()) == [(0, b"a"), (1, b"b")]


def test_appends_continue_after_repairing_a_torn_tail(tmp_path):
    """Reopening a torn journal repairs it and continues at the first lost index, in a new segment."""
    items = payloads(10)
    write_all(tmp_path, items)
    (seg,) = segment_paths(tmp_path)
    seg.write_bytes(seg.read_bytes()[:-3])
    with writer(tmp_path) as w:
        assert len(w.repair_report.quarantined) == 1
        assert w.append(b"new") == 9
    assert (tmp_path / segment_name(9)).exists()
    assert list(JournalReader(tmp_path).records()) == list(enumerate([*items[:9], b"new"]))


def test_random_garbage_after_the_last_record_is_quarantined(tmp_path):
    """Garbage appended to a segment is moved out whole; every real record is kept and appends continue."""
    items = payloads(20)
    write_all(tmp_path, items)
    (seg,) = segment_paths(tmp_path)
    good = seg.read_bytes()
    garbage = random.Random(7).randbytes(333)
    seg.write_bytes(good + garbage)

    with writer(tmp_path) as w:
        (q,) = w.repair_report.quarantined
        w.append(b"after")
    assert q.offset == len(good) and q.quarantine_path.read_bytes() == garbage
    assert seg.read_bytes() == good
    assert list(JournalReader(tmp_path).records()) == list(enumerate([*items, b"after"]))


def test_a_zero_filled_tail_is_quarantined(tmp_path):
    """Zeros left by a power failure are damage, not empty records."""
    write_all(tmp_path, [b"a"])
    (seg,) = segment_paths(tmp_path)
    seg.write_bytes(seg.read_bytes() + bytes(64))
    (q,) = repair(tmp_path).quarantined
    assert (q.reason, q.bytes_moved) == ("zero_length", 64)


def test_a_flipped_byte_quarantines_the_rest_of_its_segment_only(tmp_path):
    """A checksum mismatch mid-segment cuts that segment there (no resync); other segments are untouched."""
    items = payloads(300)
    write_all(tmp_path, items, segment_bytes=2048)
    segs = segment_paths(tmp_path)
    target = segs[1]
    offsets = record_offsets(target)
    bad = offsets[len(offsets) // 2]
    data = bytearray(target.read_bytes())
    data[bad + FRAME_SIZE] ^= 0xFF  # first payload byte of the middle record
    target.write_bytes(bytes(data))
    first = JournalReader(tmp_path).segments()[1].first_index
    lost_from, lost_to = first + len(offsets) // 2, first + len(offsets)

    (q,) = repair(tmp_path).quarantined

    assert (q.segment, q.offset, q.reason) == (target, bad, "crc_mismatch")
    assert q.quarantine_path.read_bytes() == bytes(data[bad:])
    expected = [(i, p) for i, p in enumerate(items) if not lost_from <= i < lost_to]
    assert list(JournalReader(tmp_path).records()) == expected
    (gap,) = JournalReader(tmp_path).verify().gaps
    assert (gap.start, gap.stop) == (lost_from, lost_to)


def test_a_corrupt_header_quarantines_the_whole_segment(tmp_path):
    """A segment with a damaged header is moved aside whole; the other segments stay readable."""
    items = payloads(300)
    write_all(tmp_path, items, segment_bytes=2048)
    segs = segment_paths(tmp_path)
    original = segs[1].read_bytes()
    segs[1].write_bytes(b"XXXX" + original[4:])
    infos = JournalReader(tmp_path).segments()
    lost = range(infos[1].first_index, infos[2].first_index)

    (q,) = repair(tmp_path, clock_ns=lambda: 5).quarantined

    assert (q.whole_segment, q.reason) == (True, "bad_magic")
    assert not segs[1].exists() and q.quarantine_path.read_bytes() == b"XXXX" + original[4:]
    assert list(JournalReader(tmp_path).records()) == [(i, p) for i, p in enumerate(items) if i not in lost]


def test_a_flipped_byte_in_the_header_info_is_caught_by_the_header_checksum(tmp_path):
    """Damage inside the header's info map is a bad header, not a misread run id."""
    write_all(tmp_path, [b"a"])
    (seg,) = segment_paths(tmp_path)
    data = bytearray(seg.read_bytes())
    data[14] ^= 0x01
    seg.write_bytes(bytes(data))
    (q,) = repair(tmp_path).quarantined
    assert (q.whole_segment, q.reason) == (True, "header_crc_mismatch")


def test_repair_of_a_clean_journal_changes_nothing(tmp_path):
    """Repair on a healthy journal reports clean and leaves every byte in place."""
    write_all(tmp_path, payloads(100), segment_bytes=1024)
    before = {p.name: p.read_bytes() for p in segment_paths(tmp_path)}
    assert repair(tmp_path).clean
    assert {p.name: p.read_bytes() for p in segment_paths(tmp_path)} == before


def test_repair_logs_a_warning_event_per_quarantine(tmp_path):
    """Each quarantine emits a structured warning event naming the segment and quarantine file."""
    write_all(tmp_path, [b"a", b"b"])
    (seg,) = segment_paths(tmp_path)
    seg.write_bytes(seg.read_bytes()[:-1])
    events = []
    sink = logger.add(lambda m: events.append(m.record), level="WARNING")
    try:
        (q,) = repair(tmp_path).quarantined
    finally:
        logger.remove(sink)
    (event,) = [e for e in events if e["extra"].get("event_type") == "journal_quarantined"]
    assert event["level"].name == "WARNING"
    assert event["extra"]["quarantine"] == str(q.quarantine_path)
    assert event["extra"]["bytes"] == q.bytes_moved


def test_reader_refuses_damage_before_repair(tmp_path):
    """Reading an unrepaired mid-journal checksum mismatch raises CorruptJournal instead of skipping."""
    write_all(tmp_path, payloads(300), segment_bytes=2048)
    seg = segment_paths(tmp_path)[0]
    data = bytearray(seg.read_bytes())
    data[record_offsets(seg)[3] + FRAME_SIZE] ^= 0xFF
    seg.write_bytes(bytes(data))
    with pytest.raises(CorruptJournal, match="crc_mismatch"):
        list(JournalReader(tmp_path).records())


def test_reader_treats_an_unfinished_last_record_as_the_end(tmp_path):
    """A torn record at the very end (a writer mid-append) ends the records without an error."""
    write_all(tmp_path, [b"a", b"b"])
    (seg,) = segment_paths(tmp_path)
    seg.write_bytes(seg.read_bytes()[:-1])
    assert list(JournalReader(tmp_path).records()) == [(0, b"a")]


def test_verify_reports_damage_without_modifying(tmp_path):
    """verify finds every kind of damage and leaves every file exactly as it was."""
    write_all(tmp_path, payloads(300), segment_bytes=2048)
    segs = segment_paths(tmp_path)
    segs[0].write_bytes(b"XXXX" + segs[0].read_bytes()[4:])
    segs[-1].write_bytes(segs[-1].read_bytes()[:-2])
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}

    report = JournalReader(tmp_path).verify()

    assert not report.ok
    assert [(s.path, s.damage.reason) for s in report.damaged] == [
        (segs[0], "bad_magic"),
        (segs[-1], "length_past_end"),
    ]
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


# -- schema versions -------------------------------------------------------------------------------


def test_older_schema_segments_are_read_with_their_version(tmp_path):
    """A reader for schema 2 returns schema-1 records and says which schema each came from."""
    write_all(tmp_path, [b"old"], schema_version=1)
    with writer(tmp_path, schema_version=2) as w:
        w.append(b"new")
    entries = list(JournalReader(tmp_path, max_schema_version=2).entries())
    assert [(e.index, e.schema_version, e.payload) for e in entries] == [(0, 1, b"old"), (1, 2, b"new")]


def test_newer_schema_segments_are_refused_and_left_untouched(tmp_path):
    """A segment from a newer schema is neither read, repaired nor appended after."""
    write_all(tmp_path, [b"future"], schema_version=2)
    (seg,) = segment_paths(tmp_path)
    before = seg.read_bytes()
    with pytest.raises(UnsupportedJournal):
        list(JournalReader(tmp_path, max_schema_version=1).records())
    assert len(repair(tmp_path, max_schema_version=1).unsupported) == 1
    with pytest.raises(UnsupportedJournal):
        writer(tmp_path, schema_version=1)
    assert seg.read_bytes() == before and not quarantine_files(tmp_path)


# -- record payloads ---------------------------------------------------------------------------------


def envelope(payload) -> Envelope:
    return Envelope(
        msg_id=7, sender="risk", receiver="BTCUSDT/executor", ts_event_ns=1, ts_recv_ns=2, causation_id=3, payload=payload
    )


def test_records_carry_kind_and_envelope(tmp_path):
    """encode_record/decode_record round-trip the kind and the envelope through the journal."""
    codec = Codec()
    cancel = OrderCanceled(symbol="BTCUSDT", client_order_id="c1", filled_qty=Decimal("0.5"), reason="user", ts_event_ns=9)
    env = envelope(cancel)
    write_all(tmp_path, [encode_record(codec, RecordKind.OUTPUT, env)])
    ((_, payload),) = JournalReader(tmp_path).records()
    assert decode_record(codec, payload) == (RecordKind.OUTPUT, env)


def test_an_unknown_record_kind_is_a_codec_error():
    """A record kind outside RecordKind is refused with CodecError."""
    codec = Codec()
    good = encode_record(codec, RecordKind.EXTERNAL, envelope(TimerTick(ts_event_ns=1)))
    assert decode_record(codec, good)[0] is RecordKind.EXTERNAL
    with pytest.raises(CodecError, match="unknown record kind 9"):
        decode_record(codec, b"\x92\x09" + good[2:])


def test_a_record_with_an_unknown_message_tag_raises_unknown_message_type():
    """A journaled envelope whose tag nobody knows surfaces as UnknownMessageType."""
    codec = Codec(types=[])
    payload = encode_record(Codec(), RecordKind.INPUT, envelope(TimerTick(ts_event_ns=1)))
    with pytest.raises(UnknownMessageType, match="TimerTick.v1"):
        decode_record(codec, payload)
