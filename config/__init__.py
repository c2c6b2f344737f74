"""Configuration: TOML defaults, an optional file and environment overrides, validated on load."""
