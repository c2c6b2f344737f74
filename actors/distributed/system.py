"""The thespian actors: ClusterSupervisor, Coordinator and Worker processes.

All three are thin shims: they turn thespian messages into calls on the node cores
(``actors.distributed.nodes``) and send what the cores' links say is due. Each handler runs to
completion on the process's single thread, so the cores need no locks. Timers are thespian
wake-ups (``wakeupAfter``): a Worker's poll delivers the market frames that are due, the timer
ticks, link retransmissions, the status file and a check that its supervisor is still alive
(if it is not, the process exits: nothing trades unsupervised).
"""

from __future__ import annotations

import os
import signal
import socket
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from loguru import logger
from thespian.actors import (
    Actor,
    ActorExitRequest,
    ActorSystemConventionUpdate,
    ChildActorExited,
    PoisonMessage,
    WakeupMessage,
)

from actors.distributed.latch import write_latch
from actors.distributed.link import LinkAck, LinkBatch
from actors.distributed.procs import alive, descendants, kill_all
from actors.distributed.wire import (
    Ack,
    ClusterPlan,
    ClusterStarted,
    ClusterStatus,
    ClusterStopped,
    CoordinatorDown,
    CoordinatorUp,
    OperatorCommand,
    Poke,
    Started,
    StartCoordinator,
    StartWorker,
    StatusQuery,
    StopCluster,
    WorkerDown,
    WorkerUp,
)

SUPERVISOR_NAME = "arbor-cluster-supervisor"
WORKER_HOST_CAPABILITY = "Arbor Worker Host"
STATUS_EVERY_S = 0.25
LATENCY_EVERY_S = 2.0
LIVENESS_EVERY_S = 0.25


def _settings(plan: ClusterPlan):
    from config.settings import build_settings

    return build_settings(plan.raw_config)


def _write_status(var_dir: str, name: str, data: dict) -> None:
    from actors.distributed.nodes import write_json_atomic

    path = Path(var_dir) / "cluster" / "status" / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(path, data)


class _NodeActor(Actor):
    """Shared by the Coordinator and Worker actors."""

    core: Any = None
    name = "node"

    def _init_node(self, var_dir: str = "", name: str = "") -> None:
        if var_dir and name:
            # ``kill -USR1 <pid>`` dumps every thread's stack to logs/<name>.stacks (hangs, diagnosis).
            import faulthandler
            import signal as _signal

            self._stacks = open(Path(var_dir) / "logs" / f"{name}.stacks", "a")
            faulthandler.register(_signal.SIGUSR1, file=self._stacks, all_threads=True)
        self._addresses: dict[str, Any] = {}
        self._supervisor_pid = 0
        self._poll_s = 0.002
        self._next_status = 0.0
        self._next_live = 0.0
        self._next_latency = 0.0
        self._gen = 0
        self._last_poll = time.monotonic()
        self.rearms = 0

    def _arm(self, delay: float) -> None:
        self.wakeupAfter(timedelta(seconds=delay), payload=self._gen)

    def _rescue(self) -> None:
        """Re-arm a timer chain that has not fired for far longer than its period."""
        if self.core is not None and time.monotonic() - self._last_poll > max(0.1, 20 * self._poll_s):
            self._gen += 1
            self.rearms += 1
            logger.bind(actor=self.core.name, event_type="timer_rearmed").warning(
                "{}: poll overdue by {:.3f}s; re-armed", self.core.name, time.monotonic() - self._last_poll)
            self._last_poll = time.monotonic()
            self._arm(0.0)

    def _flush(self) -> None:
        for peer, batch in self.core.due():
            addr = self._addresses.get(peer)
            if addr is not None:
                self.send(addr, batch)

    def _housekeeping(self) -> None:
        mono = time.monotonic()
        self.core.maybe_tick(mono)
        if mono >= self._next_status:
            self._next_status = mono + STATUS_EVERY_S
            st = self.core.status()
            st["timer_rearms"] = self.rearms
            lat = st.pop("latencies_ns", None)
            _write_status(str(self.core.var_dir), self.core.name, st)
            if lat is not None and mono >= self._next_latency:
                self._next_latency = mono + LATENCY_EVERY_S
                _write_status(str(self.core.var_dir), f"{self.core.name}.latency", {"latencies_ns": lat})
        if mono >= self._next_live:
            self._next_live = mono + LIVENESS_EVERY_S
            if self._supervisor_pid and not alive(self._supervisor_pid):
                logger.bind(actor=self.core.name, event_type="orphaned").critical(
                    "{}: cluster supervisor {} is gone; exiting", self.core.name, self._supervisor_pid)
                os._exit(3)

    def _exit(self) -> None:
        if self.core is not None:
            try:
                st = self.core.status()
                lat = st.pop("latencies_ns", None)
                st["stopped"] = True
                _write_status(str(self.core.var_dir), self.core.name, st)
                if lat is not None:
                    _write_status(str(self.core.var_dir), f"{self.core.name}.latency", {"latencies_ns": lat})
            finally:
                self.core.close()


