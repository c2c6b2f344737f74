"""Seeded fault-schedule explorer on the deterministic runtime (issue 13, simulation testing).

Each seed draws, from ``random.Random(seed)`` only, a :class:`Schedule`: 2-4 symbols, handler
faults (``raise``/``hang`` on the Nth message of any actor, singletons included), venue faults
(dropped acks, rejects, transient errors, fill delay), and process restarts from the store at
drawn times (the :class:`SimulatedCluster` is closed and a new one built on the same var dir).
The session then runs to quiescence: faults off, quarantined symbols released, a latched kill
switch reset by the operator, every executor reconciled. :class:`InvariantChecker` then compares
every consumer with the venue's own records (see docs/simulation.md).

A failing seed prints the one line that reproduces it: ``bin/chaos --explore 1 --seed-start S``.
"""

from __future__ import annotations

import itertools
import random
import tempfile
from collections import Counter
from collections.abc import Sequence
from decimal import Decimal
from itertools import pairwise
from pathlib import Path
from typing import Any

import attrs
from arbor.actors.cluster.build import SUPERVISED_ROLES
from arbor.actors.cluster.restart import STATE_LOST_WHO
from arbor.messages import (
    ALL_SYMBOLS,
    ActorFailed,
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
from arbor.supervision.faults import FaultyJournalWriter, GuardedSink, ProcessCrash, StorageFaults

ROLES = SUPERVISED_ROLES  # the subtree a symbol supervises, as build.py starts it
OPERATOR = "explorer-operator"
T0 = 1_723_161_600_000_000_000
FAST: dict[str, Any] = {"feature": {"bucket_ms": 250, "short_window": 3, "long_window": 12, "min_samples": 4},
        "regime": {"decision_interval_ms": 250, "confirm_cycles": 1},
        "journal": {"enabled": False},
        "supervision": {"intensity": 2, "period_s": 10.0},
        "risk": {"max_orders_per_window": 10000, "max_daily_loss_pct": "0.5", "max_drawdown_pct": "0.5"},
        "arbitrator": {"max_concurrent_positions": 4},
        # The paper venue never delays a request past its latency (a lost one never arrives): a
        # "no such order" is final after 3 s here (60 s by default, for a live venue's retries).
        "executor": {"ack_timeout_ms": 500, "query_interval_ms": 500, "not_found_grace_ms": 3000}}
STUCK_NS = 8_000_000_000  # an order live at the executor, unknown or settled at the venue, this long after its send
SETTLE_ROUNDS = 10  # at most this many 2 s rounds of release, reset and reconcile at the end
FAIL_CLOSED_WITHIN_NS = 1_000_000_000  # a refused write reaches Risk as a failure within this much simulated time
DISK_PATHS = ("store", "journal", "trade_log")
WRITERS = {"store": "state_store", "journal": "journal", "trade_log": "trade_log"}  # path -> the writer a failure names


@attrs.frozen(kw_only=True)
class Schedule:
    """Everything one seed does; drawn by :func:`draw` from the seed alone."""

    seed: int
    symbols: tuple[str, ...]
    faults: tuple[dict[str, Any], ...]
    paper: dict[str, Any]
    segments: tuple[float, ...]  # seconds of market per process lifetime; a restart between each
    disk_full: tuple[tuple[str, float, float], ...] = ()  # (path, from s, for s): store, journal or trade_log
    crash_after_write_ahead: int = 0  # the process dies after the Nth order's write-ahead, before its send
    journal: bool = False

    def describe(self) -> str:
        f = ", ".join(f"{x['kind']} {x['actor']}#{x['on_message']}" for x in self.faults) or "none"
        venue = {k: v for k, v in self.paper.items() if v}
        disk = ", ".join(f"{p} full {a:.1f}s+{d:.1f}s" for p, a, d in self.disk_full) or "none"
        return (f"seed {self.seed}: symbols {','.join(self.symbols)}; faults {f}; venue {venue}; "
                f"segments {self.segments}; disk {disk}; crash after write-ahead #{self.crash_after_write_ahead}; "
                f"journal {'on' if self.journal else 'off'}")


def draw(seed: int, all_symbols: Sequence[str], session_s: float = 12.0) -> Schedule:
    rng = random.Random(seed)
    symbols = tuple(sorted(rng.sample(list(all_symbols), rng.randint(2, min(4, len(all_symbols))))))
    actors = [f"{s}/{r}" for s in symbols for r in ROLES] + ["risk", "arbitrator"]
    faults = []
    for _ in range(rng.randint(0, 4)):
        faults.append({"actor": rng.choice(actors), "kind": rng.choice(("raise", "raise", "hang")),
                       "on_message": rng.randint(1, 250), "hang_ms": 1})
    paper = {"drop_ack_rate": rng.choice((0.0, 0.0, 0.05, 0.2)), "reject_rate": rng.choice((0.0, 0.0, 0.1)),
             "transient_error_rate": rng.choice((0.0, 0.0, 0.1)), "fill_delay_ms": rng.choice((0, 0, 100, 500))}
    cuts = sorted(rng.uniform(1.0, session_s - 1.0) for _ in range(rng.choice((0, 0, 1, 1, 2))))
    points = [0.0, *cuts, session_s]
    segments = tuple(round(b - a, 3) for a, b in pairwise(points))
    # Drawn after everything above, so the draws above stay what they were for every seed.
    paper.update(duplicate_fill_rate=rng.choice((0.0, 0.0, 0.1, 0.3)), late_fill_rate=rng.choice((0.0, 0.0, 0.1, 0.3)),
                 late_fill_ms=rng.choice((200, 1000)), disconnect_rate=rng.choice((0.0, 0.0, 0.005, 0.02)),
                 disconnect_ms=rng.choice((300, 1500)))
    disk_full = tuple((rng.choice(DISK_PATHS), round(rng.uniform(1.0, session_s - 2.0), 3), rng.choice((0.2, 1.0, 3.0)))
                      for _ in range(rng.choice((0, 0, 0, 1))))
    crash = rng.choice((0, 0, 0, 1, 2, 3))
    journal = any(p == "journal" for p, _, _ in disk_full) or rng.random() < 0.25
    return Schedule(seed=seed, symbols=symbols, faults=tuple(faults), paper=paper, segments=segments,
                    disk_full=disk_full, crash_after_write_ahead=crash, journal=journal)


class InvariantChecker:
    """Observer kept across every process lifetime of one seed; ``check`` compares with the venue.

    Break hooks (``drop_fill``, ``double_apply``) exist so tests can prove the checker is not
    vacuous: they corrupt only what the checker sees, never the system under test."""

    wants_inputs = True

    def __init__(self, symbols: tuple[str, ...], storage: StorageFaults | None = None) -> None:
        self.symbols = symbols
        self.storage = storage
        self.refused_at: dict[str, int] = {}  # path -> when its first refused write was seen
        self.failed_closed: dict[str, int] = {}  # path -> when a failure reported its refused writes
        self.trade_logs: list[Any] = []  # the trade log of each process lifetime, the live one last
        # Orders sent before the store last lost writes (a crash, a refused commit): a Position
        # restored from the older state it kept re-learns their fills from the venue (as one
        # reconciliation fill, or a position sync), so their per-order count is not theirs alone.
        self.before_loss: set[str] = set()
        self._store_refused = 0
        self._lost = False  # the store lost writes since the last process start
        self._fill_coid: dict[tuple[str, str], str] = {}  # (symbol, fill id) -> its client order id
        self.down = {s: False for s in symbols}
        self.state = {s: "ACTIVE" for s in symbols}
        self.global_state = "ACTIVE"
        self.kill_engaged = False
        self.sent: Counter[str] = Counter()
        self.rejected_ids: set[str] = set()
        self.venue_fills: set[tuple[str, str]] = set()
        self.forwarded: dict[int, tuple[str, str, str, Decimal]] = {}
        self.applied: Counter[tuple[str, str]] = Counter()  # (symbol, fill id) -> times Position applied it
        self.applied_qty: dict[tuple[str, str], Decimal] = {}  # (symbol, client order id) -> qty applied
        self.violations: list[str] = []
        self.operator_resets = 0

    def external(self, env: Envelope) -> None:
        pass

    def processed(self, actor_id: str, env: Envelope, now_ns: int) -> None:
        # The symbol gate's promise is made at the venue boundary: while the symbol is down no
        # entry reaches the venue, the ones sent before the failure and still queued included.
        m = env.payload
        if type(m) is PlaceOrder and not m.reduce_only and actor_id.endswith("/venue") and self.down[m.symbol]:
            self.violations.append(f"entry {m.client_order_id} at the venue while {m.symbol} is down")

    def _entry_sent(self, m: PlaceOrder) -> None:
        """Risk's promise is made when the order is sent: no entry leaves the executor while the
        symbol's or the global state is not ACTIVE or the kill switch is engaged. An entry sent
        before that may reach the venue after it (the kill switch's cancels chase it); a symbol
        that is down is the gate's to stop (``processed``)."""
        sym = m.symbol
        if not self.down[sym] and (self.kill_engaged or self.state[sym] != "ACTIVE" or self.global_state != "ACTIVE"):
            self.violations.append(f"entry {m.client_order_id} sent while {sym} state={self.state[sym]} "
                                   f"global={self.global_state} kill_switch={'engaged' if self.kill_engaged else 'off'}")

    def emitted(self, env: Envelope, receivers: tuple[str, ...]) -> None:
        m = env.payload
        t = type(m)
        if self.storage is not None:
            if len(self.storage.refused) != len(self.refused_at):
                for path in self.storage.refused:
                    self.refused_at.setdefault(path, env.ts_recv_ns)
            if self.storage.refused["store"] != self._store_refused:
                self._store_refused = self.storage.refused["store"]
                self.durability_lost()
        if env.sender.endswith("/position") and env.causation_id in self.forwarded:
            sym, fill_id, coid, qty = self.forwarded.pop(env.causation_id)
            self.applied[(sym, fill_id)] += 1
            self._fill_coid[(sym, fill_id)] = coid
            self.applied_qty[(sym, coid)] = self.applied_qty.get((sym, coid), Decimal(0)) + qty
        if t is PlaceOrder and env.sender.endswith("/executor"):
            self.sent[m.client_order_id] += 1
            if not m.reduce_only:
                self._entry_sent(m)
        elif t is OrderFilled:
            key = (m.symbol, m.fill_id)
            if env.sender.endswith("/venue"):
                self.venue_fills.add(key)
            elif env.sender.endswith("/executor"):
                self.forwarded[env.msg_id] = (m.symbol, m.fill_id, m.client_order_id, m.qty)
        elif t is ActorFailed:
            if m.symbol:
                self.down[m.symbol] = True
            if self.storage is not None and (m.kind == "storage" or "WriteAheadFailed" in m.error):
                for path in self.refused_at:  # every refusal so far has failed closed
                    self.failed_closed.setdefault(path, env.ts_recv_ns)
        elif t is SymbolRecovered:
            self.down[m.symbol] = False
        elif t is SymbolQuarantined:
            self.down[m.symbol] = True
        elif t is KillSwitchEngaged:  # the latch, apart from the global scope's state (a reset leaves that as it is)
            self.kill_engaged = True
            if m.who == STATE_LOST_WHO and "store" in self.refused_at:
                # A process starting latched because the last one could not save: the store's
                # failure reaching Risk, for writes refused when no dispatcher ran any more (a
                # stop's final flush; seed 8057).
                self.failed_closed.setdefault("store", env.ts_recv_ns)
        elif t is KillSwitchReset:
            if m.who != OPERATOR:
                self.violations.append(f"kill switch released by {m.who!r}, not by an operator reset")
            self.kill_engaged = False
        elif t is TradingStateChanged:
            if m.scope == ALL_SYMBOLS:
                self.global_state = m.new.value
            elif m.scope in self.state:
                self.state[m.scope] = m.new.value

    def new_lifetime(self) -> None:
        """A process starts: every symbol subtree starts afresh and its gate open (the gate's
        promise is per process; Risk's restored states still hold, checked when an entry is sent)."""
        self.down = dict.fromkeys(self.symbols, False)
        if self._lost:
            # The store lost writes since the last start: the states Risk restores (and announces,
            # all but ACTIVE ones) are the truth from here; the latch it lost is not (a lost
            # state engages it at start; the final check flags a latch Risk no longer holds).
            self._lost = False
            self.state = dict.fromkeys(self.symbols, "ACTIVE")
            self.global_state = "ACTIVE"

    def durability_lost(self) -> None:
        """What was not committed is gone (a crash, a refused store commit): see ``before_loss``."""
        self._lost = True
        self.before_loss.update(self.sent)
        self.before_loss.update(c for _, c in self.applied_qty)

    # -- the final check ------------------------------------------------------------------------

    def check(self, cluster: Any) -> list[str]:
        out = list(self.violations)
        for coid, n in self.sent.items():
            if n > 1:
                out.append(f"client order id {coid} placed {n} times")
        for key, n in self.applied.items():
            if n > 1 and self._fill_coid.get(key) not in self.before_loss:
                out.append(f"fill {key[1]} applied {n} times by Position")
        # Every order's fills at the venue were applied exactly once, the ones the venue's answer
        # lost included (reconciliation applies them as one "<coid>:recon:<qty>" fill).
        for sym in self.symbols:
            venue = cluster.logic(f"{sym}/venue")
            for coid in ({c for s, c in self.applied_qty if s == sym} | set(self.sent)) - self.before_loss:
                rec = venue.order(coid)
                made = rec.filled_qty if rec is not None else Decimal(0)
                got = self.applied_qty.get((sym, coid), Decimal(0))
                if (rec is not None or got) and made != got:
                    out.append(f"{sym} order {coid}: venue filled {made}, Position applied {got}")
        board = cluster.board.snapshot()["symbols"]
        risk = cluster.logic("risk")
        if self.kill_engaged and not risk.controls.kill.engaged:
            out.append("kill switch released without an operator reset (Risk is not latched)")
        arb = cluster.logic("arbitrator")
        for sym in self.symbols:
            venue = cluster.logic(f"{sym}/venue").venue_position().qty
            snap = cluster.logic(f"{sym}/position").snapshot()
            views = {"position": _signed(snap.qty, snap.direction)}
            book = risk.book.get(sym)
            views["risk"] = _signed(book.qty, book.direction)
            _, a_dir, a_qty = arb._positions.get(sym, (None, None, Decimal(0)))
            views["arbitrator"] = _signed(a_qty, a_dir)
            row = board[sym]
            views["operator_view"] = row["qty"] * (-1 if row["direction"] == "SHORT" else 1)
            for who, qty in views.items():
                if qty != venue:
                    out.append(f"{sym}: {who} position {qty} != venue {venue}")
        now = cluster.clock.now_ns()
        for sym in self.symbols:
            venue = cluster.logic(f"{sym}/venue")
            for o in cluster.logic(f"{sym}/executor").open_orders():
                rec = venue.order(o.client_order_id)
                if (rec is None or rec.status.value not in ("NEW", "PARTIALLY_FILLED")) and now - o.sent_ns > STUCK_NS:
                    out.append(f"{sym} order {o.client_order_id} {o.status.value} at the executor "
                               f"{(now - o.sent_ns) / 1e9:.0f}s after its send, {rec.status.value if rec else 'unknown'} "
                               "at the venue")
        for res in risk.book.reservations():
            if cluster.logic(f"{res.symbol}/position").snapshot().state.value != "ENTERING":
                out.append(f"reservation {res.action_id} of {res.symbol} outlives its order")
        for path, t0 in sorted(self.refused_at.items()):
            t1 = self.failed_closed.get(path)
            if t1 is None or t1 - t0 > FAIL_CLOSED_WITHIN_NS:
                when = "never" if t1 is None else f"only {(t1 - t0) / 1e9:.1f}s later"
                out.append(f"{path} writes refused (disk full) and the failure reached Risk {when}")
        if self.trade_logs:
            out += self._check_trade_log(cluster)
        return out

    def _check_trade_log(self, cluster: Any) -> list[str]:
        """Every fill reached the trade log exactly once: its open trade (entry size less the
        closing fills it counted) is the venue's position; trade ids are unique across lifetimes."""
        out = []
        log = self.trade_logs[-1]
        for sym in self.symbols:
            venue = cluster.logic(f"{sym}/venue").venue_position().qty
            mine = log.open_position(sym)
            if mine != venue:
                out.append(f"{sym}: trade log position {mine} != venue {venue}")
        ids = Counter(t["trade_id"] for t in log.closed_trades())
        out += [f"trade id {i} written {n} times" for i, n in ids.items() if n > 1]
        return out


def _signed(qty: Decimal, direction: Any) -> Decimal:
    """Signed quantity; a quantity without a direction stays as it is (so it differs from flat)."""
    return qty * direction.sign if direction is not None else qty


def _settings(schedule: Schedule) -> Any:
    from arbor.config.settings import load_settings

    over: dict[str, Any] = {**FAST, "paper": schedule.paper, "market": {"seed": schedule.seed}}
    if schedule.faults:
        over["faults"] = [dict(f) for f in schedule.faults]
    s = load_settings(over)
    return attrs.evolve(s, symbols=tuple(x for x in s.symbols if x.symbol in schedule.symbols))


def run_seed(seed: int, var_root: Path | None = None) -> tuple[Schedule, list[str], dict[str, int]]:
    """Run one seed to quiescence; returns its schedule, the violations and a few figures."""
    from arbor.config.settings import load_settings

    schedule = draw(seed, [s.symbol for s in load_settings({}).symbols])
    with tempfile.TemporaryDirectory(dir=var_root) as tmp:
        session = _Session(schedule, Path(tmp))
        try:
            session.run()
            session.restart_if_escalated()
            violations = _quiesce(session.cluster, session.checker)
            figures = session.figures()
        finally:
            session.close()
    return schedule, violations, figures


class _Session:
    """One seed's run: process lifetimes on one var dir, each with its trade log (and journal),
    restarts between segments, disk-full windows switched at their times, and a crash after a
    write-ahead followed by a restart that finishes the interrupted segment."""

    def __init__(self, schedule: Schedule, var: Path) -> None:
        self.schedule = schedule
        self.var = var
        self.storage = StorageFaults(crash_after_write_ahead=schedule.crash_after_write_ahead)
        self.checker = InvariantChecker(schedule.symbols, self.storage)
        self.lifetimes = 0
        self.escalations = 0
        self.injected = 0
        self.elapsed = 0.0  # seconds of market run so far, over every lifetime
        self.cluster: Any = None
        self._closers: list[Any] = []
        self._start = T0
        self._codec: Any = None

    def run(self) -> None:
        edges = sorted({t for _, a, d in self.schedule.disk_full for t in (a, a + d)})
        cuts = list(itertools.accumulate(self.schedule.segments))
        self._open()
        for end in sorted({*cuts, *edges}):
            if end > cuts[-1]:
                break
            self._run_until(end)
            self._switch_disks()
            if end in cuts[:-1]:
                self._restart(crashed=False)
        self._switch_disks(final=True)  # faults off for quiescence: the disks are healthy again
        self.storage.crash_after_write_ahead = 0

    def _run_until(self, end: float) -> None:
        while self.elapsed < end - 1e-9:
            before = self.cluster.clock.now_ns()
            try:
                self.cluster.run_for(end - self.elapsed)
                self.elapsed = end
            except ProcessCrash:
                self.elapsed += (self.cluster.clock.now_ns() - before) / 1e9
                self._restart(crashed=True)

    def _switch_disks(self, final: bool = False) -> None:
        now = self.elapsed
        full = {p: (not final and any(a <= now + 1e-9 < a + d for q, a, d in self.schedule.disk_full if q == p))
                for p in DISK_PATHS}
        self.storage.store_full, self.storage.journal_full = full["store"], full["journal"]
        self.storage.trade_log_full = full["trade_log"]

    def _open(self) -> None:
        from arbor.actors.cluster.observers import TradeLog
        from arbor.actors.cluster.simulate import SimulatedCluster

        run_id = f"explore-{self.schedule.seed}-{self.lifetimes}"
        self.lifetimes += 1
        self.checker.new_lifetime()
        path = self.var / "trades.jsonl"
        sink = GuardedSink(open(path, "a", encoding="utf-8", buffering=1), self.storage.trade_log_write)  # noqa: SIM115 -- closed with the lifetime
        trades = TradeLog(path, "paper", run_id=run_id, sink=sink)
        self.checker.trade_logs.append(trades)
        self._closers = [trades]
        # Opened by the cluster after its store (a journal opened before reads as a previous run's);
        # it observes first: what it refuses nobody else sees.
        journal = (lambda: self._journal(run_id)) if self.schedule.journal else None
        self.cluster = SimulatedCluster(_settings(self.schedule), start_ns=self._start, var_dir=self.var,
                                        observers=[trades, self.checker], run_id=run_id, storage_faults=self.storage,
                                        journal=journal)
        if self.cluster.journal is not None:
            self._closers.append(self.cluster.journal)

    def _journal(self, run_id: str) -> Any:
        from arbor.actors.replay.recorder import JournalObserver
        from arbor.messages.codec import Codec
        from arbor.messages.journal import Durability, RunMetadata

        if self._codec is None:
            self._codec = Codec()
        start = self._start
        writer = FaultyJournalWriter(self.var / "journal" / run_id, run_id=run_id, durability=Durability(mode="rotation"),
                                     clock_ns=lambda: start, check=self.storage.journal_append)
        journal = JournalObserver(writer, self._codec, clock_ns=lambda: start)
        journal.start_run(RunMetadata(run_id=run_id, config={}, started_ns=start))
        return journal

    def _restart(self, crashed: bool) -> None:
        """A process restart from the store: a clean stop (everything queued committed) or a crash."""
        c = self.cluster
        self.injected += c.faults.total() if c.faults else 0
        if crashed:
            c.crash()
            self.checker.durability_lost()
        else:
            c.close()
        for closer in self._closers:
            closer.close()
        self._closers = []
        self._start = c.clock.now_ns() + 1_000_000_000
        self._open()

    def restart_if_escalated(self) -> None:
        """A singleton past its restart intensity is held for good (fail closed; start-cluster says
        'stopped for good' and exits 1), so nothing sent to it is applied until the process restarts:
        the operator's answer, done here before quiescence (seed 3349), is a restart from the store."""
        hooks = self.cluster.runtime.supervision
        if hooks is not None and any(getattr(sup, "escalated", False) for sup in hooks.supervisors):
            self.escalations += 1
            self._restart(crashed=False)

    def figures(self) -> dict[str, int]:
        c = self.cluster
        return {"orders": len(self.checker.sent), "fills": len(self.checker.venue_fills),
                "faults": self.injected + (c.faults.total() if c.faults else 0), "restarts": self.lifetimes - 1,
                "crashes": self.storage.crashes, "refused_writes": sum(self.storage.refused.values()),
                "escalations": self.escalations}

    def close(self) -> None:
        if self.cluster is not None:
            self.cluster.close()
        for closer in self._closers:
            closer.close()
        self._closers = []


def _quiesce(cluster: Any, checker: InvariantChecker) -> list[str]:
    """Faults off (the handlers' and the venue's), supervision recovers, the operator releases and resets, executors reconcile;
    rounds until the checker is satisfied or ``SETTLE_ROUNDS`` have passed. Returns the violations."""
    if cluster.faults is not None:
        cluster.faults.enabled = False
        cluster.faults.release.set()
    for sym in checker.symbols:  # the venue's faults too (seeds 5704, 6883); what they hold is delivered
        cluster.logic(f"{sym}/venue").end_fault_injection()
    violations: list[str] = []
    for _ in range(SETTLE_ROUNDS):
        cluster.run_for(1.0)
        now = cluster.clock.now_ns()
        for sym in checker.symbols:
            cluster.runtime.send_now(f"{sym}/supervisor", ReleaseSymbol(symbol=sym, who=OPERATOR, reason="final"))
        if checker.kill_engaged:
            checker.operator_resets += 1
            cluster.runtime.send_now("risk", ResetKillSwitch(who=OPERATOR, reason="explorer: acknowledged"))
        for sym in checker.symbols:
            cluster.runtime.send_now(f"{sym}/executor", Reconcile(symbol=sym, reason="explorer final check",
                                                                 ts_event_ns=now))
        cluster.run_for(1.0)
        violations = checker.check(cluster)
        if not violations:
            break
    return violations


def explore(n: int, seed_start: int, jobs: int = 1, progress: Any = None) -> tuple[int, list[tuple[int, list[str]]]]:
    """Run ``n`` seeds from ``seed_start`` on ``jobs`` processes; ``progress(done, failing)`` is
    called every 250 seeds and after the last. Returns the seeds run and the failing ones."""
    seeds = range(seed_start, seed_start + n)
    failing: list[tuple[int, list[str]]] = []
    done = 0
    pool = None
    if jobs > 1:
        from concurrent.futures import ProcessPoolExecutor

        pool = ProcessPoolExecutor(jobs)
    try:
        results = pool.map(_one, seeds, chunksize=4) if pool is not None else map(_one, seeds)
        for seed, violations in results:
            done += 1
            if violations:
                failing.append((seed, violations))
                if progress is not None:
                    progress(done, failing)
            if progress is not None and (done % 250 == 0 or done == n):
                progress(done, failing)
    finally:
        if pool is not None:
            pool.shutdown()
    return done, failing


def _one(seed: int) -> tuple[int, list[str]]:
    try:
        _, violations, _ = run_seed(seed)
    except Exception as exc:  # a crash of the harness or the system is a finding too
        violations = [f"run crashed: {type(exc).__name__}: {exc}"]
    return seed, violations


def reproduce_line(seed: int) -> str:
    return f"bin/chaos --explore 1 --seed-start {seed}"


def main_explore(n: int, seed_start: int, jobs: int) -> int:
    import time

    t = time.monotonic()

    reported = 0

    def progress(done: int, failing: list[tuple[int, list[str]]]) -> None:
        nonlocal reported
        for seed, violations in failing[reported:]:  # a failing seed at once, not only at the end
            print(f"explore: seed {seed} FAILED ({violations[0]}): {reproduce_line(seed)}", flush=True)
        reported = len(failing)
        if done < n and done % 250 == 0:
            print(f"explore: {done}/{n} seeds, {(done * 60 / (time.monotonic() - t)):.0f} seeds/minute, "
                  f"{len(failing)} failing so far", flush=True)

    done, failing = explore(n, seed_start, jobs, progress)
    minutes = (time.monotonic() - t) / 60
    print(f"explore: {done} seeds from {seed_start} in {minutes * 60:.1f}s "
          f"({done / minutes:.0f} seeds/minute, jobs {jobs}); violations: {sum(len(v) for _, v in failing)}")
    for seed, violations in failing:
        for v in violations:
            print(f"  seed {seed}: {v}")
        print(f"  reproduce: {reproduce_line(seed)}")
    return 1 if failing else 0
