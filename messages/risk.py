"""Risk commands and events: trading states and the kill switch."""

from __future__ import annotations

import unicodedata

from arbor.messages.base import TradingState, message

ALL_SYMBOLS = "*"


def has_visible_text(text: str) -> bool:
    """Whether ``text`` has at least one visible character: not only whitespace, separators or
    invisible format/control characters (a zero-width space is not a reason)."""
    return any(unicodedata.category(c)[0] not in "ZC" for c in text)


@message("SetTradingState")
class SetTradingState:
    """Operator or supervision command: set a symbol's (or ``"*"``, global) trading state."""

    scope: str
    state: TradingState
    who: str
    reason: str


@message("TradingStateChanged")
class TradingStateChanged:
    scope: str
    old: TradingState
    new: TradingState
    who: str
    reason: str
    ts_event_ns: int


@message("EffectiveTradingStateChanged")
class EffectiveTradingStateChanged:
    """Risk -> Regime(S): the state that binds ``symbol`` now, the stricter of its own scope, the
    global one and the kill switch (engaged: at least REDUCING); what its strategy's context shows.

    Also sent unchanged when a consumer may have lost it (at start, after the symbol recovered)."""

    symbol: str
    state: TradingState
    reason: str
    ts_event_ns: int


@message("EngageKillSwitch")
class EngageKillSwitch:
    who: str
    reason: str


@message("ResetKillSwitch")
class ResetKillSwitch:
    """Only an explicit reset with a non-empty reason releases the latch."""

    who: str
    reason: str


@message("KillSwitchEngaged")
class KillSwitchEngaged:
    who: str
    reason: str
    ts_event_ns: int


@message("KillSwitchReset")
class KillSwitchReset:
    who: str
    reason: str
    ts_event_ns: int


@message("KillSwitchResetRefused")
class KillSwitchResetRefused:
    who: str
    reason: str
    ts_event_ns: int
