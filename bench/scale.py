"""Scaling of the multi-process cluster: 1 vs 2 workers on >= 20 simulated symbols.

Two runs per worker count, each a real ``start-cluster --workers N`` process tree:

- **throughput**: the market unpaced (every worker plays its symbols' frames as fast as it can);
  aggregate events/s = frames handled by all workers / their running time. This is the
  capacity of N workers. Unpaced, simulated time runs as fast as the frames are handled, while
  each symbol still decides every 200 ms of simulated time: how many events come between two
  decisions is set by the simulated market's rate. The headline mix (``--unpaced-rate``, default
  300 events/s per symbol nominal, the rate of the paced runs and of a busy live symbol) has about
  one decision per 60 events; the decision-heavy mix (``--decision-heavy-rate``, default 20: the
  simulated market's default rate, run ~20x faster than real time) has one per ~4 events and
  measures the Coordinator's share. For each mix the bench prints the Coordinator's CPU per
  event as a share of the single Worker's;
- **latency**: the market paced at ``--load`` (default 0.5) of the capacity just measured for the
  same number of workers (or at ``--rate`` events/s per symbol if given), for ``--paced-seconds``
  (the simulated market's regimes run at 0.8x-2x its nominal rate: the rate asked for is
  corrected by the factor its first ``--paced-seconds`` have, computed from the same seed);
  tick-to-order = wall time when the Executor hands an order to the venue minus the arrival of
  the market frame behind the decision (its scheduled time: if the Worker is behind, the frame
  waited in its queue), across the process boundary to the Coordinator and back. Orders on
  frames that arrived in the first ``--warmup`` seconds are reported apart (count and max):
  every symbol warms up at once, so their first decisions queue behind each other. The same
  latency from the exchange event time is printed too; it has the venue's millisecond
  resolution, so it adds up to 1 ms the cluster never spent.

For the paced runs it prints the rate asked for and the rate achieved (both also as a fraction
of the capacity), the workers' and the Coordinator's CPU utilisation during the run, and
tick-to-order p50/p99/max with the number of samples (one per order that followed an approval).
Also RSS per worker process and per symbol (worker RSS / its symbols, interpreter included).
Every run stops by itself (``--duration``) and is killed if it overruns by a minute.
The unpaced runs are repeated (``--repeat``, default 3, alternating 1 and 2 workers) and the
median of each worker count is used; the paced runs are set from the headline mix's medians.
Beside each ratio it prints the Coordinator's CPU per event as a share of the single Worker's
(c/w, from the 1-Worker run) and the ceiling that share leaves two Workers on 2 cores,
2 / (1 + c/w). For each paced run it prints each node thread's share of the run on a CPU and
waiting for one (a node starved of CPU, against one that waits on its own) and its wake-ups.
``--hops`` traces every decision's hops across the processes (``cluster.trace_hops``) and prints
p50/p99 per hop; ``--repeat 0 --rate R [--workers 1 2] [--turn-ms T]`` makes only the paced runs
(the smallest run that shows the hops; ``--turn-ms 0``: nodes wait only in thespian's watch).
Usage: python bench/scale.py [--symbols 20] [--seconds 12] [--load 0.5 | --rate R] [--repeat 3]
       [--paced-seconds 30] [--warmup 3] [--unpaced-rate 300] [--decision-heavy-rate 20 | 0] [--json OUT]
       [--hops] [--repeat 0 --rate R --workers 1 2 --turn-ms 20]
``--json OUT`` writes the headline figures for bench/all (2 workers against 1; each latency
against the single Worker's time per event at its capacity).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

from figures import Figure, write_bench_json

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def config(path: Path, symbols: int, paced: bool, rate: float, hops: bool = False, turn_ms: float = 20.0) -> Path:
    text = f"""
