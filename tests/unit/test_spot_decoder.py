"""The Binance spot decoder on frames in the real spot wire format, and under fuzzing."""

from __future__ import annotations

import contextlib
import json
from decimal import Decimal as D

import pytest
from arbor.adapters.binance.kline import decode_usdm_with_klines
from arbor.adapters.binance.spot import decode_spot
from arbor.adapters.decoding import DecodeError
from arbor.messages.base import MarketEventKind, Side
from arbor.messages.market import RawMarketEvent, levels_text
from hypothesis import given
from hypothesis import strategies as st

MS = 1_000_000

# Shapes as in the CF3 spot recording and Binance's spot stream docs.
TRADE = {"e": "trade", "E": 1633998523963, "s": "NKNUSDT", "t": 19862790, "p": "0.35280000",
         "q": "58.00000000", "T": 1633998523962, "m": True, "M": True}
AGG_TRADE = {"e": "aggTrade", "E": 1633998523963, "s": "NKNUSDT", "a": 15683430, "p": "0.35280000",
             "q": "58.00000000", "f": 19862790, "l": 19862790, "T": 1633998523963, "m": False, "M": True}
BOOK_TICKER = {"u": 499869768, "s": "NKNUSDT", "b": "0.35210000", "B": "672.00000000", "a": "0.35260000",
               "A": "3199.00000000"}
DEPTH = {"e": "depthUpdate", "E": 1633998512068, "s": "NKNUSDT", "U": 499869750, "u": 499869752,
         "b": [["0.35130000", "6195.00000000"], ["0.34750000", "0.00000000"]], "a": []}
PARTIAL_DEPTH = {"lastUpdateId": 160, "bids": [["0.0024", "10"]], "asks": [["0.0026", "100"]]}
KLINE = {"e": "kline", "E": 1633998523963, "s": "NKNUSDT", "k": {
    "t": 1633998480000, "T": 1633998539999, "s": "NKNUSDT", "i": "1m", "f": 19862761, "L": 19862790,
    "o": "0.35270000", "c": "0.35280000", "h": "0.35280000", "l": "0.35220000", "v": "25877.00000000", "n": 30,
    "x": False, "q": "9116.04600000", "V": "58.00000000", "Q": "20.46240000", "B": "0"}}


def frame(obj: object) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def wrapped(data: dict, stream: str = "nknusdt@x") -> bytes:
    return frame({"stream": stream, "data": data})


def only(payload: bytes) -> dict:
    events = decode_spot(payload)
    assert len(events) == 1
    return events[0]


def test_trade_fields_equal_the_payload():
    """A spot trade gives TRADE with price, qty, id and T in ns; buyer the maker means a SELL aggressor."""
    assert only(wrapped(TRADE, "nknusdt@trade")) == {
        "kind": MarketEventKind.TRADE, "ts_event_ns": 1633998523962 * MS, "price": D("0.35280000"),
        "qty": D("58.00000000"), "side": Side.SELL, "trade_id": 19862790}


def test_agg_trade_uses_the_aggregate_id():
    """An aggTrade's trade_id is its aggregate id 'a', not the first trade id 'f'."""
    fields = only(wrapped(AGG_TRADE, "nknusdt@aggTrade"))
    assert fields["trade_id"] == 15683430 and fields["side"] is Side.BUY


def test_book_ticker_without_event_type_or_time_is_a_quote_at_time_zero():
    """Spot bookTicker (no e/E/T) is a QUOTE with its update id and ts_event_ns 0 (receive time later)."""
    assert only(wrapped(BOOK_TICKER, "nknusdt@bookTicker")) == {
        "kind": MarketEventKind.QUOTE, "ts_event_ns": 0, "bid_price": D("0.35210000"), "bid_qty": D("672.00000000"),
        "ask_price": D("0.35260000"), "ask_qty": D("3199.00000000"), "last_update_id": 499869768}


def test_depth_update_has_no_prev_update_id():
    """A spot diff carries U and u; prev_update_id stays unset and a zero quantity is kept as a removal, its text as sent."""
    fields = only(wrapped(DEPTH, "nknusdt@depth@100ms"))
    assert fields == {"kind": MarketEventKind.DEPTH, "ts_event_ns": 1633998512068 * MS,
                      "bids": levels_text((("0.35130000", "6195.00000000"), ("0.34750000", "0.00000000"))), "asks": b"[]",
                      "first_update_id": 499869750, "last_update_id": 499869752}


