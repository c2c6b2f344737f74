"""Feature windows: frozen and validated, sizes in time buckets."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs
from arbor.config.errors import ConfigError

SECTION = "feature"
EMIT_MODES = ("bucket", "every_event")


@attrs.frozen(kw_only=True)
class FeatureConfig:
    """``bucket_ms`` is the time bucket; windows count buckets; ``min_samples`` completed buckets make ``warm``.

    ``emit`` says which events yield a FeatureSnapshot:

    - ``"every_event"``: every event once a price is known;
    - ``"bucket"`` (default): only the snapshots the regime can act on: every one while not warm,
      the first of each new bucket, and each one with which a decision cycle is due (the feature
      keeps the regime's cadence, ``regime.decision_interval_ms``, in step with it). The regime
      therefore makes the same decisions, with the same snapshots, as with ``"every_event"``,
      from about one handled snapshot per bucket or decision instead of one per event. It falls
      back to ``"every_event"`` when the feature is not told the regime's cadence.
    """

    bucket_ms: int = 1000
    short_window: int = 10
    long_window: int = 60
    min_samples: int = 20
    emit: str = "bucket"

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> FeatureConfig:
        known = {f.name for f in attrs.fields(cls)}
        for key in values:
            if key not in known:
                raise ConfigError(f"{SECTION}.{key}", "unknown key")
        return cls(**values).validate()

    def validate(self) -> FeatureConfig:
        """Raise ConfigError naming the first bad key; return self when every value is sound."""
        for name in ("bucket_ms", "short_window", "long_window", "min_samples"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ConfigError(f"{SECTION}.{name}", f"must be a positive integer, got {value!r}")
        if self.emit not in EMIT_MODES:
            raise ConfigError(f"{SECTION}.emit", f"must be one of {', '.join(EMIT_MODES)}, got {self.emit!r}")
        if self.short_window < 2:
            # a standard deviation needs two returns
            raise ConfigError(f"{SECTION}.short_window", f"must be at least 2, got {self.short_window}")
        if self.long_window <= self.short_window:
            raise ConfigError(f"{SECTION}.long_window",
                              f"must be longer than short_window {self.short_window}, got {self.long_window}")
        if self.min_samples > self.long_window:
            # samples never exceed the long window, so the features would never become warm
            raise ConfigError(f"{SECTION}.min_samples",
                              f"must not exceed long_window {self.long_window}, got {self.min_samples}")
        return self
