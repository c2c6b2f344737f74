"""Declared strategy parameters: type, default and bounds, validated when the configuration loads."""

from __future__ import annotations

import math
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import attrs
from arbor.config.errors import ConfigError

__all__ = ["Param", "parse_params"]


@attrs.frozen
class Param:
    """One parameter: ``Param(0.5, low=0.0, high=1.0)``.

    ``kind`` is ``float`` (default), ``int``, ``bool`` or ``str`` (e.g. a model file's path). ``low``/``high`` bound numbers;
    ``low_open`` (default True) excludes ``low`` itself, ``high`` is always allowed.
    """

    default: Any
    low: float = -math.inf
    high: float = math.inf
    low_open: bool = True
    kind: type = float

    def check(self, key: str, value: Any) -> Any:
        """The validated value, or a ConfigError naming ``strategy_params.<key>`` and the reason."""
        where = f"strategy_params.{key}"
        if self.kind is str:
            if not isinstance(value, str):
                raise ConfigError(where, f"must be a string, got {value!r}")
            return value
        if self.kind is bool:
            if not isinstance(value, bool):
                raise ConfigError(where, f"must be true or false, got {value!r}")
            return value
        if isinstance(value, bool) or not isinstance(value, (int, float, Decimal)):
            raise ConfigError(where, f"must be a number, got {value!r}")
        if self.kind is int and not (isinstance(value, int) or float(value).is_integer()):
            raise ConfigError(where, f"must be an integer, got {value!r}")
        v = float(value)
        too_low = v <= self.low if self.low_open else v < self.low
        if not math.isfinite(v) or too_low or v > self.high:
            bound = "(" if self.low_open else "["
            raise ConfigError(where, f"must be in {bound}{self.low}, {self.high}], got {value!r}")
        return int(v) if self.kind is int else v


def parse_params(spec: Mapping[str, Param], params: Any) -> dict[str, Any]:
    """Every declared parameter, from ``params`` or its default; unknown names are refused."""
    if not isinstance(params, Mapping):
        raise ConfigError("strategy_params", f"must be a table, got {type(params).__name__}")
    for key in params:
        if key not in spec:
            known = ", ".join(sorted(spec)) or "none"
            raise ConfigError(f"strategy_params.{key}", f"unknown parameter (known: {known})")
    return {key: p.check(key, params[key]) if key in params else p.default for key, p in spec.items()}
