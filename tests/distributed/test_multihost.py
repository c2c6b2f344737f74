"""Two hosts in network namespaces: a second host joins with --join and runs a worker slot."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from arbor.actors.distributed.placement import assign
from arbor.actors.testing import eventually
from arbor.supervision.procs import alive, kill_all

from tests.distributed.cluster_helpers import SYMBOLS, Cluster, free_port


def _ip(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=10)


@pytest.fixture
def two_hosts():
    """Namespaces A (10.213.0.1) and B (10.213.0.2) joined by a veth pair; removed afterwards."""
    if shutil.which("ip") is None:
        pytest.skip("iproute2 (ip) is not installed")
    tag = uuid.uuid4().hex[:6]
    a, b = f"arbor-a-{tag}", f"arbor-b-{tag}"
    r = _ip("netns", "add", a)
    if r.returncode != 0:
        pytest.skip(f"cannot create network namespaces (needs CAP_SYS_ADMIN): {r.stderr.strip()}")
    try:
        _ip("netns", "add", b)
        steps = [("link", "add", f"va{tag}", "type", "veth", "peer", "name", f"vb{tag}"),
                 ("link", "set", f"va{tag}", "netns", a), ("link", "set", f"vb{tag}", "netns", b),
                 ("-n", a, "addr", "add", "10.213.0.1/24", "dev", f"va{tag}"),
                 ("-n", b, "addr", "add", "10.213.0.2/24", "dev", f"vb{tag}"),
                 ("-n", a, "link", "set", f"va{tag}", "up"), ("-n", b, "link", "set", f"vb{tag}", "up"),
                 ("-n", a, "link", "set", "lo", "up"), ("-n", b, "link", "set", "lo", "up")]
        for s in steps:
            r = _ip(*s)
            if r.returncode != 0:
                pytest.skip(f"cannot set up the veth pair ({' '.join(s)}): {r.stderr.strip()}")
        yield a, b
    finally:
        _ip("netns", "del", a)
        _ip("netns", "del", b)
    assert a not in _ip("netns", "list").stdout


@contextmanager
def leader_and_joiner(tmp_path: Path, two_hosts: tuple[str, str], leader_extra: str = "") -> Iterator[tuple[Cluster, Cluster]]:
    """Host A leads with worker slot 1 left for a joined host; host B joins it with --join. Both are
    cleaned up whatever happens."""
    ns_a, ns_b = two_hosts
    port_a, port_b = free_port(), free_port()
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    leader = Cluster(tmp_path / "a", workers=2, port=port_a, netns=ns_a,
                     extra=f'bind_host = "10.213.0.1"\nremote_workers = 1\n{leader_extra}')
    joiner = None
    try:
        eventually(lambda: {"coordinator", "worker-0"} <= {k.split("#")[0] for k in leader.pids()}, timeout=30)
        joiner = Cluster(tmp_path / "b", workers=0, port=port_b, netns=ns_b,
                         extra='bind_host = "10.213.0.2"', args=("--join", f"10.213.0.1:{port_a}"))
        yield leader, joiner
    finally:
        leader.cleanup()
        if joiner is not None:
            joiner.cleanup()


def test_joined_host_runs_the_remote_worker_slot(tmp_path: Path, two_hosts):
    """The leader (host A) waits for capacity; host B joins with --join and trades worker slot 1's symbols."""
    with leader_and_joiner(tmp_path, two_hosts) as (leader, joiner):
        def remote_trading() -> bool:
            assert leader.proc.poll() is None, leader.err_path.read_text()
            assert joiner.proc.poll() is None, joiner.err_path.read_text()
            return any(e["ev"] == "place" for e in leader.events("worker-1"))

        eventually(remote_trading, timeout=60, interval=0.2)
        # The Coordinator binds beyond loopback: its data plane is CURVE (encrypted, Workers authenticated).
        assert leader.status("coordinator")["data_port"]["curve"] is True
        assert leader.status("worker-1")["data_port"]["frames_in"] > 0
        remote_pid = leader.status("worker-1")["pid"]
        assert remote_pid in joiner.tree(), "worker slot 1 must run in the joined host's process tree"
        code, _, err = leader.stop(signal.SIGTERM)
        assert code == 0, err
        code, _, err = joiner.stop(signal.SIGTERM)
        assert code == 0, err
        eventually(lambda: not [p for p in leader.seen_pids | joiner.seen_pids if alive(p)], timeout=10)


