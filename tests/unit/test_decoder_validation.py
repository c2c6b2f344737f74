"""Decoder boundary validation: real frames with one absurd value each are refused, as DecodeError."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import msgpack
import pytest
from arbor.actors.collector import CollectorLogic
from arbor.actors.testing import ManualClock, make_ctx
from arbor.adapters.binance.usdm import decode_usdm, decode_usdm_reference
from arbor.adapters.decoding import DecodeError
from arbor.adapters.testing.decoder_frames import EntryPoint, encode, entry_points, with_value
from arbor.messages.codec import Codec
from arbor.messages.market import DecodeFailure, RawMarketEvent, VenuePayload

from tests.conftest import SHARED_DATA

BAD_DECIMALS = ["1e999999", "1e-301", "1E+2", " 61800.30", "61800.30 ", "61_800.30", "٣", "6١800",
                "1.5\n", "+1.5", ".5", "5.", "0x10", "1" * 19 + ".5", "0." + "0" * 18 + "1", "NaN", "-Infinity", ""]
NOT_POSITIVE = ["0", "0.00000000", "-0", "-61800.30"]
BAD_IDS = [2**64, 2**63, -1]
BAD_TIMES = [2**63 // 1_000_000 + 1, 2**64]


def _entry_points() -> list[EntryPoint]:
    return entry_points(SHARED_DATA) if SHARED_DATA.is_dir() else []


EPS = _entry_points()


def _fields(attr: str) -> list[Any]:
    return [pytest.param(ep, path, id=f"{ep.name}:{'.'.join(map(str, path))}") for ep in EPS for path in getattr(ep, attr)]


def accepted(ep: EntryPoint, path: tuple[Any, ...], values: list[Any]) -> list[Any]:
    """The values that ``ep`` decodes without error when put at ``path`` of its real frame."""
    return [v for v in values if not refused(ep, encode(with_value(ep.frame, path, v)))]


def refused(ep: EntryPoint, payload: bytes) -> bool:
    try:
        ep.decode(payload)
    except DecodeError:
        return True
    return False


@pytest.fixture(autouse=True)
def _needs_data(shared_data: Path) -> None:
    """Every test here is built from the real recordings."""


def test_every_real_entry_point_frame_decodes(shared_data):
    """The unmutated real frame of every entry point decodes (the rules refuse nothing real)."""
    assert [ep.name for ep in EPS if refused(ep, encode(ep.frame))] == []


@pytest.mark.parametrize(("ep", "path"), _fields("prices"))
def test_price_that_is_not_a_positive_plain_decimal_is_refused(ep, path):
    """A price of 0, below 0, out of range, with an exponent, spaces, underscores or non-ASCII digits is refused."""
    assert accepted(ep, path, NOT_POSITIVE + BAD_DECIMALS) == []


@pytest.mark.parametrize(("ep", "path"), _fields("sizes"))
def test_fill_or_quote_size_that_is_not_positive_is_refused(ep, path):
    """A trade, quote or snapshot size of 0 or below, or not a plain decimal, is refused."""
    assert accepted(ep, path, NOT_POSITIVE + BAD_DECIMALS) == []


@pytest.mark.parametrize(("ep", "path"), _fields("level_sizes"))
def test_level_size_below_zero_or_malformed_is_refused(ep, path):
    """A depth level's size may be 0 (a delete) but not negative or malformed."""
    assert accepted(ep, path, ["-0.001", "-0"] + BAD_DECIMALS) == []


@pytest.mark.parametrize("ep", [ep for ep in EPS if ep.level_sizes and "depth" in ep.name], ids=lambda ep: ep.name)
def test_level_size_zero_deletes_and_is_accepted(ep):
    """A depth diff level with size 0 means a delete and decodes."""
    assert not refused(ep, encode(with_value(ep.frame, ep.level_sizes[0], "0.000")))


