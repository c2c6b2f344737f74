"""Supervisors that live inside a dispatcher: one per symbol subtree, one over the singletons.

They are the dispatcher's failure hook. A failure is handled synchronously on the group's own
thread, so nothing else of that group runs in between. Supervisors only do OTP mechanics, through
the dispatcher's public API (``hold``, ``release``, ``replace``, ``redeliver_first``,
``deliver_first``, ``drain``, ``mailbox``); the trading rules they apply live elsewhere (``actors.risk.gate``):

1. **Fail closed at once**: ``ActorFailed`` goes to Risk (the symbol goes to REDUCING/HALTED),
   and the symbol's venue gate (``SymbolGate``) closes: until recovery no approved ENTRY reaches
   Position and no entry order reaches the venue, whatever Risk's thread is doing.
2. **Restart by the spec** (rest_for_one for a symbol): the affected children's mailboxes are held,
   fresh logic objects are built (state restored from the store/last good snapshot, never from
   constructor defaults), and the mailboxes are released, so messages that arrived meanwhile
   are delivered after the restart, in order. The message that crashed the actor is put back
   first, before anything else (quarantine included); if it crashes it again it is set aside as
   a poison message (reported; an approval set aside is answered ``ActionNotApplicable``).
3. **Intensity**: more than N restarts in T seconds quarantines the symbol (escalation): its
   subtree stays stopped until an operator sends ``ReleaseSymbol``. Venue truth (acks, fills,
   cancels, rejects, order and position reports) is never dropped: it waits in the held
   mailboxes and is delivered after the release; other inputs are dropped and counted.
4. **Recovery**: ``SymbolRecovered`` goes to Risk, and the gate opens, only when the subtree is
   restarted and the gate's ``ready_to_trade`` holds (reconciled with the venue, Position
   included, and the features warm again).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from enum import Enum
from typing import Any

from arbor.actors.risk.gate import SymbolGate
from arbor.actors.topology import role_of, symbol_of
from arbor.messages import (
    ActionApproved,
    ActionNotApplicable,
    ActorFailed,
    ActorRestarted,
    Envelope,
    OrderAccepted,
    OrderCanceled,
    OrderFilled,
    OrderRejected,
    OrderStatusReported,
    PoisonMessageQuarantined,
    PositionChanged,
    PositionReported,
    Reconcile,
    ReconciliationCompleted,
    ReleaseSymbol,
    SymbolQuarantined,
    SymbolRecovered,
    SymbolReleased,
)
from arbor.supervision.intensity import RestartIntensity
from arbor.supervision.spec import Restart, SupervisorSpec
from loguru import logger

SETTLED_OUTCOMES = frozenset({"NONE", "SYNC_LOCAL", "EMERGENCY_CLOSE"})
# What the venue says about our orders and position: never dropped, whatever the symbol's health.
RISK = "risk"
VENUE_TRUTH = (OrderAccepted, OrderFilled, OrderRejected, OrderCanceled, OrderStatusReported, PositionReported)


def is_venue_truth(env: Envelope) -> bool:
    """Whether ``env`` carries the venue's own record of an order or the position."""
    return isinstance(env.payload, VENUE_TRUTH)


def emit_to_risk_first(d: Any, sender: str, failed: ActorFailed, cause: int) -> None:
    """Emit ``failed`` (a failure of no symbol, which engages the kill switch) and move it to the
    head of Risk's mailbox when Risk is local. Risk must latch before it decides anything already
    queued for it: an ENTRY waiting there (or the very Action that crashed a restarted Risk, put
    back first) would otherwise be approved, and its order would reach the venue after the kill
    switch's cancels had gone out (explorer seeds 1343, 1398, 2254, ...)."""
    d.emit(sender, [failed], cause)
    for env in d.drain(RISK, keep=lambda env: env.payload is not failed):
        d.redeliver_first(RISK, env)


class Health(str, Enum):
    RUNNING = "RUNNING"
    RECOVERING = "RECOVERING"
    QUARANTINED = "QUARANTINED"


