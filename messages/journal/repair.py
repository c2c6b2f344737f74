"""Cutting damaged tails off segments and moving the bad bytes to quarantine files."""

from __future__ import annotations

import io
import os
import time
from collections.abc import Callable
from pathlib import Path

import attrs
from arbor.messages.journal.format import SCHEMA_VERSION, Damage
from arbor.messages.journal.lock import DirectoryLock
from arbor.messages.journal.scan import SegmentInfo, scan_segment, segment_files
from loguru import logger

Fsync = Callable[[int], None]


@attrs.frozen(kw_only=True, slots=True)
class Quarantine:
    """Bytes moved out of a segment: from ``offset`` to the old end of ``segment``."""

    segment: Path
    quarantine_path: Path
    offset: int
    bytes_moved: int
    reason: str
    whole_segment: bool


@attrs.frozen(kw_only=True, slots=True)
class RepairReport:
    """What repair found and did. ``segments`` describes the journal after repair."""

    segments: tuple[SegmentInfo, ...]
    quarantined: tuple[Quarantine, ...]
    unsupported: tuple[SegmentInfo, ...]

    @property
    def clean(self) -> bool:
        """Nothing had to be cut and nothing was refused."""
        return not self.quarantined and not self.unsupported


def repair(
    directory: Path | str,
    *,
    clock_ns: Callable[[], int] = time.time_ns,
    fsync: Fsync = os.fsync,
    max_schema_version: int = SCHEMA_VERSION,
) -> RepairReport:
    """Cut every segment at its last good record, quarantining the rest; never raises on damage.

    A damaged tail (torn length prefix, a length past the end of the file, a checksum
    mismatch) is copied to ``<segment>.corrupted.<ns>`` and fsynced before the segment is
    truncated, so a crash during repair can duplicate quarantined bytes but never lose them.
    A segment whose header is damaged is renamed to its quarantine name whole. Segments from a
    newer format or schema are left untouched and listed in ``unsupported``.

    Takes the directory lock: raises JournalLocked while a writer has the journal open.
    """
    directory = Path(directory)
    with DirectoryLock(directory):
        return repair_locked(directory, clock_ns=clock_ns, fsync=fsync, max_schema_version=max_schema_version)


def repair_locked(
    directory: Path, *, clock_ns: Callable[[], int], fsync: Fsync, max_schema_version: int
) -> RepairReport:
    """``repair`` for a caller that already holds the directory lock."""
    segments: list[SegmentInfo] = []
    quarantined: list[Quarantine] = []
    unsupported: list[SegmentInfo] = []
    for first, path in segment_files(directory):
        info = scan_segment(path, first, max_schema_version=max_schema_version)
        if info.unsupported is not None:
            logger.bind(event_type="journal_segment_unsupported", segment=str(path)).error(
                "journal segment {} left untouched: {}", path.name, info.unsupported
            )
            unsupported.append(info)
            segments.append(info)
        elif info.damage is None:
            segments.append(info)
        elif info.header is None:
            quarantined.append(_quarantine_whole(info, info.damage, clock_ns=clock_ns, fsync=fsync))
        else:
            quarantined.append(_quarantine_tail(info, info.damage, clock_ns=clock_ns, fsync=fsync))
            segments.append(attrs.evolve(info, size_bytes=info.good_bytes, damage=None))
    if quarantined:
        _fsync_dir(directory, fsync)
    return RepairReport(segments=tuple(segments), quarantined=tuple(quarantined), unsupported=tuple(unsupported))


def _quarantine_tail(info: SegmentInfo, damage: Damage, *, clock_ns: Callable[[], int], fsync: Fsync) -> Quarantine:
    with open(info.path, "r+b") as seg:
        seg.seek(info.good_bytes)
        bad = seg.read()
        target, out = _create_quarantine_file(info.path, clock_ns)
        with out:
            out.write(bad)
            out.flush()
            fsync(out.fileno())
        seg.truncate(info.good_bytes)
        seg.flush()
        fsync(seg.fileno())
    q = Quarantine(
        segment=info.path, quarantine_path=target, offset=info.good_bytes, bytes_moved=len(bad),
        reason=damage.reason, whole_segment=False,
    )
    _log(q, info)
    return q


def _quarantine_whole(info: SegmentInfo, damage: Damage, *, clock_ns: Callable[[], int], fsync: Fsync) -> Quarantine:
    ns = clock_ns()
    while True:
        target = info.path.with_name(f"{info.path.name}.corrupted.{ns}")
        if not target.exists():
            break
        ns += 1
    # rename within one directory is atomic; the directory is fsynced once repair is done
    os.rename(info.path, target)
    q = Quarantine(
        segment=info.path, quarantine_path=target, offset=0, bytes_moved=info.size_bytes,
        reason=damage.reason, whole_segment=True,
    )
    _log(q, info)
    return q


def _create_quarantine_file(path: Path, clock_ns: Callable[[], int]) -> tuple[Path, io.BufferedWriter]:
    ns = clock_ns()
    while True:
        target = path.with_name(f"{path.name}.corrupted.{ns}")
        try:
            return target, open(target, "xb")
        except FileExistsError:
            ns += 1


def _log(q: Quarantine, info: SegmentInfo) -> None:
    logger.bind(
        event_type="journal_quarantined",
        segment=str(q.segment),
        quarantine=str(q.quarantine_path),
        offset=q.offset,
        bytes=q.bytes_moved,
        reason=q.reason,
        whole_segment=q.whole_segment,
        records_kept=info.record_count,
        first_index=info.first_index,
    ).warning(
        "journal: quarantined {} bytes of {} from offset {} ({}); {} records kept",
        q.bytes_moved, q.segment.name, q.offset, q.reason, info.record_count,
    )


def _fsync_dir(directory: Path, fsync: Fsync) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        fsync(fd)
    finally:
        os.close(fd)
