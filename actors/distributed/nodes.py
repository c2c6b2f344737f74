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

``CoordinatorCore`` (``coordinator``) and ``WorkerCore`` (``worker``) build on ``Node``. The actor
shims (``actors.distributed.system``) feed these cores thespian messages and send
what ``due()`` returns; tests drive them directly too.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from arbor.actors.cluster.build import market_clock, run_started_ns
from arbor.actors.cluster.files import EventFile
from arbor.actors.cluster.fsync import BackgroundFsync
from arbor.actors.cluster.hops import HopTrace
from arbor.actors.cluster.probes import HeldEvents
from arbor.actors.replay.recorder import JournalObserver, open_journal_observer
from arbor.actors.runtime.dispatcher import Dispatcher, Observer, id_source
from arbor.actors.runtime.inputs import Injector
from arbor.actors.topology import symbol_of
from arbor.adapters.link.session import LinkAck, LinkBatch, LinkReceiver, LinkSender
from arbor.config.settings import Settings
from arbor.messages import Envelope
from arbor.messages.codec import Codec, CodecError
from arbor.supervision.faults import FaultPlan
from arbor.supervision.persist import StatePersister, restore_all
from arbor.supervision.store import SIDECARS, StateStore
from loguru import logger

STORE_RUN_KEY = "cluster_run_id"  # the run whose state a node's store holds

TICK_SLACK = 0.25  # how late (a fraction of tick_interval_ms) an idle node may run a symbol's timer ticks
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


def idle_for(next_tick: float, tick_s: float, commit_due: float, mono: float, cap: float) -> float:
    """``Node.idle_for`` on its inputs: the next symbol's ticks at ``next_tick`` (``time.monotonic()``
    seconds; every ``tick_s``, 0: none), the state commit in ``commit_due`` seconds, now ``mono``."""
    tick = next_tick + tick_s * TICK_SLACK - mono if tick_s > 0 else cap
    return max(0.0, min(cap, tick, commit_due))


