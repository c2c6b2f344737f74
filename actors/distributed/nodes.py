"""The logic of the Coordinator and Worker processes, without thespian.

Each node hosts a ``Dispatcher`` driven by its process's single thread (the thespian actor):
the Coordinator the singletons (Risk, Arbitrator) under their ``SingletonSupervisor``, a Worker
the full subtrees of its symbols (collector ... executor, venue) under their
``SymbolSupervisor``s, exactly as built for the single-process runtime, and persisted the same
way: each node keeps its actors' durable state in its own store,
``<var_dir>/state/<node>/arbor.sqlite``, from which a restarted node is rebuilt. Whatever a
dispatcher routes to an actor it does not host goes to ``_remote``: encoded with the journal's
envelope encoding and queued on the reliable link to the process that hosts the receiver.
Market data never leaves a Worker: only decisions and supervision events cross.

The actor shims (``actors.distributed.system``) feed these cores thespian messages and send
what ``due()`` returns; tests drive them directly too.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import attrs
from arbor.actors.assumptions import regime_assumptions
from arbor.actors.cluster.build import (
    build_singletons,
    build_symbol_actors,
    market_frames,
    market_venue,
    supervisor_for,
)
from arbor.actors.cluster.files import EventFile
from arbor.actors.cluster.live import MARKET_SOURCE
from arbor.actors.cluster.observers import LinkedTradeLog
from arbor.actors.cluster.probes import CoordinatorEvents, HeldEvents, WorkerProbe
from arbor.actors.distributed.latch import read_latch
from arbor.actors.distributed.session import LinkAck, LinkBatch, LinkReceiver, LinkSender
from arbor.actors.distributed.tree import COORDINATOR as COORDINATOR_LINK
from arbor.actors.distributed.tree import worker_id as worker_link
from arbor.actors.replay.recorder import JournalObserver, build_held, open_journal_observer
from arbor.actors.runtime.clock import HandlerClock
from arbor.actors.runtime.dispatcher import Dispatcher, id_source
from arbor.actors.topology import symbol_of
from arbor.config.settings import Settings
from arbor.messages import (
    RESTORED,
    ActorFailed,
    EngageKillSwitch,
    Envelope,
    PositionChanged,
    SetTradingState,
    SymbolRecovered,
    TimerTick,
    TradingState,
    VenuePayload,
)
from arbor.messages.codec import Codec, CodecError
from arbor.supervision.faults import FaultPlan
from arbor.supervision.group import Health, SymbolSupervisor
from arbor.supervision.persist import StatePersister, restore_all
from arbor.supervision.procs import rss_kb
from arbor.supervision.store import SIDECARS, StateStore
from loguru import logger

STORE_RUN_KEY = "cluster_run_id"  # the run whose state a node's store holds

MSG_IDS_PER_INCARNATION_BITS = 40  # 1.1e12 ids per process: ~35 years at 1,000 messages a second


def msg_id_base(incarnation: int) -> int:
    """The first message id of a process: incarnations come from the supervisor's one counter
    (``incarnations.IncarnationCounter``), so each process owns the ids
    ``[incarnation << 40, (incarnation + 1) << 40)`` and no two processes of a run, restarts
    included, issue the same id; a later incarnation's ids are above every earlier one's."""
    return (incarnation << MSG_IDS_PER_INCARNATION_BITS) + 1


def node_store_path(var_dir: str | Path, node: str) -> Path:
    """Where ``node`` (``coordinator``, ``worker-K``) keeps its actors' state."""
    return Path(var_dir) / "state" / node / "arbor.sqlite"


