"""The Binance USD-M decoder on hand-written frames in the real wire format, and under fuzzing."""

from __future__ import annotations

import json
from decimal import Decimal as D
from typing import Any

import pytest
from arbor.adapters.binance.usdm import decode_usdm, decode_usdm_reference
from arbor.adapters.decoding import DecodeError, decoder_for
from arbor.messages.base import MarketEventKind, Side
from arbor.messages.market import RawMarketEvent, levels_text
from hypothesis import given
from hypothesis import strategies as st

MS = 1_000_000

TRADE = {"e": "trade", "E": 1723161256322, "T": 1723161256321, "s": "BTCUSDT", "t": 5266583935,
         "p": "61800.30", "q": "0.006", "X": "MARKET", "m": False}
AGG_TRADE = {"e": "aggTrade", "E": 1723161256400, "a": 2254093861, "s": "BTCUSDT", "p": "61799.90",
             "q": "0.120", "f": 5266583940, "l": 5266583942, "T": 1723161256399, "m": True}
BOOK_TICKER = {"e": "bookTicker", "u": 5123107839020, "s": "BTCUSDT", "b": "61800.20", "B": "2.507",
               "a": "61800.30", "A": "2.510", "T": 1723161256313, "E": 1723161256314}
DEPTH = {"e": "depthUpdate", "E": 1723161256352, "T": 1723161256351, "s": "BTCUSDT", "U": 5123107837801,
         "u": 5123107842679, "pu": 5123107837557, "b": [["61800.20", "2.507"], ["61799.00", "0.000"]],
         "a": [["61800.30", "3.330"]]}
MARK = {"e": "markPriceUpdate", "E": 1723161257000, "s": "BTCUSDT", "p": "61801.12345678", "i": "61795.50",
        "P": "61790.1", "r": "0.00010000", "T": 1723190400000}
FORCE_ORDER: dict[str, Any] = {"e": "forceOrder", "E": 1723161258001, "o": {
    "s": "BTCUSDT", "S": "SELL", "o": "LIMIT", "f": "IOC", "q": "0.014", "p": "61500.00", "ap": "61620.40",
    "X": "FILLED", "l": "0.014", "z": "0.014", "T": 1723161258000}}
SNAPSHOT = {"lastUpdateId": 5123107852948, "E": 1723161256501, "T": 1723161256493,
            "bids": [["61800.20", "2.909"], ["61800.10", "0.696"]], "asks": [["61800.30", "1.001"]]}

REAL_FORMAT_FRAMES = [TRADE, AGG_TRADE, BOOK_TICKER, DEPTH, MARK, FORCE_ORDER]


def frame(obj: object) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def wrapped(data: dict, stream: str = "btcusdt@x") -> bytes:
    return frame({"stream": stream, "data": data})


def only(payload: bytes) -> dict:
    events = decode_usdm(payload)
    assert len(events) == 1
    return events[0]


def test_trade_fields_equal_the_payload():
    """A trade gives TRADE with its price, qty, id and T in ns; buyer not maker means a BUY aggressor."""
    assert only(wrapped(TRADE, "btcusdt@trade")) == {
        "kind": MarketEventKind.TRADE, "ts_event_ns": 1723161256321 * MS, "price": D("61800.30"),
        "qty": D("0.006"), "side": Side.BUY, "trade_id": 5266583935}


def test_agg_trade_fields_equal_the_payload():
    """An aggTrade gives TRADE with id from "a"; buyer is maker means a SELL aggressor."""
    assert only(frame(AGG_TRADE)) == {
        "kind": MarketEventKind.TRADE, "ts_event_ns": 1723161256399 * MS, "price": D("61799.90"),
        "qty": D("0.120"), "side": Side.SELL, "trade_id": 2254093861}


def test_book_ticker_fields_equal_the_payload():
    """A bookTicker gives QUOTE with best bid/ask, their quantities and the update id."""
    assert only(wrapped(BOOK_TICKER)) == {
        "kind": MarketEventKind.QUOTE, "ts_event_ns": 1723161256313 * MS, "bid_price": D("61800.20"),
        "bid_qty": D("2.507"), "ask_price": D("61800.30"), "ask_qty": D("2.510"), "last_update_id": 5123107839020}


