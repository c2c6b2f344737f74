"""Executor(S): turns the position's orders into venue requests and the venue's answers back.

Runs on whatever thread or process the runtime gives the symbol's executor actor; one message at
a time, no I/O. Client order ids are derived from the action, so a retried or replayed submit
never creates a second order, and an order whose fate is unknown is queried, never re-sent.

Reconciliation (``actors.executor.reconcile``) compares the signed sum of the fills this executor
forwarded with the venue's position and open orders, on ``Reconcile`` and every
``reconcile_interval_ms``. ``snapshot()``/``restore()`` let supervision persist the orders (in
flight and UNKNOWN ones included) and that sum; a restored order in flight is queried, never re-sent.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

import attrs
from arbor.actors.base import ActorContext, ActorLogic
from arbor.actors.executor.config import ExecutorConfig
from arbor.actors.executor.orders import (
    AWAITING,
    SETTLED_ORDERS_KEPT,
    SETTLED_PRUNE_BATCH,
    ZERO,
    ExecutorSnapshot,
    TrackedOrder,
    client_order_id,
)
from arbor.actors.executor.reconcile import Outcome, ReconcilePolicy, compare
from arbor.messages import (
    CancelOpenOrders,
    CancelOrder,
    DuplicateOrderSuppressed,
    OrderAccepted,
    OrderCanceled,
    OrderFilled,
    OrderIntent,
    OrderRejected,
    OrderStatus,
    OrderStatusReported,
    OrderTimedOut,
    OrderType,
    PlaceOrder,
    PositionReported,
    QueryOrder,
    QueryPosition,
    Reconcile,
    ReconciliationCompleted,
    RequestCancel,
    Side,
    SubmitOrder,
    TimerTick,
    evolve_message,
)

_MS = 1_000_000
S = OrderStatus
# Answers the position needs about its own orders; an emergency order's are kept here.
_TO_POSITION = (OrderAccepted, OrderFilled, OrderRejected, OrderCanceled)


@attrs.define
class _Round:
    """One reconciliation in progress: asked at ``asked_ns``; undecidable ``attempt`` times so far;
    asked again at ``retry_at_ns`` when set."""

    reason: str
    asked_ns: int
    attempt: int = 0
    retry_at_ns: int | None = None


class ExecutorLogic(ActorLogic):
    """Tracks every order of one symbol from submit to a terminal status the venue confirmed."""

    ROLE = "executor"
    WANTS_TICKS = True

    def __init__(self, ctx: ActorContext, config: ExecutorConfig | None = None, policy: ReconcilePolicy | None = None) -> None:
        super().__init__(ctx)
        self.config = (config or ExecutorConfig()).validate()
        # Read from ExecutorConfig once it carries the reconciliation fields; explicit in tests.
        self.policy = (policy or ReconcilePolicy.from_config(self.config)).validate()
        self._orders: dict[str, TrackedOrder] = {}  # creation order
        self._live: dict[str, None] = {}  # insertion-ordered set: deterministic iteration on ticks
        self._fill_ids: dict[str, str] = {}  # fill id -> client order id
        self._local_qty = ZERO  # signed sum of the fills forwarded to the position
        self._round: _Round | None = None
        self._last_reconcile_ns = self._now()
        self._last_outcome = ""
        self._counts: Counter[str] = Counter()
        self._undo: dict[str, TrackedOrder | None] | None = None  # orders as they were before the current message

    # -- accessors --------------------------------------------------------------------------
    def order(self, coid: str) -> TrackedOrder | None:
        return self._orders.get(coid)

    def open_orders(self) -> tuple[TrackedOrder, ...]:
        """Orders not yet in a terminal status, oldest first."""
        return tuple(self._orders[c] for c in self._live)

    @property
    def local_qty(self) -> Decimal:
        """The signed sum of the fills forwarded to the position (long > 0)."""
        return self._local_qty

    def stats(self) -> dict[str, Any]:
        by_status = Counter(o.status.value for o in self._orders.values())
        return {
            "orders_by_status": dict(sorted(by_status.items())),
            "open_orders": len(self._live),
            **{k: self._counts[k] for k in ("duplicates_suppressed", "duplicate_fills", "timeouts", "unknown_answers")},
            "stale_answers": self._counts["stale_answers"],
            "early_not_found": self._counts["early_not_found"],
            "unpriced_reports": self._counts["unpriced_reports"],
            "local_qty": self._local_qty,
            "reconciliations": self._counts["reconciliations"],
            "reconcile_deferrals": self._counts["reconcile_deferrals"],
            "last_reconcile_outcome": self._last_outcome,
        }

    # -- persistence (called by supervision, never from a handler) --------------------------
    def snapshot(self) -> ExecutorSnapshot:
        """Orders (live, in flight, UNKNOWN and recently settled, oldest first) and the forwarded position."""
        return ExecutorSnapshot(symbol=self.ctx.symbol, position_qty=self._local_qty, orders=tuple(self._orders.values()))

    def restore(self, snapshot: ExecutorSnapshot) -> None:
        """Replace the state with a stored one.

        An order that was waiting for the venue (PENDING_NEW, PENDING_CANCEL) has an unknown fate
        after a restart: it becomes UNKNOWN and, like every UNKNOWN order, is queried on the next
        TimerTick (and by any Reconcile), never sent again. Its action keeps its client order id,
        so a replayed SubmitOrder is suppressed as a duplicate.
        """
        if not isinstance(snapshot, ExecutorSnapshot):
            raise TypeError(f"expected ExecutorSnapshot, got {type(snapshot).__name__}")
        if snapshot.symbol != self.ctx.symbol:
            raise ValueError(f"snapshot of {snapshot.symbol!r} restored into the executor of {self.ctx.symbol!r}")
        self._orders, self._live, self._fill_ids = {}, {}, {}
        for order in snapshot.orders:
            if order.status in AWAITING or order.status is S.UNKNOWN:
                order = attrs.evolve(order, status=S.UNKNOWN, last_query_ns=None)
            self._put(order)
            for fill_id in order.fill_ids:
                self._fill_ids[fill_id] = order.client_order_id
        self._local_qty = snapshot.position_qty
        self._round = None
        self._last_reconcile_ns = self._now()

    # -- from the position and risk ---------------------------------------------------------
    def on_submit_order(self, msg: SubmitOrder) -> list[Any]:
        coid = client_order_id(self.ctx.run_id, msg.action_id)
        now = self._now()
        if coid in self._orders:
            self._counts["duplicates_suppressed"] += 1
            return [DuplicateOrderSuppressed(symbol=msg.symbol, client_order_id=coid, action_id=msg.action_id, ts_event_ns=now)]
        self._put(
            TrackedOrder(
                client_order_id=coid,
                action_id=msg.action_id,
                intent=msg.intent,
                side=msg.side,
                qty=msg.qty,
                order_type=msg.order_type,
                limit_price=msg.limit_price,
                reduce_only=msg.reduce_only,
                status=S.PENDING_NEW,
                sent_ns=now,
                awaiting_since_ns=now,
            )
        )
        return [
            PlaceOrder(
                symbol=msg.symbol,
                client_order_id=coid,
                side=msg.side,
                qty=msg.qty,
                order_type=msg.order_type,
                limit_price=msg.limit_price,
                reduce_only=msg.reduce_only,
                ts_event_ns=now,
            )
        ]

    def on_cancel_order(self, msg: CancelOrder) -> list[Any]:
        order = self._orders.get(client_order_id(self.ctx.run_id, msg.action_id))
        return self._request_cancel(order) if order is not None else []

    def on_cancel_open_orders(self, msg: CancelOpenOrders) -> list[Any]:
        out: list[Any] = []
        for order in self.open_orders():
            if not msg.entries_only or order.intent is OrderIntent.ENTRY:
                out += self._request_cancel(order)
        return out

    def _request_cancel(self, order: TrackedOrder) -> list[Any]:
        if not order.is_live or order.status is S.PENDING_CANCEL:
            return []
        if order.status is not S.UNKNOWN:  # an UNKNOWN order stays UNKNOWN until the venue's records settle it
            self._put(attrs.evolve(order, status=S.PENDING_CANCEL, awaiting_since_ns=self._now()))
        return [RequestCancel(symbol=self.ctx.symbol, client_order_id=order.client_order_id, ts_event_ns=self._now())]

    # -- from the venue ---------------------------------------------------------------------
    def handle(self, msg: Any) -> list[Any] | None:
        """Handle one message atomically: a handler that raises leaves the state as it was before
        it, so ``snapshot()`` of a crashed executor is its last good state and the message can be
        delivered again without, say, its fill id already counted as seen."""
        self._undo = {}
        kept = (self._local_qty, attrs.evolve(self._round) if self._round else None, self._last_reconcile_ns, self._last_outcome)
        try:
            return self._handle(msg)
        except BaseException:
            self._roll_back(kept)
            raise
        finally:
            self._undo = None

    def _roll_back(self, kept: tuple[Any, ...]) -> None:
        self._local_qty, self._round, self._last_reconcile_ns, self._last_outcome = kept
        for coid, previous in (self._undo or {}).items():
            current = self._orders.get(coid)
            for fill_id in current.fill_ids if current else ():
                self._fill_ids.pop(fill_id, None)
            if previous is None:
                self._orders.pop(coid, None)
                self._live.pop(coid, None)
                continue
            self._orders[coid] = previous  # assignment keeps an existing key's place: creation order holds
            for fill_id in previous.fill_ids:
                self._fill_ids[fill_id] = coid
        if self._undo:
            self._live = {c: None for c, o in self._orders.items() if o.is_live}

    def _handle(self, msg: Any) -> list[Any] | None:
        coid: str | None = getattr(msg, "client_order_id", None)
        before = self._orders.get(coid) if coid is not None else None
        out = super().handle(msg)
        if out is None or coid is None or before is None or not before.emergency:
            return out
        # The executor's own flattening order: the position never placed it, so it never hears
        # of it; once it is over, the venue's records are compared again.
        out = [m for m in out if not (isinstance(m, _TO_POSITION) and m.client_order_id == coid)]
        after = self._orders.get(coid)
        if before.is_live and after is not None and not after.is_live:
            out += self._start_round("emergency close over")
        return out

    def on_order_accepted(self, msg: OrderAccepted) -> list[Any]:
        order = self._live_order(msg.client_order_id)
        if order is None:
            return []
        status = _working(order) if order.status in (S.PENDING_NEW, S.UNKNOWN) else order.status
        self._put(attrs.evolve(order, status=status, venue_order_id=msg.venue_order_id, last_query_ns=None))
        return [evolve_message(msg, action_id=order.action_id)]

    def on_order_filled(self, msg: OrderFilled) -> list[Any]:
        order = self._known(msg.client_order_id)
        if order is None:
            return []
        if msg.fill_id in self._fill_ids:
            self._counts["duplicate_fills"] += 1
            return []
        self._fill_ids[msg.fill_id] = order.client_order_id
        order = attrs.evolve(order, fill_ids=order.fill_ids + (msg.fill_id,))
        self._put(order)
        qty = msg.qty
        if order.reconciled_qty > 0:
            # Part of this order was settled from the venue's records; forward only what they missed.
            qty = min(msg.qty, msg.cum_qty - order.filled_qty)
            if qty <= 0:
                self._counts["duplicate_fills"] += 1
                return []
        if not order.is_live:
            # Never drop a real fill: the position decides whether it fits (and fails loudly if not).
            self.ctx.log.error("fill {} for {} order {}", msg.fill_id, order.status.value, order.client_order_id)
        return self._apply_fill(order, evolve_message(msg, qty=qty, action_id=order.action_id))

    def on_order_rejected(self, msg: OrderRejected) -> list[Any]:
        order = self._live_order(msg.client_order_id)
        if order is None:
            return []
        self._put(attrs.evolve(order, status=S.REJECTED))
        return [evolve_message(msg, action_id=order.action_id)]

    def on_order_canceled(self, msg: OrderCanceled) -> list[Any]:
        order = self._live_order(msg.client_order_id)
        if order is None:
            return []
        if msg.filled_qty > order.filled_qty:
            # Cancel confirmations can overtake fills (REST answer vs. user stream): hold the cancel
            # until the fills arrive, or until a query settles them after ack_timeout_ms.
            held = attrs.evolve(
                order,
                status=S.PENDING_CANCEL,
                awaiting_since_ns=self._now(),
                held_cancel_filled_qty=msg.filled_qty,
                held_cancel_reason=msg.reason,
            )
            self._put(held)
            return []
        self._put(attrs.evolve(order, status=S.CANCELED))
        return [evolve_message(msg, action_id=order.action_id)]

    def on_order_status_reported(self, msg: OrderStatusReported) -> list[Any]:
        """Settle an order from the venue's records.

        Fills the venue reports but we never saw are synthesized as one OrderFilled at the
        reported ``avg_price`` (fee 0, ``fill_id = "<coid>:recon:<filled_qty>"``): the position's
        quantity is then right, its PnL approximate to the extent earlier fills differ from the
        average, and fees arrive only with the real fills. Real fills arriving later are trimmed
        by ``cum_qty`` so nothing is counted twice.
        """
        order = self._live_order(msg.client_order_id)
        if order is None or msg.status in (S.PENDING_NEW, S.PENDING_CANCEL, S.UNKNOWN):
            return []
        if msg.status is S.NOT_FOUND:
            if order.filled_qty > 0:
                self.ctx.log.error("venue has no record of {} yet we saw fills", order.client_order_id)
                self._counts["stale_answers"] += 1
                return []
            now = self._now()
            if not order.venue_order_id and now - order.sent_ns < self.config.not_found_grace_ms * _MS:
                # Not final yet: the order may still reach the venue (see ExecutorConfig). Ask again.
                self._counts["early_not_found"] += 1
                self._put(attrs.evolve(order, status=S.UNKNOWN, last_query_ns=now))
                return []
            self._put(attrs.evolve(order, status=S.REJECTED))
            return [self._rejected(order, "not_found_at_venue")]
        out: list[Any] = []
        missing = msg.filled_qty - order.filled_qty
        if missing > 0:
            if msg.avg_price is None:
                self._counts["unpriced_reports"] += 1  # cannot price the fill: stay unsettled, ask again
                return []
            out += self._reconcile_fill(order, msg, missing, msg.avg_price)
            order = self._orders[order.client_order_id]
            if not order.is_live:  # the synthesized fill completed it, or released a held cancel
                return out
        order = attrs.evolve(order, venue_order_id=msg.venue_order_id or order.venue_order_id, last_query_ns=None)
        if msg.status in (S.NEW, S.PARTIALLY_FILLED):
            self._put(attrs.evolve(order, status=_working(order)))
        elif msg.status is S.FILLED:
            # Done at the venue short of its quantity: end it for the position like a cancel.
            self._put(attrs.evolve(order, status=S.FILLED))
            out.append(self._canceled(order, "filled_short_at_venue"))
        elif msg.status is S.CANCELED:
            self._put(attrs.evolve(order, status=S.CANCELED))
            out.append(self._canceled(order, order.held_cancel_reason or "canceled_at_venue"))
        elif msg.status is S.REJECTED:
            self._put(attrs.evolve(order, status=S.REJECTED))
            out.append(self._rejected(order, "rejected_at_venue"))
        return out

    def on_timer_tick(self, msg: TimerTick) -> list[Any]:
        now = self._now()
        ack_ns = self.config.ack_timeout_ms * _MS
        query_ns = self.config.query_interval_ms * _MS
        out: list[Any] = []
        for order in self.open_orders():
            coid = order.client_order_id
            if order.status in AWAITING and now - order.awaiting_since_ns >= ack_ns:
                self._counts["timeouts"] += 1
                self._put(attrs.evolve(order, status=S.UNKNOWN, last_query_ns=now))
                out.append(OrderTimedOut(symbol=self.ctx.symbol, client_order_id=coid, action_id=order.action_id, ts_event_ns=now))
                out.append(QueryOrder(symbol=self.ctx.symbol, client_order_id=coid, ts_event_ns=now))
            elif order.status is S.UNKNOWN and (order.last_query_ns is None or now - order.last_query_ns >= query_ns):
                self._put(attrs.evolve(order, last_query_ns=now))
                out.append(QueryOrder(symbol=self.ctx.symbol, client_order_id=coid, ts_event_ns=now))
        return out + self._reconcile_on_tick(now, ack_ns)

    # -- reconciliation ---------------------------------------------------------------------
    def on_reconcile(self, msg: Reconcile) -> list[Any]:
        return self._start_round(msg.reason or "requested")

    def on_position_reported(self, msg: PositionReported) -> list[Any]:
        """Compare the venue's records with ours and act on the verdict (see ``actors.executor.reconcile``)."""
        now = self._now()
        attempt = self._round.attempt if self._round is not None else 0
        verdict = compare(local_qty=self._local_qty, orders=self._orders, report=msg, policy=self.policy, attempt=attempt)
        if verdict.outcome is None:
            self._counts["reconcile_deferrals"] += 1
            if self._round is None:
                self._round = _Round(reason="unsolicited report", asked_ns=now)
            self._round.attempt = attempt + 1
            self._round.retry_at_ns = now + self.config.query_interval_ms * _MS
            self.ctx.log.info("reconciliation undecided (attempt {}): {}", attempt + 1, verdict.detail)
            return []
        self._round = None
        self._last_reconcile_ns = now
        self._counts["reconciliations"] += 1
        self._last_outcome = verdict.outcome.value
        local = self._local_qty
        out: list[Any] = [RequestCancel(symbol=self.ctx.symbol, client_order_id=c, ts_event_ns=now) for c in verdict.cancel]
        if verdict.outcome is Outcome.SYNC_LOCAL:
            self._local_qty = msg.qty
        elif verdict.outcome is Outcome.EMERGENCY_CLOSE:
            out += self._emergency_close(verdict.close_qty, msg.ts_event_ns, now)
        if verdict.outcome is not Outcome.NONE:
            self.ctx.log.warning("reconciliation {}: {}", verdict.outcome.value, verdict.detail)
        out.append(
            ReconciliationCompleted(
                symbol=self.ctx.symbol,
                outcome=verdict.outcome.value,
                local_qty=local,
                venue_qty=msg.qty,
                venue_avg_price=msg.avg_price,
                detail=verdict.detail,
                ts_event_ns=now,
            )
        )
        return out

    def _start_round(self, reason: str) -> list[Any]:
        now = self._now()
        self._round = _Round(reason=reason, asked_ns=now)
        return self._ask_venue(now)

    def _ask_venue(self, now: int) -> list[Any]:
        """Query every order not seen finished, then the position: the venue answers in this order."""
        out: list[Any] = []
        for order in self.open_orders():
            if order.status is S.UNKNOWN:
                self._put(attrs.evolve(order, last_query_ns=now))
            out.append(QueryOrder(symbol=self.ctx.symbol, client_order_id=order.client_order_id, ts_event_ns=now))
        out.append(QueryPosition(symbol=self.ctx.symbol, ts_event_ns=now))
        return out

    def _reconcile_on_tick(self, now: int, ack_ns: int) -> list[Any]:
        rnd = self._round
        if rnd is not None:
            if rnd.retry_at_ns is not None and now >= rnd.retry_at_ns:
                rnd.retry_at_ns, rnd.asked_ns = None, now
                return self._ask_venue(now)
            if rnd.retry_at_ns is None and now - rnd.asked_ns >= ack_ns:
                rnd.asked_ns = now  # no answer: ask again, the round stays open
                return self._ask_venue(now)
            return []
        interval = self.policy.reconcile_interval_ms * _MS
        if interval and now - self._last_reconcile_ns >= interval:
            return self._start_round("periodic")
        return []

    def _emergency_close(self, venue_qty: Decimal, report_ns: int, now: int) -> list[Any]:
        """A reduce-only market order for the venue's whole position, with an id derived from the report."""
        action_id = f"reconcile:{self.ctx.symbol}:{report_ns}"
        coid = client_order_id(self.ctx.run_id, action_id)
        if coid in self._orders:
            self._counts["duplicates_suppressed"] += 1
            return [DuplicateOrderSuppressed(symbol=self.ctx.symbol, client_order_id=coid, action_id=action_id, ts_event_ns=now)]
        side = Side.SELL if venue_qty > 0 else Side.BUY
        qty = abs(venue_qty)
        self._put(
            TrackedOrder(
                client_order_id=coid,
                action_id=action_id,
                intent=OrderIntent.EXIT,
                side=side,
                qty=qty,
                order_type=OrderType.MARKET,
                limit_price=None,
                reduce_only=True,
                status=S.PENDING_NEW,
                sent_ns=now,
                awaiting_since_ns=now,
                emergency=True,
            )
        )
        return [
            PlaceOrder(
                symbol=self.ctx.symbol,
                client_order_id=coid,
                side=side,
                qty=qty,
                order_type=OrderType.MARKET,
                limit_price=None,
                reduce_only=True,
                ts_event_ns=now,
            )
        ]

    # -- internals --------------------------------------------------------------------------
    def _apply_fill(self, order: TrackedOrder, fill: OrderFilled) -> list[Any]:
        filled = order.filled_qty + fill.qty
        order = attrs.evolve(order, filled_qty=filled)
        if not order.emergency:
            self._local_qty += fill.qty if fill.side is Side.BUY else -fill.qty
        if order.is_live:
            if filled >= order.qty:
                order = attrs.evolve(order, status=S.FILLED)
            elif fill.cum_qty > filled:
                # The venue filled more than we saw: earlier fills were lost with a dropped answer.
                # Never assume them: query the order, its record brings what is missing.
                self._counts["fill_gaps"] += 1
                order = attrs.evolve(order, status=S.UNKNOWN, last_query_ns=None)
            elif fill.leaves_qty == 0:
                order = attrs.evolve(order, status=S.FILLED)
            elif order.status is not S.PENDING_CANCEL:
                order = attrs.evolve(order, status=S.PARTIALLY_FILLED)
        if order.status is S.UNKNOWN and fill.cum_qty > filled:
            # Position sees our view of the order (still working), not the venue's "done": the
            # fills the query recovers complete it, instead of arriving after it thought it done.
            fill = evolve_message(fill, cum_qty=filled, leaves_qty=order.qty - filled)
        out: list[Any] = [fill]
        held = order.held_cancel_filled_qty
        if held is not None and filled >= held and order.status is not S.FILLED:
            order = attrs.evolve(order, status=S.CANCELED)
            out.append(self._canceled(order, order.held_cancel_reason))
        self._put(order)
        return out

    def _reconcile_fill(
        self, order: TrackedOrder, msg: OrderStatusReported, missing: Decimal, price: Decimal
    ) -> list[Any]:
        fill_id = f"{order.client_order_id}:recon:{msg.filled_qty}"
        self._fill_ids[fill_id] = order.client_order_id
        self._put(attrs.evolve(order, reconciled_qty=order.reconciled_qty + missing, fill_ids=order.fill_ids + (fill_id,)))
        fill = OrderFilled(
            symbol=msg.symbol,
            client_order_id=order.client_order_id,
            venue_order_id=msg.venue_order_id,
            fill_id=fill_id,
            side=order.side,
            qty=missing,
            price=price,
            fee=Decimal("0"),
            is_maker=False,
            cum_qty=msg.filled_qty,
            leaves_qty=Decimal("0") if msg.status is S.FILLED else order.qty - msg.filled_qty,
            ts_event_ns=self._now(),
            action_id=order.action_id,
        )
        return self._apply_fill(self._orders[order.client_order_id], fill)

    def _canceled(self, order: TrackedOrder, reason: str) -> OrderCanceled:
        return OrderCanceled(
            symbol=self.ctx.symbol,
            client_order_id=order.client_order_id,
            filled_qty=order.filled_qty,
            reason=reason,
            ts_event_ns=self._now(),
            action_id=order.action_id,
        )

    def _rejected(self, order: TrackedOrder, reason: str) -> OrderRejected:
        return OrderRejected(
            symbol=self.ctx.symbol, client_order_id=order.client_order_id, reason=reason, ts_event_ns=self._now(), action_id=order.action_id
        )

    def _known(self, coid: str) -> TrackedOrder | None:
        order = self._orders.get(coid)
        if order is None:
            self._counts["unknown_answers"] += 1
            self.ctx.log.warning("venue answer for unknown client order id {}", coid)
        return order

    def _live_order(self, coid: str) -> TrackedOrder | None:
        """The order if it is still live; answers about unknown or finished orders are counted."""
        order = self._known(coid)
        if order is not None and not order.is_live:
            self._counts["stale_answers"] += 1
            return None
        return order

    def _put(self, order: TrackedOrder) -> None:
        if self._undo is not None:
            self._undo.setdefault(order.client_order_id, self._orders.get(order.client_order_id))
        self._orders[order.client_order_id] = order
        if order.is_live:
            self._live.setdefault(order.client_order_id)
        else:
            self._live.pop(order.client_order_id, None)
            if len(self._orders) - len(self._live) > SETTLED_ORDERS_KEPT + SETTLED_PRUNE_BATCH:
                self._forget(self._oldest_settled(len(self._orders) - len(self._live) - SETTLED_ORDERS_KEPT))

    def _oldest_settled(self, n: int) -> list[str]:
        out: list[str] = []
        for coid, order in self._orders.items():
            if len(out) >= n:
                break
            if not order.is_live:
                out.append(coid)
        return out

    def _forget(self, coids: Iterable[str]) -> None:
        """Drop settled orders past the retention (the store keeps the same ones)."""
        for coid in coids:
            if self._undo is not None:
                self._undo.setdefault(coid, self._orders[coid])
            order = self._orders.pop(coid)
            for fill_id in order.fill_ids:
                self._fill_ids.pop(fill_id, None)

    def _now(self) -> int:
        return self.ctx.clock.now_ns()


def _working(order: TrackedOrder) -> OrderStatus:
    return S.PARTIALLY_FILLED if order.filled_qty > 0 else S.NEW
