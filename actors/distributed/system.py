"""The thespian actors: ClusterSupervisor, Coordinator and Worker processes.

All three are thin shims: they turn thespian messages into calls on the node cores
(``actors.distributed.nodes``) and send what the cores' links say is due. Each handler runs to
completion on the process's single thread, so the cores need no locks. A node's poll delivers
the market frames that are due (a Worker), the timer ticks, owed link acks,
the status file (its heartbeat) and a check that its supervisor is still alive (if it is not,
the process exits: nothing trades unsupervised). Polls are rung by a ``Waker`` at the time
they are due, with a slow thespian ``wakeupAfter`` chain as a backstop; link traffic between
nodes goes over ZeroMQ (``transport.ZmqPort``: the Coordinator's ROUTER, a DEALER per Worker),
never through thespian, which carries the control messages only. Helper threads (``Waker``, ``StatusFiles``) only wait,
write files and ring a pipe: they never touch a core.
"""

from __future__ import annotations

import gc
import json
import os
import signal
import socket
import sys
import threading
import time
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import zmq
from arbor.actors.distributed.latch import write_latch
from arbor.actors.distributed.procs import alive, descendants, kill_all
from arbor.actors.distributed.session import LinkAck, LinkBatch
from arbor.actors.distributed.transport import ZmqPort
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
from loguru import logger
from thespian.actors import (
    Actor,
    ActorExitRequest,
    ActorSystemConventionUpdate,
    ChildActorExited,
    PoisonMessage,
    ThespianWatch,
    WakeupMessage,
    WatchMessage,
)

SUPERVISOR_NAME = "arbor-cluster-supervisor"
WORKER_HOST_CAPABILITY = "Arbor Worker Host"
STATUS_EVERY_S = 0.25
LATENCY_EVERY_S = 2.0
LIVENESS_EVERY_S = 0.25
POKE_AFTER_S = 0.75  # the supervisor pokes a node whose heartbeat is older than this
# A Worker handles market data this long before it lets I/O in (acks, approvals, control):
# unpaced, throughput matters; paced, a backlog of frames must not hold an approval up.
FEED_SLICE_S = 0.02
PACED_FEED_SLICE_S = 0.004
# Link frames a node handles per turn before it polls (heartbeat, timers) and lets I/O in again:
# a Coordinator behind two unpaced Workers has seconds of decisions waiting in its sockets.
INBOX_SLICE_S = 0.02
BACKSTOP_S = 0.05  # the thespian wake-up chain that backs up the Waker
# A node's turn: while its next piece of work (a Worker's next frame, an owed ack, a poll) is due
# within the turn, it waits for it in its own select on the data sockets instead of going back
# through thespian's loop
# (measured: a third of a paced Worker's CPU went to thespian's per-wake selector set-up and
# the Waker's thread hand-off). thespian's own messages (control: exit, pokes, membership)
# wait at most this long.
TURN_S = 0.02
# While a Worker feeds a backlog, it looks at its data sockets at least this often, so an
# approval from the Coordinator is not held up behind market data.
INBOUND_POLL_S = 0.0003
# A decision queued for another node goes out at once, unless the node sent a batch less than
# this long ago: then it rides with what the rest of the dispatcher run produces (a busy node
# still sends batches, not one frame per envelope).
LINGER_S = 0.001
ACK_DELAY_S = 0.02  # an owed ack waits at most this long for a batch going back to ride on


def _settings(plan: ClusterPlan):
    from arbor.config.settings import build_settings

    return build_settings(plan.raw_config)


class Waker:
    """Wakes a node's thread at a precise time: a pipe that thespian watches (``ThespianWatch``),
    written by a timer thread when the time comes, or at once by ``now()``.

    thespian's own ``wakeupAfter`` is not used for this, for three reasons seen in its loop
    (``TCPTransport._runWithExpiry``): a wake-up already due when the loop looks is delivered
    without reading or writing any socket (a Worker with market data always due would never
    send a batch, see an ack or hear an exit request); select rounds timeouts up to 1 ms; and a
    wake-up less than 0.5 us away becomes a zero ``timedelta``, which the loop filters out as
    "no timeout", leaving the process in ``epoll_wait`` until some message arrives (the stalled
    timer chains of docs/cluster.md, Known issue). A readable pipe wakes select at once, and
    thespian handles every ready socket in the same pass.
    """

    def __init__(self) -> None:
        self.fd, self._w = os.pipe()
        os.set_blocking(self.fd, False)
        os.set_blocking(self._w, False)
        self._due: float | None = None
        self._cv = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="arbor-waker", daemon=True)
        self._thread.start()

    def at(self, due: float) -> None:
        """Wake at ``due`` (``time.monotonic()``), replacing any earlier request."""
        with self._cv:
            earlier = self._due is None or due < self._due
            self._due = due
            if earlier:
                self._cv.notify()

    def now(self) -> None:
        with self._cv:
            self._due = None
        self._ring()

    def drain(self) -> None:
        try:
            while os.read(self.fd, 4096):
                pass
        except BlockingIOError:
            pass

    def close(self) -> None:
        with self._cv:
            self._closed = True
            self._cv.notify()

    def _ring(self) -> None:
        try:  # noqa: SIM105 -- on every wake: contextlib.suppress would add two calls to it
            os.write(self._w, b"!")
        except BlockingIOError:
            pass  # the pipe is full of rings not yet read: the node wakes anyway

    def _run(self) -> None:
        with self._cv:
            while not self._closed:
                if self._due is None:
                    self._cv.wait()
                    continue
                left = self._due - time.monotonic()
                if left > 0:
                    self._cv.wait(left)
                    continue
                self._due = None
                self._ring()


