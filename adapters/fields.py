"""The field rules every venue decoder applies at the boundary (issue 14; docs/venues.md lists them).

A venue value that breaks a rule is a ``DecodeError``, so the collector turns its frame into a
counted ``DecodeFailure`` that keeps the raw bytes; it never becomes a market event.

- Frames are strict UTF-8 (no UTF-16/32, no encoded surrogates) and nest at most
  ``MAX_NESTING`` (256) arrays and objects deep: ``load_json``. (The stdlib parser's own limit is
  the interpreter's recursion limit counted from the caller's stack, so the same frame would be
  accepted at the top of one stack and refused deeper in another: a live run and its audit could
  disagree, and so did the fast and reference paths, one call apart.)
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

Depth levels are checked in bulk on their JSON text (``fast_book_sides``), so a level costs no
Python code and no ``Decimal``: the event keeps the text (``messages.market``). A fast check
only ever accepts what the per-field rules accept; whatever it refuses, the reference readers
decide, with their messages.
"""

from __future__ import annotations

import json
import re
from decimal import Decimal
from itertools import accumulate, compress
from typing import Any

import orjson
from arbor.adapters.decoding import DecodeError

INT64_MAX = 2**63 - 1
NS_PER_MS = 1_000_000
MS_MAX = INT64_MAX // NS_PER_MS

# fullmatch, not match: "$" would let a trailing newline through. [0-9], not \d: \d is any Unicode digit.
UNSIGNED_TEXT = re.compile(r"(?:0|[1-9][0-9]{0,17})(?:\.[0-9]{1,18})?")
SIGNED_TEXT = re.compile(r"-?(?:0|[1-9][0-9]{0,17})(?:\.[0-9]{1,18})?")
_is_unsigned_text = UNSIGNED_TEXT.fullmatch
# Many unsigned decimals joined by "," checked in one regex pass (a book has hundreds of levels).
_are_unsigned_texts = re.compile(f"(?:{UNSIGNED_TEXT.pattern},)*{UNSIGNED_TEXT.pattern}").fullmatch
_is_signed_text = SIGNED_TEXT.fullmatch

Level = tuple[Decimal, Decimal]

# At least what a fast path takes unchecked (a frame under 512 bytes nests at most 255 deep) and
# far below the recursion limit, so that json never reaches it on a frame accepted here.
MAX_NESTING = 256
_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"')  # no " or \ byte occurs inside a UTF-8 multibyte character
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_NESTING_STEP = [0] * 256
for _b in b"[{":
    _NESTING_STEP[_b] = 1
for _b in b"]}":
    _NESTING_STEP[_b] = -1


def nesting(payload: bytes) -> int:
    """How deep ``payload`` (JSON text) nests arrays and objects; brackets in strings do not count."""
    brackets = _JSON_STRING.sub(b"", payload).translate(None, _NOT_BRACKETS)
    return max(accumulate(map(_NESTING_STEP.__getitem__, brackets)), default=0)


def load_json(payload: bytes) -> Any:
    """The JSON value of a strict UTF-8 frame nesting at most ``MAX_NESTING`` deep (``json.loads``
    on bytes would also take UTF-16/32 and let encoded surrogates through; see the module doc for
    why the nesting is bounded here). The exact count runs only on frames with that many brackets."""
    text = payload.decode("utf-8")
    if payload.count(b"[") + payload.count(b"{") > MAX_NESTING and nesting(payload) > MAX_NESTING:
        raise DecodeError(f"frame nested deeper than {MAX_NESTING} arrays and objects")
    return json.loads(text)


def _text(value: Any, name: str, pattern: Any) -> str:
    if type(value) is not str:
        raise DecodeError(f"field {name!r} must be a decimal string, got {type(value).__name__}")
    if pattern(value) is None:
        sign = "" if pattern is _is_signed_text else "unsigned "
        raise DecodeError(f"field {name!r} is not a plain {sign}decimal (ASCII digits, at most 18 each side of the point): "
                          f"{short(value)}")
    return value


