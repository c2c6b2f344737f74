"""ClusterView: every answer the operator sees, in one process or across many.

The view builds the JSON of ``/api/state``, ``/api/positions``, ``/api/tree``,
``/api/risk/status``, ``/api/assumptions`` and the mailbox depths the liveness cycle samples,
and it validates, records and sends the six commands (pause, resume, kill, reset, release,
flatten). What it reads and where a command goes come from a ``ViewSource``:

- ``adapters.operator.local.RuntimeSource``: one process; reads the ``SummaryBoard`` and
  ``ClusterFacts`` observers and asks the dispatchers on their own threads (``runtime.ask``);
  commands are journaled, then sent with ``runtime.send``.
- ``adapters.operator.cluster_view.NodesSource``: many processes; reads the nodes' status files
  and the ClusterSupervisor's ``ClusterStatus``; commands are appended to
  ``cluster/events/operator.jsonl``, then forwarded through the supervisor.

So the shapes, the health words, the worst-health rule, the kill-switch row, the position rows,
the command checks and the operator-command event exist once, here. A field one mode cannot know
is ``None`` there (the multi-process cluster has no mailbox depths, the single process no nodes),
never a different shape.

Every public method is safe from any thread except a group thread of a single-process runtime
(an ``ask`` would wait on the calling group); the server calls them from an executor thread.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from decimal import Decimal
from typing import Any, Protocol

from arbor.actors.cluster.observers import iso
from arbor.adapters.operator.events import INFO, EventHub, make_event
from arbor.messages import (
    ALL_SYMBOLS,
    Action,
    Direction,
    EngageKillSwitch,
    Envelope,
    MandateKind,
    ReleaseSymbol,
    ResetKillSwitch,
    SetTradingState,
    TradingState,
)
from arbor.messages.display import decimal_text
from arbor.messages.risk import has_visible_text

OPERATOR = "operator"
ZERO = Decimal(0)
SENDING = "sending"  # the outcome a command is recorded with before it is sent


class OperatorView(Protocol):
    """What ``OperatorServer`` and ``EngineCycle`` read and command (``ClusterView``). Commands
    return the envelopes sent (``msg_id``, ``receiver``, ``payload``); a bad command raises
    ``CommandError``, one that cannot be delivered the source's error (the server says 503)."""

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


class ViewSource(Protocol):
    """What a run mode gives the view: facts in plain rows, and a way to send a command.

    ``read()`` returns one consistent reading::

        {"mode": "single-process" | "multi-process",
         "global_state": str, "kill_switch": {"engaged", "who", "reason", "ts_ns" or "ts", "source"},
         "decisions": int | None, "last_decision_ns": int | None,
         "error": str | None,     # the engine cannot trade safely (a storage fault, an escalation)
         "down": str | None,      # the part that holds Risk does not answer (why)
         "degraded": bool,        # some part does not answer
         "escalated": str, "storage_faults": {writer: error}, "nodes": {name: process row},
         "symbols": {symbol: SYMBOL ROW}}

    and a SYMBOL ROW is ``state`` (the symbol's own trading state), ``regime``, ``position``,
    ``direction``, ``qty`` (unsigned Decimal), ``entry`` and ``mark`` (Decimal or None; the
    mark is the best price the source knows), ``realized`` and ``fees`` (Decimal or None),
    ``entry_ns``, ``quarantined``, ``health`` (RUNNING, RECOVERING, QUARANTINED, DOWN),
    ``stale``, ``worker`` (slot or None) and the counters ``events``, ``decisions``,
    ``orders``, ``fills``, ``denials``, ``decode_failures`` (None where unknown).

    ``groups()`` lists each placement group (a dispatcher group or a process) as ``group``,
    ``responsive``, ``error``, ``processed``, ``dead_letters``, ``failures``, ``process``,
    ``restarts`` (of the process) and ``actors``: rows of ``id``, ``role``, ``state``,
    ``restarts``, ``failures``, ``last_failure``, ``mailbox``, ``poison_messages``.
    """

    symbols: tuple[str, ...]

    def read(self) -> dict[str, Any]: ...

    def storage_faults(self) -> dict[str, str]: ...

    def risk_status(self) -> dict[str, Any]: ...

    def assumption_rows(self) -> tuple[dict[str, list[dict[str, Any]]], list[str], dict[str, Any]]: ...

    def groups(self) -> list[dict[str, Any]]: ...

    def mailbox_depths(self) -> tuple[dict[str, int], list[str]]: ...

    def book(self, symbol: str) -> dict[str, Any] | None:
        """Risk's book for ``symbol`` (``qty``, ``direction``, ``price``, ``data_ts_ns``, ``cycle``), None if flat."""

    def now_ns(self) -> int: ...

    def next_id(self) -> int: ...

    def check_deliverable(self, receiver: str) -> None:
        """Raise if a command for ``receiver`` cannot arrive now (nothing is recorded then)."""

    def record(self, env: Envelope, outcome: str) -> None:
        """Put the command on record: ``SENDING`` before it is sent, ``not delivered: ...`` after a failure."""

    def deliver(self, env: Envelope) -> None:
        """Send the command; raise if it did not reach its receiver's process."""


