"""The live event stream: cluster traffic as operator events, fanned out to websocket clients.

``EventStream`` is an Observer. It runs on the cluster's group threads, so it does one thing
per interesting message: build a small dict and hand it to the hub with a non-blocking
``loop.call_soon_threadsafe``. Everything else (per-client queues, websocket writes, the
alert webhook) happens on the server's event loop, so a slow or stuck client can never slow
the cluster: its bounded queue drops the oldest events and it is told how many it missed.

An event is ``{"type", "ts" (UTC ISO), "severity" (info|warning|critical), "message", "data"}``;
alerts carry ``"alert": true`` and are also POSTed as JSON to the configured webhook.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Protocol

from arbor.actors.cluster.observers import iso
from arbor.messages import (
    ActionDenied,
    ActorFailed,
    ActorRestarted,
    AssumptionHealthChanged,
    DecodeFailure,
    Envelope,
    KillSwitchEngaged,
    KillSwitchReset,
    KillSwitchResetRefused,
    OrderCanceled,
    OrderFilled,
    OrderRejected,
    OrderTimedOut,
    PlaceOrder,
    PoisonMessageQuarantined,
    ReconciliationCompleted,
    SymbolQuarantined,
    SymbolRecovered,
    SymbolReleased,
    TradingStateChanged,
)
from loguru import logger

INFO, WARNING, CRITICAL = "info", "warning", "critical"
NS_PER_S = 1_000_000_000

Event = dict[str, Any]
OPERATOR_EVENT = "operator"  # a node's events-file line that carries one Event (actors/cluster/probes.py)


def make_event(type_: str, ts_ns: int, severity: str, message: str, data: dict[str, Any] | None = None,
               alert: bool = False) -> Event:
    ev: Event = {"type": type_, "ts": iso(ts_ns), "severity": severity, "message": message,
                 "data": {k: (str(v) if isinstance(v, Decimal) else getattr(v, "value", v)) for k, v in (data or {}).items()}}
    if alert:
        ev["alert"] = True
    return ev


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class EventHub:
    """Per-client bounded queues on one event loop; ``publish`` may be called from any thread.

    ``attach(loop)`` binds the hub to the server's loop (the server does it on start); events
    published before that, or after ``detach``, are kept only in the recent-events backlog.
    """

    def __init__(self, client_queue: int = 256, backlog: int = 100) -> None:
        self.client_queue = client_queue
        self._recent: collections.deque[Event] = collections.deque(maxlen=backlog)  # appends are atomic
        self._loop: asyncio.AbstractEventLoop | None = None
        self._clients: set[Client] = set()
        self._on_alert: Callable[[Event], None] | None = None
        self.published = 0

    def attach(self, loop: asyncio.AbstractEventLoop, on_alert: Callable[[Event], None] | None = None) -> None:
        """Fan out on ``loop`` from now on; ``on_alert`` (the webhook) runs there for each alert."""
        self._on_alert = on_alert
        self._loop = loop

    def detach(self) -> None:
        self._loop = None
        self._on_alert = None

    def publish(self, event: Event) -> None:
        """Non-blocking from any thread: queue the fan-out on the hub's loop."""
        self._recent.append(event)
        self.published += 1
        loop = self._loop
        if loop is None:
            return
        with contextlib.suppress(RuntimeError):  # the loop closed under us: the server is stopping
            loop.call_soon_threadsafe(self._fanout, event)

    def recent(self) -> list[Event]:
        return list(self._recent)

    # -- on the hub's loop -------------------------------------------------------------------
    def _fanout(self, event: Event) -> None:
        for client in list(self._clients):
            client.put(event)
        if event.get("alert") and self._on_alert is not None:
            self._on_alert(event)

    def subscribe(self, backlog: bool = True) -> Client:
        client = Client(self.client_queue)
        if backlog:
            for ev in list(self._recent):
                client.put(ev)
        self._clients.add(client)
        return client

    def unsubscribe(self, client: Client) -> None:
        self._clients.discard(client)

    @property
    def clients(self) -> int:
        return len(self._clients)


