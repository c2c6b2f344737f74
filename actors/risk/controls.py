"""Trading states per symbol and global, and the latched kill switch."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import attrs
from arbor.messages import ALL_SYMBOLS, CancelOpenOrders, TradingState, TradingStateChanged

SUPERVISION = "supervision"
FEED = "feed"  # who the market feed acts as (adapters/venues/feed.py)


@attrs.define
class ScopeState:
    state: TradingState = TradingState.ACTIVE
    who: str = ""
    reason: str = ""
    ts_event_ns: int = 0


@attrs.define
class KillSwitch:
    engaged: bool = False
    who: str = ""
    reason: str = ""
    ts_event_ns: int = 0


@attrs.frozen(kw_only=True)
class ScopeRecord:
    """One scope's trading state as stored. ``restore_on_recovery`` is set exactly when supervision
    holds the scope down (``set_by_supervision``) and names the state recovery returns it to."""

    scope: str
    state: TradingState
    who: str
    reason: str
    ts_event_ns: int
    set_by_supervision: bool = False
    restore_on_recovery: TradingState | None = None


@attrs.frozen(kw_only=True)
class KillSwitchRecord:
    engaged: bool
    who: str
    reason: str
    ts_event_ns: int


@attrs.frozen(kw_only=True)
class QuarantineRecord:
    symbol: str
    reason: str
    ts_event_ns: int


@attrs.frozen(kw_only=True)
class ControlsSnapshot:
    """The kill-switch latch, every scope's trading state with who set it, and quarantined symbols."""

    kill: KillSwitchRecord
    scopes: tuple[ScopeRecord, ...]
    quarantines: tuple[QuarantineRecord, ...] = ()


class TradingControls:
    def __init__(self, symbols: Iterable[str]) -> None:
        self.scopes: dict[str, ScopeState] = {ALL_SYMBOLS: ScopeState()}
        for s in symbols:
            self.scopes[s] = ScopeState()
        self.kill = KillSwitch()
        # Symbols supervision put down, with the state to return to once they recover.
        self.restore_on_recovery: dict[str, TradingState] = {}
        # Symbols that failed past their restart intensity, until an operator releases them.
        self.quarantined: dict[str, QuarantineRecord] = {}
        # The scope records of the last snapshot; None once a scope or a supervision hold changed
        # (every such change goes through the methods below, which reset it).
        self._scopes_snap: tuple[ScopeRecord, ...] | None = None

    def snapshot(self, fresh: bool = False) -> ControlsSnapshot:
        """The controls' durable state; ``fresh``: rebuild the scope records instead of reusing them."""
        k = self.kill
        scopes = None if fresh else self._scopes_snap
        if scopes is None:
            back_of = self.restore_on_recovery
            scopes = self._scopes_snap = tuple(
                ScopeRecord(scope=scope, state=st.state, who=st.who, reason=st.reason, ts_event_ns=st.ts_event_ns,
                            set_by_supervision=scope in back_of, restore_on_recovery=back_of.get(scope))
                for scope, st in self.scopes.items()
            )
        return ControlsSnapshot(
            kill=KillSwitchRecord(engaged=k.engaged, who=k.who, reason=k.reason, ts_event_ns=k.ts_event_ns),
            scopes=scopes,
            quarantines=tuple(self.quarantined.values()),
        )

    def restore(self, snap: ControlsSnapshot) -> None:
        """Adopt stored states; configured symbols missing from the snapshot stay ACTIVE."""
        k = snap.kill
        self.kill = KillSwitch(k.engaged, k.who, k.reason, k.ts_event_ns)
        self.restore_on_recovery = {}
        for rec in snap.scopes:
            self.scopes[rec.scope] = ScopeState(rec.state, rec.who, rec.reason, rec.ts_event_ns)
            if rec.set_by_supervision:
                self.restore_on_recovery[rec.scope] = rec.restore_on_recovery or TradingState.ACTIVE
        self.quarantined = {q.symbol: q for q in snap.quarantines}
        self._scopes_snap = None

    @property
    def symbols(self) -> list[str]:
        return [s for s in self.scopes if s != ALL_SYMBOLS]

    def state(self, scope: str) -> TradingState:
        return self.scopes.get(scope, ScopeState()).state

    def effective(self, symbol: str) -> TradingState:
        """The most restrictive of global, symbol and the kill switch (engaged => at least REDUCING)."""
        floor = TradingState.REDUCING if self.kill.engaged else TradingState.ACTIVE
        return max((self.state(ALL_SYMBOLS), self.state(symbol), floor), key=lambda s: s.restriction)

    def set(self, scope: str, state: TradingState, who: str, reason: str, now_ns: int) -> list[Any]:
        """Move ``scope`` to ``state``; on a change, the event and the cancels the new state needs."""
        self._scopes_snap = None
        current = self.scopes.setdefault(scope, ScopeState())
        if who != SUPERVISION:
            # An operator's decision is the operator's to undo: recovery will not override it.
            self.restore_on_recovery.pop(scope, None)
        if current.state is state:
            if who != current.who and who != SUPERVISION:
                # The same state set again by someone else is now theirs: an operator pausing a
                # symbol the feed had already held back must not see the feed lift it later.
                self.scopes[scope] = ScopeState(state, who, reason, now_ns)
            return []
        old = current.state
        self.scopes[scope] = ScopeState(state, who, reason, now_ns)
        out: list[Any] = [TradingStateChanged(scope=scope, old=old, new=state, who=who, reason=reason, ts_event_ns=now_ns)]
        if state is not TradingState.ACTIVE:
            entries_only = state is TradingState.REDUCING
            targets = self.symbols if scope == ALL_SYMBOLS else [scope]
            out += cancels(targets, entries_only, f"trading_state {state.value}: {reason}", now_ns)
        return out

    def feed_set(self, scope: str, state: TradingState, reason: str, now_ns: int) -> list[Any]:
        """The market feed's own degrade/restore, decided here so no other command can race it:
        the feed may only lower a scope that is ACTIVE, and only lift a state the feed itself set.
        An operator's pause or supervision's HALTED is never loosened by the feed."""
        self._scopes_snap = None
        current = self.scopes.setdefault(scope, ScopeState())
        if state is TradingState.ACTIVE:
            if current.who != FEED or current.state is TradingState.ACTIVE:
                return []
        elif current.state is not TradingState.ACTIVE:
            return []
        return self.set(scope, state, FEED, reason, now_ns)

    def supervision_down(self, symbol: str, state: TradingState, reason: str, now_ns: int) -> list[Any]:
        """Fail closed: never loosens a state, and remembers where to return on recovery."""
        current = self.state(symbol)
        if current.restriction >= state.restriction:
            return []
        self._scopes_snap = None
        self.restore_on_recovery.setdefault(symbol, current)
        return self.set(symbol, state, SUPERVISION, reason, now_ns)

    def supervision_up(self, symbol: str, now_ns: int) -> list[Any]:
        if symbol not in self.restore_on_recovery:
            return []
        self._scopes_snap = None
        restore = self.restore_on_recovery.pop(symbol)
        return self.set(symbol, restore, SUPERVISION, "symbol recovered", now_ns)


def cancels(symbols: Iterable[str], entries_only: bool, reason: str, now_ns: int) -> list[CancelOpenOrders]:
    return [CancelOpenOrders(symbol=s, entries_only=entries_only, reason=reason, ts_event_ns=now_ns) for s in symbols]