[run]
summary_interval_s = 60
[market]
paced = {"true" if paced else "false"}
[feature]
bucket_ms = 200
min_samples = 5
short_window = 5
long_window = 20
[regime]
decision_interval_ms = 200
confirm_cycles = 1
[arbitrator]
max_concurrent_positions = 10
[risk]
max_orders_per_window = 100000
stale_data_ms = 600000
[cluster]
admin_port = {free_port()}
trace_hops = {"true" if hops else "false"}
turn_ms = {turn_ms}
"""
    for i in range(symbols):
        strat = "trend_following" if i % 2 else "mean_reversion"
        text += (f'[[symbols]]\nsymbol = "S{i:02d}USDT"\nstrategy = "{strat}"\nstart_price = "{100 + i}"\n'
                 f'tick_size = "0.01"\nqty_step = "0.01"\nevents_per_s = {rate}\n')
    path.write_text(text)
    return path


def sim_rate_factor(symbols: int, seconds: float) -> float:
    """Frames the simulated market makes in its first ``seconds``, as a multiple of its nominal
    ``events_per_s``: its regimes run at 0.8x to 2x the nominal rate, and which ones come first
    is fixed by the seed. The paced runs ask for the nominal rate that gives the load wanted."""
    import tomllib

    sys.path.insert(0, str(REPO))
    from arbor.actors.cluster.build import market_frames
    from arbor.config.settings import load_settings

    with tempfile.TemporaryDirectory(prefix="arbor-scale-") as tmp:
        raw = tomllib.loads(config(Path(tmp) / "c.toml", symbols, True, 20.0).read_text())
    raw.pop("cluster", None)
    end = int(seconds * 1e9)
    n = 0
    for ts, _, _ in market_frames(load_settings(raw), 0):
        if ts >= end:
            break
        n += 1
    return n / (20.0 * symbols * seconds)


def load_avg() -> float:
    try:
        return float(Path("/proc/loadavg").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return float("nan")


def pct(sorted_ns: list[int], q: float) -> float:
    """The ``q`` quantile of sorted nanoseconds, in milliseconds (nan if there are none)."""
    if not sorted_ns:
        return float("nan")
    return sorted_ns[min(len(sorted_ns) - 1, int(q * len(sorted_ns)))] / 1e6


def hop_table(var: Path, workers: int, since: int) -> dict[str, tuple[float, float, int]]:
    """Each hop's p50/p99 (ms) and sample count from the nodes' hop records (``cluster.trace_hops``),
    for orders on frames due at or after ``since`` (wall-clock ns); the last row is the whole path."""
    sys.path.insert(0, str(REPO))
    from arbor.actors.cluster.hops import HOPS, join

    def records(name: str) -> list[dict]:
        try:
            return json.loads((var / "cluster" / "status" / f"{name}.latency.json").read_text()).get("hops", [])
        except OSError:
            return []

    middle = records("coordinator")
    joined = [r for k in range(workers) for r in join(records(f"worker-{k}"), middle) if r["due"] >= since]
    out = {}
    for a, b in [*zip(HOPS, HOPS[1:], strict=False), (HOPS[0], HOPS[-1])]:
        d = sorted(r[b] - r[a] for r in joined)
        out[f"{a} -> {b}"] = (pct(d, 0.5), pct(d, 0.99), len(d))
    return out


def run(workers: int, symbols: int, seconds: float, paced: bool, rate: float, warmup: float = 0.0,
        hops: bool = False, turn_ms: float = 20.0) -> dict:
    with tempfile.TemporaryDirectory(prefix="arbor-scale-") as tmp:
        tmp_path = Path(tmp)
        cfg = config(tmp_path / "c.toml", symbols, paced, rate, hops, turn_ms)
        var = tmp_path / "var"
        env = {k: v for k, v in os.environ.items() if not k.startswith("ARBOR__")}
        p = subprocess.run([sys.executable, "-m", "arbor.actors.cluster.main", "--config", str(cfg), "--var-dir", str(var),
                            "--workers", str(workers), "--duration", str(seconds), "--quiet"],
                           cwd=REPO, env=env, capture_output=True, text=True, timeout=seconds + 60)
        if p.returncode != 0:
            raise SystemExit(f"cluster run failed ({p.returncode}): {p.stderr[-2000:]}")
        frames = 0
        span = 0.0
        rss = []
        per_symbol = []
        cpu = []
        sched: list[dict] = []  # each worker's thread: time on a CPU, waiting for one, wake-ups
        lat: list[int] = []
        warm: list[int] = []
        ev_lat: list[int] = []
        orders = 0
        for k in range(workers):
            st = json.loads((var / "cluster" / "status" / f"worker-{k}.json").read_text())
            frames += st["frames"]
            w_span = (st["ts_ns"] - st["started_ns"]) / 1e9
            span = max(span, w_span)
            rss.append(st["rss_kb"])
            per_symbol.append(st["rss_kb"] / max(1, len(st["symbols"])))
            cpu.append(st.get("cpu_s", float("nan")) / w_span if w_span else float("nan"))
            sched.append(st.get("sched", {}))
            orders += sum(r["orders"] for r in st["symbols"].values())
            try:
                got = json.loads((var / "cluster" / "status" / f"worker-{k}.latency.json").read_text())
            except OSError:
                continue
            since = st["started_ns"] + int(warmup * 1e9)
            for arrived, ns in zip(got["arrivals_ns"], got["latencies_ns"], strict=True):
                (lat if arrived >= since else warm).append(ns)
            ev_lat += got["event_latencies_ns"]
        coord = json.loads((var / "cluster" / "status" / "coordinator.json").read_text())
        started = min(json.loads((var / "cluster" / "status" / f"worker-{k}.json").read_text())["started_ns"]
                      for k in range(workers))
        hop = hop_table(var, workers, started + int(warmup * 1e9)) if hops else {}
        lat.sort()
        ev_lat.sort()
        return {"workers": workers, "events": frames, "events_per_s": frames / span if span else 0.0, "orders": orders,
                "p50_ms": pct(lat, 0.5), "p99_ms": pct(lat, 0.99), "max_ms": pct(lat, 1.0),
                "event_p50_ms": pct(ev_lat, 0.5), "event_p99_ms": pct(ev_lat, 0.99),
                "warmup_samples": len(warm), "warmup_max_ms": max(warm) / 1e6 if warm else float("nan"),
                "samples": len(lat), "rss_worker_kb": rss, "rss_per_symbol_kb": per_symbol,
                "rss_coordinator_kb": coord["rss_kb"], "worker_cpu": cpu,
                "coordinator_cpu": coord.get("cpu_s", float("nan")) / span if span else float("nan"),
                "rate": rate, "load_after": load_avg(), "hops": hop, "span_s": span,
                "sched": [*sched, coord.get("sched", {})]}


def throughput(a: argparse.Namespace, rate: float) -> tuple[dict[int, list[dict]], dict[int, dict]]:
    """Unpaced runs at ``rate`` events/s per symbol (nominal), ``a.repeat`` per worker count,
    alternating 1 and 2 workers (capacity varies by +-10% from run to run on a shared machine);
    returns every run and the median run of each count."""
    runs: dict[int, list[dict]] = {1: [], 2: []}
    for _ in range(a.repeat):
        for n in (1, 2):
            runs[n].append(run(n, a.symbols, a.seconds, paced=False, rate=rate))
    return runs, {n: sorted(rs, key=lambda r: r["events_per_s"])[len(rs) // 2] for n, rs in runs.items()}


def report_throughput(label: str, runs: dict[int, list[dict]], thr: dict[int, dict], target: bool) -> float:
    """Print one mix's capacities, CPU and ratio; returns the ratio of the medians."""
    print(f"{label}:")
    for n in (1, 2):
        r = thr[n]
        print(f"  unpaced, {n} worker(s): " + ", ".join(f"{x['events_per_s']:,.0f}" for x in runs[n])
              + f" events/s; median run: CPU worker {'/'.join(f'{x:.0%}' for x in r['worker_cpu'])} + coordinator "
              f"{r['coordinator_cpu']:.0%}, {r['orders']} orders")
    one = thr[1]
    ratio = thr[2]["events_per_s"] / one["events_per_s"] if one["events_per_s"] else float("nan")
    each = [b["events_per_s"] / a_["events_per_s"] for a_, b in zip(runs[1], runs[2], strict=True) if a_["events_per_s"]]
    # The Coordinator's CPU per event against the single Worker's (both from the 1-worker run):
    # two Workers and the Coordinator share the cores, so the larger this share, the less a second
    # Worker adds (its batches amortize some of the Coordinator's cost, so it is no hard cap).
    share = one["coordinator_cpu"] / one["worker_cpu"][0] if one["worker_cpu"][0] else float("nan")
    # On 2 cores, with w the Worker's and c the Coordinator's CPU per event, two Workers reach at
    # most 2 / (w + c) events/s against one Worker's 1 / w (if one Worker had a core to itself):
    # a ceiling of 2w / (w + c) = 2 / (1 + c/w), less whatever else runs (the OS, other processes).
    ceiling = 2 / (1 + share)
    per_event = one["worker_cpu"][0] / one["events_per_s"] * 1e6 if one["events_per_s"] else float("nan")
    verdict = f" [target 1.7: {'met' if ratio >= 1.7 else 'NOT met'}]" if target else ""
    print(f"  ratio 2 workers / 1 worker: {ratio:.2f} (medians; run by run: {', '.join(f'{x:.2f}' for x in each)})"
          f"{verdict}; the Coordinator's CPU per event is {share:.0%} of the single Worker's "
          f"({per_event * share:.0f} vs {per_event:.0f} us): ceiling on 2 cores 2 / (1 + c/w) = {ceiling:.2f}")
    # What the ceiling assumes: the cluster gets both cores. Other processes on the host take theirs.
    got = {n: sum(thr[n]["worker_cpu"]) + thr[n]["coordinator_cpu"] for n in (1, 2)}
    print(f"  cores the cluster's nodes got (Workers + Coordinator, of {os.cpu_count()}): {got[1]:.2f} with 1 Worker, "
          f"{got[2]:.2f} with 2 (the ratio reaches the ceiling only if the nodes get every core); load average "
          f"after {thr[2]['load_after']:.2f}")
    return ratio


