"""Arbitrator settings: cross-symbol limits and entry sizing."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import attrs
from arbor.actors.risk.config import build, to_decimal
from arbor.config.errors import ConfigError

SECTION = "arbitrator"


@attrs.frozen(kw_only=True)
class ArbitratorConfig:
    max_concurrent_positions: int = 3
    entry_notional: Decimal = attrs.field(default=Decimal("10000"), converter=to_decimal)  # size_hint 1.0
    default_qty_step: Decimal = attrs.field(default=Decimal("0.001"), converter=to_decimal)

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> ArbitratorConfig:
        return build(cls, SECTION, values)

    def validate(self) -> ArbitratorConfig:
        """Raise ConfigError naming the first bad key; return self when every value is sound."""
        n = self.max_concurrent_positions
        if isinstance(n, bool) or not isinstance(n, int) or n <= 0:
            raise ConfigError(f"{SECTION}.max_concurrent_positions", f"must be a positive integer, got {n!r}")
        for name in ("entry_notional", "default_qty_step"):
            value = getattr(self, name)
            if not isinstance(value, Decimal) or not value.is_finite() or value <= 0:
                raise ConfigError(f"{SECTION}.{name}", f"must be a positive number, got {value!r}")
        return self
