"""Operator surface settings."""

from __future__ import annotations

from arbor.config.errors import ConfigError
from attrs import frozen


@frozen(kw_only=True)
class OperatorConfig:
    """The HTTP API is opt-in: it refuses to start without ARBOR_OPERATOR_TOKEN in the environment."""

    enabled: bool = False
    host: str = "127.0.0.1"  # anything else exposes the API beyond this machine: put TLS in front
    port: int = 8750
    webhook_url: str = ""  # optional: alerts are POSTed here as JSON
    cycle_interval_s: float = 1.0  # heartbeat file and run.jsonl cadence
    max_connections: int = 64  # open API connections kept; past it the oldest idle one is closed

    def validate(self) -> OperatorConfig:
        if not 0 <= self.port <= 65535:
            raise ConfigError("operator.port", "must be within 0..65535 (0 picks a free port)")
        if not 1 <= self.max_connections <= 10_000:
            raise ConfigError("operator.max_connections", "must be within 1..10000")
        if self.cycle_interval_s <= 0:
            raise ConfigError("operator.cycle_interval_s", "must be > 0")
        if self.webhook_url and not self.webhook_url.startswith(("http://", "https://")):
            raise ConfigError("operator.webhook_url", "must be an http(s) URL")
        return self