class SymbolSupervisor:
    """Supervises one symbol's subtree inside a dispatcher (see the module docstring)."""

    def __init__(self, symbol: str, spec: SupervisorSpec, dispatcher: Any, rng: random.Random,
                 on_restarted: Callable[[str, Any], None] | None = None) -> None:
        self.symbol = symbol
        self.id = f"{symbol}/supervisor"
        self.spec = spec
        self.d = dispatcher
        self.rng = rng
        self.intensity = RestartIntensity(spec.intensity, spec.period_s)
        self.health = Health.RUNNING
        self.restarts: dict[str, int] = {c: 0 for c in spec.ids}
        self.last_failure: dict[str, str] = {}
        self._crashed: set[tuple[str, int]] = set()
        self._release_at: int | None = None
        self._held: tuple[str, ...] = ()
        self._reconciled = True
        self._removed: set[str] = set()
        self._on_restarted = on_restarted
        self.poison = 0
        self.dropped_while_quarantined = 0
        self.venue_truth_held = 0
        self.gate = SymbolGate(symbol)  # the trading rule: no entry while the symbol is down

    # -- identity ---------------------------------------------------------------------------
    def actor_id(self, child: str) -> str:
        return f"{self.symbol}/{child}"

    def owns(self, actor_id: str) -> bool:
        return symbol_of(actor_id) == self.symbol and role_of(actor_id) in self.spec.ids

    # -- failure ----------------------------------------------------------------------------
    def failed(self, actor_id: str, env: Envelope | None, error: BaseException | str, kind: str = "exception") -> None:
        now = self.d.clock.now_ns()
        child = role_of(actor_id)
        text = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
        tag = getattr(type(env.payload), "TAG", "?") if env is not None else ""
        self.last_failure[child] = text
        cause = env.msg_id if env is not None else 0
        self.d.emit(self.id, [ActorFailed(actor_id=actor_id, symbol=self.symbol, kind=kind, error=text,
                                          message_tag=tag, ts_event_ns=now)], cause)
        self.health = Health.RECOVERING
        self.gate.close()
        self._reconciled = False
        self._refuse_queued_entries(cause)
        self.d.hold(actor_id)
        # A message that hung its handler would hang it again: it is set aside at once. One that
        # raised (or whose thread died) is retried once, first, and set aside if it fails again.
        # It is put back before anything else happens, so neither quarantine nor a temporary
        # child's removal loses it (a fill must reach the position whatever happens next).
        if env is not None:
            if (actor_id, env.msg_id) in self._crashed or kind == "hang":
                self.poison += 1
                logger.bind(actor=actor_id, event_type="poison_message", msg_id=env.msg_id).error(
                    "poison message {} quarantined after crashing {} twice", tag, actor_id)
                self.d.emit(self.id, [PoisonMessageQuarantined(actor_id=actor_id, symbol=self.symbol, message_tag=tag,
                                                               msg_id=env.msg_id, error=text, ts_event_ns=now)], cause)
                self._approval_dropped(env, "POISON")
            else:
                self._crashed.add((actor_id, env.msg_id))
                self.d.redeliver_first(actor_id, env)  # retried once, first, by the new instance
        if self.intensity.record(now):
            self._quarantine(f"{self.intensity.in_period()} restarts within {self.spec.period_s}s (last: {actor_id}: {text})", cause)
            return
        if self.spec.child(child).restart is Restart.TEMPORARY:
            self._removed.add(child)
            return
        self._restart(self.spec.to_restart(child), cause)
        delay = self.spec.backoff_s(self.intensity.in_period(), self.rng.random())
        if delay > 0:
            self._release_at = now + int(delay * 1e9)
        else:
            self._release()

    def _approval_dropped(self, env: Envelope, state: str) -> None:
        """An approved action that will never be handled is answered as not applicable, so Risk
        releases its reservation and the Arbitrator its slot: nothing reserved outlives its order."""
        payload = env.payload
        if type(payload) is ActionApproved:
            self.d.emit(env.receiver, [ActionNotApplicable(symbol=self.symbol, action_id=payload.action.action_id,
                                                           kind=payload.action.kind, state=state,
                                                           ts_event_ns=self.d.clock.now_ns())], env.msg_id)

    def _refuse_queued_entries(self, cause: int) -> None:
        """Entries already waiting in the mailboxes when the symbol went down are refused too: the
        delivery-time gate (``intercept``) only sees what arrives from now on."""
        for role in ("position", "venue"):
            self.d.drain(self.actor_id(role), keep=lambda env: not self.intercept(env))

    def _restart(self, ids: tuple[str, ...], cause: int) -> None:
        now = self.d.clock.now_ns()
        for child in reversed(ids):  # stop in reverse start order: hold their mailboxes
            self.d.hold(self.actor_id(child))
        for child in ids:  # start in order
            aid = self.actor_id(child)
            old = self.d.actors.get(aid)
            self.d.replace(aid, self.spec.child(child).start(old))
            self.restarts[child] += 1
            if self._on_restarted is not None:
                self._on_restarted(aid, self.d.actors[aid])
        self._sync_regime_position(ids, cause)
        self._held = tuple(self.actor_id(c) for c in ids)
        self.d.emit(self.id, [ActorRestarted(actor_id=self.actor_id(c), symbol=self.symbol,
                                             restarts=self.restarts[c], ts_event_ns=now) for c in ids], cause)
        logger.bind(actor=self.id, event_type="restarted").warning("restarted {} of {}", ",".join(ids), self.symbol)

    def _sync_regime_position(self, ids: tuple[str, ...], cause: int) -> None:
        """A restarted Regime learns the current position from Position, not from defaults: as the
        first message in its mailbox, handled by the dispatcher, so a failure on it is the Regime's
        and supervised (called directly, it escaped the dispatcher: explorer seed 8313)."""
        if "regime" not in ids or "position" not in self.spec.ids:
            return
        pos = self.d.actors.get(self.actor_id("position"))
        snap = getattr(pos, "snapshot", lambda: None)()
        if snap is None or self.actor_id("regime") not in self.d.actors:
            return
        self.d.deliver_first(self.actor_id("regime"), self.actor_id("position"), PositionChanged(
            symbol=self.symbol, state=snap.state, direction=snap.direction, qty=snap.qty,
            avg_entry_price=snap.avg_entry_price, realized_pnl=snap.realized_pnl, fees=snap.fees,
            ts_event_ns=self.d.clock.now_ns(), action_id=snap.action_id, cause="restored"), cause)

    def _release(self) -> None:
        self._release_at = None
        for aid in self._held:
            self.d.release(aid)
        self._held = ()
        executor = self.d.actors.get(self.actor_id("executor"))
        if executor is not None and executor.handles(Reconcile):
            self.d.emit(self.id, [Reconcile(symbol=self.symbol, reason="restart", ts_event_ns=self.d.clock.now_ns())], 0)
        else:
            self._reconciled = True

    def _quarantine(self, reason: str, cause: int) -> None:
        now = self.d.clock.now_ns()
        self.health = Health.QUARANTINED
        self.gate.close()
        self._release_at = None
        for child in reversed(self.spec.ids):
            self.d.hold(self.actor_id(child))
        logger.bind(actor=self.id, event_type="quarantined").error("symbol {} quarantined: {}", self.symbol, reason)
        self.d.emit(self.id, [SymbolQuarantined(symbol=self.symbol, reason=reason, ts_event_ns=now)], cause)

    def begin_recovery(self) -> None:
        """Treat the subtree as just restarted (its whole process was, its state restored from the
        store): RECOVERING, entries refused, the executor reconciled with the venue, and
        ``SymbolRecovered`` once reconciled and warm. A quarantined symbol stays quarantined."""
        if self.health is Health.QUARANTINED:
            return
        self.health = Health.RECOVERING
        self.gate.close()
        self._reconciled = False
        self._release()  # nothing is held: this asks the executor to reconcile

    def release_quarantine(self, cmd: ReleaseSymbol, cause: int) -> None:
        if self.health is not Health.QUARANTINED:
            return
        now = self.d.clock.now_ns()
        self.intensity.reset()
        self._crashed.clear()
        for aid in (self.actor_id(c) for c in self.spec.ids):
            # Inputs of a stopped subtree were counted as dropped; venue truth was held for it.
            for env in self.d.drain(aid, keep=is_venue_truth):
                self._approval_dropped(env, "QUARANTINED")
        self.health = Health.RECOVERING
        self.gate.close()
        self._reconciled = False
        self._restart(self.spec.ids, cause)
        self.d.emit(self.id, [SymbolReleased(symbol=self.symbol, who=cmd.who, reason=cmd.reason, ts_event_ns=now)], cause)
        self._release()

    # -- dispatcher hooks -------------------------------------------------------------------
    def intercept(self, env: Envelope) -> bool:
        """True when the supervisor consumes ``env`` instead of its receiver."""
        payload = env.payload
        if env.receiver == self.id:
            if isinstance(payload, ReleaseSymbol):
                self.release_quarantine(payload, env.msg_id)
            else:
                self.d.dead_letter(self.id, payload)
            return True
        if self.health is Health.RUNNING:
            return False
        if self.health is Health.QUARANTINED:
            if is_venue_truth(env):
                self.venue_truth_held += 1
                return False  # queued in the held mailbox, delivered once an operator releases the symbol
            self.dropped_while_quarantined += 1
            self._approval_dropped(env, "QUARANTINED")
            return True
        refusal = self.gate.refusal(env, self.d.clock.now_ns())
        if refusal is None:
            return False
        self.d.emit(env.receiver, refusal, env.msg_id)
        return True

    def saw(self, env: Envelope) -> None:
        """Watch the group's own emissions for the reconciliation result: the executor's, then
        Position's own check (which may still find drift the executor could not see)."""
        msg = env.payload
        if type(msg) is ReconciliationCompleted and msg.symbol == self.symbol:
            self._reconciled = msg.outcome in SETTLED_OUTCOMES

    def after_run(self) -> None:
        if self.health is not Health.RECOVERING:
            return
        now = self.d.clock.now_ns()
        if self._release_at is not None:
            if now < self._release_at:
                return
            self._release()
        if not self._held and self.gate.ready_to_trade(self._reconciled, self.d.actors.get(self.actor_id("feature"))):
            self.health = Health.RUNNING
            self.gate.open()
            logger.bind(actor=self.id, event_type="recovered").info("symbol {} recovered", self.symbol)
            self.d.emit(self.id, [SymbolRecovered(symbol=self.symbol, ts_event_ns=now)], 0)

    def status(self) -> dict[str, Any]:
        return {"health": self.health.value, "restarts": dict(self.restarts), "last_failure": dict(self.last_failure),
                "poison": self.poison, "entries_blocked": self.gate.entries_blocked,
                "dropped_while_quarantined": self.dropped_while_quarantined, "venue_truth_held": self.venue_truth_held}


