"""Depth levels kept as the frame's text (issue 17): read on demand, checked in bulk, old journals upgraded."""

from __future__ import annotations

from decimal import Decimal as D

import orjson
import pytest
from arbor.adapters.binance.usdm import decode_usdm, decode_usdm_reference
from arbor.adapters.decoding import DecodeError
from arbor.adapters.fields import fast_book_sides
from arbor.messages.base import MarketEventKind
from arbor.messages.codec import Codec
from arbor.messages.market import RawMarketEvent, decimal_levels, float_levels, levels_text


def side(*levels: tuple[str, str]) -> bytes:
    return orjson.dumps([list(level) for level in levels])


def depth_frame(bids: list, asks: list) -> bytes:
    data = {"e": "depthUpdate", "E": 1723161256403, "T": 1723161256403, "s": "BTCUSDT", "U": 10, "u": 12, "pu": 9,
            "b": bids, "a": asks}
    return orjson.dumps({"stream": "btcusdt@depth@0ms", "data": data})


def test_level_text_reads_as_decimals_and_floats_in_frame_order():
    """decimal_levels gives the exact strings' Decimals, float_levels their floats; b"" is no levels."""
    text = side(("61800.20", "2.507"), ("61799.00", "0.000"))
    assert decimal_levels(text) == ((D("61800.20"), D("2.507")), (D("61799.00"), D("0.000")))
    assert float_levels(text) == ((61800.2, 2.507), (61799.0, 0.0))
    assert decimal_levels(b"") == () == float_levels(b"") == decimal_levels(b"[]")


def test_levels_text_keeps_each_string_as_given():
    """levels_text of strings is their compact JSON; of Decimals, their str (trailing zeros kept)."""
    assert levels_text([("0.35130000", "0.00000000")]) == b'[["0.35130000","0.00000000"]]'
    assert levels_text([(D("61800.20"), D("0.000"))]) == b'[["61800.20","0.000"]]'
    assert levels_text([]) == b"[]"


def test_a_v1_journal_event_with_decimal_levels_loads_as_v2_text():
    """A RawMarketEvent.v1 body (levels as lists of strings) decodes to the v2 event with the same levels."""
    body = {"symbol": "BTCUSDT", "venue": "binance_usdm", "ingest_seq": 3, "ts_event_ns": 5, "ts_recv_ns": 6,
            "kind": "DEPTH", "raw": b"{}", "part": 0, "bids": [["61800.20", "2.507"]], "asks": []}
    event = Codec().from_primitive("RawMarketEvent.v1", body)
    assert isinstance(event, RawMarketEvent) and event.kind is MarketEventKind.DEPTH
    assert event.bids == b'[["61800.20","2.507"]]' and event.asks == b""
    assert decimal_levels(event.bids) == ((D("61800.20"), D("2.507")),)


def test_a_v2_event_round_trips_through_the_codec():
    """The level text is journaled as bytes and comes back identical."""
    codec = Codec()
    event = RawMarketEvent(symbol="BTCUSDT", venue="binance_usdm", ingest_seq=1, ts_event_ns=1, ts_recv_ns=2,
                           kind=MarketEventKind.SNAPSHOT, raw=b"x", bids=side(("1.5", "2")), asks=side(("1.6", "3")))
    assert codec.decode(codec.encode(event)) == event


@pytest.mark.parametrize("bids, asks, deletes", [
    (side(("61800.20", "2.507"), ("61799.00", "0.000")), side(("61800.30", "3.330")), True),
    (side(), side(), True),
    (side(("1", "2")), side(), False),
    (side(), side(("0.0024", "10")), False),
    # a deleted bid above the new best ask: only the levels present count
    (side(("61800.40", "0"), ("61800.10", "1")), side(("61800.30", "1")), True),
    (side(("9" * 15 + "." + "9" * 15, "1")), side(), False),
])
def test_plain_valid_books_pass_the_bulk_check(bids, asks, deletes):
    """Valid level text passes and the level count is returned."""
    assert fast_book_sides(bids, asks, deletes=deletes) == len(orjson.loads(bids)) + len(orjson.loads(asks))


