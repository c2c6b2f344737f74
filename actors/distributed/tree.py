"""The cluster's supervision tree as data: which nodes, how they restart, what a death means.

``cluster_spec`` declares the children of the ClusterSupervisor the way the in-process
supervisors declare theirs (``supervision.spec``): the Coordinator first, then the Workers by
slot; they start in that order and stop in reverse (the Workers, then the Coordinator). Each
``NodeSpec`` says what its death means (``Death``) and what happens past the restart intensity
(``Escalation``, with the launcher's exit status). ``ClusterTree`` is the pure state machine the
thespian shim (``supervisor.ClusterSupervisor``) drives: it keeps every node's state and, for
each death, returns a ``Verdict`` the shim carries out. No thespian, no clock of its own (times
come in as arguments), so the tests run it without processes.
"""

from __future__ import annotations

from enum import Enum
from typing import Any

from arbor.supervision.intensity import RestartIntensity
from arbor.supervision.spec import Restart
from attrs import define, field, frozen

COORDINATOR = "coordinator"


def worker_id(slot: int) -> str:
    return f"worker-{slot}"


class Death(str, Enum):
    """What the rest of the cluster does when a node's process is gone."""

    HALT_SYMBOLS = "halt_symbols"  # a Worker: WorkerDown to the Coordinator, whose Risk HALTs its symbols
    LATCH_KILL_SWITCH = "latch_kill_switch"  # the Coordinator: the kill-switch latch engaged, Workers told


class Escalation(str, Enum):
    """What happens when a node dies more than ``intensity`` times within ``period_s``."""

    STAY_DOWN = "stay_down"  # not restarted again: its symbols stay HALTED, the rest keeps trading
    STOP_CLUSTER = "stop_cluster"  # the whole cluster stops (fail closed)


@frozen(kw_only=True)
class NodeSpec:
    id: str
    role: str  # "coordinator" | "worker"
    on_death: Death
    on_escalation: Escalation
    slot: int = -1
    remote: bool = False  # runs on a joined host (capability "Arbor Worker Host"), started when it joins
    restart: Restart = Restart.PERMANENT
    exit_status: int = 1  # the launcher's exit status when this node escalated


@frozen(kw_only=True)
class ClusterSpec:
    """Children in start order; one restart intensity per node (a node's death restarts only it)."""

    children: tuple[NodeSpec, ...]
    intensity: int = 3
    period_s: float = 60.0

    def child(self, node_id: str) -> NodeSpec:
        for c in self.children:
            if c.id == node_id:
                return c
        raise KeyError(node_id)


def cluster_spec(slots: tuple[int, ...], remote_slots: tuple[int, ...] = (), intensity: int = 3,
                 period_s: float = 60.0) -> ClusterSpec:
    """The cluster of a plan: the Coordinator, then one Worker per slot."""
    coordinator = NodeSpec(id=COORDINATOR, role="coordinator", on_death=Death.LATCH_KILL_SWITCH,
                           on_escalation=Escalation.STOP_CLUSTER)
    workers = tuple(NodeSpec(id=worker_id(k), role="worker", slot=k, remote=k in remote_slots,
                             on_death=Death.HALT_SYMBOLS, on_escalation=Escalation.STAY_DOWN)
                    for k in sorted(slots))
    return ClusterSpec(children=(coordinator, *workers), intensity=intensity, period_s=period_s)


@define
class NodeState:
    """One incarnation of a node, as the supervisor knows it."""

    spec: NodeSpec
    incarnation: int
    address: Any = None  # its thespian address
    remote: bool = False  # this incarnation runs on a joined host (seen alive by Heartbeat, never by pid)
    pid: int = 0
    host: str = ""
    up: bool = False  # reported Started and not exited
    exited: bool = False
    restarts: int = 0
    data: tuple[Any, ...] = ()  # its data-plane endpoint or key (``wire.Started.data``)
    last_beat_ns: int = 0
    started_ns: int | None = None  # when it was last (re)started or found hung
    stop_sent: bool = False

    @property
    def name(self) -> str:
        return self.spec.id


@frozen(kw_only=True)
class Verdict:
    """What one death means: ``restart`` it (``remote``: on its joined host again) or not, and
    whether it escalated (``escalated`` says why; ``stop``: the whole cluster stops)."""

    node: NodeState
    death: Death
    restart: bool
    remote: bool = False
    escalated: str = ""
    stop: bool = False