def decimal(value: Any, name: str) -> Decimal:
    """A plain decimal string as a Decimal, of any sign (funding rates may be negative)."""
    return Decimal(_text(value, name, _is_signed_text))


def price(value: Any, name: str) -> Decimal:
    """A price: a plain unsigned decimal > 0."""
    d = Decimal(_text(value, name, _is_unsigned_text))
    if not d:
        raise DecodeError(f"price {name!r} must be > 0, got {short(value)}")
    return d


def size(value: Any, name: str) -> Decimal:
    """The size of a fill, quote or book level: a plain unsigned decimal > 0."""
    d = Decimal(_text(value, name, _is_unsigned_text))
    if not d:
        raise DecodeError(f"size {name!r} must be > 0, got {short(value)}")
    return d


def level_size(value: Any, name: str) -> Decimal:
    """The size of a depth-diff level: a plain unsigned decimal, 0 included (0 deletes the level)."""
    return Decimal(_text(value, name, _is_unsigned_text))


def levels(prices: list[Any], sizes: list[Any], name: str, *, deletes: bool) -> tuple[Level, ...]:
    """Book levels from their price and size strings: prices > 0, sizes > 0, or >= 0 when the
    levels are a diff's (``deletes``: 0 removes a level). Checked in bulk: a book has hundreds."""
    if prices and not _all_unsigned_texts(prices, sizes):
        for p, q in zip(prices, sizes, strict=True):  # find the culprit, for the message
            _text(p, f"{name} price", _is_unsigned_text)
            _text(q, f"{name} size", _is_unsigned_text)
    ds = [*map(Decimal, prices)]
    qs = [*map(Decimal, sizes)]
    if ds and not min(ds):
        raise DecodeError(f"{name}: a level's price must be > 0")
    if not deletes and qs and not min(qs):
        raise DecodeError(f"{name}: a level's size must be > 0")
    return tuple(zip(ds, qs, strict=True))


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


def _all_unsigned_texts(prices: list[Any], sizes: list[Any]) -> bool:
    if not (all(map(str.__instancecheck__, prices)) and all(map(str.__instancecheck__, sizes))):
        return False
    joined = ",".join(prices) + "," + ",".join(sizes)
    # A "," inside a value would split it into two that each look valid: count them.
    return joined.count(",") == len(prices) + len(sizes) - 1 and _are_unsigned_texts(joined) is not None


# -- depth levels checked in bulk, on their text ---------------------------------------------------
# A level array's text with its digits and points deleted must be exactly the shape of n levels
# of two strings, [["",""],["",""],...]: so every value is a string of digits and points, and no
# other byte (whitespace, sign, exponent, NaN, escape, non-ASCII) is anywhere. With the quotes
# then deleted, orjson reads the values as JSON numbers, whose grammar leaves exactly the plain
# unsigned decimals (no leading zeros, no "1." or ".5", at most one point). The rules allow 18
# digits each side of the point; the fast check takes at most 15 (real books have ~10) and
# leaves longer runs to the reference: then every integer orjson returns is below 10^15 < 2^53,
# exactly a float, so comparing ints and floats is comparing floats, where rounding is monotonic.
_DIGITS_AND_POINT = b"0123456789."
_TO_NINES = bytes.maketrans(b"012345678", b"999999999")
_SIXTEEN_DIGITS = b"9" * 16
# orjson reads a list of numbers about twice as fast as msgspec here, correctly rounded (checked
# against float() on 200,000 random plain decimals) and by the JSON grammar.
_orjson_loads = orjson.loads


def _shape(n: int) -> bytes:
    """The text of ``n`` levels with their digits and points deleted."""
    return b'[["",""]' + b',["",""]' * (n - 1) + b"]" if n else b"[]"


