"""Configuration errors name the key and the reason."""

from __future__ import annotations


class ConfigError(ValueError):
    """A configuration value is missing or wrong. ``key`` is dotted, e.g. ``risk.max_leverage``."""

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(f"config key '{key}': {reason}")
        self.key = key
        self.reason = reason
