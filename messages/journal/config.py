"""Journal settings."""

from __future__ import annotations

from arbor.config.errors import ConfigError
from attrs import frozen

POLICIES = ("every_record", "interval", "rotation")


@frozen(kw_only=True)
class JournalConfig:
    """``durability``: fsync after every record (nothing acknowledged is lost, slow), at most every
    ``interval_ms`` (a power failure loses at most that much), or on segment rotation only."""

    enabled: bool = True
    durability: str = "interval"
    interval_ms: int = 100
    segment_mb: int = 64

    def validate(self) -> JournalConfig:
        if self.durability not in POLICIES:
            raise ConfigError("journal.durability", f"must be one of {', '.join(POLICIES)}")
        if self.interval_ms <= 0:
            raise ConfigError("journal.interval_ms", "must be > 0")
        if self.segment_mb <= 0:
            raise ConfigError("journal.segment_mb", "must be > 0")
        return self

    @property
    def policy(self) -> str:
        return f"interval:{self.interval_ms}" if self.durability == "interval" else self.durability
