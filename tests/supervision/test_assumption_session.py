"""The assumption registry in a simulated session (deterministic runtime, seeded market): a broken
assumption moves its symbol to REDUCING, its recovery moves it back, and no entry is approved or
sent in between."""

from __future__ import annotations

from typing import Any

import pytest
from arbor.actors.cluster.simulate import SimulatedCluster
from arbor.config.settings import load_settings
from arbor.messages import (
    ActionApproved,
    AssumptionHealthChanged,
    AssumptionStatus,
    MandateKind,
    PlaceOrder,
    TradingState,
    TradingStateChanged,
)

CALM = {"name": "calm", "observation": "vol_ratio", "max": 1.6, "window_s": 10.0, "min_samples": 5,
        "on_broken": "reduce", "on_recover": "resume"}


def session(seconds: float, **calm: Any) -> SimulatedCluster:
    c = SimulatedCluster(load_settings({"market": {"seed": 42}, "assumptions": [{**CALM, **calm}]}))
    c.run_for(seconds)
    return c


@pytest.fixture(scope="module")
def run() -> SimulatedCluster:
    return session(240)


def spells(c: SimulatedCluster) -> list[tuple[str, int, int | None]]:
    """(symbol, REDUCING at, ACTIVE again at) for each spell the assumptions held a symbol down."""
    out: list[tuple[str, int, int | None]] = []
    for m in c.recorder.of_type(TradingStateChanged):
        if m.who != "assumptions":
            continue
        if m.new is TradingState.REDUCING:
            out.append((m.scope, m.ts_event_ns, None))
        elif m.new is TradingState.ACTIVE:
            i = max(i for i, s in enumerate(out) if s[0] == m.scope)
            out[i] = (m.scope, out[i][1], m.ts_event_ns)
    return out


def test_broken_assumption_reduces_then_recovery_resumes(run: SimulatedCluster) -> None:
    """Some symbol goes to REDUCING when its vol_ratio assumption breaks and back to ACTIVE once it is OK."""
    closed = [s for s in spells(run) if s[2] is not None]
    assert closed, f"no reduce/resume round trip in the session: {spells(run)}"
    changes = run.recorder.of_type(AssumptionHealthChanged)
    for symbol, start, end in closed:
        broke = [c for c in changes if c.symbol == symbol and c.ts_event_ns == start]
        assert broke and broke[0].new is AssumptionStatus.BROKEN and broke[0].value > 1.6
        healed = [c for c in changes if c.symbol == symbol and c.ts_event_ns == end]
        assert healed and healed[0].old is AssumptionStatus.BROKEN and healed[0].new is AssumptionStatus.OK


def test_no_entry_while_held_down(run: SimulatedCluster) -> None:
    """Between REDUCING and ACTIVE again no ENTRY is approved and no opening order is sent for that symbol."""
    envs = run.recorder.emitted_log
    for symbol, start, end in spells(run):
        stop = end if end is not None else run.clock.now_ns() + 1
        for env, _ in envs:
            m = env.payload
            if not start < env.ts_recv_ns < stop or getattr(m, "symbol", None) != symbol:
                continue
            if type(m) is ActionApproved:
                assert m.action.kind is not MandateKind.ENTRY, m
            if type(m) is PlaceOrder:
                assert m.reduce_only, m
    approved_entries = [m for m in run.recorder.of_type(ActionApproved) if m.action.kind is MandateKind.ENTRY]
    assert approved_entries, "the session traded outside the spells"


def test_same_seed_same_health() -> None:
    """The same seed and config give the same assumption health changes, value for value."""
    a = [(m.symbol, m.name, m.new, m.value, m.ts_event_ns) for m in session(120).recorder.of_type(AssumptionHealthChanged)]
    b = [(m.symbol, m.name, m.new, m.value, m.ts_event_ns) for m in session(120).recorder.of_type(AssumptionHealthChanged)]
    assert a and a == b


def test_alert_only_assumption_never_changes_a_state() -> None:
    """The same assumption with on_broken = "alert" breaks just the same but moves no symbol."""
    c = session(120, on_broken="alert")
    assert any(m.new is AssumptionStatus.BROKEN for m in c.recorder.of_type(AssumptionHealthChanged))
    assert spells(c) == []
