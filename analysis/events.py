"""Market events for analysis, read through the runtime's own readers and decoders.

A source is a recording (HBT or CF3 files, read by ``arbor.adapters.recorded``) or a journal
directory (its external inputs, read by ``arbor.actors.replay.whatif.journal_inputs``). Either way
every frame goes through the symbol's ``CollectorLogic`` with the venue's decoder, exactly as in
the runtime, so the events here are the events the Feature actor sees, with the same sequence
numbers; a frame that does not decode is a counted ``DecodeFailure``, not an error.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import attrs
from arbor.actors.base import ActorContext
from arbor.actors.collector.logic import CollectorLogic
from arbor.actors.runtime.clock import SimClock
from arbor.adapters.decoding import decoder_for
from arbor.messages.market import DecodeFailure, RawMarketEvent, VenuePayload
from loguru import logger

__all__ = ["EventSource", "SourceError", "decode_frames", "read_source"]

Frame = tuple[int, str, str, bytes]  # (receive ns, venue, SYMBOL, payload)


class SourceError(ValueError):
    """A source that cannot be read: missing, unsupported, or an unreadable journal (the message says which)."""


@attrs.define
class EventSource:
    """The decoded events of one source, in receive order, and what did not decode (``failures`` by symbol)."""

    name: str
    events: list[RawMarketEvent]
    failures: dict[str, int] = attrs.field(factory=dict)

    @property
    def symbols(self) -> list[str]:
        return sorted({e.symbol for e in self.events} | set(self.failures))


def _context(symbol: str, clock: SimClock) -> ActorContext:
    return ActorContext(actor_id=f"{symbol}/collector", symbol=symbol, clock=clock,
                        log=logger.bind(actor=f"{symbol}/collector", symbol=symbol), rng=random.Random(0),
                        run_id="analysis")


def decode_frames(frames: Iterable[Frame]) -> tuple[list[RawMarketEvent], dict[str, int]]:
    """Every frame through its symbol's collector (one per symbol, as in the runtime). Depth diffs feed
    no feature but are decoded too: their event times close feature buckets, as in the runtime."""
    clock = SimClock(0)
    collectors: dict[str, CollectorLogic] = {}
    events: list[RawMarketEvent] = []
    failures: dict[str, int] = {}
    for ts, venue, symbol, payload in frames:
        collector = collectors.get(symbol)
        if collector is None:
            collector = collectors[symbol] = CollectorLogic(_context(symbol, clock), decoder_for(venue, symbol))
        clock.set(ts)
        for out in collector.on_venue_payload(VenuePayload(venue=venue, symbol=symbol, payload=payload)):
            if isinstance(out, DecodeFailure):
                failures[symbol] = failures.get(symbol, 0) + 1
            else:
                events.append(out)
    return events, failures


def _recording_frames(paths: Sequence[str]) -> Iterator[Frame]:
    from arbor.adapters.recorded.detect import UnsupportedRecording, detect_recordings
    from arbor.adapters.recorded.source import read_recordings

    try:
        venue, _infos = detect_recordings(paths)
    except UnsupportedRecording as exc:
        raise SourceError(str(exc)) from None
    return ((ts, venue, symbol, payload) for ts, symbol, payload in read_recordings(list(paths)))


def _journal_frames(directory: Path) -> Iterator[Frame]:
    from arbor.actors.replay.journal_io import UnreadableJournal
    from arbor.actors.replay.whatif import journal_inputs
    from arbor.messages.codec import Codec

    try:
        for ts, _receiver, msg in journal_inputs(directory, Codec()):
            if isinstance(msg, VenuePayload):  # operator commands and the like carry no market data
                yield ts, msg.venue, msg.symbol, msg.payload
    except UnreadableJournal as exc:
        raise SourceError(f"unreadable journal: {exc}") from None


def read_source(paths: Sequence[str | Path]) -> EventSource:
    """The events of recording files (one market, merged by receive time) or of one journal directory."""
    if not paths:
        raise SourceError("no recording or journal given")
    names = [str(p) for p in paths]
    missing = [n for n in names if not Path(n).exists()]
    if missing:
        raise SourceError(f"no such file or directory: {missing[0]}")
    dirs = [n for n in names if Path(n).is_dir()]
    if dirs and len(names) > 1:
        raise SourceError(f"a journal directory ({dirs[0]}) is analysed on its own, not with other sources")
    frames = _journal_frames(Path(names[0])) if dirs else _recording_frames(names)
    try:
        events, failures = decode_frames(frames)
    except (OSError, EOFError) as exc:
        raise SourceError(f"unreadable recording ({', '.join(names)}): {type(exc).__name__}: {exc}") from None
    except ValueError as exc:  # RecordingFormatError and the like: a file that is not what it claims
        if isinstance(exc, SourceError):
            raise
        raise SourceError(f"unreadable recording ({', '.join(names)}): {exc}") from None
    return EventSource(name=", ".join(Path(n).name for n in names), events=events, failures=failures)
