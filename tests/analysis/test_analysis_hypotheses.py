"""Hypothesis validators: a known effect gives a small p-value, no effect gives p-values spread evenly
over seeds, too few samples are refused, and the shipped hypotheses give stable numbers on the recordings."""

from __future__ import annotations

import numpy as np
import pytest
from arbor.analysis.hypotheses import (
    SHIPPED,
    FeatureCondition,
    Hypothesis,
    Outcome,
    TooFewSamples,
    load_hypothesis,
    validate,
)

from tests.analysis.helpers import T0, synthetic_tape

STEP_MS = 100
SELL_FLOW = Hypothesis(name="test-revert", statement="after heavy selling the mid rises",
                       condition=FeatureCondition(feature="trade_imbalance", op="<=", value=-0.5),
                       outcome=Outcome(horizon_s=5.0, measure="up", hit_bps=1.0), null="symmetric", min_samples=20)
VOL = Hypothesis(name="test-vol", statement="after a volatility spike the mid moves more",
                 condition=FeatureCondition(feature="vol_ratio", op=">=", value=1.5),
                 outcome=Outcome(horizon_s=5.0, measure="abs", hit_bps=2.0), null="baseline", min_samples=20)


def _tape(seed: int, *, seconds: int = 3000, drift_bps: float = 0.0, vol_mult: float = 1.0):
    """A random walk (0.5 bps per 100 ms) with a trigger about every 30 s: trade_imbalance -0.8 and
    vol_ratio 2.0 for 1 s. After each trigger, for 5 s: ``drift_bps`` of drift in total, volatility
    times ``vol_mult``. No drift and a multiple of 1: no effect at all."""
    rng = np.random.default_rng(seed)
    n = seconds * 1000 // STEP_MS
    steps = 5_000 // STEP_MS
    sigma = np.full(n, 0.5e-4)
    drift = np.zeros(n)
    signal = np.zeros(n)
    starts = np.nonzero(rng.random(n) < STEP_MS / 30_000)[0]
    starts = starts[(starts > 10) & (starts < n - steps - 20)]
    for s in starts:
        signal[s:s + 10] = 1.0
        drift[s + 1:s + 1 + steps] += drift_bps * 1e-4 / steps
        sigma[s + 1:s + 1 + steps] *= vol_mult
    mid = 100.0 * np.exp(np.cumsum(drift + sigma * rng.standard_normal(n)))
    ts = T0 + np.arange(n, dtype=np.int64) * STEP_MS * 1_000_000
    return synthetic_tape("SYN", ts, mid, trade_imbalance=-0.8 * signal, vol_ratio=1.0 + signal)


def test_a_known_directional_effect_has_a_small_p_value():
    """+4 bps of drift after each trigger: mean effect near +4, CI above 0, p < 0.01."""
    r = validate(SELL_FLOW, {"SYN": _tape(1, drift_bps=4.0)}, rng=np.random.default_rng(0), resamples=4000)
    assert r.n >= 60
    assert r.mean_bps == pytest.approx(4.0, abs=1.5)
    assert r.ci95_bps[0] > 0.0
    assert r.p_value < 0.01
    assert r.hit_rate > 0.6


def test_no_directional_effect_gives_p_values_spread_over_seeds():
    """No effect, 50 seeds: at most 10% of p-values below 0.05, and about half below 0.5."""
    p = np.array([validate(SELL_FLOW, {"SYN": _tape(seed)}, rng=np.random.default_rng(seed), resamples=2000).p_value
                  for seed in range(50)])
    assert np.mean(p < 0.05) <= 0.10
    assert 0.3 <= np.mean(p < 0.5) <= 0.7


def test_a_known_volatility_effect_beats_the_baseline():
    """Triple volatility after each trigger: the |move| exceeds the baseline's, p < 0.01."""
    r = validate(VOL, {"SYN": _tape(2, vol_mult=3.0)}, rng=np.random.default_rng(0), resamples=4000)
    assert r.baseline_n is not None and r.baseline_n > 200
    assert r.difference_bps is not None and r.difference_bps > 1.0
    assert r.ci95_bps[0] > 0.0
    assert r.p_value < 0.01


def test_no_volatility_effect_gives_p_values_spread_over_seeds():
    """Baseline null, no effect, 50 seeds: at most 10% below 0.05, about half below 0.5."""
    p = np.array([validate(VOL, {"SYN": _tape(seed)}, rng=np.random.default_rng(seed), resamples=2000).p_value
                  for seed in range(50)])
    assert np.mean(p < 0.05) <= 0.10
    assert 0.3 <= np.mean(p < 0.5) <= 0.7