class Client:
    """One subscriber's bounded queue (loop thread only): overflow drops the oldest event."""

    def __init__(self, maxlen: int) -> None:
        self._q: collections.deque[Event] = collections.deque()
        self._maxlen = maxlen
        self._wake = asyncio.Event()
        self.dropped = 0

    def put(self, event: Event) -> None:
        if len(self._q) >= self._maxlen:
            self._q.popleft()
            self.dropped += 1
        self._q.append(event)
        self._wake.set()

    async def get_batch(self) -> list[Event]:
        """Wait for events; a ``dropped`` event leads the batch when some were lost."""
        while not self._q and not self.dropped:
            self._wake.clear()
            await self._wake.wait()
        out: list[Event] = []
        if self.dropped:
            out.append({"type": "dropped", "ts": now_iso(), "severity": WARNING,
                        "message": f"{self.dropped} events dropped: client too slow", "data": {},
                        "count": self.dropped})
            self.dropped = 0
        out.extend(self._q)
        self._q.clear()
        return out


class EventSink(Protocol):
    """Where an ``EventStream`` publishes: the ``EventHub`` in one process, a node's events file
    across processes (actors/cluster/probes.py)."""

    def publish(self, event: Event) -> None: ...


class EventStream:
    """Observer: turns fills, orders, verdicts, state changes, supervision, kill switch and decode
    failures into events, and raises alerts. Runs on group threads; never blocks."""

    wants_inputs = False

    def __init__(self, hub: EventSink, reject_alert_count: int = 3, reject_window_s: float = 60.0) -> None:
        self.hub = hub
        self._reject_count = reject_alert_count
        self._reject_window_ns = int(reject_window_s * NS_PER_S)
        self._rejects: dict[str, collections.deque[int]] = {}
        self._lock = threading.Lock()

    def external(self, env: Envelope) -> None:
        pass

    def processed(self, actor_id: str, env: Envelope, now_ns: int = 0) -> None:
        pass

    def emitted(self, env: Envelope, receivers: tuple[str, ...]) -> None:
        handler = _HANDLERS.get(type(env.payload))
        if handler is None:
            return
        for ev in handler(self, env):
            self.hub.publish(ev)

    def alert(self, type_: str, ts_ns: int, severity: str, message: str, data: dict[str, Any] | None = None) -> None:
        """Raise an alert from outside the traffic (the liveness cycle: missed heartbeat)."""
        self.hub.publish(make_event(type_, ts_ns, severity, message, data, alert=True))

    # -- one function per message type -------------------------------------------------------
    def _fill(self, env: Envelope) -> list[Event]:
        m: OrderFilled = env.payload
        if not env.sender.endswith("/venue"):
            return []  # the executor forwards each fill to the position: show it once
        return [make_event("fill", m.ts_event_ns, INFO, f"{m.symbol} {m.side.value} {m.qty} @ {m.price}",
                           {"symbol": m.symbol, "side": m.side, "qty": m.qty, "price": m.price, "fee": m.fee,
                            "client_order_id": m.client_order_id, "leaves_qty": m.leaves_qty})]

    def _order(self, env: Envelope) -> list[Event]:
        m: PlaceOrder = env.payload
        return [make_event("order", m.ts_event_ns, INFO,
                           f"{m.symbol} {m.side.value} {m.qty} {m.order_type.value}"
                           + (f" @ {m.limit_price}" if m.limit_price is not None else ""),
                           {"symbol": m.symbol, "side": m.side, "qty": m.qty, "order_type": m.order_type,
                            "limit_price": m.limit_price, "reduce_only": m.reduce_only,
                            "client_order_id": m.client_order_id})]

    def _reject(self, env: Envelope) -> list[Event]:
        m: OrderRejected = env.payload
        if not env.sender.endswith("/venue"):
            return []
        out = [make_event("order_rejected", m.ts_event_ns, WARNING, f"{m.symbol} order rejected: {m.reason}",
                          {"symbol": m.symbol, "reason": m.reason, "client_order_id": m.client_order_id})]
        with self._lock:
            times = self._rejects.setdefault(m.symbol, collections.deque())
            times.append(m.ts_event_ns)
            while times and times[0] <= m.ts_event_ns - self._reject_window_ns:
                times.popleft()
            repeated = len(times) >= self._reject_count
            if repeated:
                times.clear()  # one alert per burst
        if repeated:
            out.append(make_event("repeated_rejects", m.ts_event_ns, CRITICAL,
                                  f"{m.symbol}: {self._reject_count} orders rejected within "
                                  f"{self._reject_window_ns // NS_PER_S}s (last: {m.reason})",
                                  {"symbol": m.symbol, "reason": m.reason}, alert=True))
        return out

    def _order_end(self, env: Envelope) -> list[Event]:
        m = env.payload
        if isinstance(m, OrderCanceled):
            if not env.sender.endswith("/venue"):
                return []
            return [make_event("order_canceled", m.ts_event_ns, INFO, f"{m.symbol} order canceled: {m.reason}",
                               {"symbol": m.symbol, "reason": m.reason, "filled_qty": m.filled_qty})]
        return [make_event("order_timed_out", m.ts_event_ns, WARNING,
                           f"{m.symbol} order {m.client_order_id} timed out: fate unknown",
                           {"symbol": m.symbol, "client_order_id": m.client_order_id})]

    def _denied(self, env: Envelope) -> list[Event]:
        m: ActionDenied = env.payload
        out = [make_event("risk_denied", m.ts_event_ns, INFO,
                          f"{m.symbol} {m.action.kind.value} denied: {m.reason}",
                          {"symbol": m.symbol, "kind": m.action.kind, "reason": m.reason, "detail": m.detail})]
        if m.reason == "stale_data":
            out.append(make_event("stale_data", m.ts_event_ns, WARNING, f"{m.symbol}: {m.detail}",
                                  {"symbol": m.symbol}, alert=True))
        return out

    def _trading_state(self, env: Envelope) -> list[Event]:
        m: TradingStateChanged = env.payload
        severity = INFO if m.new.value == "ACTIVE" else WARNING
        scope = "all symbols" if m.scope == "*" else m.scope
        return [make_event("trading_state", m.ts_event_ns, severity,
                           f"{scope}: {m.old.value} -> {m.new.value} by {m.who} ({m.reason})",
                           {"scope": m.scope, "old": m.old, "new": m.new, "who": m.who, "reason": m.reason})]

    def _kill(self, env: Envelope) -> list[Event]:
        m = env.payload
        if isinstance(m, KillSwitchEngaged):
            out = [make_event("kill_switch", m.ts_event_ns, CRITICAL, f"kill switch ENGAGED by {m.who}: {m.reason}",
                              {"engaged": True, "who": m.who, "reason": m.reason}, alert=True)]
            limit = m.reason.split(":", 1)[0]
            if limit in ("daily_loss", "drawdown"):
                out.append(make_event("loss_limit", m.ts_event_ns, CRITICAL, m.reason,
                                      {"limit": limit, "reason": m.reason}, alert=True))
            elif m.reason.startswith("stale market data"):
                out.append(make_event("stale_data", m.ts_event_ns, CRITICAL, m.reason, {"reason": m.reason},
                                      alert=True))
            return out
        if isinstance(m, KillSwitchReset):
            return [make_event("kill_switch", m.ts_event_ns, WARNING, f"kill switch reset by {m.who}: {m.reason}",
                               {"engaged": False, "who": m.who, "reason": m.reason})]
        return [make_event("kill_switch_reset_refused", m.ts_event_ns, WARNING,
                           f"kill switch reset by {m.who} refused: {m.reason}", {"who": m.who, "reason": m.reason})]

    def _supervision(self, env: Envelope) -> list[Event]:
        m = env.payload
        if isinstance(m, ActorFailed):
            return [make_event("actor_failed", m.ts_event_ns, WARNING,
                               f"{m.actor_id} failed ({m.kind}) on {m.message_tag}: {m.error}",
                               {"actor_id": m.actor_id, "symbol": m.symbol, "kind": m.kind, "error": m.error})]
        if isinstance(m, ActorRestarted):
            return [make_event("actor_restarted", m.ts_event_ns, INFO, f"{m.actor_id} restarted ({m.restarts})",
                               {"actor_id": m.actor_id, "symbol": m.symbol, "restarts": m.restarts})]
        if isinstance(m, SymbolQuarantined):
            return [make_event("symbol_quarantined", m.ts_event_ns, CRITICAL, f"{m.symbol} quarantined: {m.reason}",
                               {"symbol": m.symbol, "reason": m.reason}, alert=True)]
        if isinstance(m, SymbolReleased):
            return [make_event("symbol_released", m.ts_event_ns, WARNING, f"{m.symbol} released by {m.who}: {m.reason}",
                               {"symbol": m.symbol, "who": m.who, "reason": m.reason})]
        if isinstance(m, PoisonMessageQuarantined):
            return [make_event("poison_message", m.ts_event_ns, WARNING,
                               f"{m.actor_id}: {m.message_tag} set aside after a repeated crash",
                               {"actor_id": m.actor_id, "message_tag": m.message_tag, "error": m.error})]
        return [make_event("symbol_recovered", m.ts_event_ns, INFO, f"{m.symbol} recovered", {"symbol": m.symbol})]

    def _assumption(self, env: Envelope) -> list[Event]:
        """Every change of a market assumption's health; entering or leaving DRIFTING/BROKEN is an alert
        (UNKNOWN -> OK, the first verdict, is not)."""
        m: AssumptionHealthChanged = env.payload
        new, old = m.new.value, m.old.value
        severity = CRITICAL if new == "BROKEN" else WARNING if new == "DRIFTING" else INFO
        alert = new in ("DRIFTING", "BROKEN") or old in ("DRIFTING", "BROKEN")
        action = " (symbol to REDUCING)" if new == "BROKEN" and m.on_broken == "reduce" else ""
        return [make_event("assumption", m.ts_event_ns, severity,
                           f"{m.symbol} assumption {m.name}: {old} -> {new}, {m.observation} {m.value:.6g} "
                           f"(bound {m.bound}){action}",
                           {"symbol": m.symbol, "name": m.name, "observation": m.observation, "old": old, "new": new,
                            "value": m.value, "bound": m.bound, "samples": m.samples, "on_broken": m.on_broken},
                           alert=alert)]

    def _decode(self, env: Envelope) -> list[Event]:
        m: DecodeFailure = env.payload
        return [make_event("decode_failure", m.ts_recv_ns, WARNING, f"{m.symbol}/{m.venue}: {m.error}",
                           {"symbol": m.symbol, "venue": m.venue, "ingest_seq": m.ingest_seq})]

    def _reconciled(self, env: Envelope) -> list[Event]:
        m: ReconciliationCompleted = env.payload
        drift = m.outcome == "DRIFT_UNRESOLVED"
        severity = CRITICAL if drift else (INFO if m.outcome == "NONE" else WARNING)
        return [make_event("reconciliation_drift" if drift else "reconciliation", m.ts_event_ns, severity,
                           f"{m.symbol} reconciliation {m.outcome}: local {m.local_qty} venue {m.venue_qty}"
                           + (f" ({m.detail})" if m.detail else ""),
                           {"symbol": m.symbol, "outcome": m.outcome, "local_qty": m.local_qty,
                            "venue_qty": m.venue_qty}, alert=drift)]


