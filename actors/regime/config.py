"""Regime classification and decision cadence: frozen and validated."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs
from arbor.config.errors import ConfigError
from arbor.strategy.loader import load_strategy

SECTION = "regime"


@attrs.frozen(kw_only=True)
class RegimeConfig:
    """Thresholds come in enter/exit pairs (exit below enter) so a regime does not flap on its edge.

    ``decision_interval_ms`` is event time between decision cycles (0: every snapshot);
    ``confirm_cycles`` consecutive cycles must agree before the regime switches.
    """

    decision_interval_ms: int = 1000
    confirm_cycles: int = 3
    trend_er_enter: float = 0.35
    trend_er_exit: float = 0.25
    vol_ratio_enter: float = 2.0
    vol_ratio_exit: float = 1.4
    strategy: str = "trend_following"
    strategy_params: dict[str, Any] = attrs.field(factory=dict)

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> RegimeConfig:
        known = {f.name for f in attrs.fields(cls)}
        for key in values:
            if key not in known:
                raise ConfigError(f"{SECTION}.{key}", "unknown key")
        return cls(**values).validate()

    def validate(self) -> RegimeConfig:
        """Raise ConfigError naming the first bad key (strategy ones too); return self when sound."""
        for name, low in (("decision_interval_ms", 0), ("confirm_cycles", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ConfigError(f"{SECTION}.{name}", f"must be an integer >= {low}, got {value!r}")
        for name in ("trend_er_enter", "trend_er_exit", "vol_ratio_enter", "vol_ratio_exit"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise ConfigError(f"{SECTION}.{name}", f"must be a positive number, got {value!r}")
        if self.trend_er_enter > 1:
            raise ConfigError(f"{SECTION}.trend_er_enter", f"an efficiency ratio is at most 1, got {self.trend_er_enter}")
        if self.trend_er_exit > self.trend_er_enter:
            raise ConfigError(f"{SECTION}.trend_er_exit", f"must not exceed trend_er_enter {self.trend_er_enter}")
        if self.vol_ratio_exit > self.vol_ratio_enter:
            raise ConfigError(f"{SECTION}.vol_ratio_exit", f"must not exceed vol_ratio_enter {self.vol_ratio_enter}")
        try:
            load_strategy(self.strategy, self.strategy_params)
        except ConfigError as exc:
            raise ConfigError(f"{SECTION}.{exc.key}", exc.reason) from None
        return self