def test_depth_update_fields_equal_the_payload():
    """A depthUpdate gives DEPTH with Decimal level tuples and U/u/pu."""
    assert only(wrapped(DEPTH)) == {
        "kind": MarketEventKind.DEPTH, "ts_event_ns": 1723161256351 * MS,
        "bids": levels_text(((D("61800.20"), D("2.507")), (D("61799.00"), D("0.000")))), "asks": levels_text(((D("61800.30"), D("3.330")),)),
        "first_update_id": 5123107837801, "last_update_id": 5123107842679, "prev_update_id": 5123107837557}


def test_mark_price_update_uses_event_time_not_next_funding_time():
    """A markPriceUpdate gives MARK with p, i, r, timed by E (its T is the next funding time)."""
    assert only(wrapped(MARK)) == {
        "kind": MarketEventKind.MARK, "ts_event_ns": 1723161257000 * MS, "mark_price": D("61801.12345678"),
        "index_price": D("61795.50"), "funding_rate": D("0.00010000")}


def test_mark_price_without_funding_rate_has_none():
    """A delivery contract's empty funding rate is left out, not an error."""
    assert "funding_rate" not in only(frame({**MARK, "r": ""}))


def test_force_order_uses_average_price_and_filled_qty():
    """A forceOrder gives LIQUIDATION with side S, average price ap, filled qty z and trade time o.T."""
    assert only(wrapped(FORCE_ORDER)) == {
        "kind": MarketEventKind.LIQUIDATION, "ts_event_ns": 1723161258000 * MS, "price": D("61620.40"),
        "qty": D("0.014"), "side": Side.SELL}


def test_force_order_falls_back_to_order_price_and_qty():
    """Without ap/z (or with them zero) a forceOrder takes the order's own p and q."""
    order = {k: v for k, v in FORCE_ORDER["o"].items() if k not in ("ap", "z")}
    event = only(frame({**FORCE_ORDER, "o": {**order, "ap": "0"}}))
    assert (event["price"], event["qty"]) == (D("61500.00"), D("0.014"))


def test_rest_snapshot_fields_equal_the_payload():
    """The REST depth snapshot line gives SNAPSHOT with lastUpdateId, levels and T."""
    assert only(frame(SNAPSHOT)) == {
        "kind": MarketEventKind.SNAPSHOT, "ts_event_ns": 1723161256493 * MS,
        "bids": levels_text(((D("61800.20"), D("2.909")), (D("61800.10"), D("0.696")))), "asks": levels_text(((D("61800.30"), D("1.001")),)),
        "last_update_id": 5123107852948}


def test_snapshot_without_times_has_zero_event_time():
    """A snapshot without T or E gets ts_event_ns 0, so the collector uses the receive time."""
    assert only(frame({"lastUpdateId": 1, "bids": [], "asks": []}))["ts_event_ns"] == 0


def test_event_time_falls_back_to_e_without_t():
    """Without T the event time is E."""
    trade = {k: v for k, v in TRADE.items() if k != "T"}
    assert only(frame(trade))["ts_event_ns"] == 1723161256322 * MS


def test_envelope_and_bare_event_decode_alike():
    """The combined-stream envelope changes nothing in the decoded fields."""
    for data in REAL_FORMAT_FRAMES:
        assert decode_usdm(wrapped(data)) == decode_usdm(frame(data))


def test_unknown_extra_fields_are_ignored():
    """Fields the decoder does not know do not change the result."""
    assert only(frame({**TRADE, "zz": [1, {"x": None}]})) == only(frame(TRADE))


def test_decoded_fields_build_a_raw_market_event():
    """Every decoded dict is valid keyword arguments for RawMarketEvent."""
    for data in [*REAL_FORMAT_FRAMES, SNAPSHOT]:
        RawMarketEvent(symbol="BTCUSDT", venue="binance_usdm", ingest_seq=1, ts_recv_ns=1, raw=b"", **only(frame(data)))


def test_subscription_reply_is_a_control_frame():
    """A subscription reply decodes to no events."""
    assert decode_usdm(b'{"result":null,"id":1}') == []


