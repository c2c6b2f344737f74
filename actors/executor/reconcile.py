"""Reconciliation: the pure comparison of the executor's records with the venue's.

The venue's records are the truth. The executor first queries every order it has not seen
finish (``QueryOrder``), then asks for the venue's position and open orders (``QueryPosition``),
and compares the ``PositionReported`` answer with what it knows:

- ``local_qty``: the signed sum of the fills it forwarded to the position (never the position's
  internals), and
- its orders: live ones, and settled ones it still remembers.

Fills of our own orders that we missed (while the actor was down, answers lost) are not a
position difference: the order queries settle them first, synthesizing the missing fills. What
is left is decided as follows, in this order:

1. **Stale venue orders** (open at the venue, finished here) and **a quantity difference while
   orders of ours are live** may be messages in flight: not decided yet, asked again after
   ``query_interval_ms``, up to ``retries`` times. Past that, stale orders count as unknown ones
   and the difference as ``DRIFT_UNRESOLVED``.
2. **Unknown venue orders** (open at the venue, never ours): cancelled when
   ``cancel_unknown_orders`` allows it, else ``DRIFT_UNRESOLVED``: they can add risk at any time
   and nothing here manages them.
3. Quantities equal: ``NONE``.
4. **Explainable difference** (no live order of ours, and the venue position is flat or in the
   same direction as ours: missed fills of orders we no longer track, a liquidation, ADL or a
   manual close): ``SYNC_LOCAL``, the executor and the position adopt the venue's quantity and
   average price.
5. **Unexplainable difference** (the venue holds a position while we are flat, or the opposite
   direction of ours: our closing orders are reduce-only and cannot flip a position; or it
   reports a position without a price): ``EMERGENCY_CLOSE`` when ``emergency_close`` allows it (a
   reduce-only market order for the venue's whole quantity), else ``DRIFT_UNRESOLVED`` (Risk
   engages the kill switch).
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from enum import Enum
from typing import Any

import attrs
from arbor.actors.executor.orders import ZERO, TrackedOrder
from arbor.config.errors import ConfigError
from arbor.messages import PositionReported

RECONCILE_RETRIES = 3


class Outcome(str, Enum):
    NONE = "NONE"
    SYNC_LOCAL = "SYNC_LOCAL"
    EMERGENCY_CLOSE = "EMERGENCY_CLOSE"
    DRIFT_UNRESOLVED = "DRIFT_UNRESOLVED"


@attrs.frozen(kw_only=True)
class ReconcilePolicy:
    """What reconciliation may do on its own.

    ``reconcile_interval_ms``: how often the executor reconciles unasked (0 = only on Reconcile).
    ``emergency_close``: flatten an unexplainable venue position instead of reporting drift.
    ``cancel_unknown_orders``: cancel venue orders no record here explains instead of reporting drift.
    ``retries``: how often an undecidable comparison (messages maybe in flight) is asked again.
    """

    reconcile_interval_ms: int = 30000
    emergency_close: bool = False
    cancel_unknown_orders: bool = False
    retries: int = RECONCILE_RETRIES

    @classmethod
    def from_config(cls, config: Any) -> ReconcilePolicy:
        """The policy named by an ``ExecutorConfig``; fields it does not have keep their defaults."""
        values = {f.name: getattr(config, f.name) for f in attrs.fields(cls) if hasattr(config, f.name)}
        return cls(**values).validate()

    def validate(self) -> ReconcilePolicy:
        for name in ("reconcile_interval_ms", "retries"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ConfigError(f"executor.{name}", f"must be a non-negative integer, got {value!r}")
        for name in ("emergency_close", "cancel_unknown_orders"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"executor.{name}", "must be true or false")
        return self


@attrs.frozen(kw_only=True)
class Verdict:
    """The result of one comparison. ``outcome`` None: not decidable yet, ask again.
    ``cancel``: venue client order ids to cancel. ``close_qty``: the signed venue quantity to
    flatten (EMERGENCY_CLOSE)."""

    outcome: Outcome | None
    detail: str
    cancel: tuple[str, ...] = ()
    close_qty: Decimal = ZERO


def _sign(qty: Decimal) -> int:
    return (qty > 0) - (qty < 0)


def compare(
    *,
    local_qty: Decimal,
    orders: Mapping[str, TrackedOrder],
    report: PositionReported,
    policy: ReconcilePolicy,
    attempt: int,
) -> Verdict:
    """Decide what the venue's ``report`` means for local records (see the module docstring).

    ``orders`` are every order the executor remembers, by client order id; ``attempt`` counts the
    comparisons of this round already found undecidable.
    """
    final = attempt >= policy.retries
    venue_open = report.open_client_order_ids
    live = [c for c, o in orders.items() if o.is_live]
    stale = [c for c in venue_open if c in orders and not orders[c].is_live]
    unknown = [c for c in venue_open if c not in orders]
    diff = report.qty - local_qty
    if stale and not final:
        return Verdict(outcome=None, detail=f"venue lists settled orders as open: {', '.join(stale)}")
    unknown += stale
    if unknown and not policy.cancel_unknown_orders:
        return Verdict(outcome=Outcome.DRIFT_UNRESOLVED, detail=f"venue has open orders unknown here: {', '.join(unknown)}")
    cancel = tuple(unknown)
    note = f"; cancelling unknown venue orders {', '.join(cancel)}" if cancel else ""
    if diff == 0:
        return Verdict(outcome=Outcome.NONE, detail="agree" + note, cancel=cancel)
    if live:
        if not final:
            return Verdict(outcome=None, detail=f"differs by {diff} while {len(live)} orders are live")
        return Verdict(
            outcome=Outcome.DRIFT_UNRESOLVED,
            detail=f"differs by {diff} with {len(live)} live orders after {attempt} attempts" + note,
            cancel=cancel,
        )
    venue_sign = _sign(report.qty)
    explainable = venue_sign == 0 or venue_sign == _sign(local_qty)
    if explainable and (venue_sign == 0 or report.avg_price is not None):
        return Verdict(outcome=Outcome.SYNC_LOCAL, detail=f"adopting venue qty {report.qty} (local {local_qty})" + note, cancel=cancel)
    why = "venue position without an average price" if explainable else f"venue holds {report.qty} against local {local_qty}"
    if policy.emergency_close:
        return Verdict(outcome=Outcome.EMERGENCY_CLOSE, detail=f"{why}: flattening{note}", cancel=cancel, close_qty=report.qty)
    return Verdict(outcome=Outcome.DRIFT_UNRESOLVED, detail=why + note, cancel=cancel)
