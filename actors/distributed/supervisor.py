"""The ClusterSupervisor: the thespian shim around ``tree.ClusterTree`` that starts, restarts and
stops the Coordinator and the Workers as the run's ``tree.cluster_spec`` declares.

- A Worker that exits (SIGKILL, crash) is seen through ``ChildActorExited``: the Coordinator is
  told at once (its symbols go HALTED at Risk), and a new Worker starts with ``restarted=True``
  (its symbols recover: reconcile, warm up, ``SymbolRecovered``).
- The Coordinator's exit engages the kill switch (the latch file) before it is restarted; the new
  Coordinator starts with the kill switch engaged and the Workers re-announce positions.
- Past a node's restart intensity the spec's escalation applies (a Worker stays down, its symbols
  HALTED; the Coordinator stops the cluster), reported in ``ClusterStatus`` with the launcher's
  exit status.
- Stop: the Workers, then the Coordinator, then the answer to the launcher.
- If the launcher process disappears, everything of the cluster on this host is killed.

Every field is set in ``__init__``; no handler sleeps (a hung node's SIGKILL follows its stack
dump on a wake-up of its own).
"""

from __future__ import annotations

import json
import os
import signal
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import zmq
from arbor.actors.cluster.logs import setup_node_logging
from arbor.actors.distributed.incarnations import IncarnationCounter
from arbor.actors.distributed.latch import write_latch
from arbor.actors.distributed.system import (
    WORKER_HOST_CAPABILITY,
    CoordinatorActor,
    WorkerActor,
    dump_stacks_on_usr1,
    plan_settings,
)
from arbor.actors.distributed.tree import COORDINATOR, ClusterTree, Death, NodeState, Verdict, cluster_spec
from arbor.actors.distributed.wire import (
    Ack,
    ClusterPlan,
    ClusterStarted,
    ClusterStatus,
    ClusterStopped,
    CoordinatorDown,
    CoordinatorUp,
    Heartbeat,
    OperatorCommand,
    Poke,
    StartCoordinator,
    Started,
    StartWorker,
    StatusQuery,
    StopCluster,
    WorkerDown,
    WorkerUp,
    authorized,
)
from arbor.supervision.files import write_atomic
from arbor.supervision.procs import alive, descendants, kill_all
from loguru import logger
from thespian.actors import (
    Actor,
    ActorExitRequest,
    ActorSystemConventionUpdate,
    ChildActorExited,
    PoisonMessage,
    WakeupMessage,
)

SUPERVISOR_NAME = "arbor-cluster-supervisor"
TICK_S = 0.25
POKE_AFTER_S = 0.75  # the supervisor pokes a node whose heartbeat is older than this
STACKS_BEFORE_KILL_S = 0.05  # a hung node's faulthandler dump gets this long before its SIGKILL


