"""bench/all: run the benches README.md quotes, keep their figures, and rewrite README's bench table.

Each bench runs as its own process (``python bench/NAME.py ... --json var/bench/NAME.json``, its
output in ``var/bench/NAME.log``), one after another, each bounded by a timeout. The figures of
all of them, with the machine, the load average before and after each bench and the commit, go to
``var/bench/results.json``; then the region of README.md between ``<!-- bench:begin`` and
``<!-- bench:end -->`` is rewritten from that file (bench/figures.py renders it).

``--quick`` runs every bench shorter (fewer rounds, events and failures: a few minutes in all);
``--only NAME[,NAME]`` runs just those and keeps the other benches' last figures from the results
file; ``--render`` only rewrites README from the results file; ``--no-readme`` leaves README alone.
A bench that fails is reported (exit status 1) and README keeps that bench's last figures.
Usage: bench/all [--quick] [--only NAME,...] [--render] [--no-readme] [--out DIR] [--readme FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import figures

REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Bench:
    """One bench script and its arguments, full and quick; ``timeout_s`` bounds one run of it."""

    name: str
    script: str
    full: tuple[str, ...]
    quick: tuple[str, ...]
    timeout_s: float


BENCHES = (
    Bench("replay", "bench/replay.py", ("--rounds", "5"), ("--rounds", "3", "--fsync-records", "500"), 900),
    Bench("peer", "bench/peer.py", ("--rounds", "3"), ("--rounds", "1"), 900),
    Bench("pipeline", "bench/pipeline.py", (), ("--events", "20000", "--latency-seconds", "4"), 600),
    Bench("restart", "bench/restart.py", (), ("--failures", "12", "--fills", "2000"), 600),
    Bench("decode", "bench/decode.py", ("--repeat", "3"), ("--repeat", "1"), 600),
    Bench("scale", "bench/scale.py", (),
          ("--repeat", "1", "--seconds", "8", "--paced-seconds", "10", "--decision-heavy-rate", "0"), 1200),
)


def load_average() -> list[float]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


def now_utc() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")


def run_bench(bench: Bench, quick: bool, out: Path, run_date: str) -> dict[str, Any]:
    """Run one bench to its JSON file; return its entry for the results file (figures or failure)."""
    json_path = out / f"{bench.name}.json"
    log_path = out / f"{bench.name}.log"
    json_path.unlink(missing_ok=True)
    args = [sys.executable, str(REPO / bench.script), *(bench.quick if quick else bench.full), "--json", str(json_path)]
    entry: dict[str, Any] = {"run": run_date, "date": now_utc(), "commit": figures.git_commit(), "quick": quick,
                             "command": " ".join(["python", bench.script, *(bench.quick if quick else bench.full)]),
                             "load_before": load_average()}
    t0 = time.monotonic()
    with log_path.open("w") as log:
        try:
            proc = subprocess.run(args, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, timeout=bench.timeout_s)
            rc: int | str = proc.returncode
        except subprocess.TimeoutExpired:
            rc = f"timed out after {bench.timeout_s:.0f} s"
    entry["elapsed_s"] = round(time.monotonic() - t0, 1)
    entry["load_after"] = load_average()
    if rc != 0 or not json_path.is_file():
        entry["failed"] = f"exit {rc}" if isinstance(rc, int) else rc
        return entry
    doc = json.loads(json_path.read_text())
    entry.update(figures=doc["figures"], notes=doc.get("notes", []), skipped=doc.get("skipped", ""))
    return entry


def merge(previous: dict[str, Any], fresh: dict[str, Any], order: list[str]) -> dict[str, Any]:
    """The results file's benches after a run: each bench that ran now, in ``order``; a bench that
    failed now keeps its previous figures, marked with the failure; one not run now keeps its
    previous entry as it was (without an older failure mark)."""
    out: dict[str, Any] = {}
    for name in order:
        entry, kept = fresh.get(name), previous.get(name)
        if entry is not None and not entry.get("failed"):
            out[name] = entry
        elif entry is not None and kept is not None:
            out[name] = {**kept, "last_failure": entry["failed"]}
        elif entry is None and kept is not None:
            out[name] = {k: v for k, v in kept.items() if k != "last_failure"}
    return out


def summary(name: str, entry: dict[str, Any]) -> str:
    head = f"{name}: {entry.get('elapsed_s', 0):.0f} s"
    if entry.get("failed"):
        return f"{head}, FAILED ({entry['failed']})"
    if entry.get("skipped"):
        return f"{head}, skipped: {entry['skipped']}"
    parts = []
    for d in entry.get("figures", []):
        f = figures.figure_from_json(d)
        ratio = f" (ratio {f.ratio:.3g} to {f.baseline})" if f.ratio is not None else ""
        parts.append(f"{f.label}: {figures.format_value(f.value, f.unit)}{ratio}")
    return head + "\n  " + "\n  ".join(parts)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="shorter runs of every bench (a few minutes in all)")
    p.add_argument("--only", help="comma-separated bench names; the others keep their last figures")
    p.add_argument("--render", action="store_true", help="only rewrite README from the results file")
    p.add_argument("--no-readme", action="store_true", help="leave README.md alone")
    p.add_argument("--out", type=Path, default=REPO / "var" / "bench", help="where the results and logs go")
    p.add_argument("--readme", type=Path, default=REPO / "README.md")
    args = p.parse_args(argv)
    results_path = args.out / "results.json"
    names = [b.name for b in BENCHES]
    only = [n.strip() for n in args.only.split(",")] if args.only else names
    unknown = sorted(set(only) - set(names))
    if unknown:
        print(f"bench/all: unknown bench {', '.join(unknown)} (known: {', '.join(names)})", file=sys.stderr)
        return 2
    previous: dict[str, Any] = json.loads(results_path.read_text()) if results_path.is_file() else {}
    if args.render:
        if not previous:
            print(f"bench/all: no results file at {results_path}", file=sys.stderr)
            return 2
        figures.rewrite_file(args.readme, results_path)
        print(f"rewrote the bench region of {args.readme} from {results_path}")
        return 0

    args.out.mkdir(parents=True, exist_ok=True)
    run: dict[str, Any] = {"date": now_utc(), "quick": args.quick, "machine": figures.machine(),
                           "load_before": load_average()}
    fresh: dict[str, Any] = {}
    t0 = time.monotonic()
    for bench in BENCHES:
        if bench.name in only:
            print(f"running {bench.name} ...", flush=True)
            fresh[bench.name] = run_bench(bench, args.quick, args.out, run["date"])
            print(summary(bench.name, fresh[bench.name]), flush=True)
    failed = [name for name, entry in fresh.items() if entry.get("failed")]
    run["elapsed_s"] = round(time.monotonic() - t0, 1)
    run["load_after"] = load_average()
    results = {"schema": figures.SCHEMA, "run": run, "benches": merge(previous.get("benches", {}), fresh, names)}
    results_path.write_text(json.dumps(results, indent=1) + "\n")
    print(f"results: {results_path}")
    if not args.no_readme:
        figures.rewrite_file(args.readme, results_path)
        print(f"rewrote the bench region of {args.readme}")
    if failed:
        print(f"bench/all: failed: {', '.join(failed)} (logs in {args.out}); README keeps their last figures",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
