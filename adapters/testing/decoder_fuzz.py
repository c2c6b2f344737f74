"""Mutated real venue frames through a decoder entry point, and a verdict on what came out (issue 14).

``mutate`` applies one of ``MUTATIONS`` to a real frame; ``judge`` decodes the result through the
entry point and the collector and lists every problem: an exception other than ``DecodeError``,
an event carrying an absurd value, raw bytes not kept, or the fast path deciding otherwise than
the reference path. Its oracle is independent of ``adapters.fields``: it checks the decoded
values themselves, and for mutations that only ever make a value absurd (NaN, non-ASCII digits,
...) that an accepted frame decodes exactly as the unmutated one (the value was in a field no
reader uses). Used by tests/property/test_decoder_fuzz.py (hypothesis draws) and
bench/decode_fuzz.py (seeded counts for the closing note).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from functools import partial
from typing import Any, Protocol

from arbor.actors.collector import CollectorLogic
from arbor.actors.testing import ManualClock, make_ctx
from arbor.adapters.binance.kline import decode_usdm_with_klines
from arbor.adapters.binance.spot import decode_spot, decode_spot_reference
from arbor.adapters.binance.usdm import decode_usdm, decode_usdm_reference
from arbor.adapters.decoding import DecodeError, Decoder
from arbor.adapters.testing.decoder_frames import EntryPoint, encode
from arbor.messages.base import MarketEventKind
from arbor.messages.codec import Codec
from arbor.messages.market import DecodeFailure, RawMarketEvent, VenuePayload, decimal_levels

MUTATIONS = ("truncate", "flip", "drop_key", "rename_key", "swap_type", "huge", "tiny", "nan", "infinity",
             "negative", "non_ascii_digits", "invalid_utf8", "utf16", "deep_nesting")
# Mutations that can only make a value absurd: if the frame is accepted, the value was ignored.
_ONLY_ABSURD = frozenset({"huge", "tiny", "nan", "infinity", "non_ascii_digits"})
_ALWAYS_REFUSED = frozenset({"invalid_utf8", "utf16"})
_REFERENCE: dict[Any, Decoder] = {decode_usdm: decode_usdm_reference, decode_spot: decode_spot_reference,
                                  decode_usdm_with_klines: partial(decode_usdm_with_klines, decode=decode_usdm_reference)}

_PRICES = ("price", "bid_price", "ask_price", "mark_price", "index_price")
_SIZES = ("qty", "bid_qty", "ask_qty")
_IDS = ("trade_id", "first_update_id", "last_update_id", "prev_update_id")
_INT64_MAX = 2**63 - 1
_LOWEST, _HIGHEST = Decimal("1e-18"), Decimal("1e18")
_DIGITS = ("٠١٢٣٤٥٦٧٨٩", "０１２３４５６７８９", "०१२३४५६७८९")
_NAN, _INF = "\x00nan\x00", "\x00inf\x00"


class Pick(Protocol):
    """Where a mutation's choices come from: hypothesis draws or a seeded random.Random."""

    def choice(self, options: Sequence[Any]) -> Any: ...

    def integer(self, low: int, high: int) -> int: ...


@dataclass
class Verdict:
    """What one mutated frame did: refused or accepted, and every problem seen."""

    mutation: str
    refused: bool
    problems: list[str] = field(default_factory=list)