def test_venue_error_reply_is_a_decode_error():
    """An error reply from the venue is not mistaken for a control frame."""
    with pytest.raises(DecodeError, match="venue error reply"):
        decode_usdm(b'{"error":{"code":2,"msg":"Invalid request"},"id":1}')


def test_unknown_event_type_is_unsupported():
    """An event type the decoder does not know raises DecodeError naming it."""
    with pytest.raises(DecodeError, match="unsupported event type 'continuous_kline'"):
        decode_usdm(wrapped({"e": "continuous_kline", "E": 1, "k": {}}))


def test_malformed_kline_is_a_decode_failure():
    """Klines are validated: a malformed one is a DecodeError, never silently passed."""
    with pytest.raises(DecodeError, match="kline"):
        decode_usdm(wrapped({"e": "kline", "E": 1, "k": {}}))


def test_missing_required_field_names_it():
    """A missing required field raises DecodeError naming the field and event type."""
    with pytest.raises(DecodeError, match="missing required field 'pu' in depthUpdate"):
        decode_usdm(frame({k: v for k, v in DEPTH.items() if k != "pu"}))


@pytest.mark.parametrize(
    "payload",
    [
        b"", b"not json", b"[1,2]", b'"trade"', b"\xff\xfe\x00", b"[" * 100_000,
        frame({"stream": "btcusdt@trade", "data": [TRADE]}),
        frame({**TRADE, "p": 61800.3}),  # a float price would lose exactness
        frame({**TRADE, "p": "NaN"}),
        frame({**TRADE, "m": "false"}),
        frame({**TRADE, "t": True}),
        frame({**TRADE, "T": -1}),
        frame({**DEPTH, "b": [["1", "2", "3"]]}),
        frame({**DEPTH, "b": ["12"]}),
        frame({**DEPTH, "a": {"1": "2"}}),
        frame({**FORCE_ORDER, "o": {**FORCE_ORDER["o"], "S": "SHORT"}}),
        frame({"e": ["trade"]}),
        frame({"s": "BTCUSDT"}),
    ],
)
def test_malformed_frames_raise_decode_error(payload):
    """Malformed frames raise DecodeError and nothing else."""
    with pytest.raises(DecodeError):
        decode_usdm(payload)


def test_decoder_for_known_venues():
    """binance_usdm and the simulated venue both use the USD-M decoder."""
    assert decoder_for("binance_usdm") is decode_usdm
    assert decoder_for("sim") is decode_usdm


def test_decoder_for_unknown_venue_names_it():
    """An unknown venue raises ValueError naming the venue."""
    with pytest.raises(ValueError, match="'kraken'"):
        decoder_for("kraken")


# -- fuzzing ------------------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner, max_size=4),
    max_leaves=12,
)


def outcome(decode, payload: bytes) -> tuple[str, str]:
    """What ``decode`` makes of ``payload``, exactly: the events' repr (Decimal exponents too) or the error."""
    try:
        return "events", repr(decode(payload))
    except DecodeError as exc:
        return "DecodeError", str(exc)


def decodes_or_raises_decode_error(payload: bytes) -> None:
    # the fast path gives exactly what the reference path gives, events or error
    assert outcome(decode_usdm, payload) == outcome(decode_usdm_reference, payload)
    try:
        events = decode_usdm(payload)
    except DecodeError:
        return
    assert isinstance(events, list)
    for fields in events:
        RawMarketEvent(symbol="S", venue="v", ingest_seq=1, ts_recv_ns=1, raw=payload, **fields)


@given(st.binary(max_size=300))
def test_random_bytes_only_raise_decode_error(payload):
    """Random bytes either decode or raise DecodeError, never anything else."""
    decodes_or_raises_decode_error(payload)


@given(st.sampled_from([*REAL_FORMAT_FRAMES, SNAPSHOT]).map(frame), st.data())
def test_byte_mutated_frames_only_raise_decode_error(payload, data):
    """Real-format frames with bytes flipped, cut or inserted never raise anything but DecodeError."""
    buf = bytearray(payload)
    for _ in range(data.draw(st.integers(1, 4))):
        pos = data.draw(st.integers(0, len(buf)))
        op = data.draw(st.sampled_from(["set", "cut", "insert"]))
        if op == "set" and pos < len(buf):
            buf[pos] = data.draw(st.integers(0, 255))
        elif op == "cut":
            del buf[pos : pos + data.draw(st.integers(1, 8))]
        else:
            buf[pos:pos] = data.draw(st.binary(min_size=1, max_size=4))
    decodes_or_raises_decode_error(bytes(buf))


