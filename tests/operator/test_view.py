"""The one ClusterView over a fake source: answers, health words and command rules that hold in
both run modes, and the same shapes over the real single- and multi-process sources."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from arbor.actors.cluster.simulate import SimulatedCluster
from arbor.adapters.operator.cluster_view import EventFollower, NodesSource, NodeUnavailable
from arbor.adapters.operator.events import EventHub
from arbor.adapters.operator.local import ClusterFacts, RuntimeSource
from arbor.adapters.operator.view import SENDING, ClusterView, CommandError
from arbor.config.settings import load_settings
from arbor.messages import Action, Direction, EngageKillSwitch, Envelope, MandateKind, SetTradingState, TradingState

from tests.distributed.test_operator_cluster import _NoSupervisor, _risk, _write_status

D = Decimal


def _row(**over: Any) -> dict[str, Any]:
    row = {"state": "ACTIVE", "regime": "TREND", "position": "FLAT", "direction": None, "qty": D(0), "entry": None,
           "mark": None, "realized": D(0), "fees": D(0), "entry_ns": None, "quarantined": False, "health": "RUNNING",
           "stale": False, "worker": None, "events": 3, "decisions": 2, "orders": 1, "fills": 1, "denials": 0,
           "decode_failures": 0}
    return {**row, **over}


class FakeSource:
    """A ViewSource whose reading and groups a test sets; it keeps what it recorded and delivered."""

    def __init__(self, symbols: tuple[str, ...] = ("BTCUSDT", "ETHUSDT")) -> None:
        self.symbols = symbols
        self.reading: dict[str, Any] = {
            "mode": "fake", "global_state": "ACTIVE",
            "kill_switch": {"engaged": False, "who": None, "reason": None, "ts_ns": None, "source": "risk"},
            "decisions": 4, "last_decision_ns": None, "error": None, "down": None, "degraded": False,
            "escalated": "", "storage_faults": {}, "nodes": {}, "symbols": {s: _row() for s in symbols}}
        self.group_rows: list[dict[str, Any]] = []
        self.books: dict[str, dict[str, Any]] = {}
        self.records: list[tuple[int, str]] = []
        self.delivered: list[Envelope] = []
        self.unreachable: set[str] = set()
        self.fail_delivery = False
        self._id = 0

    def read(self) -> dict[str, Any]:
        return self.reading

    def storage_faults(self) -> dict[str, str]:
        return dict(self.reading["storage_faults"])

    def risk_status(self) -> dict[str, Any]:
        return {"global_state": self.reading["global_state"]}

    def assumption_rows(self) -> tuple[dict[str, list[dict[str, Any]]], list[str], dict[str, Any]]:
        return {"BTCUSDT": [{"name": "calm", "status": "BROKEN", "since_ns": 1_723_161_818_000_000_000}]}, ["ETHUSDT"], {}

    def groups(self) -> list[dict[str, Any]]:
        return self.group_rows

    def mailbox_depths(self) -> tuple[dict[str, int], list[str]]:
        return {}, []

    def book(self, symbol: str) -> dict[str, Any] | None:
        return self.books.get(symbol)

    def now_ns(self) -> int:
        return 1_000

    def next_id(self) -> int:
        self._id += 1
        return self._id

    def check_deliverable(self, receiver: str) -> None:
        if receiver in self.unreachable:
            raise NodeUnavailable(f"{receiver} is down")

    def record(self, env: Envelope, outcome: str) -> None:
        self.records.append((env.msg_id, outcome))

    def deliver(self, env: Envelope) -> None:
        if self.fail_delivery:
            raise NodeUnavailable("no answer")
        self.delivered.append(env)


def _view(source: FakeSource, hub: EventHub | None = None) -> ClusterView:
    view = ClusterView(source, hub=hub)
    view.set_stage("running")
    return view


# -- state -----------------------------------------------------------------------------------
@pytest.mark.parametrize(("change", "status"), [
    ({}, "running"),
    ({"global_state": "REDUCING"}, "paused"),
    ({"kill_switch": {"engaged": True, "who": "ops", "reason": "drill", "ts_ns": 1, "source": "latch"}}, "paused"),
    ({"degraded": True}, "degraded"),
    ({"down": "the Coordinator is down", "degraded": True}, "error"),
    ({"error": "trade_log cannot write: disk full", "down": "x"}, "error"),
])
def test_status_words_follow_one_order(change: dict[str, Any], status: str) -> None:
    """error (the source's) > down (Risk not answering) > degraded > paused (halted) > running."""
    source = FakeSource()
    source.reading.update(change)
    state = _view(source).state()
    assert state["status"] == status
    assert state["error"] == (change.get("error") or (change.get("down") if status == "error" else None))


def test_a_stopped_surface_says_stopped_unless_in_error() -> None:
    """Before running and after stopping the status is stopped; an error still shows."""
    source = FakeSource()
    view = ClusterView(source)
    assert view.state()["status"] == "stopped"
    source.reading["error"] = "escalated"
    assert view.state()["status"] == "error"


def test_active_symbols_are_active_running_and_not_quarantined() -> None:
    """A REDUCING, a DOWN or a quarantined symbol may not open; none may while halted."""
    source = FakeSource(("A", "B", "C", "D"))
    source.reading["symbols"] = {"A": _row(), "B": _row(state="REDUCING"), "C": _row(health="DOWN", stale=True),
                                 "D": _row(quarantined=True, health="QUARANTINED")}
    view = _view(source)
    assert view.state()["active_symbols"] == ["A"]
    source.reading["global_state"] = "HALTED"
    assert view.state()["active_symbols"] == []


def test_kill_switch_row_is_one_shape() -> None:
    """engaged, who, reason, ts (ISO) and source, whichever source set it."""
    source = FakeSource()
    source.reading["kill_switch"] = {"engaged": True, "who": "ops", "reason": "drill",
                                     "ts_ns": 1_723_161_818_000_000_000, "source": "latch"}
    assert _view(source).state()["kill_switch"] == {"engaged": True, "who": "ops", "reason": "drill",
                                                    "ts": "2024-08-09T00:03:38.000Z", "source": "latch"}


# -- positions -------------------------------------------------------------------------------
def test_positions_are_signed_weighted_and_totalled() -> None:
    """A short's qty and value are negative; weights share the gross; realized totals every symbol net of fees."""
    source = FakeSource()
    source.reading["symbols"] = {
        "BTCUSDT": _row(position="OPEN", direction="LONG", qty=D("1"), entry=D("100"), mark=D("110"),
                        realized=D("5"), fees=D("1")),
        "ETHUSDT": _row(position="OPEN", direction="SHORT", qty=D("2"), entry=D("50"), mark=D("45"),
                        realized=D("0"), fees=D("0.5"), worker=1)}
    body = _view(source).positions()
    rows = {p["symbol"]: p for p in body["positions"]}
    assert (rows["BTCUSDT"]["qty"], rows["BTCUSDT"]["unrealized_pnl"], rows["BTCUSDT"]["weight"]) == ("1", "10", "0.55")
    assert (rows["ETHUSDT"]["qty"], rows["ETHUSDT"]["market_value"], rows["ETHUSDT"]["unrealized_pnl"]) == ("-2", "-90", "10")
    assert rows["ETHUSDT"]["worker"] == 1
    t = body["totals"]
    assert (t["positions"], t["long"], t["short"], t["gross_value"], t["net_value"]) == (2, 1, 1, "200", "20")
    assert (t["unrealized_pnl"], t["realized_pnl_net_of_fees"]) == ("20", "3.5")


def test_a_figure_the_source_cannot_know_is_none_not_zero() -> None:
    """No mark: no value, PnL or weight; no realized PnL (across processes): no realized total."""
    source = FakeSource()
    source.reading["symbols"]["BTCUSDT"] = _row(position="OPEN", direction="LONG", qty=D("1"), entry=D("100"),
                                                realized=None, fees=None)
    body = _view(source).positions()
    (p,) = body["positions"]
    assert (p["market_value"], p["unrealized_pnl"], p["weight"], p["realized_pnl"]) == (None, None, None, None)
    assert (body["totals"]["net_value"], body["totals"]["realized_pnl_net_of_fees"]) == (None, None)


# -- tree ------------------------------------------------------------------------------------
def _group(name: str, *actors: tuple[str, int | None], responsive: bool = True, restarts: int = 0) -> dict[str, Any]:
    return {"group": name, "responsive": responsive, "error": None, "processed": 1, "dead_letters": None,
            "failures": None, "process": None, "restarts": restarts,
            "actors": [{"id": f"{name}/{state}", "role": state, "state": state, "restarts": n, "failures": None,
                        "last_failure": None, "mailbox": None, "poison_messages": None} for state, n in actors]}


def test_health_words_and_the_worst_of_them() -> None:
    """running ok; restarted, recovering or held degraded; quarantined, failed, unknown or down down;
    a silent group down, a restarted process degraded; the tree as bad as its worst group."""
    source = FakeSource()
    source.group_rows = [_group("a", ("running", 0)), _group("b", ("running", 1), ("recovering", None), ("held", 0)),
                         _group("c", ("quarantined", None), ("failed", 0), ("unknown", None), ("down", None)),
                         _group("d", ("running", 0), responsive=False), _group("e", ("running", 0), restarts=2)]
    tree = _view(source).tree()
    health = {g["group"]: (g["health"], [a["health"] for a in g["actors"]]) for g in tree["groups"]}
    assert health == {"a": ("ok", ["ok"]), "b": ("degraded", ["degraded"] * 3), "c": ("down", ["down"] * 4),
                      "d": ("down", ["ok"]), "e": ("degraded", ["ok"])}
    assert tree["health"] == "down"
    source.group_rows = source.group_rows[:2]
    assert _view(source).tree()["health"] == "degraded"


# -- commands --------------------------------------------------------------------------------
def test_a_command_is_recorded_before_it_is_sent_and_announced() -> None:
    """Recorded as sending, delivered to Risk with the operator as sender, published as an event."""
    source, hub = FakeSource(), EventHub()
    (env,) = _view(source, hub).pause("BTCUSDT", "alice", "drill")
    assert source.records == [(env.msg_id, SENDING)] and source.delivered == [env]
    assert (env.receiver, env.sender, env.payload) == ("risk", "operator:alice", SetTradingState(
        scope="BTCUSDT", state=TradingState.REDUCING, who="alice", reason="drill"))
    (ev,) = hub.recent()
    assert ev["type"] == "operator_command" and ev["data"]["who"] == "alice" and ev["data"]["receiver"] == "risk"


def test_bad_commands_are_refused_before_anything_is_recorded() -> None:
    """Unknown symbols and a reset without visible reason raise CommandError; nothing recorded or sent."""
    source = FakeSource()
    view = _view(source)
    for bad in (lambda: view.pause("DOGEUSDT", "a", "x"), lambda: view.release("DOGEUSDT", "a", "x"),
                lambda: view.flatten("DOGEUSDT", "a", "x"), lambda: view.reset("a", " \u200b ")):
        with pytest.raises(CommandError):
            bad()
    with pytest.raises(CommandError):
        view.command(object(), "a")
    assert source.records == [] and source.delivered == []


def test_an_unreachable_receiver_refuses_and_a_failed_delivery_is_recorded() -> None:
    """check_deliverable raising: nothing on record; a delivery that fails: recorded again, then raised."""
    source = FakeSource()
    view = _view(source)
    source.unreachable = {"BTCUSDT/supervisor"}
    with pytest.raises(NodeUnavailable):
        view.release("BTCUSDT", "a", "x")
    assert source.records == []
    source.fail_delivery = True
    with pytest.raises(NodeUnavailable):
        view.kill("a", "drill")
    assert [o for _, o in source.records] == [SENDING, "not delivered: no answer"] and source.delivered == []


def test_flatten_pauses_then_exits_what_risks_book_holds() -> None:
    """REDUCING first; then an EXIT of the book's qty at its price; a flat book only pauses."""
    source = FakeSource()
    view = _view(source)
    assert [type(e.payload) for e in view.flatten("BTCUSDT", "a", "x")] == [SetTradingState]
    source.books["BTCUSDT"] = {"qty": D("0.5"), "direction": Direction.LONG, "price": D("100"), "data_ts_ns": 7,
                               "cycle": 3}
    pause, exit_ = view.flatten("BTCUSDT", "a", "x")
    assert pause.payload.state is TradingState.REDUCING and pause.payload.reason == "flatten: x"
    a = exit_.payload
    assert isinstance(a, Action) and (a.kind, a.qty, a.direction, a.mark_price, a.cycle) == (
        MandateKind.EXIT, D("0.5"), Direction.LONG, D("100"), 3)
    assert exit_.receiver == "risk" and a.reason == "operator_flatten: x"


def test_kill_goes_to_risk() -> None:
    (env,) = _view(FakeSource()).kill("ops", "drill")
    assert env.receiver == "risk" and env.payload == EngageKillSwitch(who="ops", reason="drill")


# -- one shape over both real sources --------------------------------------------------------
def test_state_and_positions_have_one_shape_over_both_sources(tmp_path: Path) -> None:
    """The keys of /api/state, of each symbol and of /api/positions' totals are the same in both modes."""
    settings = load_settings({})
    symbols = tuple(s.symbol for s in settings.symbols)
    facts = ClusterFacts()
    c = SimulatedCluster(settings, observers=(facts,))
    c.run_for(2)
    one = ClusterView(RuntimeSource(c.runtime, c.board, facts, symbols))  # type: ignore[arg-type]  # reads only board and facts
    var = tmp_path / "multi"
    follower = EventFollower(var / "cluster" / "events", ("coordinator", "worker-0"), EventHub())
    many = ClusterView(NodesSource(var, {0: symbols}, _NoSupervisor(), follower))  # type: ignore[arg-type]  # a stand-in
    _write_status(var, "coordinator", 0.0, risk=_risk(*symbols), risk_stats={})
    _write_status(var, "worker-0", 0.0, symbols={s: {"health": "RUNNING", "position": "FLAT", "qty": "0"}
                                                 for s in symbols})
    a, b = one.state(), many.state()
    assert set(a) == set(b) and (a["mode"], b["mode"]) == ("single-process", "multi-process")
    assert all(set(a["symbols"][s]) == set(b["symbols"][s]) for s in symbols)
    assert set(a["kill_switch"]) == set(b["kill_switch"])
    assert set(one.positions()["totals"]) == set(many.positions()["totals"])
    c.close()