@define
class ClusterTree:
    spec: ClusterSpec
    nodes: dict[str, NodeState] = field(factory=dict)
    escalated: str = ""
    exit_status: int = 0  # the launcher's, from the escalations so far
    stop_escalated: bool = False  # an escalation stopped the whole cluster
    stopping: bool = False
    _intensity: dict[str, RestartIntensity] = field(factory=dict)

    def start_order(self, with_remote: bool = False) -> tuple[NodeSpec, ...]:
        """The children started at once (remote ones wait for their host, unless ``with_remote``)."""
        return tuple(c for c in self.spec.children if with_remote or not c.remote)

    def starting(self, node_id: str, incarnation: int, address: Any, remote: bool) -> NodeState:
        """A new incarnation of ``node_id`` was created; it keeps the count of restarts before it."""
        old = self.nodes.get(node_id)
        node = NodeState(self.spec.child(node_id), incarnation, address, remote,
                         restarts=old.restarts if old is not None else 0)
        self.nodes[node_id] = node
        return node

    def started(self, node_id: str, incarnation: int, address: Any, pid: int, host: str,
                data: tuple[Any, ...], now_ns: int) -> NodeState | None:
        """``node_id``'s incarnation reported Started (None: not the current one)."""
        node = self.nodes.get(node_id)
        if node is None or node.incarnation != incarnation:
            return None
        node.up, node.pid, node.host, node.address, node.data = True, pid, host, address, data
        node.started_ns = node.last_beat_ns = now_ns
        return node

    def all_started(self) -> bool:
        """Every child started so far is up, and every local one was started."""
        local = {c.id for c in self.start_order()}
        return local <= self.nodes.keys() and all(n.up for n in self.nodes.values())

    def find(self, address: Any) -> NodeState | None:
        """The live (not exited) node at ``address``."""
        return next((n for n in self.nodes.values() if n.address == address and not n.exited), None)

    def up(self, role: str) -> list[NodeState]:
        return [n for n in self.nodes.values() if n.spec.role == role and n.up]

    def died(self, node: NodeState, now_ns: int, host_lost: bool = False) -> Verdict:
        """``node``'s process is gone (``host_lost``: with its host, so a joined host's slot is
        re-homed here). While stopping a death is only counted as a stop."""
        node.exited, node.up = True, False
        s = node.spec
        if self.stopping:
            return Verdict(node=node, death=s.on_death, restart=False)
        if s.restart is Restart.TEMPORARY:
            return Verdict(node=node, death=s.on_death, restart=False)
        inten = self._intensity.setdefault(s.id, RestartIntensity(self.spec.intensity, self.spec.period_s))
        if inten.record(now_ns):
            if s.on_escalation is Escalation.STAY_DOWN:
                why = f"worker {s.slot} exceeded its restart intensity; its symbols stay HALTED"
            else:
                why = f"{s.id} exceeded its restart intensity: cluster stopped"
            self.escalated = why
            self.exit_status = max(self.exit_status, s.exit_status)
            self.stop_escalated = self.stop_escalated or s.on_escalation is Escalation.STOP_CLUSTER
            return Verdict(node=node, death=s.on_death, restart=False, escalated=why,
                           stop=s.on_escalation is Escalation.STOP_CLUSTER)
        node.restarts += 1
        return Verdict(node=node, death=s.on_death, restart=True, remote=s.remote and not host_lost)

    def to_stop(self) -> list[NodeState]:
        """The nodes to ask to exit now, in reverse start order: every Worker still running (all
        at once); the Coordinator once they are all gone. Empty: nothing is left to ask."""
        order = {c.id: k for k, c in enumerate(self.spec.children)}
        alive = sorted((n for n in self.nodes.values() if not n.exited), key=lambda n: -order[n.name])
        workers = [n for n in alive if n.spec.role == "worker"]
        return workers if workers else alive

    def all_exited(self) -> bool:
        return all(n.exited for n in self.nodes.values())

    def status(self) -> dict[str, dict[str, Any]]:
        return {n.name: {"pid": n.pid, "incarnation": n.incarnation, "restarts": n.restarts, "up": n.up,
                         "host": n.host} for n in self.nodes.values()}
