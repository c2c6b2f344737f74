"""Hypothesis validators: a declared condition, an outcome over a horizon, and a test against a stated null.

A ``Hypothesis`` names a **condition** (on a feature of the runtime's Feature actor, rising through
a threshold, or on the labels of the cascade labeler: a wave's or cascade's end), an **outcome**
(the mid's move over ``horizon_s`` after each sample, in bps: ``up``, ``down``, ``revert`` /
``follow`` relative to the label's direction, or ``abs``) and a **null**:

- ``symmetric``: the signed outcome is symmetric about 0 (no directional edge); p-value from a
  sign-flip randomization test;
- ``baseline``: the outcome after the condition is distributed like the outcome at the other
  times (a grid of non-overlapping horizons away from every sample); p-value from a permutation
  test of the difference in means.

Samples never overlap: a trigger within ``horizon_s`` of the previous sample is skipped, so every
sample is its own horizon. The report: sample size, hit rate (the favourable move reached
``hit_bps`` within the horizon), mean and median effect, a bootstrap (percentile) 95% confidence
interval of the mean (of the difference, for ``baseline``) and the one-sided p-value (the effect
is greater than under the null). Fewer than ``min_samples`` samples: ``TooFewSamples``, no report.
The random generator is passed in (seeded by the caller), so a result is reproducible.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import numpy.typing as npt
from arbor.analysis.cascades import CascadeParams, label_tape
from arbor.analysis.tape import FEATURE_COLUMNS, FloatArray, Tape

__all__ = ["SHIPPED", "FeatureCondition", "Hypothesis", "LabelCondition", "Outcome", "Result", "TooFewSamples",
           "load_hypothesis", "samples", "validate"]

MEASURES = ("up", "down", "revert", "follow", "abs")
NULLS = ("symmetric", "baseline")


class TooFewSamples(Exception):
    """Too few samples to report on; the message says how many there were and how many are needed."""


@attrs.frozen(kw_only=True)
class FeatureCondition:
    """True at a tape row where ``feature op value``; a sample is taken where it becomes true."""

    feature: str
    op: str  # ">=" or "<="
    value: float

    def validate(self) -> None:
        if self.feature not in FEATURE_COLUMNS:
            raise ValueError(f"condition.feature: one of {', '.join(FEATURE_COLUMNS)}, got {self.feature!r}")
        if self.op not in (">=", "<="):
            raise ValueError(f"condition.op: '>=' or '<=', got {self.op!r}")
        if not math.isfinite(self.value):
            raise ValueError(f"condition.value: must be finite, got {self.value!r}")

    def describe(self) -> str:
        return f"{self.feature} {self.op} {self.value:g} (rising edge)"


@attrs.frozen(kw_only=True)
class LabelCondition:
    """A sample at the end of each wave (or cascade) the labeler finds with these thresholds.

    ``burst_notional`` may differ per symbol (``{"BTCUSDT": 1e7, "*": 1e6}``): trade sizes do."""

    kind: str = "wave"  # or "cascade"
    source: str = "liquidations"
    direction: str = "any"  # "down", "up" or "any"
    min_notional: float = 100_000.0
    min_count: int = 3
    wave_gap_s: float = 2.0
    cascade_gap_s: float = 30.0
    burst_notional: Mapping[str, float] = attrs.field(factory=lambda: {"*": 1_000_000.0})

    def params(self, symbol: str, bucket_ms: int, window: int) -> CascadeParams:
        burst = self.burst_notional.get(symbol, self.burst_notional.get("*", 1_000_000.0))
        return CascadeParams(source=self.source, min_notional=self.min_notional, min_count=self.min_count,
                             wave_gap_s=self.wave_gap_s, cascade_gap_s=self.cascade_gap_s, bucket_ms=bucket_ms,
                             window=window, burst_notional=burst)

    def validate(self) -> None:
        if self.kind not in ("wave", "cascade"):
            raise ValueError(f"condition.kind: 'wave' or 'cascade', got {self.kind!r}")
        if self.direction not in ("down", "up", "any"):
            raise ValueError(f"condition.direction: 'down', 'up' or 'any', got {self.direction!r}")
        self.params("*", 1000, 10).validate()

    def describe(self) -> str:
        burst = ", ".join(f"{k} {v:,.0f}" for k, v in sorted(self.burst_notional.items()))
        what = f"{self.direction} " if self.direction != "any" else ""
        extra = f"; burst window >= {burst}" if self.source == "trades" else ""
        return (f"end of each {what}{self.kind} of {self.source} (>= {self.min_count} events, >= "
                f"{self.min_notional:,.0f} notional{extra})")


@attrs.frozen(kw_only=True)
class Outcome:
    horizon_s: float
    measure: str
    hit_bps: float

    def validate(self) -> None:
        if self.measure not in MEASURES:
            raise ValueError(f"outcome.measure: one of {', '.join(MEASURES)}, got {self.measure!r}")
        if not (math.isfinite(self.horizon_s) and self.horizon_s > 0):
            raise ValueError(f"outcome.horizon_s: must be > 0, got {self.horizon_s!r}")
        if not (math.isfinite(self.hit_bps) and self.hit_bps >= 0):
            raise ValueError(f"outcome.hit_bps: must be >= 0, got {self.hit_bps!r}")


@attrs.frozen(kw_only=True)
class Hypothesis:
    name: str
    statement: str
    condition: FeatureCondition | LabelCondition
    outcome: Outcome
    null: str = "symmetric"
    min_samples: int = 20

    def validate(self) -> Hypothesis:
        self.condition.validate()
        self.outcome.validate()
        if self.null not in NULLS:
            raise ValueError(f"null: one of {', '.join(NULLS)}, got {self.null!r}")
        if isinstance(self.condition, FeatureCondition) and self.outcome.measure in ("revert", "follow"):
            raise ValueError("outcome.measure: 'revert' and 'follow' need a label condition (they are relative to "
                             "its direction)")
        if self.outcome.measure == "abs" and self.null == "symmetric":
            raise ValueError("null: an 'abs' outcome is never negative, so test it against the 'baseline' null")
        if self.min_samples < 2:
            raise ValueError(f"min_samples: at least 2, got {self.min_samples}")
        return self

    def with_min_samples(self, n: int) -> Hypothesis:
        return attrs.evolve(self, min_samples=n).validate()


# -- samples ---------------------------------------------------------------------------------------
def _triggers(h: Hypothesis, tape: Tape, bucket_ms: int, window: int) -> list[tuple[int, float]]:
    """(time, sign) of each candidate sample, in time order; sign +1 means "up is favourable"."""
    cond, measure = h.condition, h.outcome.measure
    fixed = {"up": 1.0, "down": -1.0, "abs": 1.0}
    if isinstance(cond, FeatureCondition):
        col = tape.columns[cond.feature]
        on = col >= cond.value if cond.op == ">=" else col <= cond.value
        rising = on & ~np.concatenate(([False], on[:-1]))
        return [(int(t), fixed[measure]) for t in tape.ts_ns[rising]]
    labels = [lb for lb in label_tape(tape, cond.params(tape.symbol, bucket_ms, window))
              if lb.kind == cond.kind and cond.direction in ("any", lb.direction)]
    out = []
    for lb in sorted(labels, key=lambda lb: (lb.end_ns, lb.side)):
        along = 1.0 if lb.direction == "up" else -1.0
        sign = fixed.get(measure, along if measure == "follow" else -along)
        out.append((lb.end_ns, sign))
    return out


def _declumped(times: list[tuple[int, float]], horizon_ns: int) -> list[tuple[int, float]]:
    kept: list[tuple[int, float]] = []
    for t, s in times:
        if not kept or t - kept[-1][0] >= horizon_ns:
            kept.append((t, s))
    return kept


def _outcome(tape: Tape, t: int, sign: float, o: Outcome) -> tuple[float, bool] | None:
    """(effect in bps, hit) of a sample at ``t``; None when the horizon runs past the tape."""
    end = t + int(o.horizon_s * 1e9)
    if len(tape.ts_ns) == 0 or end > tape.ts_ns[-1]:
        return None
    i0, i1 = tape.index_at(t), tape.index_at(end)
    if i0 < 0:
        return None
    mid = tape.mid
    path = (mid[i0:i1 + 1] / mid[i0] - 1.0) * 10_000.0
    if o.measure == "abs":
        return abs(float(path[-1])), bool(np.max(np.abs(path)) >= o.hit_bps)
    return sign * float(path[-1]), bool(np.max(sign * path) >= o.hit_bps)


@attrs.frozen(kw_only=True)
class Samples:
    effects: FloatArray
    hits: npt.NDArray[np.bool_]
    baseline: FloatArray
    per_symbol: dict[str, int]


def samples(h: Hypothesis, tapes: Mapping[str, Tape], *, bucket_ms: int = 1000, window: int = 10) -> Samples:
    """The hypothesis's samples (and, for the baseline null, the control outcomes) over every tape."""
    h.validate()
    o = h.outcome
    horizon_ns = int(o.horizon_s * 1e9)
    effects: list[float] = []
    hits: list[bool] = []
    baseline: list[float] = []
    per_symbol: dict[str, int] = {}
    for symbol in sorted(tapes):
        tape = tapes[symbol]
        kept = _declumped(_triggers(h, tape, bucket_ms, window), horizon_ns)
        n = 0
        for t, sign in kept:
            r = _outcome(tape, t, sign, o)
            if r is not None:
                effects.append(r[0])
                hits.append(r[1])
                n += 1
        per_symbol[symbol] = n
        if h.null == "baseline" and len(tape.ts_ns):
            starts = np.asarray([t for t, _ in kept], dtype=np.int64)
            sign = 1.0 if o.measure != "down" else -1.0
            for t in range(int(tape.ts_ns[0]), int(tape.ts_ns[-1]), horizon_ns):
                # away from every sample: neither inside one's horizon nor with one inside its own
                if len(starts) and np.min(np.abs(starts - t)) < horizon_ns:
                    continue
                r = _outcome(tape, t, sign, o)
                if r is not None:
                    baseline.append(r[0])
    return Samples(effects=np.asarray(effects), hits=np.asarray(hits, dtype=bool), baseline=np.asarray(baseline),
                   per_symbol=per_symbol)


