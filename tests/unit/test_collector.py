"""CollectorLogic: receive time, sequencing and accounting of every frame, driven with no threads."""

from __future__ import annotations

from decimal import Decimal as D
from typing import Any

from arbor.actors.collector import CollectorLogic
from arbor.actors.testing import ManualClock, handled, make_ctx
from arbor.adapters.binance.usdm import decode_usdm
from arbor.adapters.decoding import DecodeError
from arbor.messages.base import MarketEventKind, Side
from arbor.messages.market import DecodeFailure, RawMarketEvent, VenuePayload

T0 = 1_723_161_255_000_000_000
TRADE = b'{"stream":"btcusdt@trade","data":{"e":"trade","E":1723161256322,"T":1723161256321,"s":"BTCUSDT","t":7,"p":"61800.30","q":"0.006","X":"MARKET","m":true}}'
QUOTE = b'{"e":"bookTicker","u":9,"s":"BTCUSDT","b":"61800.20","B":"2.5","a":"61800.30","A":"2.4","T":1723161256313,"E":1723161256313}'
SNAPSHOT = b'{"lastUpdateId":11,"bids":[["1.0","2"]],"asks":[]}'
CONTROL = b'{"result":null,"id":1}'
GARBAGE = b'{"e":"trade"'


def collector(decoder=decode_usdm, clock: ManualClock | None = None) -> CollectorLogic:
    return CollectorLogic(make_ctx("BTCUSDT/collector", "BTCUSDT", clock or ManualClock(T0)), decoder)


def payload(raw: bytes, symbol: str = "BTCUSDT") -> VenuePayload:
    return VenuePayload(venue="binance_usdm", symbol=symbol, payload=raw)


def feed(logic: CollectorLogic, *frames: bytes) -> list:
    out: list[Any] = []
    for raw in frames:
        out.extend(handled(logic, payload(raw)))
    return out


def test_trade_becomes_raw_market_event_with_payload_values():
    """A trade frame becomes one RawMarketEvent with the payload's values, seq 1 and the clock's receive time."""
    (event,) = feed(collector(), TRADE)
    assert event == RawMarketEvent(
        symbol="BTCUSDT", venue="binance_usdm", ingest_seq=1, ts_event_ns=1723161256321 * 1_000_000,
        ts_recv_ns=T0, kind=MarketEventKind.TRADE, raw=TRADE, part=0, price=D("61800.30"), qty=D("0.006"),
        side=Side.SELL, trade_id=7)


def test_raw_is_the_same_bytes_object():
    """The event keeps the payload's very bytes object, not a copy."""
    msg = payload(QUOTE)
    (event,) = collector().handle(msg)
    assert event.raw is msg.payload


def test_receive_time_is_read_once_per_frame():
    """The clock is read exactly once per frame, even when a frame yields several events."""

    class CountingClock(ManualClock):
        reads = 0

        def now_ns(self) -> int:
            self.reads += 1
            return super().now_ns()

    clock = CountingClock(T0)
    logic = collector(lambda raw: [{"kind": MarketEventKind.TRADE, "ts_event_ns": 5}] * 3, clock)
    events = feed(logic, b"x")
    assert clock.reads == 1 and {e.ts_recv_ns for e in events} == {T0}


def test_parts_number_the_events_of_one_frame():
    """Events decoded from one frame get parts 0..n-1 and consecutive seqs."""
    logic = collector(lambda raw: [{"kind": MarketEventKind.TRADE, "ts_event_ns": 5}] * 3)
    events = feed(logic, b"x", b"y")
    assert [(e.ingest_seq, e.part) for e in events] == [(1, 0), (2, 1), (3, 2), (4, 0), (5, 1), (6, 2)]


def test_missing_event_time_uses_receive_time():
    """A snapshot without event time is stamped with its receive time."""
    clock = ManualClock(T0)
    logic = collector(clock=clock)
    clock.set(T0 + 42)
    (event,) = feed(logic, SNAPSHOT)
    assert event.ts_event_ns == T0 + 42 == event.ts_recv_ns


def test_malformed_frame_becomes_decode_failure():
    """A malformed frame becomes a DecodeFailure with the raw bytes, receive time and the decoder's error."""
    (failure,) = feed(collector(), GARBAGE)
    assert isinstance(failure, DecodeFailure)
    assert (failure.symbol, failure.venue, failure.ingest_seq, failure.ts_recv_ns, failure.raw) == (
        "BTCUSDT", "binance_usdm", 1, T0, GARBAGE)
    assert "malformed frame" in failure.error


def test_seq_is_gap_free_across_events_and_failures():
    """ingest_seq runs 1, 2, 3, ... over events and failures alike; control frames take none."""
    out = feed(collector(), TRADE, GARBAGE, CONTROL, QUOTE, b"", SNAPSHOT, GARBAGE)
    assert [m.ingest_seq for m in out] == [1, 2, 3, 4, 5, 6]
    assert [type(m).__name__ for m in out] == [
        "RawMarketEvent", "DecodeFailure", "RawMarketEvent", "DecodeFailure", "RawMarketEvent", "DecodeFailure"]


def test_control_frame_is_counted_not_emitted():
    """A subscription reply emits nothing and is counted as a control frame."""
    logic = collector()
    assert feed(logic, CONTROL) == []
    assert logic.stats()["control_frames"] == 1


def test_stats_account_for_every_frame():
    """stats() counts frames, events, failures, control frames and the last seq."""
    logic = collector()
    feed(logic, TRADE, GARBAGE, CONTROL, QUOTE)
    assert logic.stats() == {"frames": 4, "events": 2, "decode_failures": 1, "control_frames": 1, "last_seq": 3}


def test_misrouted_payload_is_a_decode_failure():
    """A payload for another symbol is a DecodeFailure of this collector, not an event."""
    logic = collector()
    (failure,) = logic.handle(payload(TRADE, symbol="ETHUSDT"))
    assert isinstance(failure, DecodeFailure) and failure.symbol == "BTCUSDT" and "misrouted" in failure.error
    assert logic.stats()["decode_failures"] == 1


def test_any_decoder_exception_becomes_decode_failure():
    """A decoder that breaks its contract with another exception still yields a DecodeFailure naming it."""

    def broken(raw: bytes) -> list[dict]:
        raise ZeroDivisionError("boom")

    (failure,) = feed(collector(broken), TRADE)
    assert isinstance(failure, DecodeFailure) and failure.error == "ZeroDivisionError: boom"


def test_decode_error_message_is_the_failure_error():
    """The DecodeError's message is the DecodeFailure's error, verbatim."""

    def rejecting(raw: bytes) -> list[dict]:
        raise DecodeError("unsupported event type 'kline'")

    (failure,) = feed(collector(rejecting), TRADE)
    assert failure.error == "unsupported event type 'kline'"


def test_half_built_frame_leaves_no_seq_gap():
    """A frame whose second part is invalid is one DecodeFailure, and the next seq follows it directly."""
    parts = [{"kind": MarketEventKind.TRADE, "ts_event_ns": 1}, {"kind": MarketEventKind.TRADE, "bogus": 1}]
    logic = collector(lambda raw: parts if raw == b"bad" else parts[:1])
    out = feed(logic, b"bad", b"good")
    assert [(type(m).__name__, m.ingest_seq) for m in out] == [("DecodeFailure", 1), ("RawMarketEvent", 2)]


def test_role_and_handled_messages():
    """The collector's role is "collector" and it handles VenuePayload."""
    logic = collector()
    assert logic.ROLE == "collector" and logic.handles(VenuePayload)
