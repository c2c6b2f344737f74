"""What-if replay: journaled or recorded external inputs through the deterministic scheduler.

Market data and operator commands are taken from a journal's EXTERNAL records (timer ticks are
not: the scheduler regenerates them at the configured interval) or from HBT recordings, and fed
to every actor built from a configuration that may differ from the recorded one. The run is
single-threaded in simulated time, so the same inputs and configuration give byte-identical
decisions: the digest is SHA-256 over the codec encoding of every Action, ActionApproved,
ActionDenied, PlaceOrder and OrderFilled, in the order they were emitted.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import time
import tomllib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
import msgpack
from arbor.actors.cluster.build import build_actors, market_frames, market_venue
from arbor.actors.replay.journal_io import UnreadableJournal, open_for_replay
from arbor.actors.replay.report import BacktestReport
from arbor.actors.runtime import DeterministicRuntime, SimClock
from arbor.adapters.recorded.source import resolve_recorded
from arbor.config.errors import ConfigError
from arbor.config.settings import Settings
from arbor.messages import (
    Action,
    ActionApproved,
    ActionDenied,
    Envelope,
    OrderFilled,
    PlaceOrder,
    TimerTick,
    VenuePayload,
)
from arbor.messages.codec import Codec
from arbor.messages.journal import RunMetadata

DECISION_TYPES: tuple[type, ...] = (Action, ActionApproved, ActionDenied, PlaceOrder, OrderFilled)
WHATIF_RUN_ID = "whatif"

Input = tuple[int, str, Any]  # (ts_ns, receiver, message)


class DecisionDigest:
    """SHA-256 over the encoded decision stream, and how many decisions of each type."""

    wants_inputs = False

    def __init__(self, codec: Codec) -> None:
        self._encode = codec.encode
        self._hash = hashlib.sha256()
        self._types = frozenset(DECISION_TYPES)
        self.counts: dict[str, int] = {}

    def external(self, env: Envelope) -> None:
        pass

    def processed(self, actor_id: str, env: Envelope, now_ns: int) -> None:
        pass

    def emitted(self, env: Envelope, receivers: tuple[str, ...]) -> None:
        t = type(env.payload)
        if t in self._types:
            self._hash.update(self._encode(env.payload))
            self.counts[t.__name__] = self.counts.get(t.__name__, 0) + 1

    def hexdigest(self) -> str:
        return self._hash.hexdigest()


@attrs.frozen(kw_only=True)
class WhatIfResult:
    digest: str
    inputs: int
    decisions: dict[str, int]
    report: dict[str, Any]
    elapsed_s: float
    skipped_inputs: int = 0

    def to_json(self) -> dict[str, Any]:
        return {"digest": self.digest, "inputs": self.inputs, "skipped_inputs": self.skipped_inputs,
                "report": self.report, "elapsed_s": round(self.elapsed_s, 3)}


# -- configuration ---------------------------------------------------------------------------------
def _literal(text: str) -> Any:
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def apply_overrides(raw: Mapping[str, Any], assignments: Sequence[str]) -> dict[str, Any]:
    """``raw`` with each ``section.key=value`` applied (value read as a TOML literal, else a string).

    Symbols are addressed by name, index or ``*``: ``symbols.BTCUSDT.strategy_params.stop_atr=2``,
    ``symbols[0].strategy=mean_reversion``, ``symbols.*.strategy=trend_following``.
    """
    out = copy.deepcopy(dict(raw))
    for assignment in assignments:
        path, sep, text = assignment.partition("=")
        path = path.strip()
        if not sep or not path:
            raise ConfigError("--set", f"expected section.key=value, got {assignment!r}")
        value = _literal(text.strip())
        parts = path.replace("[", ".").replace("]", "").split(".")
        if parts[0] == "symbols":
            if len(parts) < 3:
                raise ConfigError(path, "address a symbol's key: symbols.<SYMBOL|index|*>.<key>=value")
            entries = out.get("symbols")
            if not isinstance(entries, list):
                raise ConfigError("symbols", "no [[symbols]] configured")
            sel = parts[1]
            if sel == "*":
                targets = entries
            elif sel.isdigit():
                if int(sel) >= len(entries):
                    raise ConfigError(path, f"there are {len(entries)} symbols")
                targets = [entries[int(sel)]]
            else:
                targets = [e for e in entries if isinstance(e, dict) and e.get("symbol") == sel]
                if not targets:
                    raise ConfigError(path, f"symbol {sel} is not configured")
            for entry in targets:
                _set(entry, parts[2:], value, path)
        else:
            _set(out, parts, value, path)
    return out


def _set(node: dict[str, Any], parts: list[str], value: Any, path: str) -> None:
    for part in parts[:-1]:
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        elif not isinstance(child, dict):
            raise ConfigError(path, f"{part} is not a table")
        else:
            child = node[part] = dict(child)
        node = child
    node[parts[-1]] = value


def journal_config(meta: RunMetadata, config_file: Path | None, assignments: Sequence[str]) -> dict[str, Any]:
    """The recorded configuration, with ``config_file`` merged over it and ``assignments`` applied."""
    from arbor.config.loader import deep_merge, read_toml

    raw = dict(meta.config)
    if config_file is not None:
        raw = deep_merge(raw, read_toml(Path(config_file)))
    return apply_overrides(raw, assignments)


def hbt_config(files: Sequence[str], base_raw: Mapping[str, Any], assignments: Sequence[str]) -> dict[str, Any]:
    """``base_raw`` playing the recordings ``files`` (HBT or CF3) as fast as possible.

    Venue, market and symbols come from the recordings (``adapters.recorded.detect``): when every
    configured symbol is on the simulated venue (the defaults), the symbols become the recordings'
    own; a configured venue that contradicts them is a ``ConfigError`` naming ``symbols[i].venue``.
    """
    raw = copy.deepcopy(dict(base_raw))
    raw["market"] = {**raw.get("market", {}), "source": "recorded", "recorded_files": [str(f) for f in files],
                     "paced": False}
    # Overrides go on the recordings' symbols; a venue set by one is checked against them again.
    return resolve_recorded(apply_overrides(resolve_recorded(raw, "--hbt"), assignments), "--hbt")


# -- inputs ------------------------------------------------------------------------------------------
def journal_metadata(directory: Path | str) -> RunMetadata:
    """The first run's metadata in a journal."""
    reader, _ = open_for_replay(directory)
    for _index, payload in reader.records():
        obj = msgpack.unpackb(payload, raw=False, strict_map_key=False)
        if obj[0] == 3:
            return RunMetadata.from_primitive(obj[1])
        raise UnreadableJournal(f"{directory}: the journal does not start with run metadata")
    raise UnreadableJournal(f"{directory}: the journal holds no records")


