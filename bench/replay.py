"""bench/replay: journal write/read throughput, audit replay and what-if replay on the USD-M recording.

Uses the two-symbol Binance USD-M recording (168,609 messages, 345 s of market) from
../shared/data/binance_usdm. Steps, all in one process on one core:

  record    the deterministic cluster over the recording with a JournalObserver (the journal the
            rest reads), against the same run without it: the observer's cost per message
  write     the recorded payloads appended again under each durability policy: records/s, MB/s
            (every_record fsyncs each record, so it is timed on the first --fsync-records only)
  read      JournalReader.records() over the journal, and with each record msgpack-unpacked
  audit     audit_journal() of the journal: market messages/s and multiple of real time
  whatif    run_whatif() from the HBT files: market messages/s and multiple of real time

  floor     what the what-if cannot beat: the HBT inputs read alone, the what-if with its inputs
            already in memory, the frames decoded alone (market messages/s)

  rounds    the JSON floor (gzip read plus ``orjson.loads`` of every frame of the same recording,
            nothing else), the what-if, the floor again and the audit, for ``--rounds`` rounds:
            each one's median msg/s and the median of its ratios to the floor timed just before
            it, all in CPU time of this process (wall time counts other processes' turns on the
            core). The ratio is the figure that holds on a noisy machine.

Targets (issue 17): what-if >= 150,000 messages/s and audit >= 75,000 on one core. With
--profile, cProfile of the audit and the what-if (top functions by own time).
``--set section.key=value`` changes the configuration (as bin/replay does), e.g.
``--set feature.emit=every_event`` for a snapshot per event. ``--json OUT`` writes the figures
for bench/all. Usage:
  python bench/replay.py [--limit N] [--rounds 5] [--fsync-records N] [--profile] [--keep DIR]
                         [--set K=V ...] [--json OUT]
"""

from __future__ import annotations

import argparse
import cProfile
import gzip
import io
import itertools
import pstats
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import msgpack
import orjson
from arbor.actors.cluster.build import build_actors, market_venue
from arbor.actors.feature import FeatureLogic
from arbor.actors.replay import audit_journal, open_journal_observer, run_whatif
from arbor.actors.replay.whatif import hbt_config, market_inputs
from arbor.actors.runtime import DeterministicRuntime, SimClock
from arbor.config.loader import load_raw
from arbor.config.settings import Settings, build_settings
from arbor.messages.journal import Durability, JournalReader, JournalWriter
from arbor.messages.journal.writer import DurabilityMode
from figures import Figure, median_ratio, write_bench_json
from loguru import logger

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "binance_usdm"
FILES = [str(DATA / "usdm_btcusdt_20240808.gz"), str(DATA / "usdm_ethusdt_20240808.gz")]
MARKET_SECONDS = 345.0
WHATIF_TARGET = 150_000
AUDIT_TARGET = 75_000
MB = 1024 * 1024


def recording_missing() -> str:
    """Why the two-symbol USD-M recording cannot be read here ('' when it can)."""
    missing = [f for f in FILES if not Path(f).is_file()]
    return f"recording not found: {', '.join(missing)}" if missing else ""


def record(raw: dict, journal_root: Path, limit: int | None) -> tuple[Path, float, float, int]:
    """Journal a deterministic run; return (journal dir, seconds with journal, without, inputs)."""
    settings = build_settings(raw)
    inputs = list(market_inputs(settings))[:limit]

    def run(observers: tuple) -> float:
        clock = SimClock(inputs[0][0])
        runtime = DeterministicRuntime(build_actors(settings, clock, "bench"), clock, observers=observers,
                                       tick_interval_ns=settings.run.tick_interval_ms * 1_000_000)
        runtime.add_inputs(iter(inputs))
        t0 = time.perf_counter()
        runtime.run()
        return time.perf_counter() - t0

    bare = run(())
    observer = open_journal_observer(journal_root, "bench", raw, "rotation", built_ns=inputs[0][0])
    journaled = run((observer,))
    observer.close()
    return observer.directory, journaled, bare, len(inputs)


def write_bench(payloads: list[bytes], root: Path, fsync_records: int) -> dict[str, float]:
    """Records/s appended under each durability policy (``rotation``, no fsync per record, first)."""
    print("journal write (payloads of the recorded journal, appended again):")
    runs: tuple[tuple[DurabilityMode, int], ...] = (
        ("rotation", len(payloads)), ("interval", len(payloads)), ("every_record", fsync_records))
    rates: dict[str, float] = {}
    for mode, n in runs:
        target = root / f"write-{mode}"
        batch = payloads[:n]
        size = sum(len(p) for p in batch)
        t0 = time.perf_counter()
        with JournalWriter(target, run_id="bench", durability=Durability(mode=mode), clock_ns=time.monotonic_ns) as w:
            for p in batch:
                w.append(p)
        dt = time.perf_counter() - t0
        rates[mode] = n / dt
        print(f"  {mode:<13} {n:>9,} records {n / dt:>12,.0f} records/s {size / MB / dt:>8.1f} MB/s")
        shutil.rmtree(target)
    return rates


