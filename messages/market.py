"""Market data as it enters the runtime."""

from __future__ import annotations

from decimal import Decimal

from arbor.messages.base import MarketEventKind, Side, message

Level = tuple[Decimal, Decimal]


@message("VenuePayload")
class VenuePayload:
    """One raw frame from a venue feed for one symbol, exactly as received (external input)."""

    venue: str
    symbol: str
    payload: bytes


@message("RawMarketEvent")
class RawMarketEvent:
    """A decoded market event: normalized fields next to the raw payload, byte for byte.

    ``ingest_seq`` is gap-free per symbol across events *and* DecodeFailures, so every input
    frame is accounted for. ``part`` numbers the events decoded from one frame (0 for most).
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
    bids: tuple[Level, ...] = ()
    asks: tuple[Level, ...] = ()
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
