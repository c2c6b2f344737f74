"""The multi-process cluster end to end: real processes, real signals, the simulated venue."""

from __future__ import annotations

import json
import os
import signal
import time
from decimal import Decimal
from pathlib import Path

import pytest
from arbor.actors.distributed.latch import read_latch
from arbor.actors.distributed.placement import assign
from arbor.actors.testing import eventually
from arbor.supervision.procs import alive, kill_all

from tests.distributed.cluster_helpers import SYMBOLS, Cluster, stored_positions, stored_venue_positions

NAMES = [s[0] for s in SYMBOLS]


def assert_clean_stop(c: Cluster, sig: int = signal.SIGTERM) -> None:
    known = set(c.tree()) | {v for v in c.pids().values() if v}
    code, out, err = c.stop(sig)
    assert code == 0, err
    eventually(lambda: not [p for p in known | c.seen_pids if alive(p)], timeout=5)


def max_open_positions(events: list[dict]) -> int:
    """The most symbols ever not FLAT at once, in the order Risk saw their position changes."""
    state: dict[str, str] = {}
    worst = 0
    for e in events:
        if e["ev"] == "position":
            state[e["symbol"]] = e["state"]
            worst = max(worst, sum(1 for v in state.values() if v != "FLAT"))
    return worst


def test_two_workers_trade_where_the_rule_says_and_stop_leaving_nothing(cluster):
    """2 workers trade 7 symbols placed by the hash rule; limits hold; loopback only; SIGTERM leaves no process."""
    c = cluster(workers=2, max_positions=2)
    c.wait_started()
    c.wait_trading(workers=2)
    expected = assign(NAMES, 2)
    for k in (0, 1):
        start = next(e for e in c.events(f"worker-{k}") if e["ev"] == "worker_start")
        assert tuple(start["symbols"]) == expected[k]
        placed = {e["symbol"] for e in c.events(f"worker-{k}") if e["ev"] == "place"}
        assert placed <= set(expected[k])
    eventually(lambda: sum(1 for e in c.events("coordinator") if e["ev"] == "position") >= 4, timeout=30, interval=0.1)
    assert max_open_positions(c.events("coordinator")) <= 2
    assert c.non_loopback_listeners() == []
    listeners = c.tree()
    assert len(listeners) >= 5  # admin, logger, supervisor, coordinator, 2 workers
    # kill -USR1 dumps every thread's stack to logs/<process>.stacks and the process carries on.
    pids = c.pids()
    for name in ("supervisor", "coordinator", "worker-0"):
        pid = next(v for k, v in pids.items() if k.split("#")[0] == name)
        (c.var / "logs" / f"{name}.stacks").write_text("")
        os.kill(pid, signal.SIGUSR1)
        stacks = c.var / "logs" / f"{name}.stacks"
        eventually(lambda stacks=stacks: "most recent call first" in stacks.read_text(), timeout=10)
        assert alive(pid)
    assert_clean_stop(c)


