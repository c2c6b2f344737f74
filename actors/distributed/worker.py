"""A Worker's core: the full subtrees of a set of symbols and their own market feed."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import attrs
from arbor.actors.assumptions import regime_assumptions
from arbor.actors.cluster.build import (
    build_symbol_actors,
    market_frames,
    market_venue,
    supervisor_for,
)
from arbor.actors.cluster.files import EventFile
from arbor.actors.cluster.live import MARKET_SOURCE
from arbor.actors.cluster.observers import LinkedTradeLog
from arbor.actors.cluster.probes import WorkerProbe
from arbor.actors.distributed.nodes import Node
from arbor.actors.distributed.tree import COORDINATOR as COORDINATOR_LINK
from arbor.actors.distributed.tree import worker_id as worker_link
from arbor.actors.replay.recorder import build_held
from arbor.actors.topology import symbol_of
from arbor.adapters.link.session import LinkAck, LinkBatch
from arbor.config.settings import Settings
from arbor.messages import (
    RESTORED,
    ActorFailed,
    Envelope,
    PositionChanged,
    SetTradingState,
    SymbolRecovered,
    TradingState,
)
from arbor.supervision.group import Health, SymbolSupervisor
from arbor.supervision.procs import rss_kb
from loguru import logger

# Opens a Worker's market: (its settings, narrowed to its own symbols; the start, ns) -> frames.
MarketSource = Callable[[Settings, int], Iterable[tuple[int, str, bytes]]]


class WorkerCore(Node):
    """The full subtrees of a set of symbols and their own market feed."""

    def __init__(self, settings: Settings, run_id: str, var_dir: str, slot: int, incarnation: int,
                 symbols: tuple[str, ...], restarted: bool, coordinator_incarnation: int,
                 raw_config: dict[str, Any] | None = None, market: MarketSource = market_frames) -> None:
        """``market`` opens this Worker's frames (the configured market unless given: a test may
        wrap it); its first frame is read here, the rest by ``feed``."""
        super().__init__(settings, run_id, var_dir, incarnation, raw_config)
        self.name = worker_link(slot)
        self.slot = slot
        self.symbols = tuple(symbols)
        self.events = EventFile(self.var_dir / "cluster" / "events" / f"{self.name}.jsonl")
        self.probe = self.held_events = WorkerProbe(self.symbols, self.events, incarnation)
        self.events.write(ev="worker_start", slot=slot, incarnation=incarnation, pid=os.getpid(),
                          symbols=list(self.symbols), restarted=restarted)
        def build() -> dict[str, Any]:
            out: dict[str, Any] = {}
            for s in self.symbols:
                out.update(build_symbol_actors(settings, s, self.clock, run_id, self.faults, self.codec))
            return out

        actors, built_ns = build_held(build, self.clock)
        # Positions, orders and the paper venue's records come back from the store (a restarted
        # worker) before recovery reconciles them with the venue.
        self.open_state(actors, self.events)
        # The run's trade log, as one process writes it (bin/report reads it).
        self.trades = LinkedTradeLog(
            self.var_dir / "trades.jsonl", settings.run.mode, run_id=run_id,
            open_path=self.var_dir / "cluster" / f"trades.open.{run_id}.{self.name}.json")
        journal = self.open_journal(actors, built_ns)  # first: what it refuses nobody counts
        self.open_dispatcher(actors, self._remote, (*journal, self.probe, self.trades, *self.traced()))
        self.hooks = supervisor_for(settings, self.clock, run_id, self.faults, self.persister)(self.d)
        self.d.attach_persistence(self.persister.after_handle)
        self.persister.start()
        self.venue = market_venue(settings)
        self.paced = settings.market.paced
        sub = attrs.evolve(settings, symbols=tuple(settings.symbol(s) for s in self.symbols))
        self._market_from = self.clock.now_ns()
        self._frames: Iterator[tuple[int, str, bytes]] = iter(())
        self.market_failed: str | None = None  # why the market source died for good (None: it did not)
        self.coordinator_incarnation = coordinator_incarnation
        self.senders[COORDINATOR_LINK] = self.new_sender(self.name)
        self._next = self._open_market(market, sub)  # after the link exists: a source dead at once halts its symbols
        self.started_ns = time.time_ns()
        if restarted:
            self.begin_recovery()
        self.announce(resend_failures=False)

    # -- recovery ---------------------------------------------------------------------------
    def begin_recovery(self) -> None:
        """A restarted worker's symbols come back as a restarted subtree does (their state already
        restored from the store): RECOVERING, entries refused, reconciled with the venue, warm
        again, then SymbolRecovered."""
        for sup in self.hooks.supervisors:
            if isinstance(sup, SymbolSupervisor):
                sup.begin_recovery()
        self.d.run()

    def announce(self, resend_failures: bool) -> None:
        """Tell the (possibly new) Coordinator each symbol's position and, if asked, each one's health."""
        now = self.clock.now_ns()
        for sup in self.hooks.supervisors:
            if not isinstance(sup, SymbolSupervisor):
                continue
            s = sup.symbol
            if resend_failures and sup.health is not Health.RUNNING:
                self.d.emit(sup.id, [ActorFailed(actor_id=f"{s}/worker", symbol=s, kind="died",
                                                 error=f"coordinator restarted while {s} is {sup.health.value}",
                                                 message_tag="", ts_event_ns=now)], 0)
            elif resend_failures:
                # A restored Risk may hold S down for a recovery it never heard of (sent while the
                # Coordinator was down, or not yet in its store): S is healthy. A no-op otherwise.
                self.d.emit(sup.id, [SymbolRecovered(symbol=s, ts_event_ns=now)], 0)
            pos = self.d.actors.get(f"{s}/position")
            snap = getattr(getattr(pos, "inner", pos), "snapshot", lambda: None)()
            if snap is None:
                continue
            msg = PositionChanged(symbol=s, state=snap.state, direction=snap.direction, qty=snap.qty,
                                  avg_entry_price=snap.avg_entry_price, realized_pnl=snap.realized_pnl, fees=snap.fees,
                                  ts_event_ns=now, action_id=snap.action_id, cause=RESTORED)
            self.d.emit(f"{s}/position", [msg], 0)
        if resend_failures and self.market_failed is not None:
            self._halt_symbols()  # a new Coordinator hears again that this market is gone
        self.d.run()

    def coordinator_up(self, incarnation: int) -> None:
        if incarnation == self.coordinator_incarnation and COORDINATOR_LINK in self.senders:
            return
        self.coordinator_incarnation = incarnation
        self.senders[COORDINATOR_LINK] = self.new_sender(self.name)
        self.receiver.forget(f"{COORDINATOR_LINK}>{self.name}")
        self.events.write(ev="coordinator_up", incarnation=incarnation)
        self.announce(resend_failures=True)

    def coordinator_down(self, incarnation: int) -> None:
        if incarnation == self.coordinator_incarnation:
            self.senders.pop(COORDINATOR_LINK, None)
            self.events.write(ev="coordinator_down", incarnation=incarnation)

    def _remote(self, receiver: str, env: Envelope) -> None:
        sender = self.senders.get(COORDINATOR_LINK)
        if sender is None or symbol_of(receiver):
            self.dropped += 1
            return
        sender.submit(self.codec.encode_envelope(env))
        if self.queued_remote is not None:
            self.queued_remote()

    def inbound_link(self, peer: str) -> str:
        return f"{COORDINATOR_LINK}>{self.name}"

    def on_batch(self, batch: LinkBatch) -> LinkAck | None:
        if batch.link != f"{COORDINATOR_LINK}>{self.name}" or batch.epoch != self.coordinator_incarnation:
            return None
        items, ack = self.receiver.on_batch(batch)
        self._deliver_items(items, batch.stamps)
        return ack

    # -- market feed ------------------------------------------------------------------------
    def feed(self, budget: int = 512, chunk: int = 64, max_s: float | None = None,
             ran: Callable[[], None] | None = None) -> float | None:
        """Deliver the frames that are due (paced) or as many as possible (unpaced), at most
        ``budget`` frames and, if given, for about ``max_s`` seconds, running the dispatcher every
        ``chunk`` frames (a sixteenth of that when paced, where a backlog is latency) and before
        looking at the clock again; ``ran`` is called after each run (the shim sends what it
        produced at once). Returns seconds until the next frame is due (0: more now), or None
        when the market has ended."""
        n = 0
        pending = 0
        d = self.d
        if self.paced:
            chunk = max(1, chunk // 16)
        started = time.perf_counter()
        now = self.clock.now_ns()  # a recorded market: the recording's time
        live_from = self._market_from
        while self._next is not None and n < budget:
            ts, symbol, payload = self._next
            if self.paced and ts > now:
                if pending:  # what was due goes out first; then frames that came due meanwhile
                    d.run()
                    pending = 0
                    if ran is not None:
                        ran()
                now = self.clock.now_ns()
                if ts > now:
                    break
            # A frame scheduled in this run arrived at its time (if we are behind, it waited in our
            # queue); a recorded one played at once arrives now.
            self.injector.market(self.venue, symbol, payload, ts_recv_ns=ts if self.paced and ts >= live_from else None)
            n += 1
            pending += 1
            try:
                self._next = next(self._frames, None)
            except Exception as exc:  # the source died for good (unreadable file, ...): fail closed
                self._next = None
                self._market_died(exc)
            if pending >= chunk:
                d.run()
                pending = 0
                if ran is not None:
                    ran()
                if max_s is not None and time.perf_counter() - started >= max_s:
                    break
        if pending:
            d.run()
            if ran is not None:
                ran()
        if self._next is None:
            return None
        if not self.paced:
            return 0.0
        return max(0.0, (self._next[0] - self.clock.now_ns()) / 1e9)

    def _open_market(self, market: MarketSource, sub: Settings) -> tuple[int, str, bytes] | None:
        """Open this Worker's market (its own symbols only) and return its first frame."""
        try:
            if self.symbols:
                self._frames = iter(market(sub, self._market_from))
            return next(self._frames, None)
        except Exception as exc:
            self._market_died(exc)
            return None

    def _market_died(self, exc: BaseException) -> None:
        """The market source raised: it is gone for good (a generator does not resume). As in one
        process (``LiveCluster._thread_died``): this Worker's symbols go HALTED at Risk
        (who="market_source", cancels only), the event is logged, and the status says why, so
        the launcher exits 1 at the end. The other Workers' symbols are not touched."""
        self.market_failed = f"market source died: {exc!r}"[:300]
        log = logger.bind(actor=self.name, event_type="market_source_died")
        log.critical("{}: {}; halting {}", self.name, self.market_failed, ", ".join(self.symbols))
        log.opt(exception=exc).info("market source traceback")  # the node's log file only, not stderr
        self.events.write(ev="market_failed", reason=self.market_failed, symbols=list(self.symbols),
                          incarnation=self.incarnation)
        self._halt_symbols()

    def _halt_symbols(self) -> None:
        """SetTradingState(HALTED, who="market_source") to Risk for each of this Worker's symbols,
        an external input of this node (journaled) sent over the link (dropped while the
        Coordinator is down: ``announce`` sends it again to the next one)."""
        reason = self.market_failed or "market source died"
        for s in self.symbols:
            msg = SetTradingState(scope=s, state=TradingState.HALTED, who=MARKET_SOURCE, reason=reason)
            self._remote("risk", self.injector.envelope("risk", msg, sender=MARKET_SOURCE))

    def status(self) -> dict[str, Any]:
        sups = {s.symbol: s for s in self.hooks.supervisors if isinstance(s, SymbolSupervisor)}
        rows = {}
        for s in self.symbols:
            pos = self.d.actors.get(f"{s}/position")
            snap = getattr(getattr(pos, "inner", pos), "snapshot", lambda: None)()
            rows[s] = {**self.probe.rows[s], "health": sups[s].health.value if s in sups else "?",
                       "position": snap.state.value if snap is not None else "?",
                       "qty": str(snap.qty) if snap is not None else "0",
                       "direction": snap.direction.value if snap is not None and snap.direction is not None else None,
                       "avg_entry_price": str(snap.avg_entry_price) if snap is not None and snap.avg_entry_price is not None else None,
                       "assumptions": regime_assumptions(self.d.actors.get(f"{s}/regime"))}
        return {"role": "worker", "slot": self.slot, "incarnation": self.incarnation, "pid": os.getpid(),
                "run_id": self.run_id, "ts_ns": time.time_ns(), "started_ns": self.started_ns, "symbols": rows,
                "frames": self.probe.frames, "market_done": self._next is None, "market_failed": self.market_failed,
                "link": self.link_stats(), "store": self.store_status(),
                "rss_kb": rss_kb(), "processed": self.d.processed_count}

    def latency_report(self) -> dict[str, list[Any]]:
        """The newest 20,000 tick-to-order samples (see ``WorkerProbe``), and hop records when traced."""
        p = self.probe
        out: dict[str, list[Any]] = {"latencies_ns": p.latencies_ns[-20_000:], "arrivals_ns": p.arrivals_ns[-20_000:],
                                     "event_latencies_ns": p.event_latencies_ns[-20_000:]}
        if self.hops is not None:
            out["hops"] = self.hops.report()
        return out

    def close(self) -> None:
        try:
            super().close()
        finally:
            self.events.close()
            self.trades.close()
