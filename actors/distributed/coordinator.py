"""The Coordinator's core: Risk and the Arbitrator; symbol actors are reached through each Worker's link."""

from __future__ import annotations

import os
import time
from typing import Any

from arbor.actors.cluster.build import (
    build_singletons,
    supervisor_for,
)
from arbor.actors.cluster.files import EventFile
from arbor.actors.cluster.probes import CoordinatorEvents
from arbor.actors.distributed.latch import read_latch
from arbor.actors.distributed.nodes import Node
from arbor.actors.distributed.tree import COORDINATOR as COORDINATOR_LINK
from arbor.actors.distributed.tree import worker_id as worker_link
from arbor.actors.replay.recorder import build_held
from arbor.actors.topology import symbol_of
from arbor.adapters.link.session import LinkAck, LinkBatch
from arbor.config.settings import Settings
from arbor.messages import (
    ActorFailed,
    EngageKillSwitch,
    Envelope,
)
from arbor.supervision.procs import rss_kb
from loguru import logger


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
        self.open_dispatcher(actors, self._remote, (*journal, self.observer, *self.traced()))
        self.hooks = supervisor_for(settings, self.clock, run_id, self.faults, self.persister)(self.d)
        self.d.attach_persistence(self.persister.after_handle)
        self.persister.start()
        self.peers: dict[int, _WorkerPeer] = {}
        self._early: dict[int, list[LinkBatch]] = {}  # slot -> batches that came before its WorkerUp
        latch = read_latch(self.var_dir)
        if latch["engaged"]:
            # Fail closed first: the latch survives the Coordinator (and is written at once, where
            # the store's copy of Risk may lag a few ms), so Risk starts with it engaged.
            self.injector.external("risk", EngageKillSwitch(who=latch.get("who") or "cluster",
                                                            reason=latch.get("reason") or "latched"))
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
        self._deliver_items(items, batch.stamps)
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
        if receiver in self.d.mailboxes:
            self.injector.external(receiver, payload)
            self.d.run()
        else:
            self._remote(receiver, self.injector.envelope(receiver, payload))

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
