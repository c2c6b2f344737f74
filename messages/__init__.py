"""Every message of the system: frozen, keyword-only attrs classes (msgspec Structs for hot-path market data) with stable versioned tags."""

from arbor.messages.assumptions import AssumptionHealthChanged, AssumptionStatus
from arbor.messages.base import (
    Direction,
    MandateKind,
    MarketEventKind,
    MarketStruct,
    OrderIntent,
    OrderStatus,
    OrderType,
    PositionState,
    Regime,
    Side,
    TradingState,
    evolve_message,
    is_message_type,
    message,
    message_asdict,
    message_field_names,
    message_fields,
    struct_message,
)
from arbor.messages.codec import Codec, CodecError, UnknownMessageType
from arbor.messages.control import (
    ActorFailed,
    ActorRestarted,
    AnnounceState,
    DeadLetter,
    PoisonMessageQuarantined,
    ReleaseSymbol,
    SymbolQuarantined,
    SymbolRecovered,
    SymbolReleased,
    TimerTick,
)
from arbor.messages.decisions import (
    Action,
    ActionApproved,
    ActionDenied,
    ActionNotApplicable,
    Mandate,
    MandateSet,
    RegimeChanged,
)
from arbor.messages.envelope import Envelope
from arbor.messages.features import FeatureSnapshot
from arbor.messages.market import DecodeFailure, RawMarketEvent, VenuePayload
from arbor.messages.orders import (
    CancelOpenOrders,
    CancelOrder,
    DuplicateOrderSuppressed,
    OrderAccepted,
    OrderCanceled,
    OrderFilled,
    OrderRejected,
    OrderStatusReported,
    OrderTimedOut,
    PlaceOrder,
    PositionReported,
    QueryOrder,
    QueryPosition,
    Reconcile,
    ReconciliationCompleted,
    RequestCancel,
    SubmitOrder,
)
from arbor.messages.position import RESTORED, PositionChanged
from arbor.messages.registry import ALL_MESSAGE_TYPES
from arbor.messages.risk import (
    ALL_SYMBOLS,
    EffectiveTradingStateChanged,
    EngageKillSwitch,
    KillSwitchEngaged,
    KillSwitchReset,
    KillSwitchResetRefused,
    ResetKillSwitch,
    SetTradingState,
    TradingStateChanged,
)

__all__ = [
    "Direction", "MandateKind", "MarketEventKind", "OrderIntent", "OrderStatus", "OrderType", "PositionState",
    "Regime", "Side", "TradingState", "evolve_message", "message", "message_fields",
    "MarketStruct", "is_message_type", "message_asdict", "message_field_names", "struct_message",
    "Codec", "CodecError", "UnknownMessageType",
    "ActorFailed", "ActorRestarted", "AnnounceState", "DeadLetter", "PoisonMessageQuarantined", "ReleaseSymbol", "SymbolQuarantined",
    "SymbolRecovered", "SymbolReleased", "TimerTick",
    "Action", "ActionApproved", "ActionDenied", "ActionNotApplicable", "Mandate", "MandateSet", "RegimeChanged",
    "Envelope",
    "FeatureSnapshot",
    "DecodeFailure", "RawMarketEvent", "VenuePayload",
    "CancelOpenOrders", "CancelOrder", "DuplicateOrderSuppressed", "OrderAccepted", "OrderCanceled", "OrderFilled",
    "OrderRejected", "OrderStatusReported", "OrderTimedOut", "PlaceOrder", "PositionReported", "QueryOrder",
    "QueryPosition", "Reconcile", "ReconciliationCompleted", "RequestCancel", "SubmitOrder",
    "PositionChanged", "RESTORED",
    "ALL_MESSAGE_TYPES",
    "AssumptionHealthChanged", "AssumptionStatus",
    "ALL_SYMBOLS", "EffectiveTradingStateChanged", "EngageKillSwitch", "KillSwitchEngaged", "KillSwitchReset", "KillSwitchResetRefused",
    "ResetKillSwitch", "SetTradingState", "TradingStateChanged",
]
