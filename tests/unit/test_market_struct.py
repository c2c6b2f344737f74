"""RawMarketEvent as a msgspec Struct (issue 17): cheap, immutable, and the same wire bytes as before."""

from __future__ import annotations

import gc
import pickle
from decimal import Decimal as D

import msgspec
import pytest
from arbor.messages import Codec, CodecError, MarketEventKind, RawMarketEvent, Side, evolve_message
from arbor.messages.base import is_message_type, message_asdict, message_field_names

# A QUOTE event as the attrs RawMarketEvent.v2 of main c14b37d encoded it (cattrs + msgpack):
# what every journal written before the Struct holds.
ATTRS_ERA_QUOTE = (
    b"\x92\xb1RawMarketEvent.v2\xde\x00\x19\xa6symbol\xa7BTCUSDT\xa5venue\xacbinance_usdm\xaaingest_seq\x08"
    b"\xabts_event_ns\x01\xaats_recv_ns\x02\xa4kind\xa5QUOTE\xa3raw\xc4\x02{}\xa4part\x00\xa5price\xc0\xa3qty\xc0"
    b"\xa4side\xc0\xa8trade_id\xc0\xa9bid_price\xa6100.10\xa7bid_qty\xa30.5\xa9ask_price\xa5100.2\xa7ask_qty\xa13"
    b"\xa4bids\xc4\x00\xa4asks\xc4\x00\xaffirst_update_id\xc0\xaelast_update_id\xc0\xaeprev_update_id\xc0"
    b"\xaamark_price\xc0\xabindex_price\xc0\xacfunding_rate\xc0\xadopen_interest\xc0"
)


def quote() -> RawMarketEvent:
    return RawMarketEvent(symbol="BTCUSDT", venue="binance_usdm", ingest_seq=8, ts_event_ns=1, ts_recv_ns=2,
                          kind=MarketEventKind.QUOTE, raw=b"{}", bid_price=D("100.10"), bid_qty=D("0.5"),
                          ask_price=D("100.2"), ask_qty=D("3"))


def test_an_attrs_era_journal_event_decodes_and_encodes_to_the_same_bytes():
    """A journaled attrs-era event decodes to the Struct, and the Struct encodes to those very bytes."""
    codec = Codec()
    event = codec.decode(ATTRS_ERA_QUOTE)
    assert event == quote() and event.bid_price == D("100.10") and str(event.bid_price) == "100.10"
    assert codec.encode(quote()) == ATTRS_ERA_QUOTE


def test_every_field_round_trips_with_decimals_exact():
    """A trade with every optional field set comes back equal, Decimal strings (trailing zeros) kept."""
    codec = Codec()
    event = RawMarketEvent(symbol="S", venue="v", ingest_seq=1, ts_event_ns=3, ts_recv_ns=4, kind=MarketEventKind.TRADE,
                           raw=b"\x00raw", part=2, price=D("1.500"), qty=D("0.010"), side=Side.SELL, trade_id=2**62,
                           mark_price=D("1.4"), index_price=D("1.3"), funding_rate=D("-0.0001"),
                           open_interest=D("12.0"))
    back = codec.decode(codec.encode(event))
    assert back == event and str(back.price) == "1.500" and back.side is Side.SELL


def test_a_wrongly_typed_body_is_a_codec_error():
    """A body whose field has the wrong type is refused with the tag named, not half-built."""
    body = msgspec.to_builtins(quote(), builtin_types=(bytes,))
    body["ingest_seq"] = "eight"
    with pytest.raises(CodecError, match="RawMarketEvent.v2"):
        Codec().from_primitive("RawMarketEvent.v2", body)


def test_the_event_is_immutable_and_evolves_to_a_copy():
    """Fields cannot be assigned; evolve_message returns a changed copy and leaves the original."""
    event = quote()
    with pytest.raises(AttributeError):
        event.bid_price = D("1")
    changed = evolve_message(event, ask_price=D("101"))
    assert changed.ask_price == D("101") and event.ask_price == D("100.2") and changed.raw is event.raw


def test_the_event_is_not_tracked_by_the_cyclic_collector_and_pickles():
    """gc=False: never tracked (its fields are atoms); it pickles for sweep's worker processes."""
    event = quote()
    assert not gc.is_tracked(event)
    assert pickle.loads(pickle.dumps(event)) == event


def test_generic_message_helpers_cover_both_kinds():
    """Field names, as-dict and the message-type check read a Struct as they read an attrs message."""
    assert is_message_type(RawMarketEvent) and not is_message_type(dict)
    names = message_field_names(RawMarketEvent)
    assert names[:3] == ("symbol", "venue", "ingest_seq") and len(names) == 25
    assert message_asdict(quote())["bid_qty"] == D("0.5")
