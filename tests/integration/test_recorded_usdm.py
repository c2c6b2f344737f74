"""Real Binance USD-M recordings (HBT) through the HBT reader and one CollectorLogic per symbol."""

from __future__ import annotations

import gzip
import json
from collections import Counter
from pathlib import Path

import attrs
import msgspec
import pytest
from arbor.actors.collector import CollectorLogic
from arbor.actors.testing import ManualClock, handled, make_ctx
from arbor.adapters.binance.usdm import decode_usdm
from arbor.adapters.recorded import RecordingFormatError, merge_recordings, read_hbt
from arbor.messages import message_field_names
from arbor.messages.market import DecodeFailure, RawMarketEvent, VenuePayload, decimal_levels

FILES = ("binance_usdm/usdm_btcusdt_20240808.gz", "binance_usdm/usdm_ethusdt_20240808.gz")
MS = 1_000_000
EVENT_FIELDS = message_field_names(RawMarketEvent)
DEFAULTS = {f.name: f.default for f in msgspec.structs.fields(RawMarketEvent) if f.default is not msgspec.NODEFAULT}


def expected_from_raw(raw: bytes) -> tuple[str, dict]:
    """(event type, normalized field values as strings) re-read from the raw JSON, independently of the decoder."""
    obj = json.loads(raw)
    d = obj.get("data", obj)
    levels = lambda rows: tuple((p, q) for p, q in rows)  # noqa: E731
    if "lastUpdateId" in d:
        return "snapshot", {"kind": "SNAPSHOT", "ts_event_ns": d["T"] * MS, "last_update_id": d["lastUpdateId"],
                            "bids": levels(d["bids"]), "asks": levels(d["asks"])}
    if d["e"] == "trade":
        return "trade", {"kind": "TRADE", "ts_event_ns": d["T"] * MS, "price": d["p"], "qty": d["q"],
                         "side": "SELL" if d["m"] else "BUY", "trade_id": d["t"]}
    if d["e"] == "bookTicker":
        return "bookTicker", {"kind": "QUOTE", "ts_event_ns": d["T"] * MS, "bid_price": d["b"], "bid_qty": d["B"],
                              "ask_price": d["a"], "ask_qty": d["A"], "last_update_id": d["u"]}
    if d["e"] == "depthUpdate":
        return "depth", {"kind": "DEPTH", "ts_event_ns": d["T"] * MS, "bids": levels(d["b"]), "asks": levels(d["a"]),
                         "first_update_id": d["U"], "last_update_id": d["u"], "prev_update_id": d["pu"]}
    raise AssertionError(f"event type not in the recordings: {d['e']}")


def as_strings(event: RawMarketEvent) -> dict:
    """The event's normalized fields with Decimals and enums as their exact strings (precision kept)."""
    out = {}
    for name in EVENT_FIELDS:
        value = getattr(event, name)
        if name in ("bids", "asks"):  # b"" (no levels: not a book event) stays b""
            value = tuple((str(p), str(q)) for p, q in decimal_levels(value)) if value else value
        elif value is not None and name not in ("symbol", "venue", "raw") and not isinstance(value, int):
            value = value.value if hasattr(value, "value") else str(value)
        out[name] = value
    return out


@attrs.define
class Replay:
    lines: int = 0
    failures: list = attrs.Factory(list)
    kinds: Counter = attrs.Factory(Counter)
    seqs: dict = attrs.Factory(dict)
    mismatches: list = attrs.Factory(list)
    recv_mismatches: int = 0
    raw_mismatches: int = 0
    time_order_breaks: int = 0
    stats: dict = attrs.Factory(dict)


@pytest.fixture(scope="module")
def replay(shared_data: Path) -> Replay:
    """Feed both files, merged by receive time, through one collector per symbol; check each event as it goes."""
    result = Replay()
    collectors: dict[str, tuple[CollectorLogic, ManualClock]] = {}
    last_ts = 0
    for ts, symbol, raw in merge_recordings(shared_data / f for f in FILES):
        result.lines += 1
        result.time_order_breaks += ts < last_ts
        last_ts = ts
        if symbol not in collectors:
            clock = ManualClock(0)
            collectors[symbol] = (CollectorLogic(make_ctx(f"{symbol}/collector", symbol, clock), decode_usdm), clock)
            result.seqs[symbol] = []
        logic, clock = collectors[symbol]
        clock.set(ts)
        for msg in handled(logic, VenuePayload(venue="binance_usdm", symbol=symbol, payload=raw)):
            result.seqs[symbol].append(msg.ingest_seq)
            result.recv_mismatches += msg.ts_recv_ns != ts
            result.raw_mismatches += msg.raw is not raw
            if isinstance(msg, DecodeFailure):
                result.failures.append(msg)
                continue
            event_type, expected = expected_from_raw(raw)
            result.kinds[(symbol, event_type)] += 1
            want = {**DEFAULTS, **expected, "symbol": symbol, "venue": "binance_usdm", "ingest_seq": msg.ingest_seq,
                    "ts_recv_ns": ts, "raw": raw, "part": 0}
            if as_strings(msg) != want and len(result.mismatches) < 5:
                result.mismatches.append((msg.ingest_seq, symbol, raw[:200]))
    result.stats = {symbol: logic.stats() for symbol, (logic, _) in collectors.items()}
    return result


def test_every_recorded_message_is_read(replay):
    """All 168,609 recorded lines come out of the merged reader, in receive-time order."""
    assert replay.lines == 168_609 and replay.time_order_breaks == 0


