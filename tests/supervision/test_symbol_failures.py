"""Symbol actors fail for real (injected exceptions) and the subtree recovers fail-closed."""

from __future__ import annotations

import pytest
from arbor.messages import (
    ActorFailed,
    PoisonMessageQuarantined,
    RawMarketEvent,
    ReleaseSymbol,
    SymbolQuarantined,
    SymbolRecovered,
)

from tests.supervision.helpers import (
    cluster_with,
    entries_sent,
    failure_window,
    position_matches_venue,
    restarted,
    states,
    timeline,
)

ORDER = ("collector", "feature", "regime", "position", "executor")


@pytest.mark.parametrize("role", ORDER)
def test_failure_restarts_rest_for_one_and_fails_closed(role: str) -> None:
    """A failing child restarts itself and those after it, in order; the symbol is not ACTIVE and sends no entry until recovered."""
    # Position hears only of its own orders, so its fault comes sooner.
    c = cluster_with([{"actor": f"BTCUSDT/{role}", "on_message": 3 if role == "position" else 400}])
    c.run_for(240)
    events = timeline(c)
    assert [m.actor_id for m in events if isinstance(m, ActorFailed)] == [f"BTCUSDT/{role}"]
    assert restarted(events, "BTCUSDT") == list(ORDER[ORDER.index(role):])
    start, end = failure_window(events, "BTCUSDT")
    assert not entries_sent(events[start:end], "BTCUSDT")
    st = states(events, "BTCUSDT")
    assert st[0] in ("HALTED", "REDUCING") and st[-1] == "ACTIVE"
    assert states(events[:start], "BTCUSDT") == []  # nothing moved it before the failure
    assert states(events[end:], "BTCUSDT")[-1:] == ["ACTIVE"]  # ACTIVE only after recovery
    assert position_matches_venue(c, "BTCUSDT")


def test_other_symbols_keep_trading_while_one_recovers() -> None:
    """A failure in one symbol's subtree leaves every other symbol ACTIVE."""
    c = cluster_with([{"actor": "ETHUSDT/feature", "on_message": 300}])
    c.run_for(120)
    events = timeline(c)
    for sym in ("BTCUSDT", "SOLUSDT", "BNBUSDT"):
        assert states(events, sym) == []


def test_market_data_arriving_during_restart_is_not_lost() -> None:
    """With restart backoff, inputs queue while the subtree is down and are delivered after: sequences stay gap-free."""
    c = cluster_with([{"actor": "BTCUSDT/collector", "on_message": 200}],
                     supervision={"backoff_base_ms": 3000, "backoff_max_ms": 3000})
    c.run_for(60)
    seqs = [m.ingest_seq for m in timeline(c) if isinstance(m, RawMarketEvent) and m.symbol == "BTCUSDT"]
    assert seqs == list(range(1, len(seqs) + 1))
    assert c.logic("BTCUSDT/collector").stats()["frames"] + 199 >= len(seqs)


def test_a_message_that_crashes_twice_is_quarantined_as_poison() -> None:
    """The crashing message is retried once after the restart; crashing again, it is set aside."""
    c = cluster_with([{"actor": "BTCUSDT/regime", "on_message": 100}, {"actor": "BTCUSDT/regime", "on_message": 101}])
    c.run_for(120)
    events = timeline(c)
    poison = [m for m in events if isinstance(m, PoisonMessageQuarantined)]
    assert len(poison) == 1 and poison[0].actor_id == "BTCUSDT/regime"
    assert [m for m in events if isinstance(m, SymbolRecovered) and m.symbol == "BTCUSDT"]


def test_intensity_exceeded_quarantines_until_released() -> None:
    """More restarts than the intensity allows quarantines the symbol; only an operator release restarts it."""
    faults = [{"actor": "BTCUSDT/feature", "on_message": n} for n in (100, 150, 200, 250)]
    c = cluster_with(faults, supervision={"intensity": 3, "period_s": 60})
    c.run_for(120)
    events = timeline(c)
    quarantined = [m for m in events if isinstance(m, SymbolQuarantined)]
    assert len(quarantined) == 1 and quarantined[0].symbol == "BTCUSDT"
    assert states(events, "BTCUSDT")[-1] == "HALTED"
    i = events.index(quarantined[0])
    assert not [m for m in events[i:] if isinstance(m, SymbolRecovered) and m.symbol == "BTCUSDT"]
    assert not entries_sent(events[i:], "BTCUSDT")
    c.runtime.send_now("BTCUSDT/supervisor", ReleaseSymbol(symbol="BTCUSDT", who="ops", reason="fixed"))
    c.run_for(120)
    events = timeline(c)
    assert [m for m in events[i:] if isinstance(m, SymbolRecovered) and m.symbol == "BTCUSDT"]
    assert states(events, "BTCUSDT")[-1] == "ACTIVE"


def test_entry_already_queued_for_the_venue_is_refused_when_the_symbol_fails() -> None:
    """An entry order waiting in the venue's mailbox when a sibling actor fails never reaches the venue."""
    from decimal import Decimal

    from arbor.messages import Envelope, OrderRejected, OrderType, PlaceOrder, Side

    c = cluster_with([])
    c.run_for(5)
    d = c.runtime.dispatcher
    place = PlaceOrder(symbol="BTCUSDT", client_order_id="queued-entry", side=Side.BUY, qty=Decimal("0.001"),
                       order_type=OrderType.MARKET, limit_price=None, reduce_only=False, ts_event_ns=0)
    d.mailboxes["BTCUSDT/venue"].append(Envelope(msg_id=10**9, sender="BTCUSDT/executor", receiver="BTCUSDT/venue",
                                                 ts_event_ns=0, ts_recv_ns=0, causation_id=0, payload=place))
    sup = c.runtime.supervision
    assert sup is not None
    sup.supervisor_of("BTCUSDT/feature").failed("BTCUSDT/feature", None, "injected")
    assert not any(e.payload is place for e in d.mailboxes["BTCUSDT/venue"])
    refused = [m for m in c.recorder.of_type(OrderRejected) if m.client_order_id == "queued-entry"]
    assert refused and refused[0].reason == "symbol_recovering"


def test_a_restarted_regime_that_fails_on_the_restored_position_is_supervised() -> None:
    """Suspected behind explorer seed 8313: a restarted Regime learns the position through a
    ``PositionChanged`` the supervisor handed it directly, outside the dispatcher, so a failure on
    it escaped the dispatcher and crashed the run. It goes through the Regime's mailbox: a failure
    there is the Regime's, supervised like any other (restarted, the symbol recovers)."""
    c = cluster_with([{"actor": "BTCUSDT/collector", "on_message": 50},
                      {"actor": "BTCUSDT/regime", "on_message": 1, "message_type": "PositionChanged"}])
    c.run_for(60)
    events = timeline(c)
    assert [m.actor_id for m in events if isinstance(m, ActorFailed)] == ["BTCUSDT/collector", "BTCUSDT/regime"]
    assert restarted(events, "BTCUSDT")[-3:] == ["regime", "position", "executor"]
    assert states(events, "BTCUSDT")[-1:] == ["ACTIVE"]
