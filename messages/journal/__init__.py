"""The append-only message journal: segmented, checksummed, repairable. See ``format`` for the bytes."""

from arbor.messages.journal.errors import CorruptJournal, JournalClosed, JournalError, JournalLocked, UnsupportedJournal
from arbor.messages.journal.format import FORMAT_VERSION, SCHEMA_VERSION, Damage, SegmentHeader, segment_name
from arbor.messages.journal.reader import Gap, JournalReader, Record, VerifyReport
from arbor.messages.journal.records import (
    Entry,
    InputRef,
    Output,
    RecordKind,
    RunStopped,
    decode_entry,
    decode_record,
    encode_derived_input,
    encode_external,
    encode_input,
    encode_output,
    encode_record,
    encode_run_started,
    encode_run_stopped,
    entry_from_primitive,
    unpack_record,
)
from arbor.messages.journal.repair import Quarantine, RepairReport, repair
from arbor.messages.journal.run import RunMetadata
from arbor.messages.journal.scan import SegmentInfo
from arbor.messages.journal.writer import Durability, JournalWriter

__all__ = [
    "CorruptJournal",
    "Damage",
    "Durability",
    "Entry",
    "FORMAT_VERSION",
    "Gap",
    "InputRef",
    "JournalClosed",
    "JournalError",
    "JournalLocked",
    "JournalReader",
    "JournalWriter",
    "Output",
    "Quarantine",
    "Record",
    "RecordKind",
    "RepairReport",
    "RunMetadata",
    "RunStopped",
    "SCHEMA_VERSION",
    "SegmentHeader",
    "SegmentInfo",
    "UnsupportedJournal",
    "VerifyReport",
    "decode_entry",
    "decode_record",
    "encode_derived_input",
    "encode_external",
    "encode_input",
    "encode_output",
    "encode_record",
    "encode_run_started",
    "encode_run_stopped",
    "entry_from_primitive",
    "repair",
    "segment_name",
    "unpack_record",
]
