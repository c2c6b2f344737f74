"""Real cryptofeed v3 recordings (Binance USD-M and spot) through the CF3 reader and one CollectorLogic per symbol."""

from __future__ import annotations

import json
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from arbor.actors.collector import CollectorLogic
from arbor.actors.testing import ManualClock, handled, make_ctx
from arbor.adapters.binance.kline import decode_usdm_with_klines
from arbor.adapters.binance.spot import decode_spot
from arbor.adapters.recorded.cf3 import read_cf3
from arbor.messages.market import DecodeFailure, VenuePayload, decimal_levels

MS = 1_000_000
FILES = {
    "usdm": ("binance_usdm_multi/cryptofeed_binance_futures_2021.jsonl.gz", decode_usdm_with_klines, "binance_usdm"),
    "spot": ("binance_spot/cryptofeed_binance_spot_2021.jsonl.gz", decode_spot, "binance_spot"),
}


def expected_from_raw(raw: bytes) -> dict | None:
    """The normalized fields as strings, re-read from the raw JSON independently of the decoders (None: kline)."""
    obj = json.loads(raw)
    d = obj.get("data", obj)
    levels = lambda rows: tuple((p, q) for p, q in rows)  # noqa: E731
    if "lastUpdateId" in d:
        return {"kind": "SNAPSHOT", "last_update_id": d["lastUpdateId"], "bids": levels(d["bids"]),
                "asks": levels(d["asks"]), "ts_event_ns": d["T"] * MS if "T" in d else None}
    event = d.get("e", "bookTicker")
    if event == "kline":
        return None
    if event in ("trade", "aggTrade"):
        return {"kind": "TRADE", "price": d["p"], "qty": d["q"], "side": "SELL" if d["m"] else "BUY",
                "trade_id": d["t" if event == "trade" else "a"], "ts_event_ns": d["T"] * MS}
    if event == "bookTicker":
        return {"kind": "QUOTE", "bid_price": d["b"], "bid_qty": d["B"], "ask_price": d["a"], "ask_qty": d["A"],
                "last_update_id": d["u"], "ts_event_ns": d["T"] * MS if "T" in d else None}
    if event == "depthUpdate":
        return {"kind": "DEPTH", "bids": levels(d["b"]), "asks": levels(d["a"]), "first_update_id": d["U"],
                "last_update_id": d["u"], "prev_update_id": d.get("pu"),
                "ts_event_ns": d["T"] * MS if "T" in d else d["E"] * MS}
    raise AssertionError(f"event type not in the recordings: {event}")


def as_strings(event, keys) -> dict:
    """The event's fields named in ``keys``, Decimals and enums as their exact strings."""
    out = {}
    for key in keys:
        value = getattr(event, key)
        if key in ("bids", "asks"):
            value = tuple((format(p, "f"), format(q, "f")) for p, q in decimal_levels(value))
        elif isinstance(value, Decimal):
            value = format(value, "f")  # the exact digits, trailing zeros kept ("0E-8" -> "0.00000000")
        elif hasattr(value, "value"):
            value = value.value
        out[key] = value
    return out


def replay(path: Path, decoder, venue: str) -> dict:
    """Feed every frame, in receive-time order, to its symbol's collector; check each event against its payload."""
    # The snapshots are written before the recv lines but were received later: order by receive time.
    records = sorted(read_cf3(path), key=lambda rec: rec[0])
    collectors: dict[str, tuple[CollectorLogic, ManualClock]] = {}
    out: dict[str, Any] = {"frames": len(records), "failures": [], "mismatches": [], "kinds": Counter(), "klines": 0}
    for ts, symbol, raw in records:
        if symbol not in collectors:
            clock = ManualClock(0)
            collectors[symbol] = (CollectorLogic(make_ctx(f"{symbol}/collector", symbol, clock), decoder), clock)
        logic, clock = collectors[symbol]
        clock.set(ts)
        emitted = handled(logic, VenuePayload(venue=venue, symbol=symbol, payload=raw))
        expected = expected_from_raw(raw)
        if expected is None:
            out["klines"] += 1
            assert emitted == []
            continue
        for msg in emitted:
            if isinstance(msg, DecodeFailure):
                out["failures"].append((msg.error, raw[:120]))
                continue
            if expected["ts_event_ns"] is None:
                expected = {**expected, "ts_event_ns": ts}  # no venue time: the collector's receive time
            got = as_strings(msg, expected)
            out["kinds"][got["kind"]] += 1
            if got != expected or msg.raw is not raw or msg.symbol != symbol:
                out["mismatches"].append((got, expected))
    out["stats"] = {s: logic.stats() for s, (logic, _) in collectors.items()}
    return out


@pytest.fixture(scope="module", params=sorted(FILES))
def cf3(request, shared_data: Path) -> tuple[str, dict]:
    path, decoder, venue = FILES[request.param]
    return request.param, replay(shared_data / path, decoder, venue)


def test_every_frame_decodes(cf3):
    """Every recv frame and depth snapshot of both CF3 files decodes: zero DecodeFailures."""
    _, out = cf3
    assert out["failures"] == []
    assert all(s["decode_failures"] == 0 for s in out["stats"].values())


def test_field_values_equal_the_raw_payload(cf3):
    """Each event's normalized fields equal the values in its raw JSON, exactly (Decimal strings kept)."""
    _, out = cf3
    assert out["mismatches"] == []


def test_counts_by_kind_match_the_recordings(cf3):
    """Frames per kind equal a census of the files (klines validated, yielding no event)."""
    name, out = cf3
    if name == "usdm":
        assert out["kinds"] == Counter({"DEPTH": 764, "QUOTE": 613, "TRADE": 91, "SNAPSHOT": 4}) and out["klines"] == 67
        assert out["frames"] == 1535 + 4
    else:
        assert out["kinds"] == Counter({"DEPTH": 177, "QUOTE": 84, "TRADE": 2, "SNAPSHOT": 4}) and out["klines"] == 2
        assert out["frames"] == 265 + 4


def test_symbols_come_from_stream_names_and_snapshot_urls(cf3):
    """Frames are routed to the four symbols of each file, snapshots included."""
    name, out = cf3
    want = {"usdm": {"SUSHIUSDT", "AKROUSDT", "KEEPUSDT", "CTKUSDT"}, "spot": {"NKNUSDT", "BLZETH", "LRCBTC", "RUNEEUR"}}
    assert set(out["stats"]) == want[name]
