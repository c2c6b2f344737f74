"""The shared input core (``actors.runtime.inputs``): envelopes, observer order, ticks, market routing."""

from __future__ import annotations

from typing import Any

from arbor.actors.base import ActorLogic
from arbor.actors.runtime import DeterministicRuntime, SimClock, id_source
from arbor.actors.runtime.dispatcher import QuietObserver
from arbor.actors.runtime.inputs import FEED, OPERATOR, TIMER, Injector, market_input
from arbor.actors.runtime.threaded import GroupInbox, InboxRouter
from arbor.actors.testing import make_ctx
from arbor.messages import Envelope, TimerTick, VenuePayload


class Target:
    """A dispatcher as the injector sees it; notes each delivery in the shared ``log``."""

    def __init__(self, log: list[tuple[str, Any]], tick_receivers: tuple[str, ...] = ()) -> None:
        self.log = log
        self.tick_receivers = tick_receivers

    def deliver(self, env: Envelope) -> None:
        self.log.append(("deliver", env))


class Noting(QuietObserver):
    def __init__(self, name: str, log: list[tuple[str, Any]]) -> None:
        self.name = name
        self.log = log

    def external(self, env: Envelope) -> None:
        self.log.append((self.name, env))


def injector(log: list[tuple[str, Any]], ticks: tuple[str, ...] = (), now: int = 500,
             settle: Any = None) -> Injector:
    return Injector(Target(log, ticks), id_source(7), SimClock(now), (Noting("journal", log), Noting("probe", log)),
                    settle=settle)


def test_external_envelope_has_a_fresh_id_no_cause_and_the_clock_time() -> None:
    """An external input's envelope: the next id of the source, its sender and receiver, both
    times the clock's now unless given, causation 0, the message as payload."""
    inj = injector([])
    first = inj.external("risk", "cmd", "operator")
    assert first == Envelope(msg_id=7, sender="operator", receiver="risk", ts_event_ns=500, ts_recv_ns=500,
                             causation_id=0, payload="cmd")
    given = inj.external("risk", "cmd", ts_event_ns=40, ts_recv_ns=41)
    assert (given.msg_id, given.sender, given.ts_event_ns, given.ts_recv_ns) == (8, OPERATOR, 40, 41)
    assert inj.external("risk", "cmd", ts_recv_ns=3).ts_event_ns == 500


def test_every_observer_sees_an_input_in_order_before_it_is_delivered() -> None:
    """Observers see an input in their order (the journal first), then the dispatcher gets it."""
    log: list[tuple[str, Any]] = []
    env = injector(log).external("risk", "cmd")
    assert log == [("journal", env), ("probe", env), ("deliver", env)]


def test_envelope_is_shown_but_not_delivered() -> None:
    """``envelope()`` is for inputs delivered elsewhere: observers see it, the dispatcher does not."""
    log: list[tuple[str, Any]] = []
    env = injector(log).envelope("risk", "cmd")
    assert [who for who, _ in log] == ["journal", "probe"] and log[0][1] is env


def test_settle_runs_after_each_delivered_input() -> None:
    """With ``settle`` (the deterministic runtime's dispatcher run) each input settles before the
    next one is even shown to the observers."""
    log: list[tuple[str, Any]] = []
    inj = injector(log, ticks=("a/x", "b/x"), settle=lambda: log.append(("settle", None)))
    inj.ticks(9)
    assert [who for who, _ in log] == ["journal", "probe", "deliver", "settle"] * 2


def test_ticks_go_to_each_tick_receiver_in_its_own_envelope() -> None:
    """``ticks(ts)``: one TimerTick(ts) from ``timer`` per tick receiver, in their order, each with
    its own id; ``receivers`` narrows it to some of them."""
    log: list[tuple[str, Any]] = []
    inj = injector(log, ticks=("BTCUSDT/feature", "BTCUSDT/regime", "risk"), now=100)
    assert inj.ticks(90, ts_recv_ns=95) == 3
    sent = [env for who, env in log if who == "deliver"]
    assert [e.receiver for e in sent] == ["BTCUSDT/feature", "BTCUSDT/regime", "risk"]
    assert {(e.sender, e.payload, e.ts_event_ns, e.ts_recv_ns) for e in sent} == {(TIMER, TimerTick(ts_event_ns=90), 90, 95)}
    assert len({e.msg_id for e in sent}) == 3
    log.clear()
    assert inj.ticks(190, receivers=["risk"]) == 1
    assert [(e.receiver, e.ts_recv_ns) for who, e in log if who == "deliver"] == [("risk", 100)]


def test_market_frame_goes_to_its_symbols_collector_from_feed() -> None:
    """A venue frame for SYMBOL becomes a VenuePayload to SYMBOL/collector, sent by ``feed``."""
    assert market_input("binance_usdm", "ETHUSDT", b"{}") == (
        "ETHUSDT/collector", VenuePayload(venue="binance_usdm", symbol="ETHUSDT", payload=b"{}"))
    log: list[tuple[str, Any]] = []
    env = injector(log).market("sim", "BTCUSDT", b"x", ts_recv_ns=499)
    assert (env.receiver, env.sender, env.ts_event_ns, env.ts_recv_ns) == ("BTCUSDT/collector", FEED, 500, 499)
    assert env.payload == VenuePayload(venue="sim", symbol="BTCUSDT", payload=b"x")
    assert log[-1] == ("deliver", env)


def test_threaded_inputs_are_posted_to_the_receivers_group_inbox() -> None:
    """The threaded runtime's router hands an input to the inbox of its receiver's group."""
    inboxes = {g: GroupInbox(g) for g in ("coordinator", "BTCUSDT")}
    env = Injector(InboxRouter(inboxes), id_source(), SimClock(1)).external("BTCUSDT/executor", "cmd")
    assert list(inboxes["BTCUSDT"].items) == [[env]] and not inboxes["coordinator"].items


class Ticked(ActorLogic):
    ROLE = "risk"
    WANTS_TICKS = True

    def __init__(self, aid: str, log: list[str]) -> None:
        super().__init__(make_ctx(aid, ""))
        self.aid = aid
        self.log = log

    def on_timer_tick(self, msg: TimerTick) -> list[Any]:
        self.log.append(f"{self.aid}@{msg.ts_event_ns}")
        return []


def test_deterministic_ticks_reach_every_tick_receiver_each_interval_shown_to_observers() -> None:
    """The deterministic runtime ticks each tick receiver once per interval up to an input's time,
    through the same core: the observers see each tick as an input from ``timer``."""
    got: list[str] = []
    seen: list[tuple[str, Any]] = []
    rt = DeterministicRuntime({"a": Ticked("a", got), "b": Ticked("b", got)}, SimClock(0),
                              observers=[Noting("journal", seen)], tick_interval_ns=10)
    rt.add_inputs([(5, "a", TimerTick(ts_event_ns=5)), (31, "a", TimerTick(ts_event_ns=31))])
    rt.run()
    assert got == ["a@5", "a@10", "b@10", "a@20", "b@20", "a@30", "b@30", "a@31"]
    assert [(e.sender, e.receiver, e.ts_recv_ns) for _, e in seen][1:3] == [(TIMER, "a", 10), (TIMER, "b", 10)]
