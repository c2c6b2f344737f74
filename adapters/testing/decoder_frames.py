"""Real frames for every decoder entry point the collector uses, and where each one's fields sit.

An entry point is one (decoder, message type) pair: the collector calls ``decoder_for(venue)``
and each message type is read by its own code. Frames come from the recordings in
``../shared/data`` where a recording has the type; the rest (USD-M markPriceUpdate and forceOrder,
spot trade, Hyperliquid trades and bbo) use the documented wire shape with real values.
Each entry point names the paths of its fields by rule (see docs/venues.md, "Validation rules"):
``price`` > 0, ``size`` > 0, ``level_size`` >= 0 (0 deletes a level), ``ids`` 0..2^63-1, ``times``
ms 0..(2^63-1)//10^6, and ``crossed`` builds the frame with its top of book crossed.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from arbor.adapters.binance.kline import decode_usdm_with_klines
from arbor.adapters.binance.spot import decode_spot
from arbor.adapters.binance.usdm import decode_usdm
from arbor.adapters.decoding import Decoder
from arbor.adapters.hyperliquid import make_hyperliquid_decoder
from arbor.adapters.recorded.cf3 import read_cf3
from arbor.adapters.recorded.hbt import read_hbt
from arbor.adapters.testing.hyperliquid_server import cassette_answers

Path_ = tuple[Any, ...]


@dataclass(frozen=True)
class EntryPoint:
    """One decoder entry point: its decoder, a real frame, and its fields' paths by rule."""

    name: str
    decode: Decoder
    frame: dict[str, Any]
    prices: tuple[Path_, ...] = ()
    sizes: tuple[Path_, ...] = ()
    level_sizes: tuple[Path_, ...] = ()
    ids: tuple[Path_, ...] = ()
    times: tuple[Path_, ...] = ()
    crossed: Callable[[dict[str, Any]], None] | None = field(default=None, compare=False)