def print_hops(lat: dict[int, dict]) -> None:
    """Each hop's p50/p99 for each paced run (the ``--hops`` table)."""
    names = list(next(iter(lat.values()))["hops"])
    print("tick-to-order hop by hop (ms; each row from the instant the one above ends):")
    print(f"  {'hop':<28}" + "".join(f"{f'{n} worker(s) p50 / p99':>26}" for n in lat))
    for h in names:
        print(f"  {h:<28}" + "".join(f"{lat[n]['hops'][h][0]:>15.2f} / {lat[n]['hops'][h][1]:>7.2f}  " for n in lat))
    print("  orders with every hop: " + ", ".join(f"{n} worker(s) {next(iter(lat[n]['hops'].values()))[2]}" for n in lat))


def print_sched(r: dict) -> None:
    """Each node's thread: share of the run on a CPU, share waiting for one (runnable: another
    process had the core), and wake-ups per second (each one a chance to wait for a core)."""
    span = r["span_s"] or float("nan")
    names = [f"worker-{k}" for k in range(r["workers"])] + ["coordinator"]
    print("    node threads (on a CPU / waiting for a CPU / wake-ups per s): " + ", ".join(
        f"{name} {s['run_s'] / span:.0%} / {s['runqueue_s'] / span:.0%} / {s['runs'] / span:,.0f}"
        for name, s in zip(names, r["sched"], strict=True) if s))


