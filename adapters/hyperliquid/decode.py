"""Hyperliquid market data: websocket frames decoded into ``RawMarketEvent`` fields.

Wire format: https://hyperliquid.gitbook.io/hyperliquid-docs/for-developers/api/websocket/subscriptions
Every frame is ``{"channel": ..., "data": ...}``. Prices and sizes are decimal strings and become
``Decimal``; times are integer ms and become ns. Same contract as ``adapters.binance.usdm.decode_usdm``
(see ``adapters.decoding``): a list of field dicts, ``[]`` for a control frame, else ``DecodeError``.

Channels:

- ``trades``: a list of trades, one TRADE each (``side`` B/A is the aggressor's, ``tid`` the id).
- ``l2Book``: SNAPSHOT with both sides (``levels`` = ``[bids, asks]``); the l2Book info answer
  wrapped in the same envelope decodes the same way.
- ``bbo``: QUOTE; an empty side (``null``) leaves its price and size ``None``.
- ``activeAssetCtx``: MARK with ``mark_price`` = markPx, ``index_price`` = oraclePx,
  ``funding_rate``, ``open_interest`` and ``price`` = midPx (spot contexts have no funding/oracle/OI).
- ``allMids``: MARK with ``price`` = the mid (a mid is not a mark, so ``mark_price`` stays ``None``).
- ``allDexsAssetCtxs``: MARK as for activeAssetCtx, for the coin at ``asset_index`` of the first dex.
- ``subscriptionResponse``, ``pong``, ``post``: control frames, ``[]``. ``error``: DecodeError.

The symbol: the contract's field dicts carry no symbol (the collector adds it), so a decoder is
bound to one coin with ``make_hyperliquid_decoder(coin)``. Frames that carry many coins (allMids,
allDexsAssetCtxs) yield only that coin's entry, and ``[]`` when it has none; the collector of each
symbol gets the same frame and takes its own coin from it. A single-coin frame for another coin is
a routing mistake and raises ``DecodeError``. ``decode_hyperliquid`` without a coin decodes
single-coin frames only.
"""

from __future__ import annotations

import json
from decimal import Decimal, InvalidOperation
from typing import Any

from arbor.adapters.decoding import DecodeError, Decoder
from arbor.messages.base import MarketEventKind, Side

Fields = dict[str, Any]

_NS_PER_MS = 1_000_000
_CONTROL_CHANNELS = frozenset({"subscriptionResponse", "pong", "post"})


def make_hyperliquid_decoder(coin: str, asset_index: int | None = None) -> Decoder:
    """A decoder for ``coin``'s events. ``asset_index`` (its index in ``meta``'s universe) is needed
    only to read ``allDexsAssetCtxs``, whose contexts are listed by index, not name."""
    if not coin:
        raise ValueError("a Hyperliquid decoder needs a coin")

    def decode(payload: bytes) -> list[Fields]:
        return decode_hyperliquid(payload, coin=coin, asset_index=asset_index)

    decode.__name__ = f"decode_hyperliquid_{coin}"
    return decode


def decode_hyperliquid(payload: bytes, coin: str | None = None, asset_index: int | None = None) -> list[Fields]:
    """The market events of one Hyperliquid frame (for ``coin`` if given); ``[]`` for a control
    frame; else ``DecodeError``. Never raises anything else, whatever the bytes."""
    channel: Any = None
    try:
        frame = json.loads(payload)
        if type(frame) is not dict:
            raise DecodeError(f"expected a JSON object, got {type(frame).__name__}")
        channel = frame.get("channel")
        if type(channel) is not str:
            raise DecodeError("frame has no 'channel'")
        if channel in _CONTROL_CHANNELS:
            return []
        if channel == "error":
            raise DecodeError(f"venue error frame: {_short(frame.get('data'))}")
        data = frame["data"]
        if channel == "trades":
            return _trades(data, coin)
        if channel == "l2Book":
            return [_l2_book(_obj(data, "l2Book"), coin)]
        if channel == "bbo":
            return [_bbo(_obj(data, "bbo"), coin)]
        if channel in ("activeAssetCtx", "activeSpotAssetCtx"):
            data = _obj(data, channel)
            _check_coin(data, coin)
            return [_asset_ctx(_obj(data["ctx"], "ctx"), 0)]
        if channel == "allMids":
            return _all_mids(_obj(data, "allMids"), coin)
        if channel == "allDexsAssetCtxs":
            return _all_dexs_asset_ctxs(_obj(data, "allDexsAssetCtxs"), coin, asset_index)
        raise DecodeError(f"unsupported channel {_short(channel)}")
    except DecodeError:
        raise
    except KeyError as exc:
        where = f" in {channel}" if type(channel) is str else ""
        raise DecodeError(f"missing required field {_short(exc.args[0] if exc.args else exc)}{where}") from None
    except Exception as exc:  # fuzzed bytes: UnicodeDecodeError, RecursionError, TypeError, ...
        raise DecodeError(f"malformed frame: {type(exc).__name__}: {_short(str(exc), 200)}") from exc


# -- channels ----------------------------------------------------------------------------------