class ClusterView:
    """The operator's view of a cluster, whatever runs it: reads and commands through ``source``.

    It also keeps the surface's own life: the stage, the last error, when it started running
    and the liveness cycles seen (the server, the liveness cycle and whoever runs the cluster
    call in from different threads; a lock guards these fields).
    """

    def __init__(self, source: ViewSource, *, hub: EventHub | None = None,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.source = source
        self.symbols = tuple(source.symbols)
        self.hub = hub
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._stage = "created"
        self._error: str | None = None
        self._started_at: float | None = None
        self._engine_cycles = 0
        self._last_engine_cycle_ns: int | None = None

    # -- lifecycle ---------------------------------------------------------------------------
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

    # -- reads -------------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        """Engine status, lifecycle stage, cycles, uptime, kill switch, nodes and every symbol with
        its state, health and counters; ``active_symbols`` are those allowed to open positions."""
        r = self.source.read()
        with self._lock:
            stage, own_error, started = self._stage, self._error, self._started_at
            cycles, last_cycle = self._engine_cycles, self._last_engine_cycle_ns
        kill = r["kill_switch"]
        halted = bool(kill.get("engaged")) or r["global_state"] != TradingState.ACTIVE.value
        error = own_error or r["error"]
        if error:
            status = "error"
        elif stage in ("created", "stopping", "stopped"):
            status = "stopped"
        elif r["down"]:
            status, error = "error", r["down"]
        elif r["degraded"]:
            status = "degraded"
        else:
            status = "paused" if halted else "running"
        symbols = {s: {k: row.get(k) for k in _SYMBOL_FIELDS} for s, row in r["symbols"].items()}
        active = [s for s, row in symbols.items() if not halted and row["state"] == TradingState.ACTIVE.value
                  and row["health"] == "RUNNING" and not row["quarantined"]]
        last_decision = r["last_decision_ns"]
        return jsonable({
            "mode": r["mode"], "status": status, "stage": stage, "error": error, "escalated": r["escalated"],
            "uptime_s": round(self._monotonic() - started, 3) if started is not None else 0.0,
            "cycle_count": cycles, "last_cycle": iso(last_cycle) if last_cycle else None,
            "decision_cycles": r["decisions"], "last_decision": iso(last_decision) if last_decision else None,
            "global_state": r["global_state"], "kill_switch": kill_switch_row(kill),
            "active_symbols": active, "symbols": symbols, "nodes": r["nodes"], "storage_faults": r["storage_faults"],
        })

    def storage_faults(self) -> dict[str, str]:
        """Writers on a trading path that failed (trade log, journal, store): the engine is unhealthy."""
        return self.source.storage_faults()

    def positions(self) -> dict[str, Any]:
        """Open positions sorted by symbol (qty signed, negative for shorts), with totals; a figure
        the source cannot know (no mark, no realized PnL across processes) is None."""
        symbols = self.source.read()["symbols"]
        return jsonable(position_report(symbols))

    def risk_status(self) -> dict[str, Any]:
        """``RiskLogic.status()`` as Risk has it now (the source says how it is read)."""
        return self.source.risk_status()

    def assumptions(self) -> dict[str, Any]:
        """Every symbol's declared market assumptions, with the symbols Risk holds in REDUCING for them."""
        rows, unavailable, holds = self.source.assumption_rows()
        return assumption_report(rows, unavailable, holds)

    def tree(self) -> dict[str, Any]:
        """Every placement group with its actors' state, health, restarts, last failure and mailbox."""
        groups = []
        for g in self.source.groups():
            actors = [{**a, "health": actor_health(a["state"], a.get("restarts"))} for a in g["actors"]]
            own = ["degraded"] if g.get("restarts") else []
            health = "down" if not g["responsive"] else worst(own + [a["health"] for a in actors])
            groups.append({"group": g["group"], "responsive": g["responsive"], "health": health,
                           "error": g.get("error"), "processed": g.get("processed"),
                           "dead_letters": g.get("dead_letters"), "failures": g.get("failures"),
                           "process": g.get("process"), "actors": actors})
        return jsonable({"groups": groups, "health": worst(g["health"] for g in groups)})

    def mailbox_depths(self) -> tuple[dict[str, int], list[str]]:
        """Mailbox depth per actor id, and the groups that did not answer in time."""
        return self.source.mailbox_depths()

    # -- commands ----------------------------------------------------------------------------
    def command(self, msg: Any, who: str) -> Envelope:
        """Check, record, then send an operator command; return its envelope.

        Risk takes ``EngageKillSwitch``, ``ResetKillSwitch``, ``SetTradingState`` and ``Action``;
        a symbol's supervisor takes ``ReleaseSymbol``. ``who`` names the operator (the command's
        own ``who``/``reason`` fields carry the same, so the record says who and why). A command
        that cannot arrive raises before it is recorded; one that fails on the way is recorded
        again with the failure.
        """
        if isinstance(msg, (EngageKillSwitch, ResetKillSwitch, SetTradingState, Action)):
            receiver = "risk"
        elif isinstance(msg, ReleaseSymbol):
            receiver = f"{msg.symbol}/supervisor"
        else:
            raise CommandError(f"{type(msg).__name__} is not an operator command")
        if isinstance(msg, ResetKillSwitch) and not has_visible_text(msg.reason):
            raise CommandError("a kill-switch reset needs a reason")
        scope = getattr(msg, "scope", None) or getattr(msg, "symbol", None)
        if scope and scope != ALL_SYMBOLS and scope not in self.symbols:
            raise CommandError(f"unknown symbol {scope!r}")
        self.source.check_deliverable(receiver)
        now = self.source.now_ns()
        env = Envelope(msg_id=self.source.next_id(), sender=f"{OPERATOR}:{who}", receiver=receiver,
                       ts_event_ns=now, ts_recv_ns=now, causation_id=0, payload=msg)
        self.source.record(env, SENDING)  # before sending: a command that was sent is always on record
        try:
            self.source.deliver(env)
        except Exception as exc:
            self.source.record(env, f"not delivered: {exc}")
            raise
        if self.hub is not None:
            self.hub.publish(make_event("operator_command", now, INFO, f"{type(msg).__name__} for {receiver} by {who}",
                                         {"receiver": receiver, "message": type(msg).TAG, "who": who,
                                          "reason": getattr(msg, "reason", "")}))
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
        self._known(symbol)
        return [self.command(ReleaseSymbol(symbol=symbol, who=who, reason=reason), who)]

    def flatten(self, symbol: str, who: str, reason: str) -> list[Envelope]:
        """REDUCING for ``symbol``, then an EXIT of whatever Risk's book holds, sent to Risk.

        Risk checks and approves the EXIT like any other (an EXIT is allowed while REDUCING); the
        position exits its whole quantity, and a symbol that is flat by then answers
        ``ActionNotApplicable``: harmless.
        """
        self._known(symbol)
        sent = self.pause(symbol, who, f"flatten: {reason}")
        book = self.source.book(symbol)
        if book is None:
            return sent
        now = self.source.now_ns()
        action = Action(action_id=f"operator:{symbol}:flatten:{now}", symbol=symbol, cycle=book["cycle"],
                        kind=MandateKind.EXIT, direction=book["direction"], qty=book["qty"],
                        mark_price=book["price"], data_ts_ns=book["data_ts_ns"], ts_event_ns=now,
                        reason=f"operator_flatten: {reason}")
        return sent + [self.command(action, who)]

    def _known(self, symbol: str) -> None:
        if symbol not in self.symbols:
            raise CommandError(f"unknown symbol {symbol!r}")


_SYMBOL_FIELDS = ("state", "regime", "position", "qty", "quarantined", "worker", "health", "stale", "events",
                  "decisions", "orders", "fills", "denials", "decode_failures")


def kill_switch_row(kill: dict[str, Any]) -> dict[str, Any]:
    """The kill switch as the operator sees it: engaged, by whom, why, since when, read from where."""
    ts = kill.get("ts_ns")
    return {"engaged": bool(kill.get("engaged")), "who": kill.get("who") or None, "reason": kill.get("reason") or None,
            "ts": kill.get("ts") or (iso(ts) if ts else None), "source": kill.get("source")}


def position_report(symbols: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """``/api/positions`` from the source's symbol rows: the open ones, weights and totals."""
    rows = []
    for sym in sorted(symbols):
        r = symbols[sym]
        qty = r["qty"]
        if not qty or r["position"] in (None, "FLAT"):
            continue
        direction, entry, mark = r["direction"], r["entry"], r["mark"]
        sign = -1 if direction == Direction.SHORT.value else 1
        value = mark * qty * sign if mark is not None else None
        pnl = (mark - entry) * qty * sign if mark is not None and entry is not None and direction else None
        rows.append({
            "symbol": sym, "worker": r["worker"], "stale": r["stale"], "side": direction, "state": r["position"],
            "qty": qty * sign, "entry_price": entry, "current_price": mark, "market_value": value,
            "unrealized_pnl": pnl, "unrealized_pnl_pct": pnl / (entry * qty) * 100 if pnl is not None and entry else None,
            "realized_pnl": r["realized"], "fees": r["fees"],
            "entry_time": iso(r["entry_ns"]) if r["entry_ns"] else None,
        })
    gross = sum((abs(p["market_value"]) for p in rows if p["market_value"] is not None), ZERO)
    for p in rows:
        p["weight"] = None if p["market_value"] is None else abs(p["market_value"]) / gross if gross else ZERO
    known = [p["market_value"] for p in rows if p["market_value"] is not None]
    booked = [(r["realized"], r["fees"]) for r in symbols.values()]
    realized = (sum((a - (f or ZERO) for a, f in booked), ZERO)
                if all(a is not None for a, _ in booked) else None)
    totals = {
        "positions": len(rows), "long": sum(1 for p in rows if p["side"] == Direction.LONG.value),
        "short": sum(1 for p in rows if p["side"] == Direction.SHORT.value), "gross_value": gross,
        "net_value": sum(known, ZERO) if len(known) == len(rows) else None,
        "unrealized_pnl": sum((p["unrealized_pnl"] for p in rows if p["unrealized_pnl"] is not None), ZERO),
        "realized_pnl_net_of_fees": realized,
    }
    return {"positions": rows, "totals": totals}


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


HEALTH_ORDER = {"ok": 0, "degraded": 1, "down": 2}
_DOWN_STATES = frozenset({"quarantined", "failed", "dead", "stopped", "unknown", "down"})


def actor_health(state: str, restarts: int | None) -> str:
    """``down`` for an actor that does not run (quarantined, failed, unknown, ...), ``degraded`` for
    one that runs but not normally (recovering, held) or was restarted, else ``ok``."""
    if state in _DOWN_STATES:
        return "down"
    if state not in ("running", "ok") or (restarts or 0) > 0:
        return "degraded"
    return "ok"


def worst(healths: Iterable[str]) -> str:
    """The worst of some health words (an unknown word counts as ``down``); ``ok`` for none."""
    return max(healths, key=lambda h: HEALTH_ORDER.get(h, 2), default="ok")


def jsonable(value: Any) -> Any:
    """Decimals as strings (rounded for people: ``messages.display``), enums as values, containers
    recursively: ready for ``json.dumps``."""
    if isinstance(value, Decimal):
        return decimal_text(value)
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [jsonable(v) for v in value]
    if hasattr(value, "value") and not isinstance(value, (int, float, str, bool)):
        return value.value
    if value is None or isinstance(value, (int, float, str, bool)):
        return value
    return str(value)
