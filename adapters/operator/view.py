"""ClusterView: what the operator surface reads from, and commands through, a running cluster.

Reads come from three places: the ``SummaryBoard`` observer (trading state, regime, position and
PnL per symbol), the view's own observation of the traffic (entry times, decision cycles,
failures and restarts per actor), and the dispatchers themselves, asked on their own threads
with ``runtime.ask`` (Risk's status, mailbox depths). Commands go to Risk (or a symbol's
supervisor) with ``runtime.send`` and are journaled first, with who sent them and why.

Every public method is safe to call from any thread except a group thread (``ask`` would wait
on the calling group); the server calls them from an executor thread.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from decimal import Decimal
from typing import Any, Protocol

from arbor.actors.assumptions import regime_assumptions
from arbor.actors.cluster.observers import SummaryBoard, iso
from arbor.actors.topology import role_of, symbol_of
from arbor.messages import (
    ALL_SYMBOLS,
    Action,
    ActorFailed,
    ActorRestarted,
    Direction,
    EngageKillSwitch,
    Envelope,
    MandateKind,
    MandateSet,
    PoisonMessageQuarantined,
    PositionChanged,
    PositionState,
    ReleaseSymbol,
    ResetKillSwitch,
    SetTradingState,
    SymbolQuarantined,
    SymbolRecovered,
    SymbolReleased,
    TradingState,
)
from arbor.messages.display import decimal_text

COORDINATOR = "coordinator"
OPERATOR = "operator"
ZERO = Decimal(0)

Journal = Callable[[Envelope], None]


class Runtime(Protocol):
    """The part of ``ThreadedRuntime`` the view uses."""

    clock: Any
    msg_ids: Callable[[], int]

    def send(self, receiver: str, msg: Any, sender: str = ...) -> Any: ...

    def ask(self, group: str, fn: Callable[[Any], Any], timeout: float = ...) -> Any: ...

    def groups(self) -> list[str]: ...


class OperatorView(Protocol):
    """What ``OperatorServer`` and ``EngineCycle`` read and command: ``ClusterView`` in one process,
    ``adapters.operator.cluster_view.DistributedView`` across processes. Commands return the
    envelopes sent (``msg_id``, ``receiver``, ``payload``); a bad command raises ``CommandError``."""

    def state(self) -> dict[str, Any]: ...

    def positions(self) -> dict[str, Any]: ...

    def risk_status(self) -> dict[str, Any]: ...

    def tree(self) -> dict[str, Any]: ...

    def mailbox_depths(self) -> tuple[dict[str, int], list[str]]: ...

    def assumptions(self) -> dict[str, Any]: ...

    def record_engine_cycle(self, ts_ns: int) -> None: ...

    def kill(self, who: str, reason: str) -> list[Envelope]: ...

    def reset(self, who: str, reason: str) -> list[Envelope]: ...

    def pause(self, symbol: str | None, who: str, reason: str) -> list[Envelope]: ...

    def resume(self, symbol: str | None, who: str, reason: str) -> list[Envelope]: ...

    def release(self, symbol: str, who: str, reason: str) -> list[Envelope]: ...

    def flatten(self, symbol: str, who: str, reason: str) -> list[Envelope]: ...


class CommandError(ValueError):
    """An operator command that cannot be sent as given (unknown symbol, missing reason)."""


class ClusterFacts:
    """Observer: what the view learns from the traffic (entry times, decision cycles, failures and
    restarts per actor, quarantined symbols). Runs on group threads; a short locked update each."""

    wants_inputs = False

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entry_ns: dict[str, int] = {}
        self._decisions: dict[str, int] = {}  # symbol -> decision cycles seen
        self._last_decision_ns: int | None = None
        self._actors: dict[str, dict[str, Any]] = {}  # supervision facts per actor id
        self._quarantined: set[str] = set()
        self._storage_faults: dict[str, str] = {}  # writer (trade_log, journal, ...) -> its first error

    def external(self, env: Envelope) -> None:
        pass

    def processed(self, actor_id: str, env: Envelope, now_ns: int = 0) -> None:
        pass

    def restore_entries(self, entry_ns: dict[str, int]) -> None:
        """Entry times of positions opened before a restart (the trade log's open trades); a
        symbol announced FLAT at start drops its entry."""
        with self._lock:
            self._entry_ns.update(entry_ns)

    def emitted(self, env: Envelope, receivers: tuple[str, ...]) -> None:
        msg = env.payload
        t = type(msg)
        if t is MandateSet:
            with self._lock:
                self._decisions[msg.symbol] = self._decisions.get(msg.symbol, 0) + 1
                self._last_decision_ns = msg.ts_event_ns
        elif t is PositionChanged:
            with self._lock:
                if msg.state is PositionState.FLAT:
                    self._entry_ns.pop(msg.symbol, None)
                elif msg.qty > 0:
                    self._entry_ns.setdefault(msg.symbol, msg.ts_event_ns)
        elif t is ActorFailed:
            with self._lock:
                a = self._actor(msg.actor_id)
                a["failures"] += 1
                a["last_failure"] = {"kind": msg.kind, "error": msg.error, "message_tag": msg.message_tag,
                                     "ts": iso(msg.ts_event_ns)}
                a["state"] = "failed"
                if msg.kind == "storage":  # a trading path cannot write: unhealthy until restarted
                    self._storage_faults.setdefault(msg.actor_id, msg.error)
        elif t is ActorRestarted:
            with self._lock:
                a = self._actor(msg.actor_id)
                a["restarts"] = max(a["restarts"] + 1, msg.restarts)
                a["state"] = "running"
        elif t is SymbolQuarantined:
            with self._lock:
                self._quarantined.add(msg.symbol)
        elif t in (SymbolRecovered, SymbolReleased):
            with self._lock:
                self._quarantined.discard(msg.symbol)
                for aid, a in self._actors.items():
                    if symbol_of(aid) == msg.symbol and a["state"] == "failed":
                        a["state"] = "running"
        elif t is PoisonMessageQuarantined:
            with self._lock:
                self._actor(msg.actor_id)["poison_messages"] += 1

    def _actor(self, actor_id: str) -> dict[str, Any]:
        a = self._actors.get(actor_id)
        if a is None:
            a = self._actors[actor_id] = {"failures": 0, "restarts": 0, "last_failure": None, "state": "running",
                                          "poison_messages": 0}
        return a

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {"entry_ns": dict(self._entry_ns), "decisions": sum(self._decisions.values()),
                    "last_decision_ns": self._last_decision_ns, "quarantined": set(self._quarantined),
                    "actors": {aid: dict(a) for aid, a in self._actors.items()},
                    "storage_faults": dict(self._storage_faults)}


class ViewLifecycle:
    """What every view keeps of its cluster's life: the stage, the last error, when it started
    running and the liveness cycles seen. Thread-safe: the server, the liveness cycle and whoever
    runs the cluster call in from different threads."""

    def __init__(self, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._stage = "created"
        self._error: str | None = None
        self._started_at: float | None = None
        self._engine_cycles = 0
        self._last_engine_cycle_ns: int | None = None

    def set_stage(self, stage: str) -> None:
        """Name the lifecycle stage: ``starting``, ``running``, ``stopping``, ``stopped``."""
        with self._lock:
            self._stage = stage
            if stage == "running" and self._started_at is None:
                self._started_at = self._monotonic()

    def set_error(self, error: str | None) -> None:
        with self._lock:
            self._error = error

    def record_engine_cycle(self, ts_ns: int) -> None:
        """One liveness cycle passed (called by ``liveness.EngineCycle``)."""
        with self._lock:
            self._engine_cycles += 1
            self._last_engine_cycle_ns = ts_ns


class ClusterView(ViewLifecycle):
    """Read/command facade over a running cluster (its ``board`` and ``facts`` observe the traffic)."""

    def __init__(self, runtime: Runtime, board: SummaryBoard, facts: ClusterFacts, symbols: Iterable[str], *,
                 journal: Journal | None = None, ask_timeout_s: float = 2.0,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.runtime = runtime
        self.board = board
        self.facts = facts
        self.symbols = tuple(symbols)
        self._journal = journal
        self._ask_timeout = ask_timeout_s
        super().__init__(monotonic)

    # -- reads -------------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        """Engine status, lifecycle stage, cycles, uptime and the symbols allowed to open positions."""
        snap = self.board.snapshot()
        facts = self.facts.snapshot()
        decisions, last_decision, quarantined = facts["decisions"], facts["last_decision_ns"], facts["quarantined"]
        with self._lock:
            stage, error, started = self._stage, self._error, self._started_at
            cycles, last_cycle = self._engine_cycles, self._last_engine_cycle_ns
        storage = facts["storage_faults"]
        if error or storage:
            status = "error"
            error = error or "; ".join(f"{w} cannot write: {e}" for w, e in sorted(storage.items()))
        elif stage in ("stopping", "stopped", "created"):
            status = "stopped"
        elif snap["global_state"] != TradingState.ACTIVE.value or snap["kill_switch"]["engaged"]:
            status = "paused"
        else:
            status = "running"
        halted = snap["kill_switch"]["engaged"] or snap["global_state"] != TradingState.ACTIVE.value
        symbols = {s: {"state": r["state"], "regime": r["regime"], "position": r["position"],
                       "quarantined": s in quarantined, "events": r["events"], "orders": r["orders"],
                       "fills": r["fills"], "denials": r["denials"], "decode_failures": r["decode_failures"]}
                   for s, r in snap["symbols"].items()}
        active = [s for s, r in symbols.items() if not halted and r["state"] == TradingState.ACTIVE.value
                  and not r["quarantined"]]
        return {
            "status": status, "stage": stage, "error": error,
            "uptime_s": round(self._monotonic() - started, 3) if started is not None else 0.0,
            "cycle_count": cycles, "last_cycle": iso(last_cycle) if last_cycle else None,
            "decision_cycles": decisions, "last_decision": iso(last_decision) if last_decision else None,
            "global_state": snap["global_state"], "kill_switch": jsonable(snap["kill_switch"]),
            "active_symbols": active, "symbols": symbols, "storage_faults": storage,
        }

    def storage_faults(self) -> dict[str, str]:
        """Writers on a trading path that failed (trade log, journal, store): the engine is unhealthy."""
        return dict(self.facts.snapshot()["storage_faults"])

    def positions(self) -> dict[str, Any]:
        """Open positions sorted by symbol (qty signed, negative for shorts), with totals."""
        snap = self.board.snapshot()
        entries = self.facts.snapshot()["entry_ns"]
        rows = []
        for sym in sorted(snap["symbols"]):
            r = snap["symbols"][sym]
            if not r["qty"] or r["direction"] is None:
                continue
            sign = 1 if r["direction"] == Direction.LONG.value else -1
            entry, mark = r["avg"], r["mark"] if r["mark"] is not None else r["avg"]
            unrealized = SummaryBoard.unrealized({**r, "mark": mark})
            cost = entry * r["qty"] if entry else ZERO
            rows.append({
                "symbol": sym, "side": r["direction"], "state": r["position"], "qty": r["qty"] * sign,
                "entry_price": entry, "current_price": mark, "market_value": mark * r["qty"] * sign,
                "unrealized_pnl": unrealized, "unrealized_pnl_pct": (unrealized / cost * 100) if cost else ZERO,
                "realized_pnl": r["realized"], "fees": r["fees"],
                "entry_time": iso(entries[sym]) if sym in entries else None,
            })
        gross = sum((abs(p["market_value"]) for p in rows), ZERO)
        for p in rows:
            p["weight"] = abs(p["market_value"]) / gross if gross else ZERO
        realized = sum((r["realized"] - r["fees"] for r in snap["symbols"].values()), ZERO)
        totals = {
            "positions": len(rows), "long": sum(1 for p in rows if p["side"] == Direction.LONG.value),
            "short": sum(1 for p in rows if p["side"] == Direction.SHORT.value),
            "gross_value": gross, "net_value": sum((p["market_value"] for p in rows), ZERO),
            "unrealized_pnl": sum((p["unrealized_pnl"] for p in rows), ZERO), "realized_pnl_net_of_fees": realized,
        }
        return jsonable({"positions": rows, "totals": totals})

    def risk_status(self) -> dict[str, Any]:
        """``RiskLogic.status()``, read on the coordinator thread."""
        return self.runtime.ask(COORDINATOR, lambda d: d.actors["risk"].status(), timeout=self._ask_timeout)

    def assumptions(self) -> dict[str, Any]:
        """Every symbol's declared market assumptions (health, measured value, since when), read on
        each symbol's own thread, with the symbols Risk holds in REDUCING for them."""
        rows: dict[str, list[dict[str, Any]]] = {}
        unavailable: list[str] = []
        for s in self.symbols:
            regime_id = f"{s}/regime"

            def read(d: Any, regime_id: str = regime_id) -> list[dict[str, Any]]:
                return regime_assumptions(d.actors.get(regime_id))

            try:
                rows[s] = self.runtime.ask(s, read, timeout=self._ask_timeout)
            except Exception:  # a busy or restarting symbol is shown as unavailable, not as an error
                unavailable.append(s)
        try:
            holds = self.risk_status().get("assumption_holds", {})
        except Exception:
            holds = {}
        return assumption_report(rows, unavailable, holds)

    def tree(self) -> dict[str, Any]:
        """Every actor with state, restarts, last failure and mailbox depth, grouped as the runtime places them."""
        known = self.facts.snapshot()
        facts, quarantined = known["actors"], known["quarantined"]
        groups = []
        for group in self.runtime.groups():
            try:
                found = self.runtime.ask(group, _describe_group, timeout=self._ask_timeout)
                responsive = True
            except Exception as exc:  # a busy or dead group is a finding, not an error of the view
                found = {"actors": {}, "error": repr(exc)}
                responsive = False
            actors = []
            for aid, d in sorted(found["actors"].items()):
                f = facts.get(aid, {})
                restarts = d.get("restarts") if d.get("restarts") is not None else f.get("restarts", 0)
                state = d.get("state", "running")
                if symbol_of(aid) in quarantined:
                    state = "quarantined"
                elif f.get("state") == "failed" and state == "running":
                    state = "failed"
                actors.append({
                    "id": aid, "role": role_of(aid), "state": state, "health": _health(state, restarts),
                    "restarts": restarts, "failures": f.get("failures", 0),
                    "last_failure": d.get("last_failure") or f.get("last_failure"),
                    "mailbox": d["mailbox"], "poison_messages": f.get("poison_messages", 0),
                })
            health = "down" if not responsive else _worst(a["health"] for a in actors)
            groups.append({"group": group, "responsive": responsive, "health": health,
                           "error": found.get("error"), "processed": found.get("processed"),
                           "dead_letters": found.get("dead_letters"), "failures": found.get("failures"),
                           "actors": actors})
        return {"groups": groups, "health": _worst(g["health"] for g in groups)}

    def mailbox_depths(self) -> tuple[dict[str, int], list[str]]:
        """Mailbox depth per actor id, and the groups that did not answer in time."""
        depths: dict[str, int] = {}
        silent: list[str] = []
        for group in self.runtime.groups():
            try:
                found = self.runtime.ask(group, _describe_group, timeout=self._ask_timeout)
            except Exception:
                silent.append(group)
                continue
            depths.update({aid: d["mailbox"] for aid, d in found["actors"].items()})
        return depths, silent

    # -- commands ----------------------------------------------------------------------------
    def command(self, msg: Any, who: str) -> Envelope:
        """Journal then send an operator command; return the journaled envelope.

        Risk takes ``EngageKillSwitch``, ``ResetKillSwitch`` and ``SetTradingState``; a symbol's
        supervisor takes ``ReleaseSymbol``. ``who`` names the operator (the command's own
        ``who``/``reason`` fields carry the same, so the journal says who and why).
        """
        if isinstance(msg, (EngageKillSwitch, ResetKillSwitch, SetTradingState, Action)):
            receiver = "risk"
        elif isinstance(msg, ReleaseSymbol):
            receiver = f"{msg.symbol}/supervisor"
        else:
            raise CommandError(f"{type(msg).__name__} is not an operator command")
        if isinstance(msg, ResetKillSwitch) and not msg.reason.strip():
            raise CommandError("a kill-switch reset needs a reason")
        scope = getattr(msg, "scope", None) or getattr(msg, "symbol", None)
        if scope and scope != ALL_SYMBOLS and scope not in self.symbols:
            raise CommandError(f"unknown symbol {scope!r}")
        now = self.runtime.clock.now_ns()
        env = Envelope(msg_id=self.runtime.msg_ids(), sender=f"{OPERATOR}:{who}", receiver=receiver,
                       ts_event_ns=now, ts_recv_ns=now, causation_id=0, payload=msg)
        if self._journal is not None:
            self._journal(env)  # before sending: a command that was sent is always on record
        self.runtime.send(receiver, msg, sender=OPERATOR)
        return env

    def pause(self, symbol: str | None, who: str, reason: str) -> list[Envelope]:
        """REDUCING for one symbol or (``None``) all: no new entries, reductions and exits still allowed."""
        return [self.command(SetTradingState(scope=symbol or ALL_SYMBOLS, state=TradingState.REDUCING, who=who,
                                             reason=reason), who)]

    def resume(self, symbol: str | None, who: str, reason: str) -> list[Envelope]:
        return [self.command(SetTradingState(scope=symbol or ALL_SYMBOLS, state=TradingState.ACTIVE, who=who,
                                             reason=reason), who)]

    def kill(self, who: str, reason: str) -> list[Envelope]:
        return [self.command(EngageKillSwitch(who=who, reason=reason), who)]

    def reset(self, who: str, reason: str) -> list[Envelope]:
        return [self.command(ResetKillSwitch(who=who, reason=reason), who)]

    def release(self, symbol: str, who: str, reason: str) -> list[Envelope]:
        return [self.command(ReleaseSymbol(symbol=symbol, who=who, reason=reason), who)]

    def flatten(self, symbol: str, who: str, reason: str) -> list[Envelope]:
        """REDUCING for ``symbol``, then an EXIT of whatever it holds.

        Until Risk takes a ``FlattenSymbol`` command of its own, the EXIT is an ``Action`` built
        from Risk's book (read on the coordinator thread) and sent to Risk, which checks and
        approves it like any other; an EXIT is allowed while REDUCING. A symbol that is flat by
        then gets ``ActionNotApplicable`` from its position: harmless.
        """
        if symbol not in self.symbols:
            raise CommandError(f"unknown symbol {symbol!r}")
        sent = self.pause(symbol, who, f"flatten: {reason}")
        book = self.runtime.ask(COORDINATOR, lambda d: _book_row(d.actors["risk"], symbol), timeout=self._ask_timeout)
        if book is None:
            return sent
        now = self.runtime.clock.now_ns()
        action = Action(action_id=f"operator:{symbol}:flatten:{now}", symbol=symbol, cycle=book["cycle"],
                        kind=MandateKind.EXIT, direction=book["direction"], qty=book["qty"],
                        mark_price=book["price"], data_ts_ns=book["data_ts_ns"], ts_event_ns=now,
                        reason=f"operator_flatten: {reason}")
        return sent + [self.command(action, who)]


def assumption_report(rows: dict[str, list[dict[str, Any]]], unavailable: Iterable[str],
                      holds: dict[str, Any]) -> dict[str, Any]:
    """The ``/api/assumptions`` body: rows per symbol (``since`` as ISO time), counts by status,
    the symbols whose rows could not be read and Risk's holds."""
    counts = {"OK": 0, "DRIFTING": 0, "BROKEN": 0, "UNKNOWN": 0}
    symbols: dict[str, list[dict[str, Any]]] = {}
    for sym in sorted(rows):
        symbols[sym] = [{**r, "since": iso(r["since_ns"]) if r.get("since_ns") else None} for r in rows[sym]]
        for r in rows[sym]:
            counts[r["status"]] = counts.get(r["status"], 0) + 1
    return jsonable({"symbols": symbols, "counts": counts, "unavailable": sorted(unavailable), "holds": holds})


def _book_row(risk: Any, symbol: str) -> dict[str, Any] | None:
    b = risk.book.get(symbol)
    if b.qty <= 0 or b.direction is None:
        return None
    return {"qty": b.qty, "direction": b.direction, "price": b.price, "data_ts_ns": b.data_ts_ns or 0,
            "cycle": b.last_cycle}


def _describe_group(d: Any) -> dict[str, Any]:
    """Runs on the group's thread: what its dispatcher (and supervisors, once attached) know of each actor.

    Tolerant by design: supervision fields are read only where they exist, so the tree works
    with or without ``dispatcher.supervision`` (``status()`` -> ``{supervisor_id: {health,
    restarts: {child: n}, last_failure: {child: text}}}``).
    """
    held: set[str] = getattr(d, "_held", set())
    actors: dict[str, dict[str, Any]] = {
        aid: {"mailbox": len(box), "state": "held" if aid in held else "running", "restarts": None,
              "last_failure": None}
        for aid, box in d.mailboxes.items()}
    supervisors: dict[str, Any] = {}
    hooks = getattr(d, "supervision", None)
    status = getattr(hooks, "status", None)
    if callable(status):
        try:
            supervisors = status() or {}
        except Exception as exc:  # the tree must render even if a supervisor's report breaks
            supervisors = {"supervisor": {"health": "UNKNOWN", "error": repr(exc)}}
    for sup_id, st in supervisors.items():
        prefix = sup_id[: -len("supervisor")] if sup_id.endswith("/supervisor") else ""
        health = str(st.get("health", "RUNNING")).lower()
        for child, n in (st.get("restarts") or {}).items():
            a = actors.get(prefix + child)
            if a is not None:
                a["restarts"] = n
        for child, text in (st.get("last_failure") or {}).items():
            a = actors.get(prefix + child)
            if a is not None:
                a["last_failure"] = jsonable(text)
        if prefix:
            for aid, a in actors.items():
                if aid.startswith(prefix) and health in ("quarantined", "recovering") and a["state"] == "running":
                    a["state"] = health
                elif aid.startswith(prefix) and health == "quarantined":
                    a["state"] = "quarantined"
        actors[sup_id] = {"mailbox": 0, "state": health, "restarts": None,
                          "last_failure": None, "supervisor": jsonable(st)}
    return {"actors": actors, "processed": d.processed_count, "dead_letters": d.dead_letters,
            "failures": d.failures}


_HEALTH_ORDER = {"ok": 0, "degraded": 1, "down": 2}


def _health(state: str, restarts: int | None) -> str:
    if state in ("quarantined", "failed", "dead", "stopped", "unknown"):
        return "down"
    if state not in ("running", "ok") or (restarts or 0) > 0:
        return "degraded"
    return "ok"


def _worst(healths: Iterable[str]) -> str:
    return max(healths, key=lambda h: _HEALTH_ORDER.get(h, 2), default="ok")


def jsonable(value: Any) -> Any:
    """Decimals as strings (rounded for people: ``messages.display``), enums as values, containers
    recursively: ready for ``json.dumps``."""
    if isinstance(value, Decimal):
        return decimal_text(value)
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if hasattr(value, "value") and not isinstance(value, (int, float, str, bool)):
        return value.value
    if value is None or isinstance(value, (int, float, str, bool)):
        return value
    return str(value)
