"""Node state across a process restart: the cores driven directly, no thespian.

A "kill" drops a core without closing it, as SIGKILL would: only what its store committed
survives. The persister's writer thread is not started here (``no_writer_thread``), so what is
committed is decided by the test: the write-aheads always, the queued writes only when the test
flushes them (the writer ran before the kill) and never otherwise (the kill beat the writer).
"""

from __future__ import annotations

import json
import time
from dataclasses import replace
from decimal import Decimal as D
from pathlib import Path
from typing import Any

import attrs
import pytest
from arbor.actors.cluster.build import market_frames
from arbor.actors.distributed.coordinator import CoordinatorCore
from arbor.actors.distributed.latch import write_latch
from arbor.actors.distributed.nodes import Node, node_store_path
from arbor.actors.distributed.worker import WorkerCore
from arbor.config.settings import load_settings
from arbor.messages import (
    Action,
    ActionApproved,
    Direction,
    Mandate,
    MandateKind,
    MandateSet,
    MarketEventKind,
    PositionState,
    RawMarketEvent,
    Regime,
    evolve_message,
    message_fields,
)
from arbor.supervision.group import Health
from arbor.supervision.persist import StatePersister

RUN = "20261130T000000-1"
BTC, ETH, SOL = "BTCUSDT", "ETHUSDT", "SOLUSDT"
MINE = (BTC, ETH)  # worker 0; SOL is worker 1's
SYMBOL = {"start_price": "100", "tick_size": "0.1", "qty_step": "0.001", "events_per_s": 50}
SETTINGS = load_settings({
    "market": {"paced": False},
    "paper": {"latency_ms": 0},  # the venue answers within the handler that asks it
    "position": {"entry_order_type": "LIMIT"},
    "feature": {"bucket_ms": 200, "min_samples": 5, "short_window": 5, "long_window": 20},
    "regime": {"decision_interval_ms": 200, "confirm_cycles": 1},
    "symbols": [{"symbol": s, **SYMBOL} for s in (BTC, ETH, SOL)],
})


_LIVE: list[Node] = []