def test_no_decode_failures(replay):
    """Every real message decodes: zero DecodeFailures."""
    assert replay.failures == []
    assert all(s["decode_failures"] == 0 and s["control_frames"] == 0 for s in replay.stats.values())


def test_counts_by_kind_match_the_recordings(replay):
    """Events per symbol and type equal the README's table."""
    assert replay.kinds == Counter({
        ("BTCUSDT", "bookTicker"): 66_089, ("BTCUSDT", "trade"): 21_313, ("BTCUSDT", "depth"): 6_551,
        ("BTCUSDT", "snapshot"): 1,
        ("ETHUSDT", "bookTicker"): 53_992, ("ETHUSDT", "trade"): 14_076, ("ETHUSDT", "depth"): 6_586,
        ("ETHUSDT", "snapshot"): 1,
    })


def test_ingest_seq_is_gap_free_per_symbol(replay):
    """Each symbol's ingest_seq runs 1..n without gaps, and stats agree."""
    for symbol, seqs in replay.seqs.items():
        assert seqs == list(range(1, len(seqs) + 1)), symbol
        assert replay.stats[symbol]["last_seq"] == len(seqs) == replay.stats[symbol]["frames"]


def test_normalized_fields_equal_the_raw_payload(replay):
    """For every event, every field equals the value re-read from its raw JSON (exact decimal strings)."""
    assert replay.mismatches == []


def test_receive_time_and_raw_bytes_are_the_recorded_ones(replay):
    """Every event carries its line's receive time and the recorded payload object itself."""
    assert replay.recv_mismatches == 0 and replay.raw_mismatches == 0


# -- the HBT reader on small hand-made files ------------------------------------------------------


def write_hbt(path: Path, lines: list[bytes]) -> Path:
    with gzip.open(path, "wb") as f:
        f.write(b"".join(line + b"\n" for line in lines))
    return path


def test_reader_yields_time_symbol_and_untouched_payload(tmp_path):
    """Each line gives (ns, SYMBOL from the stream name, payload bytes without the newline)."""
    path = write_hbt(tmp_path / "usdm_xyzusdt_20240808.gz", [b'17 {"stream":"btcusdt@trade","data":{"e":"x"}}  '])
    assert list(read_hbt(path)) == [(17, "BTCUSDT", b'{"stream":"btcusdt@trade","data":{"e":"x"}}  ')]


def test_reader_names_unenveloped_lines_from_argument_then_file_name(tmp_path):
    """A line without envelope takes the symbol argument, or else the symbol in the file name."""
    path = write_hbt(tmp_path / "usdm_btcusdt_20240808.gz", [b'5 {"lastUpdateId":1,"bids":[],"asks":[]}'])
    assert [s for _, s, _ in read_hbt(path)] == ["BTCUSDT"]
    assert [s for _, s, _ in read_hbt(path, symbol="ethusdt")] == ["ETHUSDT"]


def test_reader_rejects_unknown_symbol(tmp_path):
    """A line without envelope, symbol argument or symbol in the file name is a clear error."""
    path = write_hbt(tmp_path / "capture.gz", [b"5 {}"])
    with pytest.raises(RecordingFormatError, match="capture.gz:1"):
        list(read_hbt(path))


@pytest.mark.parametrize("line", [b"no-space-at-all", b"12x {}", b" {}", b"-5 {}", b""])
def test_reader_rejects_line_without_receive_time(tmp_path, line):
    """A line without an integer receive time raises RecordingFormatError naming file and line."""
    path = write_hbt(tmp_path / "usdm_btcusdt_20240808.gz", [b"1 {}", line])
    with pytest.raises(RecordingFormatError, match=r"usdm_btcusdt_20240808.gz:2"):
        list(read_hbt(path))


def test_reader_yields_bad_payload_for_the_collector(tmp_path):
    """A line with a good time and a broken payload is yielded as is, and the collector makes it a DecodeFailure."""
    path = write_hbt(tmp_path / "usdm_btcusdt_20240808.gz", [b"9 {broken"])
    ((ts, symbol, raw),) = read_hbt(path)
    logic = CollectorLogic(make_ctx("BTCUSDT/collector", "BTCUSDT", ManualClock(ts)), decode_usdm)
    (failure,) = logic.handle(VenuePayload(venue="binance_usdm", symbol=symbol, payload=raw))
    assert isinstance(failure, DecodeFailure) and failure.raw == b"{broken" and failure.ingest_seq == 1


def test_merge_orders_by_time_and_keeps_file_order_on_ties(tmp_path):
    """Merged lines come in receive-time order; equal times keep the order of the files given."""
    a = write_hbt(tmp_path / "a_aaa_20240101.gz", [b"1 a1", b"3 a3"])
    b = write_hbt(tmp_path / "b_bbb_20240101.gz", [b"1 b1", b"2 b2", b"3 b3"])
    assert [raw for _, _, raw in merge_recordings([a, b])] == [b"a1", b"b1", b"b2", b"a3", b"b3"]


def test_merge_rejects_a_file_going_back_in_time(tmp_path):
    """A file whose receive times go backwards raises instead of silently breaking the merge order."""
    a = write_hbt(tmp_path / "a_aaa_20240101.gz", [b"5 x", b"4 y"])
    with pytest.raises(RecordingFormatError, match="backwards"):
        list(merge_recordings([a]))
