"""Risk and the Arbitrator fail for real: the kill switch engages, and Risk's latch survives its restart."""

from __future__ import annotations

from arbor.messages import (
    ActionApproved,
    ActorFailed,
    ActorRestarted,
    EngageKillSwitch,
    KillSwitchEngaged,
    MandateKind,
)

from tests.supervision.helpers import cluster_with, timeline


def test_risk_failure_engages_the_kill_switch_and_restarts_risk() -> None:
    """A Risk handler that raises is restarted and the kill switch engages (who: supervision); no entry is approved after."""
    c = cluster_with([{"actor": "risk", "on_message": 2000}])
    c.run_for(240)
    events = timeline(c)
    failed = [i for i, m in enumerate(events) if isinstance(m, ActorFailed) and m.actor_id == "risk"]
    assert failed
    assert any(isinstance(m, ActorRestarted) and m.actor_id == "risk" for m in events)
    engaged = [m for m in events[failed[0]:] if isinstance(m, KillSwitchEngaged)]
    assert engaged and engaged[0].who == "supervision"
    assert not [m for m in events[failed[0]:] if isinstance(m, ActionApproved) and m.action.kind is MandateKind.ENTRY]
    assert c.logic("risk").status()["kill_switch"]["engaged"]


def test_arbitrator_failure_engages_the_kill_switch() -> None:
    """A failing Arbitrator is restarted and the kill switch engages until an operator resets it."""
    c = cluster_with([{"actor": "arbitrator", "on_message": 300}])
    c.run_for(240)
    events = timeline(c)
    assert any(isinstance(m, ActorRestarted) and m.actor_id == "arbitrator" for m in events)
    assert any(isinstance(m, KillSwitchEngaged) and m.who == "supervision" for m in events)
    assert c.logic("risk").status()["kill_switch"]["engaged"]


def test_risk_restart_keeps_the_operators_latch() -> None:
    """An operator's kill switch stays engaged, with its who and why, across a Risk restart."""
    c = cluster_with([{"actor": "risk", "message_type": "TimerTick", "on_message": 1500}])
    c.run_for(60)
    c.runtime.send_now("risk", EngageKillSwitch(who="ops", reason="drill"))
    c.run_for(180)  # the 1500th tick (150 s) crashes Risk after the latch was set
    events = timeline(c)
    assert any(isinstance(m, ActorRestarted) and m.actor_id == "risk" for m in events)
    ks = c.logic("risk").status()["kill_switch"]
    assert ks["engaged"] and ks["who"] == "ops" and ks["reason"] == "drill"


def test_regression_explorer_risk_crash_on_an_entry_engages_the_latch_before_deciding_it() -> None:
    """Found by the explorer (seeds 1343, 1398, 2254, 2788, 3124, ... 32 of 9,250): Risk raised on
    an ENTRY Action; the restarted Risk got the crashing Action back first (and anything queued
    behind it) and approved it before it handled the ActorFailed that engages the kill switch.
    The kill switch's CancelOpenOrders then reached the executor before the approved entry's
    SubmitOrder, so a new position was opened at the venue with the latch engaged. The restarted
    Risk must hear of its own failure first: the entry is denied by the latch."""
    from arbor.messages import Action, ActionDenied, PlaceOrder

    from tests.supervision.helpers import cluster_with as plain

    probe = plain([])
    probe.run_for(120)
    to_risk = [e.payload for e, r in probe.recorder.emitted_log if isinstance(e.payload, Action) and "risk" in r]
    nth = next(i for i, a in enumerate(to_risk, 1) if a.kind is MandateKind.ENTRY)
    c = cluster_with([{"actor": "risk", "message_type": "Action", "on_message": nth}])
    c.run_for(120)
    events = timeline(c)
    failed = next(i for i, m in enumerate(events) if isinstance(m, ActorFailed) and m.actor_id == "risk")
    crashed = to_risk[nth - 1]
    after = events[failed:]
    assert not [m for m in after if isinstance(m, ActionApproved) and m.action.kind is MandateKind.ENTRY]
    assert not [m for m in after if isinstance(m, PlaceOrder) and not m.reduce_only]
    assert any(isinstance(m, ActionDenied) and m.action.action_id == crashed.action_id and m.reason == "kill_switch"
               for m in after)
