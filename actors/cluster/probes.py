"""Observers of a node's dispatcher whose event lines wait for the end of the handler: the
Coordinator's (decisions, states, the kill-switch latch) and the Worker's probe (per-symbol
counters, venue-bound orders and tick-to-order latency)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from arbor.actors.cluster.counters import SymbolCounters
from arbor.actors.cluster.files import EventFile
from arbor.actors.distributed.latch import write_latch
from arbor.actors.runtime.dispatcher import QuietObserver
from arbor.adapters.operator.events import OPERATOR_EVENT, EventStream
from arbor.messages import (
    ActionApproved,
    ActionDenied,
    ActorFailed,
    Envelope,
    FeatureSnapshot,
    KillSwitchEngaged,
    KillSwitchReset,
    MandateSet,
    PlaceOrder,
    PositionChanged,
    RawMarketEvent,
    SubmitOrder,
    SymbolRecovered,
    TradingStateChanged,
    VenuePayload,
)


class HeldEvents(QuietObserver):
    """An observer whose event lines wait for the end of the handler that produced them: the
    node's shim calls ``flush`` after the handler's batches went out (and before closing), so a
    decision never waits for the disk. Each line keeps the time of its event."""

    events: EventFile
    _held: list[dict[str, Any]]

    def _event(self, **fields: Any) -> None:
        fields["ts_ns"] = time.time_ns()
        self._held.append(fields)

    def flush(self) -> None:
        if self._held:
            held, self._held = self._held, []
            for fields in held:
                self.events.write(**fields)


class _HeldHub:
    """Where a node's ``EventStream`` publishes: operator events become held ``{"ev": "operator"}``
    lines of the node's events file, which the launcher's follower publishes as they are. So the
    operator's event stream is translated from the traffic by one implementation in both modes."""

    def __init__(self, held: HeldEvents) -> None:
        self._held = held

    def publish(self, event: dict[str, Any]) -> None:
        self._held._event(ev=OPERATOR_EVENT, event=event)


class CoordinatorEvents(HeldEvents):
    """Records the Coordinator's decisions and states, and keeps the kill-switch latch file."""

    wants_inputs = True

    def __init__(self, var_dir: Path, events: EventFile) -> None:
        self.var_dir = var_dir
        self.events = events
        self._held: list[dict[str, Any]] = []
        self.counters = SymbolCounters(any_symbol=True)  # Risk's denials, since this incarnation
        self.stream = EventStream(_HeldHub(self))  # the operator's events, as one process makes them

    @property
    def denials(self) -> dict[str, int]:
        """Actions Risk denied, per symbol, since this incarnation."""
        return {s: r["denials"] for s, r in self.counters.rows.items() if r["denials"]}

    def emitted(self, env: Envelope, receivers: tuple[str, ...]) -> None:
        self.stream.emitted(env, receivers)
        m = env.payload
        t = type(m)
        if t is TradingStateChanged:
            self._event(ev="state", scope=m.scope, old=m.old.value, new=m.new.value, who=m.who, reason=m.reason)
        elif t is KillSwitchEngaged:
            write_latch(self.var_dir, True, m.who, m.reason)
            self._event(ev="kill", who=m.who, reason=m.reason)
        elif t is KillSwitchReset:
            write_latch(self.var_dir, False, m.who, m.reason)
            self._event(ev="kill_reset", who=m.who, reason=m.reason)
        elif t is ActionApproved:
            self._event(ev="approved", symbol=m.symbol, kind=m.action.kind.value, action_id=m.action.action_id)
        elif t is ActionDenied:
            self.counters.count(env)

    def processed(self, actor_id: str, env: Envelope, now_ns: int) -> None:
        m = env.payload
        if actor_id == "risk":
            if type(m) is PositionChanged:
                self._event(ev="position", symbol=m.symbol, state=m.state.value, qty=str(m.qty), cause=m.cause)
            elif type(m) is ActorFailed:
                self._event(ev="failed", symbol=m.symbol, actor_id=m.actor_id, kind=m.kind)
            elif type(m) is SymbolRecovered:
                self._event(ev="recovered", symbol=m.symbol)


