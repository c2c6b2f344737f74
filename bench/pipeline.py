"""bench/pipeline: market events/s through one symbol's pipeline, collector to arbitrated action.

Runs the same logic three ways in one process and prints the ratios:
  plain         a chain of direct function calls, no actors, no envelopes (the floor for overhead)
  deterministic the deterministic scheduler (per-actor mailboxes, routing, envelopes)
  pykka         the live runtime: the symbol's subtree on one pykka thread, the arbitrator on another
and the tick-to-action latency (p50/p99/max) of the pykka runtime with the feed paced at a fixed
rate (default 5,000 events/s). A decision is taken on every event (decision_interval_ms = 0), the
worst case. ``--json OUT`` writes the figures for bench/all, each against the plain chain of the
same run (a latency against the plain chain's time per event). Usage:
  python bench/pipeline.py [--events N] [--rate R] [--latency-seconds S] [--json OUT]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from decimal import Decimal
from pathlib import Path

from arbor.actors.arbitrator.config import ArbitratorConfig
from arbor.actors.arbitrator.logic import ArbitratorLogic
from arbor.actors.base import ActorLogic
from arbor.actors.cluster.build import make_context
from arbor.actors.collector.logic import CollectorLogic
from arbor.actors.feature.logic import FeatureConfig, FeatureLogic
from arbor.actors.regime.logic import RegimeConfig, RegimeLogic
from arbor.actors.runtime import DeterministicRuntime, HandlerClock, SimClock, ThreadedRuntime
from arbor.adapters.decoding import decoder_for
from arbor.adapters.sim.market import SimMarket, SimSymbol
from arbor.messages import Action, Envelope, VenuePayload
from figures import Figure, write_bench_json

SYMBOL = "BTCUSDT"


class ActionSink(ActorLogic):
    """Stands where Risk stands: counts arbitrated actions."""

    ROLE = "risk"

    def __init__(self, ctx) -> None:
        super().__init__(ctx)
        self.actions = 0
        self.done = threading.Event()
        self.expect: int | None = None

    def on_action(self, msg: Action) -> list:
        self.actions += 1
        if self.expect is not None and self.actions >= self.expect:
            self.done.set()
        return []


class VenueStandIn(ActorLogic):
    """Stands where a real venue gateway stands: it is shown market data and ignores it."""

    ROLE = "venue"

    def on_raw_market_event(self, msg) -> list:
        return []


def frames(n: int, start_ns: int, rate: float = 2000.0) -> list[tuple[int, str, bytes]]:
    sim = SimMarket([SimSymbol(symbol=SYMBOL, start_price=Decimal("60000"), tick_size=Decimal("0.1"),
                               qty_step=Decimal("0.001"), events_per_s=rate, base_vol=0.0004)], seed=1, start_ns=start_ns)
    out = []
    for f in sim.frames():
        out.append(f)
        if len(out) >= n:
            return out
    return out


def sink_of(actors: dict[str, ActorLogic]) -> ActionSink:
    """The ActionSink that ``build`` put where Risk stands."""
    sink = actors["risk"]
    assert isinstance(sink, ActionSink)
    return sink


def build(clock) -> dict[str, ActorLogic]:
    # a snapshot per event (emit = "every_event"): this bench measures a decision per event
    feature = FeatureConfig(min_samples=5, long_window=30, short_window=5, emit="every_event")
    regime = RegimeConfig(decision_interval_ms=0, confirm_cycles=2)
    return {
        f"{SYMBOL}/collector": CollectorLogic(make_context(f"{SYMBOL}/collector", SYMBOL, clock, "b", 1), decoder_for("sim")),
        f"{SYMBOL}/feature": FeatureLogic(make_context(f"{SYMBOL}/feature", SYMBOL, clock, "b", 1), feature),
        f"{SYMBOL}/regime": RegimeLogic(make_context(f"{SYMBOL}/regime", SYMBOL, clock, "b", 1), regime),
        "arbitrator": ArbitratorLogic(make_context("arbitrator", "", clock, "b", 1), ArbitratorConfig(),
                                      {SYMBOL: Decimal("0.001")}),
        "risk": ActionSink(make_context("risk", "", clock, "b", 1)),
        f"{SYMBOL}/venue": VenueStandIn(make_context(f"{SYMBOL}/venue", SYMBOL, clock, "b", 1)),
    }


def run_plain(fr: list[tuple[int, str, bytes]]) -> tuple[float, int]:
    clock = SimClock(fr[0][0])
    a = build(clock)
    col, feat, reg, arb, sink, venue = (a[f"{SYMBOL}/collector"], a[f"{SYMBOL}/feature"], a[f"{SYMBOL}/regime"],
                                        a["arbitrator"], sink_of(a), a[f"{SYMBOL}/venue"])
    t0 = time.perf_counter()
    for ts, sym, payload in fr:
        clock.set(ts)
        for ev in col.handle(VenuePayload(venue="sim", symbol=sym, payload=payload)) or ():
            venue.handle(ev)
            for snap in feat.handle(ev) or ():
                for m in reg.handle(snap) or ():
                    if type(m).__name__ == "MandateSet":
                        for act in arb.handle(m) or ():
                            sink.handle(act)
    return time.perf_counter() - t0, sink.actions


def run_deterministic(fr: list[tuple[int, str, bytes]]) -> tuple[float, int]:
    clock = SimClock(fr[0][0])
    a = build(clock)
    rt = DeterministicRuntime(a, clock)
    rt.add_market(fr, "sim")
    t0 = time.perf_counter()
    rt.run()
    return time.perf_counter() - t0, sink_of(a).actions


def run_pykka(fr: list[tuple[int, str, bytes]]) -> tuple[float, int, int]:
    clock = HandlerClock()
    a = build(clock)
    sink = sink_of(a)
    # The number of actions is fixed by the data (one per decision): learn it from a plain run.
    _, expected = run_plain(fr)
    sink.expect = expected
    rt = ThreadedRuntime(a, clock, tick_interval_s=0)
    rt.start()
    t0 = time.perf_counter()
    rt.feed(fr, "sim", paced=False, batch=256)
    ok = sink.done.wait(600)
    elapsed = time.perf_counter() - t0
    rt.stop()
    if not ok:
        print(f"pykka run incomplete: {sink.actions}/{expected} actions", file=sys.stderr)
    return elapsed, sink.actions, expected


class LatencyProbe:
    """Tick-to-action latency: from a frame entering the runtime to the Action that it caused."""

    wants_inputs = False

    def __init__(self) -> None:
        self.cause: dict[int, int] = {}
        self.entered: dict[int, int] = {}
        self.latencies: list[int] = []

    def external(self, env: Envelope) -> None:
        self.entered[env.msg_id] = time.perf_counter_ns()

    def processed(self, actor_id: str, env: Envelope, now_ns: int) -> None:
        pass

    def emitted(self, env: Envelope, receivers: tuple[str, ...]) -> None:
        self.cause[env.msg_id] = env.causation_id
        if type(env.payload) is Action:
            root = env.causation_id
            for _ in range(16):
                if root in self.entered:
                    self.latencies.append(time.perf_counter_ns() - self.entered[root])
                    return
                root = self.cause.get(root, 0)


def run_latency(rate: float, seconds: float) -> list[int]:
    clock = HandlerClock()
    a = build(clock)
    probe = LatencyProbe()
    n = int(rate * seconds)
    fr = frames(n, clock.now_ns() + 200_000_000, rate=rate)
    # Re-time frames on an exact grid so the offered load is the configured rate.
    t_start = fr[0][0]
    fr = [(t_start + int(i * 1e9 / rate), s, p) for i, (_, s, p) in enumerate(fr)]
    rt = ThreadedRuntime(a, clock, observers=(probe,), tick_interval_s=0.1)
    rt.start()
    rt.feed(fr, "sim", paced=True, batch=1)
    rt.feed_done.wait(seconds * 3 + 10)
    deadline = time.monotonic() + 10
    while len(probe.latencies) < sink_of(a).actions and time.monotonic() < deadline:
        time.sleep(0.01)
    rt.stop()
    return probe.latencies


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--events", type=int, default=40_000)
    p.add_argument("--rate", type=float, default=5000.0)
    p.add_argument("--latency-seconds", type=float, default=6.0)
    p.add_argument("--json", type=Path, metavar="OUT", help="write the figures to this file (for bench/all)")
    args = p.parse_args()
    t0 = time.process_time()
    fr = frames(args.events, 1_723_161_600_000_000_000)
    gen_cpu = time.process_time() - t0
    n = len(fr)
    run_plain(fr[: min(n, 5000)])  # warm-up: imports, caches
    t_plain, acts = run_plain(fr)
    t_det, acts_det = run_deterministic(fr)
    t_pykka, acts_pykka, expected = run_pykka(fr)
    eps = {k: n / t for k, t in (("plain", t_plain), ("deterministic", t_det), ("pykka", t_pykka))}
    print(f"pipeline: {n} market events, one symbol, a decision per event ({acts} actions)")
    print(f"  sim market     {n / gen_cpu:>10,.0f} frames per CPU second generated "
          f"({n / gen_cpu / eps['plain']:.1f}x what the plain chain consumes; target >= 50,000)")
    for k, v in eps.items():
        print(f"  {k:<14} {v:>10,.0f} events/s   ratio to plain {v / eps['plain']:.2f}")
    if acts_det != acts or acts_pykka != expected:
        print(f"  WARNING: action counts differ: plain={acts} deterministic={acts_det} pykka={acts_pykka}")
    lat = sorted(run_latency(args.rate, args.latency_seconds))

    def q(f: float) -> float:
        return lat[min(len(lat) - 1, int(f * len(lat)))] / 1e6

    if lat:
        print(f"latency (pykka, paced at {args.rate:,.0f} events/s, {len(lat)} actions, switch interval 0.5 ms): "
              f"p50 {q(0.5):.3f} ms  p99 {q(0.99):.3f} ms  max {lat[-1] / 1e6:.3f} ms  mean {statistics.fmean(lat) / 1e6:.3f} ms")
    print(f"targets: pykka/plain >= 0.30 -> {'met' if eps['pykka'] / eps['plain'] >= 0.3 else 'NOT met'}; "
          f"p99 < 2 ms at {args.rate:,.0f}/s -> {'met' if lat and q(0.99) < 2 else 'NOT met'}")
    plain = "plain chain of calls"
    per_event_ms = 1e3 / eps["plain"]
    figures = [
        Figure("pipeline.deterministic", "deterministic runtime, one symbol, a decision per event",
               eps["deterministic"], "events/s", plain, eps["plain"]),
        Figure("pipeline.pykka", "pykka runtime (symbol thread + coordinator thread)", eps["pykka"], "events/s",
               plain, eps["plain"], target="ratio >= 0.30", met=eps["pykka"] / eps["plain"] >= 0.3),
    ]
    if lat:
        per_event = "plain chain's time per event"
        figures += [
            Figure("pipeline.latency_p50", f"tick-to-action p50, pykka, paced {args.rate:,.0f} events/s", q(0.5), "ms",
                   per_event, per_event_ms, higher_is_better=False),
            Figure("pipeline.latency_p99", f"tick-to-action p99, pykka, paced {args.rate:,.0f} events/s", q(0.99), "ms",
                   per_event, per_event_ms, higher_is_better=False, target="< 2 ms (issue 17: < 1 ms)",
                   met=q(0.99) < 2),
        ]
    write_bench_json(args.json, "pipeline", figures,
                     notes=[f"{n:,} simulated events; latency over {args.latency_seconds:g} s, {len(lat):,} actions."])


if __name__ == "__main__":
    main()
