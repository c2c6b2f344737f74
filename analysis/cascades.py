"""The cascade labeler and the wave detector.

Per symbol and per side, the counted events (every liquidation; or, with ``source = "trades"``, the
aggressive trades whose side's burst window is at or above ``burst_notional``: a proxy) are cut into
**waves** where no counted event came for more than ``wave_gap_s``, and the waves into **cascades**
where none came for more than ``cascade_gap_s``. A cascade is kept when it liquidated at least
``min_notional`` in at least ``min_count`` events; its waves are reported with it.

A forced SELL closes a long (a taker SELL hits the bid): those events push the price ``down``; BUYs
push it ``up``. For each cascade and wave: start and end (first and last event), count, notional,
the peak of the side's burst window (``arbor.analysis.bursts``, the runtime's liquidation-burst
implementation, over ``window`` buckets of ``bucket_ms``), the mid before the first event and at the
last, the move, the maximum adverse excursion (how far the mid went in the cascade's direction,
against the positions being liquidated, from the start mid), and the time from that extreme until
the mid retraced ``recover_frac`` of it (``None`` when it did not within the recording).
Deterministic: the same tapes and parameters give the same labels, in the same order.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

import attrs
import numpy as np
from arbor.analysis.bursts import BurstMeter
from arbor.analysis.tape import Flow, Tape
from arbor.messages import Side

__all__ = ["SOURCES", "CascadeParams", "Label", "label_cascades", "render_table", "to_jsonl"]

SOURCES = ("liquidations", "trades")


@attrs.frozen(kw_only=True)
class CascadeParams:
    """The thresholds of the labeler; ``validate`` names the first bad one."""

    source: str = "liquidations"
    min_notional: float = 100_000.0
    min_count: int = 3
    wave_gap_s: float = 2.0
    cascade_gap_s: float = 30.0
    bucket_ms: int = 1000  # the burst window: feature.bucket_ms
    window: int = 10  # and feature.short_window (the runtime's liq_* window)
    burst_notional: float = 1_000_000.0  # source "trades": a taker trade counts at or above this window notional
    recover_frac: float = 0.5

    def validate(self) -> CascadeParams:
        if self.source not in SOURCES:
            raise ValueError(f"source: must be one of {', '.join(SOURCES)}, got {self.source!r}")
        for name in ("min_notional", "wave_gap_s", "cascade_gap_s", "burst_notional"):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"{name}: must be a finite number >= 0, got {value!r}")
        for name in ("min_count", "bucket_ms", "window"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: must be at least 1, got {getattr(self, name)!r}")
        if self.cascade_gap_s < self.wave_gap_s:
            raise ValueError(f"cascade_gap_s: must be at least wave_gap_s ({self.wave_gap_s}), got {self.cascade_gap_s}")
        if not 0.0 < self.recover_frac <= 1.0:
            raise ValueError(f"recover_frac: must be in (0, 1], got {self.recover_frac!r}")
        return self


@attrs.frozen(kw_only=True)
class Label:
    """A cascade (``wave`` None) or one of its waves (``wave`` = its number within the cascade, from 1)."""

    symbol: str
    source: str
    cascade: int  # number within the symbol, from 1, in start order
    wave: int | None
    direction: str  # "down" (SELLs: longs liquidated) or "up"
    side: str
    start_ns: int
    end_ns: int
    count: int
    notional: float
    peak_window_notional: float
    waves: int
    price_start: float | None
    price_end: float | None
    move_bps: float | None
    mae_bps: float | None
    extreme_ns: int | None
    recover_s: float | None

    @property
    def kind(self) -> str:
        return "cascade" if self.wave is None else "wave"

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind}
        out.update(attrs.asdict(self))
        out["start"] = _iso(self.start_ns)
        out["end"] = _iso(self.end_ns)
        out["duration_s"] = round((self.end_ns - self.start_ns) / 1e9, 3)
        for k in ("notional", "peak_window_notional", "price_start", "price_end"):
            if out[k] is not None:
                out[k] = round(out[k], 6)
        for k in ("move_bps", "mae_bps", "recover_s"):
            if out[k] is not None:
                out[k] = round(out[k], 3)
        return out


def _iso(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _counted(flows: list[Flow], side: Side, params: CascadeParams) -> list[tuple[Flow, float]]:
    """The side's counted events and the side's burst-window notional right after each."""
    meter = BurstMeter(params.bucket_ms, params.window)
    out = []
    for f in flows:
        if f.side is not side:
            continue
        meter.add(f.ts_ns, f.notional)
        w = meter.window.notional
        if params.source == "liquidations" or w >= params.burst_notional:
            out.append((f, w))
    return out


def _split(items: list[list[tuple[Flow, float]]], gap_ns: float) -> list[list[list[tuple[Flow, float]]]]:
    """Consecutive groups whose gap (last event of one to first of the next) is at most ``gap_ns``."""
    groups: list[list[list[tuple[Flow, float]]]] = []
    for item in items:
        if groups and item[0][0].ts_ns - groups[-1][-1][-1][0].ts_ns <= gap_ns:
            groups[-1].append(item)
        else:
            groups.append([item])
    return groups


def _price_fields(tape: Tape, start_ns: int, end_ns: int, down: bool, recover_frac: float) -> dict[str, Any]:
    none: dict[str, Any] = {"price_start": None, "price_end": None, "move_bps": None, "mae_bps": None,
                            "extreme_ns": None, "recover_s": None}
    ts, mid = tape.ts_ns, tape.mid
    if len(ts) == 0:
        return none
    i0 = max(tape.index_at(start_ns - 1), 0)  # the mid before the first event (the first mid if none)
    i1 = tape.index_at(end_ns)
    if i1 < 0:
        return none
    start, end = float(mid[i0]), float(mid[i1])
    path = mid[i0:i1 + 1]
    k = int(np.argmin(path) if down else np.argmax(path))  # first extreme
    extreme = float(path[k])
    sign = -1.0 if down else 1.0
    mae = max(0.0, sign * (extreme - start) / start * 10_000.0)
    ke = i0 + k
    recover_s: float | None = 0.0
    if mae > 0.0:
        target = extreme + recover_frac * (start - extreme)
        after = mid[ke:]
        hits = np.nonzero(after >= target if down else after <= target)[0]
        recover_s = float(ts[ke + int(hits[0])] - ts[ke]) / 1e9 if len(hits) else None
    return {"price_start": start, "price_end": end, "move_bps": (end / start - 1.0) * 10_000.0, "mae_bps": mae,
            "extreme_ns": int(ts[ke]), "recover_s": recover_s}


def _label(tape: Tape, params: CascadeParams, cascade: int, wave: int | None, side: Side,
           events: list[tuple[Flow, float]], waves: int) -> Label:
    start, end = events[0][0].ts_ns, events[-1][0].ts_ns
    down = side is Side.SELL
    return Label(symbol=tape.symbol, source=params.source, cascade=cascade, wave=wave,
                 direction="down" if down else "up", side=side.value, start_ns=start, end_ns=end,
                 count=len(events), notional=math.fsum(f.notional for f, _ in events),
                 peak_window_notional=max(w for _, w in events), waves=waves,
                 **_price_fields(tape, start, end, down, params.recover_frac))


def label_tape(tape: Tape, params: CascadeParams) -> list[Label]:
    """One symbol's cascades, each followed by its waves."""
    params.validate()
    flows = tape.liquidations if params.source == "liquidations" else tape.trades
    found: list[tuple[int, Side, list[list[tuple[Flow, float]]]]] = []
    for side in (Side.SELL, Side.BUY):
        counted = _counted(flows, side, params)
        waves = [[e for group in w for e in group] for w in _split([[c] for c in counted], params.wave_gap_s * 1e9)]
        for cascade in _split(waves, params.cascade_gap_s * 1e9):
            events = [e for w in cascade for e in w]
            if len(events) >= params.min_count and math.fsum(f.notional for f, _ in events) >= params.min_notional:
                found.append((events[0][0].ts_ns, side, cascade))
    found.sort(key=lambda c: (c[0], c[1].value))
    labels = []
    for n, (_start, side, cascade) in enumerate(found, start=1):
        labels.append(_label(tape, params, n, None, side, [e for w in cascade for e in w], len(cascade)))
        labels.extend(_label(tape, params, n, i, side, w, 1) for i, w in enumerate(cascade, start=1))
    return labels