class WorkerProbe(HeldEvents):
    """Per-symbol counters, venue-bound orders (journaled to the event file) and tick-to-order latency.

    Tick-to-order is measured twice for each order that followed an approval, both ending when
    the Executor hands the order to the venue: from the arrival of the market frame behind the
    decision (``latencies_ns``: its envelope's ``ts_recv_ns``, followed through the causation
    chain frame -> RawMarketEvent -> FeatureSnapshot -> MandateSet), and from that frame's
    exchange event time (``event_latencies_ns``: ``Action.data_ts_ns``, which has the venue's
    millisecond resolution, so it adds up to 1 ms the process never spent).
    """

    wants_inputs = True
    _KEEP = 4096  # causation links remembered (frames in flight between the feed and a decision)

    def __init__(self, symbols: tuple[str, ...], events: EventFile, incarnation: int) -> None:
        # The counters of actors/cluster/counters.py (one definition with one process), plus the
        # Worker's own: entries among the orders, and the venue of the events.
        self.counters = SymbolCounters(symbols)
        self.rows = self.counters.rows
        self.stream = EventStream(_HeldHub(self))  # the operator's events, as one process makes them
        for row in self.rows.values():
            row["entries"] = 0
        self.events = events
        self._held: list[dict[str, Any]] = []
        self.incarnation = incarnation
        self._arrival: dict[int, int] = {}  # msg_id of a frame, event or snapshot -> frame arrival
        self._decided: dict[tuple[str, int], int] = {}  # (symbol, data_ts_ns) of a MandateSet -> arrival
        self._approved: dict[int, tuple[int, int | None]] = {}
        self._submits: dict[int, tuple[int, int | None]] = {}
        self.latencies_ns: list[int] = []
        self.arrivals_ns: list[int] = []  # the frame arrival of each of ``latencies_ns``
        self.event_latencies_ns: list[int] = []
        self.frames = 0

    def external(self, env: Envelope) -> None:
        m = env.payload
        if type(m) is VenuePayload:
            self.frames += 1
            self._remember(self._arrival, env.msg_id, env.ts_recv_ns)

    def processed(self, actor_id: str, env: Envelope, now_ns: int) -> None:
        m = env.payload
        if type(m) is ActionApproved and actor_id.endswith("/position"):
            a = m.action
            self._remember(self._approved, env.msg_id, (a.data_ts_ns, self._decided.pop((a.symbol, a.data_ts_ns), None)))

    def emitted(self, env: Envelope, receivers: tuple[str, ...]) -> None:
        self.counters.count(env)
        self.stream.emitted(env, receivers)
        m = env.payload
        t = type(m)
        if t is RawMarketEvent or t is FeatureSnapshot:
            if t is RawMarketEvent:
                row = self.rows.get(m.symbol)
                if row is not None:
                    row["venue"] = m.venue
            arrived = self._arrival.get(env.causation_id)
            if arrived is not None:
                self._remember(self._arrival, env.msg_id, arrived)
        elif t is MandateSet:
            arrived = self._arrival.get(env.causation_id)
            if arrived is not None:
                self._remember(self._decided, (m.symbol, m.data_ts_ns), arrived)
        elif t is SubmitOrder:
            origin = self._approved.pop(env.causation_id, None)
            if origin is not None:
                self._remember(self._submits, env.msg_id, origin)
        elif t is PlaceOrder and env.sender.endswith("/executor"):
            row = self.rows.get(m.symbol)
            if row is not None:
                row["entries"] += 0 if m.reduce_only else 1
            origin = self._submits.pop(env.causation_id, None)
            if origin is not None and len(self.event_latencies_ns) < 200_000:
                now = time.time_ns()
                self.event_latencies_ns.append(now - origin[0])
                if origin[1] is not None:
                    self.latencies_ns.append(now - origin[1])
                    self.arrivals_ns.append(origin[1])
            self._event(ev="place", symbol=m.symbol, reduce_only=m.reduce_only,
                        client_order_id=m.client_order_id, incarnation=self.incarnation)
        elif t is SymbolRecovered:
            self._event(ev="recovered", symbol=m.symbol, incarnation=self.incarnation)

    def _remember(self, table: dict, key: Any, value: Any) -> None:
        """Keep the newest ``_KEEP`` to ``2 * _KEEP`` entries. (Not one eviction per insert: after
        many deletions at its front, ``next(iter(dict))`` scans the deleted slots, which cost
        ~30% of a Worker's throughput here.)"""
        table[key] = value
        if len(table) > 2 * self._KEEP:
            newest = list(table.items())[-self._KEEP:]
            table.clear()
            table.update(newest)
