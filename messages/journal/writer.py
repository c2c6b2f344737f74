"""Appending records to a journal, with a chosen durability policy.

Runs on whichever single thread owns the writer; it is not thread-safe, and a directory lock
keeps a second writer (in this or another process) out of the same journal.
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO, Literal

import attrs
from arbor.messages.journal.errors import JournalClosed, UnsupportedJournal
from arbor.messages.journal.format import (
    FORMAT_VERSION,
    FRAME,
    FRAME_SIZE,
    MAX_RECORD_BYTES,
    SCHEMA_VERSION,
    SegmentHeader,
    encode_header,
    segment_name,
)
from arbor.messages.journal.lock import DirectoryLock
from arbor.messages.journal.repair import RepairReport, repair_locked
from loguru import logger

MiB = 1024 * 1024

DurabilityMode = Literal["every_record", "interval", "rotation"]


@attrs.frozen(kw_only=True, slots=True)
class Durability:
    """When appended records are forced to stable storage (fsync), and what a crash can cost.

    The writer buffers appends in process memory (``buffer_bytes``) and hands them to the OS
    in large writes. A *process crash* loses what is still in that buffer; a *power failure*
    (or kernel crash) also loses what the OS had not yet written to disk. Either way only a
    tail is lost: records are never reordered, and repair cuts a torn last record.

    - ``"every_record"``: write and fsync before ``append`` returns. Nothing acknowledged is
      ever lost, at the price of one write and one fsync per record (bounded by the disk's
      flush latency: hundreds to thousands of records per second on real disks).
    - ``"interval"``: write and fsync when an append finds ``interval_ms`` or more passed
      since the last sync (on the injected clock), and on ``sync_if_due``, ``flush``, rotation
      and close. A crash of either kind loses at most the records appended since the last
      sync: about ``interval_ms`` of traffic while appends keep coming. A writer that goes
      quiet holds its tail until the next append or ``sync_if_due`` (drive it from a timer).
    - ``"rotation"``: fsync only when a segment is finished and on close. A process crash
      loses at most ``buffer_bytes``; a power failure can lose the whole unsynced part of the
      current segment (up to ``segment_bytes``). Closed segments are always durable.
    """

    mode: DurabilityMode = attrs.field(validator=attrs.validators.in_(("every_record", "interval", "rotation")))
    interval_ms: int = attrs.field(default=100, validator=attrs.validators.gt(0))


_EVERY, _INTERVAL = "every_record", "interval"


class JournalWriter:
    """Appends opaque payloads to a segmented journal directory.

    Opening a directory that already holds segments first repairs it (see ``repair``) and then
    continues after the last good record, always in a new segment. A header-only last segment
    (no records) is removed first so its name can be reused. A segment is rotated when the
    next record would take it past ``segment_bytes``; a record bigger than that gets a segment
    of its own. ``fsync`` is called with a file descriptor (of a segment, or of the directory
    after a segment is created); tests inject a counting one.

    ``repair_report`` tells what opening had to repair. An I/O error while appending closes
    the writer (the error is raised); reopening repairs whatever tail it left.
    """

    def __init__(
        self,
        directory: Path | str,
        *,
        run_id: str,
        durability: Durability,
        clock_ns: Callable[[], int],
        segment_bytes: int = 64 * MiB,
        buffer_bytes: int = 1 * MiB,
        schema_version: int = SCHEMA_VERSION,
        fsync: Callable[[int], None] = os.fsync,
    ) -> None:
        if segment_bytes <= 0:
            raise ValueError("segment_bytes must be positive")
        self._dir = Path(directory)
        self._run_id = run_id
        self._mode = durability.mode
        self._interval_ns = durability.interval_ms * 1_000_000
        self._clock_ns = clock_ns
        self._segment_bytes = segment_bytes
        self._buffer_bytes = buffer_bytes
        self._schema_version = schema_version
        self._fsync = fsync

        self._file: BinaryIO | None = None
        self._path: Path | None = None
        self._seg_bytes = 0
        self._seg_records = 0
        self._dirty = False
        self._closed = False

        self._dir.mkdir(parents=True, exist_ok=True)
        self._lock = DirectoryLock(self._dir)
        self._lock.acquire()
        try:
            self.repair_report = repair_locked(
                self._dir, clock_ns=clock_ns, fsync=fsync, max_schema_version=schema_version
            )
            self._next_index = self._resume_index(self.repair_report)
        except BaseException:
            self._lock.release()
            raise
        self._last_sync_ns = clock_ns()
        logger.bind(event_type="journal_opened", directory=str(self._dir), next_index=self._next_index).info(
            "journal {} open for append at record {}", self._dir, self._next_index
        )

    def _resume_index(self, report: RepairReport) -> int:
        if report.unsupported:
            names = ", ".join(s.path.name for s in report.unsupported)
            raise UnsupportedJournal(f"journal {self._dir} has segments this program cannot append after: {names}")
        if not report.segments:
            return 0
        last = report.segments[-1]
        if last.record_count == 0:
            # Only a header: nothing to lose, and a new segment will need its name.
            last.path.unlink()
            logger.bind(event_type="journal_empty_segment_removed", segment=str(last.path)).info(
                "journal: removed header-only segment {}", last.path.name
            )
        return last.end_index

    # -- public ------------------------------------------------------------------------------
    @property
    def next_index(self) -> int:
        """Index the next appended record will get."""
        return self._next_index

    @property
    def directory(self) -> Path:
        return self._dir

    def append(self, payload: bytes) -> int:
        """Append one record and return its index in the journal."""
        if self._closed:
            raise JournalClosed(f"journal {self._dir} is closed")
        n = len(payload)
        if n == 0 or n > MAX_RECORD_BYTES:
            raise ValueError(f"a record payload is 1..{MAX_RECORD_BYTES} bytes, got {n}")
        try:
            if self._file is None:
                self._start_segment()
            elif self._seg_bytes + FRAME_SIZE + n > self._segment_bytes and self._seg_records:
                self._finish_segment()
                self._start_segment()
            f = self._file
            f.write(FRAME.pack(n, zlib.crc32(payload)))  # type: ignore[union-attr]  # _start_segment opened it
            f.write(payload)  # type: ignore[union-attr]  # (no None check on the per-record path)
            self._seg_bytes += FRAME_SIZE + n
            self._seg_records += 1
            self._dirty = True
            index = self._next_index
            self._next_index = index + 1
            mode = self._mode
            if mode == _EVERY:
                self._sync()
            elif mode == _INTERVAL:
                now = self._clock_ns()
                if now - self._last_sync_ns >= self._interval_ns:
                    self._sync(now)
        except BaseException as exc:
            self._fail(exc)
            raise
        return index

    def sync_if_due(self) -> None:
        """Under the interval policy, sync now if ``interval_ms`` has passed since the last sync."""
        if self._mode == _INTERVAL and self._dirty:
            now = self._clock_ns()
            if now - self._last_sync_ns >= self._interval_ns:
                self._sync(now)

    def write_through(self) -> None:
        """Hand every record appended so far to the OS (no fsync): a process kill (SIGKILL) can no
        longer lose them, a power failure still can under the "interval" and "rotation" policies.
        One write(2) of what is buffered; a no-op when nothing is."""
        if self._closed:
            raise JournalClosed(f"journal {self._dir} is closed")
        if self._file is not None:
            try:
                self._file.flush()
            except BaseException as exc:
                self._fail(exc)
                raise

    def flush(self) -> None:
        """Make every record appended so far durable (write and fsync), whatever the policy."""
        if self._dirty:
            self._sync()

    def close(self) -> None:
        """Flush, fsync and release the journal; closing twice is harmless."""
        if self._closed:
            return
        self._closed = True
        try:
            if self._file is not None:
                self._finish_segment()
        finally:
            self._lock.release()

    def _fail(self, exc: BaseException) -> None:
        # The buffer may now end inside a record: stop appending, let the next open repair it.
        self._closed = True
        logger.bind(event_type="journal_write_failed", directory=str(self._dir), next_index=self._next_index).error(
            "journal {} failed while appending ({!r}); closed, reopen to repair", self._dir, exc
        )
        try:
            if self._file is not None:
                self._file.close()
        except OSError:
            pass  # the original error is the one that matters; it is being raised
        finally:
            self._file = None
            self._lock.release()

    def __enter__(self) -> JournalWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- segments ----------------------------------------------------------------------------
    def _start_segment(self) -> None:
        path = self._dir / segment_name(self._next_index)
        header = SegmentHeader(
            format_version=FORMAT_VERSION,
            schema_version=self._schema_version,
            run_id=self._run_id,
            created_ns=self._clock_ns(),
        )
        f = open(path, "xb", buffering=self._buffer_bytes)  # noqa: SIM115 -- the open segment; rotation and close() close it
        head = encode_header(header)
        f.write(head)
        self._file, self._path = f, path
        self._seg_bytes, self._seg_records = len(head), 0
        self._dirty = True
        # make the new file's directory entry durable, or a synced segment could vanish
        fd = os.open(self._dir, os.O_RDONLY)
        try:
            self._fsync(fd)
        finally:
            os.close(fd)
        logger.bind(event_type="journal_segment_started", segment=str(path), first_index=self._next_index).debug(
            "journal segment {} started", path.name
        )

    def _finish_segment(self) -> None:
        f = self._file
        assert f is not None
        if self._dirty:
            self._sync()
        f.close()
        self._file = None

    def _sync(self, now: int | None = None) -> None:
        f = self._file
        assert f is not None
        f.flush()
        self._fsync(f.fileno())
        self._dirty = False
        self._last_sync_ns = self._clock_ns() if now is None else now
