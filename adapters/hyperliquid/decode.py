"""Hyperliquid market data: websocket frames decoded into ``RawMarketEvent`` fields.

Wire format: https://hyperliquid.gitbook.io/hyperliquid-docs/for-developers/api/websocket/subscriptions
Every frame is ``{"channel": ..., "data": ...}``. Prices and sizes are decimal strings and become
``Decimal``; times are integer ms and become ns. Fields are validated at the boundary as the
venue documents them (``adapters.fields``; docs/venues.md lists the rules). Same contract as ``adapters.binance.usdm.decode_usdm``
(see ``adapters.decoding``): a list of field dicts, ``[]`` for a control frame, else ``DecodeError``.

Channels:

- ``trades``: a list of trades, one TRADE each (``side`` B/A is the aggressor's, ``tid`` the id).
- ``l2Book``: SNAPSHOT with both sides (``levels`` = ``[bids, asks]``); the l2Book info answer
  wrapped in the same envelope decodes the same way.
- ``bbo``: QUOTE; an empty side (``null``) leaves its price and size ``None``.
- ``activeAssetCtx``: MARK with ``mark_price`` = markPx, ``index_price`` = oraclePx,
  ``funding_rate``, ``open_interest`` and ``price`` = midPx (spot contexts have no funding/oracle/OI).
- ``allMids``: MARK with ``price`` = the mid (a mid is not a mark, so ``mark_price`` stays ``None``).
- ``allDexsAssetCtxs``: MARK as for activeAssetCtx, for the coin at ``asset_index`` of the main dex
  (``""``); a frame that lists no main dex is a DecodeError.
- ``subscriptionResponse``, ``pong``, ``post``: control frames, ``[]``. ``error``: DecodeError.

The symbol: the contract's field dicts carry no symbol (the collector adds it), so a decoder is
bound to one coin with ``make_hyperliquid_decoder(coin)``. Frames that carry many coins (allMids,
allDexsAssetCtxs) yield only that coin's entry, and ``[]`` when it has none; the collector of each
symbol gets the same frame and takes its own coin from it. A single-coin frame for another coin is
a routing mistake and raises ``DecodeError``. ``decode_hyperliquid`` without a coin decodes
single-coin frames only.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from arbor.adapters.decoding import DecodeError, Decoder
from arbor.adapters.fields import (
    check_levels_not_crossed,
    check_not_crossed,
    decimal,
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
        frame = load_json(payload)
        if type(frame) is not dict:
            raise DecodeError(f"expected a JSON object, got {type(frame).__name__}")
        channel = frame.get("channel")
        if type(channel) is not str:
            raise DecodeError("frame has no 'channel'")
        if channel in _CONTROL_CHANNELS:
            return []
        if channel == "error":
            raise DecodeError(f"venue error frame: {short(frame.get('data'))}")
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
        raise DecodeError(f"unsupported channel {short(channel)}")
    except DecodeError:
        raise
    except KeyError as exc:
        where = f" in {channel}" if type(channel) is str else ""
        raise DecodeError(f"missing required field {short(exc.args[0] if exc.args else exc)}{where}") from None
    except Exception as exc:  # fuzzed bytes: UnicodeDecodeError, RecursionError, TypeError, ...
        raise DecodeError(f"malformed frame: {type(exc).__name__}: {short(str(exc), 200)}") from exc


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
            "ts_event_ns": ms_to_ns(trade["time"], "time"),
            "price": price(trade["px"], "px"),
            "qty": size(trade["sz"], "sz"),
            "side": _side(trade["side"]),
            "trade_id": venue_id(trade["tid"], "tid"),
        })
    return out


def _l2_book(data: dict[str, Any], coin: str | None) -> Fields:
    _check_coin(data, coin)
    levels = data["levels"]
    if type(levels) is not list or len(levels) != 2:
        raise DecodeError("l2Book 'levels' must be [bids, asks]")
    bids, asks = _levels(levels[0], "bids"), _levels(levels[1], "asks")
    check_levels_not_crossed(bids, asks, "l2Book")
    return {"kind": MarketEventKind.SNAPSHOT, "ts_event_ns": ms_to_ns(data["time"], "time"),
            "bids": _level_text(levels[0]), "asks": _level_text(levels[1])}


def _bbo(data: dict[str, Any], coin: str | None) -> Fields:
    _check_coin(data, coin)
    sides = data["bbo"]
    if type(sides) is not list or len(sides) != 2:
        raise DecodeError("bbo 'bbo' must be [bid, ask]")
    fields: Fields = {"kind": MarketEventKind.QUOTE, "ts_event_ns": ms_to_ns(data["time"], "time")}
    for level, prefix in zip(sides, ("bid", "ask"), strict=True):
        if level is None:
            continue
        level = _obj(level, prefix)
        fields[f"{prefix}_price"] = price(level["px"], "px")
        fields[f"{prefix}_qty"] = size(level["sz"], "sz")
    check_not_crossed(fields.get("bid_price"), fields.get("ask_price"), "bbo")
    return fields


# An asset context's optional fields: (key, field name, rule). Funding may be negative, open interest 0.
_CTX_FIELDS = (("oraclePx", "index_price", price), ("funding", "funding_rate", decimal),
               ("openInterest", "open_interest", level_size), ("midPx", "price", price))


def _asset_ctx(ctx: dict[str, Any], ts_event_ns: int) -> Fields:
    fields: Fields = {"kind": MarketEventKind.MARK, "ts_event_ns": ts_event_ns, "mark_price": price(ctx["markPx"], "markPx")}
    for key, name, rule in _CTX_FIELDS:
        value = ctx.get(key)
        if value is not None:  # midPx is null on an empty book; spot contexts have no oracle/funding/OI
            fields[name] = rule(value, key)
    return fields


def _all_mids(data: dict[str, Any], coin: str | None) -> list[Fields]:
    mids = _obj(data["mids"], "mids")
    if coin is None:
        raise DecodeError("allMids carries every coin: decode it with make_hyperliquid_decoder(coin)")
    mid = mids.get(coin)
    if mid is None:
        return []
    # No time in the frame: 0 tells the collector to use the receive time.
    return [{"kind": MarketEventKind.MARK, "ts_event_ns": 0, "price": price(mid, coin)}]


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
    # The venue lists the main dex ("") first in every frame: without it the frame is malformed,
    # not "no context for this coin" (which nobody would count).
    raise DecodeError("allDexsAssetCtxs lists no main dex ('')")


# -- field readers ------------------------------------------------------------------------------


def _check_coin(data: dict[str, Any], coin: str | None) -> None:
    frame_coin = data["coin"]
    if type(frame_coin) is not str:
        raise DecodeError("field 'coin' must be a string")
    if coin is not None and frame_coin != coin:
        raise DecodeError(f"frame is for {short(frame_coin)}, this decoder for {coin!r}")


def _obj(value: Any, name: str) -> dict[str, Any]:
    if type(value) is not dict:
        raise DecodeError(f"{name} must be an object, got {type(value).__name__}")
    return value


def _levels(raw: Any, name: str) -> tuple[tuple[Decimal, Decimal], ...]:
    if type(raw) is not list:
        raise DecodeError(f"{name} must be a list of levels")
    # A snapshot level is resting size at a price: price and size > 0.
    objs = [_obj(level, name) for level in raw]
    return levels([o["px"] for o in objs], [o["sz"] for o in objs], name, deletes=False)


def _level_text(raw: list[dict[str, Any]]) -> bytes:
    """The canonical level text (``messages.market``) of checked ``{px, sz}`` levels: their own strings."""
    return levels_text((level["px"], level["sz"]) for level in raw)


def _side(value: Any) -> Side:
    if value == "B":
        return Side.BUY
    if value == "A":
        return Side.SELL
    raise DecodeError(f"field 'side' must be 'B' or 'A', got {short(value)}")