def test_sigkill_worker_halts_its_symbols_until_recovered_while_others_trade(cluster):
    """A SIGKILLed worker's symbols go HALTED at once, place no entry until recovered, and come back with
    their positions (equal to the venue's, no order sent twice); the other worker trades on."""
    c = cluster(workers=2)
    c.wait_started()
    c.wait_trading(workers=2)
    mine = set(assign(NAMES, 2)[0])
    others = set(assign(NAMES, 2)[1])
    eventually(lambda: any(st != "FLAT" for st, _ in stored_positions(c.var, "worker-0").values()),
               timeout=30, interval=0.02)  # a position to carry across the kill
    victim = c.pid_of("worker-0")
    frames_before = c.status("worker-1").get("frames", 0)
    t_kill = time.time_ns()
    kill_all([victim])
    eventually(lambda: not alive(victim), timeout=5, interval=0.001)
    at_kill = stored_positions(c.var, "worker-0")  # what the new worker restores (it takes longer to start)

    def failed() -> set[str]:
        return {e["symbol"] for e in c.events("coordinator") if e["ev"] == "failed" and e["ts_ns"] >= t_kill}

    eventually(lambda: failed() >= mine, timeout=5, interval=0.01)
    t_halted = max(e["ts_ns"] for e in c.events("coordinator") if e["ev"] == "failed" and e["symbol"] in mine)
    assert (t_halted - t_kill) / 1e9 < 2.0
    # Risk moved every one of them off ACTIVE at once.
    halted = [e for e in c.events("coordinator") if e["ev"] == "state" and e["ts_ns"] >= t_kill and e["scope"] in mine]
    assert {e["scope"] for e in halted} == mine and all(e["new"] != "ACTIVE" for e in halted[:len(mine)])

    def recovered() -> set[str]:
        return {e["symbol"] for e in c.events("coordinator") if e["ev"] == "recovered" and e["ts_ns"] >= t_kill}

    eventually(lambda: recovered() >= mine, timeout=40, interval=0.1)
    ev = c.events("coordinator")
    back = {s: min(e["ts_ns"] for e in ev if e["ev"] == "recovered" and e["symbol"] == s and e["ts_ns"] >= t_kill)
            for s in mine}
    for s in mine:
        # never ACTIVE between the kill and its recovery
        assert not [e for e in ev if e["ev"] == "state" and e["scope"] == s and e["new"] == "ACTIVE"
                    and t_kill <= e["ts_ns"] < back[s]]
        assert not [e for e in ev if e["ev"] == "approved" and e["symbol"] == s and e["kind"] == "ENTRY"
                    and t_kill <= e["ts_ns"] < back[s]]
        # and no entry order reached its venue meanwhile
        assert not [e for e in c.events("worker-0") if e["ev"] == "place" and e["symbol"] == s
                    and not e["reduce_only"] and t_kill <= e["ts_ns"] < back[s]]
    # the restarted worker started from the positions it had at the kill, not FLAT
    restored = next(e for e in c.events("worker-0") if e["ev"] == "restored" and e["ts_ns"] >= t_kill)
    assert {s: (p["state"], Decimal(p["qty"])) for s, p in restored["positions"].items()} == at_kill
    assert any(st != "FLAT" for st, _ in at_kill.values())
    # the other worker never stopped: its feed ran and none of its symbols left ACTIVE
    assert c.status("worker-1").get("frames", 0) > frames_before
    assert not [e for e in ev if e["ev"] == "state" and e["scope"] in others and e["ts_ns"] >= t_kill]
    assert c.pid_of("worker-0") != victim
    assert_clean_stop(c)
    coids = [e["client_order_id"] for e in c.events("worker-0") if e["ev"] == "place"]
    assert len(coids) == len(set(coids)), "an order was sent twice"
    for k, syms in assign(NAMES, 2).items():
        ours = {s: q for s, (_, q) in stored_positions(c.var, f"worker-{k}").items()}
        assert {s: ours.get(s, 0) for s in syms} == stored_venue_positions(c.var, f"worker-{k}", syms)


def test_sigkill_coordinator_latches_kill_switch_across_restart(cluster):
    """A SIGKILLed Coordinator is restarted with the kill switch engaged, and no entry is approved after."""
    c = cluster(workers=2)
    c.wait_started()
    c.wait_trading(workers=2)
    victim = c.pid_of("coordinator")
    t_kill = time.time_ns()
    kill_all([victim])
    eventually(lambda: len([e for e in c.events("coordinator") if e["ev"] == "coordinator_start"]) >= 2, timeout=10)
    eventually(lambda: c.status("coordinator").get("pid") not in (None, victim)
               and c.status("coordinator")["risk"]["kill_switch"]["engaged"], timeout=10)
    assert read_latch(c.var)["engaged"]
    # workers re-announce their positions to the new Risk and keep running; entries stay refused
    eventually(lambda: c.status("coordinator")["link"]["receiver"]["delivered"] > 0, timeout=10)
    deadline = time.monotonic() + 3
    eventually(lambda: time.monotonic() > deadline, timeout=5, interval=0.1)
    assert not [e for e in c.events("coordinator") if e["ev"] == "approved" and e["kind"] == "ENTRY"
                and e["ts_ns"] > t_kill]
    assert c.status("coordinator")["risk"]["kill_switch"]["engaged"]
    assert_clean_stop(c)


OPERATOR_TOKEN = "cluster-operator-token-0123456789"


def test_operator_kill_switch_holds_across_workers(cluster):
    """An operator kill switch stops entries on every worker; it survives until an explicit reset."""
    c = cluster(workers=2, env={"ARBOR_OPERATOR_TOKEN": OPERATOR_TOKEN})
    c.wait_started()
    c.wait_trading(workers=2)
    r = c.ctl("kill", "--reason", "drill", token=OPERATOR_TOKEN)
    assert r.returncode == 0, r.stderr
    eventually(lambda: any(e["ev"] == "kill" for e in c.events("coordinator")), timeout=5)
    t_kill = next(e["ts_ns"] for e in c.events("coordinator") if e["ev"] == "kill")
    deadline = time.monotonic() + 3
    eventually(lambda: time.monotonic() > deadline, timeout=5, interval=0.1)
    assert not [e for e in c.events("coordinator") if e["ev"] == "approved" and e["kind"] == "ENTRY"
                and e["ts_ns"] > t_kill]
    assert read_latch(c.var)["engaged"]
    r = c.ctl("reset", "--reason", "drill over", token=OPERATOR_TOKEN)
    assert r.returncode == 0, r.stderr
    eventually(lambda: not read_latch(c.var)["engaged"], timeout=5)
    st = json.loads(c.ctl("status").stdout)
    assert st["processes"]["coordinator"]["up"]
    assert_clean_stop(c)