# -- statistics ------------------------------------------------------------------------------------
@attrs.frozen(kw_only=True)
class Result:
    hypothesis: Hypothesis
    n: int
    per_symbol: dict[str, int]
    hit_rate: float
    mean_bps: float
    median_bps: float
    ci95_bps: tuple[float, float]  # of the mean; of the difference in means for the baseline null
    p_value: float
    resamples: int
    baseline_n: int | None = None
    baseline_mean_bps: float | None = None
    difference_bps: float | None = None

    def to_json(self) -> dict[str, Any]:
        h = self.hypothesis
        out: dict[str, Any] = {
            "hypothesis": h.name, "statement": h.statement, "condition": h.condition.describe(),
            "outcome": attrs.asdict(h.outcome), "null": h.null, "n": self.n, "per_symbol": self.per_symbol,
            "hit_rate": round(self.hit_rate, 4), "mean_bps": round(self.mean_bps, 4),
            "median_bps": round(self.median_bps, 4), "ci95_bps": [round(v, 4) for v in self.ci95_bps],
            "p_value": round(self.p_value, 5), "resamples": self.resamples,
        }
        if self.baseline_n is not None:
            out["baseline_n"] = self.baseline_n
            out["baseline_mean_bps"] = round(self.baseline_mean_bps or 0.0, 4)
            out["difference_bps"] = round(self.difference_bps or 0.0, 4)
        return out

    def render(self) -> str:
        h = self.hypothesis
        o = h.outcome
        lines = [
            f"hypothesis  {h.name}: {h.statement}",
            f"condition   {h.condition.describe()}",
            f"outcome     mid move '{o.measure}' over {o.horizon_s:g} s in bps; hit = favourable move >= "
            f"{o.hit_bps:g} bps within it",
            f"samples     {self.n} (" + ", ".join(f"{s} {n}" for s, n in self.per_symbol.items()) + ")",
            f"hit rate    {self.hit_rate:.1%}",
            f"effect      mean {self.mean_bps:+.3f} bps, median {self.median_bps:+.3f} bps",
        ]
        if self.baseline_n is not None:
            lines.append(f"baseline    {self.baseline_n} other times, mean {self.baseline_mean_bps:+.3f} bps; "
                         f"difference {self.difference_bps:+.3f} bps, 95% CI [{self.ci95_bps[0]:+.3f}, "
                         f"{self.ci95_bps[1]:+.3f}] (bootstrap)")
            lines.append(f"p-value     {self.p_value:.4f} (one-sided permutation test against the baseline null: "
                         f"the outcome is distributed as at other times; {self.resamples} permutations)")
        else:
            lines.append(f"95% CI      [{self.ci95_bps[0]:+.3f}, {self.ci95_bps[1]:+.3f}] bps of the mean (bootstrap)")
            lines.append(f"p-value     {self.p_value:.4f} (one-sided sign-flip test against the symmetric null: "
                         f"no directional effect; {self.resamples} flips)")
        return "\n".join(lines)


