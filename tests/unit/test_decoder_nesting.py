"""A frame's verdict depends on its bytes only, never on how deep the caller's stack is.

``bench/decode_fuzz.py`` once reported "usdm.aggTrade: fast path and reference path disagree",
and the report did not come back on the next run. The cause: stdlib ``json`` refuses nesting
near the interpreter's recursion limit, counted from the caller's stack, and the fast path calls
the reference one frame deeper than a direct call. A frame nested ~990 deep was refused by
``decode_usdm`` and accepted by ``decode_usdm_reference``; the same frame could equally be an
event in a live run and a DecodeFailure when an audit replays it from another stack depth.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import partial
from typing import Any

import pytest
from arbor.adapters.binance.spot import decode_spot, decode_spot_reference
from arbor.adapters.binance.usdm import decode_usdm, decode_usdm_reference
from arbor.adapters.fields import MAX_NESTING
from arbor.adapters.hyperliquid.decode import decode_hyperliquid

AGG_TRADE = {"stream": "btcusdt@aggTrade", "data": {"e": "aggTrade", "E": 1723161256299, "T": 1723161256298,
                                                    "s": "BTCUSDT", "a": 123, "p": "61000.10", "q": "0.010",
                                                    "f": 1, "l": 2, "m": True}}
MARK = "\x00nested\x00"


def nested(depth: int, frame: dict[str, Any] = AGG_TRADE) -> bytes:
    """``frame`` with an extra key no reader looks at holding a value nested ``depth`` deep."""
    obj = json.loads(json.dumps(frame))
    obj.get("data", obj)["x"] = MARK
    return json.dumps(obj, separators=(",", ":")).encode().replace(json.dumps(MARK).encode(),
                                                                  b"[" * depth + b"0" + b"]" * depth)


def outcome(decode: Callable[[bytes], Any], payload: bytes) -> tuple[str, str]:
    try:
        return "events", repr(decode(payload))
    except Exception as exc:
        return type(exc).__name__, str(exc)


def at_stack_depth(frames: int, fn: Callable[[], Any]) -> Any:
    """``fn()`` called ``frames`` Python frames deeper than here."""
    return fn() if frames <= 0 else at_stack_depth(frames - 1, fn)


@pytest.mark.parametrize(("fast", "reference"), [(decode_usdm, decode_usdm_reference),
                                                  (decode_spot, decode_spot_reference)])
def test_fast_and_reference_paths_agree_at_every_nesting_depth(fast, reference) -> None:
    """From 2 to past orjson's 1024: the same verdict, the same fields or the same message."""
    disagree = [d for d in range(2, 1100) if outcome(fast, nested(d)) != outcome(reference, nested(d))]
    assert disagree == []


@pytest.mark.parametrize("decode", [decode_usdm, decode_usdm_reference, decode_spot_reference, decode_hyperliquid])
def test_the_verdict_does_not_depend_on_the_callers_stack_depth(decode) -> None:
    """Deeply nested frames get one verdict whether decoded at the top of a stack or 300 frames down."""
    for depth in (MAX_NESTING - 1, MAX_NESTING, MAX_NESTING + 1, 700, 900, 980, 990, 1000, 1100):
        payload = nested(depth)
        assert at_stack_depth(300, partial(outcome, decode, payload)) == outcome(decode, payload), depth


def test_nesting_past_the_limit_is_refused_with_a_clear_message() -> None:
    """A frame nested deeper than MAX_NESTING is refused by name; one within it decodes."""
    assert outcome(decode_usdm_reference, nested(MAX_NESTING - 2))[0] == "events"  # + the frame's own 2 levels
    kind, text = outcome(decode_usdm_reference, nested(MAX_NESTING))
    assert kind == "DecodeError"
    assert f"nested deeper than {MAX_NESTING}" in text
