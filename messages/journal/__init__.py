"""The append-only message journal: segmented, checksummed, repairable. See ``format`` for the bytes."""

from messages.journal.errors import CorruptJournal, JournalClosed, JournalError, JournalLocked, UnsupportedJournal
from messages.journal.format import FORMAT_VERSION, SCHEMA_VERSION, Damage, SegmentHeader, segment_name
from messages.journal.reader import Gap, JournalReader, Record, VerifyReport
from messages.journal.records import RecordKind, decode_record, encode_record
from messages.journal.repair import Quarantine, RepairReport, repair
from messages.journal.scan import SegmentInfo
from messages.journal.writer import Durability, JournalWriter

__all__ = [
    "CorruptJournal",
    "Damage",
    "Durability",
    "FORMAT_VERSION",
    "Gap",
    "JournalClosed",
    "JournalError",
    "JournalLocked",
    "JournalReader",
    "JournalWriter",
    "Quarantine",
    "Record",
    "RecordKind",
    "RepairReport",
    "SCHEMA_VERSION",
    "SegmentHeader",
    "SegmentInfo",
    "UnsupportedJournal",
    "VerifyReport",
    "decode_record",
    "encode_record",
    "repair",
    "segment_name",
]