class CoordinatorActor(_NodeActor):
    """The Coordinator process: Risk and the Arbitrator (the "coordinator" group)."""

    def receiveMessage(self, msg: Any, sender: Any) -> None:
        try:
            self._receive(msg, sender)
        except Exception as exc:  # a runtime bug: log it, never let thespian drop the actor silently
            logger.bind(actor="coordinator", event_type="node_failure").opt(exception=exc).critical(
                "coordinator failed handling {}: {!r}", type(msg).__name__, exc)

    def _receive(self, msg: Any, sender: Any) -> None:
        core = self.core
        if isinstance(msg, WakeupMessage):
            if core is None or msg.payload != self._gen:
                return
            self._last_poll = time.monotonic()
            self._housekeeping()
            self._flush()
            self._arm(self._poll_s)
            return
        if core is not None:
            self._rescue()
        if isinstance(msg, LinkBatch):
            if core is None:
                return
            ack = core.on_batch(msg)
            if ack is not None:
                self.send(sender, ack)
            self._flush()
        elif isinstance(msg, LinkAck):
            if core is not None:
                core.on_ack(msg)
                self._flush()
        elif isinstance(msg, Poke):
            pass
        elif isinstance(msg, WorkerUp):
            core.worker_up(msg.slot, msg.incarnation)
            self._addresses[f"worker-{msg.slot}"] = msg.address
            self._flush()
        elif isinstance(msg, WorkerDown):
            core.worker_down(msg.slot, msg.incarnation, msg.reason)
            self._flush()
        elif isinstance(msg, OperatorCommand):
            core.operator(msg.receiver, core.codec.decode(msg.payload))
            self._flush()
        elif isinstance(msg, StartCoordinator):
            self._start(msg, sender)
        elif isinstance(msg, ActorExitRequest):
            self._exit()
        elif isinstance(msg, PoisonMessage):
            pass  # an undeliverable send (a peer died): the link retransmits or the peer is replaced

    def _start(self, msg: StartCoordinator, sender: Any) -> None:
        from actors.distributed.nodes import CoordinatorCore, setup_node_logging

        plan = msg.plan
        settings = _settings(plan)
        setup_node_logging(plan.var_dir, "coordinator", settings.run.log_level)
        self._init_node(plan.var_dir, "coordinator")
        self._supervisor_pid = msg.supervisor_pid
        self._poll_s = max(0.001, settings.cluster.coordinator_poll_ms / 1000)
        self.core = CoordinatorCore(settings, plan.run_id, plan.var_dir, msg.incarnation,
                                    {int(k): tuple(v) for k, v in plan.assignment.items()})
        self.send(sender, Started("coordinator", -1, msg.incarnation, os.getpid(), socket.gethostname()))
        self._arm(self._poll_s)


