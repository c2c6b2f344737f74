"""The journal's on-disk format: segment names, the segment header and record framing.

A journal is a directory of segment files named ``segment-<first record index, 12 digits>.arj``
(``segment-000000000000.arj``, ``segment-000000184467.arj``, ...). The index of a record is its
position in the whole journal: the segment's first index plus its position in the segment.
Other files in the directory (the writer's ``LOCK`` file, quarantine files
``<segment>.corrupted.<ns timestamp>``) are not segments and are never read as such.

Segment layout, all integers little-endian::

    offset  size      field
    0       4         magic b"ARBJ"
    4       2         format version (u16)   framing described here; currently 1
    6       2         schema version (u16)   message schema generation of the payloads; starts at 1
    8       4         info length N (u32)
    12      N         info: msgpack map {"run_id": str, "created_ns": int}
    12+N    4         CRC32 (zlib.crc32) of bytes 0 .. 12+N
    16+N    ...       records, back to back, up to the end of the file

    record:
    0       4         payload length L (u32), L >= 1
    4       4         CRC32 (zlib.crc32) of the payload
    8       L         payload, opaque to this layer

The header checksum tells a damaged header (quarantined) from one written by a newer program
(refused, never touched); for that, the first 12 bytes and the trailing header checksum keep
their places in every future format version. Empty payloads are not allowed, so a zero-filled
tail, which some file systems leave after a power failure, is seen as damage rather than as a
run of empty records. A record's checksum covers its payload only; a damaged length prefix
shows up as a checksum mismatch or a length past the end of the file.

There is no resynchronisation marker: after a bad record (torn length prefix, a length that
runs past the end of the file, or a checksum mismatch) nothing later in that segment can be
trusted to start on a record boundary, so everything from the bad record to the end of the
segment is damage. Repair moves those bytes to a quarantine file; later segments are unaffected.

Record indices are never renumbered: a range cut from the middle of the journal shows as a gap
(``JournalReader.verify().gaps``). A segment whose header is damaged is quarantined whole, since
its records cannot be located; if it was the last segment, the writer continues right after
the segment before it, so that quarantine file and the new segment hold the same indices.
"""

from __future__ import annotations

import re
import struct
import zlib
from collections.abc import Generator

import attrs
import msgpack
from arbor.messages.journal.errors import CorruptJournal, UnsupportedJournal

MAGIC = b"ARBJ"
FORMAT_VERSION = 1
SCHEMA_VERSION = 2  # 2: DERIVED_INPUT records; the run metadata names the message types not journaled
MAX_INFO_BYTES = 64 * 1024
MAX_RECORD_BYTES = 0xFFFF_FFFF

SEGMENT_SUFFIX = ".arj"
_SEGMENT_NAME = re.compile(r"^segment-(\d{12})\.arj$")

_FIXED = struct.Struct("<4sHHI")  # magic, format version, schema version, info length
_CRC = struct.Struct("<I")
FRAME = struct.Struct("<II")  # payload length, payload crc32
FRAME_SIZE = FRAME.size

# Damage a writer in progress (or a crash mid-write) leaves at the end of a file.
TORN_REASONS = frozenset({"short_length_prefix", "length_past_end", "torn_header"})


def segment_name(first_index: int) -> str:
    """File name of the segment whose first record has index ``first_index``."""
    if not 0 <= first_index < 10**12:
        raise ValueError(f"record index out of range for a segment name: {first_index}")
    return f"segment-{first_index:012d}{SEGMENT_SUFFIX}"


def parse_segment_name(name: str) -> int | None:
    """The first record index encoded in a segment file name, or None for any other file."""
    m = _SEGMENT_NAME.match(name)
    return int(m.group(1)) if m else None


@attrs.frozen(kw_only=True, slots=True)
class SegmentHeader:
    format_version: int
    schema_version: int
    run_id: str
    created_ns: int


@attrs.frozen(kw_only=True, slots=True)
class Damage:
    """Where the good part of a segment ends and why: ``offset`` is the first bad byte."""

    offset: int
    reason: str

    @property
    def torn(self) -> bool:
        """Damage a crash mid-write leaves (as opposed to bytes that changed after writing)."""
        return self.reason in TORN_REASONS


class BadHeader(CorruptJournal):
    """A segment header that is torn or damaged."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def encode_header(header: SegmentHeader) -> bytes:
    """The bytes a segment starts with."""
    info: bytes = msgpack.packb({"run_id": header.run_id, "created_ns": header.created_ns}, use_bin_type=True)
    head = _FIXED.pack(MAGIC, header.format_version, header.schema_version, len(info)) + info
    return head + _CRC.pack(zlib.crc32(head))


def decode_header(
    buf: bytes | memoryview, *, max_schema_version: int = SCHEMA_VERSION
) -> tuple[SegmentHeader, int]:
    """``(header, header length)`` of a segment's bytes.

    Raises BadHeader (``reason == "torn_header"`` when the file ends inside the header) or
    UnsupportedJournal for a well-formed header from a newer format or schema.
    """
    size = len(buf)
    if size < _FIXED.size:
        raise BadHeader("torn_header")
    magic, fmt, schema, info_len = _FIXED.unpack_from(buf, 0)
    if magic != MAGIC:
        raise BadHeader("bad_magic")
    if info_len > MAX_INFO_BYTES:
        raise BadHeader("bad_info_length")
    end = _FIXED.size + info_len
    if size < end + _CRC.size:
        raise BadHeader("torn_header")
    (crc,) = _CRC.unpack_from(buf, end)
    if zlib.crc32(buf[:end]) != crc:
        raise BadHeader("header_crc_mismatch")
    if fmt > FORMAT_VERSION:
        raise UnsupportedJournal(f"segment format version {fmt} is newer than this reader's {FORMAT_VERSION}")
    if schema > max_schema_version:
        raise UnsupportedJournal(f"schema version {schema} is newer than this reader's {max_schema_version}")
    if fmt < 1 or schema < 1:
        raise BadHeader("bad_version")
    try:
        info = msgpack.unpackb(bytes(buf[_FIXED.size : end]), raw=False)
    except Exception:
        raise BadHeader("bad_info") from None
    if not (isinstance(info, dict) and isinstance(info.get("run_id"), str) and type(info.get("created_ns")) is int):
        raise BadHeader("bad_info")
    header = SegmentHeader(
        format_version=fmt, schema_version=schema, run_id=info["run_id"], created_ns=info["created_ns"]
    )
    return header, end + _CRC.size


def iter_frames(buf: memoryview, offset: int, damage: list[Damage]) -> Generator[tuple[int, int], None, None]:
    """``(start, stop)`` of each good payload from ``offset`` on; appends the first Damage and stops there."""
    end = len(buf)
    unpack = FRAME.unpack_from
    crc32 = zlib.crc32
    while offset < end:
        if end - offset < FRAME_SIZE:
            damage.append(Damage(offset=offset, reason="short_length_prefix"))
            return
        length, crc = unpack(buf, offset)
        start = offset + FRAME_SIZE
        stop = start + length
        if length == 0:
            damage.append(Damage(offset=offset, reason="zero_length"))
            return
        if stop > end:
            damage.append(Damage(offset=offset, reason="length_past_end"))
            return
        if crc32(buf[start:stop]) != crc:
            damage.append(Damage(offset=offset, reason="crc_mismatch"))
            return
        yield start, stop
        offset = stop
