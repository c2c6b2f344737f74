"""Model files for model-based strategies: a model with a metadata JSON beside it.

``<model>.meta.json`` holds ``checksum`` (sha256 of the model file), ``features`` (the inputs in
the order the model takes them), ``interval`` (the sampling interval it was fitted on),
``version`` and ``created_at``. Both files are written atomically (model first, metadata last,
so a metadata file never vouches for a half-written model). Loading refuses, as a ConfigError
on ``strategy``: a missing or malformed metadata file, a checksum that does not match the model
file, and a feature the runtime does not produce (neither a built-in feature nor one of the
strategy's declared indicators).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
from arbor.config.errors import ConfigError
from arbor.messages import FeatureSnapshot
from arbor.messages.base import message_fields
from arbor.supervision.files import write_atomic

__all__ = ["BUILTIN_FEATURES", "LogisticModel", "ModelMetadata", "load_model", "metadata_path", "save_model"]

FORMAT = "arbor-model/1"
# the FeatureSnapshot numbers a model may take (bars and indicators are not in this set)
BUILTIN_FEATURES: tuple[str, ...] = tuple(
    f.name for f in message_fields(FeatureSnapshot)
    if f.name not in ("symbol", "ts_event_ns", "ingest_seq", "warm", "bars", "indicators"))


def metadata_path(model: Path) -> Path:
    return model.with_name(model.name + ".meta.json")


@attrs.frozen(kw_only=True)
class ModelMetadata:
    checksum: str
    features: tuple[str, ...]
    interval: str
    version: str
    created_at: str
    format: str = FORMAT


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def save_model(path: Path, body: Mapping[str, Any], *, features: Sequence[str], interval: str, version: str,
               created_at: str) -> ModelMetadata:
    """Write ``body`` (JSON) to ``path`` and its metadata beside it, each atomically; the metadata."""
    text = json.dumps(body, sort_keys=True, indent=1) + "\n"
    meta = ModelMetadata(checksum=_sha256(text.encode()), features=tuple(features), interval=interval,
                         version=version, created_at=created_at)
    write_atomic(path, text)
    write_atomic(metadata_path(path), json.dumps(attrs.asdict(meta), indent=1) + "\n")
    return meta


def _refuse(path: Path, reason: str) -> ConfigError:
    return ConfigError("strategy", f"model {path} refused: {reason}")


def load_model(path: Path, available: Iterable[str]) -> tuple[dict[str, Any], ModelMetadata]:
    """The model's JSON body and metadata, checked against the checksum and the features ``available``."""
    path = Path(path)
    meta_file = metadata_path(path)
    try:
        data = path.read_bytes()
        raw = json.loads(meta_file.read_text())
    except FileNotFoundError as exc:
        raise _refuse(path, f"missing file {exc.filename}") from None
    except (OSError, ValueError) as exc:
        raise _refuse(path, f"unreadable metadata {meta_file}: {exc}") from None
    try:
        meta = ModelMetadata(checksum=str(raw["checksum"]), features=tuple(str(f) for f in raw["features"]),
                             interval=str(raw["interval"]), version=str(raw["version"]),
                             created_at=str(raw["created_at"]), format=str(raw.get("format", FORMAT)))
    except (KeyError, TypeError) as exc:
        raise _refuse(path, f"metadata {meta_file} lacks {exc}") from None
    if meta.format != FORMAT:
        raise _refuse(path, f"format {meta.format!r}, this runtime reads {FORMAT!r}")
    actual = _sha256(data)
    if actual != meta.checksum:
        raise _refuse(path, f"checksum mismatch: metadata says {meta.checksum[:12]}..., file is {actual[:12]}...")
    have = set(available)
    missing = [f for f in meta.features if f not in have]
    if missing:
        raise _refuse(path, f"features the runtime does not produce: {', '.join(missing)}")
    try:
        body = json.loads(data)
    except ValueError as exc:
        raise _refuse(path, f"not JSON: {exc}") from None
    return body, meta


@attrs.frozen(kw_only=True)
class LogisticModel:
    """``p = sigmoid(bias + sum(w_i * (x_i - mean_i) / scale_i))`` over the metadata's features, in order."""

    features: tuple[str, ...]
    weights: tuple[float, ...]
    bias: float
    mean: tuple[float, ...]
    scale: tuple[float, ...]

    @classmethod
    def from_file(cls, path: Path, available: Iterable[str]) -> LogisticModel:
        body, meta = load_model(path, available)
        try:
            model = cls(features=meta.features, weights=tuple(map(float, body["weights"])), bias=float(body["bias"]),
                        mean=tuple(map(float, body["mean"])), scale=tuple(map(float, body["scale"])))
        except (KeyError, TypeError, ValueError) as exc:
            raise _refuse(Path(path), f"not a logistic model: {exc}") from None
        n = len(model.features)
        if not len(model.weights) == len(model.mean) == len(model.scale) == n:
            raise _refuse(Path(path), f"{n} features but {len(model.weights)} weights")
        return model

    def body(self) -> dict[str, Any]:
        return {"kind": "logistic", "weights": list(self.weights), "bias": self.bias, "mean": list(self.mean),
                "scale": list(self.scale)}

    def probability(self, values: Sequence[float]) -> float:
        z = self.bias + sum(w * (x - m) / s for w, x, m, s in zip(self.weights, values, self.mean, self.scale,
                                                                    strict=True))
        return 1.0 / (1.0 + math.exp(-max(min(z, 50.0), -50.0)))

    def inputs_from(self, features: FeatureSnapshot) -> list[float] | None:
        """The model's inputs from a snapshot, in order; None while an indicator is not warm."""
        indicators = dict(features.indicators)
        out = []
        for name in self.features:
            value = indicators.get(name) if name in indicators or name not in BUILTIN_FEATURES else None
            if value is None and name in BUILTIN_FEATURES:
                value = float(getattr(features, name))
            if value is None:
                return None
            out.append(value)
        return out
