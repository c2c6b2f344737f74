"""Risk: validates every arbitrated Action before it reaches a Position, and owns the kill switch."""

from __future__ import annotations

from collections import Counter, deque
from decimal import Decimal
from typing import Any

import attrs
from arbor.actors.base import ActorContext, ActorLogic
from arbor.actors.risk.book import PortfolioBook, Reservation
from arbor.actors.risk.config import RiskConfig
from arbor.actors.risk.controls import FEED, SUPERVISION, ControlsSnapshot, QuarantineRecord, TradingControls, cancels
from arbor.actors.risk.limits import NS_PER_DAY, LimitsSnapshot, LossLimits
from arbor.messages import (
    ALL_SYMBOLS,
    Action,
    ActionApproved,
    ActionDenied,
    ActionNotApplicable,
    ActorFailed,
    AnnounceState,
    AssumptionHealthChanged,
    AssumptionStatus,
    Direction,
    EffectiveTradingStateChanged,
    EngageKillSwitch,
    KillSwitchEngaged,
    KillSwitchReset,
    KillSwitchResetRefused,
    MandateKind,
    PositionChanged,
    PositionState,
    ReconciliationCompleted,
    ResetKillSwitch,
    SetTradingState,
    SymbolQuarantined,
    SymbolRecovered,
    SymbolReleased,
    TimerTick,
    TradingState,
    TradingStateChanged,
)
from arbor.messages.base import evolve_message
from arbor.messages.risk import has_visible_text

NS_PER_MS = 1_000_000
NS_PER_S = 1_000_000_000
ORDER_KINDS = (MandateKind.ENTRY, MandateKind.REDUCE, MandateKind.EXIT)
# What Risk emits when a scope or the latch changes: then the symbols' effective states are re-told.
_STATE_EVENTS = (TradingStateChanged, KillSwitchEngaged, KillSwitchReset)
RECONCILIATION = "reconciliation"
ASSUMPTIONS = "assumptions"  # who lowers a symbol whose assumption broke
DRIFT_UNRESOLVED = "DRIFT_UNRESOLVED"


@attrs.frozen(kw_only=True)
class SymbolBookRecord:
    """What Risk knows of one symbol's position and market (see ``actors.risk.book.SymbolBook``)."""

    symbol: str
    qty: Decimal
    direction: Direction | None
    state: PositionState
    avg_entry_price: Decimal | None
    realized_pnl: Decimal
    fees: Decimal
    mark_price: Decimal | None
    data_ts_ns: int | None
    last_cycle: int


@attrs.frozen(kw_only=True)
class AssumptionHold:
    """A symbol held in REDUCING by its BROKEN assumptions (``on_broken = "reduce"``): their names,
    and whether one of them asked for an operator's resume (``on_recover = "operator"``)."""

    symbol: str
    names: tuple[str, ...]
    operator: bool


@attrs.frozen(kw_only=True)
class RiskSnapshot:
    """Everything a restarted Risk needs so that it keeps its latch, states and limits.

    ``reservations``: approved entries no position shows yet. ``approved_at``: approval times in
    the order-rate window. ``reconciliations``: the last reconciliation outcome per symbol.
    """

    controls: ControlsSnapshot
    limits: LimitsSnapshot
    books: tuple[SymbolBookRecord, ...]
    reservations: tuple[Reservation, ...] = ()
    approved_at: tuple[int, ...] = ()
    reconciliations: tuple[ReconciliationCompleted, ...] = ()
    assumption_holds: tuple[AssumptionHold, ...] = ()


def _positive(value: Decimal) -> bool:
    """Positive and finite (NaN is tested first: comparing it raises)."""
    return value.is_finite() and value > 0


def _bad_valuation(msg: PositionChanged) -> str:
    """Why a position's prices cannot be taken, or ``""``."""
    if msg.qty and msg.avg_entry_price is not None and not _positive(msg.avg_entry_price):
        return f"avg entry price {msg.avg_entry_price}"
    if not (msg.realized_pnl.is_finite() and msg.fees.is_finite()):
        return f"realized {msg.realized_pnl}, fees {msg.fees}"
    return ""


