"""The venue gate of one symbol: Risk's rule "no new risk while the symbol is not ACTIVE", applied
synchronously on the symbol's own dispatcher thread, at the boundary Position -> venue.

Risk moves a failed symbol to REDUCING/HALTED when it hears ``ActorFailed``, but Risk may run on
another thread or process: approvals and entry orders already on their way would slip through in
between. The gate closes on the failure itself and refuses them where they arrive:

- an approved ENTRY for the symbol's Position is answered ``ActionNotApplicable`` (Risk releases
  its reservation, the Arbitrator its slot);
- an entry order (``PlaceOrder`` that is not reduce-only) for the venue is answered
  ``OrderRejected(reason="symbol_recovering")``; reduce-only orders pass: getting out never waits.

It opens again only when the symbol may trade: its executor has reconciled with the venue and its
features are warm. Supervision decides *when* to close it (a failure); this module decides *what*
an entry is, how it is refused and what "ready to trade" means. Runs on the group's thread; no I/O.
"""

from __future__ import annotations

from typing import Any

from arbor.messages import ActionApproved, ActionNotApplicable, Envelope, MandateKind, OrderRejected, PlaceOrder


class SymbolGate:
    """Refuses one symbol's entries while closed (see the module docstring)."""

    def __init__(self, symbol: str) -> None:
        self.symbol = symbol
        self.closed = False
        self.entries_blocked = 0

    def close(self) -> None:
        self.closed = True

    def open(self) -> None:
        self.closed = False

    def refusal(self, env: Envelope, now_ns: int) -> list[Any] | None:
        """The answer that replaces delivering ``env`` (to be emitted as its receiver), or None to deliver it."""
        if not self.closed:
            return None
        payload = env.payload
        if type(payload) is PlaceOrder and not payload.reduce_only:
            # An entry decided before the failure but not yet sent: the venue boundary refuses it.
            self.entries_blocked += 1
            return [OrderRejected(symbol=self.symbol, client_order_id=payload.client_order_id,
                                  reason="symbol_recovering", ts_event_ns=now_ns)]
        if type(payload) is ActionApproved and payload.action.kind is MandateKind.ENTRY:
            self.entries_blocked += 1
            return [ActionNotApplicable(symbol=self.symbol, action_id=payload.action.action_id, kind=MandateKind.ENTRY,
                                        state="RECOVERING", ts_event_ns=now_ns)]
        return None

    @staticmethod
    def ready_to_trade(reconciled: bool, feature: Any) -> bool:
        """A recovering symbol may trade again once reconciled with the venue and its features are warm."""
        return reconciled and bool(getattr(feature, "warm", True))
