"""Binance USD-M futures market data: websocket frames and the REST depth snapshot, decoded.

Wire formats: https://developers.binance.com/docs/derivatives/usds-margined-futures/websocket-market-streams
Frames arrive bare (``{"e": "trade", ...}``) or in the combined-stream envelope
(``{"stream": "btcusdt@trade", "data": {...}}``). Prices and quantities travel as decimal strings
and become ``Decimal`` (a JSON number there is an error: a float would lose exactness), except
depth levels, which stay the frame's text (``messages.market``: read on demand); times are
integer milliseconds and become nanoseconds. Every field is validated as the venue documents it
(``adapters.fields``: prices > 0, sizes > 0 except a depth level's delete, ids within signed 64
bits, top of book not crossed, plain ASCII decimals, strict UTF-8); docs/venues.md lists the rules.

Three paths, one result. ``decode_usdm`` first tries msgspec Structs for the hot event types
(see "the msgspec path" below), then a fast path (orjson, per-event readers that
check exactly what the reference readers check, and a cache of the finite Decimals of decimal
strings seen before: Decimals are immutable, so events may share them). Whatever the fast path
does not accept, it hands to the reference path (the stdlib ``json`` and the readers below),
which alone decides errors and their messages. The fast paths only ever accept what the
reference path accepts, with the same fields (tests/property/test_decoder_fuzz.py checks it):
orjson differs from strict-UTF-8 ``json`` by rejecting more (NaN, a BOM, lone surrogates), by
reading an integer beyond 64 bits as a float, which no reader accepts where it expects an integer
or a decimal string, and by nesting up to 1024 deep where ``json`` stops near the interpreter's
recursion limit; so the fast path takes only frames whose fields outside those it reads are
scalars, and leaves nested extras to the reference path.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Annotated, Any

import msgspec
import orjson
from arbor.adapters.decoding import DecodeError
from arbor.adapters.fields import (
    INT64_MAX,
    MS_MAX,
    check_levels_not_crossed,
    check_not_crossed,
    decimal,
    fast_book_sides,
    level_size,
    levels,
    load_json,
    ms_to_ns,
    price,
    short,
    size,
    venue_id,
)
from arbor.messages.base import MarketEventKind, Side
from arbor.messages.market import levels_text

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
    # The msgspec path: one typed decode of the hot event types (trade, aggTrade, bookTicker,
    # depthUpdate, snapshot) into Structs that forbid unknown fields, so msgspec skips nothing:
    # every string is checked as strict UTF-8, every value is a scalar of its type or a level
    # list (checked by fast_book_sides), so nothing nested can hide that json would refuse.
    try:
        if payload.startswith(b'{"stream":'):
            return [_COMBINED.decode(payload).data.fields()]
        if payload.startswith(b'{"lastUpdateId":'):
            return [_BARE_SNAPSHOT.decode(payload).fields()]
        return [_BARE.decode(payload).fields()]
    except Exception:  # not one of those, or not plainly valid: the paths below decide
        pass
    try:
        frame = _orjson_loads(payload)
        if "stream" in frame:
            data, objects = frame["data"], 2
        else:
            data, objects = frame, 1
        if "e" in data:
            fast = _FAST_BY_EVENT_TYPE.get(data["e"])
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
    return decode_usdm_reference(payload)


def decode_usdm_reference(payload: bytes) -> list[Fields]:
    """``decode_usdm`` without the fast path: the stdlib parser and the reference readers."""
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
                return [_snapshot(data)]
            if data is frame and "id" in frame:
                if "result" in frame:
                    return []  # reply to SUBSCRIBE / LIST_SUBSCRIPTIONS: no market data
                if "error" in frame:
                    raise DecodeError(f"venue error reply: {short(frame['error'])}")
            raise DecodeError("frame has no event type ('e') and is not a depth snapshot")
        decode = _BY_EVENT_TYPE.get(event_type) if type(event_type) is str else None
        if decode is None:
            if event_type == "kline":  # validated, no market event yet (see adapters/binance/kline.py)
                from arbor.adapters.binance.kline import check_kline

                return check_kline(data)
            raise DecodeError(f"unsupported event type {short(event_type)}")
        return [decode(data)]
    except DecodeError:
        raise
    except KeyError as exc:
        where = f" in {event_type}" if type(event_type) is str else ""
        raise DecodeError(f"missing required field {short(exc.args[0] if exc.args else exc)}{where}") from None
    except Exception as exc:  # fuzzed bytes: UnicodeDecodeError, RecursionError, TypeError, ...
        raise DecodeError(f"malformed frame: {type(exc).__name__}: {short(str(exc), 200)}") from exc


# -- event types ------------------------------------------------------------------------------


def _trade(d: dict[str, Any]) -> Fields:
    return {
        "kind": _TRADE,
        "ts_event_ns": _event_time(d),
        "price": price(d["p"], "p"),
        "qty": size(d["q"], "q"),
        "side": _aggressor(d["m"]),
        "trade_id": venue_id(d["t"], "t"),
    }


def _agg_trade(d: dict[str, Any]) -> Fields:
    return {
        "kind": _TRADE,
        "ts_event_ns": _event_time(d),
        "price": price(d["p"], "p"),
        "qty": size(d["q"], "q"),
        "side": _aggressor(d["m"]),
        "trade_id": venue_id(d["a"], "a"),
    }


def book_ticker_fields(d: dict[str, Any], ts_event_ns: int) -> Fields:
    """The QUOTE of a bookTicker's ``b``/``B``/``a``/``A`` (both markets): positive, not crossed."""
    bid, ask = price(d["b"], "b"), price(d["a"], "a")
    check_not_crossed(bid, ask, "bookTicker")
    return {
        "kind": _QUOTE,
        "ts_event_ns": ts_event_ns,
        "bid_price": bid,
        "bid_qty": size(d["B"], "B"),
        "ask_price": ask,
        "ask_qty": size(d["A"], "A"),
    }


