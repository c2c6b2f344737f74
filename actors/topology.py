"""Who receives what: the routing table of the decision path.

Actor ids read like paths: ``"BTCUSDT/collector"`` for per-symbol actors, ``"risk"`` and
``"arbitrator"`` for the singletons. A logic class returns bare messages; the runtime looks up
``ROUTES[(sender_role, type(msg))]`` and delivers a copy to each receiver, formatting ``{symbol}``
with the message's ``symbol`` field (or the sender's symbol). Every routed message is also shown
to the runtime's observers (journal, metrics, summary), so event-only messages have no receivers.

Data flow (ARCHITECTURE.md): venue -> collector -> feature -> regime -> arbitrator -> risk ->
position -> executor -> venue, with acks/fills back through executor to position, and position
changes to risk, arbitrator and regime.
"""

from __future__ import annotations

from arbor.messages import (
    Action,
    ActionApproved,
    ActionDenied,
    ActionNotApplicable,
    ActorFailed,
    ActorRestarted,
    AssumptionHealthChanged,
    CancelOpenOrders,
    CancelOrder,
    DecodeFailure,
    DuplicateOrderSuppressed,
    EffectiveTradingStateChanged,
    FeatureSnapshot,
    KillSwitchEngaged,
    KillSwitchReset,
    KillSwitchResetRefused,
    MandateSet,
    OrderAccepted,
    OrderCanceled,
    OrderFilled,
    OrderRejected,
    OrderStatusReported,
    OrderTimedOut,
    PlaceOrder,
    PoisonMessageQuarantined,
    PositionChanged,
    PositionReported,
    QueryOrder,
    QueryPosition,
    RawMarketEvent,
    Reconcile,
    ReconciliationCompleted,
    RegimeChanged,
    RequestCancel,
    SubmitOrder,
    SymbolQuarantined,
    SymbolRecovered,
    SymbolReleased,
    TradingStateChanged,
)

SYMBOL_ROLES: tuple[str, ...] = ("collector", "feature", "regime", "position", "executor", "venue")
SINGLETON_ROLES: tuple[str, ...] = ("risk", "arbitrator")

ROUTES: dict[tuple[str, type], tuple[str, ...]] = {
    ("collector", RawMarketEvent): ("{symbol}/feature", "{symbol}/venue"),
    ("collector", DecodeFailure): (),
    ("feature", FeatureSnapshot): ("{symbol}/regime",),
    ("regime", MandateSet): ("arbitrator",),
    ("regime", RegimeChanged): (),
    ("regime", AssumptionHealthChanged): ("risk",),
    ("arbitrator", Action): ("risk",),
    ("risk", ActionApproved): ("{symbol}/position",),
    ("risk", ActionDenied): ("arbitrator",),
    ("risk", CancelOpenOrders): ("{symbol}/executor",),
    ("risk", TradingStateChanged): ("arbitrator",),
    ("risk", EffectiveTradingStateChanged): ("{symbol}/regime",),  # what the symbol's strategy sees
    ("risk", KillSwitchEngaged): ("arbitrator",),
    ("risk", KillSwitchReset): ("arbitrator",),
    ("risk", KillSwitchResetRefused): (),
    ("position", SubmitOrder): ("{symbol}/executor",),
    ("position", CancelOrder): ("{symbol}/executor",),
    ("position", PositionChanged): ("risk", "arbitrator", "{symbol}/regime"),
    ("position", ActionNotApplicable): ("arbitrator", "risk"),
    ("executor", PlaceOrder): ("{symbol}/venue",),
    ("executor", RequestCancel): ("{symbol}/venue",),
    ("executor", QueryOrder): ("{symbol}/venue",),
    ("executor", OrderAccepted): ("{symbol}/position",),
    ("executor", OrderFilled): ("{symbol}/position", "{symbol}/regime"),  # the regime: fill slippage
    ("executor", OrderRejected): ("{symbol}/position",),
    ("executor", OrderCanceled): ("{symbol}/position",),
    ("executor", OrderTimedOut): (),
    ("executor", DuplicateOrderSuppressed): (),
    ("venue", OrderAccepted): ("{symbol}/executor",),
    ("venue", OrderFilled): ("{symbol}/executor",),
    ("venue", OrderRejected): ("{symbol}/executor",),
    ("venue", OrderCanceled): ("{symbol}/executor",),
    ("venue", OrderStatusReported): ("{symbol}/executor",),
    ("executor", QueryPosition): ("{symbol}/venue",),
    ("venue", PositionReported): ("{symbol}/executor",),
    ("executor", ReconciliationCompleted): ("{symbol}/position", "risk"),
    ("position", ReconciliationCompleted): ("risk",),  # Position's own check against the venue found a difference
    ("supervisor", ActorFailed): ("risk",),
    ("supervisor", ActorRestarted): (),
    ("supervisor", SymbolRecovered): ("risk",),
    ("supervisor", SymbolQuarantined): ("risk",),
    ("supervisor", SymbolReleased): ("risk",),
    ("supervisor", PoisonMessageQuarantined): (),
    ("supervisor", Reconcile): ("{symbol}/executor",),
}


def role_of(actor_id: str) -> str:
    """``"BTCUSDT/executor"`` -> ``"executor"``; ``"risk"`` -> ``"risk"``."""
    return actor_id.rsplit("/", 1)[-1]


def symbol_of(actor_id: str) -> str:
    """``"BTCUSDT/executor"`` -> ``"BTCUSDT"``; singletons -> ``""``."""
    head, sep, _ = actor_id.rpartition("/")
    return head if sep else ""


def receivers(sender_id: str, msg: object) -> tuple[str, ...] | None:
    """Receiver ids of ``msg`` sent by ``sender_id``; ``None`` when the route is not declared."""
    templates = ROUTES.get((role_of(sender_id), type(msg)))
    if templates is None:
        return None
    if not templates:
        return ()
    symbol = getattr(msg, "symbol", None) or symbol_of(sender_id)
    return tuple(t.format(symbol=symbol) if "{" in t else t for t in templates)
