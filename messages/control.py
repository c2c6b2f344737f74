"""Runtime and supervision messages."""

from __future__ import annotations

from messages.base import message


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