class Node:
    """What both node kinds share: a dispatcher, the codec, link endpoints, ticks and counters."""

    name = "node"

    def __init__(self, settings: Settings, run_id: str, var_dir: str, incarnation: int,
                 raw_config: dict[str, Any] | None = None) -> None:
        self.settings = settings
        self.raw_config = raw_config  # what the run's Settings were built from (the journal records it)
        self.journal: JournalObserver | None = None
        self.fsyncer: BackgroundFsync | None = None
        self.run_id = run_id
        self.var_dir = Path(var_dir)
        self.incarnation = incarnation
        # A recorded market runs on the recording's time, the same offset on every node (from the run id).
        self.clock = market_clock(settings, run_started_ns(run_id))
        self.codec = Codec()
        self.receiver = LinkReceiver()
        self.senders: dict[str, LinkSender] = {}
        self.faults = FaultPlan(settings.faults, seed=settings.market.seed) if settings.faults else None
        self.d: Dispatcher  # both set by open_dispatcher
        self.injector: Injector
        self.events: EventFile  # each node kind opens its own events file
        self.held_events: HeldEvents  # and its observer whose lines wait for the handler's end
        self.decode_errors = 0
        self.dropped = 0
        c = getattr(settings, "cluster", None)
        # Each decision's hops stamped (cluster.trace_hops, for bench/scale.py --hops); None: not a cost.
        self.hops = HopTrace() if getattr(c, "trace_hops", False) else None
        # Called after an envelope was queued for another node (the shim sends it at once
        # unless it sent moments ago: see _NodeActor._send_now).
        self.queued_remote: Callable[[], None] | None = None
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

    def open_dispatcher(self, actors: dict[str, Any], remote: Callable[[str, Envelope], None],
                        observers: tuple[Observer, ...]) -> None:
        """This node's dispatcher (what it does not host goes to ``remote``) and the ``Injector`` of
        its external inputs (operator commands, market frames, ticks), on one id source."""
        msg_ids = id_source(msg_id_base(self.incarnation))
        self.d = Dispatcher(actors, self.clock, msg_ids, remote=remote, observers=observers)
        self.injector = Injector(self.d, msg_ids, self.clock, observers)

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
        # The journal's fsyncs (3-10 ms each here) run beside this node's only thread (see actors.cluster.fsync).
        self.fsyncer = BackgroundFsync(f"arbor-fsync-{self.name}")
        self.journal = open_journal_observer(self.var_dir, self.run_id, self.raw_config, j.policy, built_ns=built_ns,
                                             codec=self.codec, restored=restored,
                                             segment_bytes=j.segment_mb * 1024 * 1024, node=self.name,
                                             fsync=self.fsyncer)
        return (self.journal,)

    def flush_events(self) -> None:
        """Write the event lines held during the handler that just ended (see ``HeldEvents``)."""
        self.held_events.flush()

    def latency_report(self) -> dict[str, list[Any]] | None:
        """Latency samples this node keeps for ``<name>.latency.json`` (None: it keeps none): the
        Coordinator's are its hop records, when traced."""
        return {"hops": self.hops.report()} if self.hops is not None else None

    def traced(self) -> tuple[HopTrace, ...]:
        """The hop tracer as a dispatcher observer, when traced (last: it only reads)."""
        return (self.hops,) if self.hops is not None else ()

    def store_status(self) -> dict[str, Any]:
        p = self.persister
        return {"path": str(self.store.path), "degraded": self.store.degraded, "restored": len(self.restored),
                "writes": p.writes, "write_ahead": p.write_ahead, "errors": p.errors}

    def new_sender(self, link: str) -> LinkSender:
        return LinkSender(link, self.incarnation, window=self._window, max_batch=self._batch)

    # -- inbound ----------------------------------------------------------------------------
    def _deliver_items(self, items: list[bytes], stamps: tuple[int, int] | None = None) -> None:
        journal = self.journal
        hops = self.hops
        for raw in items:
            try:
                env = self.codec.decode_envelope(raw)
            except CodecError as exc:
                self.decode_errors += 1
                logger.bind(actor=self.name, event_type="link_decode_error").error("undecodable envelope: {}", exc)
                continue
            if journal is not None:
                journal.external(env)  # what another node sent is this node's input
            if hops is not None:
                hops.arrived(env, stamps)
            self.d.deliver(env)  # the dispatcher dead-letters (and counts) what it does not host
        if items:
            self.d.run()

    def on_ack(self, ack: LinkAck) -> None:
        for s in self.senders.values():
            if s.link == ack.link:
                s.on_ack(ack)

    # -- timers -----------------------------------------------------------------------------
    @property
    def tick_interval_s(self) -> float:
        """Seconds between two ticks of one actor (``run.tick_interval_ms``; 0: no ticks)."""
        return self._tick_s

    @property
    def next_tick_at(self) -> float:
        """When (``time.monotonic()`` seconds) the next symbol's ticks are due (inf: none ever)."""
        return self._next_tick

    def idle_for(self, mono: float, cap: float) -> float:
        """Seconds until this core's own periodic work is due (the next symbol's timer ticks, the
        state commit), at most ``cap``: how long the node may sleep when no frame is due. (It slept
        a fixed poll period, 10 ms, before: 100 wake-ups a second of an idle node, each a pass
        through thespian's loop, and on a loaded host each a wait for a core.) The symbols' ticks
        are spread over the interval (see ``maybe_tick``) for a node that is awake anyway; an idle
        one wakes for them at most ``TICK_SLACK`` of an interval late, ticking every group then due
        (about four wake-ups per interval instead of one per symbol)."""
        return idle_for(self._next_tick, self._tick_s, self.persister.next_due(mono), mono, cap)

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
        due_at = self._tick_at
        for k, group in enumerate(self._tick_groups):
            if due_at[k] > mono:
                continue
            due_at[k] = max(due_at[k] + self._tick_s, mono)
            self.injector.ticks(ts, group, ts_recv_ns=ts)
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
            try:
                if self.journal is not None:
                    self.journal.close()
            finally:
                if self.fsyncer is not None:
                    self.fsyncer.close()  # every fsync the journal asked for is done