def _book_ticker(d: dict[str, Any]) -> Fields:
    fields = book_ticker_fields(d, _event_time(d))
    u = d.get("u")
    if u is not None:
        fields["last_update_id"] = venue_id(u, "u")
    return fields


def depth_fields(d: dict[str, Any]) -> Fields:
    """A depthUpdate's levels and ``U``/``u`` (both markets): levels not crossed, ``U <= u``."""
    bids, asks = _levels(d["b"], "b"), _levels(d["a"], "a")
    check_levels_not_crossed(bids, asks, "depthUpdate")
    first, last = venue_id(d["U"], "U"), venue_id(d["u"], "u")
    if first > last:
        raise DecodeError(f"depthUpdate first update id U {first} > final update id u {last}")
    return {"kind": _DEPTH, "ts_event_ns": _event_time(d), "bids": levels_text(d["b"]), "asks": levels_text(d["a"]),
            "first_update_id": first, "last_update_id": last}


def _depth_update(d: dict[str, Any]) -> Fields:
    fields = depth_fields(d)
    fields["prev_update_id"] = venue_id(d["pu"], "pu")
    return fields


def _mark_price_update(d: dict[str, Any]) -> Fields:
    # "T" here is the next funding time, not the event's time: use "E".
    fields = {"kind": _MARK, "ts_event_ns": ms_to_ns(d["E"], "E"), "mark_price": price(d["p"], "p")}
    index_price = d.get("i")
    if index_price is not None:
        fields["index_price"] = price(index_price, "i")
    funding_rate = d.get("r")
    if funding_rate is not None and funding_rate != "":  # "" on delivery contracts: no funding
        fields["funding_rate"] = decimal(funding_rate, "r")
    return fields


def _force_order(d: dict[str, Any]) -> Fields:
    order = d["o"]
    if type(order) is not dict:
        raise DecodeError(f"forceOrder 'o' must be an object, got {type(order).__name__}")
    side = order["S"]
    if side != "BUY" and side != "SELL":
        raise DecodeError(f"forceOrder side 'S' must be BUY or SELL, got {short(side)}")
    # Average price and filled quantity describe what actually traded (0 while nothing has);
    # fall back to the order's own price and quantity, which are always there and positive.
    order_price, order_qty = price(order["p"], "p"), size(order["q"], "q")
    avg_price = order.get("ap")
    traded_price = level_size(avg_price, "ap") if avg_price is not None else None
    filled = order.get("z")
    traded_qty = level_size(filled, "z") if filled is not None else None
    trade_time = order.get("T")
    return {
        "kind": _LIQUIDATION,
        "ts_event_ns": ms_to_ns(trade_time, "o.T") if trade_time is not None else ms_to_ns(d["E"], "E"),
        "price": traded_price or order_price,
        "qty": traded_qty or order_qty,
        "side": _BUY if side == "BUY" else _SELL,
    }