def journal_inputs(directory: Path | str, codec: Codec, *, ticks: bool = False) -> Iterator[Input]:
    """The journal's external inputs as ``(receive ns, receiver, message)``; timer ticks only with ``ticks``."""
    reader, _ = open_for_replay(directory)
    unpackb = msgpack.unpackb
    for _index, payload in reader.records():
        obj = unpackb(payload, raw=False, strict_map_key=False)
        if obj[0] != 2:
            continue
        prim = obj[1]
        if not ticks and prim[6] == TimerTick.TAG:  # type: ignore[attr-defined]  # set by @message
            continue
        yield prim[4], prim[2], codec.from_primitive(prim[6], prim[7])


def journal_ticks(meta: RunMetadata, settings: Settings) -> bool:
    """Whether a what-if of this journal replays its recorded timer ticks: when it runs at the
    recorded ``run.tick_interval_ms``. The paper venue answers an order on the first market event
    or tick after its latency, so ticks on another phase (a generated grid) fill orders at other
    quotes; at another interval the ticks are generated, as they must be."""
    from arbor.config.settings import build_settings

    try:
        recorded = build_settings(dict(meta.config)).run.tick_interval_ms
    except ConfigError:
        return False
    return bool(recorded == settings.run.tick_interval_ms)


def market_inputs(settings: Settings) -> Iterator[Input]:
    """The configured market's frames as inputs to each symbol's collector."""
    venue = market_venue(settings)
    return ((ts, f"{sym}/collector", VenuePayload(venue=venue, symbol=sym, payload=payload))
            for ts, sym, payload in market_frames(settings, 0))


# -- running ---------------------------------------------------------------------------------------
def run_whatif(settings: Settings, inputs: Iterable[Input], *, limit: int | None = None, codec: Codec | None = None,
               progress: Callable[[int, int], None] | None = None, recorded_ticks: bool = False,
               observers: Sequence[Any] = ()) -> WhatIfResult:
    """Feed ``inputs`` (time-ordered) to every actor built from ``settings`` on the deterministic scheduler.

    ``limit`` caps the number of inputs; ``progress(inputs done, simulated ns)`` is called every
    10,000 inputs. With ``recorded_ticks`` the timer ticks come from ``inputs`` (a journal's, see
    ``journal_ticks``) instead of being generated at ``run.tick_interval_ms``. ``observers`` see
    the run besides the digest and the report.
    """
    codec = codec or Codec()
    it = iter(inputs)
    if limit is not None:
        it = itertools.islice(it, limit)
    first = next(it, None)
    start_ns = first[0] if first is not None else 0
    clock = SimClock(start_ns)
    actors = build_actors(settings, clock, WHATIF_RUN_ID)
    digest = DecisionDigest(codec)
    report = BacktestReport(settings.risk.starting_equity)
    runtime = DeterministicRuntime(actors, clock, observers=(digest, report, *observers),
                                   tick_interval_ns=None if recorded_ticks else settings.run.tick_interval_ms * 1_000_000)
    skipped = [0]

    def known(source: Iterator[Input]) -> Iterator[Input]:
        for item in source:
            if item[1] in actors:
                yield item
            else:
                skipped[0] += 1

    runtime.add_inputs(known(itertools.chain([first], it) if first is not None else it))
    t0 = time.perf_counter()
    done = runtime.run(progress=(lambda n: progress(n, clock.now_ns())) if progress else None)
    elapsed = time.perf_counter() - t0
    return WhatIfResult(digest=digest.hexdigest(), inputs=done, decisions=dict(sorted(digest.counts.items())),
                        report=report.summary(), elapsed_s=elapsed, skipped_inputs=skipped[0])
