"""Opening a journal for replay: check it, repair what can be repaired, or say why it cannot be read."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from arbor.messages.journal import JournalLocked, JournalReader, RepairReport, SegmentInfo, repair
from arbor.messages.journal.format import SEGMENT_SUFFIX
from loguru import logger


class UnreadableJournal(Exception):
    """A journal that cannot be replayed: missing, unrepairable, locked while damaged, or without metadata."""


def open_for_replay(directory: Path | str, *, allow_repair: bool = True,
                    notes: list[str] | None = None) -> tuple[JournalReader, RepairReport | None]:
    """A reader on ``directory`` after cutting and quarantining any damage (see ``messages.journal.repair``).

    A torn tail on the last segment of a journal still being written is read up to the last good
    record without repair; other damage under a live writer, or with ``allow_repair=False``, is
    unreadable. A tail read past (never silently: it is logged, and said in ``notes`` when given)
    may also be a length prefix damaged after writing; ``bin/journal verify`` tells its size.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise UnreadableJournal(f"{directory}: no such journal directory")
    reader = JournalReader(directory)
    report = reader.verify()
    if not report.segments:
        raise UnreadableJournal(f"{directory}: no journal segments")
    unsupported = [s for s in report.segments if s.unsupported]
    if unsupported:
        raise UnreadableJournal(f"{unsupported[0].path.name}: {unsupported[0].unsupported}")
    if report.ok:
        return reader, None
    last_damage = report.segments[-1].damage
    only_torn_tail = all(s.damage is None for s in report.segments[:-1]) and last_damage is not None and last_damage.torn
    if only_torn_tail and last_damage is not None:
        last = report.segments[-1]
        note = (f"{last.path.name}: read up to byte {last_damage.offset}, where a record runs past the end "
                f"({last_damage.reason}): a crash mid-write or a writer still running; the "
                f"{last.size_bytes - last_damage.offset:,} bytes after it are not replayed")
    if not allow_repair:
        if only_torn_tail:
            _torn_tail(note, notes)
            return reader, None
        raise UnreadableJournal(f"{directory}: damaged ({_describe(report.damaged)}); run bin/journal repair")
    try:
        repaired = repair(directory)
    except JournalLocked:
        if only_torn_tail:
            _torn_tail(note, notes)
            return reader, None  # a live writer's unfinished record
        raise UnreadableJournal(f"{directory}: damaged ({_describe(report.damaged)}) and open by a writer") from None
    for q in repaired.quarantined:
        logger.bind(event_type="replay_journal_repaired").warning(
            "replay: quarantined {} bytes of {} ({}) to {}", q.bytes_moved, q.segment.name, q.reason,
            q.quarantine_path.name)
    if repaired.unsupported:
        raise UnreadableJournal(f"{directory}: segments from a newer program")
    return reader, repaired


def node_journals(directory: Path | str) -> list[Path]:
    """The journals under ``directory``: itself, or, for a multi-process run (no segment of its own),
    each node's (``<run_id>/coordinator``, ``<run_id>/worker-K``), in name order."""
    directory = Path(directory)
    if not directory.is_dir() or any(directory.glob(f"segment-*{SEGMENT_SUFFIX}")):
        return [directory]
    nodes = sorted(d for d in directory.iterdir() if d.is_dir() and any(d.glob(f"segment-*{SEGMENT_SUFFIX}")))
    return nodes or [directory]


def _torn_tail(note: str, notes: list[str] | None) -> None:
    logger.bind(event_type="replay_journal_torn_tail").warning("replay: {}", note)
    if notes is not None:
        notes.append(note)


def _describe(damaged: Iterable[SegmentInfo]) -> str:
    return ", ".join(f"{s.path.name}: {d.reason} at byte {d.offset}" for s in damaged if (d := s.damage) is not None)