def _bootstrap_means(x: FloatArray, rng: np.random.Generator, resamples: int) -> FloatArray:
    idx = rng.integers(0, len(x), size=(resamples, len(x)))
    means: FloatArray = x[idx].mean(axis=1)
    return means


def validate(h: Hypothesis, tapes: Mapping[str, Tape], *, rng: np.random.Generator, resamples: int = 10_000,
             bucket_ms: int = 1000, window: int = 10) -> Result:
    """Test ``h`` on ``tapes``; ``TooFewSamples`` below ``h.min_samples`` (or a baseline that small)."""
    s = samples(h, tapes, bucket_ms=bucket_ms, window=window)
    x, n = s.effects, len(s.effects)
    where = ", ".join(sorted(tapes)) or "no symbol"
    if n < h.min_samples:
        raise TooFewSamples(f"too few samples for {h.name}: {n} on {where}, at least {h.min_samples} needed "
                            f"(nothing reported)")
    common: dict[str, Any] = {"hypothesis": h, "n": n, "per_symbol": s.per_symbol, "hit_rate": float(np.mean(s.hits)),
              "mean_bps": float(np.mean(x)), "median_bps": float(np.median(x)), "resamples": resamples}
    if h.null == "symmetric":
        lo, hi = np.percentile(_bootstrap_means(x, rng, resamples), [2.5, 97.5])
        flips = rng.choice(np.array([-1.0, 1.0]), size=(resamples, n))
        null_means = (flips * x).mean(axis=1)
        p = (1 + int(np.sum(null_means >= np.mean(x) - 1e-12))) / (1 + resamples)
        return Result(ci95_bps=(float(lo), float(hi)), p_value=p, **common)
    b, m = s.baseline, len(s.baseline)
    if m < h.min_samples:
        raise TooFewSamples(f"too few baseline times for {h.name}: {m} on {where}, at least {h.min_samples} needed "
                            f"(nothing reported)")
    diff = float(np.mean(x) - np.mean(b))
    boot = _bootstrap_means(x, rng, resamples) - _bootstrap_means(b, rng, resamples)
    lo, hi = np.percentile(boot, [2.5, 97.5])
    pooled = np.concatenate([x, b])
    perm = np.argsort(rng.random((resamples, n + m)), axis=1)
    shuffled = pooled[perm]
    null_diffs = shuffled[:, :n].mean(axis=1) - shuffled[:, n:].mean(axis=1)
    p = (1 + int(np.sum(null_diffs >= diff - 1e-12))) / (1 + resamples)
    return Result(ci95_bps=(float(lo), float(hi)), p_value=p, baseline_n=m, baseline_mean_bps=float(np.mean(b)),
                  difference_bps=diff, **common)


