"""The ClusterSupervisor's tree (``actors.distributed.tree``) without processes: spec, deaths, stop order."""

from __future__ import annotations

from arbor.actors.distributed.tree import (
    COORDINATOR,
    ClusterTree,
    Death,
    Escalation,
    cluster_spec,
    worker_id,
)

S = 1_000_000_000


def tree(slots=(0, 1), remote=(), intensity=2, period_s=10.0) -> ClusterTree:
    t = ClusterTree(cluster_spec(slots, remote, intensity, period_s))
    for inc, spec in enumerate(t.start_order(), start=1):
        t.starting(spec.id, inc, address=spec.id, remote=spec.remote)
    return t


def test_spec_lists_the_coordinator_then_the_workers_by_slot():
    """Children start Coordinator first, Workers by slot; each says what its death and escalation mean."""
    spec = cluster_spec((1, 0))
    assert [c.id for c in spec.children] == [COORDINATOR, "worker-0", "worker-1"]
    coord, w0, _ = spec.children
    assert (coord.on_death, coord.on_escalation) == (Death.LATCH_KILL_SWITCH, Escalation.STOP_CLUSTER)
    assert (w0.on_death, w0.on_escalation) == (Death.HALT_SYMBOLS, Escalation.STAY_DOWN)


def test_remote_slots_wait_for_their_host():
    """A slot on a joined host is not among the children started at once."""
    t = ClusterTree(cluster_spec((0, 1), remote_slots=(1,)))
    assert [c.id for c in t.start_order()] == [COORDINATOR, "worker-0"]
    assert [c.id for c in t.start_order(with_remote=True)] == [COORDINATOR, "worker-0", "worker-1"]


def test_started_counts_only_the_current_incarnation():
    """A Started from an older incarnation is ignored; the tree is up once every local child is."""
    t = tree()
    assert t.started("worker-0", 99, "w0", 10, "h", (), 0) is None
    for inc, name in enumerate((COORDINATOR, "worker-0", "worker-1"), start=1):
        assert not t.all_started()
        assert t.started(name, inc, name, 10 + inc, "h", (), 0) is not None
    assert t.all_started()


def test_worker_death_restarts_it_until_its_intensity_then_it_stays_down():
    """A Worker is restarted (its symbols HALTED meanwhile) until it dies more than intensity times in the period."""
    t = tree(intensity=2)
    for k in range(2):
        v = t.died(t.nodes["worker-1"], k * S)
        assert (v.death, v.restart, v.escalated, v.stop) == (Death.HALT_SYMBOLS, True, "", False)
        t.starting("worker-1", 10 + k, address=f"w1#{k}", remote=False)
    v = t.died(t.nodes["worker-1"], 2 * S)
    assert not v.restart and not v.stop and "worker 1 exceeded its restart intensity" in v.escalated
    assert t.exit_status == 1 and t.nodes["worker-1"].restarts == 2


def test_deaths_outside_the_period_do_not_add_up():
    """Intensity is per period: deaths spread wider than period_s keep being restarted."""
    t = tree(intensity=1, period_s=1.0)
    for k in range(5):
        assert t.died(t.nodes["worker-0"], k * 2 * S).restart
        t.starting("worker-0", 10 + k, address=f"w0#{k}", remote=False)
    assert t.exit_status == 0


def test_coordinator_past_its_intensity_stops_the_cluster():
    """The Coordinator's deaths latch the kill switch; past its intensity the whole cluster stops."""
    t = tree(intensity=0)
    v = t.died(t.nodes[COORDINATOR], 0)
    assert v.death is Death.LATCH_KILL_SWITCH and not v.restart and v.stop
    assert v.escalated == "coordinator exceeded its restart intensity: cluster stopped" and t.exit_status == 1
    assert t.stop_escalated


def test_a_lost_remote_host_rehomes_its_slot_here():
    """A remote Worker that died with its host is restarted locally; one that merely died, on its host again."""
    t = tree(slots=(0, 1), remote=(1,))
    t.starting("worker-1", 7, address="w1", remote=True)
    assert t.died(t.nodes["worker-1"], 0, host_lost=True).remote is False
    t.starting("worker-1", 8, address="w1b", remote=False)
    assert t.died(t.nodes["worker-1"], S).remote is True


def test_deaths_while_stopping_are_not_restarts():
    """Once stopping, a death is the stop going on: no restart, no escalation."""
    t = tree(intensity=0)
    t.stopping = True
    v = t.died(t.nodes["worker-0"], 0)
    assert not v.restart and not v.escalated and t.exit_status == 0


def test_stop_goes_in_reverse_start_order():
    """Stop asks every Worker first (highest slot first), the Coordinator only once they are gone."""
    t = tree(slots=(0, 1, 2))
    t.stopping = True
    assert [n.name for n in t.to_stop()] == ["worker-2", "worker-1", "worker-0"]
    for k in range(3):
        t.died(t.nodes[worker_id(k)], 0)
    assert [n.name for n in t.to_stop()] == [COORDINATOR]
    t.died(t.nodes[COORDINATOR], 0)
    assert t.to_stop() == [] and t.all_exited()


def test_find_is_by_address_among_live_nodes():
    """An exited incarnation's address no longer finds it."""
    t = tree()
    assert t.find("worker-0") is t.nodes["worker-0"]
    t.died(t.nodes["worker-0"], 0)
    assert t.find("worker-0") is None
