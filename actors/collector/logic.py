"""Collector(S): venue payloads in, sequenced market events (or decode failures) out."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from arbor.actors.base import ActorContext, ActorLogic
from arbor.adapters.decoding import DecodeError, Decoder
from arbor.messages.market import DecodeFailure, RawMarketEvent, VenuePayload


class CollectorLogic(ActorLogic):
    """Stamps, decodes and sequences one symbol's market data; accounts for every frame.

    Each ``VenuePayload`` gets its receive time from the context's clock exactly once. Every
    event decoded from it becomes a ``RawMarketEvent`` carrying the payload's very bytes; a frame
    that cannot be decoded (or belongs to another symbol) becomes one ``DecodeFailure``. Both take
    the next ``ingest_seq``, which starts at 1 and has no gaps. A control frame (no market data)
    emits nothing and is counted. Runs on whatever thread the runtime hands it; holds no locks.
    """

    ROLE = "collector"

    def __init__(self, ctx: ActorContext, decoder: Decoder) -> None:
        super().__init__(ctx)
        self._decode = decoder
        self._seq = 0
        self._frames = 0
        self._events = 0
        self._failures = 0
        self._control_frames = 0

    def wrap_decoder(self, wrap: Callable[[Decoder], Decoder]) -> None:
        """Decode through ``wrap(current decoder)`` from now on: the fault hook that tests and audit
        experiments use to change what a frame decodes to (the actor never calls it itself)."""
        self._decode = wrap(self._decode)

    def on_venue_payload(self, msg: VenuePayload) -> list[RawMarketEvent] | list[DecodeFailure]:
        """Decode one frame into its events, or into one DecodeFailure."""
        ctx = self.ctx
        ts_recv_ns = ctx.clock.now_ns()
        self._frames += 1
        raw = msg.payload
        symbol = ctx.symbol
        if msg.symbol != symbol:
            error = f"misrouted: payload for {msg.symbol!r} reached the collector of {symbol!r}"
            return [self._failure(msg, ts_recv_ns, error)]
        first_seq = self._seq + 1
        try:
            parts = self._decode(raw)
            n = len(parts)
            if n == 0:
                self._control_frames += 1
                return []
            venue = msg.venue
            if n == 1:  # nearly every frame: one event
                fields = parts[0]
                if not fields.get("ts_event_ns"):
                    fields = {**fields, "ts_event_ns": ts_recv_ns}
                events = [RawMarketEvent(symbol=symbol, venue=venue, ingest_seq=first_seq, ts_recv_ns=ts_recv_ns,
                                         raw=raw, part=0, **fields)]
            else:
                events = []
                for i, fields in enumerate(parts):
                    if not fields.get("ts_event_ns"):
                        fields = {**fields, "ts_event_ns": ts_recv_ns}
                    events.append(
                        RawMarketEvent(
                            symbol=symbol,
                            venue=venue,
                            ingest_seq=first_seq + i,
                            ts_recv_ns=ts_recv_ns,
                            raw=raw,
                            part=i,
                            **fields,
                        )
                    )
        except Exception as exc:  # a decoder must raise only DecodeError; anything else is still a failed frame
            error = str(exc) if isinstance(exc, DecodeError) else f"{type(exc).__name__}: {exc}"
            return [self._failure(msg, ts_recv_ns, error)]
        # Committed only once every part is built, so a half-decoded frame leaves no gap.
        self._seq += n
        self._events += n
        return events

    def _failure(self, msg: VenuePayload, ts_recv_ns: int, error: str) -> DecodeFailure:
        self._seq += 1
        self._failures += 1
        self.ctx.log.warning("decode failure seq={} venue={}: {}", self._seq, msg.venue, error)
        return DecodeFailure(
            symbol=self.ctx.symbol,
            venue=msg.venue,
            ingest_seq=self._seq,
            ts_recv_ns=ts_recv_ns,
            error=error,
            raw=msg.payload,
        )

    def resume_after(self, seq: int) -> None:
        """Continue numbering after ``seq`` (a restarted collector keeps the sequence gap-free)."""
        self._seq = seq

    @property
    def last_seq(self) -> int:
        return self._seq

    def stats(self) -> dict[str, Any]:
        return {
            "frames": self._frames,
            "events": self._events,
            "decode_failures": self._failures,
            "control_frames": self._control_frames,
            "last_seq": self._seq,
        }