@given(st.sampled_from([*REAL_FORMAT_FRAMES, SNAPSHOT]), st.data())
def test_field_mutated_frames_only_raise_decode_error(event, data):
    """Real-format frames with a field replaced by any JSON value, or dropped, never raise anything but DecodeError."""
    event = json.loads(json.dumps(event))
    target = event["o"] if "o" in event and data.draw(st.booleans()) else event
    key = data.draw(st.sampled_from(sorted(target)))
    if data.draw(st.booleans()):
        del target[key]
    else:
        target[key] = data.draw(json_values)
    payload = wrapped(event) if data.draw(st.booleans()) else frame(event)
    decodes_or_raises_decode_error(payload)


@pytest.mark.parametrize("levels", [
    [["1", "2"]], [], [["1e5", "0.000"]], [["-0", "+1.50"]], [[" 1 ", "2"]], [["1_000", "2"]],
    [["NaN", "1"]], [["1", "Infinity"]], [["-inf", "1"]], [["sNaN", "1"]], [["1", "x"]], [["1", ""]],
    [[1, "2"]], [["1", 2]], [["1", "2", "3"]], [["1"]], ["12"], [{"a": 1, "b": 2}], [["1", None]], "12", None,
    [["1", "2"], ["3"]], [["1.5", "2"], ["3", "NaN"]],
])
@pytest.mark.parametrize("side", ["b", "a"])
def test_fast_path_depth_levels_match_the_reference(levels, side):
    """Odd depth levels: the fast path decodes them exactly as the reference does, or fails alike."""
    data = json.loads(json.dumps(DEPTH))
    data[side] = levels
    payload = wrapped(data, "btcusdt@depth")
    assert outcome(decode_usdm, payload) == outcome(decode_usdm_reference, payload)


@pytest.mark.parametrize("payload", [
    b'{"e":"bookTicker","u":18446744073709551616,"b":"1","B":"1","a":"2","A":"1","T":1}',  # > 64 bits
    b'{"e":"bookTicker","u":1,"b":"1","B":"1","a":"2","A":"1","T":1,"x":18446744073709551616}',
    b'{"e":"bookTicker","u":1,"b":"1","B":"1","a":"2","A":"1","T":1,"x":NaN}',
    b'\xef\xbb\xbf{"e":"bookTicker","u":1,"b":"1","B":"1","a":"2","A":"1","T":1}',  # a BOM
    b'{"e":"bookTicker","u":true,"b":"1","B":"1","a":"2","A":"1","T":1}',
    b'{"e":"bookTicker","b":"1","B":"1","a":"2","A":"1","T":-1}',
    b'{"e":"bookTicker","b":"1","B":"1","a":"2","A":"1","E":5}',
    b'{"e":"bookTicker","b":"1","B":"1","a":"2","A":"1","T":null,"E":5}',
    b'{"e":"trade","E":1,"T":2,"t":3,"p":"1","q":"1","m":1}',
    b'{"e":"trade","E":1,"T":2,"t":3.0,"p":"1","q":"1","m":false}',
    b'{"e":"trade","E":1,"T":2,"t":3,"p":"1","q":"-Infinity","m":false}',
    b'{"e":"aggTrade","E":1,"a":3,"p":"0.1","q":"1E+2","m":true}',
    b'{"stream":"x","data":{"e":"trade","E":1,"T":2,"t":3,"p":"1","q":"1","m":true}}',
    b'{"stream":"x","data":[1]}', b'{"stream":"x"}', b'[]', b'"e"', b'{"e":5}', b'{"e":["trade"]}',
    b'{"e":"depthUpdate","E":1,"U":1,"u":2,"pu":0,"b":[],"a":[]}',
])
def test_fast_path_matches_the_reference_on_edge_frames(payload):
    """Frames where orjson and the stdlib differ, or a field is just off: same events or same error."""
    assert outcome(decode_usdm, payload) == outcome(decode_usdm_reference, payload)