def label_cascades(tapes: Mapping[str, Tape], params: CascadeParams) -> list[Label]:
    """Every symbol's cascades and waves, symbols in name order."""
    return [label for symbol in sorted(tapes) for label in label_tape(tapes[symbol], params)]


def to_jsonl(labels: Iterable[Label]) -> str:
    import json

    return "".join(json.dumps(label.to_json(), sort_keys=True) + "\n" for label in labels)


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def render_table(labels: list[Label], *, waves: bool = True) -> str:
    """A fixed-width table: one row per cascade, and (``waves``) one indented row per wave."""
    head = (f"{'symbol':<10} {'label':<7} {'dir':<4} {'start (UTC)':<23} {'dur_s':>7} {'waves':>5} {'count':>6} "
            f"{'notional':>14} {'peak_window':>14} {'move_bps':>9} {'mae_bps':>8} {'recover_s':>9}")
    rows = [head]
    for lb in labels:
        if lb.wave is not None and not waves:
            continue
        name = f"#{lb.cascade}" if lb.wave is None else f"  .{lb.wave}"
        rows.append(f"{lb.symbol:<10} {name:<7} {lb.direction:<4} {_iso(lb.start_ns):<23} "
                    f"{(lb.end_ns - lb.start_ns) / 1e9:>7.1f} {lb.waves:>5} {lb.count:>6} {lb.notional:>14,.0f} "
                    f"{lb.peak_window_notional:>14,.0f} {_fmt(lb.move_bps, '.2f'):>9} {_fmt(lb.mae_bps, '.2f'):>8} "
                    f"{_fmt(lb.recover_s, '.1f'):>9}")
    return "\n".join(rows)
