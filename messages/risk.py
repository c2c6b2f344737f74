"""Risk commands and events: trading states and the kill switch."""

from __future__ import annotations

from arbor.messages.base import TradingState, message

ALL_SYMBOLS = "*"


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
