"""What a recording is: its file format, venue, market and symbols, read from the recording itself.

A recording names its market in its own frames, so nothing has to be configured (and nothing
configured can silently contradict it):

- **CF3**: the header line's ``exchange`` (``BINANCE`` spot, ``BINANCE_FUTURES`` USD-M,
  ``BINANCE_DELIVERY`` COIN-M).
- **HBT**: the frames themselves. Binance combined-stream envelopes: a stream symbol with an
  underscore (``btcusd_perp``, ``btcusd_240927``) is COIN-M; futures-only events (``markPriceUpdate``,
  ``forceOrder``, a ``pu`` in a depth update, an ``e`` in a bookTicker, a trade's ``X``) are USD-M;
  spot events lack them (a bookTicker without ``e``, a depth update without ``pu``, a trade with
  ``M``). The REST snapshot: ``E``/``T`` is USD-M, ``pair`` COIN-M, neither spot. A
  ``{"channel": ...}`` frame is Hyperliquid.

Only the first ``SCAN_LINES`` lines are read. Binance COIN-M is refused (contract quantities and
inverse PnL are not modelled: read as USD-M, 4 contracts would become 4 BTC). Anything that is not
a gzip file of one of these is refused with ``UnsupportedRecording`` naming the file and what is
supported.
"""

from __future__ import annotations

import gzip
import json
import os
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import attrs
from arbor.adapters.recorded.hbt import symbol_from_file_name

SCAN_LINES = 2_000
SUPPORTED = ("binance_usdm", "binance_spot", "hyperliquid")
MARKET_NAMES = {
    "binance_usdm": "Binance USD-M futures",
    "binance_spot": "Binance spot",
    "hyperliquid": "Hyperliquid",
    "binance_coinm": "Binance COIN-M futures",
}
SUPPORTED_TEXT = ("gzip HBT (<receive ns> <frame> lines) or CF3 (cryptofeed v3 JSON lines) recordings of "
                  + ", ".join(MARKET_NAMES[v] for v in SUPPORTED))
_CF3_EXCHANGES = {"BINANCE": "binance_spot", "BINANCE_FUTURES": "binance_usdm", "BINANCE_DELIVERY": "binance_coinm"}
_MAGIC = {b"PK\x03\x04": "a zip archive", b"\x28\xb5\x2f\xfd": "zstd-compressed", b"BZh": "bzip2-compressed",
          b"\xfd7zXZ": "xz-compressed"}


class UnsupportedRecording(ValueError):
    """A file that is not a recording this reader supports; the message names the file and what is."""


@attrs.frozen(kw_only=True)
class RecordingInfo:
    """One recording: ``format`` "hbt" or "cf3", the venue it is of and the symbols it carries."""

    path: str
    format: str
    venue: str
    symbols: tuple[str, ...]


def detect_recording(path: str | os.PathLike[str]) -> RecordingInfo:
    """Read the head of ``path`` and say what it is; ``UnsupportedRecording`` when it is none of ``SUPPORTED``."""
    name = str(path)
    lines = _head(name)
    if not lines:
        raise UnsupportedRecording(f"{name}: empty recording; supported: {SUPPORTED_TEXT}")
    first = _json(lines[0])
    if isinstance(first, dict) and first.get("t") == "header":
        exchange = str(first.get("exchange"))
        venue = _CF3_EXCHANGES.get(exchange)
        if venue is None:
            raise UnsupportedRecording(f"{name}: a CF3 recording of exchange {exchange!r}; supported: {SUPPORTED_TEXT}")
        return _checked(RecordingInfo(path=name, format="cf3", venue=venue, symbols=_cf3_symbols(lines)))
    venues: dict[str, None] = {}
    symbols: dict[str, None] = {}
    for line in lines:
        head, sep, payload = line.partition(b" ")
        if not sep or not head.isdigit():
            raise UnsupportedRecording(f"{name}: neither an HBT line ('<receive ns> <frame>') nor a CF3 header: "
                                       f"{line[:60]!r}; supported: {SUPPORTED_TEXT}")
        venue, symbol = _frame_market(_json(payload))
        if venue:
            venues[venue] = None
        if symbol:
            symbols[symbol] = None
    if len(venues) != 1:
        found = ", ".join(MARKET_NAMES[v] for v in venues) or "no frame that names its market"
        raise UnsupportedRecording(f"{name}: cannot tell the market of this recording ({found} in its first "
                                   f"{len(lines)} lines); supported: {SUPPORTED_TEXT}")
    venue = next(iter(venues))
    if venue == "hyperliquid" or not symbols:
        fallback = symbol_from_file_name(name)
        symbols = {fallback: None} if fallback else {}
    return _checked(RecordingInfo(path=name, format="hbt", venue=venue, symbols=tuple(symbols)))