class RiskLogic(ActorLogic):
    """Runs in the Coordinator, one message at a time; every verdict is a message, never an exception."""

    ROLE = "risk"
    WANTS_TICKS = True

    def __init__(self, ctx: ActorContext, config: RiskConfig, symbols: tuple[str, ...]) -> None:
        super().__init__(ctx)
        self.config = config.validate()
        self.book = PortfolioBook(symbols)
        self._book_records: dict[str, SymbolBookRecord] = {}  # symbol -> its record in the last snapshot
        self.controls = TradingControls(symbols)
        self.limits = LossLimits(config.starting_equity, config.max_daily_loss_pct, config.max_drawdown_pct)
        self._approved_at: deque[int] = deque()  # approval times inside the order-rate window
        self._approved_snap: tuple[int, ...] | None = ()  # its tuple for snapshots (None: rebuild)
        self._approvals: Counter[str] = Counter()
        self._denials: Counter[str] = Counter()
        self._kill_engagements = 0
        self._refused_prices = 0  # marks and fill prices that are not positive and finite
        self._warnings: list[str] = []
        self._reconciliations: dict[str, ReconciliationCompleted] = {}
        # The effective state each symbol's Regime was last told (it assumes ACTIVE until told).
        self._told: dict[str, TradingState] = dict.fromkeys(self.controls.symbols, TradingState.ACTIVE)
        self._holds: dict[str, AssumptionHold] = {}  # symbols held down by broken assumptions

    # -- persistence (called by supervision, never from a handler) --------------------------
    def snapshot(self, fresh: bool = False) -> RiskSnapshot:
        """The durable state, taken after every handled message (the persister): a symbol's book
        record is rebuilt only when its book changed since the last snapshot. ``fresh``: rebuild
        every record, reusing nothing (what the reused records must always equal)."""
        records = self._book_records
        symbols = self.book.symbols
        if fresh:
            records.clear()
            self.book.changed.update(symbols)
        for symbol in self.book.changed:
            b = symbols[symbol]
            records[symbol] = SymbolBookRecord(
                symbol=symbol, qty=b.qty, direction=b.direction, state=b.state, avg_entry_price=b.avg_entry_price,
                realized_pnl=b.realized_pnl, fees=b.fees, mark_price=b.mark_price, data_ts_ns=b.data_ts_ns,
                last_cycle=b.last_cycle,
            )
        self.book.changed.clear()
        return RiskSnapshot(
            controls=self.controls.snapshot(fresh),
            limits=self.limits.snapshot(),
            books=tuple(records[s] for s in symbols),
            reservations=self.book.reservations(),
            approved_at=self._approved_tuple(),
            reconciliations=tuple(self._reconciliations.values()),
            assumption_holds=tuple(self._holds.values()),
        )

    def restore(self, snapshot: RiskSnapshot) -> None:
        """Replace the state with a stored one: an engaged kill switch stays engaged, with its who/why/when."""
        if not isinstance(snapshot, RiskSnapshot):
            raise TypeError(f"expected RiskSnapshot, got {type(snapshot).__name__}")
        self.controls.restore(snapshot.controls)
        self.limits.restore(snapshot.limits)
        for rec in snapshot.books:
            book = self.book.get(rec.symbol)
            book.qty, book.direction, book.state = rec.qty, rec.direction, rec.state
            book.avg_entry_price, book.realized_pnl, book.fees = rec.avg_entry_price, rec.realized_pnl, rec.fees
            book.mark_price, book.data_ts_ns, book.last_cycle = rec.mark_price, rec.data_ts_ns, rec.last_cycle
        self.book.invalidate()
        # A reservation is restored only while its symbol's position is ENTERING (its order may
        # still fill); any other died with the process or the failure that restarted Risk (which
        # engages the kill switch, so no approval is decided on the smaller exposure meanwhile).
        self.book.restore_reservations(
            r for r in snapshot.reservations if self.book.get(r.symbol).state is PositionState.ENTERING)
        self._approved_at = deque(snapshot.approved_at)
        self._approved_snap = None
        self._reconciliations = {r.symbol: r for r in snapshot.reconciliations}
        self._holds = {h.symbol: h for h in snapshot.assumption_holds}
        # What the Regimes hold: told before this restart, or (a fresh cluster) told by AnnounceState.
        self._told = {s: self.controls.effective(s) for s in self.controls.symbols}

    def handle(self, msg: Any) -> list[Any] | None:
        """The handler's messages, followed by an ``EffectiveTradingStateChanged`` for every symbol
        whose effective state they changed (one place, so no handler can forget to tell a strategy)."""
        # The day's anchor is the equity before the day's first event changes it.
        now = self.ctx.clock.now_ns()
        if now // NS_PER_DAY != self.limits.day:  # equity is summed over every symbol: only when needed
            self.limits.roll_day(self.equity(), now)
        out = super().handle(msg)
        if out:
            for m in out:
                if type(m) in _STATE_EVENTS:
                    out += self._tell_effective(self.controls.symbols, m.reason, now, force=False)
                    break
        return out

    def _tell_effective(self, symbols: list[str], reason: str, now: int, force: bool) -> list[Any]:
        """``EffectiveTradingStateChanged`` for each of ``symbols`` whose effective state differs
        from what its Regime was told (every one of them with ``force``)."""
        out: list[Any] = []
        for s in symbols:
            state = self.controls.effective(s)
            if force or self._told.get(s, TradingState.ACTIVE) is not state:
                self._told[s] = state
                out.append(EffectiveTradingStateChanged(symbol=s, state=state, reason=reason, ts_event_ns=now))
        return out

    # -- verdicts ---------------------------------------------------------------------------
    def on_action(self, action: Action) -> list[Any]:
        now = self.ctx.clock.now_ns()
        if not _positive(action.mark_price):
            # Defence in depth behind the decoders: a mark no venue sends never values the book
            # (the last good mark stays) and never prices an order.
            self._refused_prices += 1
            self.ctx.log.warning("refused mark price {} for {}", action.mark_price, action.symbol)
            if action.kind not in ORDER_KINDS:
                return []
            self._denials["invalid_price"] += 1
            return [ActionDenied(symbol=action.symbol, action=action, reason="invalid_price",
                                 detail=f"mark price {action.mark_price} is not positive and finite", ts_event_ns=now)]
        self.book.mark(action)
        out = self._check_limits(now)
        if action.kind not in ORDER_KINDS:
            return out
        denial = self._denial(action, now)
        if denial is not None:
            reason, detail = denial
            self._denials[reason] += 1
            self.ctx.log.debug("action denied: {} {}", reason, detail)
            return out + [ActionDenied(symbol=action.symbol, action=action, reason=reason, detail=detail, ts_event_ns=now)]
        return out + [self._approve(action, now)]

    def _approve(self, action: Action, now: int) -> ActionApproved:
        if action.kind is MandateKind.ENTRY:
            self.book.reserve(action)
        self._approved_at.append(now)
        self._approved_snap = None
        self._approvals[action.kind.value] += 1
        return ActionApproved(symbol=action.symbol, action=action, ts_event_ns=now)

    def _denial(self, action: Action, now: int) -> tuple[str, str] | None:
        """The first check that fails, as ``(reason, detail)``; ``None`` approves."""
        cfg, symbol, entry = self.config, action.symbol, action.kind is MandateKind.ENTRY
        state = self.controls.effective(symbol)
        if entry and self.controls.kill.engaged:
            return "kill_switch", f"engaged by {self.controls.kill.who}: {self.controls.kill.reason}"
        if (entry and state is not TradingState.ACTIVE) or state is TradingState.HALTED:
            return "trading_state", f"{symbol} is {state.value}"
        if entry and now - action.data_ts_ns > cfg.stale_data_ms * NS_PER_MS:
            return "stale_data", f"data is {(now - action.data_ts_ns) // NS_PER_MS} ms old, limit {cfg.stale_data_ms}"
        if action.qty <= 0:
            return "invalid_qty", f"qty {action.qty}"
        held = self.book.get(symbol).state
        if entry and held is not PositionState.FLAT:
            # Position takes an ENTRY only when FLAT: approving it would only reserve notional and
            # spend the order rate on an ActionNotApplicable.
            return "position_not_flat", f"{symbol} is {held.value}"
        if entry:
            denial = self._exposure_denial(action)
            if denial is not None:
                return denial
        if action.kind is not MandateKind.EXIT and self._orders_in_window(now) >= cfg.max_orders_per_window:
            return "order_rate", f"{cfg.max_orders_per_window} orders in {cfg.order_window_s}s"
        return None

    def _exposure_denial(self, action: Action) -> tuple[str, str] | None:
        cfg = self.config
        if action.mark_price <= 0:
            return "invalid_price", f"mark price {action.mark_price}"
        new = action.qty * action.mark_price
        symbol_after = self.book.symbol_notional(action.symbol) + new
        if symbol_after > cfg.max_symbol_notional:
            return "max_symbol_notional", f"{symbol_after} > {cfg.max_symbol_notional}"
        gross_after = self.book.gross() + new
        if gross_after > cfg.max_portfolio_notional:
            return "max_portfolio_notional", f"{gross_after} > {cfg.max_portfolio_notional}"
        equity = self.equity()
        if equity <= 0 or gross_after / equity > cfg.max_leverage:
            return "max_leverage", f"gross {gross_after} on equity {equity} exceeds {cfg.max_leverage}x"
        # Isolated at target leverage, or the account's own leverage if that is higher (cross margin).
        leverage = max(cfg.target_leverage, gross_after / equity)
        distance = 1 / leverage - cfg.maintenance_margin_rate
        if distance < cfg.min_liq_distance_pct:
            return "liquidation_distance", f"{distance:.4f} at {leverage:.2f}x < {cfg.min_liq_distance_pct}"
        if self.limits.daily_loss_hit:
            return "daily_loss", "daily loss limit hit today"
        if self.limits.drawdown_hit:
            return "drawdown", "drawdown limit hit"
        return None

    def _orders_in_window(self, now: int) -> int:
        horizon = now - self.config.order_window_s * NS_PER_S
        while self._approved_at and self._approved_at[0] <= horizon:
            self._approved_at.popleft()
            self._approved_snap = None
        return len(self._approved_at)

    def _approved_tuple(self) -> tuple[int, ...]:
        """The approval window as a tuple, rebuilt only after it changed (most decisions are
        HOLDs: copying a window of thousands of approvals after each was a fifth of the
        Coordinator's CPU)."""
        if self._approved_snap is None:
            self._approved_snap = tuple(self._approved_at)
        return self._approved_snap

    # -- positions --------------------------------------------------------------------------
    def on_position_changed(self, msg: PositionChanged) -> list[Any]:
        now = self.ctx.clock.now_ns()
        bad = _bad_valuation(msg)
        if bad:
            # A fill at a price no venue fills at: the quantity is exposure and is kept, the price
            # is not taken (it would value the position at nothing), and the symbol takes no new
            # risk until someone who understands it resumes it.
            self._refused_prices += 1
            self.ctx.log.error("refused position valuation of {}: {}", msg.symbol, bad)
            self.book.apply(evolve_message(msg, avg_entry_price=None, realized_pnl=self.book.get(msg.symbol).realized_pnl,
                                         fees=self.book.get(msg.symbol).fees))
            out = self.controls.set(msg.symbol, TradingState.REDUCING, "risk", f"invalid_fill_price: {bad}", now)
            return out + self._check_limits(now)
        self.book.apply(msg)
        return self._check_limits(now)

    def on_action_not_applicable(self, msg: ActionNotApplicable) -> list[Any]:
        self.book.release(msg.action_id)
        return []

    def on_timer_tick(self, msg: TimerTick) -> list[Any]:
        now = self.ctx.clock.now_ns()
        out = self._check_limits(now)
        stale = self._stale_open_symbols(now)
        if stale and self.config.kill_on_stale_data:
            out += self._engage("risk", f"stale market data: {', '.join(stale)}", now)
        return out

    # -- limits -----------------------------------------------------------------------------
    def equity(self) -> Decimal:
        return self.book.equity(self.config.starting_equity)

    def _check_limits(self, now: int) -> list[Any]:
        out: list[Any] = []
        for reason, detail in self.limits.observe(self.equity(), now):
            out += self._engage("risk", f"{reason}: {detail}", now)
        return out

    def _stale_open_symbols(self, now: int) -> list[str]:
        limit = self.config.stale_data_ms * NS_PER_MS
        self._warnings = []
        stale = []
        for symbol in self.book.open_symbols():
            ts = self.book.get(symbol).data_ts_ns
            if ts is None:
                self._warnings.append(f"{symbol}: open position without market data")
            elif now - ts > limit:
                stale.append(symbol)
                self._warnings.append(f"{symbol}: market data {(now - ts) // NS_PER_MS} ms old")
        return stale

    # -- controls ---------------------------------------------------------------------------
    def on_set_trading_state(self, msg: SetTradingState) -> list[Any]:
        now = self.ctx.clock.now_ns()
        if msg.who == FEED:  # the feed's rules are enforced here, atomically (see TradingControls.feed_set)
            return self.controls.feed_set(msg.scope, msg.state, msg.reason, now)
        return self.controls.set(msg.scope, msg.state, msg.who, msg.reason, now)

    def on_actor_failed(self, msg: ActorFailed) -> list[Any]:
        now = self.ctx.clock.now_ns()
        why = f"{msg.actor_id} failed ({msg.kind}): {msg.error}"
        if not msg.symbol:
            return self._engage(SUPERVISION, why, now)
        return self.controls.supervision_down(msg.symbol, self.config.on_symbol_failure, why, now)

    def on_symbol_recovered(self, msg: SymbolRecovered) -> list[Any]:
        """The subtree is back, restored and reconciled: entries reserved for it that its position
        does not show as ENTERING died with the failure (or the process) and are released."""
        for res in self.book.stale_reservations(msg.symbol):
            self.ctx.log.warning("reservation of {} for {} released: no entry is live after recovery", res.action_id, msg.symbol)
            self.book.release(res.action_id)
        now = self.ctx.clock.now_ns()
        out = self.controls.supervision_up(msg.symbol, now)
        # Its Regime may be new (a restarted subtree or Worker process) and assume ACTIVE: told
        # again even when recovery changed nothing (a pause the operator set before the failure).
        if msg.symbol in self.controls.scopes:
            out += self._hold_for_assumptions(msg.symbol, now)  # recovery restores ACTIVE; a broken assumption does not
            out += self._tell_effective([msg.symbol], "symbol recovered", now, force=True)
        return out

    # -- assumptions ------------------------------------------------------------------------
    def on_assumption_health_changed(self, msg: AssumptionHealthChanged) -> list[Any]:
        """BROKEN with ``on_broken = "reduce"``: the symbol goes to REDUCING (only from ACTIVE:
        a pause or a halt is never loosened or taken over). Once none of its held assumptions is
        BROKEN (UNKNOWN is no verdict: still held), it returns to ACTIVE by itself only if every one
        of them said ``on_recover = "resume"`` and nobody else changed its state meanwhile."""
        now = self.ctx.clock.now_ns()
        symbol, hold = msg.symbol, self._holds.get(msg.symbol)
        if msg.new is AssumptionStatus.BROKEN:
            if msg.on_broken != "reduce" or symbol not in self.controls.scopes:
                return []
            names = hold.names if hold is not None else ()
            self._holds[symbol] = AssumptionHold(
                symbol=symbol, names=tuple(sorted({*names, msg.name})),
                operator=(hold is not None and hold.operator) or msg.on_recover == "operator")
            why = f"assumption {msg.name} broken: {msg.observation} {msg.value:.6g}, bound {msg.bound}"
            return self._hold_for_assumptions(symbol, now, why)
        if hold is None or msg.name not in hold.names or msg.new is AssumptionStatus.UNKNOWN:
            return []
        names = tuple(n for n in hold.names if n != msg.name)
        if names:
            self._holds[symbol] = attrs.evolve(hold, names=names)
            return []
        del self._holds[symbol]
        scope = self.controls.scopes[symbol]
        if hold.operator or scope.who != ASSUMPTIONS or scope.state is not TradingState.REDUCING:
            return []
        return self.controls.set(symbol, TradingState.ACTIVE, ASSUMPTIONS,
                                 f"assumptions recovered ({msg.name} {msg.new.value})", now)

    def _hold_for_assumptions(self, symbol: str, now: int, why: str = "") -> list[Any]:
        """REDUCING for a held symbol that is ACTIVE (from ACTIVE only, as the feed does)."""
        hold = self._holds.get(symbol)
        if hold is None or self.controls.state(symbol) is not TradingState.ACTIVE:
            return []
        return self.controls.set(symbol, TradingState.REDUCING, ASSUMPTIONS,
                                 why or f"assumptions broken: {', '.join(hold.names)}", now)

    def on_symbol_quarantined(self, msg: SymbolQuarantined) -> list[Any]:
        now = self.ctx.clock.now_ns()
        self.controls.quarantined[msg.symbol] = QuarantineRecord(symbol=msg.symbol, reason=msg.reason, ts_event_ns=now)
        return self.controls.supervision_down(msg.symbol, self.config.on_symbol_failure, f"quarantined: {msg.reason}", now)

    def on_symbol_released(self, msg: SymbolReleased) -> list[Any]:
        # The symbol stays down until its restarted subtree reports SymbolRecovered.
        self.controls.quarantined.pop(msg.symbol, None)
        return []

    def on_reconciliation_completed(self, msg: ReconciliationCompleted) -> list[Any]:
        """Record the outcome; a drift nobody may fix engages the kill switch (who="reconciliation")."""
        self._reconciliations[msg.symbol] = msg
        if msg.outcome != DRIFT_UNRESOLVED:
            return []
        why = f"{msg.symbol} drift: local {msg.local_qty}, venue {msg.venue_qty}: {msg.detail}"
        return self._engage(RECONCILIATION, why, self.ctx.clock.now_ns())

    def on_announce_state(self, msg: AnnounceState) -> list[Any]:
        """The latch and every scope that is not ACTIVE, as the events the operator view, metrics
        and the Arbitrator learn them from (at start: what was restored). Each carries its
        original who, why and when; ``old`` is ACTIVE, what a consumer assumes before it hears."""
        out: list[Any] = []
        for rec in self.controls.snapshot().scopes:
            if rec.state is not TradingState.ACTIVE:
                out.append(TradingStateChanged(scope=rec.scope, old=TradingState.ACTIVE, new=rec.state, who=rec.who,
                                               reason=rec.reason, ts_event_ns=rec.ts_event_ns))
        kill = self.controls.kill
        if kill.engaged:
            out.append(KillSwitchEngaged(who=kill.who, reason=kill.reason, ts_event_ns=kill.ts_event_ns))
        # The Regimes of a (re)started cluster assume ACTIVE: every other state is told to them.
        now = self.ctx.clock.now_ns()
        out += self._tell_effective([s for s in self.controls.symbols if self.controls.effective(s) is not TradingState.ACTIVE],
                                    msg.reason, now, force=True)
        return out

    def on_engage_kill_switch(self, msg: EngageKillSwitch) -> list[Any]:
        return self._engage(msg.who, msg.reason, self.ctx.clock.now_ns())

    def on_reset_kill_switch(self, msg: ResetKillSwitch) -> list[Any]:
        now = self.ctx.clock.now_ns()
        kill = self.controls.kill
        if not has_visible_text(msg.reason):
            return [KillSwitchResetRefused(who=msg.who, reason="a reset needs a reason", ts_event_ns=now)]
        if not kill.engaged:
            return [KillSwitchResetRefused(who=msg.who, reason="kill switch is not engaged", ts_event_ns=now)]
        kill.engaged = False
        kill.who, kill.reason, kill.ts_event_ns = msg.who, msg.reason, now
        # The operator has acknowledged the loss so far; the daily limit still holds until the day ends.
        self.limits.rebase_peak(self.equity())
        self.ctx.log.warning("kill switch reset by {}: {}", msg.who, msg.reason)
        return [KillSwitchReset(who=msg.who, reason=msg.reason, ts_event_ns=now)]

    def _engage(self, who: str, reason: str, now: int) -> list[Any]:
        kill = self.controls.kill
        if kill.engaged:
            return []
        kill.engaged, kill.who, kill.reason, kill.ts_event_ns = True, who, reason, now
        self._kill_engagements += 1
        self.ctx.log.warning("kill switch engaged by {}: {}", who, reason)
        out: list[Any] = [KillSwitchEngaged(who=who, reason=reason, ts_event_ns=now)]
        out += cancels(self.controls.symbols, True, f"kill_switch: {reason}", now)
        if self.config.kill_switch_flatten:
            out += [self._approve(a, now) for a in self._flatten_actions(now)]
        return out

    def _flatten_actions(self, now: int) -> list[Action]:
        actions = []
        for symbol in self.book.open_symbols():
            book = self.book.get(symbol)
            if self.controls.effective(symbol) is TradingState.HALTED:
                continue  # HALTED means cancels only, even for a flatten
            actions.append(Action(
                action_id=f"{self.ctx.run_id}:{symbol}:flatten:{now}", symbol=symbol, cycle=book.last_cycle,
                kind=MandateKind.EXIT, direction=book.direction, qty=book.qty, mark_price=book.price,
                data_ts_ns=book.data_ts_ns or 0, ts_event_ns=now, reason="kill_switch_flatten"))
        return actions

    # -- reporting --------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        """A plain, JSON-ready snapshot for the operator surface (money as strings)."""
        cfg, kill, equity = self.config, self.controls.kill, self.equity()
        gross = self.book.gross()
        return {
            "trading_allowed": not kill.engaged and self.controls.state(ALL_SYMBOLS) is TradingState.ACTIVE
            and not self.limits.daily_loss_hit and not self.limits.drawdown_hit,
            "kill_switch": {"engaged": kill.engaged, "who": kill.who, "reason": kill.reason, "ts_event_ns": kill.ts_event_ns},
            "global_state": self.controls.state(ALL_SYMBOLS).value,
            "symbols": {s: {"state": self.controls.state(s).value, "effective": self.controls.effective(s).value,
                            "qty": str(self.book.get(s).qty), "notional": str(self.book.symbol_notional(s)),
                            "pnl": str(self._pnl(s))}
                        for s in self.controls.symbols},
            "equity": str(equity),
            "daily_pnl": str(self.limits.daily_pnl(equity)),
            "daily_pnl_pct": str(self.limits.daily_pnl_pct(equity)),
            "daily_loss_limit_pct": str(cfg.max_daily_loss_pct),
            "daily_loss_hit": self.limits.daily_loss_hit,
            "drawdown_pct": str(self.limits.drawdown_pct(equity)),
            "drawdown_limit_pct": str(cfg.max_drawdown_pct),
            "drawdown_hit": self.limits.drawdown_hit,
            "gross_exposure": str(gross),
            "net_exposure": str(self.book.net()),
            "max_portfolio_notional": str(cfg.max_portfolio_notional),
            "leverage": str(gross / equity if equity > 0 else Decimal("0")),
            "warnings": list(self._warnings) + self._liquidation_warnings(),
            "quarantined": {q.symbol: {"reason": q.reason, "ts_event_ns": q.ts_event_ns}
                            for q in self.controls.quarantined.values()},
            "reconciliation": {r.symbol: {"outcome": r.outcome, "local_qty": str(r.local_qty), "venue_qty": str(r.venue_qty),
                                          "detail": r.detail, "ts_event_ns": r.ts_event_ns}
                               for r in self._reconciliations.values()},
            "drift": sorted(s for s, r in self._reconciliations.items() if r.outcome == DRIFT_UNRESOLVED),
            "assumption_holds": {h.symbol: {"broken": list(h.names), "needs_operator": h.operator}
                                 for h in self._holds.values()},
        }

    def _pnl(self, symbol: str) -> Decimal:
        """Realized net of fees, plus unrealized at the latest mark."""
        b = self.book.get(symbol)
        return b.realized_pnl - b.fees + b.unrealized_pnl

    def _liquidation_warnings(self) -> list[str]:
        out = []
        lev, mmr = self.config.target_leverage, self.config.maintenance_margin_rate
        for symbol in self.book.open_symbols():
            b = self.book.get(symbol)
            if b.avg_entry_price is None or b.direction is None or b.price <= 0:
                continue
            # Isolated margin at target leverage: liquidation sits (1/L - mmr) away from the entry.
            liq = b.avg_entry_price * (1 - b.direction.sign * (1 / lev - mmr))
            distance = (b.price - liq) * b.direction.sign / b.price  # negative once past it
            if distance < self.config.critical_liq_distance_pct:
                out.append(f"{symbol}: {distance:.2%} from liquidation at {liq}")
        return out

    def stats(self) -> dict[str, Any]:
        return {"approvals": dict(self._approvals), "denials": dict(self._denials),
                "approved": sum(self._approvals.values()), "denied": sum(self._denials.values()),
                "kill_switch_engagements": self._kill_engagements, "refused_prices": self._refused_prices}