class SingletonSupervisor:
    """one_for_one over Risk and the Arbitrator. A failure of either engages the kill switch:
    the restarted Risk (rebuilt from its last good state, so the latch survives) receives
    ``ActorFailed`` for a singleton, which it answers by engaging the kill switch."""

    def __init__(self, spec: SupervisorSpec, dispatcher: Any,
                 on_restarted: Callable[[str, Any], None] | None = None) -> None:
        self.id = "supervisor"
        self.spec = spec
        self.d = dispatcher
        self.intensity = RestartIntensity(spec.intensity, spec.period_s)
        self.restarts: dict[str, int] = {c: 0 for c in spec.ids}
        self.last_failure: dict[str, str] = {}
        self._crashed: set[tuple[str, int]] = set()
        self._on_restarted = on_restarted
        self.escalated = False
        self.poison = 0

    def owns(self, actor_id: str) -> bool:
        return actor_id in self.spec.ids

    def failed(self, actor_id: str, env: Envelope | None, error: BaseException | str, kind: str = "exception") -> None:
        now = self.d.clock.now_ns()
        text = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
        tag = getattr(type(env.payload), "TAG", "?") if env is not None else ""
        self.last_failure[actor_id] = text
        cause = env.msg_id if env is not None else 0
        if self.intensity.record(now):
            # Escalation past the root of this process: hold the failed singleton (fail closed:
            # nothing is approved without it) and leave the kill switch engaged.
            self.escalated = True
            self.d.hold(actor_id)
            logger.bind(actor=actor_id, event_type="escalated").critical("{} failed past its intensity: held", actor_id)
        else:
            self.d.hold(actor_id)
            self.d.replace(actor_id, self.spec.child(actor_id).start(self.d.actors[actor_id]))
            self.restarts[actor_id] += 1
            if self._on_restarted is not None:
                self._on_restarted(actor_id, self.d.actors[actor_id])
            if env is not None:
                if (actor_id, env.msg_id) in self._crashed or kind == "hang":
                    self.poison += 1
                    self.d.emit(self.id, [PoisonMessageQuarantined(actor_id=actor_id, symbol="", message_tag=tag,
                                                                   msg_id=env.msg_id, error=text, ts_event_ns=now)], cause)
                else:
                    self._crashed.add((actor_id, env.msg_id))
                    self.d.redeliver_first(actor_id, env)
            self.d.release(actor_id)
            self.d.emit(self.id, [ActorRestarted(actor_id=actor_id, symbol="", restarts=self.restarts[actor_id],
                                                 ts_event_ns=now)], cause)
        # Fail closed: Risk engages the kill switch on a singleton failure (latched, no auto-reset),
        # before it decides anything else (the message that crashed it, put back above, included).
        emit_to_risk_first(self.d, self.id, ActorFailed(actor_id=actor_id, symbol="", kind=kind, error=text,
                                                        message_tag=tag, ts_event_ns=now), cause)

    def intercept(self, env: Envelope) -> bool:
        return False

    def saw(self, env: Envelope) -> None:
        pass

    def after_run(self) -> None:
        pass

    def status(self) -> dict[str, Any]:
        return {"restarts": dict(self.restarts), "last_failure": dict(self.last_failure), "escalated": self.escalated,
                "poison": self.poison}


