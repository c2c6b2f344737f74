"""Walking a segment's bytes: where its good records end and what, if anything, is damaged."""

from __future__ import annotations

import mmap
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import attrs
from arbor.messages.journal.errors import UnsupportedJournal
from arbor.messages.journal.format import (
    SCHEMA_VERSION,
    BadHeader,
    Damage,
    SegmentHeader,
    decode_header,
    iter_frames,
    parse_segment_name,
)


@attrs.frozen(kw_only=True, slots=True)
class SegmentInfo:
    """One segment file as found on disk.

    ``record_count`` and ``good_bytes`` cover the records before the first damage; ``damage``
    is None for a clean segment. ``header`` is None when the header itself is damaged or from a
    newer program (``unsupported`` then says why).
    """

    path: Path
    first_index: int
    record_count: int
    size_bytes: int
    good_bytes: int
    header: SegmentHeader | None
    damage: Damage | None = None
    unsupported: str | None = None

    @property
    def end_index(self) -> int:
        """Index the record after this segment's last good record would have."""
        return self.first_index + self.record_count

    @property
    def schema_version(self) -> int | None:
        return self.header.schema_version if self.header else None

    @property
    def clean(self) -> bool:
        return self.damage is None and self.unsupported is None


def segment_files(directory: Path) -> list[tuple[int, Path]]:
    """``(first index, path)`` of every segment in ``directory``, in index order."""
    found = []
    for entry in os.scandir(directory):
        first = parse_segment_name(entry.name)
        if first is not None and entry.is_file():
            found.append((first, Path(entry.path)))
    found.sort()
    return found


@contextmanager
def mapped(path: Path) -> Iterator[memoryview]:
    """The file's bytes, read-only and memory-mapped (an empty view for an empty file)."""
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size == 0:
            yield memoryview(b"")
            return
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
            view = memoryview(mm)
            try:
                yield view
            finally:
                view.release()


def scan_segment(path: Path, first_index: int, *, max_schema_version: int = SCHEMA_VERSION) -> SegmentInfo:
    """Check the header and every record checksum of one segment; modifies nothing."""
    with mapped(path) as buf:
        size = len(buf)
        try:
            header, offset = decode_header(buf, max_schema_version=max_schema_version)
        except BadHeader as exc:
            return SegmentInfo(
                path=path, first_index=first_index, record_count=0, size_bytes=size, good_bytes=0,
                header=None, damage=Damage(offset=0, reason=exc.reason),
            )
        except UnsupportedJournal as exc:
            return SegmentInfo(
                path=path, first_index=first_index, record_count=0, size_bytes=size, good_bytes=0,
                header=None, unsupported=str(exc),
            )
        damage: list[Damage] = []
        count = 0
        good = offset
        for _start, stop in iter_frames(buf, offset, damage):
            count += 1
            good = stop
    return SegmentInfo(
        path=path, first_index=first_index, record_count=count, size_bytes=size, good_bytes=good,
        header=header, damage=damage[0] if damage else None,
    )
