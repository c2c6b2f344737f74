"""Position(S): the strict state machine of one symbol's position and the orders that move it.

Runs on whatever thread or process the runtime gives the symbol's position actor; one message at
a time, no I/O. State is a validated ``PositionSnapshot`` replaced on every change, so every
change is checked against the invariants and can be persisted and restored as is.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import attrs
from arbor.actors.base import ActorContext, ActorLogic
from arbor.actors.position.snapshot import (
    CLOSING,
    ENTERING,
    FLAT,
    OPEN,
    REDUCING,
    ZERO,
    PositionSnapshot,
    UnexpectedFill,
    check_transition,
)
from arbor.messages import (
    Action,
    ActionApproved,
    ActionNotApplicable,
    AnnounceState,
    CancelOrder,
    Direction,
    MandateKind,
    OrderAccepted,
    OrderCanceled,
    OrderFilled,
    OrderIntent,
    OrderRejected,
    OrderType,
    PositionChanged,
    PositionState,
    ReconciliationCompleted,
    Side,
    SubmitOrder,
)
from arbor.messages.base import evolve_message

_INTENT_OF_STATE = {ENTERING: OrderIntent.ENTRY, REDUCING: OrderIntent.REDUCE, CLOSING: OrderIntent.EXIT}


class PositionLogic(ActorLogic):
    """Turns approved actions into orders and venue answers into position changes."""

    ROLE = "position"

    def __init__(self, ctx: ActorContext, entry_order_type: OrderType = OrderType.MARKET) -> None:
        super().__init__(ctx)
        # LIMIT entries rest at the decision's mark price (maker fees, may not fill); exits and
        # reductions are always MARKET: getting out must not wait for the market to come back.
        self._entry_order_type = entry_order_type
        self._pos = PositionSnapshot(state=FLAT)
        self._fills = 0
        self._not_applicable = 0
        self._stale_order_events = 0

    # -- persistence ------------------------------------------------------------------------
    def snapshot(self) -> PositionSnapshot:
        return self._pos

    def restore(self, snapshot: PositionSnapshot) -> None:
        """Replace the state with a stored one (supervision rebuilds a restarted actor this way)."""
        if not isinstance(snapshot, PositionSnapshot):
            raise TypeError(f"expected PositionSnapshot, got {type(snapshot).__name__}")
        self._pos = snapshot

    def on_announce_state(self, msg: AnnounceState) -> list[Any]:
        """The current (at start: restored) position as a PositionChanged, for every consumer
        that learns the position from the traffic (strategy, Risk, Arbitrator, operator view,
        metrics, trade log). The cause is the announcement's reason (``"start"``)."""
        return [self._changed(self._pos, msg.reason)]

    # -- decisions --------------------------------------------------------------------------
    def on_action_approved(self, msg: ActionApproved) -> list[Any]:
        action = msg.action
        pos = self._pos
        kind = action.kind
        if kind in (MandateKind.HOLD, MandateKind.BLOCK):
            return []
        if kind is MandateKind.ENTRY and pos.state is FLAT and action.direction is not None and action.qty > 0:
            return self._submit(action, ENTERING, action.direction, action.qty)
        if kind is MandateKind.REDUCE and pos.state is OPEN and action.qty > 0:
            return self._submit(action, REDUCING, pos.held_direction, min(action.qty, pos.qty))
        if kind is MandateKind.EXIT:
            if pos.state is OPEN:
                return self._submit(action, CLOSING, pos.held_direction, pos.qty)
            if pos.state is REDUCING and pos.live_order_qty - pos.order_filled == pos.qty:
                # The live reduce order already takes the position to zero: it becomes the close.
                return self._change(attrs.evolve(pos, state=CLOSING), "exit_adopts_reduce")
            if pos.state in (ENTERING, REDUCING):
                # Stay put until the venue answers; the fills or the cancel decide the next state.
                cancel = CancelOrder(
                    symbol=self.ctx.symbol, action_id=pos.action_id, reason=f"exit:{action.action_id}", ts_event_ns=self._now()
                )
                return [cancel]
        self._not_applicable += 1
        return [
            ActionNotApplicable(
                symbol=self.ctx.symbol, action_id=action.action_id, kind=kind, state=pos.state.value, ts_event_ns=self._now()
            )
        ]

    def _submit(self, action: Action, state: PositionState, direction: Direction, qty: Decimal) -> list[Any]:
        pos = self._pos
        opening = state is ENTERING
        order = SubmitOrder(
            symbol=self.ctx.symbol,
            action_id=action.action_id,
            intent=_INTENT_OF_STATE[state],
            side=Side.opening(direction) if opening else Side.closing(direction),
            qty=qty,
            order_type=self._entry_order_type if opening else OrderType.MARKET,
            limit_price=action.mark_price if opening and self._entry_order_type is OrderType.LIMIT else None,
            reduce_only=not opening,
            ts_event_ns=self._now(),
        )
        new = attrs.evolve(pos, state=state, direction=direction, action_id=action.action_id, order_qty=qty, order_filled=ZERO)
        return [order, *self._change(new, f"{action.kind.value.lower()}_approved")]

    # -- venue answers (forwarded by the executor with action_id filled in) -----------------
    def on_order_accepted(self, msg: OrderAccepted) -> list[Any]:
        return []

    def on_order_filled(self, msg: OrderFilled) -> list[Any]:
        pos = self._pos
        if pos.order_qty is None or msg.action_id != pos.action_id:
            raise UnexpectedFill(f"fill {msg.fill_id} of action {msg.action_id!r} but live order is {pos.action_id!r} in {pos.state.value}")
        if msg.side is not self._order_side() or msg.qty <= 0 or pos.order_filled + msg.qty > pos.order_qty:
            raise UnexpectedFill(f"fill {msg.fill_id} ({msg.side.value} {msg.qty}) does not fit the live order {pos!r}")
        self._fills += 1
        if pos.state is ENTERING:
            qty = pos.qty + msg.qty
            avg: Decimal | None = msg.price if pos.avg_entry_price is None else (pos.avg_entry_price * pos.qty + msg.price * msg.qty) / qty
            pnl = pos.realized_pnl
        else:
            qty = pos.qty - msg.qty
            pnl = pos.realized_pnl + (msg.price - pos.entry_price) * msg.qty * pos.held_direction.sign
            avg = pos.avg_entry_price if qty else None
        filled = pos.order_filled + msg.qty
        fees = pos.fees + msg.fee
        if filled == pos.order_qty or msg.leaves_qty == 0:
            return self._order_over("filled", qty=qty, avg_entry_price=avg, realized_pnl=pnl, fees=fees)
        new = attrs.evolve(pos, order_filled=filled, qty=qty, avg_entry_price=avg, realized_pnl=pnl, fees=fees)
        return self._change(new, "partial_fill")

    def on_order_rejected(self, msg: OrderRejected) -> list[Any]:
        if not self._is_live(msg.action_id):
            return []
        return self._order_over(f"rejected:{msg.reason}")

    def on_order_canceled(self, msg: OrderCanceled) -> list[Any]:
        if not self._is_live(msg.action_id):
            return []
        if msg.filled_qty != self._pos.order_filled:
            self.ctx.log.warning(
                "cancel of {} reports filled {} but position saw {}", msg.action_id, msg.filled_qty, self._pos.order_filled
            )
        return self._order_over(f"canceled:{msg.reason}")

    # -- reconciliation (forwarded by the executor) -----------------------------------------
    def on_reconciliation_completed(self, msg: ReconciliationCompleted) -> list[Any]:
        """Check this position itself against the venue the executor just compared with, and repair it.

        The executor compares only what it forwarded; a venue answer lost between it and here (a
        poison fill, say) leaves this position wrong while the executor agrees. So, on NONE and
        SYNC_LOCAL:

        - with no live order, a position that differs from the venue's quantity adopts it (the
          transition table is bypassed: FLAT -> OPEN and OPEN -> FLAT are legal here; realized
          PnL and fees stay as they were). After an executor's NONE this position also reports
          its own ``SYNC_LOCAL``, so nobody is told "agree" about a position that did not;
        - with a live order, its own answers will move the position, so nothing is adopted, but
          a position that differs from what the executor forwarded lost one of them: it reports
          ``DRIFT_UNRESOLVED`` (the kill switch engages; an operator decides).

        Other outcomes change nothing here (an emergency close is the executor's own order and is
        reconciled again when it ends).
        """
        pos = self._pos
        if msg.outcome not in ("NONE", "SYNC_LOCAL"):
            return []
        if pos.order_qty is not None:
            if pos.signed_qty == msg.local_qty:
                return []
            detail = f"position {pos.signed_qty} differs from the executor's {msg.local_qty} with a live order"
            self.ctx.log.error("reconciliation of {}: {}", msg.symbol, detail)
            return [evolve_message(msg, outcome="DRIFT_UNRESOLVED", local_qty=pos.signed_qty, detail=detail)]
        qty = abs(msg.venue_qty)
        if qty and msg.venue_avg_price is None:
            self.ctx.log.error("reconciliation of {} reports {} without an average price", msg.symbol, msg.venue_qty)
            return []
        if msg.outcome == "NONE" and pos.signed_qty == msg.venue_qty:
            return []
        direction = None if not qty else (Direction.LONG if msg.venue_qty > 0 else Direction.SHORT)
        new = attrs.evolve(
            pos,
            state=OPEN if qty else FLAT,
            direction=direction,
            qty=qty,
            avg_entry_price=msg.venue_avg_price if qty else None,
        )
        if new == pos:
            return []
        self.ctx.log.warning("position adopted from the venue: {} -> {} {}", pos.signed_qty, new.signed_qty, new.avg_entry_price)
        self._pos = new
        out: list[Any] = [self._changed(new, "reconciled")]
        if msg.outcome == "NONE":
            detail = f"position adopted venue qty {msg.venue_qty} (position had {pos.signed_qty}; executor agreed)"
            out.append(evolve_message(msg, outcome="SYNC_LOCAL", local_qty=pos.signed_qty, detail=detail))
        return out

    # -- internals --------------------------------------------------------------------------
    def _is_live(self, action_id: str) -> bool:
        """Whether ``action_id`` names the live order; a late answer for an old one is counted."""
        if self._pos.order_qty is not None and action_id == self._pos.action_id:
            return True
        self._stale_order_events += 1
        return False

    def _order_over(self, cause: str, **books: Any) -> list[Any]:
        """The live order is done: settle on OPEN with quantity left, FLAT without.

        ``books`` are the position's new qty/price/PnL/fees, applied together with the state so
        that no half-updated snapshot is ever built.
        """
        pos = self._pos
        target = OPEN if books.get("qty", pos.qty) > 0 else FLAT
        direction = pos.direction if target is OPEN else None
        new = attrs.evolve(pos, state=target, direction=direction, order_qty=None, order_filled=ZERO, **books)
        return self._change(new, cause)

    def _change(self, new: PositionSnapshot, cause: str) -> list[Any]:
        if new.state is not self._pos.state:
            check_transition(self._pos.state, new.state)
        self._pos = new
        return [self._changed(new, cause)]

    def _changed(self, new: PositionSnapshot, cause: str) -> PositionChanged:
        return PositionChanged(
            symbol=self.ctx.symbol,
            state=new.state,
            direction=new.direction,
            qty=new.qty,
            avg_entry_price=new.avg_entry_price,
            realized_pnl=new.realized_pnl,
            fees=new.fees,
            ts_event_ns=self._now(),
            action_id=new.action_id,
            cause=cause,
        )

    def _order_side(self) -> Side:
        pos = self._pos
        return Side.opening(pos.held_direction) if pos.state is ENTERING else Side.closing(pos.held_direction)

    def _now(self) -> int:
        return self.ctx.clock.now_ns()

    def stats(self) -> dict[str, Any]:
        pos = self._pos
        return {
            "state": pos.state.value,
            "qty": pos.qty,
            "realized_pnl": pos.realized_pnl,
            "fees": pos.fees,
            "fills": self._fills,
            "not_applicable": self._not_applicable,
            "stale_order_events": self._stale_order_events,
        }