def test_the_result_is_reproducible_from_the_seed():
    tape = {"SYN": _tape(3)}
    a = validate(SELL_FLOW, tape, rng=np.random.default_rng(42), resamples=2000)
    b = validate(SELL_FLOW, tape, rng=np.random.default_rng(42), resamples=2000)
    assert a == b


def test_too_few_samples_are_refused():
    """A 2-minute tape has only a few triggers: no report, a message saying how many and how many are needed."""
    with pytest.raises(TooFewSamples, match=r"too few samples for test-revert: \d+ on SYN, at least 20 needed"):
        validate(SELL_FLOW, {"SYN": _tape(4, seconds=120)}, rng=np.random.default_rng(0))


def test_samples_never_overlap():
    """Triggers closer than the horizon are one sample: n is at most the tape's span over the horizon."""
    tape = _tape(5, seconds=600)
    tape.columns["trade_imbalance"][::20] = -0.8  # a rising edge every 2 s
    r = validate(SELL_FLOW.with_min_samples(2), {"SYN": tape}, rng=np.random.default_rng(0), resamples=200)
    assert r.n <= 600 / 5


@pytest.mark.parametrize(("changes", "message"), [
    ({"null": "symmetric", "outcome": Outcome(horizon_s=5, measure="abs", hit_bps=1)}, "baseline"),
    ({"outcome": Outcome(horizon_s=5, measure="revert", hit_bps=1)}, "label condition"),
    ({"condition": FeatureCondition(feature="price", op=">=", value=1)}, "condition.feature"),
    ({"outcome": Outcome(horizon_s=0, measure="up", hit_bps=1)}, "horizon_s"),
])
def test_ill_declared_hypotheses_are_refused(changes, message):
    import attrs

    with pytest.raises(ValueError, match=message):
        attrs.evolve(SELL_FLOW, **changes).validate()


def test_a_hypothesis_declared_in_toml(tmp_path):
    path = tmp_path / "spread.toml"
    path.write_text('name = "wide-spread"\nstatement = "a wide spread narrows"\nnull = "baseline"\nmin_samples = 30\n'
                    '[condition]\ntype = "feature"\nfeature = "spread_bps"\nop = ">="\nvalue = 2.0\n'
                    '[outcome]\nhorizon_s = 10\nmeasure = "abs"\nhit_bps = 1.5\n')
    h = load_hypothesis(str(path))
    assert (h.name, h.null, h.min_samples, h.condition, h.outcome.horizon_s) == (
        "wide-spread", "baseline", 30, FeatureCondition(feature="spread_bps", op=">=", value=2.0), 10)
    path.write_text('[condition]\nfeature = "spread_bps"\nop = ">="\nvalue = 2.0\n')
    with pytest.raises(ValueError, match="missing 'outcome'"):
        load_hypothesis(str(path))
    with pytest.raises(ValueError, match="no shipped hypothesis named 'nope'"):
        load_hypothesis("nope")


# What the three shipped hypotheses showed on the two USD-M recordings (seed 0, 10,000 resamples);
# docs/analysis.md quotes these numbers.
ON_THE_RECORDINGS = {
    "sell-imbalance-reverts": {"n": 26, "per_symbol": {"BTCUSDT": 15, "ETHUSDT": 11}, "hit_rate": 0.3462,
                               "mean_bps": -0.2909, "median_bps": -0.3981, "ci95_bps": [-1.2789, 0.7039],
                               "p_value": 0.70383},
    "taker-burst-reverts": {"n": 21, "per_symbol": {"BTCUSDT": 7, "ETHUSDT": 14}, "hit_rate": 0.5714,
                            "mean_bps": 0.6957, "median_bps": 0.8595, "ci95_bps": [-0.538, 1.9155], "p_value": 0.13919},
    "vol-expansion-persists": {"n": 23, "per_symbol": {"BTCUSDT": 12, "ETHUSDT": 11}, "hit_rate": 0.3478,
                               "mean_bps": 1.1263, "median_bps": 0.7833, "ci95_bps": [-1.0016, 0.0927],
                               "p_value": 0.93161},
}


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_shipped_hypotheses_on_the_recordings(name, usdm_tapes):
    r = validate(SHIPPED[name], usdm_tapes, rng=np.random.default_rng(0), resamples=10_000).to_json()
    got = {k: r[k] for k in ("n", "per_symbol", "hit_rate", "mean_bps", "median_bps", "ci95_bps", "p_value")}
    assert got == ON_THE_RECORDINGS[name]