class WorkerActor(_NodeActor):
    """A Worker process: the full subtrees of its symbols, fed by their own market feed."""

    @staticmethod
    def actorSystemCapabilityCheck(capabilities: dict, requirements: dict) -> bool:
        if requirements and requirements.get(WORKER_HOST_CAPABILITY):
            return bool(capabilities.get(WORKER_HOST_CAPABILITY))
        return True

    def receiveMessage(self, msg: Any, sender: Any) -> None:
        try:
            self._receive(msg, sender)
        except Exception as exc:
            logger.bind(actor=getattr(self.core, "name", "worker"), event_type="node_failure").opt(
                exception=exc).critical("worker failed handling {}: {!r}", type(msg).__name__, exc)

    def _receive(self, msg: Any, sender: Any) -> None:
        core = self.core
        if isinstance(msg, WakeupMessage):
            if core is None or msg.payload != self._gen:
                return
            self._last_poll = time.monotonic()
            wait = core.feed(budget=self._budget)
            self._housekeeping()
            self._flush()
            self._arm(self._poll_s if wait is None else min(self._poll_s, wait))
            return
        if core is not None:
            self._rescue()
        if isinstance(msg, LinkBatch):
            if core is None:
                return
            ack = core.on_batch(msg)
            if ack is not None:
                self.send(sender, ack)
            self._flush()
        elif isinstance(msg, LinkAck):
            if core is not None:
                core.on_ack(msg)
                self._flush()
        elif isinstance(msg, Poke):
            pass
        elif isinstance(msg, CoordinatorUp):
            if core is not None:
                self._addresses["coordinator"] = msg.address
                core.coordinator_up(msg.incarnation)
                self._flush()
        elif isinstance(msg, CoordinatorDown):
            if core is not None:
                core.coordinator_down(msg.incarnation)
        elif isinstance(msg, StartWorker):
            self._start(msg, sender)
        elif isinstance(msg, ActorExitRequest):
            self._exit()
        elif isinstance(msg, PoisonMessage):
            pass

    def _start(self, msg: StartWorker, sender: Any) -> None:
        from actors.distributed.nodes import WorkerCore, setup_node_logging, worker_link

        plan = msg.plan
        settings = _settings(plan)
        name = worker_link(msg.slot)
        setup_node_logging(plan.var_dir, name, settings.run.log_level)
        self._init_node(plan.var_dir, name)
        self._supervisor_pid = msg.supervisor_pid
        self._poll_s = max(0.0005, settings.cluster.poll_ms / 1000)
        self._budget = settings.cluster.feed_budget
        self._addresses["coordinator"] = msg.coordinator
        symbols = tuple(plan.assignment.get(msg.slot, ()))
        self.core = WorkerCore(settings, plan.run_id, plan.var_dir, msg.slot, msg.incarnation,
                               msg.incarnation % 251, symbols, msg.restarted, msg.coordinator_incarnation)
        self.send(sender, Started("worker", msg.slot, msg.incarnation, os.getpid(), socket.gethostname()))
        self._flush()
        self._arm(0.0)


class _Proc:
    def __init__(self, name: str, role: str, slot: int, address: Any, incarnation: int) -> None:
        self.name = name
        self.role = role
        self.slot = slot
        self.address = address
        self.incarnation = incarnation
        self.pid = 0
        self.host = ""
        self.up = False  # reported Started and not exited
        self.exited = False
        self.restarts = 0


