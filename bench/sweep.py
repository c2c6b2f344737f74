"""bench/sweep: N sweep configurations on every core against the same N one after another.

Both legs run the same what-if replays (``actors/replay/sweep.run_tasks``) of the BTCUSDT USD-M
recording (93,954 messages, 345 s of market) from ../shared/data/binance_usdm, N trend-following
configurations differing in ``size_hint``: one after another in this process (the baseline),
then on a ProcessPoolExecutor of ``--jobs`` workers (default: one per core), worker start-up
included. Both legs run ``--rounds`` times, alternating, and the best time of each counts (other
processes on a shared machine slow a leg; the load average is printed beside each round).
Printed: both times and their ratio (target >= 1.8x on 2 cores), and whether every configuration
gave the same decision digest in both legs (it must), and the CPU time per replay in each leg
(what a worker adds: interpreter start-up, imports). Under Linux's autogroup scheduling the
processes of one terminal session share one CPU share, so on a busy machine the workers cannot
outrun the baseline: the ratio means something only on an otherwise idle machine. Usage:
  python bench/sweep.py [--configs N] [--jobs J] [--limit INPUTS] [--rounds R]
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from pathlib import Path

from arbor.actors.replay.sweep import RunTask, run_tasks, with_params
from arbor.actors.replay.whatif import hbt_config
from arbor.config.loader import load_raw
from loguru import logger

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "binance_usdm"
FILE = str(DATA / "usdm_btcusdt_20240808.gz")
TARGET = 1.8


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--configs", type=int, default=4, help="configurations N (default 4)")
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="workers (default: one per core)")
    p.add_argument("--limit", type=int, help="replay only the first INPUTS of the recording (default: all 93,954)")
    p.add_argument("--rounds", type=int, default=2, help="rounds of both legs; the best time of each counts")
    args = p.parse_args()
    if not Path(FILE).is_file():
        print(f"bench/sweep: recording not found: {FILE}", file=sys.stderr)
        return 2
    logger.remove()  # the actors log every decision
    logger.add(sys.stderr, level="ERROR")
    raw = hbt_config([FILE], load_raw(environ={}), ())
    hints = [round(0.1 + 0.8 * i / max(args.configs - 1, 1), 4) for i in range(args.configs)]
    tasks = [RunTask(index=i, raw=with_params(raw, {"size_hint": h}), limit=args.limit) for i, h in enumerate(hints)]
    print(f"{args.configs} configurations (size_hint {hints[0]}..{hints[-1]}), {os.cpu_count()} cores, "
          f"{args.jobs} workers, load average {os.getloadavg()[0]:.1f} (other processes slow both legs)", flush=True)

    serial_times, parallel_times, same = [], [], True
    cpu_serial = cpu_parallel = 0.0
    for r in range(1, args.rounds + 1):
        c0, t0 = _cpu(resource.RUSAGE_SELF), time.perf_counter()
        serial = run_tasks(tasks, jobs=1)
        serial_times.append(time.perf_counter() - t0)
        cpu_serial += _cpu(resource.RUSAGE_SELF) - c0
        c0, t0 = _cpu(resource.RUSAGE_CHILDREN), time.perf_counter()
        parallel = run_tasks(tasks, jobs=args.jobs)
        parallel_times.append(time.perf_counter() - t0)
        cpu_parallel += _cpu(resource.RUSAGE_CHILDREN) - c0
        same = same and [a["digest"] for a in serial] == [b["digest"] for b in parallel]
        print(f"round {r}: one after another {serial_times[-1]:7.2f} s (replays {_mean_replay(serial):.2f} s each), "
              f"{args.jobs} workers {parallel_times[-1]:7.2f} s (replays {_mean_replay(parallel):.2f} s each, "
              f"start-up included in the total)  load {os.getloadavg()[0]:.1f}", flush=True)
    t_serial, t_parallel = min(serial_times), min(parallel_times)
    ratio = t_serial / t_parallel
    print(f"one after another   {t_serial:7.2f} s  (best of {args.rounds}; {serial[0]['inputs']:,} inputs per replay)")
    print(f"{args.jobs} workers           {t_parallel:7.2f} s  (best of {args.rounds})")
    print(f"speed-up            {ratio:7.2f}x  (target >= {TARGET}x on 2 cores: "
          f"{'met' if ratio >= TARGET else 'NOT met'})")
    n = args.rounds * len(tasks)
    print(f"CPU per replay      {cpu_serial / n:7.2f} s one after another, {cpu_parallel / n:.2f} s in a worker "
          f"(start-up included): the work a worker adds is {cpu_parallel / cpu_serial - 1:+.1%}")
    print(f"digests             {'identical in both legs' if same else 'DIFFER between the legs'}")
    return 0 if same else 1


def _cpu(who: int) -> float:
    u = resource.getrusage(who)
    return u.ru_utime + u.ru_stime


def _mean_replay(figures: list[dict]) -> float:
    return sum(f["elapsed_s"] for f in figures) / len(figures)


if __name__ == "__main__":
    sys.exit(main())