def read_bench(journal: Path) -> tuple[list[bytes], float, float]:
    """The journal's payloads, and records/s read (checksums verified), then also msgpack-unpacked."""
    reader = JournalReader(journal)
    t0 = time.perf_counter()
    payloads = [p for _, p in reader.records()]
    dt = time.perf_counter() - t0
    size = sum(len(p) for p in payloads)
    t0 = time.perf_counter()
    unpackb = msgpack.unpackb
    for p in payloads:
        unpackb(p, raw=False, strict_map_key=False)
    du = time.perf_counter() - t0
    print(f"journal read: {len(payloads):,} records, {size / MB:.1f} MB: {len(payloads) / dt:,.0f} records/s "
          f"{size / MB / dt:.0f} MB/s (checksums verified); + msgpack unpack {len(payloads) / (dt + du):,.0f} records/s")
    return payloads, len(payloads) / dt, len(payloads) / (dt + du)


def json_floor(files: list[str]) -> float:
    """Messages per CPU second of the floor: each file gunzipped and every frame's JSON parsed by
    orjson, nothing else. CPU time (of this process), as the rounds' replays are timed: on a shared
    machine wall time also counts the time other processes held the core.

    It reads the same bytes the what-if reads and parses each payload once, as any decoder must;
    what a replay costs beyond this is decoding to events, dispatch and the actors' own work.
    """
    loads = orjson.loads
    n = 0
    t0 = time.process_time()
    for name in files:
        with gzip.open(name, "rb") as fh:
            for line in fh.read().splitlines():
                loads(line[line.index(b" ") + 1:])
                n += 1
    return n / (time.process_time() - t0)


def profile(label: str, fn: Callable[[], object]) -> None:
    prof = cProfile.Profile()
    prof.enable()
    fn()
    prof.disable()
    buf = io.StringIO()
    pstats.Stats(prof, stream=buf).sort_stats("tottime").print_stats(18)
    print(f"\n--- profile: {label} (top by own time) ---")
    print("\n".join(line for line in buf.getvalue().splitlines()[6:] if line.strip()))