def _paths(obj: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = []
    items = obj.items() if type(obj) is dict else enumerate(obj) if type(obj) is list else ()
    for key, value in items:
        out.append((*prefix, key))
        out.extend(_paths(value, (*prefix, key)))
    return out


def _parent(obj: Any, path: tuple[Any, ...]) -> Any:
    for key in path[:-1]:
        obj = obj[key]
    return obj


def _non_ascii(value: Any, pick: Pick) -> Any:
    text = value if type(value) is str else str(value)
    digits = pick.choice(_DIGITS)
    positions = [i for i, c in enumerate(text) if c in "0123456789"]
    if not positions:
        return digits[3]
    if pick.integer(0, 1):
        return "".join(digits[int(c)] if c in "0123456789" else c for c in text)
    i = pick.choice(positions)
    return text[:i] + digits[int(text[i])] + text[i + 1:]


def _replacement(kind: str, value: Any, pick: Pick) -> Any:
    if kind == "swap_type":
        return pick.choice([None, True, False, 0, -1, 1.5, "", "x", [], {}, [value], {"v": value},
                            str(value) if type(value) is not str else 1])
    if kind == "huge":
        return pick.choice(["1e999999", "9" * 19, "9" * 19 + ".5", "9" * 40, "1E+30", 2**64, 2**63, 10**30, 1e308, -(2**63) - 1])
    if kind == "tiny":
        return pick.choice(["1e-301", "0." + "0" * 30 + "1", "0.0000000000000000001", 5e-324, "1E-19", 1e-301])
    if kind == "nan":
        return pick.choice(["NaN", "nan", "sNaN", "-NaN", _NAN])
    if kind == "infinity":
        return pick.choice(["Infinity", "-Infinity", "inf", "-inf", _INF])
    if kind == "negative":
        if type(value) is str:
            return pick.choice(["-" + value, "-0", "-" + value.lstrip("-")])
        return -value if type(value) in (int, float) and value else pick.choice(["-1", -1, "-0"])
    if kind == "non_ascii_digits":
        return _non_ascii(value, pick)
    # deep_nesting, around both json's and orjson's limits: a marker that mutate() swaps for the
    # nested bytes (json.dumps itself cannot nest that deep).
    return f"\x00deep{pick.integer(2, 1100)}\x00"


def mutate(frame: dict[str, Any], pick: Pick) -> tuple[str, bytes]:
    """One mutation of ``frame``: its name and the bytes it gives."""
    kind = pick.choice(MUTATIONS)
    raw = encode(frame)
    if kind == "truncate":
        return kind, raw[: pick.integer(0, len(raw) - 1)]
    if kind == "flip":
        buf = bytearray(raw)
        for _ in range(pick.integer(1, 3)):
            buf[pick.integer(0, len(buf) - 1)] ^= 1 << pick.integer(0, 7)
        return kind, bytes(buf)
    if kind == "utf16":
        return kind, raw.decode().encode(pick.choice(["utf-16", "utf-16-le", "utf-16-be", "utf-32"]))
    if kind == "invalid_utf8":
        quotes = [i for i, b in enumerate(raw) if b == 0x22]
        i = pick.choice(quotes) + 1  # just after a quote: inside a key or string, or between tokens
        return kind, raw[:i] + pick.choice([b"\xed\xa0\x80", b"\xed\xbf\xbf", b"\xff", b"\xc0\xaf", b"\xe2\x82"]) + raw[i:]
    obj = copy.deepcopy(frame)
    path = pick.choice(_paths(obj))
    parent, key = _parent(obj, path), path[-1]
    if kind == "drop_key":
        del parent[key]
    elif kind == "rename_key":
        if type(parent) is dict:
            parent[pick.choice([key.upper() if key.upper() != key else key.lower() + "_", key + "x", "", " " + key])] = parent.pop(key)
        else:
            del parent[key]
    elif kind == "deep_nesting":
        inner = encode(parent[key])
        if pick.integer(0, 1):  # or else an extra key no reader looks at
            parent = obj["data"] if type(obj.get("data")) is dict else obj
            key, inner = "x", b"0"
        parent[key] = marker = _replacement(kind, None, pick)
        depth = int(marker.strip("\x00").removeprefix("deep"))
        out = encode(obj).replace(encode(marker), b"[" * depth + inner + b"]" * depth)
        return kind, out
    else:
        parent[key] = _replacement(kind, parent[key], pick)
    out = json.dumps(obj, separators=(",", ":"), allow_nan=True).encode()
    return kind, out.replace(encode(_NAN), b"NaN").replace(encode(_INF), b"Infinity")


def _outcome(decode: Decoder, payload: bytes) -> tuple[str, str]:
    try:
        return "events", repr(decode(payload))
    except DecodeError as exc:
        return "DecodeError", str(exc)
    except Exception as exc:  # reported as a problem by the caller
        return "escaped", f"{type(exc).__name__}: {exc}"


def absurd(fields: dict[str, Any]) -> list[str]:
    """What in one event's fields no venue would ever send (empty when all is sane)."""
    bad = []

    def dec(name: str, value: Any, positive: bool, zero_ok: bool = False) -> None:
        if type(value) is not Decimal or not value.is_finite():
            bad.append(f"{name}={value!r} is not a finite Decimal")
            return
        if value and not _LOWEST <= abs(value) < _HIGHEST:
            bad.append(f"{name}={value} is outside 1e-18..1e18")
        if positive and (value < 0 or (not value and not zero_ok) or value.is_signed()):
            bad.append(f"{name}={value} is not > 0")

    for name in _PRICES:
        if fields.get(name) is not None:
            dec(name, fields[name], positive=True)
    for name in _SIZES:
        if fields.get(name) is not None:
            dec(name, fields[name], positive=True)
    if fields.get("open_interest") is not None:
        dec("open_interest", fields["open_interest"], positive=True, zero_ok=True)
    if fields.get("funding_rate") is not None:
        dec("funding_rate", fields["funding_rate"], positive=False)
    diff = fields["kind"] is MarketEventKind.DEPTH
    for side in ("bids", "asks"):
        for p, q in decimal_levels(fields.get(side, b"")):
            dec(f"{side} price", p, positive=True)
            dec(f"{side} size", q, positive=True, zero_ok=diff)
    for name in _IDS:
        value = fields.get(name)
        if value is not None and (type(value) is not int or not 0 <= value <= _INT64_MAX):
            bad.append(f"{name}={value!r} is not an int in 0..2^63-1")
    ts = fields.get("ts_event_ns")
    if type(ts) is not int or not 0 <= ts <= _INT64_MAX:
        bad.append(f"ts_event_ns={ts!r} is not an int in 0..2^63-1")
    bid, ask = fields.get("bid_price"), fields.get("ask_price")
    if bid is not None and ask is not None and not bid < ask:
        bad.append(f"quote crossed: bid {bid} >= ask {ask}")
    bids = [p for p, q in decimal_levels(fields.get("bids", b"")) if q]
    asks = [p for p, q in decimal_levels(fields.get("asks", b"")) if q]
    if bids and asks and not max(bids) < min(asks):
        bad.append(f"book crossed: best bid {max(bids)} >= best ask {min(asks)}")
    return bad


def judge(ep: EntryPoint, mutation: str, payload: bytes, codec: Codec) -> Verdict:
    """Decode ``payload`` through ``ep`` and the collector; every problem found, if any."""
    kind, text = _outcome(ep.decode, payload)
    verdict = Verdict(mutation=mutation, refused=kind != "events")
    if kind == "escaped":
        verdict.problems.append(f"{ep.name}: exception escaped: {text[:200]}")
        return verdict
    reference = _REFERENCE.get(ep.decode)
    if reference is not None and _outcome(reference, payload) != (kind, text):
        verdict.problems.append(f"{ep.name}: fast path and reference path disagree")
    logic = CollectorLogic(make_ctx("S/collector", "S", ManualClock(1)), ep.decode)
    out: list[RawMarketEvent] | list[DecodeFailure] = logic.on_venue_payload(VenuePayload(venue="v", symbol="S", payload=payload))
    if any(msg.raw != payload for msg in out):
        verdict.problems.append(f"{ep.name}: raw bytes not kept")
    if verdict.refused:
        if [type(m) for m in out] != [DecodeFailure]:
            verdict.problems.append(f"{ep.name}: a refused frame did not become one DecodeFailure")
        return verdict
    if mutation in _ALWAYS_REFUSED:
        verdict.problems.append(f"{ep.name}: {mutation} frame accepted")
    events = ep.decode(payload)
    for fields in events:
        verdict.problems += [f"{ep.name}: {mutation}: {b}" for b in absurd(fields)]
    if mutation in _ONLY_ABSURD and events != ep.decode(encode(ep.frame)):
        verdict.problems.append(f"{ep.name}: {mutation} value accepted into an event")
    for msg in out:
        if type(msg) is RawMarketEvent:
            try:
                codec.decode(codec.encode(msg))
            except Exception as exc:
                verdict.problems.append(f"{ep.name}: event cannot be journaled: {type(exc).__name__}")
    return verdict
