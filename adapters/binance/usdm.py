"""Binance USD-M futures market data: websocket frames and the REST depth snapshot, decoded.

Wire formats: https://developers.binance.com/docs/derivatives/usds-margined-futures/websocket-market-streams
Frames arrive bare (``{"e": "trade", ...}``) or in the combined-stream envelope
(``{"stream": "btcusdt@trade", "data": {...}}``). Prices and quantities travel as decimal strings
and become ``Decimal`` (a JSON number there is an error: a float would lose exactness); times are
integer milliseconds and become nanoseconds.

Two paths, one result. ``decode_usdm`` first tries a fast path (orjson, per-event readers that
check exactly what the reference readers check, and a cache of the finite Decimals of decimal
strings seen before: Decimals are immutable, so events may share them). Whatever the fast path
does not accept, it hands to the reference path (the stdlib ``json`` and the readers below),
which alone decides errors and their messages. The fast path only ever accepts what the
reference path accepts, with the same fields: orjson differs from ``json`` only by rejecting
more (NaN, a BOM, lone surrogates, non-UTF-8) or by reading an integer beyond 64 bits as a float,
which no reader accepts where it expects an integer or a decimal string.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import Any

import orjson
from arbor.adapters.decoding import DecodeError
from arbor.messages.base import MarketEventKind, Side

Fields = dict[str, Any]

_NS_PER_MS = 1_000_000
_TRADE = MarketEventKind.TRADE
_QUOTE = MarketEventKind.QUOTE
_DEPTH = MarketEventKind.DEPTH
_SNAPSHOT = MarketEventKind.SNAPSHOT
_MARK = MarketEventKind.MARK
_LIQUIDATION = MarketEventKind.LIQUIDATION
_BUY = Side.BUY
_SELL = Side.SELL


def decode_usdm(payload: bytes) -> list[Fields]:
    """The market events of one Binance USD-M frame; ``[]`` for a control frame; else ``DecodeError``.

    Never raises anything but ``DecodeError``, whatever the bytes.
    """
    try:
        frame = _orjson_loads(payload)
        data = frame["data"] if "stream" in frame else frame
        fast = _FAST_BY_EVENT_TYPE.get(data["e"]) if "e" in data else None
        if fast is not None:
            return [fast(data)]
    except Exception:  # anything unusual: the reference path decides, with its own messages
        pass
    return decode_usdm_reference(payload)


def decode_usdm_reference(payload: bytes) -> list[Fields]:
    """``decode_usdm`` without the fast path: the stdlib parser and the reference readers."""
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
                return [_snapshot(data)]
            if data is frame and "id" in frame:
                if "result" in frame:
                    return []  # reply to SUBSCRIBE / LIST_SUBSCRIPTIONS: no market data
                if "error" in frame:
                    raise DecodeError(f"venue error reply: {_short(frame['error'])}")
            raise DecodeError("frame has no event type ('e') and is not a depth snapshot")
        decode = _BY_EVENT_TYPE.get(event_type) if type(event_type) is str else None
        if decode is None:
            if event_type == "kline":  # validated, no market event yet (see adapters/binance/kline.py)
                from arbor.adapters.binance.kline import check_kline

                return check_kline(data)
            raise DecodeError(f"unsupported event type {_short(event_type)}")
        return [decode(data)]
    except DecodeError:
        raise
    except KeyError as exc:
        where = f" in {event_type}" if type(event_type) is str else ""
        raise DecodeError(f"missing required field {_short(exc.args[0] if exc.args else exc)}{where}") from None
    except Exception as exc:  # fuzzed bytes: UnicodeDecodeError, RecursionError, TypeError, ...
        raise DecodeError(f"malformed frame: {type(exc).__name__}: {_short(str(exc), 200)}") from exc


# -- event types ------------------------------------------------------------------------------


def _trade(d: dict[str, Any]) -> Fields:
    return {
        "kind": _TRADE,
        "ts_event_ns": _event_time(d),
        "price": _dec(d["p"], "p"),
        "qty": _dec(d["q"], "q"),
        "side": _aggressor(d["m"]),
        "trade_id": _int(d["t"], "t"),
    }


def _agg_trade(d: dict[str, Any]) -> Fields:
    return {
        "kind": _TRADE,
        "ts_event_ns": _event_time(d),
        "price": _dec(d["p"], "p"),
        "qty": _dec(d["q"], "q"),
        "side": _aggressor(d["m"]),
        "trade_id": _int(d["a"], "a"),
    }


def _book_ticker(d: dict[str, Any]) -> Fields:
    fields = {
        "kind": _QUOTE,
        "ts_event_ns": _event_time(d),
        "bid_price": _dec(d["b"], "b"),
        "bid_qty": _dec(d["B"], "B"),
        "ask_price": _dec(d["a"], "a"),
        "ask_qty": _dec(d["A"], "A"),
    }
    u = d.get("u")
    if u is not None:
        fields["last_update_id"] = _int(u, "u")
    return fields


def _depth_update(d: dict[str, Any]) -> Fields:
    return {
        "kind": _DEPTH,
        "ts_event_ns": _event_time(d),
        "bids": _levels(d["b"], "b"),
        "asks": _levels(d["a"], "a"),
        "first_update_id": _int(d["U"], "U"),
        "last_update_id": _int(d["u"], "u"),
        "prev_update_id": _int(d["pu"], "pu"),
    }


def _mark_price_update(d: dict[str, Any]) -> Fields:
    # "T" here is the next funding time, not the event's time: use "E".
    fields = {"kind": _MARK, "ts_event_ns": _ms(d["E"], "E"), "mark_price": _dec(d["p"], "p")}
    index_price = d.get("i")
    if index_price is not None:
        fields["index_price"] = _dec(index_price, "i")
    funding_rate = d.get("r")
    if funding_rate is not None and funding_rate != "":  # "" on delivery contracts: no funding
        fields["funding_rate"] = _dec(funding_rate, "r")
    return fields


def _force_order(d: dict[str, Any]) -> Fields:
    order = d["o"]
    if type(order) is not dict:
        raise DecodeError(f"forceOrder 'o' must be an object, got {type(order).__name__}")
    side = order["S"]
    if side != "BUY" and side != "SELL":
        raise DecodeError(f"forceOrder side 'S' must be BUY or SELL, got {_short(side)}")
    # Average and filled quantity describe what actually traded; fall back to the order's own.
    avg_price = order.get("ap")
    price = _dec(avg_price, "ap") if avg_price is not None else None
    filled = order.get("z")
    qty = _dec(filled, "z") if filled is not None else None
    trade_time = order.get("T")
    return {
        "kind": _LIQUIDATION,
        "ts_event_ns": _ms(trade_time, "o.T") if trade_time is not None else _ms(d["E"], "E"),
        "price": price or _dec(order["p"], "p"),
        "qty": qty or _dec(order["q"], "q"),
        "side": _BUY if side == "BUY" else _SELL,
    }


def _snapshot(d: dict[str, Any]) -> Fields:
    ts = d.get("T")
    if ts is None:
        ts = d.get("E")
    return {
        "kind": _SNAPSHOT,
        "ts_event_ns": _ms(ts, "T") if ts is not None else 0,  # 0: the collector uses receive time
        "bids": _levels(d["bids"], "bids"),
        "asks": _levels(d["asks"], "asks"),
        "last_update_id": _int(d["lastUpdateId"], "lastUpdateId"),
    }


_BY_EVENT_TYPE: dict[str, Callable[[dict[str, Any]], Fields]] = {
    "trade": _trade,
    "aggTrade": _agg_trade,
    "bookTicker": _book_ticker,
    "depthUpdate": _depth_update,
    "markPriceUpdate": _mark_price_update,
    "forceOrder": _force_order,
}


# -- the fast path ------------------------------------------------------------------------------
# Each reader returns exactly the fields its reference reader returns, or raises (anything) when
# the input is not plainly valid, so that the reference reader decides. They check the same
# things: decimal strings that are finite, integers that are ints (not bools), ms times >= 0.

_orjson_loads = orjson.loads
_DEC_CACHE: dict[str, Decimal] = {}
_DEC_CACHE_MAX = 1 << 16


def _fdec(value: str) -> Decimal:
    """The finite Decimal of a decimal string (cached); raises on anything else."""
    d = _DEC_CACHE.get(value)  # a non-str key is never in the cache (TypeError if unhashable)
    if d is not None:
        return d
    if type(value) is not str:
        raise TypeError(value)
    d = Decimal(value)
    if not d.is_finite():
        raise ValueError(value)
    if len(_DEC_CACHE) >= _DEC_CACHE_MAX:
        _DEC_CACHE.clear()
    _DEC_CACHE[value] = d
    return d


def _fint(value: Any) -> int:
    if type(value) is not int:
        raise TypeError(value)
    return value


def _fms(value: Any) -> int:
    if type(value) is not int or value < 0:
        raise TypeError(value)
    return value * _NS_PER_MS


def _ftime(d: dict[str, Any]) -> int:
    ts = d.get("T")
    if ts is None:
        ts = d["E"]
    if type(ts) is not int or ts < 0:
        raise TypeError(ts)
    return ts * _NS_PER_MS


def _fside(buyer_is_maker: Any) -> Side:
    if buyer_is_maker is True:
        return _SELL
    if buyer_is_maker is False:
        return _BUY
    raise TypeError(buyer_is_maker)


def _flevels(raw: Any) -> tuple[tuple[Decimal, Decimal], ...]:
    """``_levels`` checking finiteness with one C-level pass; raises unless every level is [str, str]."""
    if type(raw) is not list:
        raise TypeError(raw)
    for level in raw:
        if type(level) is not list or len(level) != 2 or type(level[0]) is not str or type(level[1]) is not str:
            raise TypeError(level)
    # Book levels repeat the same few price and size strings: most are found in the cache, and
    # ``_fdec`` (which checks finiteness) converts and caches the rest.
    get = _DEC_CACHE.get
    return tuple([(get(p) or _fdec(p), get(q) or _fdec(q)) for p, q in raw])


def _f_trade(d: dict[str, Any]) -> Fields:
    return {
        "kind": _TRADE,
        "ts_event_ns": _ftime(d),
        "price": _fdec(d["p"]),
        "qty": _fdec(d["q"]),
        "side": _fside(d["m"]),
        "trade_id": _fint(d["t"]),
    }


def _f_agg_trade(d: dict[str, Any]) -> Fields:
    return {
        "kind": _TRADE,
        "ts_event_ns": _ftime(d),
        "price": _fdec(d["p"]),
        "qty": _fdec(d["q"]),
        "side": _fside(d["m"]),
        "trade_id": _fint(d["a"]),
    }


def _f_book_ticker(d: dict[str, Any]) -> Fields:
    fields = {
        "kind": _QUOTE,
        "ts_event_ns": _ftime(d),
        "bid_price": _fdec(d["b"]),
        "bid_qty": _fdec(d["B"]),
        "ask_price": _fdec(d["a"]),
        "ask_qty": _fdec(d["A"]),
    }
    u = d.get("u")
    if u is not None:
        fields["last_update_id"] = _fint(u)
    return fields


def _f_depth_update(d: dict[str, Any]) -> Fields:
    return {
        "kind": _DEPTH,
        "ts_event_ns": _ftime(d),
        "bids": _flevels(d["b"]),
        "asks": _flevels(d["a"]),
        "first_update_id": _fint(d["U"]),
        "last_update_id": _fint(d["u"]),
        "prev_update_id": _fint(d["pu"]),
    }


# Rare event types (mark price, liquidations) and depth snapshots take the reference readers.
_FAST_BY_EVENT_TYPE: dict[Any, Callable[[dict[str, Any]], Fields]] = {
    "trade": _f_trade,
    "aggTrade": _f_agg_trade,
    "bookTicker": _f_book_ticker,
    "depthUpdate": _f_depth_update,
}


# -- field readers ------------------------------------------------------------------------------


def _dec(value: Any, name: str) -> Decimal:
    """A finite Decimal from a decimal string (NaN/Infinity would poison every comparison downstream)."""
    if type(value) is not str:
        raise DecodeError(f"field {name!r} must be a decimal string, got {type(value).__name__}")
    try:
        d = Decimal(value)
    except InvalidOperation:
        raise DecodeError(f"field {name!r} is not a decimal: {_short(value)}") from None
    if not d.is_finite():
        raise DecodeError(f"field {name!r} is not a finite decimal: {_short(value)}")
    return d


def _levels(raw: Any, name: str) -> tuple[tuple[Decimal, Decimal], ...]:
    """Depth levels ``[[price, qty], ...]`` as ``((Decimal, Decimal), ...)``."""
    if type(raw) is not list:
        raise DecodeError(f"field {name!r} must be a list of [price, qty], got {type(raw).__name__}")
    # Shapes first, conversion in one comprehension: a depth frame carries dozens of levels.
    for level in raw:
        # Exactly two strings: a 2-char string or a 2-key object would also unpack into two.
        if type(level) is not list or len(level) != 2 or type(level[0]) is not str or type(level[1]) is not str:
            raise DecodeError(f"field {name!r}: a level is [price, qty] as decimal strings, got {_short(level)}")
    D = Decimal
    try:
        levels = tuple([(D(p), D(q)) for p, q in raw])
    except InvalidOperation:
        raise DecodeError(f"field {name!r}: a level is not decimal") from None
    for p, q in levels:
        if not (p.is_finite() and q.is_finite()):
            raise DecodeError(f"field {name!r}: a level is not finite: {p}, {q}")
    return levels


def _int(value: Any, name: str) -> int:
    if type(value) is not int:  # bool is not an int here
        raise DecodeError(f"field {name!r} must be an integer, got {type(value).__name__}")
    return value


def _ms(value: Any, name: str) -> int:
    if type(value) is not int or value < 0:
        raise DecodeError(f"time field {name!r} must be a non-negative integer of ms, got {_short(value)}")
    return value * _NS_PER_MS


def _event_time(d: dict[str, Any]) -> int:
    """Trade/transaction time ``T`` when present, else event time ``E``, in ns."""
    ts = d.get("T")
    if ts is not None:
        return _ms(ts, "T")
    return _ms(d["E"], "E")


def _aggressor(buyer_is_maker: Any) -> Side:
    """The taker's side: the buyer being the maker means the seller hit the bid."""
    if buyer_is_maker is True:
        return _SELL
    if buyer_is_maker is False:
        return _BUY
    raise DecodeError(f"field 'm' must be a boolean, got {_short(buyer_is_maker)}")


def _short(value: Any, limit: int = 60) -> str:
    """A bounded repr for error messages: a fuzzed frame may hold megabytes in one field."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
