"""bench/restart: how fast supervision fails closed and recovers, and what persistence costs.

In one run, on the live pykka runtime with injected exceptions:
  * failure -> non-ACTIVE at Risk: from the failing handler raising to Risk emitting the
    symbol's TradingStateChanged away from ACTIVE (target p99 < 5 ms);
  * failure -> restarted and reconciled: from the failure to the executor's
    ReconciliationCompleted after the restart, feature warm-up excluded (target p99 < 50 ms);
and, on the fill path, fills/s through Position + Executor with and without saving their state
to the SQLite store after every fill (target ratio >= 0.5). ``--json OUT`` writes the figures for
bench/all: the fill path against itself without the store, and each restart latency against the
time one fill takes through Position + Executor without the store (measured in the same run).
Usage: python bench/restart.py [--failures N] [--fills N] [--json OUT]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from decimal import Decimal
from pathlib import Path

from arbor.actors.cluster.live import LiveCluster
from arbor.actors.testing import eventually
from arbor.config.settings import load_settings
from arbor.messages import ActorFailed, Envelope, ReconciliationCompleted
from figures import Figure, write_bench_json


class Clocked:
    """Monotonic times of the events the benchmark measures between.

    A failure is reported by the failing group's supervisor the moment the handler raises; the
    symbol is non-ACTIVE at Risk from the moment Risk *handles* that report (the same msg_id),
    whether or not its state had already been lowered by an earlier failure.
    """

    wants_inputs = True

    def __init__(self) -> None:
        self.failed: dict[int, tuple[str, int]] = {}
        self.at_risk: dict[int, int] = {}
        self.reconciled: list[tuple[str, int]] = []

    def external(self, env: Envelope) -> None:
        pass

    def processed(self, actor_id: str, env: Envelope, now_ns: int) -> None:
        if actor_id == "risk" and type(env.payload) is ActorFailed:
            self.at_risk.setdefault(env.msg_id, time.perf_counter_ns())

    def emitted(self, env: Envelope, receivers: tuple[str, ...]) -> None:
        m = env.payload
        t = type(m)
        if t is ActorFailed:
            self.failed[env.msg_id] = (m.symbol, time.perf_counter_ns())
        elif t is ReconciliationCompleted:
            self.reconciled.append((m.symbol, time.perf_counter_ns()))


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))] if s else float("nan")


def measure_restarts(failures: int) -> tuple[list[float], list[float]]:
    symbols = ("BTCUSDT", "ETHUSDT")
    faults = [{"actor": f"{s}/executor", "kind": "raise", "on_message": 200 + 150 * i}
              for s in symbols for i in range(failures // len(symbols))]
    settings = load_settings({
        "faults": faults,
        "run": {"tick_interval_ms": 20, "var_dir": tempfile.mkdtemp(prefix="arbor-bench-restart-")},
        "supervision": {"intensity": 1000, "period_s": 1.0},
        "symbols": [{"symbol": s, "events_per_s": 100.0, "start_price": "100", "tick_size": "0.01"} for s in symbols],
    })
    probe = Clocked()
    cluster = LiveCluster(settings, "bench-restart", observers=(probe,))
    cluster.start()
    try:
        eventually(lambda: len(probe.reconciled) >= len(faults) and len(probe.failed) >= len(faults), timeout=120)
    finally:
        cluster.stop()
    to_halt, to_reconciled = [], []
    for msg_id, (sym, t_fail) in probe.failed.items():
        if msg_id in probe.at_risk:
            to_halt.append((probe.at_risk[msg_id] - t_fail) / 1e6)
        rec = [t for s, t in probe.reconciled if s == sym and t >= t_fail]
        if rec:
            to_reconciled.append((min(rec) - t_fail) / 1e6)
    return to_halt, to_reconciled


def measure_fill_path(n: int) -> tuple[float, float] | None:
    """Fills/s through Executor and Position, without and with the persister saving their state.

    Orders are placed first (untimed: placing one commits the executor's state synchronously by
    design); then ``n`` partial fills are timed, each forwarded by the executor to the position,
    with the persister's after-handle hook on both, as the dispatcher calls it.
    """
    from arbor.actors.executor import ExecutorLogic
    from arbor.actors.position import PositionLogic
    from arbor.actors.testing import ManualClock, make_ctx
    from arbor.messages import Action, ActionApproved, Direction, MandateKind, OrderFilled, Side
    from arbor.supervision.persist import StatePersister
    from arbor.supervision.store import StateStore

    per_order = 50

    def run(persister: StatePersister | None) -> float:
        clock = ManualClock()
        pos = PositionLogic(make_ctx("B/position", "B", clock))
        ex = ExecutorLogic(make_ctx("B/executor", "B", clock))
        hook = persister.after_handle if persister is not None else (lambda *a: None)
        lot = Decimal("0.001")
        elapsed = 0.0
        done = 0
        order_no = 0
        while done < n:
            order_no += 1
            entering = order_no % 2 == 1
            qty = lot * per_order
            act = Action(action_id=f"a{order_no}", symbol="B", cycle=order_no,
                         kind=MandateKind.ENTRY if entering else MandateKind.EXIT, direction=Direction.LONG, qty=qty,
                         mark_price=Decimal("100"), data_ts_ns=0, ts_event_ns=0, reason="bench")
            approved = ActionApproved(symbol="B", action=act, ts_event_ns=0)
            submit = pos.on_action_approved(approved)[0]
            hook("B/position", pos, approved, [submit])
            out = ex.on_submit_order(submit)
            hook("B/executor", ex, submit, out)  # placing: the executor's state is committed first
            coid = out[0].client_order_id
            t0 = time.perf_counter()
            for i in range(per_order):
                cum = lot * (i + 1)
                fill = OrderFilled(symbol="B", client_order_id=coid, venue_order_id="v", fill_id=f"f{order_no}-{i}",
                                   side=Side.BUY if entering else Side.SELL, qty=lot, price=Decimal("100"),
                                   fee=Decimal("0.0004"), is_maker=False, cum_qty=cum, leaves_qty=qty - cum,
                                   ts_event_ns=0)
                fwd = ex.on_order_filled(fill)
                hook("B/executor", ex, fill, fwd)
                for m in fwd:
                    changed = pos.handle(m)
                    hook("B/position", pos, m, changed)
            elapsed += time.perf_counter() - t0
            done += per_order
        if persister is not None:
            t0 = time.perf_counter()
            persister.flush()  # what is still queued is part of the cost
            elapsed += time.perf_counter() - t0
        return done / elapsed

    plain = run(None)
    with tempfile.TemporaryDirectory() as tmp:
        store = StateStore(Path(tmp) / "state.sqlite", clock_ns=time.time_ns)
        persister = StatePersister(store)
        persister.start()
        try:
            stored = run(persister)
        finally:
            persister.stop()
            store.close()
    return plain, stored


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--failures", type=int, default=40)
    p.add_argument("--fills", type=int, default=5000)
    p.add_argument("--json", type=Path, metavar="OUT", help="write the figures to this file (for bench/all)")
    args = p.parse_args()
    to_halt, to_rec = measure_restarts(args.failures)
    print(f"restart: {len(to_halt)} injected failures on the live runtime")
    print(f"  failure -> non-ACTIVE at Risk      p50 {pct(to_halt, .5):.3f} ms  p99 {pct(to_halt, .99):.3f} ms  "
          f"(target p99 < 5 ms: {'met' if pct(to_halt, .99) < 5 else 'NOT met'})")
    print(f"  failure -> restarted + reconciled  p50 {pct(to_rec, .5):.3f} ms  p99 {pct(to_rec, .99):.3f} ms  "
          f"(target p99 < 50 ms: {'met' if pct(to_rec, .99) < 50 else 'NOT met'})")
    fills = measure_fill_path(args.fills)
    if fills is None:
        print("fill path: the state store is not available")
    else:
        plain, stored = fills
        print(f"fill path: {plain:,.0f} fills/s without the store, {stored:,.0f} with it, ratio {stored / plain:.2f} "
              f"(target >= 0.5: {'met' if stored / plain >= 0.5 else 'NOT met'})")
        per_fill = "one fill without the store"
        fill_ms = 1e3 / plain
        write_bench_json(args.json, "restart", [
            Figure("restart.to_halt_p99", "failure -> non-ACTIVE at Risk, p99", pct(to_halt, .99), "ms", per_fill,
                   fill_ms, higher_is_better=False, target="< 5 ms", met=pct(to_halt, .99) < 5),
            Figure("restart.to_reconciled_p99", "failure -> restarted + reconciled, p99", pct(to_rec, .99), "ms",
                   per_fill, fill_ms, higher_is_better=False, target="< 50 ms", met=pct(to_rec, .99) < 50),
            Figure("restart.fill_path_store", "fill path with the state store", stored, "fills/s",
                   "the same without the store", plain, target="ratio >= 0.5", met=stored / plain >= 0.5),
        ], notes=[f"{len(to_halt)} injected failures on the live runtime; {args.fills:,} fills."])


if __name__ == "__main__":
    main()