@pytest.fixture(autouse=True)
def no_writer_thread(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setattr(StatePersister, "start", lambda self: None)
    yield
    while _LIVE:
        _LIVE.pop().close()


def worker(var: Path, incarnation: int, restarted: bool, run_id: str = RUN, market: Any = market_frames) -> WorkerCore:
    w = WorkerCore(SETTINGS, run_id, str(var), 0, incarnation, MINE, restarted, 1, market=market)
    _LIVE.append(w)
    return w


def coordinator(var: Path, incarnation: int) -> CoordinatorCore:
    c = CoordinatorCore(SETTINGS, RUN, str(var), incarnation, {0: MINE, 1: (SOL,)})
    _LIVE.append(c)
    return c


def kill(node: Node) -> None:
    """SIGKILL: queued writes die with the process; the OS closes its files."""
    _LIVE.remove(node)
    node.store.close()
    node.events.close()


def close(node: Node) -> None:
    _LIVE.remove(node)
    node.close()


def send(node: Node, receiver: str, msg: Any, sender: str) -> None:
    node.injector.external(receiver, msg, sender)
    node.d.run()


def quote(w: WorkerCore, symbol: str, bid: str, ask: str, ask_qty: str) -> None:
    now = time.time_ns()
    send(w, f"{symbol}/venue", RawMarketEvent(symbol=symbol, venue="sim", ingest_seq=1, ts_event_ns=now, ts_recv_ns=now,
                                              kind=MarketEventKind.QUOTE, raw=b"", bid_price=D(bid), bid_qty=D("1"),
                                              ask_price=D(ask), ask_qty=D(ask_qty)), f"{symbol}/collector")


def approve_entry(w: WorkerCore, symbol: str, cycle: int, qty: str, price: str) -> ActionApproved:
    now = time.time_ns()
    action = Action(action_id=f"{RUN}:{symbol}:{cycle}", symbol=symbol, cycle=cycle, kind=MandateKind.ENTRY,
                    direction=Direction.LONG, qty=D(qty), mark_price=D(price), data_ts_ns=now, ts_event_ns=now,
                    reason="test")
    msg = ActionApproved(symbol=symbol, action=action, ts_event_ns=now)
    send(w, f"{symbol}/position", msg, "risk")
    return msg


def open_with_resting_order(w: WorkerCore) -> ActionApproved:
    """BTC: a LIMIT buy of 0.010 at the ask finds 0.004 there: a position of 0.004, 0.006 resting."""
    quote(w, BTC, "99.9", "100.0", "0.004")
    approved = approve_entry(w, BTC, 7, "0.010", "100.0")
    assert logic(w, BTC, "position").snapshot().qty == D("0.004")
    assert logic(w, BTC, "venue").open_orders()
    return approved


def logic(node: Node, symbol: str, role: str) -> Any:
    a = node.d.actors[f"{symbol}/{role}"]
    return getattr(a, "inner", a)


def health(w: WorkerCore) -> dict[str, Health]:
    return {s.symbol: s.health for s in w.hooks.supervisors if hasattr(s, "symbol")}


def events(var: Path, node: str) -> list[dict]:
    return [json.loads(line) for line in (var / "cluster" / "events" / f"{node}.jsonl").read_text().splitlines()]


def orders_received(w: WorkerCore, symbol: str) -> int:
    """Orders this incarnation's venue was sent (a restored venue counts from zero)."""
    return logic(w, symbol, "venue").stats()["orders"]


def warm_up(w: WorkerCore, max_frames: int = 20_000) -> None:
    """Feed the worker's market until every symbol is RUNNING again (bounded by frames, not time)."""
    fed = 0
    while any(h is not Health.RUNNING for h in health(w).values()):
        assert fed < max_frames, f"not recovered after {fed} frames: {w.hooks.status()}"
        w.feed(budget=64)
        fed += 64


def pump(coord: CoordinatorCore, *workers: WorkerCore) -> None:
    """Carry link traffic both ways until neither side has anything to send."""
    by_link = {w.name: w for w in workers}
    for _ in range(100):
        moved = False
        for w in workers:
            for _, batch in w.due():
                moved = True
                ack = coord.on_batch(batch)
                if ack is not None:
                    w.on_ack(ack)
        for peer, batch in coord.due():
            moved = True
            to = by_link.get(peer)
            ack = to.on_batch(batch) if to is not None else None
            if ack is not None:
                coord.on_ack(ack)
        if not moved:
            return
    raise AssertionError("link traffic did not settle")


def first_worker_gone(coord: CoordinatorCore, var: Path, end: Any) -> None:
    """Worker 0's incarnation 11 announces itself to ``coord``, then its process ends (``end``:
    ``kill`` or ``close``) and ``coord`` hears of it."""
    w = worker(var, 11, restarted=False)
    coord.worker_up(0, 11)
    pump(coord, w)
    end(w)
    coord.worker_down(0, 11, "process exited")


# -- worker -----------------------------------------------------------------------------------
def test_killed_worker_comes_back_with_its_position_orders_and_venue_records(tmp_path: Path) -> None:
    """A worker killed with a position and a resting order restarts with both, and the venue's records, as they were."""
    w1 = worker(tmp_path, 1, restarted=False)
    open_with_resting_order(w1)
    before = {role: logic(w1, BTC, role).snapshot() for role in ("position", "executor", "venue")}
    w1.persister.flush()  # the writer thread ran before the kill
    kill(w1)

    w2 = worker(tmp_path, 2, restarted=True)
    assert sorted(w2.restored) == sorted(f"{BTC}/{r}" for r in ("position", "executor", "venue"))
    assert logic(w2, BTC, "position").snapshot() == before["position"]
    assert logic(w2, BTC, "venue").snapshot() == before["venue"]
    orders = {o.client_order_id: (o.status, o.filled_qty) for o in logic(w2, BTC, "executor").snapshot().orders}
    assert orders == {o.client_order_id: (o.status, o.filled_qty) for o in before["executor"].orders}
    assert logic(w2, BTC, "venue").venue_position().qty == D("0.004")


def test_restarted_worker_reconciles_none_and_sends_no_order_twice(tmp_path: Path) -> None:
    """Reconciliation against the restored venue finds nothing to fix, and no order reaches the venue twice."""
    w1 = worker(tmp_path, 1, restarted=False)
    approved = open_with_resting_order(w1)
    assert orders_received(w1, BTC) == 1
    w1.persister.flush()
    kill(w1)

    w2 = worker(tmp_path, 2, restarted=True)
    stats = logic(w2, BTC, "executor").stats()
    assert stats["reconciliations"] == 1 and stats["last_reconcile_outcome"] == "NONE"
    warm_up(w2)
    send(w2, f"{BTC}/position", approved, "risk")  # the same approval again: nothing new is sent
    assert orders_received(w2, BTC) == 0
    assert len(logic(w2, BTC, "venue").snapshot().orders) == 1
    pos = logic(w2, BTC, "position").snapshot()
    assert pos.signed_qty == logic(w2, BTC, "venue").venue_position().qty


def test_restarted_worker_refuses_entries_until_symbol_recovered(tmp_path: Path) -> None:
    """Every symbol of a restarted worker stays RECOVERING, its entries refused, until reconciled and warm."""
    w1 = worker(tmp_path, 1, restarted=False)
    open_with_resting_order(w1)
    w1.persister.flush()
    kill(w1)

    w2 = worker(tmp_path, 2, restarted=True)
    assert health(w2) == {BTC: Health.RECOVERING, ETH: Health.RECOVERING}
    quote(w2, ETH, "99.9", "100.0", "1")
    approve_entry(w2, ETH, 3, "0.010", "100.0")
    assert w2.hooks.status()[f"{ETH}/supervisor"]["entries_blocked"] == 1
    assert logic(w2, ETH, "position").snapshot().state is PositionState.FLAT
    assert orders_received(w2, ETH) == 0
    assert health(w2) == {BTC: Health.RECOVERING, ETH: Health.RECOVERING}  # reconciled, not warm yet
    warm_up(w2)
    assert health(w2) == {BTC: Health.RUNNING, ETH: Health.RUNNING}


def test_kill_before_the_writer_ran_keeps_position_equal_to_venue(tmp_path: Path) -> None:
    """Killed with only the write-ahead and the venue's records committed, it still recovers to the venue's position."""
    w1 = worker(tmp_path, 1, restarted=False)
    open_with_resting_order(w1)
    kill(w1)  # the queued writes (the fill at the executor and the position) are lost

    w2 = worker(tmp_path, 2, restarted=True)
    pos, venue = logic(w2, BTC, "position").snapshot(), logic(w2, BTC, "venue").venue_position()
    assert pos.state is PositionState.ENTERING and pos.signed_qty == venue.qty == D("0.004")
    assert logic(w2, BTC, "executor").stats()["last_reconcile_outcome"] == "NONE"
    warm_up(w2)
    assert all(n == 0 for n in w2.hooks.status()[f"{BTC}/supervisor"]["restarts"].values())
    assert logic(w2, BTC, "position").snapshot().signed_qty == logic(w2, BTC, "venue").venue_position().qty
    assert orders_received(w2, BTC) == 0 and len(logic(w2, BTC, "venue").snapshot().orders) == 1


def test_corrupt_worker_store_is_quarantined_and_the_worker_recovers_degraded(tmp_path: Path) -> None:
    """A garbage store is moved aside; the restarted worker starts empty, degraded, and still recovers."""
    path = node_store_path(tmp_path, "worker-0")
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not a database" * 100)

    w = worker(tmp_path, 2, restarted=True)
    assert w.store.degraded and w.restored == []
    assert list(path.parent.glob("arbor.sqlite.corrupted.*"))
    assert w.status()["store"]["degraded"]
    assert [e for e in events(tmp_path, "worker-0") if e["ev"] == "store_degraded"]
    assert logic(w, BTC, "executor").stats()["last_reconcile_outcome"] == "NONE"
    warm_up(w)


def test_store_of_another_run_is_set_aside_not_restored(tmp_path: Path) -> None:
    """A worker of a new run (a remote one starts as restarted) never picks up a previous run's positions."""
    w1 = worker(tmp_path, 1, restarted=False, run_id="previous-run")
    open_with_resting_order(w1)
    close(w1)

    w2 = worker(tmp_path, 2, restarted=True)
    assert w2.restored == []
    assert logic(w2, BTC, "position").snapshot().state is PositionState.FLAT
    assert logic(w2, BTC, "venue").venue_position().qty == 0
    assert node_store_path(tmp_path, "worker-0").with_name("arbor.sqlite.previous").exists()


def test_clean_close_commits_everything_queued(tmp_path: Path) -> None:
    """Closing a worker writes what was still queued: a restart from it restores the latest state."""
    w1 = worker(tmp_path, 1, restarted=False)
    open_with_resting_order(w1)
    pos = logic(w1, BTC, "position").snapshot()
    close(w1)
    w2 = worker(tmp_path, 2, restarted=True)
    assert logic(w2, BTC, "position").snapshot() == pos


def test_worker_writes_each_closed_round_trip_to_the_trade_log(tmp_path: Path) -> None:
    """A Worker's round trip (entry approved over the link, filled, exited) is one line of <var>/trades.jsonl, as in one process."""
    w = worker(tmp_path, 1, restarted=False)
    quote(w, BTC, "99.9", "100.0", "1")
    approve_entry(w, BTC, 7, "0.004", "100.0")
    assert logic(w, BTC, "position").snapshot().state is PositionState.OPEN
    now = time.time_ns()
    exit_ = Action(action_id=f"{RUN}:{BTC}:8", symbol=BTC, cycle=8, kind=MandateKind.EXIT, direction=Direction.LONG,
                   qty=D("0.004"), mark_price=D("99.9"), data_ts_ns=now, ts_event_ns=now, reason="take profit")
    send(w, f"{BTC}/position", ActionApproved(symbol=BTC, action=exit_, ts_event_ns=now), "risk")
    assert logic(w, BTC, "position").snapshot().state is PositionState.FLAT
    (line,) = [json.loads(x) for x in (tmp_path / "trades.jsonl").read_text().splitlines()]
    assert line["symbol"] == BTC and line["side"] == "LONG" and line["size"] == "0.004"
    assert line["entry_mandate"] == "test" and line["exit_reason"] == "take profit"


# -- coordinator ------------------------------------------------------------------------------
def test_risk_holds_a_restarted_workers_symbols_halted_until_recovered(tmp_path: Path) -> None:
    """Risk keeps a killed worker's symbols HALTED, learns the restored positions, and releases them on SymbolRecovered."""
    c = coordinator(tmp_path, 1)
    w1 = worker(tmp_path, 11, restarted=False)
    c.worker_up(0, 11)
    open_with_resting_order(w1)
    pump(c, w1)
    w1.persister.flush()
    kill(w1)
    c.worker_down(0, 11, "process exited")

    w2 = worker(tmp_path, 12, restarted=True)
    c.worker_up(0, 12)
    pump(c, w2)
    risk = c.status()["risk"]["symbols"]
    assert {s: risk[s]["state"] for s in MINE} == {BTC: "HALTED", ETH: "HALTED"}
    assert risk[BTC]["qty"] == "0.004"  # the restored position, re-announced
    warm_up(w2)
    pump(c, w2)
    risk = c.status()["risk"]["symbols"]
    assert {s: risk[s]["state"] for s in MINE} == {BTC: "ACTIVE", ETH: "ACTIVE"}


def entry_mandate_to(coord: CoordinatorCore, symbol: str, cycle: int) -> None:
    """The Arbitrator hears an ENTRY mandate for ``symbol`` (as from its Regime); Risk approves it."""
    now = time.time_ns()
    ms = MandateSet(symbol=symbol, cycle=cycle, ts_event_ns=now, regime=Regime.TRENDING, strategy="test",
                    mandates=(Mandate(kind=MandateKind.ENTRY, direction=Direction.LONG, size_hint=D("0.01"),
                                      reason="test"),), mark_price=D("100"), data_ts_ns=now)
    send(coord, "arbitrator", ms, f"{symbol}/regime")


def test_reservations_across_worker_loss(tmp_path: Path) -> None:
    """An entry approved for a worker that died before acting on it stops holding exposure and a
    position slot once the restarted worker re-announces the symbol's position."""
    c = coordinator(tmp_path, 1)
    w1 = worker(tmp_path, 11, restarted=False)
    c.worker_up(0, 11)
    pump(c, w1)
    entry_mandate_to(c, BTC, 5)
    st = c.status()
    assert st["risk"]["symbols"][BTC]["notional"] == "100.00", "the entry was approved and reserved"
    assert BTC in st["arbitrator"]["occupied_symbols"]
    kill(w1)  # the approval is still queued on the link: it never reaches the worker
    c.worker_down(0, 11, "process exited")

    w2 = worker(tmp_path, 12, restarted=True)
    c.worker_up(0, 12)
    pump(c, w2)
    st = c.status()
    assert st["risk"]["symbols"][BTC]["notional"] == "0"
    assert st["risk"]["gross_exposure"] == "0"
    assert BTC not in st["arbitrator"]["occupied_symbols"]


def test_restarted_coordinator_restores_risk_and_arbitrator_and_stays_latched(tmp_path: Path) -> None:
    """A killed Coordinator comes back with Risk's and the Arbitrator's books and states, kill switch engaged."""
    c1 = coordinator(tmp_path, 1)
    w = worker(tmp_path, 11, restarted=False)
    c1.worker_up(0, 11)
    c1.worker_up(1, 12)
    open_with_resting_order(w)
    pump(c1, w)
    c1.worker_down(1, 12, "process exited")  # SOL goes HALTED at Risk
    risk = c1.status()["risk"]
    assert risk["symbols"][BTC]["qty"] == "0.004" and risk["symbols"][SOL]["state"] == "HALTED"
    c1.persister.flush()
    kill(c1)
    write_latch(tmp_path, True, "cluster", "coordinator process exited")  # what the ClusterSupervisor does

    c2 = coordinator(tmp_path, 2)
    assert sorted(c2.restored) == ["arbitrator", "risk"]
    st = c2.status()
    assert st["risk"]["kill_switch"]["engaged"]
    assert st["risk"]["symbols"][BTC]["qty"] == "0.004"
    assert st["risk"]["symbols"][SOL]["state"] == "HALTED"  # its worker never came back: still down
    assert BTC in st["arbitrator"]["occupied_symbols"]


def test_restored_risk_learns_of_a_recovery_it_missed(tmp_path: Path) -> None:
    """A symbol that recovered while the Coordinator was down is released by the re-announce, not left HALTED."""
    c1 = coordinator(tmp_path, 1)
    first_worker_gone(c1, tmp_path, kill)
    assert c1.status()["risk"]["symbols"][BTC]["state"] == "HALTED"
    c1.persister.flush()
    kill(c1)
    write_latch(tmp_path, True, "cluster", "coordinator process exited")

    w2 = worker(tmp_path, 12, restarted=True)  # recovers with no Coordinator to tell
    w2.coordinator_down(1)
    warm_up(w2)
    c2 = coordinator(tmp_path, 2)
    assert c2.status()["risk"]["symbols"][BTC]["state"] == "HALTED"
    c2.worker_up(0, 12)
    w2.coordinator_up(2)
    pump(c2, w2)
    risk = c2.status()["risk"]
    assert {s: risk["symbols"][s]["state"] for s in MINE} == {BTC: "ACTIVE", ETH: "ACTIVE"}
    assert risk["kill_switch"]["engaged"]  # released symbols, but nothing trades until an operator reset


def issued_ids(node: Node, n: int = 3) -> list[int]:
    return [node.injector.envelope("risk", None).msg_id for _ in range(n)]


def test_message_ids_grow_across_every_restart(tmp_path: Path) -> None:
    """Each incarnation's message ids lie above every earlier incarnation's, whichever node it is
    (a restarted Coordinator does not start at 1 again; worker incarnations 251 apart do not collide)."""
    runs: list[list[int]] = []
    for make_node in (lambda: coordinator(tmp_path, 1), lambda: worker(tmp_path, 2, restarted=False),
                      lambda: coordinator(tmp_path, 3), lambda: worker(tmp_path, 253, restarted=True)):
        node = make_node()
        runs.append(issued_ids(node))
        close(node)
    for earlier, later in zip(runs, runs[1:], strict=False):
        assert min(later) > max(earlier)


# -- link start-up ----------------------------------------------------------------------------
def test_batches_that_beat_their_worker_up_are_held_and_delivered_once_it_comes(tmp_path: Path) -> None:
    """A restarted worker's first batch can reach the Coordinator before the supervisor's WorkerUp:
    it is held (no ack yet), delivered when WorkerUp comes, and a stale incarnation's never is."""
    c = coordinator(tmp_path, 1)
    first_worker_gone(c, tmp_path, close)

    w2 = worker(tmp_path, 12, restarted=True)  # announces its positions at once
    early = [b for _, b in w2.due()]
    assert early, "a starting worker announces itself"
    assert all(c.on_batch(b) is None for b in early)  # WorkerUp(12) not seen yet: held, not acked
    stale = replace(early[0], epoch=11)
    assert c.on_batch(stale) is None
    delivered = c.receiver.stats.delivered

    c.worker_up(0, 12)
    held = c.take_early(0)
    assert held == early  # in arrival order; the stale incarnation's batch was not kept
    acks = [c.on_batch(b) for b in held]
    assert acks[-1] is not None and acks[-1].upto == early[-1].first_seq + len(early[-1].items) - 1
    assert c.receiver.stats.delivered == delivered + sum(len(b.items) for b in early)
    assert c.take_early(0) == []  # taken once


def test_tick_to_order_runs_from_the_frame_arrival_through_the_causation_chain() -> None:
    """The probe follows frame -> RawMarketEvent -> FeatureSnapshot -> MandateSet -> ActionApproved
    -> SubmitOrder -> PlaceOrder: latency from the frame's arrival, and from the exchange event time."""
    from arbor.actors.cluster.files import EventFile
    from arbor.actors.cluster.probes import WorkerProbe
    from arbor.messages import (
        Envelope,
        FeatureSnapshot,
        MandateSet,
        OrderIntent,
        OrderType,
        PlaceOrder,
        Regime,
        Side,
        SubmitOrder,
        VenuePayload,
    )

    probe = WorkerProbe((BTC,), EventFile(Path("/dev/null")), 1)

    def env(msg_id: int, cause: int, payload: Any, sender: str = "x", recv: int = 0) -> Envelope:
        return Envelope(msg_id=msg_id, sender=sender, receiver="y", ts_event_ns=0, ts_recv_ns=recv,
                        causation_id=cause, payload=payload)

    arrived = time.time_ns() - 2_000_000  # the frame arrived 2 ms ago
    event_ts = arrived - 3_000_000  # the exchange stamped it 3 ms before that
    probe.external(env(1, 0, VenuePayload(venue="sim", symbol=BTC, payload=b"{}"), "feed", recv=arrived))
    ev = RawMarketEvent(venue="sim", symbol=BTC, kind=MarketEventKind.TRADE, ts_event_ns=event_ts, ts_recv_ns=arrived,
                        ingest_seq=1, raw=b"{}", price=D("100"), qty=D("1"))
    plain: dict[Any, Any] = {float: 0.0, int: 0, bool: True, str: BTC}
    snapshot = FeatureSnapshot(**{f.name: plain[f.type if isinstance(f.type, type) else eval(str(f.type))]
                                  for f in message_fields(FeatureSnapshot) if f.default is attrs.NOTHING})
    probe.emitted(env(2, 1, ev), ("BTCUSDT/feature",))
    probe.emitted(env(3, 2, evolve_message(snapshot, ts_event_ns=event_ts)), ("BTCUSDT/regime",))
    probe.emitted(env(4, 3, MandateSet(symbol=BTC, cycle=1, ts_event_ns=event_ts, regime=Regime.TRENDING,
                                       strategy="trend", mandates=(), mark_price=D("100"), data_ts_ns=event_ts)),
                  ("arbitrator",))
    action = Action(action_id="a", symbol=BTC, cycle=1, kind=MandateKind.ENTRY, direction=Direction.LONG,
                    qty=D("1"), mark_price=D("100"), data_ts_ns=event_ts, ts_event_ns=event_ts, reason="test")
    probe.processed("BTCUSDT/position", env(10, 0, ActionApproved(symbol=BTC, action=action, ts_event_ns=0)), 0)
    probe.emitted(env(11, 10, SubmitOrder(symbol=BTC, action_id="a", intent=OrderIntent.ENTRY, side=Side.BUY,
                                          qty=D("1"), order_type=OrderType.MARKET, limit_price=None,
                                          reduce_only=False, ts_event_ns=0)), ("BTCUSDT/executor",))
    before = time.time_ns()
    probe.emitted(env(12, 11, PlaceOrder(symbol=BTC, client_order_id="c1", side=Side.BUY, qty=D("1"),
                                         order_type=OrderType.MARKET, limit_price=None, reduce_only=False,
                                         ts_event_ns=0), "BTCUSDT/executor"), ("BTCUSDT/venue",))
    after = time.time_ns()
    assert probe.arrivals_ns == [arrived]
    assert before - arrived <= probe.latencies_ns[0] <= after - arrived
    assert before - event_ts <= probe.event_latencies_ns[0] <= after - event_ts
    assert probe.rows[BTC]["orders"] == 1


def test_timer_ticks_reach_every_actor_each_interval_one_symbol_at_a_time(tmp_path: Path) -> None:
    """Each actor that wants ticks gets one per ``tick_interval_ms``; the symbols' ticks are spread
    over the interval (never all at once: a decision arriving meanwhile would wait for all of
    them), and a node that looks late ticks every actor that is due."""
    from arbor.messages import TimerTick

    w = worker(tmp_path / "var", 1, False)
    got: list[tuple[float, str]] = []
    deliver = w.d.deliver
    now = [0.0]

    def spy(env: Any) -> None:
        if type(env.payload) is TimerTick:
            got.append((now[0], env.receiver))
        deliver(env)

    w.d.deliver = spy  # type: ignore[method-assign]  # the spy wraps the real method
    receivers = set(w.d.tick_receivers)
    assert {a.split("/")[0] for a in receivers} == set(MINE)
    interval = w.tick_interval_s
    start = w.next_tick_at
    steps = 200
    for k in range(5 * steps):  # five intervals, looked at 200 times each
        now[0] = start + k * interval / steps
        w.maybe_tick(now[0])
    per_actor = {a: sum(1 for _, r in got if r == a) for a in receivers}
    assert set(per_actor.values()) == {5}, per_actor
    instants: dict[float, set[str]] = {}
    for t, r in got:
        instants.setdefault(t, set()).add(r.split("/")[0])
    assert all(len(symbols) == 1 for symbols in instants.values()), instants
    first = {s: min(t for t, r in got if r.startswith(s)) for s in MINE}
    assert abs(first[ETH] - first[BTC]) >= interval / 2 - interval / steps
    got.clear()
    w.maybe_tick(start + 100 * interval)
    assert {r for _, r in got} == receivers and len(got) == len(receivers)


# -- market source death ----------------------------------------------------------------------
def dies_after(frames: Any, n: int) -> Any:
    """``frames``' first ``n`` frames, then the error a recording that cannot be read raises."""
    for i, f in enumerate(frames):
        if i == n:
            raise OSError("recording unreadable")
        yield f


def test_dead_market_source_halts_the_workers_symbols_also_at_a_new_coordinator(tmp_path: Path) -> None:
    """The worker's market raises mid-feed: the worker does not fail, it halts its own symbols at
    Risk (who="market_source"), reports why in its status; worker 1's SOL stays ACTIVE; a
    Coordinator restarted before it stored the halt hears it again from the worker's announce."""
    c1 = coordinator(tmp_path, 1)
    w = worker(tmp_path, 11, restarted=False, market=lambda sub, start: dies_after(market_frames(sub, start), 301))
    c1.worker_up(0, 11)
    c1.worker_up(1, 12)
    waits = [w.feed(budget=64) for _ in range(10)]
    assert waits[-1] is None  # the market has ended for this worker
    assert w.probe.frames == 301  # every frame read before the failure was delivered
    st = w.status()
    assert st["market_failed"] == "market source died: OSError('recording unreadable')"
    assert st["market_done"]
    pump(c1, w)
    risk = c1.status()["risk"]
    assert {s: risk["symbols"][s]["state"] for s in (BTC, ETH, SOL)} == {BTC: "HALTED", ETH: "HALTED", SOL: "ACTIVE"}
    c1.observer.flush()  # what the shim does after each handler
    halts = [e for e in events(tmp_path, "coordinator") if e["ev"] == "state"]
    assert {(e["scope"], e["new"], e["who"]) for e in halts} == {(BTC, "HALTED", "market_source"),
                                                                  (ETH, "HALTED", "market_source")}
    assert any(e["ev"] == "market_failed" for e in events(tmp_path, "worker-0"))

    kill(c1)  # before its store had the halt
    c2 = coordinator(tmp_path, 2)
    assert c2.status()["risk"]["symbols"][BTC]["state"] == "ACTIVE"
    c2.worker_up(0, 11)
    w.coordinator_up(2)
    pump(c2, w)
    risk = c2.status()["risk"]
    assert {s: risk["symbols"][s]["state"] for s in (BTC, ETH, SOL)} == {BTC: "HALTED", ETH: "HALTED", SOL: "ACTIVE"}
