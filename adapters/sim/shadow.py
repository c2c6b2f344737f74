"""The shadow venue: decisions are logged but never sent anywhere.

In shadow mode the whole decision path runs on live or recorded data, and the executor talks to
this venue, which refuses every order with ``"shadow_mode"``. Nothing is ever filled, so no
position can open; the journal still shows every decision that would have been an order.
"""

from __future__ import annotations

from collections import Counter
from decimal import Decimal
from typing import Any

from arbor.actors.base import ActorContext, ActorLogic
from arbor.messages import (
    OrderRejected,
    OrderStatusReported,
    PlaceOrder,
    PositionReported,
    QueryOrder,
    QueryPosition,
    RawMarketEvent,
    RequestCancel,
    TimerTick,
)
from arbor.messages.base import OrderStatus

_ZERO = Decimal("0")


class ShadowVenueLogic(ActorLogic):
    """Answers the executor without ever touching a market. Runs on the venue actor's thread."""

    ROLE = "venue"

    def __init__(self, ctx: ActorContext) -> None:
        super().__init__(ctx)
        self._stats: Counter[str] = Counter()

    def on_place_order(self, msg: PlaceOrder) -> list[Any]:
        self._stats["orders"] += 1
        self._stats["shadow_rejects"] += 1
        self.ctx.log.info(
            "shadow order not sent: {} {} {} {} @ {} reduce_only={}",
            msg.client_order_id,
            msg.side.value,
            msg.qty,
            msg.order_type.value,
            msg.limit_price,
            msg.reduce_only,
        )
        return [
            OrderRejected(
                symbol=msg.symbol,
                client_order_id=msg.client_order_id,
                reason="shadow_mode",
                ts_event_ns=self.ctx.clock.now_ns(),
            )
        ]

    def on_request_cancel(self, msg: RequestCancel) -> list[Any]:
        self._stats["cancels"] += 1  # nothing was ever live, so there is nothing to cancel
        return []

    def on_query_order(self, msg: QueryOrder) -> list[Any]:
        self._stats["queries"] += 1
        return [
            OrderStatusReported(
                symbol=msg.symbol,
                client_order_id=msg.client_order_id,
                status=OrderStatus.NOT_FOUND,
                venue_order_id="",
                filled_qty=_ZERO,
                avg_price=None,
                ts_event_ns=self.ctx.clock.now_ns(),
            )
        ]

    def on_query_position(self, msg: QueryPosition) -> list[Any]:
        """Nothing is ever filled or live here: flat, no open orders."""
        self._stats["position_queries"] += 1
        return [
            PositionReported(
                symbol=msg.symbol, qty=_ZERO, avg_price=None, open_client_order_ids=(), ts_event_ns=self.ctx.clock.now_ns()
            )
        ]

    def on_raw_market_event(self, msg: RawMarketEvent) -> list[Any]:
        return []  # handled, so market data routed here is not a dead letter

    def on_timer_tick(self, msg: TimerTick) -> list[Any]:
        return []

    def stats(self) -> dict[str, Any]:
        return {key: self._stats[key] for key in ("orders", "shadow_rejects", "cancels", "queries", "position_queries")}
