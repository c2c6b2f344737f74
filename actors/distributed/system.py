"""The node processes' thespian actors: the Coordinator and the Worker.

Both are thin shims around one ``loop.NodeLoop`` and their node core (``nodes``): they turn
thespian messages into calls on those, carry out what the loop says is due (status files, the
liveness check, exit), and arm the ``Waker`` for the next turn. Each handler runs to completion
on the process's single thread, so nothing locks. Link traffic goes over ZeroMQ
(``transport.ZmqPort``), never through thespian, which carries the control messages only.
Helper threads (``Waker``, ``StatusFiles``) only wait, write files and ring a pipe: they never
touch a core. The ClusterSupervisor is in ``supervisor``.
"""

from __future__ import annotations

import faulthandler
import gc
import os
import signal
import socket
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import IO, Any

from arbor.actors.cluster.files import StatusFiles
from arbor.actors.cluster.logs import setup_node_logging
from arbor.actors.distributed.loop import NodeLoop
from arbor.actors.distributed.wire import (
    ClusterPlan,
    CoordinatorDown,
    CoordinatorUp,
    Heartbeat,
    OperatorCommand,
    Poke,
    StartCoordinator,
    Started,
    StartWorker,
    WorkerDown,
    WorkerUp,
)
from arbor.actors.runtime.waker import Waker
from arbor.adapters.link.session import LinkBatch
from arbor.adapters.link.transport import ZmqPort
from arbor.supervision.procs import alive
from loguru import logger
from thespian.actors import (
    Actor,
    ActorExitRequest,
    PoisonMessage,
    ThespianWatch,
    WakeupMessage,
    WatchMessage,
)

WORKER_HOST_CAPABILITY = "Arbor Worker Host"
# A Worker handles market data this long before it lets I/O in (acks, approvals, control):
# unpaced, throughput matters; paced, a backlog of frames must not hold an approval up.
FEED_SLICE_S = 0.02
PACED_FEED_SLICE_S = 0.004
BACKSTOP_S = 0.25  # the thespian wake-up chain that backs up the Waker (each link of it is a wake-up)


def plan_settings(plan: ClusterPlan) -> Any:
    from arbor.config.settings import build_settings

    return build_settings(plan.raw_config)


def dump_stacks_on_usr1(var_dir: str, name: str) -> IO[str]:
    """``kill -USR1 <pid>`` dumps every thread's stack to ``logs/<name>.stacks`` (hangs, diagnosis).
    Unregisters first: a node is forked from the supervisor's process, whose registration it
    inherited, so register() alone would only change the file and leave thespian's handler in
    place. Returns the file, which the caller keeps open for the process's life."""
    stacks = open(Path(var_dir) / "logs" / f"{name}.stacks", "a")  # noqa: SIM115 -- faulthandler writes to it for the process's life
    faulthandler.unregister(signal.SIGUSR1)
    faulthandler.register(signal.SIGUSR1, file=stacks, all_threads=True)
    return stacks


def thread_sched() -> tuple[int, int, int]:
    """This thread's time on a CPU and waiting for one (runnable, not running), in ns, and its
    number of runs (``/proc/thread-self/schedstat``; zeros where there is none). psutil has no
    run-queue time; it is what tells a node starved of CPU from one that waits on its own."""
    try:
        run, wait, slices = Path("/proc/thread-self/schedstat").read_text().split()[:3]
        return int(run), int(wait), int(slices)
    except (OSError, ValueError):
        return 0, 0, 0


def supervisor_alive(pid: int) -> bool:
    """While the supervisor is this process's parent it is alive (a dead parent's children are
    re-parented at once): one system call instead of asking /proc (0.3-0.6 ms on this machine's
    thread, in the middle of whatever decision came next)."""
    return os.getppid() == pid or alive(pid)