def assert_rehomed_and_recovered(leader: Cluster, remote_pid: int, since_ns: int) -> None:
    """Worker slot 1's symbols went HALTED at Risk on missed heartbeats, the slot runs again on the
    leader, and each symbol recovered without being ACTIVE or approved an entry in between."""
    lost = set(assign([s[0] for s in SYMBOLS], 2)[1])

    def failed() -> set[str]:
        return {e["symbol"] for e in leader.events("coordinator") if e["ev"] == "failed" and e["ts_ns"] >= since_ns}

    # Missed heartbeats (2 s here), not thespian's convention timeout (about 22 minutes).
    eventually(lambda: failed() >= lost, timeout=10, interval=0.05)

    def rehomed() -> bool:
        assert leader.proc.poll() is None, leader.err_path.read_text()
        pid = leader.status("worker-1").get("pid")
        return pid not in (None, remote_pid) and pid in leader.tree()

    eventually(rehomed, timeout=30, interval=0.1)

    def recovered() -> set[str]:
        return {e["symbol"] for e in leader.events("coordinator") if e["ev"] == "recovered" and e["ts_ns"] >= since_ns}

    eventually(lambda: recovered() >= lost, timeout=40, interval=0.1)
    ev = leader.events("coordinator")
    for s in lost:
        back = min(e["ts_ns"] for e in ev if e["ev"] == "recovered" and e["symbol"] == s and e["ts_ns"] >= since_ns)
        assert not [e for e in ev if e["ev"] == "state" and e["scope"] == s and e["new"] == "ACTIVE"
                    and since_ns <= e["ts_ns"] < back]
        assert not [e for e in ev if e["ev"] == "approved" and e["symbol"] == s and e["kind"] == "ENTRY"
                    and since_ns <= e["ts_ns"] < back]
    code, _, err = leader.stop(signal.SIGTERM)
    assert code == 0, err
    eventually(lambda: not [p for p in leader.seen_pids if alive(p)], timeout=10)


def test_lost_host_fails_its_symbols_closed_and_rehomes_them(tmp_path: Path, two_hosts):
    """The joined host vanishes (every process SIGKILLed, as in a power loss): its heartbeats stop, its
    symbols go HALTED at Risk, and its worker slot is restarted on the leader, where they recover."""
    with leader_and_joiner(tmp_path, two_hosts, "hang_timeout_s = 2.0") as (leader, joiner):
        eventually(lambda: leader.status("worker-1").get("pid") in joiner.tree(), timeout=60, interval=0.1)
        remote_pid = leader.status("worker-1")["pid"]
        t_lost = time.time_ns()
        host_b = [joiner.proc.pid, *joiner.tree()]
        kill_all(host_b)
        eventually(lambda: not [p for p in host_b if alive(p)], timeout=5, interval=0.01)
        assert_rehomed_and_recovered(leader, remote_pid, t_lost)


def test_cut_off_host_fences_itself_and_its_slot_is_rehomed(tmp_path: Path, two_hosts):
    """The network between the hosts goes down with both still running: the joined host's worker hears
    no supervisor and exits by itself (it never trades cut off), and the leader re-homes its slot."""
    ns_a, ns_b = two_hosts
    with leader_and_joiner(tmp_path, two_hosts, "hang_timeout_s = 2.0") as (leader, joiner):
        eventually(lambda: leader.status("worker-1").get("pid") in joiner.tree(), timeout=60, interval=0.1)
        remote_pid = leader.status("worker-1")["pid"]
        veth = next(line.split(":")[1].strip().split("@")[0] for line in _ip("-n", ns_b, "-o", "link").stdout.splitlines()
                    if line.split(":")[1].strip().startswith("vb"))
        t_cut = time.time_ns()
        assert _ip("-n", ns_b, "link", "set", veth, "down").returncode == 0
        eventually(lambda: not alive(remote_pid), timeout=10, interval=0.05)
        assert joiner.proc.poll() is None, "the joined host itself stays up"
        fenced = [json.loads(line) for line in (leader.var / "logs" / "worker-1.jsonl").read_text().splitlines()
                  if '"fenced"' in line]
        assert fenced, "the cut-off worker says why it exited"
        assert_rehomed_and_recovered(leader, remote_pid, t_cut)
