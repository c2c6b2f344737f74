"""Runtime and supervision messages."""

from __future__ import annotations

from arbor.messages.base import message


@message("TimerTick")
class TimerTick:
    """A clock tick delivered by the runtime (an external input: journaled, replayable)."""

    ts_event_ns: int


@message("ActorFailed")
class ActorFailed:
    """Supervision event: a logical actor raised, hung or died while handling ``message_tag``."""

    actor_id: str
    symbol: str
    kind: str  # "exception" | "hang" | "died"
    error: str
    message_tag: str
    ts_event_ns: int


@message("ActorRestarted")
class ActorRestarted:
    actor_id: str
    symbol: str
    restarts: int
    ts_event_ns: int


@message("SymbolRecovered")
class SymbolRecovered:
    """Supervision event: the symbol's subtree is restarted, restored, reconciled and warm."""

    symbol: str
    ts_event_ns: int


@message("DeadLetter")
class DeadLetter:
    """A message its receiver has no handler for (or no receiver at all)."""

    receiver: str
    message_tag: str
    ts_event_ns: int


@message("SymbolQuarantined")
class SymbolQuarantined:
    """Supervision event: the symbol failed past its restart intensity; it stays down until released."""

    symbol: str
    reason: str
    ts_event_ns: int


@message("ReleaseSymbol")
class ReleaseSymbol:
    """Operator command: restart a quarantined symbol's subtree."""

    symbol: str
    who: str
    reason: str


@message("SymbolReleased")
class SymbolReleased:
    symbol: str
    who: str
    reason: str
    ts_event_ns: int


@message("PoisonMessageQuarantined")
class PoisonMessageQuarantined:
    """A message crashed its actor again after a restart; it is set aside, not retried forever."""

    actor_id: str
    symbol: str
    message_tag: str
    msg_id: int
    error: str
    ts_event_ns: int


@message("AnnounceState")
class AnnounceState:
    """Cluster -> Position(S), Risk at start: emit your current (restored) state as the events
    every consumer learns from (PositionChanged; TradingStateChanged, KillSwitchEngaged), so the
    strategy, the Arbitrator, the operator view, metrics and the trade log start from it."""

    reason: str
