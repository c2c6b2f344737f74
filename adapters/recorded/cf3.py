"""Recordings in the cryptofeed v3 format (CF3), read back as venue payloads.

One gzip file of JSON lines, each with a type ``t``: ``header`` (exchange, config, recording
time), ``http`` (``url`` and the raw response body ``data``), ``connect`` (websocket ``addr``),
``send`` (frames we sent: subscriptions) and ``recv`` (``ts`` = local receive time in float
seconds, ``data`` = the raw frame text). Only ``recv`` frames and depth-snapshot ``http`` bodies
are market data; the rest is context and is skipped.

The symbol of a frame comes from its combined-stream name (``"sushiusdt@depth@100ms"``) or,
for a bare frame, from the data's ``"s"``; a depth snapshot's symbol is the ``symbol=`` query
parameter of its URL. A ``recv`` frame with neither is a ``RecordingFormatError``: routing it to
an invented symbol would hide it.

Receive times are float seconds in the file: they become integer ns by exact decimal arithmetic
on the number's text (``1626992741.06217`` -> ``1626992741062170000``), not through a float
multiply that would shift the last digits.
"""

from __future__ import annotations

import gzip
import json
import os
from collections.abc import Iterator
from decimal import Decimal
from urllib.parse import parse_qs, urlsplit

from arbor.adapters.recorded.hbt import Recorded, RecordingFormatError

_DEPTH_PATHS = ("/fapi/v1/depth", "/api/v3/depth", "/dapi/v1/depth")
_NS = Decimal(1_000_000_000)


def read_cf3(path: str | os.PathLike[str]) -> Iterator[Recorded]:
    """Yield ``(receive ns, SYMBOL, payload)`` for every recv frame and depth snapshot, in file order."""
    with gzip.open(path, "rb") as lines:
        for line_no, line in enumerate(lines, 1):
            try:
                record = json.loads(line, parse_float=Decimal)
            except ValueError as exc:
                raise RecordingFormatError(f"{path}:{line_no}: not a JSON line: {exc}") from None
            kind = record.get("t") if type(record) is dict else None
            if kind == "recv":
                raw = _text(record, path, line_no)
                yield _ns(record, path, line_no), _frame_symbol(raw, path, line_no), raw
            elif kind == "http":
                url = urlsplit(str(record.get("url", "")))
                if url.path not in _DEPTH_PATHS:
                    continue  # exchangeInfo and friends: reference data, not market data
                symbols = parse_qs(url.query).get("symbol")
                if not symbols:
                    raise RecordingFormatError(f"{path}:{line_no}: depth snapshot URL without a symbol")
                yield _ns(record, path, line_no), symbols[0].upper(), _text(record, path, line_no)
            elif kind not in ("header", "connect", "send", "disconnect"):
                raise RecordingFormatError(f"{path}:{line_no}: unknown record type {kind!r}")


def _ns(record: dict, path: object, line_no: int) -> int:
    ts = record.get("ts")
    if not isinstance(ts, (Decimal, int)) or isinstance(ts, bool) or ts < 0:
        raise RecordingFormatError(f"{path}:{line_no}: 'ts' must be non-negative seconds, got {ts!r}")
    return int(ts * _NS)


def _text(record: dict, path: object, line_no: int) -> bytes:
    data = record.get("data")
    if type(data) is not str:
        raise RecordingFormatError(f"{path}:{line_no}: 'data' must be the raw frame text")
    return data.encode()


def _frame_symbol(raw: bytes, path: object, line_no: int) -> str:
    try:
        frame = json.loads(raw)
    except ValueError:
        frame = None
    if type(frame) is dict:
        stream = frame.get("stream")
        if type(stream) is str and "@" in stream:
            return stream.partition("@")[0].upper()
        data = frame.get("data", frame)
        if type(data) is dict and type(data.get("s")) is str:
            return data["s"].upper()
    raise RecordingFormatError(f"{path}:{line_no}: recv frame names no symbol (no stream name, no 's')")