def latency_only(a: argparse.Namespace) -> None:
    """``--repeat 0 --rate R``: only the paced runs, at ``R`` events/s per symbol (nominal)."""
    print(f"{a.symbols} simulated symbols, paced at {a.rate:g} events/s per symbol nominal, {a.paced_seconds:.0f} s "
          f"per run, turn_ms {a.turn_ms:g}, {os.cpu_count()} cores, load average {load_avg():.2f} before")
    lat = {n: run(n, a.symbols, a.paced_seconds, paced=True, rate=a.rate, warmup=a.warmup, hops=a.hops,
                  turn_ms=a.turn_ms) for n in a.workers}
    for n, lt in lat.items():
        print(f"  {n} worker(s): achieved {lt['events_per_s']:,.0f} events/s; CPU worker "
              f"{'/'.join(f'{x:.0%}' for x in lt['worker_cpu'])}, coordinator {lt['coordinator_cpu']:.0%}; "
              f"tick-to-order p50 {lt['p50_ms']:.2f} ms, p99 {lt['p99_ms']:.2f} ms, max {lt['max_ms']:.2f} ms, "
              f"{lt['samples']} samples; load average after {lt['load_after']:.2f}")
        print_sched(lt)
    if a.hops:
        print_hops(lat)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--symbols", type=int, default=20)
    ap.add_argument("--seconds", type=float, default=12.0)
    ap.add_argument("--load", type=float, default=0.5, help="paced rate as a fraction of the measured capacity")
    ap.add_argument("--rate", type=float, default=None, help="events/s per symbol in the paced runs (overrides --load)")
    ap.add_argument("--unpaced-rate", type=float, default=300.0,
                    help="events/s per symbol (nominal) of the market in the throughput runs")
    ap.add_argument("--decision-heavy-rate", type=float, default=20.0,
                    help="the same for the decision-heavy throughput runs (0: skip them)")
    ap.add_argument("--repeat", type=int, default=3, help="unpaced runs per worker count (the median is used)")
    ap.add_argument("--paced-seconds", type=float, default=30.0, help="length of each paced (latency) run")
    ap.add_argument("--warmup", type=float, default=3.0,
                    help="orders on frames that arrived this long after a worker started are reported apart")
    ap.add_argument("--json", type=Path, metavar="OUT", help="write the figures to this file (for bench/all)")
    ap.add_argument("--hops", action="store_true",
                    help="trace each decision's hops in the paced runs (cluster.trace_hops) and print p50/p99 per hop")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2], choices=[1, 2],
                    help="with --rate and --repeat 0 (no throughput runs): the paced runs to make")
    ap.add_argument("--turn-ms", type=float, default=20.0,
                    help="with --repeat 0: cluster.turn_ms of the paced runs (0: nodes wait only in thespian's watch)")
    a = ap.parse_args()
    if a.repeat == 0:
        if a.rate is None:
            ap.error("--repeat 0 (no throughput runs) needs --rate")
        latency_only(a)
        return
    print(f"{a.symbols} simulated symbols, {a.seconds:.0f} s per run, {os.cpu_count()} cores, "
          f"load average {load_avg():.2f} before")
    runs, thr = throughput(a, a.unpaced_rate)
    heavy = throughput(a, a.decision_heavy_rate) if a.decision_heavy_rate > 0 else None
    factor = sim_rate_factor(a.symbols, a.paced_seconds)
    rates = {n: a.rate if a.rate is not None else a.load * thr[n]["events_per_s"] / a.symbols / factor for n in (1, 2)}
    print(f"the simulated market makes {factor:.2f}x its nominal rate in the first {a.paced_seconds:.0f} s: "
          f"the paced runs ask for the nominal rate / {factor:.2f}")
    lat = {n: run(n, a.symbols, a.paced_seconds, paced=True, rate=rates[n], warmup=a.warmup, hops=a.hops)
           for n in (1, 2)}
    print(f"tick-to-order: frame arrival -> order handed to the venue, orders on frames that arrived "
          f"{a.warmup:.0f} s or more after the start")
    print(f"{'workers':>7} {'events/s (unpaced)':>19} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'samples':>7} "
          f"{'RSS/worker MB':>14} {'RSS/symbol MB':>14} {'coord MB':>9}")
    for n in (1, 2):
        t, lt = thr[n], lat[n]
        print(f"{n:>7} {t['events_per_s']:>19,.0f} {lt['p50_ms']:>8.2f} {lt['p99_ms']:>8.2f} {lt['max_ms']:>8.2f} "
              f"{lt['samples']:>7} {'/'.join(f'{x / 1024:.0f}' for x in lt['rss_worker_kb']):>14} "
              f"{'/'.join(f'{x / 1024:.1f}' for x in lt['rss_per_symbol_kb']):>14} {lt['rss_coordinator_kb'] / 1024:>9.0f}")
    for n in (1, 2):
        lt = lat[n]
        print(f"  {n} worker(s), warm-up (first {a.warmup:.0f} s: every symbol's first decisions fall in the same "
              f"instant): {lt['warmup_samples']} orders, max {lt['warmup_max_ms']:.2f} ms; from the exchange event "
              f"time (ms resolution, all orders): p50 {lt['event_p50_ms']:.2f} ms, p99 {lt['event_p99_ms']:.2f} ms")
    print("paced (latency) runs:")
    for n in (1, 2):
        t, lt = thr[n], lat[n]
        cap = t["events_per_s"]
        print(f"  {n} worker(s): asked {rates[n] * a.symbols * factor:,.0f} events/s ({rates[n]:.1f}/symbol nominal, "
              f"{rates[n] * a.symbols * factor / cap:.0%} of capacity {cap:,.0f}), achieved {lt['events_per_s']:,.0f} "
              f"({lt['events_per_s'] / cap:.0%}); CPU worker {'/'.join(f'{x:.0%}' for x in lt['worker_cpu'])}, "
              f"coordinator {lt['coordinator_cpu']:.0%}; {lt['orders']} orders; load average after {lt['load_after']:.2f}")
        print_sched(lt)
    if a.hops:
        print_hops(lat)
    ratio = report_throughput(f"throughput, market-data mix ({a.unpaced_rate:g} events/s per symbol nominal, as live "
                              f"markets and the paced runs: a decision every 200 ms per symbol)", runs, thr, target=True)
    one = thr[1]["events_per_s"]
    per_event = "1 Worker's time per event"
    figures = [Figure("scale.capacity_2", f"2 Workers, {a.symbols} symbols, unpaced", thr[2]["events_per_s"],
                      "events/s", "1 Worker", one, target="ratio >= 1.7", met=ratio >= 1.7)]
    for n in (1, 2):
        figures += [Figure(f"scale.p{q}_{n}", f"tick-to-order p{q}, {n} Worker(s), paced at {a.load:.0%} of capacity",
                           lat[n][f"p{q}_ms"], "ms", per_event, 1e3 / one if one else 0.0, higher_is_better=False,
                           target="< 5 ms" if q == 99 else "", met=lat[n]["p99_ms"] < 5 if q == 99 else None)
                    for q in (50, 99)]
    write_bench_json(a.json, "scale", figures, notes=[
        f"{a.symbols} simulated symbols at {a.unpaced_rate:g} events/s each (nominal), medians of {a.repeat} "
        f"unpaced runs of {a.seconds:g} s per worker count, paced runs of {a.paced_seconds:g} s."])
    if heavy is not None:
        report_throughput(f"throughput, decision-heavy mix ({a.decision_heavy_rate:g} events/s per symbol nominal: "
                          f"simulated time runs ~20x faster than real time, so about one event in four brings a "
                          f"decision to the Coordinator)", *heavy, target=False)


if __name__ == "__main__":
    main()
