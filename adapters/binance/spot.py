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

from collections.abc import Callable
from typing import Any

import orjson
from arbor.adapters.binance.kline import check_kline
from arbor.adapters.binance.usdm import (
    SHALLOW_BYTES,
    Fields,
    _agg_trade,
    _event_time,
    _fint,
    _snapshot,
    _trade,
    book_ticker_fields,
    depth_fields,
    f_agg_trade,
    f_book_ticker_fields,
    f_depth_fields,
    f_kline,
    f_snapshot,
    f_trade,
    flat,
)
from arbor.adapters.decoding import DecodeError
from arbor.adapters.fields import load_json, short, venue_id


def decode_spot(payload: bytes) -> list[Fields]:
    """The market events of one Binance spot frame; ``[]`` for a control or kline frame; else ``DecodeError``.

    Never raises anything but ``DecodeError``, whatever the bytes. A fast path (orjson and the
    USD-M fast readers, see ``adapters.binance.usdm``) takes plainly valid trades, quotes,
    diffs and snapshots; everything else goes to ``decode_spot_reference``, which alone decides errors.
    """
    try:
        frame = orjson.loads(payload)
        if "stream" in frame:
            data, objects = frame["data"], 2
        else:
            data, objects = frame, 1
        if "e" in data:
            fast = _FAST_BY_EVENT_TYPE.get(data["e"])
        elif "u" in data and "b" in data and "a" in data and not ("T" in data or "E" in data or "lastUpdateId" in data):
            fast = _f_book_ticker
        elif "lastUpdateId" in data:
            fast = f_snapshot
        else:
            fast = None
        if fast is not None:
            fields = fast(data)
            if len(payload) < SHALLOW_BYTES or flat(payload, objects, frame, data, fields):
                return [fields] if fields is not None else []  # None: a well-formed kline
    except Exception:  # anything unusual: the reference path decides, with its own messages
        pass
    return decode_spot_reference(payload)


def decode_spot_reference(payload: bytes) -> list[Fields]:
    """``decode_spot`` without the fast path: strict-UTF-8 ``json`` and the reference readers."""
    event_type: object = None
    try:
        frame = load_json(payload)
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
                    raise DecodeError(f"venue error reply: {short(frame['error'])}")
            raise DecodeError("frame has no event type ('e') and is neither a bookTicker nor a depth snapshot")
        decode = _BY_EVENT_TYPE.get(event_type) if type(event_type) is str else None
        if decode is None:
            raise DecodeError(f"unsupported event type {short(event_type)}")
        return decode(data)
    except DecodeError:
        raise
    except KeyError as exc:
        where = f" in {event_type}" if type(event_type) is str else ""
        raise DecodeError(f"missing required field {short(exc.args[0] if exc.args else exc)}{where}") from None
    except Exception as exc:  # fuzzed bytes: UnicodeDecodeError, RecursionError, TypeError, ...
        raise DecodeError(f"malformed frame: {type(exc).__name__}: {short(str(exc), 200)}") from exc


def _book_ticker(d: dict[str, Any]) -> Fields:
    # Spot's bookTicker has no time at all; a "T"/"E" if Binance ever adds one is used.
    ts = d.get("T", d.get("E"))
    fields = book_ticker_fields(d, _event_time(d) if ts is not None else 0)
    fields["last_update_id"] = venue_id(d["u"], "u")
    return fields


def _depth_update(d: dict[str, Any]) -> Fields:
    fields = depth_fields(d)
    pu = d.get("pu")  # not on spot; kept if present so one decoder reads both variants
    if pu is not None:
        fields["prev_update_id"] = venue_id(pu, "pu")
    return fields


def _f_book_ticker(d: dict[str, Any]) -> Fields:
    fields = f_book_ticker_fields(d, 0)
    fields["last_update_id"] = _fint(d["u"])
    return fields


def _f_depth_update(d: dict[str, Any]) -> Fields:
    if "pu" in d:
        raise ValueError("pu on spot: the reference path decides")
    return f_depth_fields(d)


_BY_EVENT_TYPE: dict[str, Callable[[dict[str, Any]], list[Fields]]] = {
    "trade": lambda d: [_trade(d)],
    "aggTrade": lambda d: [_agg_trade(d)],
    "bookTicker": lambda d: [_book_ticker(d)],
    "depthUpdate": lambda d: [_depth_update(d)],
    "kline": check_kline,
}
_FAST_BY_EVENT_TYPE: dict[Any, Callable[[dict[str, Any]], Fields | None]] = {
    "trade": f_trade,
    "aggTrade": f_agg_trade,
    "depthUpdate": _f_depth_update,
    "kline": f_kline,
}
