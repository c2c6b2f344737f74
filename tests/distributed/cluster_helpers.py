"""Starting, observing and stopping a real multi-process cluster in tests."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

from arbor.actors.testing import eventually
from arbor.supervision.procs import alive, descendants, kill_all, listening, wait_gone

from tests.conftest import REPO_ROOT

SYMBOLS = [("BTCUSDT", "trend_following", "60000", "0.1", "0.001"), ("ETHUSDT", "mean_reversion", "3000", "0.01", "0.001"),
           ("SOLUSDT", "trend_following", "150", "0.01", "0.1"), ("BNBUSDT", "mean_reversion", "550", "0.01", "0.01"),
           ("XRPUSDT", "mean_reversion", "0.6", "0.0001", "1"), ("DOGEUSDT", "trend_following", "0.15", "0.00001", "1"),
           ("ADAUSDT", "mean_reversion", "0.45", "0.0001", "1")]


def stored_positions(var: Path, node: str) -> dict[str, tuple[str, Decimal]]:
    """(state, signed qty) of each position in a node's store, read without writing to it."""
    path = var / "state" / node / "arbor.sqlite"
    if not path.exists():
        return {}
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        rows = conn.execute("SELECT symbol, state, direction, qty FROM positions").fetchall()
    finally:
        conn.close()
    return {s: (st, Decimal(q) * (-1 if d == "SHORT" else 1)) for s, st, d, q in rows}


def stored_venue_positions(var: Path, node: str, symbols: tuple[str, ...]) -> dict[str, Decimal]:
    """The paper venue's position of each symbol in a node's store (0 if it has none); only once the node is gone."""
    from arbor.actors.distributed.nodes import node_store_path
    from arbor.adapters.sim.paper import PaperVenueSnapshot
    from arbor.supervision.store import StateStore

    store = StateStore(node_store_path(var, node))
    try:
        snaps = {s: store.get(f"venue:{s}", PaperVenueSnapshot) for s in symbols}
    finally:
        store.close()
    return {s: snap.pos_qty if snap is not None else Decimal(0) for s, snap in snaps.items()}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fast_config(tmp: Path, port: int, extra: str = "", max_positions: int = 3, events_per_s: int = 50) -> Path:
    text = f"""
[run]
summary_interval_s = 1.0
[feature]
bucket_ms = 200
min_samples = 5
short_window = 5
long_window = 20
[regime]
decision_interval_ms = 200
confirm_cycles = 1
[arbitrator]
max_concurrent_positions = {max_positions}
[cluster]
admin_port = {port}
{extra}
"""
    for sym, strat, price, tick, step in SYMBOLS:
        text += (f'[[symbols]]\nsymbol = "{sym}"\nstrategy = "{strat}"\nstart_price = "{price}"\n'
                 f'tick_size = "{tick}"\nqty_step = "{step}"\nevents_per_s = {events_per_s}\n')
    path = tmp / "cluster.toml"
    path.write_text(text)
    return path