def test_ctl_kill_and_reset_need_the_operator_token(cluster):
    """Over the admin port, kill and reset without the cluster's token (or with a wrong one) change nothing."""
    c = cluster(workers=1, env={"ARBOR_OPERATOR_TOKEN": OPERATOR_TOKEN})
    c.wait_started(workers=1)
    assert c.ctl("kill", "--reason", "drill", token="wrong-token-wrong-token-0123").returncode == 1
    assert c.ctl("kill", "--reason", "drill").returncode == 2  # ctl has no token to send
    assert c.ctl("kill", "--reason", "drill", token=OPERATOR_TOKEN).returncode == 0
    eventually(lambda: read_latch(c.var)["engaged"], timeout=5)
    assert c.ctl("reset", "--reason", "\u200b", token=OPERATOR_TOKEN).returncode == 2
    assert c.ctl("reset", "--reason", "no token", token="wrong-token-wrong-token-0123").returncode == 1
    deadline = time.monotonic() + 1
    eventually(lambda: time.monotonic() > deadline, timeout=3, interval=0.1)
    assert read_latch(c.var)["engaged"]
    assert_clean_stop(c)


def test_second_start_on_the_same_state_directory_is_refused(cluster, tmp_path: Path):
    """One instance per state directory: a second start exits 1 with a clear message."""
    c = cluster(workers=1)
    c.wait_started(workers=1)
    second = Cluster(tmp_path, workers=1, var=c.var)
    code = second.proc.wait(30)
    err = second.err_path.read_text()
    second.cleanup()
    assert code == 1 and "another cluster is running with state directory" in err
    assert_clean_stop(c)


@pytest.mark.parametrize("victim", ["worker-0", "coordinator", "supervisor"])
def test_sigkill_of_any_process_then_shutdown_leaves_nothing(cluster, victim: str):
    """After a SIGKILL of a worker, the coordinator or the supervisor, a SIGTERM still leaves no process."""
    c = cluster(workers=2)
    c.wait_started()
    known = set(c.tree()) | set(c.pids().values())
    pid = c.pids()["supervisor"] if victim == "supervisor" else c.pid_of(victim)
    kill_all([pid])
    eventually(lambda: not alive(pid), timeout=5)
    if victim != "supervisor":
        eventually(lambda: c.live_pid(victim) not in (None, pid), timeout=15)
    c.tree()
    if c.proc.poll() is None:
        c.stop(signal.SIGTERM)
    eventually(lambda: not [p for p in known | c.seen_pids if alive(p)], timeout=5)


def test_hung_worker_misses_its_heartbeat_and_is_replaced(cluster):
    """A worker whose thread stops (SIGSTOP) is killed by the supervisor and restarted; its symbols go HALTED."""
    c = cluster(workers=2, extra="hang_timeout_s = 1.5")
    c.wait_started()
    victim = c.pid_of("worker-1")
    t0 = time.time_ns()
    kill_all([victim], signal.SIGSTOP)
    eventually(lambda: c.live_pid("worker-1") not in (None, victim), timeout=15, interval=0.05)
    mine = set(assign(NAMES, 2)[1])
    eventually(lambda: {e["symbol"] for e in c.events("coordinator") if e["ev"] == "failed" and e["ts_ns"] >= t0}
               >= mine, timeout=5)
    assert not alive(victim)
    assert_clean_stop(c)


def test_coordinator_past_its_intensity_stops_the_cluster_with_status_1(cluster):
    """The spec's escalation for the Coordinator: past its intensity (0 here) the whole cluster stops and the launcher exits 1."""
    c = cluster(workers=1, extra="intensity = 0")
    c.wait_started(workers=1)
    kill_all([c.pid_of("coordinator")])
    c.proc.wait(timeout=30)
    err = c.err_path.read_text()
    assert c.proc.returncode == 1, err
    assert "coordinator exceeded its restart intensity: cluster stopped" in err
    assert read_latch(c.var)["engaged"]  # fail closed: the latch stays engaged for the next start