def open_node_store(var_dir: str | Path, node: str, run_id: str) -> tuple[StateStore, bool]:
    """The node's state store, and whether it holds state of this run (the node was restarted).

    A store is a run's: one left by another run of the cluster (which may have placed the symbols
    elsewhere) is moved aside to ``arbor.sqlite.previous`` (replacing an older one) and the node
    starts empty. A store that cannot be trusted is quarantined by ``StateStore`` itself and the
    node starts empty, degraded.
    """
    path = node_store_path(var_dir, node)
    existed = path.exists()
    store = StateStore(path)
    if not store.degraded and store.get(STORE_RUN_KEY) == run_id:
        return store, True
    if existed and not store.degraded:
        store.close()
        _set_aside(path)
        store = StateStore(path)
    store.put(STORE_RUN_KEY, run_id)
    return store, False


def _set_aside(path: Path) -> None:
    previous = path.with_name(path.name + ".previous")
    for suffix in ("", *SIDECARS):
        src, dst = Path(f"{path}{suffix}"), Path(f"{previous}{suffix}")
        if src.exists():
            os.replace(src, dst)
        elif dst.exists():
            dst.unlink()  # an older copy's log must never be applied to this one


class Node:
    """What both node kinds share: a dispatcher, the codec, link endpoints, ticks and counters."""

    name = "node"

    def __init__(self, settings: Settings, run_id: str, var_dir: str, incarnation: int,
                 raw_config: dict[str, Any] | None = None) -> None:
        self.settings = settings
        self.raw_config = raw_config  # what the run's Settings were built from (the journal records it)
        self.journal: JournalObserver | None = None
        self.run_id = run_id
        self.var_dir = Path(var_dir)
        self.incarnation = incarnation
        self.clock = HandlerClock()
        self.codec = Codec()
        self.receiver = LinkReceiver()
        self.senders: dict[str, LinkSender] = {}
        self.faults = FaultPlan(settings.faults, seed=settings.market.seed) if settings.faults else None
        self.d: Dispatcher
        self.events: EventFile  # each node kind opens its own events file
        self.held_events: HeldEvents  # and its observer whose lines wait for the handler's end
        self.decode_errors = 0
        self.dropped = 0
        # Called after an envelope was queued for another node (the shim sends it at once
        # unless it sent moments ago: see _NodeActor._send_now).
        self.queued_remote: Callable[[], None] | None = None
        c = getattr(settings, "cluster", None)
        self._window = getattr(c, "link_window", 4096)
        self._batch = getattr(c, "link_batch", 256)
        self._tick_s = settings.run.tick_interval_ms / 1000
        self._next_tick = time.monotonic() + self._tick_s
        self._tick_groups: list[list[str]] | None = None  # tick receivers by symbol (see maybe_tick)
        self._tick_at: list[float] = []

    def open_state(self, actors: dict[str, Any], events: EventFile) -> None:
        """Open this node's store and persister, and restore ``actors`` from the store when it
        holds this run's state (the node is a restarted one), before anything is handled."""
        self.store, same_run = open_node_store(self.var_dir, self.name, self.run_id)
        self.persister = StatePersister(self.store, threaded=False)  # the shim calls flush_due
        self.restored: list[str] = []
        if self.store.degraded:
            logger.bind(actor=self.name, event_type="store_degraded").error(
                "state store degraded, starting without stored state: {}", self.store.degraded_reason)
            events.write(ev="store_degraded", reason=self.store.degraded_reason)
        elif same_run:
            self.restored = restore_all(actors, self.persister)
            positions = {}
            for aid in self.restored:
                if aid.endswith("/position"):
                    snap = getattr(actors[aid], "inner", actors[aid]).snapshot()
                    positions[symbol_of(aid)] = {"state": snap.state.value, "qty": str(snap.signed_qty)}
            events.write(ev="restored", actors=self.restored, positions=positions)

    def open_journal(self, actors: dict[str, Any], built_ns: int) -> tuple[JournalObserver, ...]:
        """This node's journal, ``<var_dir>/journal/<run_id>/<node>`` (a restarted node appends a new
        run to it), as single-process mode writes its own: every input, inbox and output of the
        actors it hosts, plus each envelope that arrives from another node as an external input,
        so each node's journal is audited on its own (``bin/replay audit <var_dir>/journal/<run_id>``
        audits them all). Returns the observer to put first (none when journaling is off, or the
        node was built without the raw configuration, as unit tests do)."""
        if self.raw_config is None or not self.settings.journal.enabled:
            return ()
        restored = {aid: getattr(actors[aid], "inner", actors[aid]).snapshot() for aid in self.restored}
        j = self.settings.journal
        self.journal = open_journal_observer(self.var_dir, self.run_id, self.raw_config, j.policy, built_ns=built_ns,
                                             codec=self.codec, restored=restored,
                                             segment_bytes=j.segment_mb * 1024 * 1024, node=self.name)
        return (self.journal,)

    def flush_events(self) -> None:
        """Write the event lines held during the handler that just ended (see ``HeldEvents``)."""
        self.held_events.flush()

    def latency_report(self) -> dict[str, list[int]] | None:
        """Latency samples this node keeps for ``<name>.latency.json`` (None: it keeps none)."""
        return None

    def store_status(self) -> dict[str, Any]:
        p = self.persister
        return {"path": str(self.store.path), "degraded": self.store.degraded, "restored": len(self.restored),
                "writes": p.writes, "write_ahead": p.write_ahead, "errors": p.errors}

    def new_sender(self, link: str) -> LinkSender:
        return LinkSender(link, self.incarnation, window=self._window, max_batch=self._batch)

    # -- inbound ----------------------------------------------------------------------------
    def _deliver_items(self, items: list[bytes]) -> None:
        journal = self.journal
        for raw in items:
            try:
                env = self.codec.decode_envelope(raw)
            except CodecError as exc:
                self.decode_errors += 1
                logger.bind(actor=self.name, event_type="link_decode_error").error("undecodable envelope: {}", exc)
                continue
            if journal is not None:
                journal.external(env)  # what another node sent is this node's input
            self.d.deliver(env)  # the dispatcher dead-letters (and counts) what it does not host
        if items:
            self.d.run()

    def on_ack(self, ack: LinkAck) -> None:
        for s in self.senders.values():
            if s.link == ack.link:
                s.on_ack(ack)

    def external(self, receiver: str, msg: Any, sender: str = "operator", recv_ns: int | None = None) -> Envelope:
        now = self.clock.now_ns()
        env = Envelope(msg_id=self.d._next_id(), sender=sender, receiver=receiver, ts_event_ns=now,
                       ts_recv_ns=now if recv_ns is None else recv_ns, causation_id=0, payload=msg)
        for obs in self.d._observers:
            obs.external(env)
        return env

    # -- timers -----------------------------------------------------------------------------
    def tick_due(self, mono: float) -> bool:
        return self._tick_s > 0 and self._next_tick <= mono

    def maybe_tick(self, mono: float) -> None:
        """Timer ticks: each actor that wants them gets one every ``tick_interval_ms``, one
        symbol's actors at a time, the symbols' ticks spread evenly over the interval. Ticking
        every symbol at once held this thread for ~0.3 ms every interval (12 symbols), and a
        decision arriving meanwhile waited for all of them."""
        if not self.tick_due(mono):
            return
        if self._tick_groups is None:
            groups: dict[str, list[str]] = {}
            for aid in self.d.tick_receivers:
                groups.setdefault(symbol_of(aid), []).append(aid)
            self._tick_groups = list(groups.values())
            step = self._tick_s / max(1, len(self._tick_groups))
            self._tick_at = [self._next_tick + k * step for k in range(len(self._tick_groups))]
        if not self._tick_groups:
            self._next_tick = float("inf")
            return
        ts = self.clock.now_ns()
        tick = TimerTick(ts_event_ns=ts)
        due_at = self._tick_at
        journal = self.journal
        for k, group in enumerate(self._tick_groups):
            if due_at[k] > mono:
                continue
            due_at[k] = max(due_at[k] + self._tick_s, mono)
            for aid in group:
                env = Envelope(msg_id=self.d._next_id(), sender="timer", receiver=aid, ts_event_ns=ts,
                               ts_recv_ns=ts, causation_id=0, payload=tick)
                if journal is not None:
                    journal.external(env)
                self.d.deliver(env)
        self._next_tick = min(due_at)
        self.d.run()

    # -- outbound ---------------------------------------------------------------------------
    def due(self) -> list[tuple[str, LinkBatch]]:
        """Batches to send now, as (peer, batch)."""
        return [(peer, b) for peer, s in self.senders.items() for b in s.due()]

    def inbound_link(self, peer: str) -> str:
        """The name of the link on which ``peer`` sends to this node."""
        return peer

    def resync(self, peer: str) -> LinkAck | None:
        """The connection to ``peer`` was made (again): everything unacknowledged goes to it again,
        and the ack to send asks it for everything after what arrived (``None``: nothing did yet)."""
        self.rewind(peer)
        return self.receiver.resync(self.inbound_link(peer))

    def rewind(self, peer: str) -> None:
        """What was sent to ``peer`` and not acknowledged goes again (a refused send, a reconnect)."""
        sender = self.senders.get(peer)
        if sender is not None:
            sender.rewind()

    def link_stats(self) -> dict[str, Any]:
        return {"senders": {p: {"in_flight": s.in_flight, "backlog": s.backlog, **vars(s.stats)}
                            for p, s in self.senders.items()},
                "receiver": vars(self.receiver.stats), "decode_errors": self.decode_errors, "dropped": self.dropped}

    def close(self) -> None:
        """A clean stop: everything queued is written before the store is closed."""
        try:
            self.persister.stop()
            self.store.close()
        finally:
            if self.journal is not None:
                self.journal.close()


