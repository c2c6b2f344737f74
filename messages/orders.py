"""Orders between Position, Executor and the venue, and the venue's answers."""

from __future__ import annotations

from decimal import Decimal

from arbor.messages.base import OrderIntent, OrderStatus, OrderType, Side, message


@message("SubmitOrder")
class SubmitOrder:
    """Position -> Executor: put this order on the market for this action (idempotent by action)."""

    symbol: str
    action_id: str
    intent: OrderIntent
    side: Side
    qty: Decimal
    order_type: OrderType
    limit_price: Decimal | None
    reduce_only: bool
    ts_event_ns: int


@message("CancelOrder")
class CancelOrder:
    """Position -> Executor: cancel the live order of this action."""

    symbol: str
    action_id: str
    reason: str
    ts_event_ns: int


@message("CancelOpenOrders")
class CancelOpenOrders:
    """Risk -> Executor: cancel live orders of a symbol (only those that add risk if ``entries_only``)."""

    symbol: str
    entries_only: bool
    reason: str
    ts_event_ns: int


@message("PlaceOrder")
class PlaceOrder:
    """Executor -> venue."""

    symbol: str
    client_order_id: str
    side: Side
    qty: Decimal
    order_type: OrderType
    limit_price: Decimal | None
    reduce_only: bool
    ts_event_ns: int


@message("RequestCancel")
class RequestCancel:
    """Executor -> venue."""

    symbol: str
    client_order_id: str
    ts_event_ns: int


@message("QueryOrder")
class QueryOrder:
    """Executor -> venue: what do your records say about this client order id?"""

    symbol: str
    client_order_id: str
    ts_event_ns: int


@message("OrderAccepted")
class OrderAccepted:
    """Venue -> Executor (-> Position): the order is live at the venue."""

    symbol: str
    client_order_id: str
    venue_order_id: str
    ts_event_ns: int
    action_id: str = ""


@message("OrderFilled")
class OrderFilled:
    """One execution. ``fill_id`` is unique per venue and symbol; a repeated one is a duplicate."""

    symbol: str
    client_order_id: str
    venue_order_id: str
    fill_id: str
    side: Side
    qty: Decimal
    price: Decimal
    fee: Decimal  # in quote currency, positive = paid
    is_maker: bool
    cum_qty: Decimal
    leaves_qty: Decimal
    ts_event_ns: int
    action_id: str = ""


@message("OrderRejected")
class OrderRejected:
    symbol: str
    client_order_id: str
    reason: str
    ts_event_ns: int
    action_id: str = ""


@message("OrderCanceled")
class OrderCanceled:
    """The order is dead at the venue with ``filled_qty`` executed in all."""

    symbol: str
    client_order_id: str
    filled_qty: Decimal
    reason: str
    ts_event_ns: int
    action_id: str = ""


@message("OrderStatusReported")
class OrderStatusReported:
    """Venue -> Executor, the answer to QueryOrder (and to reconciliation)."""

    symbol: str
    client_order_id: str
    status: OrderStatus
    venue_order_id: str
    filled_qty: Decimal
    avg_price: Decimal | None
    ts_event_ns: int


@message("OrderTimedOut")
class OrderTimedOut:
    """Executor event: no answer in time; the order is UNKNOWN until the venue's records settle it."""

    symbol: str
    client_order_id: str
    action_id: str
    ts_event_ns: int


@message("DuplicateOrderSuppressed")
class DuplicateOrderSuppressed:
    """Executor event: a submit for an action that already has an order was not sent again."""

    symbol: str
    client_order_id: str
    action_id: str
    ts_event_ns: int


@message("QueryPosition")
class QueryPosition:
    """Executor -> venue: report your position and live orders for this symbol (reconciliation)."""

    symbol: str
    ts_event_ns: int


@message("PositionReported")
class PositionReported:
    """Venue -> Executor: the venue's own records. ``qty`` is signed (long > 0)."""

    symbol: str
    qty: Decimal
    avg_price: Decimal | None
    open_client_order_ids: tuple[str, ...]
    ts_event_ns: int


@message("Reconcile")
class Reconcile:
    """Supervision/timer -> Executor: compare local state with the venue's records now."""

    symbol: str
    reason: str
    ts_event_ns: int


@message("ReconciliationCompleted")
class ReconciliationCompleted:
    """Executor event. ``outcome``: NONE (agree), SYNC_LOCAL (local adopted the venue's records),
    EMERGENCY_CLOSE (venue position closed), DRIFT_UNRESOLVED (needs an operator; engages the kill switch)."""

    symbol: str
    outcome: str
    local_qty: Decimal
    venue_qty: Decimal
    venue_avg_price: Decimal | None
    detail: str
    ts_event_ns: int