def fast_book_sides(bids: bytes, asks: bytes, *, deletes: bool) -> int:
    """The number of levels in ``bids`` and ``asks`` (the JSON text of two level arrays), if every
    level is plainly valid (``[price, qty]`` decimal strings, price > 0, qty > 0, or >= 0 with
    ``deletes``) and the levels present (qty > 0) leave best bid < best ask; raises (anything)
    otherwise. No Python code runs per level: three C passes over the bytes, one parse of all
    the values as one flat list of numbers (prices at even places), slices and min/max.

    Exact although on floats: every value is >= 0 (no sign passes the shape), a float is > 0
    exactly when its decimal (at least 1e-15 here) is, every integer is below 2^53 (exactly a
    float), and rounding to the nearest float is monotonic, so float(bid) < float(ask) implies
    bid < ask. Where the floats cannot tell (equal), this raises and the reference (Decimal)
    decides; so it does for values with more than 15 digits on one side of the point."""
    sides = bids + b"," + asks
    nines = sides.translate(_TO_NINES)
    if _SIXTEEN_DIGITS in nines:
        raise ValueError("more than 15 digits on one side of a point: the reference decides")
    shape = nines.translate(None, b"9.")
    nb = 0 if shape.startswith(b"[],") else (shape.find(b"]],") + 1) >> 3  # the bids' shape is 8 nb + 1 long
    na = max(len(shape) - 8 * nb - 3, 0) >> 3 if nb else max(len(shape) - 4, 0) >> 3
    if shape != _shape(nb) + b"," + _shape(na):
        raise ValueError("not plain level text")
    if (not nb and bids != b"[]") or (not na and asks != b"[]"):
        raise ValueError("a side of bare numbers ([0] has the shape of [] once digits are removed)")
    if not (nb and na):
        sides = bids if nb else asks
    values = _orjson_loads(b"[" + sides.translate(None, b'"[]') + b"]")
    split = 2 * nb
    bid_prices, ask_prices = values[0:split:2], values[split::2]
    if nb and na:
        low_bid, high_bid, low_ask = min(bid_prices), max(bid_prices), min(ask_prices)
        if not (low_bid and low_ask):
            raise ValueError("a price is 0")
        # Every bid below every ask: not crossed, whatever the sizes (nearly every diff). Else
        # only the levels present count: a deleted bid may lie above the new best ask.
        if not high_bid < low_ask:
            if not deletes:
                raise ValueError("crossed, or too close to tell in floats")
            best_bid = max(compress(bid_prices, values[1:split:2]), default=None)
            best_ask = min(compress(ask_prices, values[split + 1::2]), default=None)
            if best_bid is not None and best_ask is not None and not best_bid < best_ask:
                raise ValueError("crossed, or too close to tell in floats")
    elif values and not min(values[0::2]):
        raise ValueError("a price is 0")
    if not deletes and values and not min(values[1::2]):
        raise ValueError("a snapshot's size is 0")
    return nb + na


def check_not_crossed(bid: Decimal | None, ask: Decimal | None, what: str) -> None:
    """``DecodeError`` unless bid < ask (either side may be absent)."""
    if bid is not None and ask is not None and bid >= ask:
        raise DecodeError(f"{what} is crossed or locked: bid {bid} >= ask {ask}")


def check_levels_not_crossed(bids: tuple[Level, ...], asks: tuple[Level, ...], what: str) -> None:
    """``DecodeError`` if the levels present (size > 0) on both sides cross: after applying them the
    book would have a bid at or above an ask."""
    if bids and asks:
        # The highest bid level (and lowest ask) is nearly always an add: filter only when not.
        top = max(bids)
        best_bid = top[0] if top[1] else max([p for p, q in bids if q], default=None)
        top = min(asks)
        best_ask = top[0] if top[1] else min([p for p, q in asks if q], default=None)
        check_not_crossed(best_bid, best_ask, what)


def short(value: Any, limit: int = 60) -> str:
    """A bounded repr for error messages: a fuzzed frame may hold megabytes in one field."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