@pytest.mark.parametrize(("ep", "path"), _fields("ids"))
def test_integer_beyond_signed_64_bits_or_negative_is_refused(ep, path):
    """Trade and update ids outside 0..2^63-1 (Binance's signed 64-bit width) are refused."""
    assert accepted(ep, path, BAD_IDS) == []


@pytest.mark.parametrize(("ep", "path"), _fields("times"))
def test_time_whose_nanoseconds_overflow_64_bits_is_refused(ep, path):
    """A ms time whose ns value does not fit a signed 64-bit integer is refused."""
    assert accepted(ep, path, BAD_TIMES) == []


@pytest.mark.parametrize("ep", [ep for ep in EPS if ep.crossed], ids=lambda ep: ep.name)
def test_crossed_top_of_book_is_refused(ep):
    """A quote or book whose best ask is below its best bid is refused."""
    frame = json.loads(encode(ep.frame))
    ep.crossed(frame)
    assert refused(ep, encode(frame))


@pytest.mark.parametrize("ep", EPS, ids=lambda ep: ep.name)
def test_invalid_utf8_encoded_surrogate_is_refused(ep):
    """A frame with a UTF-8-encoded surrogate (invalid UTF-8) is refused."""
    raw = encode(ep.frame)
    assert refused(ep, raw[:-1] + b',"x":"\xed\xa0\x80"}')  # an extra key, ignored when valid


@pytest.mark.parametrize("ep", EPS, ids=lambda ep: ep.name)
@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-32"])
def test_utf16_and_utf32_frames_are_refused(ep, encoding):
    """Venues send UTF-8: the same frame in UTF-16 or UTF-32 is refused."""
    assert refused(ep, encode(ep.frame).decode().encode(encoding))


def nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


@pytest.mark.parametrize("depth", [990, 1010, 1020])
def test_deep_nesting_fast_path_agrees_with_reference(depth):
    """A real bookTicker with a deeply nested extra key: the fast path decides as the reference does."""
    ep = next(ep for ep in EPS if ep.name == "usdm.bookTicker")
    raw = encode(ep.frame)
    payload = raw[:-2] + b',"x":' + nested(depth) + b"}}"
    outcomes = []
    for decode in (decode_usdm, decode_usdm_reference):
        try:
            outcomes.append(("events", decode(payload)))
        except DecodeError:
            outcomes.append(("error", None))
    assert outcomes[0] == outcomes[1]


def test_refused_value_becomes_a_counted_decode_failure_with_raw_bytes():
    """A bookTicker with ask "0" reaches the collector as one DecodeFailure keeping the payload's bytes."""
    ep = next(ep for ep in EPS if ep.name == "usdm.bookTicker")
    raw = encode(with_value(ep.frame, ("data", "a"), "0"))
    logic = CollectorLogic(make_ctx("BTCUSDT/collector", "BTCUSDT", ManualClock(1)), decode_usdm)
    (out,) = logic.handle(VenuePayload(venue="binance_usdm", symbol="BTCUSDT", payload=raw))
    assert type(out) is DecodeFailure and out.raw == raw
    assert logic.stats()["decode_failures"] == 1 and logic.stats()["events"] == 0


def test_largest_accepted_id_and_time_journal():
    """An event at the largest accepted id and time encodes through the journal codec and back."""
    ep = next(ep for ep in EPS if ep.name == "usdm.trade")
    frame = with_value(with_value(ep.frame, ("data", "t"), 2**63 - 1), ("data", "T"), (2**63 - 1) // 1_000_000)
    raw = encode(frame)
    (fields,) = decode_usdm(raw)
    event = RawMarketEvent(symbol="BTCUSDT", venue="binance_usdm", ingest_seq=1, ts_recv_ns=1, raw=raw, **fields)
    codec = Codec()
    assert codec.decode(codec.encode(event)) == event
    with pytest.raises((OverflowError, msgpack.exceptions.PackValueError, ValueError)):
        codec.encode(RawMarketEvent(symbol="BTCUSDT", venue="binance_usdm", ingest_seq=1, ts_recv_ns=1, raw=raw,
                                    **{**fields, "trade_id": 2**64}))