class ClusterSupervisor(Actor):
    """Runs on the supervisor process's single thread (thespian's)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.plan: ClusterPlan | None = None
        self.settings: Any = None
        self.tree: ClusterTree | None = None
        self.launcher: Any = None
        self.all_pids: dict[str, int] = {}
        self.stop_reply: Any = None
        self.stop_deadline = 0.0
        self.start_replied = False
        self.incarnations: IncarnationCounter | None = None
        self.worker_keys: dict[int, tuple[str, ...]] = {}
        self.gen = 0  # the tick chain's generation (a stalled chain is replaced by a newer one)
        self.last_tick = 0.0
        self._log = logger.bind(actor="cluster-supervisor")

    def receiveMessage(self, msg: Any, sender: Any) -> None:
        try:
            self._receive(msg, sender)
        except Exception as exc:
            self._log.bind(event_type="node_failure").opt(exception=exc).critical(
                "cluster supervisor failed handling {}: {!r}", type(msg).__name__, exc)

    def _receive(self, msg: Any, sender: Any) -> None:
        if isinstance(msg, ClusterPlan):
            self._start(msg, sender)
            return
        if isinstance(msg, StatusQuery):
            self.send(sender, self._status())
            return
        tree = self.tree
        if tree is None:
            if isinstance(msg, OperatorCommand):
                self.send(sender, Ack("unauthorized: the cluster has not started"))
            return
        if isinstance(msg, ChildActorExited):
            node = tree.find(msg.childAddress)
            if node is not None:
                self._died(node)
        elif isinstance(msg, Started):
            self._started(msg, sender)
        elif isinstance(msg, WakeupMessage):
            if msg.payload == self.gen:
                self._tick()
            elif isinstance(msg.payload, tuple) and msg.payload[0] == "kill":
                kill_all([msg.payload[1]])  # the hung node, its stacks dumped
        elif isinstance(msg, Poke):
            if time.monotonic() - self.last_tick > 4 * TICK_S:
                self.gen += 1  # the tick chain stalled: start a new one
                self._log.bind(event_type="timer_rearmed").warning("supervisor tick re-armed")
                self._tick()
        elif isinstance(msg, Heartbeat):
            p = tree.nodes.get(COORDINATOR if msg.slot < 0 else f"worker-{msg.slot}")
            if p is not None and p.incarnation == msg.incarnation:
                p.last_beat_ns = time.time_ns()
        elif isinstance(msg, OperatorCommand):
            self._operator(msg, sender)
        elif isinstance(msg, StopCluster):
            self._stop(sender)
        elif isinstance(msg, ActorSystemConventionUpdate):
            if msg.remoteAdded and msg.remoteCapabilities.get(WORKER_HOST_CAPABILITY):
                for spec in tree.spec.children:
                    if spec.remote and spec.id not in tree.nodes and not tree.stopping:
                        self._start_node(spec.id, restarted=True, remote=True)
        elif isinstance(msg, (ActorExitRequest, PoisonMessage)):
            pass

    def _operator(self, msg: OperatorCommand, sender: Any) -> None:
        assert self.tree is not None
        if not authorized(self.plan, msg.token):
            self._log.bind(event_type="operator_unauthorized").warning(
                "operator command for {} refused: no valid operator token", msg.receiver)
            self.send(sender, Ack("unauthorized: the operator token (ARBOR_OPERATOR_TOKEN) is missing or wrong"))
            return
        coord = self.tree.nodes.get(COORDINATOR)
        if coord is None or not coord.up:
            self.send(sender, Ack("coordinator is down"))
            return
        self.send(coord.address, msg)
        self.send(sender, Ack("forwarded"))

    # -- start ------------------------------------------------------------------------------
    def _start(self, plan: ClusterPlan, sender: Any) -> None:
        if self.tree is not None:
            return  # one plan per supervisor
        self.plan, self.launcher = plan, sender
        self.settings = plan_settings(plan)
        setup_node_logging(plan.var_dir, "supervisor", self.settings.run.log_level)
        dump_stacks_on_usr1(plan.var_dir, "supervisor")
        c = self.settings.cluster
        self.tree = ClusterTree(cluster_spec(tuple(plan.assignment), tuple(plan.remote_slots), c.intensity, c.period_s))
        self.incarnations = IncarnationCounter(plan.var_dir)
        # One CURVE key pair per worker slot for the run: the Coordinator knows every public key
        # from its start, so a Worker is never refused for connecting before its WorkerUp.
        self.worker_keys = {slot: tuple(k.decode() for k in zmq.curve_keypair()) for slot in plan.assignment}
        if plan.remote_slots:
            self.notifyOnSystemRegistrationChanges(True)
        for spec in self.tree.start_order():
            self._start_node(spec.id, restarted=False)
        self._tick()

    def _start_node(self, node_id: str, restarted: bool, remote: bool = False) -> None:
        """Create ``node_id``'s next incarnation and send it what it needs to start."""
        assert self.tree is not None and self.plan is not None and self.incarnations is not None
        inc = self.incarnations.next()
        spec = self.tree.spec.child(node_id)
        if spec.role == "coordinator":
            addr = self.createActor(CoordinatorActor)
            self.tree.starting(node_id, inc, addr, remote=False)
            self.send(addr, StartCoordinator(self.plan, inc, os.getpid(),
                                             tuple(pub for pub, _ in self.worker_keys.values())))
            return
        req = {WORKER_HOST_CAPABILITY: True} if remote else None
        addr = self.createActor(WorkerActor, targetActorRequirements=req)
        self.tree.starting(node_id, inc, addr, remote=remote)
        coord = self.tree.nodes[COORDINATOR]
        self.send(addr, StartWorker(self.plan, spec.slot, inc, restarted or remote, coord.address, coord.incarnation,
                                    0 if remote else os.getpid(), self.worker_keys.get(spec.slot, ())))

    def _started(self, msg: Started, sender: Any) -> None:
        assert self.tree is not None and self.plan is not None
        name = COORDINATOR if msg.role == "coordinator" else f"worker-{msg.slot}"
        p = self.tree.started(name, msg.incarnation, sender, msg.pid, msg.host, msg.data, time.time_ns())
        if p is None:
            return
        if not p.remote:  # a pid is only meaningful on this host (and only its own are reaped here)
            self.all_pids[f"{name}#{msg.incarnation}"] = msg.pid
        path = Path(self.plan.var_dir) / "cluster" / "pids.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, json.dumps({"supervisor": os.getpid(), "admin": os.getppid(), **self.all_pids}))
        coord = self.tree.nodes.get(COORDINATOR)
        if msg.role == "worker":
            if coord is not None and coord.up:
                self.send(coord.address, WorkerUp(msg.slot, msg.incarnation, sender, p.restarts > 0, p.data))
                # The worker knew the Coordinator's address from StartWorker, not its data port.
                self.send(sender, CoordinatorUp(coord.incarnation, coord.address, coord.data))
        else:
            for w in self.tree.up("worker"):
                self.send(sender, WorkerUp(w.spec.slot, w.incarnation, w.address, False, w.data))
                self.send(w.address, CoordinatorUp(msg.incarnation, sender, msg.data))
        if not self.start_replied and self.tree.all_started():
            self.start_replied = True
            self.send(self.launcher, ClusterStarted(dict(self.all_pids), os.getpid()))

    # -- failures ---------------------------------------------------------------------------
    def _died(self, node: NodeState, host_lost: bool = False) -> None:
        """A node exited (``host_lost``: with its host): carry out what the tree says it means."""
        assert self.tree is not None and self.plan is not None
        v = self.tree.died(node, time.time_ns(), host_lost)
        if self.tree.stopping:
            self._continue_stop()
            return
        if v.death is Death.HALT_SYMBOLS:
            self._log.bind(event_type="worker_exited").error("worker {} (pid {}) exited", node.spec.slot, node.pid)
            coord = self.tree.nodes.get(COORDINATOR)
            if coord is not None and coord.up:
                self.send(coord.address, WorkerDown(node.spec.slot, node.incarnation, "process exited"))
        else:
            self._log.bind(event_type="coordinator_exited").error(
                "coordinator (pid {}) exited: kill switch latched", node.pid)
            write_latch(self.plan.var_dir, True, "cluster", f"coordinator process {node.pid} exited")
            for w in self.tree.up("worker"):
                self.send(w.address, CoordinatorDown(node.incarnation))
        self._carry_out(v)

    def _carry_out(self, v: Verdict) -> None:
        if v.escalated:
            self._log.bind(event_type="escalated").critical(v.escalated)
        if v.stop:
            self._stop(None)
        elif v.restart:
            self._start_node(v.node.name, restarted=True, remote=v.remote)

    # -- stop -------------------------------------------------------------------------------
    def _stop(self, sender: Any) -> None:
        assert self.tree is not None
        if sender is not None:
            self.stop_reply = sender
        if not self.tree.stopping:
            self.tree.stopping = True
            self.stop_deadline = time.monotonic() + max(1.0, self.settings.cluster.stop_timeout_s - 2.0)
        self._continue_stop()

    def _continue_stop(self) -> None:
        """Ask the next tier (the Workers, then the Coordinator) to exit; answer once all are gone."""
        assert self.tree is not None
        for p in self.tree.to_stop():
            if not p.stop_sent:
                p.stop_sent = True
                self.send(p.address, ActorExitRequest())
        if self.tree.all_exited() and self.stop_reply is not None:
            self.send(self.stop_reply, ClusterStopped(dict(self.all_pids)))
            self.stop_reply = None

    # -- liveness ---------------------------------------------------------------------------
    def _tick(self) -> None:
        assert self.tree is not None and self.plan is not None
        self.last_tick = time.monotonic()
        beats = self._heartbeats()
        tree = self.tree
        for p in tree.nodes.values():
            # A local node whose heartbeat is fresh has a live timer chain and is not poked (a Poke
            # is a thespian message it must receive and acknowledge). Nodes on other hosts always
            # are: a remote Worker fences itself when Pokes stop, and a Poke that cannot be delivered
            # is how thespian tells this supervisor (ChildActorExited) that their host is gone.
            if p.up and (tree.stopping or p.remote or beats.get(p.name, float("inf")) > POKE_AFTER_S):
                self.send(p.address, Poke())
        if not alive(self.plan.launcher_pid):
            # The launcher is gone (killed): nobody would ever stop this cluster. Take it all down.
            self._log.bind(event_type="orphaned").critical("launcher gone: killing the cluster")
            kill_all(self.all_pids.values())
            admin = os.getppid()
            kill_all([p for p in descendants(admin) if p != os.getpid()])
            kill_all([admin])
            os._exit(3)
        if not tree.stopping:
            self._check_hangs(beats)
        elif time.monotonic() > self.stop_deadline:
            left = [p for p in tree.nodes.values() if not p.exited]
            kill_all(p.pid for p in left if p.pid)
            for p in left:
                p.exited = True
            self._continue_stop()
        self.wakeupAfter(timedelta(seconds=TICK_S), payload=self.gen)

    def _heartbeats(self) -> dict[str, float]:
        """Seconds since each started node's last ``Heartbeat`` (every 0.25 s from its thread; none
        yet from this incarnation: counted from its Started). The one liveness signal, local or remote."""
        assert self.tree is not None
        now = time.time_ns()
        return {p.name: (now - p.last_beat_ns) / 1e9 for p in self.tree.nodes.values() if p.up and p.pid}

    def _check_hangs(self, beats: dict[str, float]) -> None:
        """A node whose thread stopped writing its status is hung: its stacks are dumped, then it
        is SIGKILLed, and ``ChildActorExited`` restarts it like any dead process. A node that is
        gone without thespian saying so (its host vanished) is treated as exited at once."""
        assert self.tree is not None
        limit = self.settings.cluster.hang_timeout_s
        for p in list(self.tree.nodes.values()):
            if beats.get(p.name, 0.0) <= limit or not p.up:
                continue
            if p.remote or not alive(p.pid):
                # Its host is gone or cut off (thespian would only notice at its convention timeout,
                # about 22 minutes): fail its symbols closed now and run the slot here. A remote
                # process that still runs hears no Pokes and fences itself (it exits).
                self._log.bind(event_type="node_lost").critical(
                    "{} (pid {}, host {}) sent no heartbeat for more than {}s and is gone: treating it as exited",
                    p.name, p.pid, p.host, limit)
                self._died(p, host_lost=True)
                continue
            self._log.bind(event_type="node_hang").critical(
                "{} (pid {}) missed its heartbeat for more than {}s: dumping its stacks to logs/{}.stacks, "
                "killing it", p.name, p.pid, limit, p.name)
            kill_all([p.pid], signal.SIGUSR1)  # faulthandler: where was it stuck?
            self.wakeupAfter(timedelta(seconds=STACKS_BEFORE_KILL_S), payload=("kill", p.pid))
            p.started_ns = time.time_ns()  # once per hang

    def _status(self) -> ClusterStatus:
        t = self.tree
        if t is None:
            return ClusterStatus({})
        return ClusterStatus(t.status(), t.escalated, t.stopping, t.exit_status, t.stop_escalated)
