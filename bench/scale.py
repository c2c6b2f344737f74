"""Scaling of the multi-process cluster: 1 vs 2 workers on >= 20 simulated symbols.

Two runs per worker count, each a real ``start-cluster --workers N`` process tree:

- **throughput**: the market unpaced (every worker plays its symbols' frames as fast as it can);
  aggregate events/s = frames handled by all workers / their running time;
- **latency**: the market paced at ``--rate`` events/s per symbol; tick-to-order = wall time
  when the Executor hands an order to the venue minus the event time of the newest market data
  behind the decision (``Action.data_ts_ns``), across the process boundary and back.

Also RSS per worker process and per symbol (worker RSS / its symbols, interpreter included).
Usage: python bench/scale.py [--symbols 20] [--seconds 12] [--rate 20]
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

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def config(path: Path, symbols: int, paced: bool, rate: float) -> Path:
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
"""
    for i in range(symbols):
        strat = "trend_following" if i % 2 else "mean_reversion"
        text += (f'[[symbols]]\nsymbol = "S{i:02d}USDT"\nstrategy = "{strat}"\nstart_price = "{100 + i}"\n'
                 f'tick_size = "0.01"\nqty_step = "0.01"\nevents_per_s = {rate}\n')
    path.write_text(text)
    return path


def run(workers: int, symbols: int, seconds: float, paced: bool, rate: float) -> dict:
    with tempfile.TemporaryDirectory(prefix="arbor-scale-") as tmp:
        tmp_path = Path(tmp)
        cfg = config(tmp_path / "c.toml", symbols, paced, rate)
        var = tmp_path / "var"
        env = {k: v for k, v in os.environ.items() if not k.startswith("ARBOR__")}
        p = subprocess.run([sys.executable, "-m", "actors.cluster.main", "--config", str(cfg), "--var-dir", str(var),
                            "--workers", str(workers), "--duration", str(seconds), "--quiet"],
                           cwd=REPO, env=env, capture_output=True, text=True, timeout=seconds + 60)
        if p.returncode != 0:
            raise SystemExit(f"cluster run failed ({p.returncode}): {p.stderr[-2000:]}")
        frames = 0
        span = 0.0
        rss = []
        per_symbol = []
        lat: list[int] = []
        orders = 0
        for k in range(workers):
            st = json.loads((var / "cluster" / "status" / f"worker-{k}.json").read_text())
            frames += st["frames"]
            span = max(span, (st["ts_ns"] - st["started_ns"]) / 1e9)
            rss.append(st["rss_kb"])
            per_symbol.append(st["rss_kb"] / max(1, len(st["symbols"])))
            orders += sum(r["orders"] for r in st["symbols"].values())
            try:
                lat += json.loads((var / "cluster" / "status" / f"worker-{k}.latency.json").read_text())["latencies_ns"]
            except OSError:
                pass
        coord = json.loads((var / "cluster" / "status" / "coordinator.json").read_text())
        lat.sort()
        pct = (lambda q: lat[min(len(lat) - 1, int(q * len(lat)))] / 1e6) if lat else (lambda q: float("nan"))
        return {"workers": workers, "events": frames, "events_per_s": frames / span if span else 0.0, "orders": orders,
                "p50_ms": pct(0.5), "p99_ms": pct(0.99), "samples": len(lat), "rss_worker_kb": rss,
                "rss_per_symbol_kb": per_symbol, "rss_coordinator_kb": coord["rss_kb"]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--symbols", type=int, default=20)
    ap.add_argument("--seconds", type=float, default=12.0)
    ap.add_argument("--rate", type=float, default=20.0, help="events/s per symbol in the paced (latency) run")
    a = ap.parse_args()
    print(f"{a.symbols} simulated symbols, {a.seconds:.0f} s per run, {os.cpu_count()} cores")
    thr = {n: run(n, a.symbols, a.seconds, paced=False, rate=a.rate) for n in (1, 2)}
    lat = {n: run(n, a.symbols, a.seconds, paced=True, rate=a.rate) for n in (1, 2)}
    print(f"{'workers':>7} {'events/s (unpaced)':>19} {'p50 ms':>8} {'p99 ms':>8} {'orders':>7} "
          f"{'RSS/worker MB':>14} {'RSS/symbol MB':>14} {'coord MB':>9}")
    for n in (1, 2):
        t, l = thr[n], lat[n]
        print(f"{n:>7} {t['events_per_s']:>19,.0f} {l['p50_ms']:>8.2f} {l['p99_ms']:>8.2f} {l['samples']:>7} "
              f"{'/'.join(f'{x / 1024:.0f}' for x in l['rss_worker_kb']):>14} "
              f"{'/'.join(f'{x / 1024:.1f}' for x in l['rss_per_symbol_kb']):>14} {l['rss_coordinator_kb'] / 1024:>9.0f}")
    ratio = thr[2]["events_per_s"] / thr[1]["events_per_s"] if thr[1]["events_per_s"] else float("nan")
    print(f"throughput ratio 2 workers / 1 worker: {ratio:.2f}")


if __name__ == "__main__":
    main()