class StatusFiles:
    """A node's ``cluster/status/<name>.json`` files, replaced atomically by a thread of their own.

    The node's thread encodes each status (so its ``ts_ns`` still says that thread is alive: the
    supervisor's heartbeat); the write and rename, which cost 0.3-4 ms on ext4 when the disk is
    busy, happen beside it instead of in the middle of a decision. Only the newest status of a
    file is written. ``close`` writes what is pending on the calling thread (the final status).
    """

    def __init__(self, var_dir: str) -> None:
        self.dir = Path(var_dir) / "cluster" / "status"
        self.dir.mkdir(parents=True, exist_ok=True)
        self._pending: dict[str, str] = {}
        self._lock = threading.Lock()  # guards _pending
        self._wlock = threading.Lock()  # one writer at a time: a newer status never loses to an older
        self._wake = threading.Event()
        self._closed = False
        self.errors = 0
        self._thread = threading.Thread(target=self._run, name="arbor-status", daemon=True)
        self._thread.start()

    def put(self, name: str, data: dict) -> None:
        text = json.dumps(data, default=str)
        with self._lock:
            self._pending[name] = text
        self._wake.set()

    def close(self) -> None:
        self._closed = True
        self._wake.set()
        self._thread.join(2.0)
        self._write_pending()

    def _run(self) -> None:
        while not self._closed:
            self._wake.wait()
            self._wake.clear()
            self._write_pending()

    def _write_pending(self) -> None:
        with self._wlock:
            with self._lock:
                batch, self._pending = self._pending, {}
            for name, text in batch.items():
                try:
                    write_atomic(self.dir / f"{name}.json", text, fsync=False)  # rewritten 4x a second
                except OSError as exc:
                    self.errors += 1
                    logger.bind(actor="status", event_type="status_write_failed").error(
                        "status {} not written: {!r}", name, exc)


