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
import os
import re
from bisect import bisect_left
from collections.abc import Iterable, Iterator
from operator import itemgetter
from pathlib import Path

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


_CHUNK = 1 << 22  # decompressed bytes per read: lines are split in bulk, a block at a time
_NOT_A_SYMBOL = ""


def read_hbt(path: str | os.PathLike[str], symbol: str | None = None) -> Iterator[Recorded]:
    """Yield ``(receive ns, SYMBOL, payload)`` for every line of an HBT file, in file order.

    The symbol of an enveloped frame is read from its stream name (``"btcusdt@trade"`` ->
    ``"BTCUSDT"``) without parsing the JSON; a line without that envelope gets ``symbol``, or
    failing that the symbol in the file name. The payload is the line's bytes after the first
    space, without the trailing newline, otherwise untouched.
    """
    for block in _blocks(path, symbol, check_order=False):
        yield from block


def _blocks(path: str | os.PathLike[str], symbol: str | None, check_order: bool,
            chunk_bytes: int = _CHUNK) -> Iterator[list[Recorded]]:
    """The file's records, a decompressed block at a time (lines split in bulk, stream names cached)."""
    fallback = symbol.upper() if symbol else symbol_from_file_name(path)
    prefix = _ENVELOPE_PREFIX
    prefix_len = len(prefix)
    names: dict[bytes, str] = {}  # stream name -> SYMBOL, or _NOT_A_SYMBOL
    last = -1
    line_no = 0
    rest = b""
    with gzip.open(path, "rb") as fh:
        while True:
            chunk = fh.read(chunk_bytes)
            if chunk:
                lines = (rest + chunk).split(b"\n")
                rest = lines.pop()
            elif rest:
                lines, rest = [rest], b""
            else:
                return
            out: list[Recorded] = []
            append = out.append
            for line in lines:
                line_no += 1
                head, sep, payload = line.partition(b" ")
                if not sep or not head.isdigit():  # isdigit on bytes: ASCII digits only, no sign
                    raise RecordingFormatError(f"{path}:{line_no}: expected '<receive ns> <payload>', got {line[:80]!r}")
                line_symbol = fallback
                if payload.startswith(prefix):
                    at = payload.find(b"@", prefix_len, prefix_len + 41)
                    if at > 0:
                        stream = payload[prefix_len:at]
                        name = names.get(stream)
                        if name is None:
                            ok = _STREAM_SYMBOL.fullmatch(stream)
                            name = names[stream] = stream.decode("ascii").upper() if ok else _NOT_A_SYMBOL
                        if name:
                            line_symbol = name
                if line_symbol is None:
                    raise RecordingFormatError(
                        f"{path}:{line_no}: no stream name in the line, no symbol given and none in the file name"
                    )
                ts = int(head)
                if ts < last and check_order:
                    raise RecordingFormatError(f"{path}: receive time goes backwards ({ts} after {last})")
                last = ts
                append((ts, line_symbol, payload))
            if out:
                yield out


def merge_recordings(paths: Iterable[str | os.PathLike[str]], *, chunk_bytes: int = _CHUNK) -> Iterator[Recorded]:
    """Yield the lines of several HBT files in receive-time order (ties: earlier file first).

    Each file must be in receive-time order itself; a line that goes back in time raises
    ``RecordingFormatError`` instead of silently breaking the merge order. The merge works a
    block at a time: every record before the earliest block end among the files is taken, and a
    stable sort of those (already sorted runs, so a linear merge in C) keeps file order on ties.
    Records at exactly that time wait until every file still being read has moved past it.
    """
    sources = [_blocks(p, None, check_order=True, chunk_bytes=chunk_bytes) for p in paths]
    if len(sources) == 1:
        for whole in sources[0]:
            yield from whole
        return
    key = itemgetter(0)
    buffers: list[list[Recorded]] = [[] for _ in sources]
    done = [False] * len(sources)
    while True:
        for i, src in enumerate(sources):  # a file still being read needs something buffered
            while not done[i] and not buffers[i]:
                block = next(src, None)
                if block is None:
                    done[i] = True
                else:
                    buffers[i] = block
        open_ends = [buf[-1][0] for i, buf in enumerate(buffers) if not done[i]]
        if not open_ends:
            taken = [rec for buf in buffers for rec in buf]
            taken.sort(key=key)
            yield from taken
            return
        # Records before the earliest last-buffered time of a file still being read are final.
        watermark = min(open_ends)
        taken = []
        for i, buf in enumerate(buffers):
            cut = bisect_left(buf, watermark, key=key)
            if cut:
                taken += buf[:cut]
                buffers[i] = buf[cut:]
        if taken:
            taken.sort(key=key)
            yield from taken
        for i, src in enumerate(sources):  # files whose buffer ends at the watermark read on
            if not done[i] and buffers[i][-1][0] == watermark:
                block = next(src, None)
                if block is None:
                    done[i] = True
                else:
                    buffers[i] = buffers[i] + block
