"""What the executor knows about one of its orders, and how its client order id is made."""

from __future__ import annotations

import hashlib
from decimal import Decimal

import attrs
from arbor.messages import OrderIntent, OrderStatus, OrderType, Side

ZERO = Decimal("0")

# Orders waiting for the venue to answer a request of ours; they time out into UNKNOWN.
AWAITING = frozenset({OrderStatus.PENDING_NEW, OrderStatus.PENDING_CANCEL})

# Settled orders kept so that a replayed submit of a recent action is still suppressed and a
# re-delivered fill of a finished order is still recognised as a duplicate. The executor holds
# between SETTLED_ORDERS_KEPT and SETTLED_ORDERS_KEPT + SETTLED_PRUNE_BATCH of them (oldest go
# first); the store keeps at least as many, so it never drops one the executor still holds.
SETTLED_ORDERS_KEPT = 128
SETTLED_PRUNE_BATCH = 32


def client_order_id(run_id: str, action_id: str) -> str:
    """The order id of an action, the same on every retry and replay of the run.

    22 characters of ``[0-9a-z]``: within Binance's ``newClientOrderId`` limit of 36 and its
    allowed alphabet, so adapters can pass it through unchanged.
    """
    digest = hashlib.blake2b(f"{run_id}|{action_id}".encode(), digest_size=10).hexdigest()
    return "ar" + digest


@attrs.frozen(kw_only=True)
class TrackedOrder:
    """One order as the executor sees it. ``filled_qty`` counts the fills forwarded to the position;
    ``reconciled_qty`` the part of it synthesized from the venue's records rather than fills.

    ``fill_ids`` are the venue fill ids already applied (kept with the order so duplicates are
    still recognised after a restart). ``emergency`` marks an order the executor placed itself to
    flatten an unexplained venue position: its answers are never forwarded to the position.
    """

    client_order_id: str
    action_id: str
    intent: OrderIntent
    side: Side
    qty: Decimal
    order_type: OrderType
    limit_price: Decimal | None
    reduce_only: bool
    status: OrderStatus
    sent_ns: int
    awaiting_since_ns: int  # when the current PENDING_* request went out
    venue_order_id: str = ""
    filled_qty: Decimal = ZERO
    reconciled_qty: Decimal = ZERO
    last_query_ns: int | None = None
    # A cancel that reported more fills than we have seen is held until they arrive or are reconciled.
    held_cancel_filled_qty: Decimal | None = None
    held_cancel_reason: str = ""
    fill_ids: tuple[str, ...] = ()
    emergency: bool = False

    @property
    def is_live(self) -> bool:
        return not self.status.is_terminal

    @property
    def settled(self) -> bool:
        """The venue has answered the last request about this order (its fate is known)."""
        return self.status not in AWAITING and self.status is not OrderStatus.UNKNOWN


@attrs.frozen(kw_only=True)
class ExecutorSnapshot:
    """Everything a restarted executor needs: its orders (live, in flight, UNKNOWN, and the most
    recent settled ones, oldest first, each with its seen fill ids) and the signed sum of the fills
    it forwarded to the position (``position_qty``, long > 0) that reconciliation compares with
    the venue's records."""

    symbol: str
    position_qty: Decimal
    orders: tuple[TrackedOrder, ...]
