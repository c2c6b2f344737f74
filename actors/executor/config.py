"""Executor configuration: frozen, validated with errors that name the key."""

from __future__ import annotations

import attrs
from arbor.config.errors import ConfigError


@attrs.frozen(kw_only=True)
class ExecutorConfig:
    """``ack_timeout_ms``: how long an order or cancel may wait for the venue before its fate is
    UNKNOWN. ``query_interval_ms``: how often an UNKNOWN order is queried again.
    ``not_found_grace_ms``: how long after it was sent a venue's "no such order" is not yet taken
    as final. An order can still reach the venue after a query missed it (a request delayed in
    flight, or retried by the order client after a rate-limit wait); the venue refuses it only
    once its signed timestamp is older than the receive window (Binance: recvWindow, 5 s) past
    the client's last retry. Until then the order stays UNKNOWN and is queried again, so the
    position never re-enters while the first order may still fill."""

    ack_timeout_ms: int = 2000
    query_interval_ms: int = 2000
    not_found_grace_ms: int = 60000

    def validate(self) -> ExecutorConfig:
        for field in attrs.fields(ExecutorConfig):
            value = getattr(self, field.name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ConfigError(f"executor.{field.name}", f"must be an integer number of milliseconds, got {value!r}")
            if value <= 0:
                raise ConfigError(f"executor.{field.name}", f"must be positive, got {value}")
        return self
