"""The ``[cluster]`` section: the multi-process cluster (``bin/start-cluster --workers N``)."""

from __future__ import annotations

import attrs
from arbor.config.errors import ConfigError
from attrs import frozen


@frozen(kw_only=True)
class ClusterConfig:
    workers: int = 0                 # worker processes; 0 = single process (overridden by --workers)
    admin_port: int = 1900           # thespian admin / convention port (never expose it to untrusted networks)
    bind_host: str = "127.0.0.1"     # the address every cluster socket binds; loopback unless multi-host
    remote_workers: int = 0          # of the worker slots, how many (the highest-numbered) run on a joined host
    placement: dict[str, int] = attrs.field(factory=dict)  # SYMBOL = slot, overriding the hash rule
    poll_ms: float = 100.0           # a worker's longest sleep (due frames, ticks, acks, status wake it on time)
    coordinator_poll_ms: float = 100.0  # the same for the Coordinator
    turn_ms: float = 20.0            # a node waits this long for due work in its own poll of the data sockets (0: thespian's)
    feed_budget: int = 512           # market frames a worker handles per poll before reading its mailbox
    link_window: int = 4096          # unacknowledged envelopes in flight per link
    link_batch: int = 256            # envelopes per link batch (one data-plane frame)
    intensity: int = 3               # at most this many restarts of one process ...
    period_s: float = 60.0           # ... within this many seconds, else escalate
    hang_timeout_s: float = 5.0      # a node that misses its 0.25 s heartbeat this long is killed and restarted
    start_timeout_s: float = 30.0
    stop_timeout_s: float = 8.0      # SIGINT/SIGTERM: everything is stopped (stragglers killed) within this
    trace_hops: bool = False         # stamp every hop of each decision (bench/scale.py --hops; see hops.py)

    def validate(self) -> ClusterConfig:
        if self.workers < 0:
            raise ConfigError("cluster.workers", "must be >= 0")
        if not 1 <= self.admin_port <= 65535:
            raise ConfigError("cluster.admin_port", "must be a TCP port")
        if not self.bind_host:
            raise ConfigError("cluster.bind_host", "must be an address (127.0.0.1 for one host)")
        if self.remote_workers < 0 or (self.workers and self.remote_workers >= self.workers):
            raise ConfigError("cluster.remote_workers", "must be >= 0 and leave at least one local worker")
        for sym, slot in self.placement.items():
            if slot < 0 or (self.workers and slot >= self.workers):
                raise ConfigError(f"cluster.placement.{sym}", "must be a worker slot in 0..workers-1")
        for key in ("poll_ms", "coordinator_poll_ms", "period_s", "hang_timeout_s", "start_timeout_s", "stop_timeout_s"):
            if getattr(self, key) <= 0:
                raise ConfigError(f"cluster.{key}", "must be > 0")
        if not 0 <= self.turn_ms <= 1000:
            raise ConfigError("cluster.turn_ms", "must be within 0..1000")
        for key in ("feed_budget", "link_window", "link_batch"):
            if getattr(self, key) < 1:
                raise ConfigError(f"cluster.{key}", "must be >= 1")
        return self
