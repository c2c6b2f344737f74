"""Position state as seen by the rest of the system."""

from __future__ import annotations

from decimal import Decimal

from arbor.messages.base import Direction, PositionState, message

RESTORED = "restored"  # PositionChanged.cause: re-announced from a restored store by a restarted process


@message("PositionChanged")
class PositionChanged:
    """Emitted on every state or quantity change. ``qty`` is unsigned; ``direction`` gives the sign.

    ``realized_pnl`` and ``fees`` are cumulative since the actor started (quote currency).
    """

    symbol: str
    state: PositionState
    direction: Direction | None
    qty: Decimal
    avg_entry_price: Decimal | None
    realized_pnl: Decimal
    fees: Decimal
    ts_event_ns: int
    action_id: str = ""
    cause: str = ""
