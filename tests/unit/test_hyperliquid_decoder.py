"""The Hyperliquid decoder on real recorded messages, frames in the documented wire format, and fuzzing."""

from __future__ import annotations

import contextlib
import json
from decimal import Decimal as D
from pathlib import Path
from typing import Any

import pytest
from arbor.adapters.decoding import DecodeError
from arbor.adapters.hyperliquid import decode_hyperliquid, make_hyperliquid_decoder
from arbor.adapters.testing.hyperliquid_server import cassette_answers
from arbor.messages.base import MarketEventKind, Side
from arbor.messages.market import RawMarketEvent, decimal_levels
from hypothesis import given
from hypothesis import strategies as st

MS = 1_000_000

# Documented websocket shapes (subscriptions page), with values in the real format.
TRADES = {"channel": "trades", "data": [
    {"coin": "BTC", "side": "B", "px": "66653.0", "sz": "0.001", "hash": "0xe29f", "time": 1781528065899,
     "tid": 745210434703679, "users": ["0x360878d351f05975e25f1807a27895e1e5e004fb", "0x31ca8395cf837de08b24da3f660e77761dfb974b"]},
    {"coin": "BTC", "side": "A", "px": "66652.5", "sz": "0.25", "hash": "0xe2a0", "time": 1781528065901,
     "tid": 745210434703680, "users": ["0x31ca8395cf837de08b24da3f660e77761dfb974b", "0x360878d351f05975e25f1807a27895e1e5e004fb"]},
]}
BBO = {"channel": "bbo", "data": {"coin": "BTC", "time": 1781528065950,
                                   "bbo": [{"px": "66652.5", "sz": "1.2", "n": 3}, {"px": "66653.0", "sz": "0.4", "n": 1}]}}
CONTROL = [{"channel": "subscriptionResponse", "data": {"method": "subscribe", "subscription": {"type": "trades", "coin": "BTC"}}},
           {"channel": "pong"}]


