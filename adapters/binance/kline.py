"""Binance kline (candlestick) frames: validated, and for now carrying no market event.

``RawMarketEvent`` has no candle kind, and the runtime computes its own bars from trades, so a
kline is not needed downstream today. It is still *market data*, not a control frame: it is
checked field by field (a malformed kline is a ``DecodeError``), and yields ``[]`` only because
there is no kind to put it in. The kind to add is ``MarketEventKind.BAR`` (see the issue notes);
until then the collector counts these frames as control frames.

``decode_usdm_with_klines`` is ``decode_usdm`` plus this check, for streams that subscribe to
``<symbol>@kline_<interval>`` (usdm.py rejects ``kline`` as an unsupported event type). The
extra parse runs only for frames ``decode_usdm`` rejected, so other frames cost nothing more.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from arbor.adapters.binance.usdm import Fields, decode_usdm
from arbor.adapters.decoding import DecodeError
from arbor.adapters.fields import level_size, load_json, ms_to_ns, price, venue_id

_PRICE_FIELDS = ("o", "h", "l", "c")


def check_kline(d: dict[str, Any]) -> list[Fields]:
    """``[]`` for a well-formed kline event ``d`` (``{"e": "kline", "E", "s", "k": {...}}``); else ``DecodeError``."""
    ms_to_ns(d["E"], "E")
    k = d["k"]
    if type(k) is not dict:
        raise DecodeError(f"kline 'k' must be an object, got {type(k).__name__}")
    start, end = ms_to_ns(k["t"], "k.t"), ms_to_ns(k["T"], "k.T")
    if end < start:
        raise DecodeError("kline closes before it opens")
    if type(k["i"]) is not str:
        raise DecodeError("kline interval 'i' must be a string")
    o, h, low, c = (price(k[name], f"k.{name}") for name in _PRICE_FIELDS)
    if not low <= min(o, c) <= max(o, c) <= h:
        raise DecodeError(f"kline prices out of order: low {low}, open {o}, close {c}, high {h}")
    level_size(k["v"], "k.v")  # base volume: 0 in a minute without trades
    venue_id(k["n"], "k.n")
    if type(k["x"]) is not bool:
        raise DecodeError("kline 'x' (closed) must be a boolean")
    return []


def decode_usdm_with_klines(payload: bytes, decode: Callable[[bytes], list[Fields]] = decode_usdm) -> list[Fields]:
    """``decode_usdm``, except that a well-formed kline frame gives ``[]`` instead of a ``DecodeError``
    (``decode``: ``decode_usdm_reference`` gives this reader's reference path, for the fuzz tests)."""
    try:
        return decode(payload)
    except DecodeError as exc:
        if "'kline'" not in str(exc):
            raise
        original = exc
    try:
        frame = load_json(payload)
        data = frame["data"] if "stream" in frame else frame
        return check_kline(data)
    except DecodeError:
        raise
    except KeyError as exc:
        raise DecodeError(f"missing required field {exc.args[0]!r} in kline") from None
    except Exception:
        raise original from None
