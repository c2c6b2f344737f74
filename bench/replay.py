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

Targets: what-if >= 100,000 messages/s, audit >= 50,000. With --profile, cProfile of the audit
and the what-if (top functions by own time). ``--set section.key=value`` changes the configuration
(as bin/replay does), e.g. ``--set feature.emit=every_event`` for a snapshot per event. Usage:
  python bench/replay.py [--limit N] [--fsync-records N] [--profile] [--keep DIR] [--set K=V ...]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import itertools
import pstats
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import msgpack
from arbor.actors.cluster.build import build_actors, market_venue
from arbor.actors.feature import FeatureLogic
from arbor.actors.replay import audit_journal, open_journal_observer, run_whatif
from arbor.actors.replay.whatif import hbt_config, market_inputs
from arbor.actors.runtime import DeterministicRuntime, SimClock
from arbor.config.loader import load_raw
from arbor.config.settings import Settings, build_settings
from arbor.messages.journal import Durability, JournalReader, JournalWriter
from arbor.messages.journal.writer import DurabilityMode
from loguru import logger

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "binance_usdm"
FILES = [str(DATA / "usdm_btcusdt_20240808.gz"), str(DATA / "usdm_ethusdt_20240808.gz")]
MARKET_SECONDS = 345.0
WHATIF_TARGET = 100_000
AUDIT_TARGET = 50_000
MB = 1024 * 1024


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


def write_bench(payloads: list[bytes], root: Path, fsync_records: int) -> None:
    print("journal write (payloads of the recorded journal, appended again):")
    runs: tuple[tuple[DurabilityMode, int], ...] = (
        ("rotation", len(payloads)), ("interval", len(payloads)), ("every_record", fsync_records))
    for mode, n in runs:
        target = root / f"write-{mode}"
        batch = payloads[:n]
        size = sum(len(p) for p in batch)
        t0 = time.perf_counter()
        with JournalWriter(target, run_id="bench", durability=Durability(mode=mode), clock_ns=time.monotonic_ns) as w:
            for p in batch:
                w.append(p)
        dt = time.perf_counter() - t0
        print(f"  {mode:<13} {n:>9,} records {n / dt:>12,.0f} records/s {size / MB / dt:>8.1f} MB/s")
        shutil.rmtree(target)


def read_bench(journal: Path) -> list[bytes]:
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
    return payloads


def profile(label: str, fn: Callable[[], object]) -> None:
    prof = cProfile.Profile()
    prof.enable()
    fn()
    prof.disable()
    buf = io.StringIO()
    pstats.Stats(prof, stream=buf).sort_stats("tottime").print_stats(18)
    print(f"\n--- profile: {label} (top by own time) ---")
    print("\n".join(line for line in buf.getvalue().splitlines()[6:] if line.strip()))


def floor(settings: Settings, limit: int | None) -> None:
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
    print(f"floor: reading the HBT inputs alone {n / dr:,.0f} msg/s; what-if with its inputs in memory "
          f"{mem.inputs / mem.elapsed_s:,.0f} msg/s (feature emit: {feature.emit}); decoding alone {n / dd:,.0f} msg/s")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--limit", type=int, help="only the first N market messages")
    p.add_argument("--fsync-records", type=int, default=2000)
    p.add_argument("--profile", action="store_true")
    p.add_argument("--keep", type=Path, help="leave the journal in this directory")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="configuration override")
    args = p.parse_args(argv)
    if not all(Path(f).is_file() for f in FILES):
        print(f"recording not found under {DATA}", file=sys.stderr)
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
        payloads = read_bench(journal)
        write_bench(payloads, root, min(args.fsync_records, len(payloads)))
        del payloads

        t0 = time.perf_counter()
        report = audit_journal(journal)
        da = time.perf_counter() - t0
        assert report.identical, report.divergence
        print(f"audit: {report.records:,} records, {report.inputs:,} actor inputs in {da:.2f}s: "
              f"{n / da:,.0f} market msg/s ({report.inputs / da:,.0f} inputs/s), {market_s / da:.1f}x real time "
              f"[target {AUDIT_TARGET:,} msg/s: {'met' if n / da >= AUDIT_TARGET else 'NOT met'}]")

        settings = build_settings(raw)
        result = run_whatif(settings, market_inputs(settings), limit=args.limit)
        dw = result.elapsed_s
        print(f"whatif: {result.inputs:,} market msgs in {dw:.2f}s: {result.inputs / dw:,.0f} msg/s, "
              f"{market_s / dw:.1f}x real time, digest {result.digest[:16]} "
              f"[target {WHATIF_TARGET:,} msg/s: {'met' if result.inputs / dw >= WHATIF_TARGET else 'NOT met'}]")
        floor(settings, args.limit)
        if args.profile:
            profile("audit", lambda: audit_journal(journal))
            profile("whatif", lambda: run_whatif(settings, market_inputs(settings), limit=args.limit))
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