@pytest.mark.parametrize("bids, asks, deletes", [
    (side(("01", "1")), side(), True),  # leading zero
    (side(("1.", "1")), side(), True),
    (side((".5", "1")), side(), True),
    (side(("1.2.3", "1")), side(), True),
    (side(("1e5", "1")), side(), True),
    (side(("-1", "1")), side(), True),
    (side((" 1", "1")), side(), True),
    (side(("1", "")), side(), True),
    (side(("1", "0." + "0" * 18 + "1")), side(), True),  # 19 fraction digits
    (side(("1" * 19, "1")), side(), True),  # 19 integer digits
    (side(("1", "0." + "0" * 15 + "1")), side(), True),  # valid, but past what floats tell exactly
    (side(("1" * 16, "1")), side(), True),
    (side(("0", "1")), side(), True),  # price 0
    (side(("0.000", "1")), side(), True),
    (side(("1", "0")), side(), False),  # a snapshot level's size 0
    (side(("2", "1")), side(("2", "1")), True),  # locked
    (side(("3", "1")), side(("2", "1")), True),  # crossed
    (b'[[1.5,"1"]]', b"[]", True),  # a number, not a string
    (b'["[1","2]"]', b"[]", True),  # strings, not levels, that look like one once unquoted
    (b'[["1","2","3"]]', b"[]", True),
    (b'[["1","2"] ]', b"[]", True),  # whitespace: the reference decides
    (b'{"1":"2"}', b"[]", True),
])
def test_anything_not_plainly_valid_is_left_to_the_reference(bids, asks, deletes):
    """The bulk check raises on every rule the per-field readers enforce (and on what it cannot tell)."""
    with pytest.raises(Exception):  # noqa: B017 (any exception: the caller falls back to the reference path)
        fast_book_sides(bids, asks, deletes=deletes)


def test_a_frame_refused_by_the_bulk_check_gets_the_reference_verdict():
    """A diff whose floats cannot tell (bid and ask 1e-18 apart, or integers past 2^53) is decided
    exactly by the reference path."""
    close = depth_frame([["1.000000000000000001", "1"]], [["1.000000000000000002", "1"]])
    assert decode_usdm(close) == decode_usdm_reference(close)
    assert decimal_levels(decode_usdm(close)[0]["bids"]) == ((D("1.000000000000000001"), D("1")),)
    locked = depth_frame([["1.000000000000000001", "1"]], [["1.000000000000000001", "1"]])
    with pytest.raises(DecodeError, match="crossed or locked"):
        decode_usdm(locked)
    # 2^54 + 3 is no float: read as an int beside the ask's float, it would look below it
    big = depth_frame([["18014398509481987", "1"]], [["18014398509481986.5", "1"]])
    with pytest.raises(DecodeError, match="crossed or locked"):
        decode_usdm(big)


@pytest.mark.parametrize("bids, asks", [(b'[["61800.20","2.909"]]', b"[0]"), (b"[1.5]", b'[["61800.30","1.001"]]'),
                                        (b"[0]", b"[]"), (b"[]", b"[12]")])
def test_a_side_of_bare_numbers_is_not_an_empty_side(bids: bytes, asks: bytes) -> None:
    """Found by the hypothesis test of the decoder (CI): `"asks":[0]` loses its digits in the shape
    check and looked like an empty side, so the fast path accepted a snapshot the reference refuses."""
    with pytest.raises(ValueError):
        fast_book_sides(bids, asks, deletes=False)
    payload = (b'{"lastUpdateId":5123107852948,"E":1723161256501,"T":1723161256493,"bids":' + bids
               + b',"asks":' + asks + b"}")
    with pytest.raises(DecodeError):
        decode_usdm_reference(payload)
    with pytest.raises(DecodeError):
        decode_usdm(payload)
