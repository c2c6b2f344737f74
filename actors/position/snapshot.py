"""The position's state as one validated value, and the table of legal state transitions."""

from __future__ import annotations

from decimal import Decimal

import attrs
from arbor.messages import Direction, PositionState

ZERO = Decimal("0")

FLAT = PositionState.FLAT
ENTERING = PositionState.ENTERING
OPEN = PositionState.OPEN
REDUCING = PositionState.REDUCING
CLOSING = PositionState.CLOSING

LEGAL_TRANSITIONS: frozenset[tuple[PositionState, PositionState]] = frozenset(
    {
        (FLAT, ENTERING),
        (ENTERING, OPEN),
        (ENTERING, FLAT),  # canceled or rejected with nothing filled
        (OPEN, REDUCING),
        (OPEN, CLOSING),
        (REDUCING, OPEN),  # reduce order over, quantity left
        (REDUCING, FLAT),  # reduce order took the quantity to zero
        (REDUCING, CLOSING),  # an EXIT adopts a reduce order that already flattens
        (CLOSING, FLAT),
        (CLOSING, OPEN),  # close order canceled or rejected with quantity left
    }
)

# States in which exactly one order of this position is live at the venue.
ORDER_STATES = frozenset({ENTERING, REDUCING, CLOSING})


class PositionError(Exception):
    """A position bug or an inconsistency between the position and its order flow."""


class IllegalTransition(PositionError):
    """A state change that the position state machine does not allow."""

    def __init__(self, old: PositionState, new: PositionState) -> None:
        super().__init__(f"illegal position transition {old.value} -> {new.value}")
        self.old = old
        self.new = new


class InvariantViolation(PositionError, ValueError):
    """A ``PositionSnapshot`` that describes an impossible position."""


class UnexpectedFill(PositionError):
    """A fill that matches no live order of this position, or does not fit it."""


def check_transition(old: PositionState, new: PositionState) -> None:
    """Raise ``IllegalTransition`` unless ``old -> new`` is an edge of the state machine."""
    if (old, new) not in LEGAL_TRANSITIONS:
        raise IllegalTransition(old, new)


@attrs.frozen(kw_only=True)
class PositionSnapshot:
    """Everything needed to rebuild a position; invariants are checked on construction.

    ``qty`` is unsigned, ``direction`` gives the sign. ``realized_pnl`` excludes ``fees``.
    ``order_qty``/``order_filled`` describe the one live order (ENTERING, REDUCING, CLOSING) of
    action ``action_id``; with no live order ``order_qty`` is None and ``action_id`` names the
    last action that changed the position.
    """

    state: PositionState
    direction: Direction | None = None
    qty: Decimal = ZERO
    avg_entry_price: Decimal | None = None
    realized_pnl: Decimal = ZERO
    fees: Decimal = ZERO
    action_id: str = ""
    order_qty: Decimal | None = None
    order_filled: Decimal = ZERO

    def __attrs_post_init__(self) -> None:
        problem = _problem(self)
        if problem:
            raise InvariantViolation(f"{problem}: {self!r}")

    @property
    def signed_qty(self) -> Decimal:
        return self.qty * self.direction.sign if self.direction else ZERO

    @property
    def held_direction(self) -> Direction:
        """The direction of a position that is not FLAT (every such state has one)."""
        if self.direction is None:
            raise PositionError(f"a {self.state.value} position has no direction")
        return self.direction

    @property
    def live_order_qty(self) -> Decimal:
        """The quantity of the live order (ENTERING, REDUCING, CLOSING have one)."""
        if self.order_qty is None:
            raise PositionError(f"a {self.state.value} position has no live order")
        return self.order_qty

    @property
    def entry_price(self) -> Decimal:
        """The average entry price of a position with quantity."""
        if self.avg_entry_price is None:
            raise PositionError("a position without quantity has no entry price")
        return self.avg_entry_price


def _problem(s: PositionSnapshot) -> str:
    """The first invariant ``s`` breaks, or ``""``."""
    if not isinstance(s.state, PositionState):
        return "state is not a PositionState"
    if s.qty < 0:
        return "qty is negative"
    if (s.avg_entry_price is None) != (s.qty == 0):
        return "avg_entry_price is set exactly when qty is not zero"
    if s.avg_entry_price is not None and s.avg_entry_price <= 0:
        return "avg_entry_price must be positive"
    if s.state is FLAT and (s.qty != 0 or s.direction is not None):
        return "FLAT has qty 0 and no direction"
    if s.state is not FLAT and s.direction is None:
        return f"{s.state.value} needs a direction"
    if s.state in (OPEN, REDUCING, CLOSING) and s.qty == 0:
        return f"{s.state.value} needs qty != 0"
    if s.state in ORDER_STATES:
        if s.order_qty is None or s.order_qty <= 0 or not s.action_id:
            return f"{s.state.value} needs a live order with a positive qty and an action_id"
        if not ZERO <= s.order_filled <= s.order_qty:
            return "order_filled must lie within 0..order_qty"
        if s.state is not ENTERING and s.order_qty - s.order_filled > s.qty:
            return "a reducing order may never flip the position"
    elif s.order_qty is not None or s.order_filled != 0:
        return f"{s.state.value} has no live order"
    return ""
