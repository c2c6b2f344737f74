"""Binance spot market data: websocket frames and the REST depth snapshot, decoded.

Wire formats: https://developers.binance.com/docs/binance-spot-api-docs/web-socket-streams
Same contract as ``adapters.binance.usdm.decode_usdm``; the differences from USD-M futures are:

- ``bookTicker`` carries no ``e``, ``E`` or ``T``: it is recognised by its fields (``u``, ``b``,
  ``B``, ``a``, ``A``) and gets ``ts_event_ns`` 0, so the collector stamps it with receive time.
- ``depthUpdate`` has ``U``/``u`` but no ``pu`` and no ``T`` (continuity is ``U == previous u + 1``).
- partial book depth (``<symbol>@depth<N>[@100ms]``) is a bare snapshot
  ``{"lastUpdateId", "bids", "asks"}``, read like the REST snapshot.
- ``kline`` frames are validated and yield no event (see ``adapters.binance.kline``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from arbor.adapters.binance.kline import check_kline
from arbor.adapters.binance.usdm import (
    Fields,
    _agg_trade,
    _dec,
    _event_time,
    _int,
    _levels,
    _short,
    _snapshot,
    _trade,
)
from arbor.adapters.decoding import DecodeError
from arbor.messages.base import MarketEventKind

_QUOTE = MarketEventKind.QUOTE
_DEPTH = MarketEventKind.DEPTH


def decode_spot(payload: bytes) -> list[Fields]:
    """The market events of one Binance spot frame; ``[]`` for a control or kline frame; else ``DecodeError``.

    Never raises anything but ``DecodeError``, whatever the bytes.
    """
    event_type: object = None
    try:
        frame = json.loads(payload)
        if type(frame) is not dict:
            raise DecodeError(f"expected a JSON object, got {type(frame).__name__}")
        if "stream" in frame:
            data = frame["data"]
            if type(data) is not dict:
                raise DecodeError(f"envelope 'data' must be an object, got {type(data).__name__}")
        else:
            data = frame
        event_type = data.get("e")
        if event_type is None:
            if "lastUpdateId" in data:
                return [_snapshot(data)]  # REST snapshot or partial book depth: no times, ts 0
            if "u" in data and "b" in data and "a" in data:
                event_type = "bookTicker"
                return [_book_ticker(data)]
            if data is frame and "id" in frame:
                if "result" in frame:
                    return []  # reply to SUBSCRIBE / LIST_SUBSCRIPTIONS: no market data
                if "error" in frame:
                    raise DecodeError(f"venue error reply: {_short(frame['error'])}")
            raise DecodeError("frame has no event type ('e') and is neither a bookTicker nor a depth snapshot")
        decode = _BY_EVENT_TYPE.get(event_type) if type(event_type) is str else None
        if decode is None:
            raise DecodeError(f"unsupported event type {_short(event_type)}")
        return decode(data)
    except DecodeError:
        raise
    except KeyError as exc:
        where = f" in {event_type}" if type(event_type) is str else ""
        raise DecodeError(f"missing required field {_short(exc.args[0] if exc.args else exc)}{where}") from None
    except Exception as exc:  # fuzzed bytes: UnicodeDecodeError, RecursionError, TypeError, ...
        raise DecodeError(f"malformed frame: {type(exc).__name__}: {_short(str(exc), 200)}") from exc


def _book_ticker(d: dict[str, Any]) -> Fields:
    # Spot's bookTicker has no time at all; a "T"/"E" if Binance ever adds one is used.
    ts = d.get("T", d.get("E"))
    return {
        "kind": _QUOTE,
        "ts_event_ns": _event_time(d) if ts is not None else 0,
        "bid_price": _dec(d["b"], "b"),
        "bid_qty": _dec(d["B"], "B"),
        "ask_price": _dec(d["a"], "a"),
        "ask_qty": _dec(d["A"], "A"),
        "last_update_id": _int(d["u"], "u"),
    }


def _depth_update(d: dict[str, Any]) -> Fields:
    fields = {
        "kind": _DEPTH,
        "ts_event_ns": _event_time(d),
        "bids": _levels(d["b"], "b"),
        "asks": _levels(d["a"], "a"),
        "first_update_id": _int(d["U"], "U"),
        "last_update_id": _int(d["u"], "u"),
    }
    pu = d.get("pu")  # not on spot; kept if present so one decoder reads both variants
    if pu is not None:
        fields["prev_update_id"] = _int(pu, "pu")
    return fields


_BY_EVENT_TYPE: dict[str, Callable[[dict[str, Any]], list[Fields]]] = {
    "trade": lambda d: [_trade(d)],
    "aggTrade": lambda d: [_agg_trade(d)],
    "bookTicker": lambda d: [_book_ticker(d)],
    "depthUpdate": lambda d: [_depth_update(d)],
    "kline": check_kline,
}