def parts(settings: Settings, limit: int | None) -> None:
    """The parts of the what-if timed alone: reading the inputs, the run on inputs in memory, decoding."""
    from arbor.adapters.decoding import decoder_for

    t0 = time.perf_counter()
    inputs = list(itertools.islice(market_inputs(settings), limit))
    dr = time.perf_counter() - t0
    mem = run_whatif(settings, iter(inputs))
    decode = decoder_for(market_venue(settings))
    payloads = [m.payload for _, _, m in inputs]
    t0 = time.perf_counter()
    for payload in payloads:
        decode(payload)
    dd = time.perf_counter() - t0
    n = len(inputs)
    feature = next(a for aid, a in build_actors(settings, SimClock(0), "bench").items() if aid.endswith("/feature"))
    assert isinstance(feature, FeatureLogic)
    print(f"parts: reading the HBT inputs alone {n / dr:,.0f} msg/s; what-if with its inputs in memory "
          f"{mem.inputs / mem.elapsed_s:,.0f} msg/s (feature emit: {feature.emit}); decoding alone {n / dd:,.0f} msg/s")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--limit", type=int, help="only the first N market messages")
    p.add_argument("--rounds", type=int, default=5, help="interleaved rounds of floor, what-if and audit")
    p.add_argument("--fsync-records", type=int, default=2000)
    p.add_argument("--profile", action="store_true")
    p.add_argument("--keep", type=Path, help="leave the journal in this directory")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="configuration override")
    p.add_argument("--json", type=Path, metavar="OUT", help="write the figures to this file (for bench/all)")
    args = p.parse_args(argv)
    if recording_missing():
        print(recording_missing(), file=sys.stderr)
        return 2
    logger.remove()
    raw = hbt_config(FILES, load_raw(environ={}), args.set)
    root = args.keep or Path(tempfile.mkdtemp(prefix="arbor-bench-replay-"))
    try:
        journal, journaled, bare, n = record(raw, root, args.limit)
        market_s = MARKET_SECONDS * (n / 168_609)
        size = sum(f.stat().st_size for f in journal.glob("segment-*.arj"))
        print(f"record: {n:,} market messages; deterministic run {n / bare:,.0f} msg/s bare, "
              f"{n / journaled:,.0f} msg/s with the journal observer ({(journaled - bare) / n * 1e6:.1f} us/message "
              f"journaling); journal {size / MB:.1f} MB")
        payloads, read_rate, unpack_rate = read_bench(journal)
        writes = write_bench(payloads, root, min(args.fsync_records, len(payloads)))
        del payloads

        settings = build_settings(raw)
        rounds: dict[str, list[float]] = {"floor": [], "whatif": [], "audit": []}
        floor_of: dict[str, list[float]] = {"whatif": [], "audit": []}  # the floor timed just before each
        digests = set()
        for i in range(args.rounds):
            floor_of["whatif"].append(json_floor(FILES))
            c0 = time.process_time()
            result = run_whatif(settings, market_inputs(settings), limit=args.limit)
            dw = time.process_time() - c0
            floor_of["audit"].append(json_floor(FILES))
            c0 = time.process_time()
            report = audit_journal(journal)
            da = time.process_time() - c0
            assert report.identical, report.divergence
            digests.add(result.digest)
            wi = result.inputs / dw
            au = n / da
            print(f"  (wall clock: what-if {result.inputs / result.elapsed_s:,.0f} msg/s)")
            fl = statistics.fmean((floor_of["whatif"][-1], floor_of["audit"][-1]))
            for k, v in (("floor", fl), ("whatif", wi), ("audit", au)):
                rounds[k].append(v)
            print(f"round {i + 1}/{args.rounds}: what-if {wi:,.0f} msg/s ({wi / floor_of['whatif'][-1]:.3f} of the "
                  f"floor just before it, {floor_of['whatif'][-1]:,.0f}), audit {au:,.0f} "
                  f"({au / floor_of['audit'][-1]:.3f} of {floor_of['audit'][-1]:,.0f}; {report.records:,} records, "
                  f"{report.inputs:,} actor inputs)")
        if len(digests) != 1:
            print(f"what-if digests differ between rounds: {sorted(digests)}", file=sys.stderr)
            return 1
        med = {k: statistics.median(v) for k, v in rounds.items()}
        ratio = {k: median_ratio(rounds[k], floor_of[k]) for k in ("whatif", "audit")}
        print(f"medians of {args.rounds} interleaved rounds: floor (gzip + orjson.loads of every frame) "
              f"{med['floor']:,.0f} msg/s")
        for k, target, label in (("whatif", WHATIF_TARGET, "what-if"), ("audit", AUDIT_TARGET, "audit")):
            print(f"  {label:<8} {med[k]:>9,.0f} msg/s  {market_s * med[k] / n:6.1f}x real time  "
                  f"ratio to the floor {ratio[k]:.3f}  [target {target:,} msg/s: "
                  f"{'met' if med[k] >= target else 'NOT met'}]")
        print(f"  what-if digest {next(iter(digests))[:16]} (the same in every round)")
        parts(settings, args.limit)
        write_bench_json(args.json, "replay", [
            Figure("replay.whatif", "what-if, two-symbol USD-M recording (CPU time)", med["whatif"], "msg/s",
                   "JSON floor (gzip + orjson.loads, CPU time)", med["whatif"] / ratio["whatif"],
                   target=f">= {WHATIF_TARGET:,} msg/s", met=med["whatif"] >= WHATIF_TARGET),
            Figure("replay.audit", "audit of that run's journal (CPU time)", med["audit"], "msg/s",
                   "JSON floor (gzip + orjson.loads, CPU time)", med["audit"] / ratio["audit"],
                   target=f">= {AUDIT_TARGET:,} msg/s", met=med["audit"] >= AUDIT_TARGET),
            Figure("replay.journal_read", "journal read + msgpack unpack", unpack_rate, "records/s",
                   "journal read alone (checksums)", read_rate),
            Figure("replay.write_interval", "journal append, durability interval", writes["interval"], "records/s",
                   "durability rotation (no fsync per record)", writes["rotation"]),
            Figure("replay.write_every_record", "journal append, durability every_record", writes["every_record"],
                   "records/s", "durability rotation (no fsync per record)", writes["rotation"]),
        ], notes=[f"{n:,} market messages ({market_s:.0f} s of market), medians of {args.rounds} interleaved "
                  "rounds; a ratio is the median of the ratios to the floor timed just before each run, so the "
                  "baseline shown is the what-if's (or audit's) median over that ratio."])
        if args.profile:
            profile("audit", lambda: audit_journal(journal))
            profile("whatif", lambda: run_whatif(settings, market_inputs(settings), limit=args.limit))
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
