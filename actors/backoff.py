"""Exponential backoff with jitter, shared by reconnecting clients and restarting supervisors."""

from __future__ import annotations


def exponential_backoff(step: int, initial_s: float, max_s: float, jitter: float, draw: float) -> float:
    """The delay before retry ``step`` (0-based): ``initial_s * 2**step`` capped at ``max_s``, then
    spread by +-``jitter`` (a fraction) using ``draw``, a uniform number in [0, 1) from an injected rng."""
    base = min(max_s, initial_s * (2 ** min(step, 30)))
    return max(0.0, base * (1.0 + jitter * (2.0 * draw - 1.0)))
