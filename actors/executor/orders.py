"""What the executor knows about one of its orders, and how its client order id is made."""

from __future__ import annotations

import hashlib
from decimal import Decimal

import attrs

from messages import OrderIntent, OrderStatus, OrderType, Side

ZERO = Decimal("0")

# Orders waiting for the venue to answer a request of ours; they time out into UNKNOWN.
AWAITING = frozenset({OrderStatus.PENDING_NEW, OrderStatus.PENDING_CANCEL})


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
    ``reconciled_qty`` the part of it synthesized from the venue's records rather than fills."""

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

    @property
    def is_live(self) -> bool:
        return not self.status.is_terminal
