"""Configuration of the paper venue: latency, fees and fault injection (all faults off by default)."""

from __future__ import annotations

import math
from decimal import Decimal

import attrs
from arbor.config.errors import ConfigError


@attrs.frozen(kw_only=True)
class PaperConfig:
    """How the paper venue answers.

    ``reject_rate``: probability a new order is rejected (``"venue_rejected"``).
    ``transient_error_rate``: probability a new order is rejected with ``"transient_error"``.
    ``drop_ack_rate``: probability the venue accepts an order but the response to it (the ack and
    any fills made while handling it) is lost, so the executor must query.
    ``fill_delay_ms``: an accepted order cannot fill before this long after its acceptance.
    ``duplicate_fill_rate``: probability a fill report is delivered twice (same fill id).
    ``late_fill_rate``: probability a fill report is held back ``late_fill_ms`` and delivered after
    the reports made meanwhile (a cancel's answer, the order's status, later fills).
    ``disconnect_rate``: probability, at each timer tick, that the connection drops for
    ``disconnect_ms``: requests sent meanwhile never arrive and the venue's reports are lost
    (its own records, fills included, go on: the executor learns them by query and reconciliation).
    ``order_history``: settled orders the venue keeps (and answers queries about), newest first;
    older ones are forgotten, as an exchange's order history is bounded. Live orders are always kept.
    All draws come from the actor context's seeded ``rng``.
    """

    latency_ms: int = 20
    taker_fee_bps: Decimal = Decimal("4")
    maker_fee_bps: Decimal = Decimal("2")
    reject_rate: float = 0.0
    drop_ack_rate: float = 0.0
    fill_delay_ms: int = 0
    transient_error_rate: float = 0.0
    duplicate_fill_rate: float = 0.0
    late_fill_rate: float = 0.0
    late_fill_ms: int = 1000
    disconnect_rate: float = 0.0
    disconnect_ms: int = 2000
    order_history: int = 1000

    def validate(self) -> None:
        """Raise ``ConfigError("venue.paper.<field>", reason)`` for the first bad value."""
        for name in ("latency_ms", "fill_delay_ms", "late_fill_ms", "disconnect_ms"):
            value = getattr(self, name)
            if type(value) is not int or value < 0:
                raise ConfigError(f"venue.paper.{name}", f"a non-negative integer of milliseconds, got {value!r}")
        if type(self.order_history) is not int or self.order_history < 1:
            raise ConfigError("venue.paper.order_history", f"a positive integer of orders, got {self.order_history!r}")
        for name in ("taker_fee_bps", "maker_fee_bps"):
            value = getattr(self, name)
            if not isinstance(value, Decimal) or not value.is_finite():
                raise ConfigError(f"venue.paper.{name}", f"a finite Decimal, got {value!r}")
            if not Decimal("-100") <= value <= Decimal("100"):
                raise ConfigError(f"venue.paper.{name}", f"must be within -100..100 bps, got {value}")
        for name in ("reject_rate", "drop_ack_rate", "transient_error_rate", "duplicate_fill_rate", "late_fill_rate",
                     "disconnect_rate"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ConfigError(f"venue.paper.{name}", f"a probability, got {value!r}")
            if not 0.0 <= value <= 1.0:
                raise ConfigError(f"venue.paper.{name}", f"a probability within 0..1, got {value}")