def detect_recordings(paths: Iterable[str | os.PathLike[str]]) -> tuple[str, list[RecordingInfo]]:
    """The one venue of all ``paths`` and each file's info; ``UnsupportedRecording`` if they mix venues."""
    infos = [detect_recording(p) for p in paths]
    venues = {i.venue for i in infos}
    if len(venues) != 1:
        listed = "; ".join(f"{Path(i.path).name}: {MARKET_NAMES[i.venue]}" for i in infos)
        raise UnsupportedRecording(f"recordings of different markets cannot be replayed together ({listed})")
    return venues.pop(), infos


def _checked(info: RecordingInfo) -> RecordingInfo:
    if info.venue not in SUPPORTED:
        raise UnsupportedRecording(
            f"{info.path}: a {MARKET_NAMES[info.venue]} recording is not supported (its quantities are contracts "
            f"and its PnL is inverse, in the base coin; it is never read as USD-M); supported: {SUPPORTED_TEXT}")
    if not info.symbols:
        raise UnsupportedRecording(f"{info.path}: the recording names no symbol (no stream names, none in the file "
                                   f"name such as hyperliquid_btc_20250101.gz)")
    return info


def _head(name: str) -> list[bytes]:
    try:
        with open(name, "rb") as raw:
            magic = raw.read(6)
    except OSError as exc:
        raise UnsupportedRecording(f"{name}: cannot be read: {exc.strerror or exc}") from None
    if not magic.startswith(b"\x1f\x8b"):
        kind = next((k for m, k in _MAGIC.items() if magic.startswith(m)), "not gzip-compressed")
        raise UnsupportedRecording(f"{name}: {kind}; supported: {SUPPORTED_TEXT}")
    lines: list[bytes] = []
    try:
        with gzip.open(name, "rb") as fh:
            for line in _limited(fh):
                lines.append(line.rstrip(b"\r\n"))
    except (OSError, EOFError, zlib.error) as exc:
        if not lines:
            raise UnsupportedRecording(f"{name}: not a readable gzip file ({exc}); supported: {SUPPORTED_TEXT}") from None
    return [line for line in lines if line]


def _limited(fh: Any) -> Iterator[bytes]:
    for i, line in enumerate(fh):
        if i >= SCAN_LINES:
            return
        yield line


def _json(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return None


def _cf3_symbols(lines: list[bytes]) -> tuple[str, ...]:
    from urllib.parse import parse_qs, urlsplit

    out: dict[str, None] = {}
    for line in lines:
        record = _json(line)
        if not isinstance(record, dict):
            continue
        if record.get("t") == "recv" and isinstance(record.get("data"), str):
            stream = _json(record["data"].encode())
            name = stream.get("stream") if isinstance(stream, dict) else None
            if isinstance(name, str) and "@" in name:
                out[name.partition("@")[0].upper()] = None
        elif record.get("t") == "http":
            for symbol in parse_qs(urlsplit(str(record.get("url", ""))).query).get("symbol", []):
                if "/depth" in str(record.get("url", "")):
                    out[symbol.upper()] = None
    return tuple(out)


def _frame_market(frame: Any) -> tuple[str, str]:
    """(venue or "", SYMBOL or "") of one decoded HBT frame."""
    if not isinstance(frame, dict):
        return "", ""
    if "channel" in frame:
        return "hyperliquid", ""
    stream = frame.get("stream")
    if isinstance(stream, str) and "@" in stream:
        symbol = stream.partition("@")[0]
        if "_" in symbol:
            return "binance_coinm", symbol.upper()
        return _binance_event(frame.get("data")), symbol.upper()
    if "lastUpdateId" in frame:  # the REST depth snapshot, no envelope
        if "pair" in frame:
            return "binance_coinm", ""
        return ("binance_usdm" if "E" in frame or "T" in frame else "binance_spot"), ""
    return "", ""


def _binance_event(data: Any) -> str:
    if not isinstance(data, dict):
        return ""
    event = data.get("e")
    if event in ("markPriceUpdate", "forceOrder", "continuous_kline", "ACCOUNT_UPDATE"):
        return "binance_usdm"
    if event == "depthUpdate":
        return "binance_usdm" if "pu" in data else "binance_spot"
    if event == "bookTicker" or "e" not in data and {"u", "b", "a"} <= set(data):
        return "binance_usdm" if event == "bookTicker" else "binance_spot"
    if event in ("trade", "aggTrade"):
        if "X" in data:
            return "binance_usdm"
        if "M" in data:
            return "binance_spot"
    return ""
