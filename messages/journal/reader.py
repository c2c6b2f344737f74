"""Reading a journal back, and checking it without changing it.

Safe to use while a writer appends: an unfinished record or header at the very end of the
last segment is taken as the end of the journal (``verify`` still reports it).
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import pairwise
from pathlib import Path
from typing import Literal, overload

import attrs
from arbor.messages.journal.errors import CorruptJournal
from arbor.messages.journal.format import SCHEMA_VERSION, BadHeader, Damage, decode_header, iter_frames
from arbor.messages.journal.scan import SegmentInfo, mapped, scan_segment, segment_files


@attrs.frozen(kw_only=True, slots=True)
class Record:
    """One record with the schema version of the segment it was read from."""

    index: int
    schema_version: int
    payload: bytes


@attrs.frozen(kw_only=True, slots=True)
class Gap:
    """Indices ``[start, stop)`` missing between two segments (a quarantined range)."""

    start: int
    stop: int


@attrs.frozen(kw_only=True, slots=True)
class VerifyReport:
    segments: tuple[SegmentInfo, ...]
    gaps: tuple[Gap, ...]

    @property
    def ok(self) -> bool:
        """Every segment is whole and readable by this program."""
        return all(s.clean for s in self.segments)

    @property
    def damaged(self) -> tuple[SegmentInfo, ...]:
        return tuple(s for s in self.segments if s.damage is not None)

    @property
    def record_count(self) -> int:
        return sum(s.record_count for s in self.segments)


class JournalReader:
    """Reads the records of a journal directory in index order.

    Segments whose schema version is older than ``max_schema_version`` are read as they are;
    ``entries`` gives each record's schema version so the codec's upgraders can apply.
    Indices are stable: repair never renumbers, so a quarantined range shows as a gap.
    """

    def __init__(self, directory: Path | str, *, max_schema_version: int = SCHEMA_VERSION) -> None:
        self._dir = Path(directory)
        self._max_schema = max_schema_version

    def records(self, start: int = 0) -> Iterator[tuple[int, bytes]]:
        """``(index, payload)`` of every record with index >= ``start``.

        Raises CorruptJournal at damage anywhere but an unfinished tail, and UnsupportedJournal
        at a segment from a newer program.
        """
        return self._walk(start, with_schema=False)

    def entries(self, start: int = 0) -> Iterator[Record]:
        """Like ``records``, as Record values that carry their segment's schema version."""
        return self._walk(start, with_schema=True)

    @overload
    def _walk(self, start: int, *, with_schema: Literal[False]) -> Iterator[tuple[int, bytes]]: ...
    @overload
    def _walk(self, start: int, *, with_schema: Literal[True]) -> Iterator[Record]: ...

    def _walk(self, start: int, *, with_schema: bool) -> Iterator[tuple[int, bytes] | Record]:
        files = segment_files(self._dir)
        # skip whole segments that end before ``start``: the next one's first index bounds them
        first_needed = 0
        for i, (first, _path) in enumerate(files):
            if first <= start:
                first_needed = i
        for i in range(first_needed, len(files)):
            first, path = files[i]
            yield from self._segment(first, path, start, is_last=i == len(files) - 1, with_schema=with_schema)

    def _segment(
        self, first: int, path: Path, start: int, *, is_last: bool, with_schema: bool
    ) -> Iterator[tuple[int, bytes] | Record]:
        with mapped(path) as buf:
            try:
                header, offset = decode_header(buf, max_schema_version=self._max_schema)
            except BadHeader as exc:
                if is_last and exc.reason == "torn_header":
                    return
                raise CorruptJournal(f"{path}: damaged header ({exc.reason}); run repair()") from None
            schema = header.schema_version
            damage: list[Damage] = []
            frames = iter_frames(buf, offset, damage)
            index = first
            try:
                # two loops rather than a branch per record: this is the replay hot path
                if with_schema:
                    for s, e in frames:
                        if index >= start:
                            yield Record(index=index, schema_version=schema, payload=bytes(buf[s:e]))
                        index += 1
                else:
                    for s, e in frames:
                        if index >= start:
                            yield index, bytes(buf[s:e])
                        index += 1
            finally:
                frames.close()
        if damage and not (is_last and damage[0].torn):
            d = damage[0]
            raise CorruptJournal(f"{path}: {d.reason} at byte {d.offset} (record {index}); run repair()")

    def segments(self) -> list[SegmentInfo]:
        """Every segment with its header fields and counts of good records, in index order."""
        return [scan_segment(p, first, max_schema_version=self._max_schema) for first, p in segment_files(self._dir)]

    def verify(self) -> VerifyReport:
        """Check every header and record checksum and report; modifies nothing."""
        infos = tuple(self.segments())
        gaps = []
        for prev, cur in pairwise(infos):
            if prev.header is not None and cur.first_index > prev.end_index:
                gaps.append(Gap(start=prev.end_index, stop=cur.first_index))
        return VerifyReport(segments=infos, gaps=tuple(gaps))
