"""``bin/chaos``: the live cluster on the simulated venue under random faults, for a bounded time.

Faults: handlers that raise, hang or kill their thread (every symbol actor and both singletons,
at a per-message rate), and a misbehaving venue (dropped acks, rejects, transient errors,
delayed fills). A chaos operator releases quarantined symbols after a cool-down. At the end the
faults stop, the feed stops, every executor reconciles, and the summary is printed:

  faults injected (actor and venue), restarts, quarantines, orders, fills (informational)
  entries sent while a symbol was not ACTIVE        must be 0
  duplicate orders (a client order id sent twice)   must be 0
  lost fills (a venue fill the executor never passed on,
              or one it passed on that Position never applied)  must be 0
  local vs venue position mismatches at the end     must be 0

Exit status 0 when every must-be-zero figure is zero, 1 otherwise, 2 for bad arguments.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from collections import Counter
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

from arbor.actors.cluster.build import SUPERVISED_ROLES
from arbor.messages import (
    ActorFailed,
    ActorRestarted,
    Envelope,
    KillSwitchEngaged,
    KillSwitchReset,
    OrderFilled,
    PlaceOrder,
    Reconcile,
    ReleaseSymbol,
    ResetKillSwitch,
    SymbolQuarantined,
    SymbolRecovered,
    TradingStateChanged,
)
from arbor.messages.risk import ALL_SYMBOLS

ROLES = SUPERVISED_ROLES  # the subtree a symbol supervises, as build.py starts it


class ChaosMonitor:
    """Watches the traffic and keeps the chaos figures (thread-safe).

    An entry counts as *sent* when the venue actor actually handles it (its input), not when the
    executor emits it: the supervisor refuses entries at the venue boundary while a symbol recovers.
    """

    wants_inputs = True

    def __init__(self, symbols: tuple[str, ...]) -> None:
        self._lock = threading.Lock()
        self.down: dict[str, bool] = {s: False for s in symbols}  # failed/quarantined, not yet recovered
        self.risk_state: dict[str, str] = {s: "ACTIVE" for s in symbols}
        self.global_state = "ACTIVE"
        self.entries_while_not_active = 0
        self.sent: Counter[str] = Counter()
        self.venue_fills: set[tuple[str, str]] = set()
        self.applied_fills: set[tuple[str, str]] = set()  # passed on by the executor
        self._forwarded: dict[int, tuple[str, str]] = {}  # the executor's fill envelope id -> fill
        self.position_fills: set[tuple[str, str]] = set()  # applied by Position (it answered the fill)
        self.failures: Counter[str] = Counter()
        self.restarts = 0
        self.quarantines = 0
        self.quarantined: dict[str, float] = {}
        self.kill_engaged_at: float | None = None
        self.kill_resets = 0
        self.entries_sent = 0
        self.violations: list[str] = []

    def external(self, env: Envelope) -> None:
        pass

    def processed(self, actor_id: str, env: Envelope, now_ns: int) -> None:
        m = env.payload
        if type(m) is not PlaceOrder or m.reduce_only or not actor_id.endswith("/venue"):
            return
        with self._lock:
            active = not self.down[m.symbol] and self.risk_state[m.symbol] == "ACTIVE" and self.global_state == "ACTIVE"
            if active:
                self.entries_sent += 1
            else:
                self.entries_while_not_active += 1
                self.violations.append(f"{m.symbol} {m.client_order_id}: down={self.down[m.symbol]} "
                                       f"risk={self.risk_state[m.symbol]} global={self.global_state}")

    def emitted(self, env: Envelope, receivers: tuple[str, ...]) -> None:
        m = env.payload
        t = type(m)
        if env.sender.endswith("/position") and env.causation_id in self._forwarded:
            # Position applied a fill when it emits because of it (it always answers a fill it applies).
            with self._lock:
                self.position_fills.add(self._forwarded[env.causation_id])
        if t is PlaceOrder:
            with self._lock:
                self.sent[m.client_order_id] += 1
        elif t is OrderFilled:
            with self._lock:
                key = (m.symbol, m.fill_id)
                if env.sender.endswith("/venue"):
                    self.venue_fills.add(key)
                elif env.sender.endswith("/executor"):
                    self.applied_fills.add(key)
                    self._forwarded[env.msg_id] = key
        elif t is ActorFailed:
            with self._lock:
                self.failures[m.kind] += 1
                if m.symbol:
                    self.down[m.symbol] = True
        elif t is ActorRestarted:
            with self._lock:
                self.restarts += 1
        elif t is SymbolRecovered:
            with self._lock:
                self.down[m.symbol] = False
        elif t is SymbolQuarantined:
            with self._lock:
                self.quarantines += 1
                self.down[m.symbol] = True
                self.quarantined[m.symbol] = time.monotonic()
        elif t is KillSwitchEngaged:
            with self._lock:
                self.kill_engaged_at = time.monotonic()
                self.global_state = "HALTED"
        elif t is KillSwitchReset:
            with self._lock:
                self.kill_engaged_at = None
                self.global_state = "ACTIVE"
        elif t is TradingStateChanged:
            with self._lock:
                if m.scope == ALL_SYMBOLS:
                    self.global_state = m.new.value
                elif m.scope in self.risk_state:
                    self.risk_state[m.scope] = m.new.value

    def due_for_release(self, cool_down_s: float) -> list[str]:
        with self._lock:
            now = time.monotonic()
            due = [s for s, t in self.quarantined.items() if now - t >= cool_down_s]
            for s in due:
                del self.quarantined[s]
            return due

    def kill_switch_due(self, cool_down_s: float) -> bool:
        with self._lock:
            if self.kill_engaged_at is not None and time.monotonic() - self.kill_engaged_at >= cool_down_s:
                self.kill_engaged_at = None
                self.kill_resets += 1
                return True
            return False

    def duplicates(self) -> int:
        return sum(1 for n in self.sent.values() if n > 1)

    def lost_fills(self) -> int:
        """Venue fills the executor never passed on, plus fills it passed on that Position never
        applied. Fills the venue dropped on purpose (drop_ack) are never emitted, so they are
        recovered by reconciliation, not counted here."""
        with self._lock:
            return len(self.venue_fills - self.applied_fills) + len(self.applied_fills - self.position_fills)


def chaos_overrides(rate: float, seed: int, var_dir: str = "var/chaos") -> dict[str, Any]:
    """Faults for every symbol actor at ``rate`` per message (hangs and thread kills rarer), the
    singletons at a tenth of it, and a venue that drops acks, rejects and errs on ~5% of orders."""
    faults: list[dict[str, Any]] = []
    from arbor.config.settings import load_settings

    symbols = [s.symbol for s in load_settings().symbols]
    for sym in symbols:
        for role in ROLES:
            faults.append({"actor": f"{sym}/{role}", "kind": "raise", "rate": rate})
        faults.append({"actor": f"{sym}/feature", "kind": "hang", "rate": rate / 10, "hang_ms": 1500})
        faults.append({"actor": f"{sym}/regime", "kind": "kill", "rate": rate / 10})
    for singleton in ("risk", "arbitrator"):
        faults.append({"actor": singleton, "kind": "raise", "rate": rate / 10})
    return {
        "faults": faults,
        "market": {"seed": seed},
        "run": {"tick_interval_ms": 50, "var_dir": var_dir},
        "journal": {"enabled": False},
        "feature": {"bucket_ms": 200, "short_window": 3, "long_window": 10, "min_samples": 4},
        "regime": {"decision_interval_ms": 200, "confirm_cycles": 1},
        "supervision": {"intensity": 8, "period_s": 20.0, "hang_timeout_ms": 500},
        "executor": {"ack_timeout_ms": 1000, "query_interval_ms": 500},
        "arbitrator": {"max_concurrent_positions": 4},
        "paper": {"drop_ack_rate": 0.05, "reject_rate": 0.05, "transient_error_rate": 0.05, "fill_delay_ms": 100},
        "risk": {"max_orders_per_window": 10000, "max_daily_loss_pct": "0.5", "max_drawdown_pct": "0.5"},
    }


def venue_faults(cluster: Any) -> dict[str, int]:
    """Faults the simulated venue injected: dropped acks, random rejects, transient errors."""
    out = {"dropped_acks": 0, "venue_rejected": 0, "transient_error": 0}
    for s in cluster.settings.symbols:
        st = cluster.runtime.ask(s.symbol, lambda d, sym=s.symbol: d.actors[f"{sym}/venue"].stats())
        out["dropped_acks"] += st.get("dropped_acks", 0)
        for reason in ("venue_rejected", "transient_error"):
            out[reason] += st.get("rejects", {}).get(reason, 0)
    return out


def position_mismatches(cluster: Any) -> list[str]:
    out = []
    for s in cluster.settings.symbols:
        def both(d: Any, sym: str = s.symbol) -> tuple[Decimal, Decimal]:
            snap = d.actors[f"{sym}/position"].snapshot()
            ours = snap.qty * (snap.direction.sign if snap.direction else 0)
            return ours, d.actors[f"{sym}/venue"].venue_position().qty
        ours, venue = cluster.runtime.ask(s.symbol, both)
        if ours != venue:
            out.append(f"{s.symbol}: local {ours} venue {venue}")
    return out


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="chaos", description=__doc__.splitlines()[0])
    p.add_argument("--duration", type=float, default=60.0, help="seconds of chaos (default 60)")
    p.add_argument("--rate", type=float, default=0.005, help="fault probability per handled message")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--cool-down", type=float, default=3.0, help="seconds before a quarantined symbol is released")
    p.add_argument("--var-dir", type=Path, default=Path("var/chaos"))
    p.add_argument("--explore", type=int, default=0, metavar="N",
                   help="instead: run N seeds of the deterministic fault-schedule explorer (docs/simulation.md)")
    p.add_argument("--seed-start", type=int, default=0, help="--explore: the first seed")
    p.add_argument("--jobs", type=int, default=1, help="--explore: worker processes")
    args = p.parse_args(argv)
    if args.explore:
        if args.explore < 0 or args.jobs < 1:
            print("chaos: --explore must be > 0 and --jobs >= 1", file=sys.stderr)
            return 2
        from arbor.actors.cluster.explore import main_explore
        from loguru import logger

        logger.remove()  # the explorer reports violations itself; thousands of restarts would flood stderr
        return main_explore(args.explore, args.seed_start, args.jobs)
    if args.duration <= 0 or not 0 < args.rate <= 1:
        print("chaos: --duration must be > 0 and --rate within (0, 1]", file=sys.stderr)
        return 2

    from arbor.actors.cluster.live import LiveCluster
    from arbor.actors.cluster.logs import configure_logging
    from arbor.config.settings import load_settings

    run_dir = args.var_dir / time.strftime("%Y%m%dT%H%M%S")  # a fresh state store for every chaos run
    settings = load_settings(chaos_overrides(args.rate, args.seed, str(run_dir)))
    sink = configure_logging(run_dir / "logs", "INFO", console_level=None)
    monitor = ChaosMonitor(tuple(s.symbol for s in settings.symbols))
    cluster = LiveCluster(settings, f"chaos-{args.seed}", observers=(monitor,))
    faults = cluster.faults
    if faults is None:  # chaos_overrides always plans faults
        raise RuntimeError("chaos: the settings plan no faults")
    print(f"chaos: {args.duration:.0f}s, fault rate {args.rate}/message, seed {args.seed}; logs in {run_dir}",
          flush=True)
    cluster.start()
    deadline = time.monotonic() + args.duration
    try:
        while time.monotonic() < deadline:
            time.sleep(0.25)
            for sym in monitor.due_for_release(args.cool_down):
                cluster.send(f"{sym}/supervisor", ReleaseSymbol(symbol=sym, who="chaos-operator", reason="cool-down"))
            if monitor.kill_switch_due(args.cool_down):  # the operator acknowledges and resets, as in a drill
                cluster.send("risk", ResetKillSwitch(who="chaos-operator", reason="drill: failure acknowledged"))
        faults.enabled = False  # stop injecting, let the system settle
        faults.release.set()
        for sym in monitor.due_for_release(0.0):
            cluster.send(f"{sym}/supervisor", ReleaseSymbol(symbol=sym, who="chaos-operator", reason="final"))
        settle = time.monotonic() + 20
        mismatches: list[str] = []
        while time.monotonic() < settle:
            for s in settings.symbols:
                cluster.send(f"{s.symbol}/executor", Reconcile(symbol=s.symbol, reason="chaos final check",
                                                               ts_event_ns=cluster.clock.now_ns()))
            time.sleep(1.0)
            mismatches = position_mismatches(cluster)
            if not mismatches and monitor.lost_fills() == 0:
                break
        sup = cluster.supervision_status()
        from_venue = venue_faults(cluster)
    finally:
        cluster.stop()
        sink.close()
    injected = dict(faults.injected, **from_venue)
    figures = {
        "entries_sent_while_not_active": monitor.entries_while_not_active,
        "duplicate_orders": monitor.duplicates(),
        "lost_fills": monitor.lost_fills(),
        "position_mismatches": len(mismatches),
    }
    print(f"faults injected: {sum(injected.values())} ({', '.join(f'{k} {v}' for k, v in injected.items())}); "
          f"failures seen: {dict(monitor.failures)}")
    print(f"restarts: {monitor.restarts}  quarantines: {monitor.quarantines}  kill-switch resets: {monitor.kill_resets}  "
          f"poison messages: {sum(v.get('poison', 0) for v in sup.values())}")
    print(f"orders sent: {len(monitor.sent)} (entries while ACTIVE: {monitor.entries_sent})  "
          f"venue fills: {len(monitor.venue_fills)}")
    for name, value in figures.items():
        print(f"{name:<32} {value:>6}   {'ok' if value == 0 else 'MUST BE 0'}")
    for m in mismatches:
        print(f"  mismatch {m}")
    for v in monitor.violations:
        print(f"  entry at the venue while not ACTIVE: {v}")
    if monitor.entries_sent == 0 or not monitor.venue_fills:
        print("chaos: nothing traded, so the figures above prove nothing: lower --rate or run longer")
        return 1
    return 0 if all(v == 0 for v in figures.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