class _NodeActor(Actor):
    """What the Coordinator and the Worker actors share: boot, the loop's shim, status, exit."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.core: Any = None
        self.loop: NodeLoop | None = None
        self.port: ZmqPort | None = None
        self.waker: Waker | None = None
        self.status_files: StatusFiles | None = None
        self.stacks: IO[str] | None = None
        self.supervisor_pid = 0
        self.supervisor: Any = None  # the ClusterSupervisor's address: the node heartbeats to it
        self.fence_s = 0.0  # > 0 on a joined host: exit after this long without a Poke from it
        self.last_contact = time.monotonic()
        self.cpu0 = time.process_time()
        self.sched0 = (0, 0, 0)
        self.gen = 0
        self.rearms = 0
        self.stopped = False

    def receiveMessage(self, msg: Any, sender: Any) -> Any:
        try:
            self._receive(msg, sender)
            if self.core is not None and not self.stopped:
                self.core.flush_events()  # after the handler's batches went out: a decision never waits for its event line
        except Exception as exc:  # a runtime bug: log it, never let thespian drop the actor silently
            name = getattr(self.core, "name", type(self).__name__)
            logger.bind(actor=name, event_type="node_failure").opt(exception=exc).critical(
                "{} failed handling {}: {!r}", name, type(msg).__name__, exc)
        return self._watch()

    def _receive(self, msg: Any, sender: Any) -> None:
        if isinstance(msg, (WakeupMessage, WatchMessage)):
            if self.loop is not None and self._wake_message(msg):
                self._arm(self.loop.turn())
            return
        if self.loop is not None:
            self._rescue(self.loop)
        if isinstance(msg, Poke):
            self.last_contact = time.monotonic()
        elif isinstance(msg, ActorExitRequest):
            self._exit()
        elif not isinstance(msg, PoisonMessage):  # an undeliverable control message: the peer is replaced
            self._control(msg, sender)

    def _control(self, msg: Any, sender: Any) -> None:
        raise NotImplementedError

    # -- boot -------------------------------------------------------------------------------
    def _boot(self, plan: ClusterPlan, name: str, supervisor_pid: int, role: str,
              keypair: tuple = (), allowed: tuple = ()) -> Any:
        """Logging, stack dumps, status files, the Waker and the data port of a starting node."""
        settings = plan_settings(plan)
        setup_node_logging(plan.var_dir, name, settings.run.log_level)
        self.stacks = dump_stacks_on_usr1(plan.var_dir, name)
        self.supervisor_pid = supervisor_pid
        self.status_files = StatusFiles(plan.var_dir)
        self.waker = Waker()
        # A node runs helper threads (state persister, status files, waker); at Python's default
        # 5 ms switch interval its thread, woken by a frame, can wait that long for the GIL.
        sys.setswitchinterval(settings.run.switch_interval_ms / 1000)
        host = os.environ.get("THESPIAN_BASE_IPADDR") or settings.cluster.bind_host
        self.port = ZmqPort(role, name, host, keypair=keypair, allowed=allowed, trace=settings.cluster.trace_hops)
        return settings

    def _attach(self, core: Any, settings: Any, poll_s: float, **loop_kw: Any) -> NodeLoop:
        """Run ``core`` in this node's loop; then settle the heap built so far."""
        self.core = core
        self.loop = loop = NodeLoop(
            core, self.port, ack_items=settings.cluster.link_window // 4, poll_s=poll_s,
            background=((core.tick_due, core.maybe_tick),), commit=(core.persister.due, core.persister.flush_due),
            on_status=self._put_status, on_liveness=self._liveness, turn_s=settings.cluster.turn_ms / 1000, **loop_kw)
        core.queued_remote = loop.send_now
        # Everything built so far lives as long as the process: out of the cyclic collector's way,
        # so a full collection scans only what the run creates (as the single-process runtime does).
        gc.collect()
        gc.freeze()
        self.cpu0 = time.process_time()  # CPU of the run, not of building the node
        self.sched0 = thread_sched()
        return loop

    # -- wake-ups ---------------------------------------------------------------------------
    def _arm(self, delay: float) -> None:
        """The next turn in ``delay`` seconds (0: as soon as thespian has handled the sockets)."""
        if self.waker is None:
            return
        if delay <= 0:
            self.waker.now()
        else:
            self.waker.at(time.monotonic() + delay)

    def _backstop(self) -> None:
        self.wakeupAfter(timedelta(seconds=BACKSTOP_S), payload=self.gen)

    def _watch(self) -> Any:
        """What every handler returns: keep thespian watching the Waker's pipe and the data sockets."""
        if self.waker is None or self.stopped:
            return None
        if self.port is not None and self.port.pending():
            self.waker.now()  # zmq's fd only signals edges: frames already waiting would not wake us
        return ThespianWatch([self.waker.fd, *(self.port.fds() if self.port is not None else ())])

    def _wake_message(self, msg: Any) -> bool:
        """Whether ``msg`` is a turn (the Waker's pipe, or the backstop chain, which is re-armed);
        link frames that came on the data sockets are handled here."""
        assert self.loop is not None and self.waker is not None
        if isinstance(msg, WatchMessage):
            if self.port is not None and self.port.pending():
                self.port.receive()
                if self.loop.inbox():
                    self._arm(0.0)
            if self.waker.fd not in msg.ready:
                return False
            self.waker.drain()
            return True
        if isinstance(msg, WakeupMessage) and msg.payload == self.gen:
            self._backstop()
            return True
        return False

    def _rescue(self, loop: NodeLoop) -> None:
        """Re-arm a wake-up chain that has not fired for far longer than its period."""
        late = loop.overdue(max(0.1, 20 * loop.poll_s))
        if late:
            self.gen += 1
            self.rearms += 1
            logger.bind(actor=self.core.name, event_type="timer_rearmed").warning(
                "{}: poll overdue by {:.3f}s; re-armed", self.core.name, late)
            loop.last_turn = loop.clock()
            self._backstop()
            self._arm(0.0)

    # -- what the loop says is due ----------------------------------------------------------
    def _put_status(self, with_latency: bool, stopped: bool = False) -> None:
        """The status file (the node's heartbeat) and, every ``LATENCY_EVERY_S``, the core's
        latency samples to ``<name>.latency.json`` (up to 60,000 numbers: not with each status)."""
        st = self.core.status()
        if stopped:
            st["stopped"] = True
        st["timer_rearms"] = self.rearms
        st["cpu_s"] = round(time.process_time() - self.cpu0, 3)  # bench/scale.py reports utilisation from it
        run, wait, slices = (a - b for a, b in zip(thread_sched(), self.sched0, strict=True))
        st["sched"] = {"run_s": round(run / 1e9, 3), "runqueue_s": round(wait / 1e9, 3), "runs": slices}
        if self.port is not None:
            st["data_port"] = dict(self.port.stats)
        if self.status_files is None:
            return
        self.status_files.put(self.core.name, st)
        lat = self.core.latency_report() if with_latency else None
        if lat is not None:
            self.status_files.put(f"{self.core.name}.latency", lat)

    def _liveness(self) -> None:
        """The heartbeat to the supervisor; and nothing trades unsupervised: exit when the
        supervisor is gone (or, on a joined host, has not been heard from for ``fence_s``)."""
        name = self.core.name
        if self.supervisor_pid and not supervisor_alive(self.supervisor_pid):
            logger.bind(actor=name, event_type="orphaned").critical(
                "{}: cluster supervisor {} is gone; exiting", name, self.supervisor_pid)
            os._exit(3)
        if self.supervisor is not None:
            self.send(self.supervisor, Heartbeat(self.core.slot, self.core.incarnation))
            silent = time.monotonic() - self.last_contact
            if self.fence_s and silent > self.fence_s:
                # Cut off from the supervisor (its host, or the network between): the leader re-homes
                # this slot after missing our heartbeats; never trade beside it.
                logger.bind(actor=name, event_type="fenced").critical(
                    "{}: no word from the cluster supervisor for {:.1f}s; exiting", name, silent)
                os._exit(3)

    def _exit(self) -> None:
        if self.core is None:
            return
        try:
            self.core.flush_events()
            self._put_status(with_latency=True, stopped=True)
            if self.status_files is not None:
                self.status_files.close()
        finally:
            self.stopped = True
            if self.loop is not None:
                self.loop.stopped = True
            if self.waker is not None:
                self.waker.close()
            if self.port is not None:
                self.port.close()
            self.core.close()