# -- the shipped hypotheses and declared ones ------------------------------------------------------
# Declared before their outcomes were looked at. The thresholds were then set on sample counts
# alone so that the two 6-minute USD-M recordings in ../shared/data give at least 20 non-overlapping
# samples: the trade proxy's burst windows at 6M (BTCUSDT) and 0.6M (ETHUSDT) of same-side 10 s
# taker notional (between the median, 2.1M / 0.3M, and the 90th percentile, 11M / 1.2M, there),
# waves cut at 1 s gaps; the volatility ratio at 1.2.
SHIPPED: dict[str, Hypothesis] = {h.name: h.validate() for h in (
    Hypothesis(
        name="sell-imbalance-reverts",
        statement="after the taker flow of the last 10 s turns to at least 75% sells (trade_imbalance <= -0.5), "
                  "the mid rises over the next 5 s (selling pressure reverts)",
        condition=FeatureCondition(feature="trade_imbalance", op="<=", value=-0.5),
        outcome=Outcome(horizon_s=5.0, measure="up", hit_bps=1.0), null="symmetric", min_samples=20),
    Hypothesis(
        name="taker-burst-reverts",
        statement="after a wave of same-side aggressive trading (a trade-burst proxy of a liquidation wave), the mid "
                  "moves back against the wave over the 5 s after it ends",
        condition=LabelCondition(kind="wave", source="trades", direction="any", min_notional=0.0, min_count=1,
                                 wave_gap_s=1.0,
                                 burst_notional={"BTCUSDT": 6_000_000.0, "ETHUSDT": 600_000.0, "*": 1_000_000.0}),
        outcome=Outcome(horizon_s=5.0, measure="revert", hit_bps=1.0), null="symmetric", min_samples=20),
    Hypothesis(
        name="vol-expansion-persists",
        statement="when the short-window volatility runs 20% above the long-window one (vol_ratio >= 1.2), the mid "
                  "moves more over the next 5 s than at other times",
        condition=FeatureCondition(feature="vol_ratio", op=">=", value=1.2),
        outcome=Outcome(horizon_s=5.0, measure="abs", hit_bps=2.0), null="baseline", min_samples=20),
)}


