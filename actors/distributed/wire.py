"""Control messages between the launcher, the ClusterSupervisor, the Coordinator and the Workers.

These are thespian messages (pickled by thespian between processes); they carry configuration,
addresses, pids and incarnations, never trading messages. Trading traffic crosses only inside
``session.LinkBatch`` as msgpack bytes in the journal's envelope encoding (``messages.codec``),
on the ZeroMQ data plane (``transport.ZmqPort``), never as thespian messages. A ``data`` field
is the Coordinator's endpoint ``(host, port, server_key)`` or a Worker's CURVE key ``(key,)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ClusterPlan:
    """What to run: the merged raw config, the slot of every symbol and where each slot may run."""

    raw_config: dict
    run_id: str
    var_dir: str
    assignment: dict  # slot -> tuple of symbols
    launcher_pid: int
    remote_slots: tuple = ()  # slots that run on a joined host (capability "Arbor Worker Host")
    # SHA-256 (hex) of ARBOR_OPERATOR_TOKEN at launch, "" if none: what an OperatorCommand's token
    # must hash to. Only the digest travels between processes, never the token.
    operator_token_sha256: str = ""


@dataclass(frozen=True)
class StartCoordinator:
    plan: ClusterPlan
    incarnation: int
    supervisor_pid: int
    worker_keys: tuple = ()  # every worker slot's CURVE public key (z85): the data plane accepts these


@dataclass(frozen=True)
class StartWorker:
    plan: ClusterPlan
    slot: int
    incarnation: int
    restarted: bool
    coordinator: Any  # thespian address
    coordinator_incarnation: int
    supervisor_pid: int
    curve_keypair: tuple = ()  # its slot's CURVE (public, secret) keys, z85


@dataclass(frozen=True)
class Started:
    role: str  # "coordinator" | "worker"
    slot: int
    incarnation: int
    pid: int
    host: str
    data: tuple = ()


@dataclass(frozen=True)
class WorkerUp:
    slot: int
    incarnation: int
    address: Any
    restarted: bool
    data: tuple = ()


@dataclass(frozen=True)
class WorkerDown:
    slot: int
    incarnation: int
    reason: str


@dataclass(frozen=True)
class CoordinatorUp:
    incarnation: int
    address: Any
    data: tuple = ()


@dataclass(frozen=True)
class CoordinatorDown:
    incarnation: int


@dataclass(frozen=True)
class ClusterStarted:
    pids: dict  # name -> pid
    supervisor_pid: int
    error: str = ""


@dataclass(frozen=True)
class StatusQuery:
    pass


@dataclass(frozen=True)
class ClusterStatus:
    processes: dict  # name -> {"pid", "incarnation", "restarts", "up"}
    escalated: str = ""  # why the last escalation happened ("" : none)
    stopping: bool = False
    exit_status: int = 0  # the launcher's exit status the escalations so far call for
    stop: bool = False  # an escalation stopped the whole cluster (tree.Escalation.STOP_CLUSTER)


@dataclass(frozen=True)
class OperatorCommand:
    """An operator message for ``receiver`` (codec-encoded ``[tag, body]`` bytes), with the operator
    token: the ClusterSupervisor forwards it only if ``token`` matches the cluster's (``authorized``)."""

    receiver: str
    payload: bytes
    token: str = ""


def token_digest(token: str) -> str:
    """What ``ClusterPlan.operator_token_sha256`` holds for ``token`` ("" for no token)."""
    import hashlib

    return hashlib.sha256(token.encode()).hexdigest() if token else ""


def authorized(plan: ClusterPlan | None, token: str) -> bool:
    """Whether ``token`` is the cluster's operator token; never when the cluster has none (fail closed)."""
    import hmac

    if plan is None or not plan.operator_token_sha256 or not token:
        return False
    return hmac.compare_digest(token_digest(token), plan.operator_token_sha256)


@dataclass(frozen=True)
class Ack:
    detail: str = ""


@dataclass(frozen=True)
class StopCluster:
    pass


@dataclass(frozen=True)
class ClusterStopped:
    pids: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Poke:
    """A periodic nudge down the tree (launcher -> supervisor -> nodes): a process whose timer
    chain stalled (seen with thespian wake-ups) re-arms it on the next message it receives."""


@dataclass(frozen=True)
class Heartbeat:
    """Every node, to the supervisor every 0.25 s from its own thread (``slot`` -1: the Coordinator):
    the supervisor's one liveness signal, on this host or a joined one (a node that stops sending
    is hung or gone). A remote Worker that stops hearing the supervisor (Pokes) fences itself: it
    exits, so it never trades cut off from the cluster."""

    slot: int
    incarnation: int