_HANDLERS: dict[type, Callable[[EventStream, Envelope], list[Event]]] = {
    OrderFilled: EventStream._fill,
    PlaceOrder: EventStream._order,
    OrderRejected: EventStream._reject,
    OrderCanceled: EventStream._order_end,
    OrderTimedOut: EventStream._order_end,
    ActionDenied: EventStream._denied,
    TradingStateChanged: EventStream._trading_state,
    KillSwitchEngaged: EventStream._kill,
    KillSwitchReset: EventStream._kill,
    KillSwitchResetRefused: EventStream._kill,
    ActorFailed: EventStream._supervision,
    ActorRestarted: EventStream._supervision,
    SymbolQuarantined: EventStream._supervision,
    SymbolRecovered: EventStream._supervision,
    SymbolReleased: EventStream._supervision,
    PoisonMessageQuarantined: EventStream._supervision,
    DecodeFailure: EventStream._decode,
    AssumptionHealthChanged: EventStream._assumption,
    ReconciliationCompleted: EventStream._reconciled,
}


class Webhook:
    """POSTs alerts as JSON to ``url`` from the server loop; at most ``max_pending`` in flight, never blocking."""

    def __init__(self, url: str, timeout_s: float = 3.0, max_pending: int = 32) -> None:
        self.url = url
        self._timeout = timeout_s
        self._max_pending = max_pending
        self._session: Any = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.sent = 0
        self.failed = 0
        self.skipped = 0

    async def open(self) -> None:
        import aiohttp

        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self._timeout))

    async def close(self) -> None:
        for t in list(self._tasks):
            t.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
            self._session = None

    def __call__(self, event: Event) -> None:
        """On the loop thread: start a POST unless too many are already pending."""
        if self._session is None or len(self._tasks) >= self._max_pending:
            self.skipped += 1
            return
        task = asyncio.get_running_loop().create_task(self._post(event))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _post(self, event: Event) -> None:
        try:
            async with self._session.post(self.url, json=event) as resp:
                if resp.status >= 300:
                    raise RuntimeError(f"HTTP {resp.status}")
            self.sent += 1
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.failed += 1
            logger.bind(actor="operator", event_type="webhook_failed").warning("alert webhook failed: {!r}", exc)
