"""Declared market assumptions: what a strategy or a risk limit relies on, and how it is checked.

An ``Assumption`` names one observation of the live market (or of our own fills), a bound on it
and a window of event time; the runtime evaluates it continuously (``arbor.actors.assumptions``)
and reports its health as OK, DRIFTING or BROKEN (UNKNOWN while the window holds too few samples).
A strategy declares its own in ``ASSUMPTIONS``; risk limits declare theirs in the configuration
(``[[assumptions]]``). See docs/assumptions.md.
"""

from __future__ import annotations

import math

import attrs
from arbor.config.errors import ConfigError

__all__ = ["OBSERVATIONS", "ON_BROKEN", "ON_RECOVER", "Assumption", "AssumptionSettings"]

# observation -> what one sample is (the statistic compared with the bound is the window's
# ``quantile``, except for trade_rate, which is trades per second over the whole window)
OBSERVATIONS: dict[str, str] = {
    "spread_bps": "the quoted spread in basis points of the mid, per feature snapshot",
    "trade_rate": "trades per second over the window (from the Feature actor's trade count)",
    "slippage_ticks": "adverse distance of each fill from the mark of the decision before it, in ticks",
    "vol_ratio": "short/long realized volatility ratio, per warm feature snapshot",
    "feed_latency_ms": "the runtime clock minus the exchange time of the event behind each snapshot, in ms",
}
ON_BROKEN = ("alert", "reduce")
ON_RECOVER = ("operator", "resume")


@attrs.frozen(kw_only=True)
class Assumption:
    """One market assumption: ``observation`` must stay within ``[min, max]`` (either may be unset).

    ``quantile`` is the statistic of the window's samples compared with the bound (0.95 with a
    ``max`` reads "below max 95% of the time"; 0.5 is the median). Within ``drift_margin`` (a
    fraction of the bound, or of the band's width) of a bound the health is DRIFTING; past it,
    BROKEN. Fewer than ``min_samples`` samples in ``window_s`` seconds: UNKNOWN, never a guess.
    ``on_broken = "reduce"`` moves the symbol to REDUCING while BROKEN (``"alert"`` only alerts);
    ``on_recover = "resume"`` lets the symbol back to ACTIVE by itself once no such assumption is
    BROKEN, ``"operator"`` (the default) waits for an operator's resume.
    """

    name: str
    observation: str
    min: float | None = None
    max: float | None = None
    quantile: float = 0.5
    window_s: float = 60.0
    min_samples: int = 10
    drift_margin: float = 0.2
    on_broken: str = "alert"
    on_recover: str = "operator"

    def validate(self, key: str = "assumptions") -> Assumption:
        """Raise ConfigError naming ``key.<field>`` for the first bad value; return self when sound."""
        if not isinstance(self.name, str) or not self.name or not all(c.isalnum() or c in "_-." for c in self.name):
            raise ConfigError(f"{key}.name", f"must be a non-empty name of letters, digits, '_', '-', '.', got {self.name!r}")
        if self.observation not in OBSERVATIONS:
            raise ConfigError(f"{key}.observation",
                              f"must be one of {', '.join(OBSERVATIONS)}, got {self.observation!r}")
        for bound in ("min", "max"):
            value = getattr(self, bound)
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                      or not math.isfinite(value)):
                raise ConfigError(f"{key}.{bound}", f"must be a finite number, got {value!r}")
        if self.min is None and self.max is None:
            raise ConfigError(f"{key}.max", "set max, min or both (the bound the observation must respect)")
        if self.min is not None and self.max is not None and not self.min < self.max:
            raise ConfigError(f"{key}.min", f"must be below max {self.max}, got {self.min}")
        if isinstance(self.quantile, bool) or not isinstance(self.quantile, (int, float)) or not 0 < self.quantile <= 1:
            raise ConfigError(f"{key}.quantile", f"must be in (0, 1], got {self.quantile!r}")
        if isinstance(self.window_s, bool) or not isinstance(self.window_s, (int, float)) or not 0 < self.window_s <= 86_400:
            raise ConfigError(f"{key}.window_s", f"must be in (0, 86400] seconds, got {self.window_s!r}")
        if isinstance(self.min_samples, bool) or not isinstance(self.min_samples, int) or self.min_samples < 1:
            raise ConfigError(f"{key}.min_samples", f"must be an integer >= 1, got {self.min_samples!r}")
        if (isinstance(self.drift_margin, bool) or not isinstance(self.drift_margin, (int, float))
                or not 0 <= self.drift_margin < 1):
            raise ConfigError(f"{key}.drift_margin", f"must be in [0, 1), got {self.drift_margin!r}")
        if self.on_broken not in ON_BROKEN:
            raise ConfigError(f"{key}.on_broken", f"must be one of {', '.join(ON_BROKEN)}, got {self.on_broken!r}")
        if self.on_recover not in ON_RECOVER:
            raise ConfigError(f"{key}.on_recover", f"must be one of {', '.join(ON_RECOVER)}, got {self.on_recover!r}")
        return self

    @property
    def bound(self) -> str:
        """The bound as text: ``<= 5``, ``>= 2``, ``in [0.5, 2]``."""
        if self.min is not None and self.max is not None:
            return f"in [{self.min:g}, {self.max:g}]"
        if self.max is not None:
            return f"<= {self.max:g}"
        return f">= {self.min:g}"


@attrs.frozen(kw_only=True)
class AssumptionSettings(Assumption):
    """A configured ``[[assumptions]]`` table: an assumption of a risk limit (or a replacement
    for a strategy's assumption of the same name) and the ``symbols`` it applies to (``"*"``: all)."""

    symbols: tuple[str, ...] = ("*",)
