"""Market data as it enters the runtime.

Depth levels stay in the frame's own text until something asks for them (issue 17): a
``RawMarketEvent``'s ``bids`` and ``asks`` are the JSON text of the level array,
``[["price","qty"],...]`` (compact, the venue's decimal strings untouched), already validated by
the decoder at the boundary. Nothing on the hot path reads them (features use the quote), so
no ``Decimal`` is built for a level nobody reads; the book, or a feature that wants levels,
reads them in its own representation: ``decimal_levels`` (exact, for books and money) or
``float_levels`` (for feature math).
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from typing import Any

import msgspec
import orjson
from arbor.messages.base import MarketEventKind, MarketStruct, Side, message, struct_message

Level = tuple[Decimal, Decimal]
LevelsText = bytes  # the JSON text [["price","qty"],...] of one side of a book; b"" for none

# Decoders are immutable once built: module constants, like compiled regular expressions.
_DECIMAL_LEVELS = msgspec.json.Decoder(tuple[tuple[Decimal, Decimal], ...])
_FLOAT_LEVELS = msgspec.json.Decoder(tuple[tuple[float, float], ...], strict=False)  # strict=False: "1.5" -> 1.5


def decimal_levels(text: LevelsText) -> tuple[Level, ...]:
    """The levels of ``text`` as exact ``(price, qty)`` Decimal pairs, in the frame's order."""
    if not text:
        return ()
    levels: tuple[Level, ...] = _DECIMAL_LEVELS.decode(text)
    return levels


def float_levels(text: LevelsText) -> tuple[tuple[float, float], ...]:
    """The levels of ``text`` as ``(price, qty)`` floats (feature math), in the frame's order."""
    if not text:
        return ()
    levels: tuple[tuple[float, float], ...] = _FLOAT_LEVELS.decode(text)
    return levels


def levels_text(levels: Iterable[tuple[Any, Any]]) -> LevelsText:
    """The canonical text of ``(price, qty)`` levels given as decimal strings or Decimals.

    Canonical: compact JSON, each value the decimal string as given (``str`` of a Decimal), so a
    frame's own level text, when already compact, is exactly this."""
    return orjson.dumps([[p if type(p) is str else str(p), q if type(q) is str else str(q)] for p, q in levels])


def upgrade_raw_market_event_v1(body: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """``RawMarketEvent.v1`` (levels as lists of decimal strings) as a ``RawMarketEvent.v2`` body."""
    body = dict(body)
    for side in ("bids", "asks"):
        levels = body.get(side)
        body[side] = levels_text(levels) if levels else b""
    return "RawMarketEvent.v2", body


@struct_message("VenuePayload")
class VenuePayload(MarketStruct, frozen=True, kw_only=True, gc=False):  # config repeated for type checkers
    """One raw frame from a venue feed for one symbol, exactly as received (external input).

    A ``MarketStruct`` like ``RawMarketEvent``: one is built (and, in an audit, decoded) per frame."""

    venue: str
    symbol: str
    payload: bytes


@struct_message("RawMarketEvent", version=2)
class RawMarketEvent(MarketStruct, frozen=True, kw_only=True, gc=False):  # config repeated for type checkers
    """A decoded market event: normalized fields next to the raw payload, byte for byte.

    A msgspec Struct (``MarketStruct``), not an attrs class: one is built per frame on the hot
    path. ``raw`` is the frame's own bytes object, kept by reference (never copied); the events of
    a multi-event frame share it. Its wire body is the same map as the attrs class it replaced
    (field names, Decimals as strings), so journals written before still read.

    ``ingest_seq`` is gap-free per symbol across events *and* DecodeFailures, so every input
    frame is accounted for. ``part`` numbers the events decoded from one frame (0 for most).
    ``bids``/``asks`` (DEPTH, SNAPSHOT) are validated level text, read with ``decimal_levels``
    or ``float_levels`` (v1 held Decimal pairs; ``upgrade_raw_market_event_v1`` reads old journals).
    """

    symbol: str
    venue: str
    ingest_seq: int
    ts_event_ns: int
    ts_recv_ns: int
    kind: MarketEventKind
    raw: bytes
    part: int = 0
    price: Decimal | None = None
    qty: Decimal | None = None
    side: Side | None = None  # aggressor side of a trade / side of a forced order
    trade_id: int | None = None
    bid_price: Decimal | None = None
    bid_qty: Decimal | None = None
    ask_price: Decimal | None = None
    ask_qty: Decimal | None = None
    bids: LevelsText = b""
    asks: LevelsText = b""
    first_update_id: int | None = None
    last_update_id: int | None = None
    prev_update_id: int | None = None
    mark_price: Decimal | None = None
    index_price: Decimal | None = None
    funding_rate: Decimal | None = None
    open_interest: Decimal | None = None


@message("DecodeFailure")
class DecodeFailure:
    """A frame that could not be decoded; counted, logged and journaled, never dropped."""

    symbol: str
    venue: str
    ingest_seq: int
    ts_recv_ns: int
    error: str
    raw: bytes
