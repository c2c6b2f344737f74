"""The field rules every venue decoder applies at the boundary (issue 14; docs/venues.md lists them).

A venue value that breaks a rule is a ``DecodeError``, so the collector turns its frame into a
counted ``DecodeFailure`` that keeps the raw bytes; it never becomes a market event.

- Frames are strict UTF-8 (no UTF-16/32, no encoded surrogates): ``load_json``.
- Decimals are plain decimal strings, ASCII digits only: an optional ``-``, at most 18 integer
  digits without leading zeros, at most 18 fraction digits; no exponent, spaces, underscores,
  ``+``, NaN or Infinity. The string is checked before ``Decimal()`` ever sees it, so ``"٣"``,
  ``"1_0"`` and ``"1e999999"`` never become numbers. This bounds every decimal to
  [1e-18, 1e18) in magnitude.
- Prices are > 0; sizes of a fill, quote or snapshot level are > 0; a depth diff's level size is
  >= 0 (0 deletes the level).
- Ids are ints in 0..2^63-1 (Binance documents them as signed 64-bit; the journal's msgpack
  cannot hold more than 64 bits). Times are ms ints whose ns value fits a signed 64-bit int.
- The top of book is not crossed: best bid < best ask.
"""

from __future__ import annotations

import json
import re
from decimal import Decimal
from typing import Any

from arbor.adapters.decoding import DecodeError

INT64_MAX = 2**63 - 1
NS_PER_MS = 1_000_000
MS_MAX = INT64_MAX // NS_PER_MS
ZERO = Decimal(0)

# fullmatch, not match: "$" would let a trailing newline through. [0-9], not \d: \d is any Unicode digit.
DECIMAL_TEXT = re.compile(r"-?(?:0|[1-9][0-9]{0,17})(?:\.[0-9]{1,18})?")
_is_decimal_text = DECIMAL_TEXT.fullmatch


def load_json(payload: bytes) -> Any:
    """The JSON value of a strict UTF-8 frame (``json.loads`` on bytes would also take UTF-16/32
    and let encoded surrogates through)."""
    return json.loads(payload.decode("utf-8"))


def decimal(value: Any, name: str) -> Decimal:
    """A plain decimal string as a Decimal, of any sign (funding rates may be negative)."""
    if type(value) is not str:
        raise DecodeError(f"field {name!r} must be a decimal string, got {type(value).__name__}")
    if _is_decimal_text(value) is None:
        raise DecodeError(f"field {name!r} is not a plain decimal (ASCII digits, at most 18 each side of the point): {short(value)}")
    return Decimal(value)


def price(value: Any, name: str) -> Decimal:
    """A price: a plain decimal > 0."""
    d = decimal(value, name)
    if d <= ZERO:
        raise DecodeError(f"price {name!r} must be > 0, got {short(value)}")
    return d


def size(value: Any, name: str) -> Decimal:
    """The size of a fill, quote or book level: a plain decimal > 0."""
    d = decimal(value, name)
    if d <= ZERO:
        raise DecodeError(f"size {name!r} must be > 0, got {short(value)}")
    return d


def level_size(value: Any, name: str) -> Decimal:
    """The size of a depth-diff level: a plain decimal >= 0 (0 deletes the level)."""
    d = decimal(value, name)
    if d < ZERO or value[0] == "-":  # "-0" is no venue's delete
        raise DecodeError(f"level size {name!r} must be >= 0, got {short(value)}")
    return d


def venue_id(value: Any, name: str) -> int:
    """A trade or update id: an int in 0..2^63-1."""
    if type(value) is not int:  # bool is not an int here
        raise DecodeError(f"field {name!r} must be an integer, got {type(value).__name__}")
    if not 0 <= value <= INT64_MAX:
        raise DecodeError(f"id {name!r} must be in 0..2^63-1, got {short(value)}")
    return value


def ms_to_ns(value: Any, name: str) -> int:
    """A time in integer ms, as ns that fit a signed 64-bit int."""
    if type(value) is not int or not 0 <= value <= MS_MAX:
        raise DecodeError(f"time field {name!r} must be an integer of ms in 0..{MS_MAX}, got {short(value)}")
    return value * NS_PER_MS


def check_not_crossed(bid: Decimal | None, ask: Decimal | None, what: str) -> None:
    """``DecodeError`` unless bid < ask (either side may be absent)."""
    if bid is not None and ask is not None and bid >= ask:
        raise DecodeError(f"{what} is crossed or locked: bid {bid} >= ask {ask}")


def check_levels_not_crossed(bids: tuple[tuple[Decimal, Decimal], ...], asks: tuple[tuple[Decimal, Decimal], ...],
                             what: str) -> None:
    """``DecodeError`` if the levels present (size > 0) on both sides cross: after applying them the
    book would have a bid at or above an ask."""
    if bids and asks:
        best_bid = max([p for p, q in bids if q], default=None)
        best_ask = min([p for p, q in asks if q], default=None)
        check_not_crossed(best_bid, best_ask, what)


def short(value: Any, limit: int = 60) -> str:
    """A bounded repr for error messages: a fuzzed frame may hold megabytes in one field."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