def frame(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def nautilus(shared_data: Path, name: str) -> bytes:
    return (shared_data / "hyperliquid" / "nautilus" / name).read_bytes()


def real_frames(shared_data: Path) -> list[tuple[str, bytes]]:
    """(coin, frame) of every real market-data message we have: recorded ws frames, and recorded
    info answers in the ws envelope of the same channel (l2Book; asset contexts as activeAssetCtx)."""
    out = [("BTC", nautilus(shared_data, "ws_allmids.json")), ("ETH", nautilus(shared_data, "ws_allmids.json"))]
    book = cassette_answers(shared_data / "hyperliquid" / "sdk_cassettes")["l2Book"]
    out.append((book["coin"], frame({"channel": "l2Book", "data": book})))
    ctxs = json.loads(nautilus(shared_data, "ws_all_dexs_asset_ctxs.json"))["data"]["ctxs"][0][1]
    out += [("BTC", frame({"channel": "activeAssetCtx", "data": {"coin": "BTC", "ctx": ctx}})) for ctx in ctxs]
    return out


def test_all_mids_gives_the_bound_coins_mid(shared_data):
    """allMids yields one MARK with the coin's mid as price, receive time (0) as event time."""
    payload = nautilus(shared_data, "ws_allmids.json")
    assert make_hyperliquid_decoder("BTC")(payload) == [{"kind": MarketEventKind.MARK, "ts_event_ns": 0, "price": D("80868.5")}]
    assert make_hyperliquid_decoder("PURR/USDC")(payload)[0]["price"] == D("0.067131")
    assert make_hyperliquid_decoder("DOGE")(payload) == []


def test_all_mids_without_a_coin_is_a_decode_error(shared_data):
    """A frame for every coin cannot be decoded for no coin in particular."""
    with pytest.raises(DecodeError, match="make_hyperliquid_decoder"):
        decode_hyperliquid(nautilus(shared_data, "ws_allmids.json"))


def test_all_dexs_asset_ctxs_reads_the_coin_at_its_asset_index(shared_data):
    """allDexsAssetCtxs gives MARK for the asset index: mark, oracle, funding, OI and mid as in the payload."""
    payload = nautilus(shared_data, "ws_all_dexs_asset_ctxs.json")
    ctx = json.loads(payload)["data"]["ctxs"][0][1][1]
    assert make_hyperliquid_decoder("ETH", asset_index=1)(payload) == [{
        "kind": MarketEventKind.MARK, "ts_event_ns": 0, "mark_price": D(ctx["markPx"]), "index_price": D(ctx["oraclePx"]),
        "funding_rate": D(ctx["funding"]), "open_interest": D(ctx["openInterest"]), "price": D(ctx["midPx"])}]
    with pytest.raises(DecodeError, match="asset_index"):
        make_hyperliquid_decoder("ETH")(payload)


def test_all_dexs_asset_ctxs_without_the_main_dex_is_a_decode_error(shared_data):
    """Found by the decoder fuzz (a dex name mutated to "1e999999"): a frame whose contexts list no
    main dex ("") was taken as "no context for this coin", an empty result nobody counted. The
    venue always lists the main dex first, so its absence is a malformed frame: a DecodeFailure."""
    real = json.loads(nautilus(shared_data, "ws_all_dexs_asset_ctxs.json"))
    real["data"]["ctxs"][0][0] = "1e999999"
    assert all(dex != "" for dex, _ in real["data"]["ctxs"])
    with pytest.raises(DecodeError, match="main dex"):
        make_hyperliquid_decoder("ETH", asset_index=1)(frame(real))


def test_recorded_l2_book_is_a_snapshot_with_the_payload_levels(shared_data):
    """The recorded DYDX book: SNAPSHOT whose bids and asks equal the payload's px/sz, in order."""
    book = cassette_answers(shared_data / "hyperliquid" / "sdk_cassettes")["l2Book"]
    (event,) = make_hyperliquid_decoder("DYDX")(frame({"channel": "l2Book", "data": book}))
    assert event["kind"] is MarketEventKind.SNAPSHOT and event["ts_event_ns"] == book["time"] * MS
    assert decimal_levels(event["bids"]) == tuple((D(lv["px"]), D(lv["sz"])) for lv in book["levels"][0])
    assert decimal_levels(event["asks"]) == tuple((D(lv["px"]), D(lv["sz"])) for lv in book["levels"][1])


def test_every_real_message_decodes_into_valid_events(shared_data):
    """Zero failures on the real messages, and every field dict builds a RawMarketEvent."""
    count = 0
    for coin, payload in real_frames(shared_data):
        for part, fields in enumerate(make_hyperliquid_decoder(coin)(payload)):
            RawMarketEvent(symbol=coin, venue="hyperliquid", ingest_seq=count, ts_recv_ns=1, raw=payload, part=part, **fields)
            count += 1
    assert count >= 10


def test_asset_ctx_with_null_mid_omits_the_price(shared_data):
    """A context whose midPx is null (empty book) still gives the mark, without a price."""
    ctxs = json.loads(nautilus(shared_data, "ws_all_dexs_asset_ctxs.json"))["data"]["ctxs"][0][1]
    ctx = next(c for c in ctxs if c["midPx"] is None)
    (event,) = decode_hyperliquid(frame({"channel": "activeAssetCtx", "data": {"coin": "X", "ctx": ctx}}))
    assert event["mark_price"] == D(ctx["markPx"]) and "price" not in event


def test_trades_frame_gives_one_trade_per_entry():
    """An array of trades becomes several TRADE events with aggressor side, price, size, tid and time."""
    assert make_hyperliquid_decoder("BTC")(frame(TRADES)) == [
        {"kind": MarketEventKind.TRADE, "ts_event_ns": 1781528065899 * MS, "price": D("66653.0"), "qty": D("0.001"),
         "side": Side.BUY, "trade_id": 745210434703679},
        {"kind": MarketEventKind.TRADE, "ts_event_ns": 1781528065901 * MS, "price": D("66652.5"), "qty": D("0.25"),
         "side": Side.SELL, "trade_id": 745210434703680},
    ]


def test_bbo_is_a_quote_and_an_empty_side_stays_empty():
    """bbo gives QUOTE; a null side leaves that side's fields out (None in the event)."""
    assert decode_hyperliquid(frame(BBO)) == [{"kind": MarketEventKind.QUOTE, "ts_event_ns": 1781528065950 * MS,
                                               "bid_price": D("66652.5"), "bid_qty": D("1.2"), "ask_price": D("66653.0"), "ask_qty": D("0.4")}]
    one_sided = {"channel": "bbo", "data": {**BBO["data"], "bbo": [None, BBO["data"]["bbo"][1]]}}
    (event,) = decode_hyperliquid(frame(one_sided))
    assert "bid_price" not in event and event["ask_price"] == D("66653.0")


@pytest.mark.parametrize("control", CONTROL)
def test_control_frames_decode_to_nothing(control):
    """subscriptionResponse and pong carry no market data."""
    assert make_hyperliquid_decoder("BTC")(frame(control)) == []


def test_a_frame_for_another_coin_is_a_routing_error():
    """A single-coin BTC frame given to the ETH decoder raises DecodeError naming both."""
    with pytest.raises(DecodeError, match="'BTC', this decoder for 'ETH'"):
        make_hyperliquid_decoder("ETH")(frame(BBO))


@pytest.mark.parametrize("payload", [b"", b"null", b"[]", b'{"channel":"error","data":"Invalid subscription"}',
                                     b'{"channel":"nope","data":{}}', b'{"channel":"trades","data":{}}',
                                     b'{"channel":"bbo","data":{"coin":"BTC","time":-1,"bbo":[null,null]}}',
                                     b'{"channel":"trades","data":[{"coin":"BTC","side":"X","px":"1","sz":"1","time":1,"tid":1}]}',
                                     b'{"channel":"l2Book","data":{"coin":"BTC","time":1,"levels":[[{"px":"NaN","sz":"1"}],[]]}}'])
def test_malformed_frames_raise_decode_error(payload):
    """Garbage, venue errors, unknown channels, bad sides, negative times and NaN are DecodeError."""
    with pytest.raises(DecodeError):
        decode_hyperliquid(payload)


@given(st.binary(max_size=300))
def test_random_bytes_raise_only_decode_error(payload):
    """Whatever the bytes, the decoder returns events or raises DecodeError, nothing else."""
    with contextlib.suppress(DecodeError):
        make_hyperliquid_decoder("BTC", asset_index=0)(payload)


def _mutations(value: Any, draw: Any) -> Any:
    """Replace one randomly chosen node of a JSON value by a random JSON value."""
    junk = draw(st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=8),
                             lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
                             max_leaves=6))
    path: list[Any] = []
    node = value
    while isinstance(node, (dict, list)) and node and draw(st.booleans()):
        key = draw(st.sampled_from(list(node.keys()) if isinstance(node, dict) else list(range(len(node)))))
        path.append(key)
        node = node[key]
    if not path:
        return junk
    target = value
    for key in path[:-1]:
        target = target[key]
    if draw(st.booleans()) and isinstance(target, dict):
        del target[path[-1]]
    else:
        target[path[-1]] = junk
    return value


@given(st.data())
def test_mutated_real_messages_raise_only_decode_error(shared_data, data):
    """Real and documented frames with one node replaced or removed: events or DecodeError, nothing else."""
    bases = [json.loads(p) for _, p in real_frames(shared_data)[:4]] + [TRADES, BBO]
    base = json.loads(json.dumps(data.draw(st.sampled_from(bases))))
    payload = json.dumps(_mutations(base, data.draw)).encode()
    try:
        events = make_hyperliquid_decoder("BTC", asset_index=0)(payload)
    except DecodeError:
        return
    for fields in events:
        RawMarketEvent(symbol="BTC", venue="hyperliquid", ingest_seq=0, ts_recv_ns=1, raw=payload, **fields)
