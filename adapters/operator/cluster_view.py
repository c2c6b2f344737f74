"""The operator surface of the multi-process cluster, served by the launcher process.

The one ``ClusterView`` (``adapters/operator/view.py``) builds every answer; what it reads and
where its commands go is a ``NodesSource`` here instead of the single-process ``RuntimeSource``,
and ``DistributedOperator`` assembles them on the one ``OperatorLifecycle`` (``server.py``):

- reads come from the nodes' status files (``<var_dir>/cluster/status/<node>.json``, rewritten 4x
  per second by each node's thread) and the ClusterSupervisor's ``ClusterStatus`` (pids,
  incarnations, up, restarts). A node whose status is older than ``stale_after_s`` (2 s), or
  that the supervisor does not report up, is *stale*: its symbols read ``health: DOWN`` and its
  group ``down``, never healthy. While the Coordinator is stale the kill switch is read from
  the latch file, which the supervisor engages when the Coordinator dies.
- commands go as ``OperatorCommand`` to the ClusterSupervisor, which forwards them to the
  Coordinator (which routes symbol-scoped ones to the right Worker). A command that cannot be
  delivered (Coordinator down or not writing its status, the target Worker down, no answer
  from the supervisor) raises ``NodeUnavailable``: the server answers 503. A 200 means
  forwarded to a live Coordinator, not applied: one that dies between the check and the
  delivery loses it (and restarts with the kill switch latched). Each command is appended to
  ``cluster/events/operator.jsonl`` before it is sent (and again if it was not delivered).
- events: ``EventFollower`` tails ``cluster/events/*.jsonl`` into the ``EventHub`` (state
  changes, kill switch, failures, recoveries, positions, orders), and ``SupervisorChannel``
  adds process exits, restarts and escalations seen in ``ClusterStatus``.
- metrics: ``NodeCollector`` builds the Prometheus families from the same files at scrape time.

Threads, all in the launcher: the server's loop and its pool (view calls), the channel's
thread (the only user of its thespian endpoint), the follower's, and the liveness cycle's.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import itertools
import json
import queue
import socket
import threading
import time
from collections.abc import Callable, Iterable
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from arbor.actors.distributed.latch import read_latch
from arbor.actors.distributed.wire import Ack, ClusterStatus, OperatorCommand, StatusQuery
from arbor.adapters.operator.events import CRITICAL, INFO, OPERATOR_EVENT, WARNING, EventHub, make_event
from arbor.adapters.operator.metric_schema import family
from arbor.adapters.operator.server import OperatorLifecycle
from arbor.messages import (
    ALL_SYMBOLS,
    Direction,
    Envelope,
)
from arbor.messages.assumptions import status_level
from arbor.supervision.procs import alive
from loguru import logger

COORDINATOR = "coordinator"
_HOST = socket.gethostname()
STALE_AFTER_S = 2.0
ZERO = Decimal(0)
_RESTRICTION = {"ACTIVE": 0, "REDUCING": 1, "HALTED": 2}
MODE = "multi-process"


class NodeUnavailable(RuntimeError):
    """The node a read or a command needs is down, stale or not answering (the server says 503)."""


def _dec(text: Any) -> Decimal:
    try:
        return Decimal(str(text))
    except (InvalidOperation, ValueError):
        return ZERO


# ------------------------------------------------------------------------------------------
class SupervisorChannel:
    """The API's own endpoint to the ClusterSupervisor: a thespian private context used only by
    this object's thread (an endpoint is not thread-safe). It polls ``ClusterStatus`` every
    ``poll_s`` and forwards commands queued by ``forward`` (any thread)."""

    def __init__(self, asys: Any, supervisor: Any, *, poll_s: float = 0.5, timeout_s: float = 3.0,
                 on_status: Callable[[Any, Any], None] | None = None, token: str = "") -> None:
        """``token``: the operator token every forwarded command carries (the supervisor checks it)."""
        self._asys, self._sup = asys, supervisor
        self._token = token
        self._poll_s, self._timeout = poll_s, timeout_s
        self._on_status = on_status
        self._queue: queue.Queue[tuple[Any, concurrent.futures.Future] | None] = queue.Queue()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._status: Any = None
        self._status_at = 0.0
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="arbor-operator-supervisor", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 1.5) -> None:
        self._stop.set()
        self._queue.put(None)
        if self._thread is not None:
            self._thread.join(timeout)

    def status(self) -> tuple[Any, float]:
        """The last ``ClusterStatus`` (or None) and its age in seconds."""
        with self._lock:
            return self._status, time.monotonic() - self._status_at

    def forward(self, msg: Any) -> str:
        """Send ``msg`` (an ``OperatorCommand``) to the supervisor; its ``Ack`` detail ("forwarded" when sent on)."""
        if self._stop.is_set() or self._thread is None or not self._thread.is_alive():
            raise NodeUnavailable("the operator's channel to the cluster supervisor is closed")
        fut: concurrent.futures.Future = concurrent.futures.Future()
        self._queue.put((dataclasses.replace(msg, token=self._token), fut))
        try:
            return fut.result(self._timeout + 1.0)
        except concurrent.futures.TimeoutError:
            fut.cancel()
            raise NodeUnavailable("the cluster supervisor did not answer") from None

    def _run(self) -> None:
        try:
            with self._asys.private() as ctx:
                next_poll = 0.0
                while not self._stop.is_set():
                    try:
                        item = self._queue.get(timeout=max(0.0, next_poll - time.monotonic()))
                    except queue.Empty:
                        item = None
                    if item is not None:
                        msg, fut = item
                        if fut.set_running_or_notify_cancel():
                            reply = self._ask(ctx, msg, Ack)
                            if reply is None:
                                fut.set_exception(NodeUnavailable("the cluster supervisor did not answer"))
                            else:
                                fut.set_result(reply.detail)
                        continue
                    if self._stop.is_set():
                        break
                    st = self._ask(ctx, StatusQuery(), ClusterStatus)
                    next_poll = time.monotonic() + self._poll_s
                    if st is not None:
                        with self._lock:
                            old, self._status, self._status_at = self._status, st, time.monotonic()
                        if self._on_status is not None:
                            self._on_status(old, st)
        except Exception as exc:  # the API keeps serving from the files; commands answer 503
            logger.bind(actor="operator", event_type="channel_failed").opt(exception=exc).error(
                "operator channel to the supervisor failed: {!r}", exc)
        finally:
            self._stop.set()
            while True:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is not None and item[1].set_running_or_notify_cancel():
                    item[1].set_exception(NodeUnavailable("the operator's channel is closed"))

    def _ask(self, ctx: Any, msg: Any, want: type) -> Any:
        """Ask, skipping a late answer to an earlier ask (thespian hands back whatever arrives next)."""
        deadline = time.monotonic() + self._timeout
        reply = ctx.ask(self._sup, msg, self._timeout)
        while reply is not None and not isinstance(reply, want):
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            reply = ctx.listen(left)
        return reply


# ------------------------------------------------------------------------------------------
def node_event(node: str, rec: dict[str, Any]) -> dict[str, Any] | None:
    """One line of a node's events file as an operator event (None: not for the stream).

    What the traffic says (fills, orders, verdicts, trading states, the kill switch, supervision,
    decode failures) comes as ``operator`` lines: the node's own ``EventStream`` made them, the
    one translation a single process uses too (actors/cluster/probes.py). What only a cluster
    has (a node's start, restore, store, a Worker down or up) is translated here."""
    ev, ts = rec.get("ev"), int(rec.get("ts_ns") or 0)
    if ev == OPERATOR_EVENT:
        event = rec.get("event")
        return event if isinstance(event, dict) else None
    if ev == "worker_down":
        return make_event("worker_down", ts, CRITICAL, f"worker {rec.get('slot')} down ({rec.get('reason')}): "
                          "its symbols are HALTED until recovered", {"slot": rec.get("slot"),
                                                                     "reason": rec.get("reason")}, alert=True)
    if ev == "worker_up":
        return make_event("worker_up", ts, INFO, f"worker {rec.get('slot')} up", {"slot": rec.get("slot")})
    if ev in ("coordinator_start", "worker_start"):
        return make_event("node_started", ts, WARNING if rec.get("restarted") else INFO,
                          f"{node} started (pid {rec.get('pid')})",
                          {"node": node, "pid": rec.get("pid"), "incarnation": rec.get("incarnation")})
    if ev == "restored":
        return make_event("node_restored", ts, INFO, f"{node} restored {len(rec.get('actors') or ())} actors",
                          {"node": node, "positions": rec.get("positions")})
    if ev == "store_degraded":
        return make_event("store_degraded", ts, CRITICAL, f"{node}: state store degraded: {rec.get('reason')}",
                          {"node": node, "reason": rec.get("reason")}, alert=True)
    return None


_ERROR_EVENTS = frozenset({"failed", "worker_down", "store_degraded"})


class EventFollower:
    """Tails the nodes' events files into the hub, from where they ended when it was built (a
    run's own lines only: the files are appended to across runs of the same ``var_dir``)."""

    def __init__(self, directory: Path, nodes: Iterable[str], hub: EventHub, interval_s: float = 0.2) -> None:
        self.directory = Path(directory)
        self.hub = hub
        self.interval_s = interval_s
        self._offsets = {n: self._size(n) for n in nodes}
        self._partial: dict[str, bytes] = {}
        self._lock = threading.Lock()
        self._entry_ns: dict[str, int] = {}
        self._errors = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _size(self, node: str) -> int:
        try:
            return (self.directory / f"{node}.jsonl").stat().st_size
        except OSError:
            return 0

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="arbor-operator-events", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 1.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.poll()
            except Exception as exc:  # a follower must outlive a bad line or a vanished file
                logger.bind(actor="operator", event_type="follow_failed").opt(exception=exc).error("events: {!r}", exc)

    def poll(self) -> int:
        """Publish what was appended since the last poll; return how many lines were read."""
        n = 0
        for node, offset in list(self._offsets.items()):
            path = self.directory / f"{node}.jsonl"
            try:
                size = path.stat().st_size
                if size < offset:  # replaced or truncated: start over
                    offset, self._partial[node] = 0, b""
                if size == offset:
                    continue
                with open(path, "rb") as fh:
                    fh.seek(offset)
                    data = fh.read(size - offset)
            except OSError:
                continue
            self._offsets[node] = offset + len(data)
            lines = (self._partial.pop(node, b"") + data).split(b"\n")
            self._partial[node] = lines.pop()  # an incomplete last line waits for its end
            for line in lines:
                try:
                    rec = json.loads(line)
                except ValueError:
                    continue
                n += 1
                self._seen(rec)
                ev = node_event(node, rec)
                if ev is not None:
                    self.hub.publish(ev)
        return n

    def _seen(self, rec: dict[str, Any]) -> None:
        with self._lock:
            if rec.get("ev") in _ERROR_EVENTS:
                self._errors += 1
            elif rec.get("ev") == "position" and (symbol := rec.get("symbol")) is not None:
                if rec.get("state") == "FLAT":
                    self._entry_ns.pop(symbol, None)
                else:
                    self._entry_ns.setdefault(symbol, int(rec.get("ts_ns") or 0))

    def entry_ns(self) -> dict[str, int]:
        with self._lock:
            return dict(self._entry_ns)

    def take(self) -> int:
        """Errors (failures, workers down, degraded stores) seen since the last take (``EngineCycle``)."""
        with self._lock:
            n, self._errors = self._errors, 0
        return n


# ------------------------------------------------------------------------------------------
class _Node:
    """One node as the view sees it: its status file and the supervisor's record of its process."""

    def __init__(self, name: str, status: dict[str, Any], process: dict[str, Any] | None, stale_after_s: float,
                 now_ns: int) -> None:
        self.name = name
        self.status = status
        self.process = process or {}
        self.age_s = (now_ns - int(status["ts_ns"])) / 1e9 if "ts_ns" in status else None
        pid = self.process.get("pid")
        local = self.process.get("host") in (None, "", _HOST)
        # A dead node's last file stays young for a while: its pid must be alive too (where we can see it).
        self.fresh = bool(self.age_s is not None and self.age_s <= stale_after_s and self.process.get("up", True)
                          and (not pid or status.get("pid") == pid)
                          and (not local or alive(int(status.get("pid") or 0))))

    def describe(self) -> dict[str, Any]:
        p, s = self.process, self.status
        return {"up": self.fresh, "stale": not self.fresh, "reported_up": p.get("up"),
                "pid": p.get("pid") or s.get("pid"),
                "incarnation": p.get("incarnation") or s.get("incarnation"), "restarts": p.get("restarts"),
                "host": p.get("host"), "status_age_s": round(self.age_s, 3) if self.age_s is not None else None,
                "rss_kb": s.get("rss_kb"), "processed": s.get("processed")}


class NodesSource:
    """``ViewSource`` over the multi-process cluster: the nodes' status files and the supervisor.

    Each reading reads the status files afresh (a few small JSON files), so no state is shared
    but the channel's last ``ClusterStatus`` and the follower's entry times; safe from the
    server's pool threads and the liveness thread alike.
    """

    def __init__(self, var_dir: Path, assignment: dict[int, tuple[str, ...]], channel: SupervisorChannel,
                 follower: EventFollower, *, stale_after_s: float = STALE_AFTER_S) -> None:
        from arbor.messages.codec import Codec

        self.var_dir = Path(var_dir)
        self.status_dir = self.var_dir / "cluster" / "status"
        self.assignment = {int(k): tuple(v) for k, v in assignment.items()}
        self.slot_of = {s: k for k, syms in self.assignment.items() for s in syms}
        self.symbols = tuple(s for k in sorted(self.assignment) for s in self.assignment[k])
        self.channel, self.follower = channel, follower
        self.stale_after_s = stale_after_s
        self._codec = Codec()
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._audit = self.var_dir / "cluster" / "events" / "operator.jsonl"

    # -- what the nodes say ------------------------------------------------------------------
    def nodes(self) -> dict[str, _Node]:
        """Every node of the plan, read now; a supervisor status older than 3 poll rounds is not trusted."""
        st, age = self.channel.status()
        procs = st.processes if st is not None and age <= 3 * self.stale_after_s else {}
        now = time.time_ns()
        out = {}
        for name in (COORDINATOR, *(f"worker-{k}" for k in sorted(self.assignment))):
            try:
                status = json.loads((self.status_dir / f"{name}.json").read_text())
            except (OSError, ValueError):
                status = {}
            out[name] = _Node(name, status if isinstance(status, dict) else {}, procs.get(name),
                              self.stale_after_s, now)
        return out

    def kill_switch(self, coord: _Node) -> dict[str, Any]:
        """Risk's kill switch while the Coordinator is fresh, else the latch the supervisor engages when it dies."""
        if coord.fresh:
            k = coord.status["risk"]["kill_switch"]
            return {"engaged": k.get("engaged"), "who": k.get("who"), "reason": k.get("reason"),
                    "ts_ns": k.get("ts_event_ns"), "source": "risk"}
        latch = read_latch(self.var_dir)
        return {"engaged": latch.get("engaged"), "who": latch.get("who"), "reason": latch.get("reason"),
                "ts_ns": latch.get("ts_ns"), "source": "latch"}

    def symbol_row(self, s: str, nodes: dict[str, _Node]) -> tuple[dict[str, Any], _Node]:
        """``s``'s row in its Worker's status, and that Worker."""
        w = nodes[f"worker-{self.slot_of[s]}"]
        return w.status.get("symbols", {}).get(s, {}), w

    # -- ViewSource: reads -------------------------------------------------------------------
    def read(self) -> dict[str, Any]:
        nodes = self.nodes()
        coord = nodes[COORDINATOR]
        risk = coord.status.get("risk", {}) if coord.fresh else {}
        book = risk.get("symbols", {})
        denials = coord.status.get("denials_by_symbol", {}) if coord.fresh else None
        entries = self.follower.entry_ns()
        st, _ = self.channel.status()
        escalated = getattr(st, "escalated", "") or ""
        symbols: dict[str, Any] = {}
        decisions: int | None = None
        last_decision: int | None = None
        for s in self.symbols:
            row, w = self.symbol_row(s, nodes)
            r = book.get(s, {})
            health = row.get("health", "DOWN") if w.fresh else "DOWN"
            qty = _dec(row.get("qty", "0"))
            mark = _dec(r["notional"]) / _dec(r["qty"]) if r and _dec(r.get("qty")) else None
            if row.get("decisions") is not None:  # counted since the symbol's worker started
                decisions = (decisions or 0) + row["decisions"]
                last_decision = max(last_decision or 0, row.get("last_decision_ns") or 0) or None
            symbols[s] = {
                "state": r.get("state", "UNKNOWN"), "regime": row.get("regime"), "position": row.get("position"),
                "direction": row.get("direction"), "qty": qty,
                "entry": _dec(row["avg_entry_price"]) if row.get("avg_entry_price") else None, "mark": mark,
                "realized": None, "fees": None, "entry_ns": entries.get(s),
                "quarantined": health == "QUARANTINED" or s in risk.get("quarantined", {}),
                "health": health, "stale": not w.fresh, "worker": self.slot_of[s],
                "events": row.get("events"), "decisions": row.get("decisions"), "orders": row.get("orders"),
                "fills": row.get("fills"), "denials": denials.get(s, 0) if denials is not None else None,
                "decode_failures": row.get("decode_failures"),
            }
        down = None if coord.fresh else ("the Coordinator is down or not answering (the supervisor restarts it): "
                                         "Risk's figures are not shown, the kill switch is read from its latch")
        return {
            "mode": MODE, "global_state": risk.get("global_state", "UNKNOWN"), "kill_switch": self.kill_switch(coord),
            "decisions": decisions, "last_decision_ns": last_decision, "error": escalated or None, "down": down,
            "degraded": not all(n.fresh for n in nodes.values()), "escalated": escalated, "storage_faults": {},
            "nodes": {n: node.describe() for n, node in nodes.items()}, "symbols": symbols,
        }

    def storage_faults(self) -> dict[str, str]:
        return {}  # a node's degraded store is an event (store_degraded) and its status row

    def assumption_rows(self) -> tuple[dict[str, list[dict[str, Any]]], list[str], dict[str, Any]]:
        """Each symbol's assumptions as its Worker last wrote them (a stale Worker's: unavailable)."""
        nodes = self.nodes()
        rows: dict[str, list[dict[str, Any]]] = {}
        unavailable = []
        for s in self.symbols:
            row, node = self.symbol_row(s, nodes)
            if node.fresh and "assumptions" in row:
                rows[s] = row["assumptions"]
            else:
                unavailable.append(s)
        coord = nodes[COORDINATOR]
        holds = coord.status.get("risk", {}).get("assumption_holds", {}) if coord.fresh else {}
        return rows, unavailable, holds

    def risk_status(self) -> dict[str, Any]:
        """Risk's ``status()`` as the Coordinator last wrote it; NodeUnavailable while it is stale."""
        coord = self.nodes()[COORDINATOR]
        if not coord.fresh or coord.age_s is None:  # fresh means a status with a time
            age = f"{coord.age_s:.1f} s old" if coord.age_s is not None else "missing"
            raise NodeUnavailable(f"the Coordinator's status is {age}: down, hung or restarting")
        return {**coord.status["risk"], "stats": coord.status.get("risk_stats"), "status_age_s": round(coord.age_s, 3)}

    def groups(self) -> list[dict[str, Any]]:
        """One group per process: the Coordinator's Risk and Arbitrator, each Worker's symbol supervisors."""
        groups: list[dict[str, Any]] = []
        for name, node in self.nodes().items():
            actors = []
            if name == COORDINATOR:
                sup = node.status.get("supervision", {}).get("supervisor", {})
                for aid in ("risk", "arbitrator"):
                    actors.append(_actor(aid, aid, "running" if node.fresh else "unknown",
                                         (sup.get("restarts") or {}).get(aid, 0), (sup.get("last_failure") or {}).get(aid)))
            else:
                rows = node.status.get("symbols", {})
                for s in self.assignment[int(name.split("-")[1])]:
                    state = str(rows.get(s, {}).get("health", "unknown")).lower() if node.fresh else "unknown"
                    actors.append(_actor(f"{s}/supervisor", s, state, None, None))
            groups.append({"group": name, "responsive": node.fresh,
                           "error": None if node.fresh else "status stale or process down",
                           "processed": node.status.get("processed"), "dead_letters": None, "failures": None,
                           "process": node.describe(), "restarts": node.process.get("restarts") or 0,
                           "actors": actors})
        return groups

    def mailbox_depths(self) -> tuple[dict[str, int], list[str]]:
        """No mailbox depths across processes; the nodes that are stale count as not answering."""
        return {}, [n for n, node in self.nodes().items() if not node.fresh]

    def book(self, symbol: str) -> dict[str, Any] | None:
        """Risk's last written book for ``symbol``, marked at notional / qty, its direction from the Worker.

        The position exits its whole quantity whatever the action's qty says; the action's mark,
        cycle and data time only update Risk's book until the next decision does."""
        b = self.risk_status()["symbols"].get(symbol, {})
        qty = _dec(b.get("qty"))
        if qty <= 0:
            return None
        row, _ = self.symbol_row(symbol, self.nodes())
        direction = row.get("direction")
        return {"qty": qty, "direction": Direction(direction) if direction else None,
                "price": _dec(b.get("notional")) / qty, "data_ts_ns": self.now_ns(), "cycle": 0}

    # -- ViewSource: commands ----------------------------------------------------------------
    def now_ns(self) -> int:
        return time.time_ns()

    def next_id(self) -> int:
        return next(self._ids)

    def check_deliverable(self, receiver: str) -> None:
        """The Coordinator must be fresh, and for a symbol's receiver its Worker too."""
        nodes = self.nodes()
        needed = [COORDINATOR] + ([f"worker-{self.slot_of[receiver.split('/')[0]]}"] if "/" in receiver else [])
        for name in needed:
            if not nodes[name].fresh:
                raise NodeUnavailable(f"{name} is down or not answering: command not sent")

    def record(self, env: Envelope, outcome: str) -> None:
        """Append the command and its outcome to ``cluster/events/operator.jsonl``."""
        line = {"ev": "operator_command", "ts_ns": env.ts_event_ns, "id": env.msg_id, "sender": env.sender,
                "receiver": env.receiver, "message": type(env.payload).TAG, "outcome": outcome,
                "payload": self._codec.to_primitive(env.payload)}
        with self._lock, open(self._audit, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(line, default=str) + "\n")

    def deliver(self, env: Envelope) -> None:
        """Forward through the supervisor; NodeUnavailable unless it says "forwarded"."""
        detail = self.channel.forward(OperatorCommand(env.receiver, self._codec.encode(env.payload)))
        if detail != "forwarded":
            raise NodeUnavailable(f"command not delivered: {detail}")


def _actor(aid: str, role: str, state: str, restarts: int | None, last_failure: Any) -> dict[str, Any]:
    return {"id": aid, "role": role, "state": state, "restarts": restarts, "failures": None,
            "last_failure": last_failure, "mailbox": None, "poison_messages": None}

# ------------------------------------------------------------------------------------------
class NodeCollector:
    """Prometheus families built from the nodes' status files at scrape time (so never older than the files), named
    and labelled as the one metric schema says (``arbor.adapters.operator.metric_schema``)."""

    def __init__(self, source: NodesSource, venue: str = "sim") -> None:
        self.source = source
        self.venue = venue  # the market's venue, for symbols whose worker has decoded nothing yet

    def describe(self) -> list[Any]:
        return []  # no registration-time collect: the families are built per scrape

    @staticmethod
    def _assumptions(v: NodesSource, nodes: dict[str, _Node]) -> Iterable[Any]:
        """Each symbol's assumptions as its fresh Worker last wrote them (a stale Worker's: not shown)."""
        status, value = family("arbor_assumption_status"), family("arbor_assumption_value")
        changes = family("arbor_assumption_changes_total")
        for s in v.symbols:
            row, w = v.symbol_row(s, nodes)
            if not w.fresh:
                continue
            for a in row.get("assumptions") or ():
                status.add_metric([s, a["name"]], status_level(a["status"]))
                value.add_metric([s, a["name"]], float(a["value"]))
                for entered, n in (a.get("changes") or {}).items():
                    changes.add_metric([s, a["name"], entered], n)
        return (status, value, changes)

    def collect(self) -> Iterable[Any]:
        v = self.source
        nodes = v.nodes()
        coord = nodes[COORDINATOR]
        up, age = family("arbor_node_up"), family("arbor_node_status_age_seconds")
        restarts, rss = family("arbor_node_restarts_total"), family("arbor_node_rss_bytes")
        for name, n in nodes.items():
            up.add_metric([name], 1 if n.fresh else 0)
            if n.age_s is not None:
                age.add_metric([name], max(0.0, n.age_s))
            if n.process.get("restarts") is not None:
                restarts.add_metric([name], n.process["restarts"])
            if n.status.get("rss_kb"):
                rss.add_metric([name], n.status["rss_kb"] * 1024)
        yield from (up, age, restarts, rss)
        kill = family("arbor_kill_switch_engaged")  # the latch while the Coordinator is down
        kill.add_metric([], 1 if v.kill_switch(coord)["engaged"] else 0)
        yield kill
        sym_up, placed_on = family("arbor_symbol_up"), family("arbor_symbol_worker")
        qty, open_ = family("arbor_position_qty"), family("arbor_position_open")
        events, failures = family("arbor_market_events_total"), family("arbor_decode_failures_total")
        fills, orders = family("arbor_fills_total"), family("arbor_orders_total")
        placed = 0
        for s in v.symbols:
            row, w = v.symbol_row(s, nodes)
            sym_up.add_metric([s], 1 if w.fresh and row.get("health") == "RUNNING" else 0)
            placed_on.add_metric([s, str(v.slot_of[s])], 1)
            if row:  # counted since the symbol's worker started
                sign = -1 if row.get("direction") == "SHORT" else 1
                qty.add_metric([s], float(_dec(row.get("qty"))) * sign)
                open_.add_metric([s], 0 if row.get("position") in ("FLAT", None) else 1)
                venue = row.get("venue") or self.venue
                events.add_metric([s, venue], row.get("events") or 0)
                failures.add_metric([s, venue], row.get("decode_failures") or 0)
                fills.add_metric([s], row.get("fills") or 0)
                placed += row.get("orders") or 0
        orders.add_metric(["placed"], placed)
        yield from (sym_up, placed_on, qty, open_, events, failures, fills, orders)
        yield from self._assumptions(v, nodes)
        if not coord.fresh:
            return  # Risk's figures are only shown while they are current
        risk, stats = coord.status.get("risk", {}), coord.status.get("risk_stats", {})
        state = family("arbor_trading_state")
        state.add_metric([ALL_SYMBOLS], _RESTRICTION.get(risk.get("global_state"), 2))
        for s, r in risk.get("symbols", {}).items():
            state.add_metric([s], _RESTRICTION.get(r.get("state"), 2))
        yield state
        for name, key in (("arbor_equity_quote", "equity"), ("arbor_drawdown_ratio", "drawdown_pct")):
            g = family(name)
            g.add_metric([], float(_dec(risk.get(key))))
            yield g
        exposure = family("arbor_exposure_quote")
        exposure.add_metric(["gross"], float(_dec(risk.get("gross_exposure"))))
        exposure.add_metric(["net"], float(_dec(risk.get("net_exposure"))))
        yield exposure
        for name, key in (("arbor_risk_approvals_total", "approvals"), ("arbor_risk_denials_total", "denials")):
            c = family(name)
            for k, n in (stats.get(key) or {}).items():
                c.add_metric([k], n)
            yield c


# ------------------------------------------------------------------------------------------
class DistributedOperator(OperatorLifecycle):
    """The operator surface of a multi-process cluster, assembled by the launcher.

    Build it before the cluster starts (it checks the token, so a missing one stops the start
    before any process runs, and marks where this run's event lines begin); ``start(asys,
    supervisor)`` once the cluster has started; ``stop()`` first on shutdown (about 3 s at most).
    """

    def __init__(self, var_dir: Path, assignment: dict[int, tuple[str, ...]], token: str | None, *,
                 host: str = "127.0.0.1", port: int = 8750, webhook_url: str | None = None,
                 cycle_interval_s: float = 1.0, stale_after_s: float = STALE_AFTER_S,
                 max_connections: int = 64, venue: str = "sim") -> None:
        from arbor.actors.runtime import HandlerClock

        super().__init__(var_dir, token, clock=HandlerClock(), host=host, port=port, webhook_url=webhook_url,
                         cycle_interval_s=cycle_interval_s, max_connections=max_connections)
        self.var_dir = Path(var_dir)
        self.assignment = {int(k): tuple(v) for k, v in assignment.items()}
        self._stale_after = stale_after_s
        self._venue = venue
        events_dir = self.var_dir / "cluster" / "events"
        events_dir.mkdir(parents=True, exist_ok=True)
        self.follower = EventFollower(events_dir, (COORDINATOR, *(f"worker-{k}" for k in sorted(self.assignment))),
                                      self.hub)
        self.channel: SupervisorChannel | None = None

    def start(self, asys: Any, supervisor: Any) -> str:
        """Serve the API, follow the events and run the liveness cycle; return the base URL."""
        self.channel = SupervisorChannel(asys, supervisor, on_status=self._processes_changed, token=self._token)
        source = NodesSource(self.var_dir, self.assignment, self.channel, self.follower,
                             stale_after_s=self._stale_after)
        self.registry.register(NodeCollector(source, self._venue))
        return self.serve(source, self.follower, services=(self.channel, self.follower))

    def _processes_changed(self, old: Any, new: Any) -> None:
        """On the channel's thread: process exits, restarts and escalations as events."""
        now = time.time_ns()
        before = old.processes if old is not None else {}
        for name, p in new.processes.items():
            b = before.get(name)
            if b is None:
                continue
            replaced = p.get("incarnation") != b.get("incarnation")  # a restart between two polls
            if b.get("up") and (not p.get("up") or replaced):
                self.hub.publish(make_event("process_down", now, CRITICAL, f"{name} process (pid {b.get('pid')}) is "
                                            "down: the cluster supervisor restarts it", {"node": name,
                                                                                         "pid": b.get("pid")},
                                            alert=True))
            if p.get("up") and (not b.get("up") or replaced):
                self.hub.publish(make_event("process_up", now, INFO, f"{name} process up (pid {p.get('pid')}, "
                                            f"restarts {p.get('restarts')})", {"node": name, "pid": p.get("pid"),
                                                                               "restarts": p.get("restarts")}))
        if new.escalated and (old is None or old.escalated != new.escalated):
            self.hub.publish(make_event("escalated", now, CRITICAL, new.escalated, {"escalated": new.escalated},
                                        alert=True))