class ClusterSupervisor(Actor):
    """The single authority that starts, restarts and stops the Coordinator and the Workers.

    - A Worker that exits (SIGKILL, crash) is seen through ``ChildActorExited``: the Coordinator
      is told at once (its symbols go HALTED at Risk), and a new Worker starts with
      ``restarted=True`` (its symbols recover: reconcile, warm up, ``SymbolRecovered``).
    - The Coordinator's exit engages the kill switch (the latch file) before it is restarted; the
      new Coordinator starts with the kill switch engaged and the Workers re-announce positions.
    - Restart intensity applies per process: more than ``cluster.intensity`` restarts in
      ``cluster.period_s`` leaves a Worker's symbols HALTED for good, or stops the whole cluster
      for the Coordinator (fail closed), reported as ``escalated`` in the status.
    - Stop: Workers first, then the Coordinator, then the answer to the launcher.
    - If the launcher process disappears, everything of the cluster on this host is killed.
    """

    def receiveMessage(self, msg: Any, sender: Any) -> None:
        try:
            self._receive(msg, sender)
        except Exception as exc:
            logger.bind(actor="cluster-supervisor", event_type="node_failure").opt(exception=exc).critical(
                "cluster supervisor failed handling {}: {!r}", type(msg).__name__, exc)

    def _receive(self, msg: Any, sender: Any) -> None:
        if isinstance(msg, ChildActorExited):
            self._exited(msg.childAddress)
        elif isinstance(msg, Started):
            self._started(msg, sender)
        elif isinstance(msg, WakeupMessage):
            if msg.payload == getattr(self, "_gen", None):
                self._tick()
        elif isinstance(msg, Poke):
            if hasattr(self, "_gen") and time.monotonic() - self._last_tick > 4 * LIVENESS_EVERY_S:
                self._gen += 1  # the timer chain stalled: start a new one
                logger.bind(actor="cluster-supervisor", event_type="timer_rearmed").warning("supervisor tick re-armed")
                self._tick()
        elif isinstance(msg, StatusQuery):
            self.send(sender, self._status())
        elif isinstance(msg, OperatorCommand):
            coord = self.procs.get("coordinator")
            if coord is None or not coord.up:
                self.send(sender, Ack("coordinator is down"))
                return
            self.send(coord.address, msg)
            self.send(sender, Ack("forwarded"))
        elif isinstance(msg, ClusterPlan):
            self._start(msg, sender)
        elif isinstance(msg, StopCluster):
            self._stop(sender)
        elif isinstance(msg, ActorSystemConventionUpdate):
            if msg.remoteAdded and msg.remoteCapabilities.get(WORKER_HOST_CAPABILITY):
                self._start_remote()
        elif isinstance(msg, (ActorExitRequest, PoisonMessage)):
            pass

    # -- start ------------------------------------------------------------------------------
    def _start(self, plan: ClusterPlan, sender: Any) -> None:
        from actors.distributed.nodes import setup_node_logging
        from supervision.intensity import RestartIntensity

        self.plan = plan
        self.settings = _settings(plan)
        setup_node_logging(plan.var_dir, "supervisor", self.settings.run.log_level)
        import faulthandler
        import signal as _signal

        self._stacks = open(Path(plan.var_dir) / "logs" / "supervisor.stacks", "a")
        faulthandler.register(_signal.SIGUSR1, file=self._stacks, all_threads=True)
        self.launcher = sender
        self.procs: dict[str, _Proc] = {}
        self.all_pids: dict[str, int] = {}
        self.escalated = ""
        self.stopping = False
        self.stop_reply: Any = None
        self.stop_deadline = 0.0
        self.start_replied = False
        c = self.settings.cluster
        self.intensity: dict[str, Any] = {}
        self._make_intensity = lambda: RestartIntensity(c.intensity, c.period_s)
        self.coord_incarnation = 0
        if plan.remote_slots:
            self.notifyOnSystemRegistrationChanges(True)
        self._start_coordinator()
        for slot in sorted(plan.assignment):
            if slot not in plan.remote_slots:
                self._start_worker(slot, restarted=False)
        self._gen = 0
        self._tick()

    def _start_coordinator(self) -> None:
        inc = time.time_ns()
        addr = self.createActor(CoordinatorActor)
        p = self.procs["coordinator"] = _Proc("coordinator", "coordinator", -1, addr, inc)
        p.restarts = getattr(self, "_coord_restarts", 0)
        self.coord_incarnation = inc
        self.send(addr, StartCoordinator(self.plan, inc, os.getpid()))

    def _start_worker(self, slot: int, restarted: bool, remote: bool = False) -> None:
        name = f"worker-{slot}"
        inc = time.time_ns()
        req = {WORKER_HOST_CAPABILITY: True} if remote else None
        addr = self.createActor(WorkerActor, targetActorRequirements=req)
        old = self.procs.get(name)
        p = self.procs[name] = _Proc(name, "worker", slot, addr, inc)
        p.restarts = old.restarts if old is not None else 0
        coord = self.procs["coordinator"]
        self.send(addr, StartWorker(self.plan, slot, inc, restarted or remote, coord.address, coord.incarnation,
                                    0 if remote else os.getpid()))

    def _start_remote(self) -> None:
        for slot in self.plan.remote_slots:
            if f"worker-{slot}" not in self.procs and not self.stopping:
                self._start_worker(slot, restarted=True, remote=True)

    def _started(self, msg: Started, sender: Any) -> None:
        name = "coordinator" if msg.role == "coordinator" else f"worker-{msg.slot}"
        p = self.procs.get(name)
        if p is None or p.incarnation != msg.incarnation:
            return
        p.up, p.pid, p.host, p.address = True, msg.pid, msg.host, sender
        p.started_ns = time.time_ns()
        if msg.host == socket.gethostname():
            self.all_pids[f"{name}#{msg.incarnation}"] = msg.pid
        self._write_pids()
        coord = self.procs.get("coordinator")
        if msg.role == "worker":
            if coord is not None and coord.up:
                self.send(coord.address, WorkerUp(msg.slot, msg.incarnation, sender, p.restarts > 0))
        else:
            for w in self.procs.values():
                if w.role == "worker" and w.up:
                    self.send(sender, WorkerUp(w.slot, w.incarnation, w.address, False))
                    self.send(w.address, CoordinatorUp(msg.incarnation, sender))
        expected = [q for q in self.procs.values()]
        if not self.start_replied and all(q.up for q in expected) and len(expected) == 1 + sum(
                1 for k in self.plan.assignment if k not in self.plan.remote_slots) + sum(
                1 for k in self.plan.remote_slots if f"worker-{k}" in self.procs):
            self.start_replied = True
            self.send(self.launcher, ClusterStarted(dict(self.all_pids), os.getpid()))

    def _write_pids(self) -> None:
        import json

        path = Path(self.plan.var_dir) / "cluster" / "pids.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"supervisor": os.getpid(), "admin": os.getppid(), **self.all_pids}))
        os.replace(tmp, path)

    # -- failures ---------------------------------------------------------------------------
    def _exited(self, address: Any) -> None:
        p = next((q for q in self.procs.values() if q.address == address and not q.exited), None)
        if p is None:
            return
        p.exited, p.up = True, False
        if self.stopping:
            self._continue_stop()
            return
        inten = self.intensity.setdefault(p.name, self._make_intensity())
        over = inten.record(time.time_ns())
        if p.role == "worker":
            logger.bind(actor="cluster-supervisor", event_type="worker_exited").error(
                "worker {} (pid {}) exited", p.slot, p.pid)
            coord = self.procs.get("coordinator")
            if coord is not None and coord.up:
                self.send(coord.address, WorkerDown(p.slot, p.incarnation, "process exited"))
            if over:
                self.escalated = f"worker {p.slot} exceeded its restart intensity; its symbols stay HALTED"
                logger.bind(actor="cluster-supervisor", event_type="escalated").critical(self.escalated)
                return
            p.restarts += 1
            self._start_worker(p.slot, restarted=True, remote=p.slot in self.plan.remote_slots)
        else:
            logger.bind(actor="cluster-supervisor", event_type="coordinator_exited").error(
                "coordinator (pid {}) exited: kill switch latched", p.pid)
            write_latch(self.plan.var_dir, True, "cluster", f"coordinator process {p.pid} exited")
            for w in self.procs.values():
                if w.role == "worker" and w.up:
                    self.send(w.address, CoordinatorDown(p.incarnation))
            if over:
                self.escalated = "coordinator exceeded its restart intensity: cluster stopped"
                logger.bind(actor="cluster-supervisor", event_type="escalated").critical(self.escalated)
                self._stop(None)
                return
            self._coord_restarts = p.restarts + 1
            self._start_coordinator()

    # -- stop -------------------------------------------------------------------------------
    def _stop(self, sender: Any) -> None:
        if sender is not None:
            self.stop_reply = sender
        if self.stopping:
            self._continue_stop()
            return
        self.stopping = True
        self.stop_deadline = time.monotonic() + max(1.0, self.settings.cluster.stop_timeout_s - 2.0)
        for p in sorted(self.procs.values(), key=lambda q: -q.slot):
            if p.role == "worker" and not p.exited:
                self.send(p.address, ActorExitRequest())
        self._continue_stop()

    def _continue_stop(self) -> None:
        workers = [p for p in self.procs.values() if p.role == "worker" and not p.exited]
        coord = self.procs.get("coordinator")
        if workers:
            return
        if coord is not None and not coord.exited:
            if not getattr(self, "_coord_stop_sent", False):
                self._coord_stop_sent = True
                self.send(coord.address, ActorExitRequest())
            return
        self._finish_stop()

    def _finish_stop(self) -> None:
        if self.stop_reply is not None:
            self.send(self.stop_reply, ClusterStopped(dict(self.all_pids)))
            self.stop_reply = None

    def _tick(self) -> None:
        plan = getattr(self, "plan", None)
        if plan is None:
            return
        self._last_tick = time.monotonic()
        for p in self.procs.values():
            if p.up:
                self.send(p.address, Poke())
        if not alive(plan.launcher_pid):
            # The launcher is gone (killed): nobody would ever stop this cluster. Take it all down.
            logger.bind(actor="cluster-supervisor", event_type="orphaned").critical("launcher gone: killing the cluster")
            kill_all(self.all_pids.values())
            admin = os.getppid()
            kill_all([p for p in descendants(admin) if p != os.getpid()])
            kill_all([admin])
            os._exit(3)
        if not self.stopping:
            self._check_hangs()
        if self.stopping and time.monotonic() > self.stop_deadline:
            left = [p for p in self.procs.values() if not p.exited]
            kill_all(p.pid for p in left if p.pid)
            for p in left:
                p.exited = True
            self._finish_stop()
        self.wakeupAfter(timedelta(seconds=LIVENESS_EVERY_S), payload=self._gen)

    def _check_hangs(self) -> None:
        """A node whose thread stopped writing its status (every 0.25 s) is hung: SIGKILL it, and
        ``ChildActorExited`` then restarts it like any dead process (the missed-heartbeat detector)."""
        import json

        limit = self.settings.cluster.hang_timeout_s
        now = time.time_ns()
        for p in self.procs.values():
            if not p.up or not p.pid or p.host != socket.gethostname():
                continue
            try:
                st = json.loads((Path(self.plan.var_dir) / "cluster" / "status" / f"{p.name}.json").read_text())
            except (OSError, ValueError):
                st = {}
            # No heartbeat of this incarnation yet: count from when it reported Started.
            beat = int(st["ts_ns"]) if st.get("pid") == p.pid and "ts_ns" in st else getattr(p, "started_ns", now)
            if (now - beat) / 1e9 > limit:
                logger.bind(actor="cluster-supervisor", event_type="node_hang").critical(
                    "{} (pid {}) missed its heartbeat for more than {}s: dumping its stacks to logs/{}.stacks, "
                    "killing it", p.name, p.pid, limit, p.name)
                kill_all([p.pid], signal.SIGUSR1)  # faulthandler: where was it stuck?
                time.sleep(0.05)
                kill_all([p.pid])
                p.started_ns = now  # once per hang

    def _status(self) -> ClusterStatus:
        procs = {p.name: {"pid": p.pid, "incarnation": p.incarnation, "restarts": p.restarts, "up": p.up,
                          "host": p.host} for p in self.procs.values()} if hasattr(self, "procs") else {}
        return ClusterStatus(procs, getattr(self, "escalated", ""), getattr(self, "stopping", False))
