"""Supervision settings: restart intensity, backoff and hang detection."""

from __future__ import annotations

from arbor.config.errors import ConfigError
from attrs import frozen


@frozen(kw_only=True)
class SupervisionConfig:
    intensity: int = 3  # at most this many restarts ...
    period_s: float = 30.0  # ... within this many seconds, else escalate (quarantine the symbol)
    backoff_base_ms: int = 0  # 0: restart at once; else exponential backoff with jitter
    backoff_max_ms: int = 1000
    hang_timeout_ms: int = 2000  # a handler running longer than this is a hang (threaded runtime)

    def validate(self) -> SupervisionConfig:
        if self.intensity < 0:
            raise ConfigError("supervision.intensity", "must be >= 0")
        if self.period_s <= 0:
            raise ConfigError("supervision.period_s", "must be > 0")
        if self.backoff_base_ms < 0 or self.backoff_max_ms < self.backoff_base_ms:
            raise ConfigError("supervision.backoff_base_ms", "must be >= 0 and <= backoff_max_ms")
        if self.hang_timeout_ms <= 0:
            raise ConfigError("supervision.hang_timeout_ms", "must be > 0")
        return self