class Cluster:
    """A ``start-cluster --workers N`` process and its var directory."""

    def __init__(self, tmp: Path, workers: int = 2, extra: str = "", max_positions: int = 3,
                 args: tuple[str, ...] = (), netns: str | None = None, var: Path | None = None,
                 port: int | None = None, env: dict[str, str] | None = None,
                 config: Callable[[int], Path] | None = None) -> None:
        """``config(admin_port)`` writes the run's config file (default: ``fast_config``'s simulated symbols)."""
        self.port = port or free_port()
        self.var = var or tmp / "var"
        self.config = config(self.port) if config is not None else fast_config(tmp, self.port, extra, max_positions)
        cmd = [sys.executable, "-m", "arbor.actors.cluster.main", "--config", str(self.config), "--var-dir", str(self.var),
               "--quiet", *args]
        if workers:
            cmd += ["--workers", str(workers)]
        if netns:
            cmd = ["ip", "netns", "exec", netns, *cmd]
        env = {**{k: v for k, v in os.environ.items() if not k.startswith("ARBOR__")}, **(env or {})}
        # Files, not pipes: nothing of the cluster can ever block on a full pipe nobody reads.
        self.out_path, self.err_path = tmp / f"stdout.{self.port}", tmp / f"stderr.{self.port}"
        self._files = (open(self.out_path, "w"), open(self.err_path, "w"))  # noqa: SIM115 -- the child writes to them; stop() closes them
        self.proc = subprocess.Popen(cmd, cwd=REPO_ROOT, stdout=self._files[0], stderr=self._files[1], text=True,
                                     env=env, start_new_session=True)
        self.seen_pids: set[int] = {self.proc.pid}

    # -- observation ------------------------------------------------------------------------
    def status(self, name: str) -> dict:
        try:
            return json.loads((self.var / "cluster" / "status" / f"{name}.json").read_text())
        except (OSError, ValueError):
            return {}

    def events(self, name: str) -> list[dict]:
        try:
            lines = (self.var / "cluster" / "events" / f"{name}.jsonl").read_text().splitlines()
        except OSError:
            return []
        out = []
        for line in lines:
            with contextlib.suppress(ValueError):  # a line being written
                out.append(json.loads(line))
        return out

    def pids(self) -> dict[str, int]:
        try:
            data = json.loads((self.var / "cluster" / "pids.json").read_text())
        except (OSError, ValueError):
            return {}
        self.seen_pids.update(v for v in data.values() if v)
        return data

    def tree(self) -> list[int]:
        pids = descendants(self.proc.pid)
        self.seen_pids.update(pids)
        return pids

    def live_pid(self, prefix: str) -> int | None:
        cands = [(k, v) for k, v in self.pids().items() if k.split("#")[0] == prefix and alive(v)]
        return sorted(cands)[-1][1] if cands else None

    def pid_of(self, prefix: str) -> int:
        """The live pid of ``coordinator`` / ``worker-K`` (latest incarnation)."""
        cands = [(k, v) for k, v in self.pids().items() if k.split("#")[0] == prefix and alive(v)]
        assert cands, f"no live {prefix} in {self.pids()}"
        return sorted(cands)[-1][1]

    def wait_started(self, workers: int = 2, timeout: float = 30.0) -> None:
        """The coordinator and ``workers`` workers reported their pids and wrote a status."""
        def ok() -> bool:
            assert self.proc.poll() is None, self.err_path.read_text()
            names = {k.split("#")[0] for k in self.pids()}
            return {"coordinator", *(f"worker-{k}" for k in range(workers))} <= names and bool(
                self.status("coordinator"))
        eventually(ok, timeout=timeout, interval=0.05)

    def wait_trading(self, workers: int = 2, timeout: float = 40.0) -> None:
        """Every worker has sent at least one entry order to its venue."""
        def ok() -> bool:
            assert self.proc.poll() is None, self.err_path.read_text()
            return all(any(e["ev"] == "place" and not e["reduce_only"] for e in self.events(f"worker-{k}"))
                       for k in range(workers))
        eventually(ok, timeout=timeout, interval=0.1)

    def ctl(self, *args: str, token: str | None = None) -> subprocess.CompletedProcess:
        """``bin/ctl`` against this cluster, with ``token`` as ARBOR_OPERATOR_TOKEN (none if None)."""
        env = {k: v for k, v in os.environ.items() if k != "ARBOR_OPERATOR_TOKEN"}
        if token is not None:
            env["ARBOR_OPERATOR_TOKEN"] = token
        return subprocess.run([sys.executable, "-m", "arbor.actors.distributed.ctl", "--admin-port", str(self.port), *args],
                              cwd=REPO_ROOT, capture_output=True, text=True, timeout=30, env=env)

    def non_loopback_listeners(self) -> list[tuple[str, int, int]]:
        return [x for x in listening(self.tree()) if not (x[0].startswith("127.") or x[0] == "::1")]

    # -- stop -------------------------------------------------------------------------------
    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> tuple[int, str, str]:
        self.tree()
        self.pids()
        self.proc.send_signal(sig)
        self.proc.wait(timeout=timeout)
        return self.proc.returncode, self.out_path.read_text(), self.err_path.read_text()

    def cleanup(self) -> None:
        """Never leave anything behind, whatever the test did."""
        if self.proc.poll() is None:
            self.tree()
            kill_all([self.proc.pid])
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(10)
        left = [p for p in self.seen_pids if alive(p)]
        kill_all(left)
        wait_gone(left, 5)
        for f in self._files:
            f.close()

    def survivors(self) -> list[int]:
        return [p for p in self.seen_pids if alive(p)]
