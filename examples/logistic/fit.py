"""Fit the example logistic model on features from recorded market data, and write it with metadata.

    .venv/bin/python examples/logistic/fit.py --hbt ../shared/data/binance_usdm/usdm_btcusdt_20240808.gz \
        --out var/models/logistic.json

The features are computed by the runtime's own collector and Feature actor (with the strategy's
declared indicators), one sample per second of event time once warm; the label is whether the
mid is higher ``--horizon`` seconds later. Gradient descent on standardized inputs (numpy).
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from arbor.actors.cluster.build import make_context, make_symbol_actor, market_frames
from arbor.actors.feature.logic import FeatureLogic
from arbor.actors.replay.whatif import hbt_config
from arbor.actors.runtime.clock import SimClock
from arbor.config.loader import load_raw
from arbor.config.settings import build_settings
from arbor.messages import VenuePayload
from arbor.strategy import Inputs
from arbor.strategy.model import LogisticModel, save_model

sys.path.insert(0, str(Path(__file__).resolve().parent))
from logistic_strategy import INDICATORS  # noqa: E402  (the strategy's own declaration: fit and trade on the same inputs)

FEATURES = ("ret_short", "ret_long", "vol_ratio", "efficiency_ratio", "trade_imbalance", "spread_bps", "rsi_5s", "z_5s")
NS = 1_000_000_000


def samples(files: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Feature rows (one per second once warm) and labels from the recordings."""
    settings = build_settings(hbt_config(files, load_raw(environ={}), []))
    clock = SimClock()
    collectors, features = {}, {}
    for s in settings.symbols:
        collectors[s.symbol] = make_symbol_actor(settings, s.symbol, "collector", clock, "fit")
        features[s.symbol] = FeatureLogic(make_context(f"{s.symbol}/feature", s.symbol, clock, "fit", 0),
                                          settings.feature, inputs=Inputs(indicators=INDICATORS))
    rows: dict[str, list[tuple[int, float, list[float]]]] = {s.symbol: [] for s in settings.symbols}
    venue = settings.symbols[0].venue
    for _ts, sym, payload in market_frames(settings, 0):
        for ev in collectors[sym].on_venue_payload(VenuePayload(venue=venue, symbol=sym, payload=payload)):
            if not hasattr(ev, "kind"):
                continue  # a DecodeFailure
            for snap in features[sym].on_raw_market_event(ev):
                if not snap.warm or (rows[sym] and snap.ts_event_ns - rows[sym][-1][0] < NS):
                    continue
                values = LogisticModel(features=FEATURES, weights=(0.0,) * len(FEATURES), bias=0.0,
                                       mean=(0.0,) * len(FEATURES), scale=(1.0,) * len(FEATURES)).inputs_from(snap)
                if values is not None:
                    rows[sym].append((snap.ts_event_ns, snap.mid, values))
    return rows_to_xy(rows)


HORIZON_S = 30


def rows_to_xy(rows: dict[str, list[tuple[int, float, list[float]]]]) -> tuple[np.ndarray, np.ndarray]:
    xs, ys = [], []
    for series in rows.values():
        for i, (_ts, mid, values) in enumerate(series):
            j = i + HORIZON_S
            if j < len(series):
                xs.append(values)
                ys.append(1.0 if series[j][1] > mid else 0.0)
    return np.asarray(xs, dtype=float), np.asarray(ys, dtype=float)


def fit(x: np.ndarray, y: np.ndarray, steps: int = 2000, rate: float = 0.1, l2: float = 1e-3) -> LogisticModel:
    """Logistic regression by full-batch gradient descent on standardized inputs (deterministic)."""
    mean, scale = x.mean(axis=0), x.std(axis=0)
    scale[scale == 0.0] = 1.0
    z = (x - mean) / scale
    w, b = np.zeros(x.shape[1]), 0.0
    for _ in range(steps):
        p = 1.0 / (1.0 + np.exp(-(z @ w + b)))
        w -= rate * (z.T @ (p - y) / len(y) + l2 * w)
        b -= rate * float(np.mean(p - y))
    return LogisticModel(features=FEATURES, weights=tuple(map(float, w)), bias=b, mean=tuple(map(float, mean)),
                         scale=tuple(map(float, scale)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hbt", nargs="+", required=True, help="recorded market files")
    parser.add_argument("--out", type=Path, required=True, help="the model file (its .meta.json goes beside it)")
    args = parser.parse_args(argv)
    x, y = samples(args.hbt)
    if len(y) < 50:
        print(f"fit.py: only {len(y)} samples; need at least 50", file=sys.stderr)
        return 2
    model = fit(x, y)
    accuracy = float(np.mean((1.0 / (1.0 + np.exp(-(((x - model.mean) / model.scale) @ model.weights + model.bias)))
                              > 0.5) == y))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    save_model(args.out, model.body(), features=FEATURES, interval="1s", version="1",
               created_at=datetime.now(UTC).isoformat(timespec="seconds"))
    print(f"fitted on {len(y)} samples ({y.mean():.1%} up), in-sample accuracy {accuracy:.1%}; wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
