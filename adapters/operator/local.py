"""The single-process source of the operator view: a ``ThreadedRuntime`` and its observers.

Reads come from three places: the ``SummaryBoard`` observer (trading state, regime, position,
PnL and counters per symbol), ``ClusterFacts`` (entry times, decision cycles, failures and
restarts per actor, quarantined symbols, storage faults) and the dispatchers themselves, asked
on their own threads with ``runtime.ask`` (Risk's status and book, assumptions, mailbox depths).
Commands are journaled, then sent with ``runtime.send``: a send cannot fail on the way.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from arbor.actors.assumptions import regime_assumptions
from arbor.actors.cluster.observers import SummaryBoard, iso
from arbor.actors.topology import role_of, symbol_of
from arbor.adapters.operator.view import SENDING, jsonable
from arbor.messages import (
    ActorFailed,
    ActorRestarted,
    Envelope,
    PoisonMessageQuarantined,
    PositionChanged,
    PositionState,
    SymbolQuarantined,
    SymbolRecovered,
    SymbolReleased,
)

COORDINATOR = "coordinator"
OPERATOR = "operator"
MODE = "single-process"

Journal = Callable[[Envelope], None]


class Runtime(Protocol):
    """The part of ``ThreadedRuntime`` the source uses."""

    clock: Any
    msg_ids: Callable[[], int]

    def send(self, receiver: str, msg: Any, sender: str = ...) -> Any: ...

    def ask(self, group: str, fn: Callable[[Any], Any], timeout: float = ...) -> Any: ...

    def groups(self) -> list[str]: ...


class ClusterFacts:
    """Observer: what the view learns from the traffic (entry times, decision cycles, failures and
    restarts per actor, quarantined symbols). Runs on group threads; a short locked update each."""

    wants_inputs = False

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entry_ns: dict[str, int] = {}
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
        if t is PositionChanged:
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
            return {"entry_ns": dict(self._entry_ns), "quarantined": set(self._quarantined),
                    "actors": {aid: dict(a) for aid, a in self._actors.items()},
                    "storage_faults": dict(self._storage_faults)}


class RuntimeSource:
    """``ViewSource`` over one ``ThreadedRuntime``: its ``board`` and ``facts`` observe the traffic."""

    def __init__(self, runtime: Runtime, board: SummaryBoard, facts: ClusterFacts, symbols: Iterable[str], *,
                 journal: Journal | None = None, ask_timeout_s: float = 2.0) -> None:
        self.runtime = runtime
        self.board = board
        self.facts = facts
        self.symbols = tuple(symbols)
        self._journal = journal
        self._ask_timeout = ask_timeout_s

    # -- reads -------------------------------------------------------------------------------
    def read(self) -> dict[str, Any]:
        snap = self.board.snapshot()
        facts = self.facts.snapshot()
        quarantined, entries = facts["quarantined"], facts["entry_ns"]
        storage = facts["storage_faults"]
        symbols = {}
        for s, r in snap["symbols"].items():
            q = s in quarantined
            symbols[s] = {
                "state": r["state"], "regime": r["regime"], "position": r["position"], "direction": r["direction"],
                "qty": r["qty"], "entry": r["avg"], "mark": r["mark"] if r["mark"] is not None else r["avg"],
                "realized": r["realized"], "fees": r["fees"], "entry_ns": entries.get(s), "quarantined": q,
                "health": "QUARANTINED" if q else "RUNNING", "stale": False, "worker": None,
                "events": r["events"], "decisions": r["decisions"], "orders": r["orders"], "fills": r["fills"],
                "denials": r["denials"], "decode_failures": r["decode_failures"],
            }
        rows = snap["symbols"].values()
        ks = snap["kill_switch"]
        kill = {"engaged": ks["engaged"], "who": ks.get("who") or ks.get("reset_by"), "reason": ks.get("reason"),
                "ts": ks.get("ts"), "source": "risk"}
        return {
            "mode": MODE, "global_state": snap["global_state"], "kill_switch": kill,
            "decisions": sum(r["decisions"] for r in rows),
            "last_decision_ns": max((r["last_decision_ns"] for r in rows if r["last_decision_ns"]), default=None),
            "error": "; ".join(f"{w} cannot write: {e}" for w, e in sorted(storage.items())) or None,
            "down": None, "degraded": False, "escalated": "", "storage_faults": storage, "nodes": {},
            "symbols": symbols,
        }

    def storage_faults(self) -> dict[str, str]:
        return dict(self.facts.snapshot()["storage_faults"])

    def risk_status(self) -> dict[str, Any]:
        """``RiskLogic.status()``, read on the coordinator thread."""
        return self.runtime.ask(COORDINATOR, lambda d: d.actors["risk"].status(), timeout=self._ask_timeout)

    def assumption_rows(self) -> tuple[dict[str, list[dict[str, Any]]], list[str], dict[str, Any]]:
        """Each symbol's assumption rows, read on the symbol's own thread (a busy or restarting
        symbol is unavailable, not an error), and Risk's holds."""
        rows: dict[str, list[dict[str, Any]]] = {}
        unavailable: list[str] = []
        for s in self.symbols:
            regime_id = f"{s}/regime"

            def read(d: Any, regime_id: str = regime_id) -> list[dict[str, Any]]:
                return regime_assumptions(d.actors.get(regime_id))

            try:
                rows[s] = self.runtime.ask(s, read, timeout=self._ask_timeout)
            except Exception:
                unavailable.append(s)
        try:
            holds = self.risk_status().get("assumption_holds", {})
        except Exception:
            holds = {}
        return rows, unavailable, holds

    def groups(self) -> list[dict[str, Any]]:
        """Each dispatcher group as it answers on its own thread, with what the traffic said of its actors."""
        known = self.facts.snapshot()
        facts, quarantined = known["actors"], known["quarantined"]
        out = []
        for group in self.runtime.groups():
            try:
                found = self.runtime.ask(group, describe_group, timeout=self._ask_timeout)
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
                actors.append({"id": aid, "role": role_of(aid), "state": state, "restarts": restarts,
                               "failures": f.get("failures", 0),
                               "last_failure": d.get("last_failure") or f.get("last_failure"),
                               "mailbox": d["mailbox"], "poison_messages": f.get("poison_messages", 0)})
            out.append({"group": group, "responsive": responsive, "error": found.get("error"),
                        "processed": found.get("processed"), "dead_letters": found.get("dead_letters"),
                        "failures": found.get("failures"), "process": None, "restarts": 0, "actors": actors})
        return out

    def mailbox_depths(self) -> tuple[dict[str, int], list[str]]:
        depths: dict[str, int] = {}
        silent: list[str] = []
        for group in self.runtime.groups():
            try:
                found = self.runtime.ask(group, describe_group, timeout=self._ask_timeout)
            except Exception:
                silent.append(group)
                continue
            depths.update({aid: d["mailbox"] for aid, d in found["actors"].items()})
        return depths, silent

    def book(self, symbol: str) -> dict[str, Any] | None:
        """Risk's book row, read on the coordinator thread."""
        return self.runtime.ask(COORDINATOR, lambda d: _book_row(d.actors["risk"], symbol), timeout=self._ask_timeout)

    # -- commands ----------------------------------------------------------------------------
    def now_ns(self) -> int:
        return int(self.runtime.clock.now_ns())

    def next_id(self) -> int:
        return self.runtime.msg_ids()

    def check_deliverable(self, receiver: str) -> None:
        """Every receiver lives in this process: a command can always be sent."""

    def record(self, env: Envelope, outcome: str) -> None:
        """Journal the envelope before it is sent (the journal keeps inputs, not outcomes)."""
        if outcome == SENDING and self._journal is not None:
            self._journal(env)

    def deliver(self, env: Envelope) -> None:
        self.runtime.send(env.receiver, env.payload, sender=OPERATOR)


def _book_row(risk: Any, symbol: str) -> dict[str, Any] | None:
    b = risk.book.get(symbol)
    if b.qty <= 0 or b.direction is None:
        return None
    return {"qty": b.qty, "direction": b.direction, "price": b.price, "data_ts_ns": b.data_ts_ns or 0,
            "cycle": b.last_cycle}


def describe_group(d: Any) -> dict[str, Any]:
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