class CoordinatorActor(_NodeActor):
    """The Coordinator process: Risk and the Arbitrator (the "coordinator" group)."""

    def _control(self, msg: Any, sender: Any) -> None:
        if isinstance(msg, StartCoordinator):
            self._start(msg, sender)
            return
        core, loop, port = self.core, self.loop, self.port
        if core is None or loop is None or port is None:
            return
        if isinstance(msg, WorkerUp):
            peer = f"worker-{msg.slot}"
            core.worker_up(msg.slot, msg.incarnation)
            port.set_peer(peer, msg.data)
            for batch in core.take_early(msg.slot):
                loop.on_batch(batch, batch.link)
            loop.resync(peer)  # anything it sent before this that was not held
        elif isinstance(msg, WorkerDown):
            core.worker_down(msg.slot, msg.incarnation, msg.reason)
            if not core.worker_is_up(msg.slot):
                port.drop_peer(f"worker-{msg.slot}")
                loop.forget_peer(f"worker-{msg.slot}")
            loop.flush()
        elif isinstance(msg, OperatorCommand):
            core.operator(msg.receiver, core.codec.decode(msg.payload))
            loop.flush()

    def _start(self, msg: StartCoordinator, sender: Any) -> None:
        from arbor.actors.distributed.coordinator import CoordinatorCore

        plan = msg.plan
        settings = self._boot(plan, "coordinator", msg.supervisor_pid, "coordinator", allowed=msg.worker_keys)
        self.supervisor = sender
        assert self.port is not None
        data = self.port.endpoint
        core = CoordinatorCore(settings, plan.run_id, plan.var_dir, msg.incarnation,
                               {int(k): tuple(v) for k, v in plan.assignment.items()}, plan.raw_config)
        poll_s = max(0.001, settings.cluster.coordinator_poll_ms / 1000)
        loop = self._attach(core, settings, poll_s, peer_of=lambda b: b.link, split_batches=True,  # "worker-K": its link
                            work=lambda: core.idle_for(time.monotonic(), poll_s))
        self.send(sender, Started("coordinator", -1, msg.incarnation, os.getpid(), socket.gethostname(), data))
        self._backstop()
        self._arm(loop.poll_s)


