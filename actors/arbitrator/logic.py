"""Arbitrator: exactly one Action per symbol per cycle, chosen by authority, sized, and held to
the cross-symbol limit on concurrent positions."""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Mapping
from decimal import ROUND_FLOOR, Decimal
from typing import Any

import attrs
from arbor.actors.arbitrator.config import ArbitratorConfig
from arbor.actors.base import ActorContext, ActorLogic
from arbor.messages import (
    ALL_SYMBOLS,
    RESTORED,
    Action,
    ActionDenied,
    ActionNotApplicable,
    Direction,
    KillSwitchEngaged,
    KillSwitchReset,
    Mandate,
    MandateKind,
    MandateSet,
    PositionChanged,
    PositionState,
    TradingStateChanged,
)

ZERO = Decimal("0")
ONE = Decimal("1")
CYCLES_REMEMBERED = 1024  # per symbol, for duplicate detection with bounded memory


@attrs.frozen(kw_only=True)
class PositionView:
    """The arbitrator's view of one symbol's position, from its PositionChanged events."""

    symbol: str
    state: PositionState
    direction: Direction | None
    qty: Decimal


@attrs.frozen(kw_only=True)
class ArbitratorSnapshot:
    """Positions as last reported, unresolved ENTRY actions (symbol -> action id), and the kill
    switch and trading states as Risk last announced them."""

    positions: tuple[PositionView, ...]
    pending_entries: tuple[tuple[str, str], ...]
    kill_switch_engaged: bool = False
    trading_states: tuple[tuple[str, str], ...] = ()


def floor_to_step(qty: Decimal, step: Decimal) -> Decimal:
    """The largest multiple of ``step`` not above ``qty`` (never rounds a size up)."""
    if qty <= 0:
        return ZERO
    return (qty / step).to_integral_value(rounding=ROUND_FLOOR) * step


def choose(mandates: tuple[Mandate, ...]) -> Mandate | None:
    """The mandate of highest authority; on a tie, the first. Mandates are never combined."""
    return max(mandates, key=lambda m: m.kind.authority, default=None)


