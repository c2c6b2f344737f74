"""Executor configuration: frozen, validated with errors that name the key."""

from __future__ import annotations

import attrs

from config.errors import ConfigError


@attrs.frozen(kw_only=True)
class ExecutorConfig:
    """``ack_timeout_ms``: how long an order or cancel may wait for the venue before its fate is
    UNKNOWN. ``query_interval_ms``: how often an UNKNOWN order is queried again."""

    ack_timeout_ms: int = 2000
    query_interval_ms: int = 2000

    def validate(self) -> "ExecutorConfig":
        for field in attrs.fields(ExecutorConfig):
            value = getattr(self, field.name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ConfigError(f"executor.{field.name}", f"must be an integer number of milliseconds, got {value!r}")
            if value <= 0:
                raise ConfigError(f"executor.{field.name}", f"must be positive, got {value}")
        return self