# ------------------------------------------------------------------------------------------
class _WorkerPeer:
    def __init__(self, slot: int, incarnation: int, symbols: tuple[str, ...]) -> None:
        self.slot = slot
        self.incarnation = incarnation
        self.symbols = symbols
        self.up = True


class CoordinatorCore(Node):
    """Risk and the Arbitrator; symbol actors are reached through each Worker's link."""

    name = "coordinator"
    slot = -1  # as its Heartbeat says

    def __init__(self, settings: Settings, run_id: str, var_dir: str, incarnation: int,
                 assignment: dict[int, tuple[str, ...]], raw_config: dict[str, Any] | None = None) -> None:
        super().__init__(settings, run_id, var_dir, incarnation, raw_config)
        self.assignment = {int(k): tuple(v) for k, v in assignment.items()}
        self.slot_of = {s: k for k, syms in self.assignment.items() for s in syms}
        self.events = EventFile(self.var_dir / "cluster" / "events" / "coordinator.jsonl")
        self.observer = self.held_events = CoordinatorEvents(self.var_dir, self.events)
        self.events.write(ev="coordinator_start", incarnation=incarnation, pid=os.getpid())
        actors, built_ns = build_held(lambda: build_singletons(settings, self.clock, run_id, self.faults), self.clock)
        # A restarted Coordinator's Risk and Arbitrator resume from the store (books, trading
        # states, reservations, pending entries), never from constructor defaults.
        self.open_state(actors, self.events)
        journal = self.open_journal(actors, built_ns)
        self.d = Dispatcher(actors, self.clock, id_source(msg_id_base(incarnation)), remote=self._remote,
                            observers=(*journal, self.observer))
        self.hooks = supervisor_for(settings, self.clock, run_id, self.faults, self.persister)(self.d)
        self.d.attach_persistence(self.persister.after_handle)
        self.persister.start()
        self.peers: dict[int, _WorkerPeer] = {}
        self._early: dict[int, list[LinkBatch]] = {}  # slot -> batches that came before its WorkerUp
        latch = read_latch(self.var_dir)
        if latch["engaged"]:
            # Fail closed first: the latch survives the Coordinator (and is written at once, where
            # the store's copy of Risk may lag a few ms), so Risk starts with it engaged.
            self.d.deliver(self.external("risk", EngageKillSwitch(who=latch.get("who") or "cluster",
                                                                   reason=latch.get("reason") or "latched")))
            self.d.run()

    def _remote(self, receiver: str, env: Envelope) -> None:
        slot = self.slot_of.get(symbol_of(receiver))
        peer = self.peers.get(slot) if slot is not None else None
        if slot is None or peer is None or not peer.up:
            self.dropped += 1  # its worker is down: what it would have received dies with it
            logger.bind(actor="coordinator", event_type="link_drop").warning(
                "{} for {} dropped: worker slot {} is down", type(env.payload).__name__, receiver, slot)
            return
        self.senders[worker_link(slot)].submit(self.codec.encode_envelope(env))
        if self.queued_remote is not None:
            self.queued_remote()

    # -- membership -------------------------------------------------------------------------
    def worker_up(self, slot: int, incarnation: int) -> None:
        old = self.peers.get(slot)
        if old is not None and old.incarnation == incarnation:
            old.up = True
            return
        if old is not None and old.up:
            self.worker_down(slot, old.incarnation, "replaced")
        self.peers[slot] = _WorkerPeer(slot, incarnation, self.assignment.get(slot, ()))
        self.senders[worker_link(slot)] = self.new_sender(f"{COORDINATOR_LINK}>{worker_link(slot)}")
        self.receiver.forget(worker_link(slot))
        self.events.write(ev="worker_up", slot=slot, incarnation=incarnation)

    def worker_down(self, slot: int, incarnation: int, reason: str) -> None:
        """A Worker process is gone: its symbols go HALTED at Risk at once (fail closed)."""
        peer = self.peers.get(slot)
        if peer is None or peer.incarnation != incarnation or not peer.up:
            return
        peer.up = False
        self.senders.pop(worker_link(slot), None)
        now = self.clock.now_ns()
        self.events.write(ev="worker_down", slot=slot, incarnation=incarnation, reason=reason)
        for s in peer.symbols:
            self.d.emit(f"{s}/supervisor", [ActorFailed(actor_id=f"{s}/worker", symbol=s, kind="died",
                                                        error=f"worker {slot} process exited: {reason}",
                                                        message_tag="", ts_event_ns=now)], 0)
        self.d.run()

    def worker_is_up(self, slot: int) -> bool:
        peer = self.peers.get(slot)
        return peer is not None and peer.up

    def accept(self, batch: LinkBatch) -> bool:
        """Only the current, live incarnation of a worker is heard (stale or unannounced: no ack)."""
        if not batch.link.startswith("worker-"):
            return False
        peer = self.peers.get(int(batch.link[7:]))
        return peer is not None and peer.up and peer.incarnation == batch.epoch

    def on_batch(self, batch: LinkBatch) -> LinkAck | None:
        if not self.accept(batch):
            self._hold_early(batch)
            return None
        items, ack = self.receiver.on_batch(batch)
        self._deliver_items(items)
        return ack

    EARLY_BATCHES = 256

    def _hold_early(self, batch: LinkBatch) -> None:
        """A batch from a worker incarnation newer than any announced yet: its ``WorkerUp`` (through
        thespian, from the supervisor) is still on its way, and the batch came first on the data
        port. Keep it for ``take_early`` (what did not fit is asked for again once the Worker is
        announced: see the shim's resync)."""
        if not batch.link.startswith("worker-"):
            return
        slot = int(batch.link[7:])
        peer = self.peers.get(slot)
        if peer is not None and batch.epoch <= peer.incarnation:
            return  # an old incarnation's: stale
        held = self._early.setdefault(slot, [])
        held[:] = [b for b in held if b.epoch >= batch.epoch]
        if len(held) < self.EARLY_BATCHES:
            held.append(batch)

    def take_early(self, slot: int) -> list[LinkBatch]:
        """The batches held for ``slot``'s current incarnation, in arrival order."""
        peer = self.peers.get(slot)
        held = self._early.pop(slot, [])
        return [b for b in held if peer is not None and b.epoch == peer.incarnation]

    def operator(self, receiver: str, payload: Any) -> None:
        env = self.external(receiver, payload)
        if receiver in self.d.mailboxes:
            self.d.deliver(env)
            self.d.run()
        else:
            self._remote(receiver, env)

    def status(self) -> dict[str, Any]:
        risk: Any = self.d.actors["risk"]  # a RiskLogic, or a FaultyLogic wrapping one
        arb: Any = self.d.actors["arbitrator"]
        return {"role": "coordinator", "incarnation": self.incarnation, "pid": os.getpid(), "ts_ns": time.time_ns(),
                "risk": getattr(risk, "inner", risk).status(), "risk_stats": getattr(risk, "inner", risk).stats(),
                "denials_by_symbol": dict(self.observer.denials),
                "arbitrator": getattr(arb, "inner", arb).status(),
                "workers": {k: {"incarnation": p.incarnation, "up": p.up} for k, p in self.peers.items()},
                "supervision": self.hooks.status(), "link": self.link_stats(), "store": self.store_status(),
                "rss_kb": rss_kb(), "processed": self.d.processed_count}

    def close(self) -> None:
        try:
            super().close()
        finally:
            self.events.close()