class ArbitratorLogic(ActorLogic):
    """Runs in the Coordinator, one message at a time, for every symbol."""

    ROLE = "arbitrator"

    def __init__(self, ctx: ActorContext, config: ArbitratorConfig, qty_steps: Mapping[str, Decimal]) -> None:
        super().__init__(ctx)
        self.config = config.validate()
        self._qty_steps = dict(qty_steps)
        self._positions: dict[str, tuple[PositionState, Direction | None, Decimal]] = {}
        self._views: dict[str, PositionView] = {}  # the snapshot's record of each entry of _positions
        self._pending_entries: dict[str, str] = {}  # symbol -> action_id of an unresolved ENTRY
        self._seen: dict[str, tuple[set[int], deque[int]]] = {}
        self._actions: Counter[str] = Counter()
        self._duplicates = 0
        self._blocked_by_limit = 0
        self._kill_switch_engaged = False
        self._trading_states: dict[str, str] = {}

    # -- persistence (called by supervision, never from a handler) --------------------------
    def snapshot(self) -> ArbitratorSnapshot:
        return ArbitratorSnapshot(
            positions=tuple(self._view(s, p) for s, p in self._positions.items()),
            pending_entries=tuple(self._pending_entries.items()),
            kill_switch_engaged=self._kill_switch_engaged,
            trading_states=tuple(self._trading_states.items()),
        )

    def _view(self, symbol: str, pos: tuple[PositionState, Direction | None, Decimal]) -> PositionView:
        """The record of one position, rebuilt only when it changed (a snapshot follows every
        position change of every symbol)."""
        v = self._views.get(symbol)
        if v is None or (v.state, v.direction, v.qty) != pos:
            v = self._views[symbol] = PositionView(symbol=symbol, state=pos[0], direction=pos[1], qty=pos[2])
        return v

    def restore(self, snapshot: ArbitratorSnapshot) -> None:
        """Replace the state with a stored one. Seen cycles are not kept: held messages are
        delivered once after a restart, never replayed."""
        if not isinstance(snapshot, ArbitratorSnapshot):
            raise TypeError(f"expected ArbitratorSnapshot, got {type(snapshot).__name__}")
        self._positions = {p.symbol: (p.state, p.direction, p.qty) for p in snapshot.positions}
        self._pending_entries = dict(snapshot.pending_entries)
        self._kill_switch_engaged = snapshot.kill_switch_engaged
        self._trading_states = dict(snapshot.trading_states)

    # -- arbitration ------------------------------------------------------------------------
    def on_mandate_set(self, ms: MandateSet) -> list[Any]:
        if self._already_seen(ms.symbol, ms.cycle):
            self._duplicates += 1
            self.ctx.log.warning("duplicate mandate set for {} cycle {}", ms.symbol, ms.cycle)
            return []
        mandate = choose(ms.mandates)
        if mandate is None:
            kind, direction, qty, reason = MandateKind.HOLD, None, ZERO, "no mandates"
        else:
            kind, direction, qty, reason = self._size(ms, mandate)
        if kind is MandateKind.ENTRY and self._at_position_limit(ms.symbol):
            self._blocked_by_limit += 1
            kind, qty, reason = MandateKind.BLOCK, ZERO, "max_concurrent_positions"
        action = Action(
            action_id=f"{self.ctx.run_id}:{ms.symbol}:{ms.cycle}", symbol=ms.symbol, cycle=ms.cycle,
            kind=kind, direction=direction, qty=qty, mark_price=ms.mark_price, data_ts_ns=ms.data_ts_ns,
            ts_event_ns=self.ctx.clock.now_ns(), reason=reason, regime=ms.regime, strategy=ms.strategy)
        if kind is MandateKind.ENTRY:
            self._pending_entries[ms.symbol] = action.action_id
        self._actions[kind.value] += 1
        return [action]

    def _size(self, ms: MandateSet, m: Mandate) -> tuple[MandateKind, Direction | None, Decimal, str]:
        """``(kind, direction, qty, reason)``; a mandate that cannot be sized becomes a HOLD saying why."""
        step = self._qty_steps.get(ms.symbol, self.config.default_qty_step)
        hint = min(max(m.size_hint, ZERO), ONE)
        state, pos_direction, pos_qty = self._positions.get(ms.symbol, (PositionState.FLAT, None, ZERO))
        if m.kind is MandateKind.ENTRY:
            if m.direction is None:
                return MandateKind.HOLD, None, ZERO, f"entry without direction: {m.reason}"
            if ms.mark_price <= 0:
                return MandateKind.HOLD, m.direction, ZERO, f"entry without a mark price: {m.reason}"
            qty = floor_to_step(hint * self.config.entry_notional / ms.mark_price, step)
            if qty <= 0:
                return MandateKind.HOLD, m.direction, ZERO, f"entry size below lot size {step}: {m.reason}"
            return MandateKind.ENTRY, m.direction, qty, m.reason
        if m.kind is MandateKind.REDUCE:
            qty = floor_to_step(hint * pos_qty, step)
            if qty <= 0:
                return MandateKind.HOLD, pos_direction, ZERO, f"nothing to reduce ({state.value} {pos_qty}): {m.reason}"
            return MandateKind.REDUCE, pos_direction, qty, m.reason
        if m.kind is MandateKind.EXIT:
            if pos_qty <= 0 or pos_direction is None:
                return MandateKind.HOLD, m.direction, ZERO, f"nothing to exit ({state.value}): {m.reason}"
            return MandateKind.EXIT, pos_direction, pos_qty, m.reason
        return m.kind, m.direction, ZERO, m.reason  # BLOCK and HOLD carry no quantity

    def _already_seen(self, symbol: str, cycle: int) -> bool:
        seen, order = self._seen.setdefault(symbol, (set(), deque()))
        if cycle in seen:
            return True
        seen.add(cycle)
        order.append(cycle)
        if len(order) > CYCLES_REMEMBERED:
            seen.discard(order.popleft())
        return False

    def _occupied(self) -> set[str]:
        """Symbols that hold a slot: not FLAT, or with an ENTRY issued and not yet resolved."""
        held = {s for s, (state, _, _) in self._positions.items() if state is not PositionState.FLAT}
        return held | set(self._pending_entries)

    def _at_position_limit(self, symbol: str) -> bool:
        occupied = self._occupied()
        return symbol not in occupied and len(occupied) >= self.config.max_concurrent_positions

    # -- feedback ---------------------------------------------------------------------------
    def on_position_changed(self, msg: PositionChanged) -> list[Any]:
        previous = self._positions.get(msg.symbol, (PositionState.FLAT, None, ZERO))[0]
        self._positions[msg.symbol] = (msg.state, msg.direction, msg.qty)
        pending = self._pending_entries.get(msg.symbol)
        # Not FLAT: the position holds the slot itself. FLAT straight after ENTERING, or FLAT for
        # this very action: the entry was cancelled or rejected. FLAT re-announced by a restarted
        # process: the entry was lost with the process that was to place it.
        if pending is not None and (msg.state is not PositionState.FLAT or previous is PositionState.ENTERING
                                    or msg.action_id == pending or msg.cause == RESTORED):
            del self._pending_entries[msg.symbol]
        return []

    def on_action_denied(self, msg: ActionDenied) -> list[Any]:
        self._resolve(msg.symbol, msg.action.action_id)
        return []

    def on_action_not_applicable(self, msg: ActionNotApplicable) -> list[Any]:
        self._resolve(msg.symbol, msg.action_id)
        return []

    def _resolve(self, symbol: str, action_id: str) -> None:
        if self._pending_entries.get(symbol) == action_id:
            del self._pending_entries[symbol]

    def on_kill_switch_engaged(self, msg: KillSwitchEngaged) -> list[Any]:
        self._kill_switch_engaged = True
        return []

    def on_kill_switch_reset(self, msg: KillSwitchReset) -> list[Any]:
        self._kill_switch_engaged = False
        return []

    def on_trading_state_changed(self, msg: TradingStateChanged) -> list[Any]:
        self._trading_states[msg.scope] = msg.new.value
        return []

    # -- reporting --------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        return {
            "kill_switch_engaged": self._kill_switch_engaged,
            "global_state": self._trading_states.get(ALL_SYMBOLS, "ACTIVE"),
            "trading_states": dict(self._trading_states),
            "occupied_symbols": sorted(self._occupied()),
            "pending_entries": dict(self._pending_entries),
            "max_concurrent_positions": self.config.max_concurrent_positions,
        }

    def stats(self) -> dict[str, Any]:
        return {"actions": dict(self._actions), "duplicates": self._duplicates,
                "blocked_by_limit": self._blocked_by_limit}