def _from_mapping(doc: Mapping[str, Any], where: str) -> Hypothesis:
    try:
        cond = dict(doc["condition"])
        kind = cond.pop("type", "feature")
        condition: FeatureCondition | LabelCondition
        if kind == "feature":
            condition = FeatureCondition(**cond)
        elif kind == "label":
            if "burst_notional" in cond and not isinstance(cond["burst_notional"], Mapping):
                cond["burst_notional"] = {"*": float(cond["burst_notional"])}
            condition = LabelCondition(**cond)
        else:
            raise ValueError(f"condition.type: 'feature' or 'label', got {kind!r}")
        return Hypothesis(name=str(doc.get("name", Path(where).stem)), statement=str(doc.get("statement", "")),
                          condition=condition, outcome=Outcome(**doc["outcome"]),
                          null=doc.get("null", "symmetric"), min_samples=int(doc.get("min_samples", 20))).validate()
    except KeyError as exc:
        raise ValueError(f"missing {exc.args[0]!r}") from None
    except TypeError as exc:  # an unknown or missing key of a table
        raise ValueError(str(exc)) from None


def load_hypothesis(spec: str) -> Hypothesis:
    """A shipped hypothesis by name, or one declared in a TOML file; ``ValueError`` saying what is wrong."""
    if spec in SHIPPED:
        return SHIPPED[spec]
    path = Path(spec)
    if not path.is_file():
        raise ValueError(f"no shipped hypothesis named {spec!r} and no such file; shipped: {', '.join(SHIPPED)}")
    try:
        doc = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{spec}: not TOML: {exc}") from None
    try:
        return _from_mapping(doc, spec)
    except ValueError as exc:
        raise ValueError(f"{spec}: {exc}") from None