def _snapshot(d: dict[str, Any]) -> Fields:
    ts = d.get("T")
    if ts is None:
        ts = d.get("E")
    bids, asks = _levels(d["bids"], "bids", snapshot=True), _levels(d["asks"], "asks", snapshot=True)
    check_levels_not_crossed(bids, asks, "depth snapshot")
    return {
        "kind": _SNAPSHOT,
        "ts_event_ns": ms_to_ns(ts, "T") if ts is not None else 0,  # 0: the collector uses receive time
        "bids": levels_text(d["bids"]),
        "asks": levels_text(d["asks"]),
        "last_update_id": venue_id(d["lastUpdateId"], "lastUpdateId"),
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
# rules (adapters.fields) and, besides, that every field they do not read is a scalar.

_orjson_loads = orjson.loads
_orjson_dumps = orjson.dumps
# A frame shorter than this nests at most SHALLOW_BYTES // 2 deep, which json reads unless the
# caller is already hundreds of frames deep (where json fails even on valid frames): no check.
SHALLOW_BYTES = 512
_CACHE_MAX = 1 << 16


class _Checked(dict[str, Decimal]):
    """Decimal strings seen before, each checked by ``check`` (a reader of adapters.fields) and
    converted once: Decimals are immutable, so events may share them. ``cache[text]`` is the
    Decimal of a valid ``text``; a miss (``__missing__``) checks and converts it, raising
    (``DecodeError``, or ``TypeError`` for an unhashable value) when it is not valid, so
    nothing invalid is ever cached. A hit costs one C-level dict lookup, so whole level lists
    go through ``map(cache.__getitem__, texts)`` without a Python call per level. Bounded:
    cleared when full."""

    __slots__ = ("_check",)

    def __init__(self, check: Callable[[Any, str], Decimal]) -> None:
        super().__init__()
        self._check = check

    def __missing__(self, text: str) -> Decimal:
        d = self._check(text, "")
        if len(self) >= _CACHE_MAX:
            self.clear()
        self[text] = d
        return d


_POSITIVE = _Checked(price)  # valid and > 0: prices, fill and quote sizes, snapshot level sizes
_UNSIGNED = _Checked(level_size)  # valid and >= 0: a depth diff's level sizes (0 deletes)
_positive = _POSITIVE.__getitem__
_unsigned = _UNSIGNED.__getitem__


def _fint(value: Any) -> int:
    if type(value) is not int or not 0 <= value <= INT64_MAX:
        raise TypeError(value)
    return value


def _ftime(d: dict[str, Any]) -> int:
    ts = d.get("T")
    if ts is None:
        ts = d["E"]
    if type(ts) is not int or not 0 <= ts <= MS_MAX:
        raise TypeError(ts)
    return ts * _NS_PER_MS


def _fside(buyer_is_maker: Any) -> Side:
    if buyer_is_maker is True:
        return _SELL
    if buyer_is_maker is False:
        return _BUY
    raise TypeError(buyer_is_maker)


def flat(payload: bytes, objects: int, frame: dict[str, Any], data: dict[str, Any], fields: Fields | None) -> bool:
    """True when nothing is nested in the frame but its envelope, its data and a diff's levels.

    orjson nests up to 1024 deep, ``json`` only to near the recursion limit, so a nested value in
    a field no reader looks at could be accepted here and refused by the reference path. A small
    frame is checked on its bytes (a bracket inside a string only sends it to the reference
    path, which decides); a depth diff, whose bytes are many, on its parsed values.
    """
    if fields is None:  # a kline, whose "k" is one object more
        return payload.find(b"[") < 0 and payload.count(b"{") == objects + 1
    kind = fields["kind"]
    if kind is not _DEPTH and kind is not _SNAPSHOT:
        return payload.find(b"[") < 0 and payload.count(b"{") == objects
    if frame is not data:
        for key, value in frame.items():
            if key != "data" and (type(value) is list or type(value) is dict):
                return False
    lists = 0
    for value in data.values():
        if type(value) is dict:
            return False
        if type(value) is list:
            lists += 1
    return lists == 2  # "b" and "a" (or "bids" and "asks"), whose levels were proved to be [str, str]


def f_book_sides(bids: Any, asks: Any, *, deletes: bool) -> tuple[bytes, bytes]:
    """Parsed level lists as the canonical text the reference keeps, if plainly valid
    (``fast_book_sides``); raises otherwise. orjson writes lists of strings compactly, with any
    quote or control character escaped, which ``fast_book_sides`` refuses."""
    if type(bids) is not list or type(asks) is not list:
        raise TypeError("levels")
    bids_text, asks_text = _orjson_dumps(bids), _orjson_dumps(asks)
    fast_book_sides(bids_text, asks_text, deletes=deletes)
    return bids_text, asks_text


def f_snapshot(d: dict[str, Any]) -> Fields:
    """The fast ``_snapshot`` (REST depth snapshot, spot partial book depth): levels checked in
    bulk on their text and kept as text (a snapshot has ~1000 levels; nothing is built per level)."""
    ts = d.get("T")
    if ts is None:
        ts = d.get("E")
    if ts is not None and (type(ts) is not int or not 0 <= ts <= MS_MAX):
        raise TypeError(ts)
    bids, asks = f_book_sides(d["bids"], d["asks"], deletes=False)
    return {"kind": _SNAPSHOT, "ts_event_ns": ts * _NS_PER_MS if ts is not None else 0, "bids": bids, "asks": asks,
            "last_update_id": _fint(d["lastUpdateId"])}


def f_trade(d: dict[str, Any]) -> Fields:
    """The fast reader of a trade (both markets)."""
    return {
        "kind": _TRADE,
        "ts_event_ns": _ftime(d),
        "price": _positive(d["p"]),
        "qty": _positive(d["q"]),
        "side": _fside(d["m"]),
        "trade_id": _fint(d["t"]),
    }


def f_agg_trade(d: dict[str, Any]) -> Fields:
    """The fast reader of an aggTrade (both markets)."""
    return {
        "kind": _TRADE,
        "ts_event_ns": _ftime(d),
        "price": _positive(d["p"]),
        "qty": _positive(d["q"]),
        "side": _fside(d["m"]),
        "trade_id": _fint(d["a"]),
    }


def f_book_ticker_fields(d: dict[str, Any], ts_event_ns: int) -> Fields:
    """The fast ``book_ticker_fields``."""
    bid, ask = _positive(d["b"]), _positive(d["a"])
    if not bid < ask:
        raise ValueError("crossed")
    return {
        "kind": _QUOTE,
        "ts_event_ns": ts_event_ns,
        "bid_price": bid,
        "bid_qty": _positive(d["B"]),
        "ask_price": ask,
        "ask_qty": _positive(d["A"]),
    }


def _f_book_ticker(d: dict[str, Any]) -> Fields:
    bid, ask = _positive(d["b"]), _positive(d["a"])
    if not bid < ask:
        raise ValueError("crossed")
    fields = {
        "kind": _QUOTE,
        "ts_event_ns": _ftime(d),
        "bid_price": bid,
        "bid_qty": _positive(d["B"]),
        "ask_price": ask,
        "ask_qty": _positive(d["A"]),
    }
    u = d.get("u")
    if u is not None:
        if type(u) is not int or not 0 <= u <= INT64_MAX:
            raise TypeError(u)
        fields["last_update_id"] = u
    return fields


def f_depth_fields(d: dict[str, Any]) -> Fields:
    """The fast ``depth_fields``."""
    bids, asks = f_book_sides(d["b"], d["a"], deletes=True)
    first, last = _fint(d["U"]), _fint(d["u"])
    if first > last:
        raise ValueError("U > u")
    return {"kind": _DEPTH, "ts_event_ns": _ftime(d), "bids": bids, "asks": asks,
            "first_update_id": first, "last_update_id": last}


def _f_depth_update(d: dict[str, Any]) -> Fields:
    fields = f_depth_fields(d)
    fields["prev_update_id"] = _fint(d["pu"])
    return fields


def f_kline(d: dict[str, Any]) -> None:
    """The fast ``adapters.binance.kline.check_kline`` (both markets): None (no market event) for a
    well-formed kline, checked field by field as the reference checks it; raises otherwise."""
    k = d["k"]
    if type(k) is not dict:
        raise TypeError(k)
    for ts in (d["E"], k["t"], k["T"]):
        if type(ts) is not int or not 0 <= ts <= MS_MAX:
            raise TypeError(ts)
    if k["T"] < k["t"] or type(k["i"]) is not str or type(k["x"]) is not bool:
        raise ValueError("kline")
    o, h, low, c = _positive(k["o"]), _positive(k["h"]), _positive(k["l"]), _positive(k["c"])
    if not low <= min(o, c) <= max(o, c) <= h:
        raise ValueError("kline prices out of order")
    _unsigned(k["v"])
    _fint(k["n"])


# -- the msgspec path ---------------------------------------------------------------------------
# Typed Structs validate ids, times, booleans and strings in C as the reference readers do (an
# int, not a bool or a float; within range); prices and sizes go through the caches above, and
# level lists stay text (msgspec.Raw, the frame's own bytes), checked in bulk by fast_book_sides.
# Each Struct declares every field Binance sends and forbids others: a field added one day sends
# its frames to the orjson path, which checks them its own way. A field no reader uses is typed
# as Binance documents it; any other value also goes to the other paths (the reference reads
# no such field, so it would accept it). ``fields()`` returns what the reference reader returns,
# or raises.

_Id = Annotated[int, msgspec.Meta(ge=0, le=INT64_MAX)]
_Ms = Annotated[int, msgspec.Meta(ge=0, le=MS_MAX)]


def _mtime(t: int | None, e: int | None) -> int:
    """``T`` when present, else ``E`` (required then), in ns: ``_event_time``."""
    ts = t if t is not None else e
    if ts is None:
        raise ValueError("no time")
    return ts * _NS_PER_MS


class _MTrade(msgspec.Struct, tag_field="e", tag="trade", forbid_unknown_fields=True):
    p: str
    q: str
    m: bool
    t: _Id
    T: _Ms | None = None
    E: _Ms | None = None
    s: str | None = None  # the symbol (the collector knows its own)
    X: str | None = None  # the order type (MARKET, ...)

    def fields(self) -> Fields:
        return {"kind": _TRADE, "ts_event_ns": _mtime(self.T, self.E), "price": _positive(self.p),
                "qty": _positive(self.q), "side": _SELL if self.m else _BUY, "trade_id": self.t}


class _MAggTrade(msgspec.Struct, tag_field="e", tag="aggTrade", forbid_unknown_fields=True):
    p: str
    q: str
    m: bool
    a: _Id
    T: _Ms | None = None
    E: _Ms | None = None
    s: str | None = None
    f: int | None = None  # first and last trade ids
    l: int | None = None  # noqa: E741 (the venue's key)
    nq: str | None = None  # the quantity without RPI orders

    def fields(self) -> Fields:
        return {"kind": _TRADE, "ts_event_ns": _mtime(self.T, self.E), "price": _positive(self.p),
                "qty": _positive(self.q), "side": _SELL if self.m else _BUY, "trade_id": self.a}


class _MBookTicker(msgspec.Struct, tag_field="e", tag="bookTicker", forbid_unknown_fields=True):
    b: str
    B: str
    a: str
    A: str
    u: _Id | None = None
    T: _Ms | None = None
    E: _Ms | None = None
    s: str | None = None

    def fields(self) -> Fields:
        bid, ask = _positive(self.b), _positive(self.a)
        if not bid < ask:
            raise ValueError("crossed")
        fields = {"kind": _QUOTE, "ts_event_ns": _mtime(self.T, self.E), "bid_price": bid,
                  "bid_qty": _positive(self.B), "ask_price": ask, "ask_qty": _positive(self.A)}
        if self.u is not None:
            fields["last_update_id"] = self.u
        return fields


def _mlevels(b: msgspec.Raw, a: msgspec.Raw, deletes: bool) -> tuple[bytes, bytes]:
    """Both sides' level text, checked in bulk (``fast_book_sides``)."""
    bids, asks = bytes(b), bytes(a)
    fast_book_sides(bids, asks, deletes=deletes)
    return bids, asks


class _MDepth(msgspec.Struct, tag_field="e", tag="depthUpdate", forbid_unknown_fields=True):
    U: _Id
    u: _Id
    pu: _Id
    b: msgspec.Raw
    a: msgspec.Raw
    T: _Ms | None = None
    E: _Ms | None = None
    s: str | None = None

    def fields(self) -> Fields:
        first, last = self.U, self.u
        if first > last:
            raise ValueError("U > u")
        bids, asks = _mlevels(self.b, self.a, deletes=True)
        return {"kind": _DEPTH, "ts_event_ns": _mtime(self.T, self.E), "bids": bids, "asks": asks,
                "first_update_id": first, "last_update_id": last, "prev_update_id": self.pu}


class _MSnapshot(msgspec.Struct, forbid_unknown_fields=True):
    lastUpdateId: _Id  # noqa: N815 (the venue's key)
    bids: msgspec.Raw
    asks: msgspec.Raw
    T: _Ms | None = None
    E: _Ms | None = None

    def fields(self) -> Fields:
        bids, asks = _mlevels(self.bids, self.asks, deletes=False)
        ts = self.T if self.T is not None else self.E
        return {"kind": _SNAPSHOT, "ts_event_ns": ts * _NS_PER_MS if ts is not None else 0, "bids": bids,
                "asks": asks, "last_update_id": self.lastUpdateId}


_MEvent = _MTrade | _MAggTrade | _MBookTicker | _MDepth


class _MCombined(msgspec.Struct, forbid_unknown_fields=True):
    stream: str
    data: _MEvent


_COMBINED = msgspec.json.Decoder(_MCombined)
_BARE = msgspec.json.Decoder(_MEvent)
_BARE_SNAPSHOT = msgspec.json.Decoder(_MSnapshot)


# Rare event types (mark price, liquidations) take the reference readers; snapshots (no "e") ``f_snapshot``.
_FAST_BY_EVENT_TYPE: dict[Any, Callable[[dict[str, Any]], Fields | None]] = {
    "trade": f_trade,
    "aggTrade": f_agg_trade,
    "bookTicker": _f_book_ticker,
    "depthUpdate": _f_depth_update,
    "kline": f_kline,
}


# -- field readers ------------------------------------------------------------------------------


def _levels(raw: Any, name: str, snapshot: bool = False) -> tuple[tuple[Decimal, Decimal], ...]:
    """Depth levels ``[[price, qty], ...]`` checked, as ``((Decimal, Decimal), ...)`` for the
    crossing check: price > 0, and qty > 0 in a snapshot, >= 0 in a diff (0 deletes the level).
    The event keeps the levels' text (``levels_text`` of ``raw``), not these Decimals."""
    if type(raw) is not list:
        raise DecodeError(f"field {name!r} must be a list of [price, qty], got {type(raw).__name__}")
    # Shapes first, conversion in one comprehension: a depth frame carries dozens of levels.
    for level in raw:
        # Exactly two strings: a 2-char string or a 2-key object would also unpack into two.
        if type(level) is not list or len(level) != 2 or type(level[0]) is not str or type(level[1]) is not str:
            raise DecodeError(f"field {name!r}: a level is [price, qty] as decimal strings, got {short(level)}")
    return levels([level[0] for level in raw], [level[1] for level in raw], name, deletes=not snapshot)


def _event_time(d: dict[str, Any]) -> int:
    """Trade/transaction time ``T`` when present, else event time ``E``, in ns."""
    ts = d.get("T")
    if ts is not None:
        return ms_to_ns(ts, "T")
    return ms_to_ns(d["E"], "E")


def _aggressor(buyer_is_maker: Any) -> Side:
    """The taker's side: the buyer being the maker means the seller hit the bid."""
    if buyer_is_maker is True:
        return _SELL
    if buyer_is_maker is False:
        return _BUY
    raise DecodeError(f"field 'm' must be a boolean, got {short(buyer_is_maker)}")