class WorkerCore(Node):
    """The full subtrees of a set of symbols and their own market feed."""

    def __init__(self, settings: Settings, run_id: str, var_dir: str, slot: int, incarnation: int,
                 symbols: tuple[str, ...], restarted: bool, coordinator_incarnation: int,
                 raw_config: dict[str, Any] | None = None) -> None:
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
        self.d = Dispatcher(actors, self.clock, id_source(msg_id_base(incarnation)),
                            remote=self._remote, observers=(*journal, self.probe, self.trades))
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
        self._next = self._open_market(sub)  # after the link exists: a source dead at once halts its symbols
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
        self._deliver_items(items)
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
        now = time.time_ns()
        live_from = self._market_from
        while self._next is not None and n < budget:
            ts, symbol, payload = self._next
            if self.paced and ts > now:
                if pending:  # what was due goes out first; then frames that came due meanwhile
                    d.run()
                    pending = 0
                    if ran is not None:
                        ran()
                now = time.time_ns()
                if ts > now:
                    break
            # A frame scheduled in this run arrived at its time (if we are behind, it waited in our
            # queue); a recorded one played at once arrives now.
            env = self.external(f"{symbol}/collector", VenuePayload(venue=self.venue, symbol=symbol, payload=payload),
                                "feed", ts if self.paced and ts >= live_from else None)
            d.deliver(env)
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
        return max(0.0, (self._next[0] - time.time_ns()) / 1e9)

    def _open_market(self, sub: Settings) -> tuple[int, str, bytes] | None:
        """Open this Worker's market (its own symbols only) and return its first frame."""
        try:
            if self.symbols:
                self._frames = iter(market_frames(sub, self._market_from))
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
            self._remote("risk", self.external("risk", msg, sender=MARKET_SOURCE))

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

    def latency_report(self) -> dict[str, list[int]]:
        """The newest 20,000 tick-to-order samples (see ``WorkerProbe``)."""
        p = self.probe
        return {"latencies_ns": p.latencies_ns[-20_000:], "arrivals_ns": p.arrivals_ns[-20_000:],
                "event_latencies_ns": p.event_latencies_ns[-20_000:]}

    def close(self) -> None:
        try:
            super().close()
        finally:
            self.events.close()
            self.trades.close()