def encode(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def with_value(frame: dict[str, Any], path: Path_, value: Any) -> dict[str, Any]:
    """A deep copy of ``frame`` with the value at ``path`` replaced."""
    out = copy.deepcopy(frame)
    target = out
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return out


def _first_of_types(frames: Any, wanted: set[str]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for _, _, raw in frames:
        obj = json.loads(raw)
        data = obj.get("data", obj)
        kind = "snapshot" if "lastUpdateId" in data else data.get("e", "bookTicker")
        if kind in wanted and kind not in found:
            found[kind] = obj
            if len(found) == len(wanted):
                break
    return found


def _cross_quote(bid: Path_, ask: Path_) -> Callable[[dict[str, Any]], None]:
    def cross(frame: dict[str, Any]) -> None:
        b, a = _get(frame, bid), _get(frame, ask)
        _set(frame, bid, a)
        _set(frame, ask, b)
    return cross


def _cross_binance_levels(bids: Path_, asks: Path_) -> Callable[[dict[str, Any]], None]:
    """An ask level added at the best bid's price less one tick: the book after it is crossed."""
    def cross(frame: dict[str, Any]) -> None:
        bid_levels = _get(frame, bids)
        best = max((lvl for lvl in bid_levels if float(lvl[1]) > 0), key=lambda lvl: float(lvl[0]))
        _get(frame, asks).append([f"{float(best[0]) * 0.999:.2f}", "1.000"])
    return cross


def _cross_hl_book(frame: dict[str, Any]) -> None:
    bids, asks = frame["data"]["levels"]
    asks.append({"px": f"{float(bids[0]['px']) * 0.999:.4f}", "sz": "1.0", "n": 1})


def _get(obj: Any, path: Path_) -> Any:
    for key in path:
        obj = obj[key]
    return obj


def _set(obj: Any, path: Path_, value: Any) -> None:
    _get(obj, path[:-1])[path[-1]] = value


USDM_MARK = {"stream": "btcusdt@markPrice", "data": {
    "e": "markPriceUpdate", "E": 1723161257000, "s": "BTCUSDT", "p": "61801.12345678", "i": "61795.50",
    "P": "61790.1", "r": "0.00010000", "T": 1723190400000}}
USDM_FORCE_ORDER = {"stream": "btcusdt@forceOrder", "data": {"e": "forceOrder", "E": 1723161258001, "o": {
    "s": "BTCUSDT", "S": "SELL", "o": "LIMIT", "f": "IOC", "q": "0.014", "p": "61500.00", "ap": "61620.40",
    "X": "FILLED", "l": "0.014", "z": "0.014", "T": 1723161258000}}}
SPOT_TRADE = {"stream": "nknusdt@trade", "data": {
    "e": "trade", "E": 1633998523963, "s": "NKNUSDT", "t": 19862790, "p": "0.35280000", "q": "58.00000000",
    "T": 1633998523962, "m": True, "M": True}}
HL_TRADES = {"channel": "trades", "data": [
    {"coin": "BTC", "side": "B", "px": "66653.0", "sz": "0.001", "hash": "0xe29f", "time": 1781528065899,
     "tid": 745210434703679, "users": ["0x360878d351f05975e25f1807a27895e1e5e004fb", "0x31ca8395cf837de08b24da3f660e77761dfb974b"]}]}
HL_BBO = {"channel": "bbo", "data": {"coin": "BTC", "time": 1781528065950,
                                     "bbo": [{"px": "66652.5", "sz": "1.2", "n": 3}, {"px": "66653.0", "sz": "0.4", "n": 1}]}}

_D = ("data",)


def entry_points(data_dir: Path) -> list[EntryPoint]:
    """Every entry point with a frame from the recordings in ``data_dir`` (or its documented shape)."""
    usdm = _first_of_types(read_hbt(data_dir / "binance_usdm" / "usdm_btcusdt_20240808.gz"),
                           {"trade", "bookTicker", "depthUpdate", "snapshot"})
    usdm_cf3 = _first_of_types(read_cf3(data_dir / "binance_usdm_multi" / "cryptofeed_binance_futures_2021.jsonl.gz"),
                               {"aggTrade", "kline"})
    spot = _first_of_types(read_cf3(data_dir / "binance_spot" / "cryptofeed_binance_spot_2021.jsonl.gz"),
                           {"aggTrade", "bookTicker", "depthUpdate", "snapshot", "kline"})
    hl = data_dir / "hyperliquid"
    all_mids = json.loads((hl / "nautilus" / "ws_allmids.json").read_text())
    dexs = json.loads((hl / "nautilus" / "ws_all_dexs_asset_ctxs.json").read_text())
    book = cassette_answers(hl / "sdk_cassettes")["l2Book"]
    btc_ctx = dexs["data"]["ctxs"][0][1][0]
    hl_btc = make_hyperliquid_decoder("BTC", asset_index=0)
    kline_prices = tuple(_D + ("k", k) for k in "ohlc")
    out: list[EntryPoint] = []
    for market, decode, frames in (("usdm", decode_usdm, usdm), ("spot", decode_spot, spot)):
        book_ticker = frames["bookTicker"]
        bt = _D if "data" in book_ticker else ()
        out += [
            EntryPoint(f"{market}.bookTicker", decode, book_ticker, prices=(bt + ("b",), bt + ("a",)),
                       sizes=(bt + ("B",), bt + ("A",)), ids=(bt + ("u",),), crossed=_cross_quote(bt + ("b",), bt + ("a",))),
            EntryPoint(f"{market}.depthUpdate", decode, frames["depthUpdate"], prices=(_D + ("b", 0, 0),),
                       level_sizes=(_D + ("b", 0, 1),), ids=(_D + ("U",), _D + ("u",)),
                       times=(_D + ("T" if market == "usdm" else "E",),),
                       crossed=_cross_binance_levels(_D + ("b",), _D + ("a",))),
        ]
        snap = frames["snapshot"]
        sp = _D if "data" in snap else ()
        out.append(EntryPoint(f"{market}.snapshot", decode, snap, prices=(sp + ("bids", 0, 0), sp + ("asks", 0, 0)),
                              sizes=(sp + ("bids", 0, 1),), ids=(sp + ("lastUpdateId",),),
                              crossed=_cross_binance_levels(sp + ("bids",), sp + ("asks",))))
    out += [
        EntryPoint("usdm.trade", decode_usdm, usdm["trade"], prices=(_D + ("p",),), sizes=(_D + ("q",),),
                   ids=(_D + ("t",),), times=(_D + ("T",),)),
        EntryPoint("usdm.aggTrade", decode_usdm, usdm_cf3["aggTrade"], prices=(_D + ("p",),), sizes=(_D + ("q",),),
                   ids=(_D + ("a",),), times=(_D + ("T",),)),
        EntryPoint("usdm.markPriceUpdate", decode_usdm, USDM_MARK, prices=(_D + ("p",), _D + ("i",)), times=(_D + ("E",),)),
        EntryPoint("usdm.forceOrder", decode_usdm, USDM_FORCE_ORDER, prices=(_D + ("o", "p"),),
                   sizes=(_D + ("o", "q"),), times=(_D + ("o", "T"),)),
        EntryPoint("usdm.kline", decode_usdm_with_klines, usdm_cf3["kline"], prices=kline_prices,
                   level_sizes=(_D + ("k", "v"),), ids=(_D + ("k", "n"),), times=(_D + ("k", "t"),)),
        EntryPoint("spot.trade", decode_spot, SPOT_TRADE, prices=(_D + ("p",),), sizes=(_D + ("q",),),
                   ids=(_D + ("t",),), times=(_D + ("T",),)),
        EntryPoint("spot.aggTrade", decode_spot, spot["aggTrade"], prices=(_D + ("p",),), sizes=(_D + ("q",),),
                   ids=(_D + ("a",),), times=(_D + ("T",),)),
        EntryPoint("spot.kline", decode_spot, spot["kline"], prices=kline_prices, level_sizes=(_D + ("k", "v"),),
                   ids=(_D + ("k", "n"),), times=(_D + ("k", "T"),)),
        EntryPoint("hyperliquid.trades", hl_btc, HL_TRADES, prices=(_D + (0, "px"),), sizes=(_D + (0, "sz"),),
                   ids=(_D + (0, "tid"),), times=(_D + (0, "time"),)),
        EntryPoint("hyperliquid.bbo", hl_btc, HL_BBO, prices=(_D + ("bbo", 0, "px"), _D + ("bbo", 1, "px")),
                   sizes=(_D + ("bbo", 0, "sz"),), times=(_D + ("time",),),
                   crossed=_cross_quote(_D + ("bbo", 0, "px"), _D + ("bbo", 1, "px"))),
        EntryPoint("hyperliquid.l2Book", make_hyperliquid_decoder(book["coin"]), {"channel": "l2Book", "data": book},
                   prices=(_D + ("levels", 0, 0, "px"), _D + ("levels", 1, 0, "px")), sizes=(_D + ("levels", 1, 0, "sz"),),
                   times=(_D + ("time",),), crossed=_cross_hl_book),
        EntryPoint("hyperliquid.activeAssetCtx", hl_btc, {"channel": "activeAssetCtx", "data": {"coin": "BTC", "ctx": btc_ctx}},
                   prices=(_D + ("ctx", "markPx"), _D + ("ctx", "oraclePx"), _D + ("ctx", "midPx"))),
        EntryPoint("hyperliquid.allMids", hl_btc, all_mids, prices=(_D + ("mids", "BTC"),)),
        EntryPoint("hyperliquid.allDexsAssetCtxs", hl_btc, dexs,
                   prices=(_D + ("ctxs", 0, 1, 0, "markPx"), _D + ("ctxs", 0, 1, 0, "oraclePx"))),
    ]
    return out