class _NodeActor(Actor):
    """Shared by the Coordinator and Worker actors."""

    core: Any = None
    name = "node"

    def _init_node(self, var_dir: str = "", name: str = "") -> None:
        if var_dir and name:
            # ``kill -USR1 <pid>`` dumps every thread's stack to logs/<name>.stacks (hangs, diagnosis).
            import faulthandler
            import signal as _signal

            self._stacks = open(Path(var_dir) / "logs" / f"{name}.stacks", "a")  # noqa: SIM115 -- faulthandler writes to it for the process's life
            # Unregister first: this process was forked from the supervisor's, whose registration
            # it inherited, so register() alone would only change the file and leave thespian's
            # handler (installed in the child since) in place: nothing was ever dumped.
            faulthandler.unregister(_signal.SIGUSR1)
            faulthandler.register(_signal.SIGUSR1, file=self._stacks, all_threads=True)
        self._acks: dict[str, list[Any]] = {}  # peer -> [LinkAck owed, send by (monotonic), items it covers]
        self._ack_delay_s = 0.02
        self._ack_items = 1024
        self._supervisor_pid = 0
        self._supervisor: Any = None  # set on a joined host's Worker: it heartbeats to it and fences
        self._fence_s = 0.0
        self._last_contact = time.monotonic()
        self._poll_s = 0.002
        self._next_status = 0.0
        self._next_live = 0.0
        self._next_latency = 0.0
        self._status = StatusFiles(var_dir) if var_dir else None
        self._waker = Waker()
        self._data: ZmqPort | None = None
        self._cpu0 = time.process_time()
        self._gen = 0
        self._last_poll = time.monotonic()
        self._in_polled = 0.0
        self._sent_at = 0.0
        # A starting Worker holds its link traffic until it knows the Coordinator's data port
        # (CoordinatorUp): sent through thespian instead, it arrived tens of ms late and after
        # the batches that followed it on the data port.
        self._hold_links = False
        self.rearms = 0

    def _arm(self, delay: float) -> None:
        """The next poll in ``delay`` seconds (0: as soon as thespian has handled the sockets)."""
        if delay <= 0:
            self._waker.now()
        else:
            self._waker.at(time.monotonic() + delay)

    def _backstop(self) -> None:
        self.wakeupAfter(timedelta(seconds=BACKSTOP_S), payload=self._gen)

    def _node_process(self, settings: Any) -> None:
        """Process-wide settings of a node: the GIL switch interval (``run.switch_interval_ms``).
        A node runs helper threads (state persister, status files, waker); at Python's default
        5 ms, the node's thread, woken by a frame, can wait that long for the GIL."""
        sys.setswitchinterval(settings.run.switch_interval_ms / 1000)

    @staticmethod
    def _settle_heap() -> None:
        """Everything built so far (the core, its actors, configs, codecs, thespian's own state)
        lives as long as the process: move it out of the cyclic collector's way, so a full
        collection scans only what the run creates and its pauses stay out of the latency tail
        (as the single-process runtime does)."""
        gc.collect()
        gc.freeze()

    def _open_data(self, settings: Any, role: str, name: str, keypair: tuple = (), allowed: tuple = ()) -> tuple:
        """The node's end of the data plane; what goes to the supervisor in ``Started.data``:
        the Coordinator's endpoint ``(host, port, server_key)``, a Worker's CURVE key ``(key,)``."""
        host = os.environ.get("THESPIAN_BASE_IPADDR") or settings.cluster.bind_host
        self._data = ZmqPort(role, name, host, keypair=keypair, allowed=allowed)
        if role == "coordinator":
            return self._data.endpoint
        return (self._data.public_key,)

    def _watch(self) -> Any:
        """What every handler returns: keep thespian watching the Waker's pipe and the data sockets."""
        waker = getattr(self, "_waker", None)
        if waker is None or getattr(self, "_stopped", False):
            return None
        if self._data is not None and self._data.pending():
            waker.now()  # zmq's fd only signals edges: frames already waiting would not wake us
        return ThespianWatch([waker.fd, *(self._data.fds() if self._data is not None else ())])

    def _wake_message(self, msg: Any) -> bool:
        """Whether ``msg`` is a poll (the Waker's pipe, or the backstop chain, which is re-armed);
        link frames that came on the data sockets are handled here."""
        if isinstance(msg, WatchMessage):
            if self._data is not None and self._data.pending():
                self._data.receive()
                self._inbox()
            if self._waker.fd not in msg.ready:
                return False
            self._waker.drain()
            return True
        if isinstance(msg, WakeupMessage) and msg.payload == self._gen:
            self._backstop()
            return True
        return False

    def _inbox(self) -> None:
        """Handle received link frames: every ack at once (an ack queued behind seconds of
        decisions would stall the peer's window), then batches for at most ``INBOX_SLICE_S``;
        if some are left, poll again at once (the poll handles the rest after the heartbeat)."""
        data = self._data
        if data is None:
            return
        if data.take_connected():
            self._resync("coordinator")
        if not (data.acks or data.inbox):
            return
        acks, data.acks = data.acks, []
        for a in acks:
            self.core.on_ack(a)
        until = time.perf_counter() + INBOX_SLICE_S
        inbox = data.inbox
        while inbox and time.perf_counter() < until:
            m = inbox.popleft()
            self._on_batch(m, self._batch_peer(m))
        self._flush()
        if inbox:
            self._arm(0.0)

    def _batch_peer(self, batch: LinkBatch) -> str:
        raise NotImplementedError

    def _work(self) -> float:
        """The node's own work in a turn (a Worker's due frames); seconds until more is due."""
        return self._poll_s

    def _turn(self) -> None:
        """Deliver what came in, the node's work, housekeeping, send; while the next of these is
        due within ``TURN_S``, wait for it here (a link frame wakes the wait at once) and go
        round again; then arm the Waker and return to thespian."""
        until = time.perf_counter() + TURN_S
        while True:
            self._last_poll = time.monotonic()
            self._inbox()
            wait = self._work()
            self._housekeeping()
            self._flush()
            mono = time.monotonic()
            if self.core.persister.due(mono):
                self._decisions_first()
                self.core.persister.flush_due(mono)
            nxt = self._next_wake(wait)
            if self._data is None or getattr(self, "_stopped", False) or nxt >= until - time.perf_counter():
                break
            if nxt > 0:
                self._wait_inbound(nxt)
        self._arm(nxt)

    def _wait_inbound(self, timeout: float) -> None:
        """Wait up to ``timeout`` seconds for link frames on the data plane and read them."""
        data = self._data
        if data is None:
            return
        ready = data.wait(timeout)
        self._in_polled = time.perf_counter()
        if ready:
            data.receive()

    def _send_to(self, peer: str, msg: LinkBatch | LinkAck) -> bool:
        """Onto the data plane only (never thespian); False if zmq refused it."""
        return self._data is not None and self._data.send(peer, msg)

    def _resync(self, peer: str) -> None:
        """The connection to ``peer`` is (again) up: resend what it has not acknowledged and ask
        it for what did not arrive from it."""
        ask = self.core.resync(peer)
        if ask is not None:
            self._send_to(peer, ask)
        self._flush()

    def _rescue(self) -> None:
        """Re-arm a timer chain that has not fired for far longer than its period."""
        if self.core is not None and time.monotonic() - self._last_poll > max(0.1, 20 * self._poll_s):
            self._gen += 1
            self.rearms += 1
            logger.bind(actor=self.core.name, event_type="timer_rearmed").warning(
                "{}: poll overdue by {:.3f}s; re-armed", self.core.name, time.monotonic() - self._last_poll)
            self._last_poll = time.monotonic()
            self._backstop()
            self._arm(0.0)

    def _link_params(self, settings: Any) -> None:
        c = settings.cluster
        # An ack waits for a batch going back to ride on, but at most ACK_DELAY_S, and not while
        # a quarter of the peer's window is unacked (its window would stall).
        self._ack_delay_s = ACK_DELAY_S
        self._ack_items = max(1, c.link_window // 4)

    def _on_batch(self, batch: LinkBatch, peer: str) -> None:
        """Deliver a batch; its piggybacked ack first, and our ack is owed to ``peer``."""
        if batch.ack is not None:
            self.core.on_ack(batch.ack)
        ack = self.core.on_batch(batch)
        if ack is None:
            return
        if ack.resend:  # a gap: the peer resends at once, not after our ack delay
            self._acks.pop(peer, None)
            self._send_to(peer, ack)
            return
        owed = self._acks.get(peer)
        if owed is None:
            self._acks[peer] = [ack, time.monotonic() + self._ack_delay_s, len(batch.items)]
        else:
            owed[0] = ack
            owed[2] += len(batch.items)

    def _flush(self) -> None:
        """Send the batches that are due, each carrying the ack owed to its peer; then the acks
        that have waited long enough on their own."""
        if self._hold_links:
            return
        refused: set[str] = set()
        for peer, batch in self.core.due():
            if peer in refused:
                continue  # rewound: it goes again, in order, with the next flush
            owed = self._acks.pop(peer, None)
            if owed is not None:
                batch = replace(batch, ack=owed[0])
            if not self._send_to(peer, batch):
                refused.add(peer)
                self.core.rewind(peer)
                if owed is not None:
                    self._acks[peer] = owed
            self._sent_at = time.perf_counter()
        if self._acks:
            mono = time.monotonic()
            for peer, owed in list(self._acks.items()):
                if mono >= owed[1] or owed[2] >= self._ack_items:
                    del self._acks[peer]
                    self._send_to(peer, owed[0])
        if self._data is not None:
            self._data.pump()

    def _send_now(self) -> None:
        """The core queued an envelope for another node, mid-run: send it now (see ``LINGER_S``)."""
        if time.perf_counter() - self._sent_at >= LINGER_S:
            self._flush()

    def _next_wake(self, cap: float) -> float:
        """Seconds until the next owed ack must go, at most ``cap``."""
        if not self._acks:
            return cap
        due = min(o[1] for o in self._acks.values()) - time.monotonic()
        return max(0.0, min(cap, due))

    def _decisions_first(self) -> None:
        """Before a piece of background work (timer ticks, the status, the state commit: each
        0.2-1 ms of this thread): handle the link frames already waiting on the data sockets and
        send what they produce, so a decision that came in meanwhile does not wait for it."""
        if self._data is not None and not getattr(self, "_stopped", False):
            self._wait_inbound(0)
            self._inbox()

    def _housekeeping(self) -> None:
        mono = time.monotonic()
        if self.core.tick_due(mono):
            self._decisions_first()
            self.core.maybe_tick(mono)
        if mono >= self._next_status:
            self._decisions_first()
            self._next_status = mono + STATUS_EVERY_S
            st = self.core.status()
            self._node_fields(st)
            if self._status is not None:
                self._status.put(self.core.name, st)
            if mono >= self._next_latency:
                self._next_latency = mono + LATENCY_EVERY_S
                self._put_latencies()
        if mono >= self._next_live:
            self._next_live = mono + LIVENESS_EVERY_S
            if self._supervisor_pid and not self._supervisor_alive():
                logger.bind(actor=self.core.name, event_type="orphaned").critical(
                    "{}: cluster supervisor {} is gone; exiting", self.core.name, self._supervisor_pid)
                os._exit(3)
            if self._supervisor is not None:
                self.send(self._supervisor, Heartbeat(self.core.slot, self.core.incarnation))
                silent = mono - self._last_contact
                if silent > self._fence_s:
                    # Cut off from the supervisor (its host, or the network between): the leader
                    # re-homes this slot after missing our heartbeats; never trade beside it.
                    logger.bind(actor=self.core.name, event_type="fenced").critical(
                        "{}: no word from the cluster supervisor for {:.1f}s; exiting", self.core.name, silent)
                    os._exit(3)

    def _put_latencies(self) -> None:
        """The core's latency samples, if it keeps any, to ``<name>.latency.json`` (every
        ``LATENCY_EVERY_S``, not with each status: they are up to 60,000 numbers)."""
        lat = self.core.latency_report()
        if lat is not None and self._status is not None:
            self._status.put(f"{self.core.name}.latency", lat)

    def _supervisor_alive(self) -> bool:
        """While the supervisor is this process's parent it is alive (a dead parent's children
        are re-parented at once): one system call instead of reading /proc (0.3-0.6 ms on this
        machine's thread, in the middle of whatever decision came next)."""
        if os.getppid() == self._supervisor_pid:
            return True
        return alive(self._supervisor_pid)

    def _node_fields(self, st: dict) -> None:
        """What the shim adds to the core's status: its own counters and the process's CPU time
        (``cpu_s`` since the core was built: bench/scale.py reports utilisation from it)."""
        st["timer_rearms"] = self.rearms
        st["cpu_s"] = round(time.process_time() - self._cpu0, 3)
        if self._data is not None:
            st["data_port"] = dict(self._data.stats)

    def _events_written(self) -> None:
        """Write the event lines the core's observer held during this handler (after the
        handler's batches went out: a decision never waits for its event line)."""
        if getattr(self, "_stopped", False):
            return
        obs = getattr(self.core, "observer", None) or getattr(self.core, "probe", None)
        if obs is not None:
            obs.flush()

    def _exit(self) -> None:
        if self.core is not None:
            try:
                self._events_written()
                st = self.core.status()
                st["stopped"] = True
                self._node_fields(st)
                if self._status is not None:
                    self._status.put(self.core.name, st)
                    self._put_latencies()
                    self._status.close()
            finally:
                self._stopped = True
                self._waker.close()
                if self._data is not None:
                    self._data.close()
                self.core.close()


class CoordinatorActor(_NodeActor):
    """The Coordinator process: Risk and the Arbitrator (the "coordinator" group)."""

    def _batch_peer(self, batch: LinkBatch) -> str:
        return batch.link  # "worker-K": the link of worker K's sender

    def _on_batch(self, batch: LinkBatch, peer: str) -> None:
        """Item by item, sending after each what it produced: an approval need not wait for the
        decisions queued behind it in the same batch."""
        if len(batch.items) <= 1:
            super()._on_batch(batch, peer)
            return
        for i, item in enumerate(batch.items):
            super()._on_batch(LinkBatch(batch.link, batch.epoch, batch.first_seq + i, (item,),
                                        batch.ack if i == 0 else None), peer)
            self._flush()

    def receiveMessage(self, msg: Any, sender: Any) -> Any:
        try:
            self._receive(msg, sender)
            if self.core is not None:
                self._events_written()
        except Exception as exc:  # a runtime bug: log it, never let thespian drop the actor silently
            logger.bind(actor="coordinator", event_type="node_failure").opt(exception=exc).critical(
                "coordinator failed handling {}: {!r}", type(msg).__name__, exc)
        return self._watch()

    def _receive(self, msg: Any, sender: Any) -> None:
        core = self.core
        if isinstance(msg, (WakeupMessage, WatchMessage)):
            if core is None or not self._wake_message(msg):
                return
            self._turn()
            return
        if core is not None:
            self._rescue()
        if isinstance(msg, Poke):
            pass
        elif isinstance(msg, WorkerUp):
            core.worker_up(msg.slot, msg.incarnation)
            if self._data is not None:
                self._data.set_peer(f"worker-{msg.slot}", msg.data)
            for batch in core.take_early(msg.slot):
                self._on_batch(batch, batch.link)
            self._resync(f"worker-{msg.slot}")  # anything it sent before this that was not held
            self._flush()
        elif isinstance(msg, WorkerDown):
            core.worker_down(msg.slot, msg.incarnation, msg.reason)
            if (core.peers.get(msg.slot) is None or not core.peers[msg.slot].up) and self._data is not None:
                self._data.drop_peer(f"worker-{msg.slot}")
                self._acks.pop(f"worker-{msg.slot}", None)
            self._flush()
        elif isinstance(msg, OperatorCommand):
            core.operator(msg.receiver, core.codec.decode(msg.payload))
            self._flush()
        elif isinstance(msg, StartCoordinator):
            self._start(msg, sender)
        elif isinstance(msg, ActorExitRequest):
            self._exit()
        elif isinstance(msg, PoisonMessage):
            pass  # an undeliverable control message (a peer died): the peer is replaced

    def _start(self, msg: StartCoordinator, sender: Any) -> None:
        from arbor.actors.distributed.nodes import CoordinatorCore, setup_node_logging

        plan = msg.plan
        settings = _settings(plan)
        setup_node_logging(plan.var_dir, "coordinator", settings.run.log_level)
        self._init_node(plan.var_dir, "coordinator")
        self._supervisor_pid = msg.supervisor_pid
        self._poll_s = max(0.001, settings.cluster.coordinator_poll_ms / 1000)
        self._link_params(settings)
        self._node_process(settings)
        data = self._open_data(settings, "coordinator", "coordinator", allowed=msg.worker_keys)
        self.core = CoordinatorCore(settings, plan.run_id, plan.var_dir, msg.incarnation,
                                    {int(k): tuple(v) for k, v in plan.assignment.items()}, plan.raw_config)
        self.core.queued_remote = self._send_now
        self._settle_heap()
        self._cpu0 = time.process_time()  # CPU of the run, not of building the node
        self.send(sender, Started("coordinator", -1, msg.incarnation, os.getpid(), socket.gethostname(), data))
        self._backstop()
        self._arm(self._poll_s)


class WorkerActor(_NodeActor):
    """A Worker process: the full subtrees of its symbols, fed by their own market feed."""

    def _batch_peer(self, batch: LinkBatch) -> str:
        return "coordinator"

    @staticmethod
    def actorSystemCapabilityCheck(capabilities: dict, requirements: dict) -> bool:
        if requirements and requirements.get(WORKER_HOST_CAPABILITY):
            return bool(capabilities.get(WORKER_HOST_CAPABILITY))
        return True

    def receiveMessage(self, msg: Any, sender: Any) -> Any:
        try:
            self._receive(msg, sender)
            if self.core is not None:
                self._events_written()
        except Exception as exc:
            logger.bind(actor=getattr(self.core, "name", "worker"), event_type="node_failure").opt(
                exception=exc).critical("worker failed handling {}: {!r}", type(msg).__name__, exc)
        return self._watch()

    def _receive(self, msg: Any, sender: Any) -> None:
        core = self.core
        if isinstance(msg, (WakeupMessage, WatchMessage)):
            if core is None or not self._wake_message(msg):
                return
            self._turn()
            return
        if core is not None:
            self._rescue()
        if isinstance(msg, Poke):
            self._last_contact = time.monotonic()
        elif isinstance(msg, CoordinatorUp):
            if core is not None:
                self._hold_links = False
                if self._data is not None:
                    self._data.set_peer("coordinator", msg.data)
                core.coordinator_up(msg.incarnation)
                self._flush()
        elif isinstance(msg, CoordinatorDown):
            if core is not None:
                core.coordinator_down(msg.incarnation)
                if core.coordinator_incarnation == msg.incarnation and self._data is not None:
                    self._data.drop_peer("coordinator")
                    self._acks.pop("coordinator", None)
        elif isinstance(msg, StartWorker):
            self._start(msg, sender)
        elif isinstance(msg, ActorExitRequest):
            self._exit()
        elif isinstance(msg, PoisonMessage):
            pass

    def _work(self) -> float:
        core = self.core
        wait = core.feed(budget=self._budget, max_s=PACED_FEED_SLICE_S if core.paced else FEED_SLICE_S,
                         ran=self._between_runs)
        return self._poll_s if wait is None else min(self._poll_s, wait)

    def _between_runs(self) -> None:
        """After each dispatcher run of the feed: send what it produced, and every
        ``INBOUND_POLL_S`` handle what the Coordinator sent meanwhile."""
        self._flush()
        if time.perf_counter() - self._in_polled >= INBOUND_POLL_S:
            self._decisions_first()

    def _start(self, msg: StartWorker, sender: Any) -> None:
        from arbor.actors.distributed.nodes import WorkerCore, setup_node_logging, worker_link

        plan = msg.plan
        settings = _settings(plan)
        name = worker_link(msg.slot)
        setup_node_logging(plan.var_dir, name, settings.run.log_level)
        self._init_node(plan.var_dir, name)
        self._supervisor_pid = msg.supervisor_pid
        if not msg.supervisor_pid:  # on a joined host: the supervisor's pid means nothing here
            self._supervisor = sender
            self._fence_s = 0.75 * settings.cluster.hang_timeout_s
            self._last_contact = time.monotonic()
        self._poll_s = max(0.0005, settings.cluster.poll_ms / 1000)
        self._budget = settings.cluster.feed_budget
        self._link_params(settings)
        self._node_process(settings)
        data = self._open_data(settings, "worker", name, keypair=msg.curve_keypair)
        self._hold_links = True
        symbols = tuple(plan.assignment.get(msg.slot, ()))
        self.core = WorkerCore(settings, plan.run_id, plan.var_dir, msg.slot, msg.incarnation,
                               symbols, msg.restarted, msg.coordinator_incarnation, plan.raw_config)
        self.core.queued_remote = self._send_now
        self._settle_heap()
        self._cpu0 = time.process_time()  # CPU of the run, not of building the node
        self.send(sender, Started("worker", msg.slot, msg.incarnation, os.getpid(), socket.gethostname(), data))
        self._flush()
        self._backstop()
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
        self.data: tuple = ()  # its data port (host, port)
        self.remote = False  # on a joined host: seen alive by its Heartbeat messages, never by pid or file
        self.last_beat_ns = 0
        self.started_ns: int | None = None  # when it was last (re)started or found hung


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
        elif isinstance(msg, Heartbeat):
            p = self.procs.get(f"worker-{msg.slot}")
            if p is not None and p.incarnation == msg.incarnation:
                p.last_beat_ns = time.time_ns()
        elif isinstance(msg, StatusQuery):
            self.send(sender, self._status())
        elif isinstance(msg, OperatorCommand):
            if not authorized(getattr(self, "plan", None), msg.token):
                logger.bind(actor="cluster-supervisor", event_type="operator_unauthorized").warning(
                    "operator command for {} refused: no valid operator token", msg.receiver)
                self.send(sender, Ack("unauthorized: the operator token (ARBOR_OPERATOR_TOKEN) is missing or wrong"))
                return
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
        from arbor.actors.distributed.incarnations import IncarnationCounter
        from arbor.actors.distributed.nodes import setup_node_logging
        from arbor.supervision.intensity import RestartIntensity

        self.plan = plan
        self.settings = _settings(plan)
        setup_node_logging(plan.var_dir, "supervisor", self.settings.run.log_level)
        import faulthandler
        import signal as _signal

        self._stacks = open(Path(plan.var_dir) / "logs" / "supervisor.stacks", "a")  # noqa: SIM115 -- faulthandler writes to it for the process's life
        faulthandler.unregister(_signal.SIGUSR1)  # see _NodeActor._init_node
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
        self.incarnations = IncarnationCounter(plan.var_dir)
        # One CURVE key pair per worker slot for the run: the Coordinator knows every public key
        # from its start, so a Worker is never refused for connecting before its WorkerUp.
        self.worker_keys = {slot: tuple(k.decode() for k in zmq.curve_keypair()) for slot in plan.assignment}
        if plan.remote_slots:
            self.notifyOnSystemRegistrationChanges(True)
        self._start_coordinator()
        for slot in sorted(plan.assignment):
            if slot not in plan.remote_slots:
                self._start_worker(slot, restarted=False)
        self._gen = 0
        self._tick()

    def _start_coordinator(self) -> None:
        inc = self.incarnations.next()
        addr = self.createActor(CoordinatorActor)
        p = self.procs["coordinator"] = _Proc("coordinator", "coordinator", -1, addr, inc)
        p.restarts = getattr(self, "_coord_restarts", 0)
        self.coord_incarnation = inc
        self.send(addr, StartCoordinator(self.plan, inc, os.getpid(),
                                         tuple(pub for pub, _ in self.worker_keys.values())))

    def _start_worker(self, slot: int, restarted: bool, remote: bool = False) -> None:
        name = f"worker-{slot}"
        inc = self.incarnations.next()
        req = {WORKER_HOST_CAPABILITY: True} if remote else None
        addr = self.createActor(WorkerActor, targetActorRequirements=req)
        old = self.procs.get(name)
        p = self.procs[name] = _Proc(name, "worker", slot, addr, inc)
        p.remote = remote
        p.restarts = old.restarts if old is not None else 0
        coord = self.procs["coordinator"]
        self.send(addr, StartWorker(self.plan, slot, inc, restarted or remote, coord.address, coord.incarnation,
                                    0 if remote else os.getpid(), self.worker_keys.get(slot, ())))

    def _start_remote(self) -> None:
        for slot in self.plan.remote_slots:
            if f"worker-{slot}" not in self.procs and not self.stopping:
                self._start_worker(slot, restarted=True, remote=True)

    def _started(self, msg: Started, sender: Any) -> None:
        name = "coordinator" if msg.role == "coordinator" else f"worker-{msg.slot}"
        p = self.procs.get(name)
        if p is None or p.incarnation != msg.incarnation:
            return
        p.up, p.pid, p.host, p.address, p.data = True, msg.pid, msg.host, sender, msg.data
        p.started_ns = p.last_beat_ns = time.time_ns()
        if not p.remote:  # a pid is only meaningful on this host (and only its own are reaped here)
            self.all_pids[f"{name}#{msg.incarnation}"] = msg.pid
        self._write_pids()
        coord = self.procs.get("coordinator")
        if msg.role == "worker":
            if coord is not None and coord.up:
                self.send(coord.address, WorkerUp(msg.slot, msg.incarnation, sender, p.restarts > 0, p.data))
                # The worker knew the Coordinator's address from StartWorker, not its data port.
                self.send(sender, CoordinatorUp(coord.incarnation, coord.address, coord.data))
        else:
            for w in self.procs.values():
                if w.role == "worker" and w.up:
                    self.send(sender, WorkerUp(w.slot, w.incarnation, w.address, False, w.data))
                    self.send(w.address, CoordinatorUp(msg.incarnation, sender, msg.data))
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
        write_atomic(path, json.dumps({"supervisor": os.getpid(), "admin": os.getppid(), **self.all_pids}))

    # -- failures ---------------------------------------------------------------------------
    def _exited(self, address: Any, host_lost: bool = False) -> None:
        """A node exited; ``host_lost``: with its host, so a joined host's worker slot is restarted here."""
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
            self._start_worker(p.slot, restarted=True, remote=p.slot in self.plan.remote_slots and not host_lost)
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
        beats = self._heartbeats()
        for p in self.procs.values():
            # A local node whose heartbeat is fresh has a live timer chain and is not poked (a Poke
            # is a thespian message it must receive and acknowledge). Nodes on other hosts always
            # are: their heartbeat files are not here, and a Poke that cannot be delivered is how
            # thespian tells this supervisor (ChildActorExited) that their host is gone.
            if p.up and (self.stopping or p.remote or beats.get(p.name, float("inf")) > POKE_AFTER_S):
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
            self._check_hangs(beats)
        if self.stopping and time.monotonic() > self.stop_deadline:
            left = [p for p in self.procs.values() if not p.exited]
            kill_all(p.pid for p in left if p.pid)
            for p in left:
                p.exited = True
            self._finish_stop()
        self.wakeupAfter(timedelta(seconds=LIVENESS_EVERY_S), payload=self._gen)

    def _heartbeats(self) -> dict[str, float]:
        """Seconds since each local node's last heartbeat (its status file, every 0.25 s).

        A file modified within ``POKE_AFTER_S`` is fresh without being read; an older one is read
        to tell its ``ts_ns`` from a previous incarnation's (no heartbeat of this incarnation yet:
        counted from when it reported Started)."""
        now = time.time_ns()
        out: dict[str, float] = {}
        status_dir = Path(self.plan.var_dir) / "cluster" / "status"
        for p in self.procs.values():
            if not p.up or not p.pid:
                continue
            if p.remote:
                out[p.name] = (now - p.last_beat_ns) / 1e9
                continue
            path = status_dir / f"{p.name}.json"
            try:
                age = (now - path.stat().st_mtime_ns) / 1e9
            except OSError:
                age = float("inf")
            if age > POKE_AFTER_S:
                try:
                    st = json.loads(path.read_text())
                except (OSError, ValueError):
                    st = {}
                beat = int(st["ts_ns"]) if st.get("pid") == p.pid and "ts_ns" in st else (p.started_ns if p.started_ns is not None else now)
                age = (now - beat) / 1e9
            out[p.name] = age
        return out

    def _check_hangs(self, beats: dict[str, float]) -> None:
        """A node whose thread stopped writing its status (every 0.25 s) is hung: SIGKILL it, and
        ``ChildActorExited`` then restarts it like any dead process (the missed-heartbeat detector)."""
        limit = self.settings.cluster.hang_timeout_s
        now = time.time_ns()
        for p in list(self.procs.values()):
            if beats.get(p.name, 0.0) <= limit or not p.up:
                continue
            if p.remote:
                # Its host is gone or cut off (thespian would only notice at its convention timeout,
                # about 22 minutes): fail its symbols closed now and run the slot here. The remote
                # process, if it still runs, hears no Pokes and fences itself (it exits).
                logger.bind(actor="cluster-supervisor", event_type="node_lost").critical(
                    "{} on host {} sent no heartbeat for more than {}s: host lost, re-homing its slot here",
                    p.name, p.host, limit)
                self._exited(p.address, host_lost=True)
                continue
            if not alive(p.pid):
                # Gone, and thespian has not said so (its host vanished: thespian would only notice
                # at its convention timeout): fail closed now, as for any exited process.
                logger.bind(actor="cluster-supervisor", event_type="node_lost").critical(
                    "{} (pid {}) missed its heartbeat for more than {}s and is gone: treating it as exited",
                    p.name, p.pid, limit)
                self._exited(p.address, host_lost=True)
                continue
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