def _trades(data: Any, coin: str | None) -> list[Fields]:
    if type(data) is not list:
        raise DecodeError(f"trades data must be a list, got {type(data).__name__}")
    out = []
    for trade in data:
        trade = _obj(trade, "trade")
        _check_coin(trade, coin)
        out.append({
            "kind": MarketEventKind.TRADE,
            "ts_event_ns": _ms(trade["time"], "time"),
            "price": _dec(trade["px"], "px"),
            "qty": _dec(trade["sz"], "sz"),
            "side": _side(trade["side"]),
            "trade_id": _int(trade["tid"], "tid"),
        })
    return out


def _l2_book(data: dict[str, Any], coin: str | None) -> Fields:
    _check_coin(data, coin)
    levels = data["levels"]
    if type(levels) is not list or len(levels) != 2:
        raise DecodeError("l2Book 'levels' must be [bids, asks]")
    return {
        "kind": MarketEventKind.SNAPSHOT,
        "ts_event_ns": _ms(data["time"], "time"),
        "bids": _levels(levels[0], "bids"),
        "asks": _levels(levels[1], "asks"),
    }


def _bbo(data: dict[str, Any], coin: str | None) -> Fields:
    _check_coin(data, coin)
    sides = data["bbo"]
    if type(sides) is not list or len(sides) != 2:
        raise DecodeError("bbo 'bbo' must be [bid, ask]")
    fields: Fields = {"kind": MarketEventKind.QUOTE, "ts_event_ns": _ms(data["time"], "time")}
    for level, prefix in zip(sides, ("bid", "ask"), strict=True):
        if level is None:
            continue
        level = _obj(level, prefix)
        fields[f"{prefix}_price"] = _dec(level["px"], "px")
        fields[f"{prefix}_qty"] = _dec(level["sz"], "sz")
    return fields


def _asset_ctx(ctx: dict[str, Any], ts_event_ns: int) -> Fields:
    fields: Fields = {"kind": MarketEventKind.MARK, "ts_event_ns": ts_event_ns, "mark_price": _dec(ctx["markPx"], "markPx")}
    for key, name in (("oraclePx", "index_price"), ("funding", "funding_rate"), ("openInterest", "open_interest"), ("midPx", "price")):
        value = ctx.get(key)
        if value is not None:  # midPx is null on an empty book; spot contexts have no oracle/funding/OI
            fields[name] = _dec(value, key)
    return fields


def _all_mids(data: dict[str, Any], coin: str | None) -> list[Fields]:
    mids = _obj(data["mids"], "mids")
    if coin is None:
        raise DecodeError("allMids carries every coin: decode it with make_hyperliquid_decoder(coin)")
    mid = mids.get(coin)
    if mid is None:
        return []
    # No time in the frame: 0 tells the collector to use the receive time.
    return [{"kind": MarketEventKind.MARK, "ts_event_ns": 0, "price": _dec(mid, coin)}]


def _all_dexs_asset_ctxs(data: dict[str, Any], coin: str | None, asset_index: int | None) -> list[Fields]:
    ctxs = data["ctxs"]
    if type(ctxs) is not list:
        raise DecodeError("allDexsAssetCtxs 'ctxs' must be a list of [dex, contexts]")
    if coin is None or asset_index is None:
        raise DecodeError("allDexsAssetCtxs lists contexts by asset index: build the decoder with asset_index")
    for entry in ctxs:
        if type(entry) is not list or len(entry) != 2 or type(entry[0]) is not str or type(entry[1]) is not list:
            raise DecodeError("allDexsAssetCtxs entry must be [dex, [context, ...]]")
        dex, contexts = entry
        if dex == "":
            if asset_index >= len(contexts):
                return []
            return [_asset_ctx(_obj(contexts[asset_index], "ctx"), 0)]
    return []


# -- field readers ------------------------------------------------------------------------------


def _check_coin(data: dict[str, Any], coin: str | None) -> None:
    frame_coin = data["coin"]
    if type(frame_coin) is not str:
        raise DecodeError("field 'coin' must be a string")
    if coin is not None and frame_coin != coin:
        raise DecodeError(f"frame is for {_short(frame_coin)}, this decoder for {coin!r}")


def _obj(value: Any, name: str) -> dict[str, Any]:
    if type(value) is not dict:
        raise DecodeError(f"{name} must be an object, got {type(value).__name__}")
    return value


def _dec(value: Any, name: str) -> Decimal:
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
    if type(raw) is not list:
        raise DecodeError(f"{name} must be a list of levels")
    return tuple((_dec(_obj(level, name)["px"], "px"), _dec(level["sz"], "sz")) for level in raw)


def _int(value: Any, name: str) -> int:
    if type(value) is not int:
        raise DecodeError(f"field {name!r} must be an integer, got {type(value).__name__}")
    return value


def _ms(value: Any, name: str) -> int:
    if type(value) is not int or value < 0:
        raise DecodeError(f"time field {name!r} must be a non-negative integer of ms, got {_short(value)}")
    return value * _NS_PER_MS


def _side(value: Any) -> Side:
    if value == "B":
        return Side.BUY
    if value == "A":
        return Side.SELL
    raise DecodeError(f"field 'side' must be 'B' or 'A', got {_short(value)}")


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