def test_partial_depth_and_rest_snapshot_are_snapshots():
    """depth<N> frames and the REST body both decode as SNAPSHOT with lastUpdateId and ts 0."""
    for payload in (wrapped(PARTIAL_DEPTH, "nknusdt@depth5@100ms"), frame(PARTIAL_DEPTH)):
        assert only(payload) == {"kind": MarketEventKind.SNAPSHOT, "ts_event_ns": 0, "last_update_id": 160,
                                 "bids": levels_text(((D("0.0024"), D("10")),)), "asks": levels_text(((D("0.0026"), D("100")),))}


def test_valid_kline_yields_no_event_in_both_markets():
    """A well-formed kline is market data with no event kind yet: [] from the spot and futures decoders."""
    assert decode_spot(wrapped(KLINE, "nknusdt@kline_1m")) == []
    assert decode_usdm_with_klines(wrapped(KLINE, "nknusdt@kline_1m")) == []


@pytest.mark.parametrize("decode", [decode_spot, decode_usdm_with_klines])
def test_malformed_kline_is_a_decode_error(decode):
    """A kline missing its close price or with a float price is a DecodeError, not silently dropped."""
    broken = {**KLINE, "k": {k: v for k, v in KLINE["k"].items() if k != "c"}}
    with pytest.raises(DecodeError, match="'c'"):
        decode(wrapped(broken))
    floaty = {**KLINE, "k": {**KLINE["k"], "o": 0.3527}}
    with pytest.raises(DecodeError, match="k.o"):
        decode(wrapped(floaty))


def test_futures_decoder_with_klines_keeps_other_errors():
    """decode_usdm_with_klines still rejects unknown events and garbage."""
    with pytest.raises(DecodeError, match="unsupported"):
        decode_usdm_with_klines(wrapped({"e": "24hrTicker", "E": 1}))
    with pytest.raises(DecodeError):
        decode_usdm_with_klines(b"\xff")


def test_subscription_reply_is_a_control_frame_and_error_reply_is_not():
    """{"result": null, "id": 1} is []; an error reply is a DecodeError."""
    assert decode_spot(b'{"result":null,"id":1}') == []
    with pytest.raises(DecodeError, match="venue error"):
        decode_spot(b'{"error":{"code":2,"msg":"Invalid request"},"id":1}')


def test_decoded_fields_build_a_raw_market_event():
    """Every decoded frame's fields are valid RawMarketEvent keyword arguments."""
    for data in (TRADE, AGG_TRADE, BOOK_TICKER, DEPTH, PARTIAL_DEPTH):
        for fields in decode_spot(wrapped(data)):
            RawMarketEvent(symbol="NKNUSDT", venue="binance_spot", ingest_seq=1, ts_recv_ns=1, raw=b"", **fields)


@pytest.mark.parametrize("payload", [
    b"", b"[]", b"null", b'{"stream":"a@b","data":[]}', b'{"e":"trade"}', b'{"u":1,"b":"x","a":"1","B":"1","A":"1","s":"X"}',
    wrapped({**TRADE, "p": 0.3528}), wrapped({**DEPTH, "b": [["1", "2", "3"]]}), wrapped({**DEPTH, "U": "1"}),
    wrapped({**TRADE, "p": "NaN"}), wrapped({**BOOK_TICKER, "u": True}),
])
def test_malformed_frames_raise_decode_error(payload):
    """Malformed or wrongly typed frames raise DecodeError and nothing else."""
    with pytest.raises(DecodeError):
        decode_spot(payload)


@given(st.binary(max_size=200))
def test_random_bytes_only_raise_decode_error(payload):
    """Whatever the bytes, decode_spot returns a list or raises DecodeError."""
    with contextlib.suppress(DecodeError):
        assert isinstance(decode_spot(payload), list)


@given(st.sampled_from([TRADE, AGG_TRADE, BOOK_TICKER, DEPTH, PARTIAL_DEPTH, KLINE]), st.data())
def test_field_mutated_frames_only_raise_decode_error(event, data):
    """Replacing any field of a real-shaped frame with any JSON value never raises anything but DecodeError."""
    key = data.draw(st.sampled_from(sorted(event)))
    value = data.draw(st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False),
                                st.text(max_size=5), st.lists(st.text(max_size=3), max_size=3)))
    with contextlib.suppress(DecodeError):
        decode_spot(wrapped({**event, key: value}))