class SupervisionHooks:
    """Routes a dispatcher's failure, delivery and idle hooks to the supervisors it hosts."""

    def __init__(self, supervisors: list[Any], persister: Any = None) -> None:
        self.supervisors = supervisors
        self._persister = persister  # its write errors fail closed like an observer's (see after_run)
        self._dispatcher: Any = next((s.d for s in supervisors), None)
        self._by_symbol = {getattr(s, "symbol", ""): s for s in supervisors if isinstance(s, SymbolSupervisor)}
        self._singleton = next((s for s in supervisors if isinstance(s, SingletonSupervisor)), None)
        self._watchers = tuple(s for s in supervisors if isinstance(s, SymbolSupervisor))

    def supervisor_of(self, actor_id: str) -> Any:
        sym = symbol_of(actor_id)
        if sym:
            sup = self._by_symbol.get(sym)
            return sup if sup is not None and (sup.owns(actor_id) or actor_id == sup.id) else None
        return self._singleton if self._singleton is not None and self._singleton.owns(actor_id) else None

    def on_failure(self, actor_id: str, env: Envelope | None, exc: BaseException | str, kind: str = "exception") -> None:
        sup = self.supervisor_of(actor_id)
        if sup is None:
            # An unsupervised actor (a venue simulator): report it, keep it running.
            logger.bind(actor=actor_id, event_type="unsupervised_failure").error("unsupervised {} failed: {}", actor_id, exc)
            return
        sup.failed(actor_id, env, exc, kind)

    def intercept(self, env: Envelope) -> bool:
        sup = self._by_symbol.get(symbol_of(env.receiver))
        return sup.intercept(env) if sup is not None else False

    wants_inputs = False

    def external(self, env: Envelope) -> None:
        pass

    def processed(self, actor_id: str, env: Envelope, now_ns: int) -> None:
        pass

    def observer_failed(self, d: Any, name: str, env: Envelope, exc: BaseException) -> None:
        """A trading-path observer (trade log, journal) failed to write: fail closed at once. The
        failure goes to Risk as a failure of no symbol (``kind="storage"``), which engages the
        kill switch (latched: an operator resets it once the disk is fixed). The state store's
        write errors go the same way, from ``after_run``."""
        self._storage_failed(d, name, f"{type(exc).__name__}: {exc}", getattr(type(env.payload), "TAG", "?"), env.msg_id)

    def emitted(self, env: Envelope, receivers: tuple[str, ...]) -> None:
        if type(env.payload) is ReconciliationCompleted:
            for s in self._watchers:
                s.saw(env)

    def after_run(self) -> None:
        for s in self.supervisors:
            s.after_run()
        if self._persister is not None and self._persister.errors and self._dispatcher is not None:
            for actor_id, error in self._persister.take_faults().items():
                self._storage_failed(self._dispatcher, "state_store", f"saving {actor_id}: {error}", "")

    def _storage_failed(self, d: Any, writer: str, error: str, tag: str, cause: int = 0) -> None:
        emit_to_risk_first(d, "supervisor", ActorFailed(actor_id=writer, symbol="", kind="storage", error=error,
                                                        message_tag=tag, ts_event_ns=d.clock.now_ns()), cause)

    def status(self) -> dict[str, Any]:
        out = {s.id: s.status() for s in self.supervisors}
        return out
