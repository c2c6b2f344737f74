"""Recordings in the hftbacktest (HBT) collector format, read back as venue payloads.

One gzip text file, one line per message: ``<local receive time, ns since epoch> <raw websocket
text exactly as received>``. Websocket frames are in Binance's combined-stream envelope
``{"stream": "btcusdt@trade", "data": {...}}``; the REST depth snapshot written right after
connecting has no envelope.

Malformed lines: a line whose receive time is missing or not an integer is an error
(``RecordingFormatError`` naming the file and line), not a payload. It cannot be given a receive
time without inventing one, and a frame with an invented time would decode cleanly and pass
unnoticed. A line with a good time and a bad payload is yielded unchanged: the collector turns it
into a ``DecodeFailure``.
"""

from __future__ import annotations

import gzip
import heapq
import os
import re
from pathlib import Path
from typing import Iterable, Iterator

Recorded = tuple[int, str, bytes]  # (local receive ns, SYMBOL, raw payload)

_ENVELOPE_PREFIX = b'{"stream":"'
_STREAM_SYMBOL = re.compile(rb"[a-z0-9]{1,40}")
_FILE_SYMBOL = re.compile(r"(?:.*_)?([A-Za-z0-9]+)_\d{8}")


class RecordingFormatError(ValueError):
    """A recording line that cannot be read as ``<receive ns> <payload>``, or out of time order."""


def symbol_from_file_name(path: str | os.PathLike[str]) -> str | None:
    """``usdm_btcusdt_20240808.gz`` -> ``"BTCUSDT"``; ``None`` when the name has no such pattern."""
    name = Path(path).name
    for suffix in (".gz", ".jsonl", ".txt"):
        name = name.removesuffix(suffix)
    match = _FILE_SYMBOL.fullmatch(name)
    return match.group(1).upper() if match else None


def read_hbt(path: str | os.PathLike[str], symbol: str | None = None) -> Iterator[Recorded]:
    """Yield ``(receive ns, SYMBOL, payload)`` for every line of an HBT file, in file order.

    The symbol of an enveloped frame is read from its stream name (``"btcusdt@trade"`` ->
    ``"BTCUSDT"``) without parsing the JSON; a line without that envelope gets ``symbol``, or
    failing that the symbol in the file name. The payload is the line's bytes after the first
    space, without the trailing newline, otherwise untouched.
    """
    fallback = symbol.upper() if symbol else symbol_from_file_name(path)
    prefix_len = len(_ENVELOPE_PREFIX)
    with gzip.open(path, "rb") as lines:
        for line_no, line in enumerate(lines, 1):
            if line.endswith(b"\n"):
                line = line[:-1]
            head, sep, payload = line.partition(b" ")
            if not sep or not head.isdigit():  # isdigit on bytes: ASCII digits only, no sign
                raise RecordingFormatError(f"{path}:{line_no}: expected '<receive ns> <payload>', got {line[:80]!r}")
            line_symbol = None
            if payload.startswith(_ENVELOPE_PREFIX):
                at = payload.find(b"@", prefix_len, prefix_len + 41)
                if at > 0 and _STREAM_SYMBOL.fullmatch(payload, prefix_len, at):
                    line_symbol = payload[prefix_len:at].decode("ascii").upper()
            if line_symbol is None:
                if fallback is None:
                    raise RecordingFormatError(
                        f"{path}:{line_no}: no stream name in the line, no symbol given and none in the file name"
                    )
                line_symbol = fallback
            yield int(head), line_symbol, payload


def merge_recordings(paths: Iterable[str | os.PathLike[str]]) -> Iterator[Recorded]:
    """Yield the lines of several HBT files in receive-time order (ties: earlier file first).

    Each file must be in receive-time order itself; a line that goes back in time raises
    ``RecordingFormatError`` instead of silently breaking the merge order.
    """
    return heapq.merge(*(_in_time_order(p) for p in paths), key=lambda rec: rec[0])


def _in_time_order(path: str | os.PathLike[str]) -> Iterator[Recorded]:
    last = -1
    for rec in read_hbt(path):
        if rec[0] < last:
            raise RecordingFormatError(f"{path}: receive time goes backwards ({rec[0]} after {last})")
        last = rec[0]
        yield rec