def _to_coordinator(batch: LinkBatch) -> str:
    return "coordinator"


class WorkerActor(_NodeActor):
    """A Worker process: the full subtrees of its symbols, fed by their own market feed."""

    @staticmethod
    def actorSystemCapabilityCheck(capabilities: dict, requirements: dict) -> bool:
        if requirements and requirements.get(WORKER_HOST_CAPABILITY):
            return bool(capabilities.get(WORKER_HOST_CAPABILITY))
        return True

    def _control(self, msg: Any, sender: Any) -> None:
        if isinstance(msg, StartWorker):
            self._start(msg, sender)
            return
        core, loop, port = self.core, self.loop, self.port
        if core is None or loop is None or port is None:
            return
        if isinstance(msg, CoordinatorUp):
            loop.held = False
            port.set_peer("coordinator", msg.data)
            core.coordinator_up(msg.incarnation)
            loop.flush()
        elif isinstance(msg, CoordinatorDown):
            core.coordinator_down(msg.incarnation)
            if core.coordinator_incarnation == msg.incarnation:
                port.drop_peer("coordinator")
                loop.forget_peer("coordinator")

    def _start(self, msg: StartWorker, sender: Any) -> None:
        from arbor.actors.distributed.tree import worker_id
        from arbor.actors.distributed.worker import WorkerCore

        plan = msg.plan
        name = worker_id(msg.slot)
        settings = self._boot(plan, name, msg.supervisor_pid, "worker", keypair=msg.curve_keypair)
        assert self.port is not None
        self.supervisor = sender
        if not msg.supervisor_pid:  # on a joined host: the supervisor's pid means nothing here
            self.fence_s = 0.75 * settings.cluster.hang_timeout_s
            self.last_contact = time.monotonic()
        core = WorkerCore(settings, plan.run_id, plan.var_dir, msg.slot, msg.incarnation,
                          tuple(plan.assignment.get(msg.slot, ())), msg.restarted, msg.coordinator_incarnation,
                          plan.raw_config)
        budget = settings.cluster.feed_budget
        poll_s = max(0.0005, settings.cluster.poll_ms / 1000)
        box: list[NodeLoop] = []

        def work() -> float:
            wait = core.feed(budget=budget, max_s=PACED_FEED_SLICE_S if core.paced else FEED_SLICE_S,
                             ran=box[0].between_runs)
            idle = core.idle_for(time.monotonic(), poll_s)
            return idle if wait is None else min(idle, wait)

        loop = self._attach(core, settings, poll_s, peer_of=_to_coordinator, work=work)
        box.append(loop)
        # Until CoordinatorUp says where the Coordinator's data port is, link traffic waits: sent
        # through thespian instead, it arrived tens of ms late and after the batches behind it.
        loop.held = True
        self.send(sender, Started("worker", msg.slot, msg.incarnation, os.getpid(), socket.gethostname(),
                                  (self.port.public_key,)))
        self._backstop()
        self._arm(0.0)
