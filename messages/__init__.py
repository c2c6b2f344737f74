"""Every message of the system: frozen, keyword-only attrs classes with stable versioned tags."""

from messages.base import (
    Direction,
    MandateKind,
    MarketEventKind,
    OrderIntent,
    OrderStatus,
    OrderType,
    PositionState,
    Regime,
    Side,
    TradingState,
    message,
)
from messages.codec import Codec, CodecError, UnknownMessageType
from messages.control import (
    ActorFailed,
    ActorRestarted,
    DeadLetter,
    PoisonMessageQuarantined,
    ReleaseSymbol,
    SymbolQuarantined,
    SymbolRecovered,
    SymbolReleased,
    TimerTick,
)
from messages.decisions import (
    Action,
    ActionApproved,
    ActionDenied,
    ActionNotApplicable,
    Mandate,
    MandateSet,
    RegimeChanged,
)
from messages.envelope import Envelope
from messages.features import FeatureSnapshot
from messages.market import DecodeFailure, RawMarketEvent, VenuePayload
from messages.orders import (
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
from messages.position import PositionChanged
from messages.registry import ALL_MESSAGE_TYPES
from messages.risk import (
    ALL_SYMBOLS,
    EngageKillSwitch,
    KillSwitchEngaged,
    KillSwitchReset,
    KillSwitchResetRefused,
    ResetKillSwitch,
    SetTradingState,
    TradingStateChanged,
)

__all__ = [name for name in dir() if not name.startswith("_")]
