"""``bin/replay``: audit a journaled run, or replay its inputs (or HBT recordings) as a what-if.

    bin/replay audit JOURNAL_DIR
        exit 0: every actor's outputs are identical; 1: diverged (the first divergence is
        printed with its causal chain); 2: the journal cannot be read.
    bin/replay whatif (--journal DIR | --hbt FILE...) [--config FILE] [--set section.key=value ...]
                      [--limit N] [--json OUT] [--trades-csv OUT] [--plots DIR] [--html FILE] [--parity]
        exit 0 after printing the report and the decision digest; 2 for a configuration or
        journal error, or a recording that is unsupported or unreadable (the venue and market of
        a recording, HBT or CF3, are read from the recording itself).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from arbor.actors.replay.journal_io import UnreadableJournal
from arbor.messages.base import is_message_type, message_field_names
from loguru import logger


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="replay", description="Audit or what-if replay of an Arbor journal.")
    sub = p.add_subparsers(dest="command", required=True)
    a = sub.add_parser("audit", help="prove every actor's journaled outputs are reproduced exactly")
    a.add_argument("journal", type=Path, help="journal directory (var/journal/<run id>; of a multi-process run, "
                                              "every node's journal in it is audited)")
    a.add_argument("--no-repair", action="store_true", help="refuse a damaged journal instead of repairing it")
    w = sub.add_parser("whatif", help="replay external inputs through the deterministic scheduler")
    _source_args(w)
    w.add_argument("--json", type=Path, help="also write the report as JSON here")
    w.add_argument("--trades-csv", type=Path, help="also write the trade list as CSV here")
    w.add_argument("--plots", type=Path, metavar="DIR",
                   help="also write the plots (equity, drawdown, price with entries and exits per symbol) as PNG here")
    w.add_argument("--html", type=Path, metavar="FILE", help="also write the report as one self-contained HTML file")
    w.add_argument("--parity", action="store_true",
                   help="with --journal: compare with the journaled live session (exit 1 when it differs)")
    s = sub.add_parser("sweep", help="what-if replays over a strategy's declared parameters, in parallel, ranked")
    _source_args(s)
    s.add_argument("--spec", type=Path, help="TOML file with a [sweep] table (and [sweep.params]); options win")
    s.add_argument("--param", action="append", default=[], metavar="NAME=VALUES",
                   help="a parameter and its values (repeatable): a,b,c | low..high | low..high:step | "
                        "low..high/count | NAME alone for its declared bounds")
    s.add_argument("--method", help="grid (every combination, the default) or random (--trials draws)")
    s.add_argument("--trials", type=int, help="random: how many configurations (default 20)")
    s.add_argument("--seed", type=int, help="random: the seed of the draws (default 0)")
    s.add_argument("--objective", help="net_pnl (default), profit_factor, sharpe or sortino")
    s.add_argument("--max-drawdown", type=float, help="drawdown cap, a fraction of the peak (0.02 = 2%%): "
                                                      "configurations over it rank last")
    s.add_argument("--split", type=float, help="walk-forward: fit on this share of the recording's time span, "
                                               "replay the best on the held-out rest")
    s.add_argument("--period", help="Sharpe and Sortino over returns of this period (30s, 1m, 1h), not "
                                    "annualised: for a recording shorter than 2 days")
    s.add_argument("--oos-top", type=int, help="with --split: how many of the best to replay held out (default 1)")
    s.add_argument("--jobs", type=int, help="worker processes (default: one per core)")
    s.add_argument("--top", type=int, default=20, help="rows of the results table (default 20)")
    s.add_argument("--best", type=Path, default=Path("var/sweep/best.toml"),
                   help="where to write the best configuration as TOML (default var/sweep/best.toml)")
    s.add_argument("--json", type=Path, help="also write every configuration's figures as JSON here")
    return p.parse_args(argv)


def _source_args(p: argparse.ArgumentParser) -> None:
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--journal", type=Path, help="journal directory whose external inputs to replay")
    src.add_argument("--hbt", nargs="+", help="recording files to replay (HBT or CF3; market detected from the files)")
    p.add_argument("--config", type=Path, help="TOML merged over the recorded (or default) configuration")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override one setting (repeatable); symbols.<SYMBOL>.<key>=value for a symbol")
    p.add_argument("--limit", type=int, help="replay only the first N inputs")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logger.remove()  # actors log every decision; a replay prints its own report
    logger.add(sys.stderr, level="ERROR")
    if args.command == "audit":
        return audit_command(args.journal, allow_repair=not args.no_repair, out=sys.stdout, err=sys.stderr)
    if args.command == "sweep":
        return sweep_command(args, out=sys.stdout, err=sys.stderr)
    return whatif_command(args, out=sys.stdout, err=sys.stderr)


# -- audit ---------------------------------------------------------------------------------------------
def audit_command(journal: Path, *, allow_repair: bool, out: TextIO, err: TextIO) -> int:
    """Audit one journal, or each node's of a multi-process run (exit: the worst of them)."""
    from arbor.actors.replay.journal_io import node_journals

    dirs = node_journals(journal)
    codes = []
    for d in dirs:
        if len(dirs) > 1:
            print(f"node {d.name}:", file=out)
        codes.append(_audit_one(d, allow_repair=allow_repair, out=out, err=err))
    return 2 if 2 in codes else max(codes)


def _audit_one(journal: Path, *, allow_repair: bool, out: TextIO, err: TextIO) -> int:
    from arbor.actors.replay.audit import audit_journal

    bar = Progress(err, "records")
    t0 = time.perf_counter()
    try:
        report = audit_journal(journal, allow_repair=allow_repair, progress=bar.update if bar.enabled else None)
    except UnreadableJournal as exc:
        bar.done()
        print(f"replay audit: unreadable journal: {exc}", file=err)
        return 2
    bar.done()
    elapsed = time.perf_counter() - t0
    if report.repaired is not None:
        for q in report.repaired.quarantined:
            print(f"repaired: {q.bytes_moved} bytes of {q.segment.name} ({q.reason}) moved to "
                  f"{q.quarantine_path.name}", file=err)
    print(f"audited run(s) {', '.join(report.runs)}: {report.records:,} records, {report.actors} actors, "
          f"{report.inputs:,} inputs, {report.outputs:,} outputs checked in {elapsed:.2f}s", file=out)
    for aid in report.incomplete:
        print(f"note: {aid}: the outputs of its last input run past the end of a journal that was not closed "
              f"cleanly (a crash); not counted as a divergence", file=out)
    for aid, why in report.unverified:
        print(f"note: {aid}: {why}", file=out)
    for note in report.notes:
        print(f"note: {note}", file=out)
    if report.divergence is None:
        print("IDENTICAL", file=out)
        return 0
    print(format_divergence(report.divergence), file=out)
    return 1


def format_divergence(d: Any) -> str:
    lines = [
        f"DIVERGED at record {d.record_index}: {d.actor_id}: {d.reason}",
        f"  input     record {d.input_index}, msg {d.input.msg_id} from {d.input.sender} at now_ns {d.now_ns} "
        f"({iso(d.now_ns)})",
        f"            {show(d.input.payload)}",
        f"  output #{d.position}",
        f"  expected  {show(d.expected)}",
        f"  actual    {show(d.actual)}",
    ]
    if d.actual_outputs:
        lines.append(f"  the replay produced {len(d.actual_outputs)} output(s) for this input:")
        lines += [f"    [{i}] {show(m)}" for i, m in enumerate(d.actual_outputs)]
    if d.chain:
        lines.append("  causal chain (external input first):")
        for link in d.chain:
            e = link.envelope
            lines.append(f"    record {link.index} {link.kind} msg {e.msg_id} {e.sender} -> "
                         f"{', '.join(link.receivers) or '-'}: {show(e.payload)}")
    return "\n".join(lines)


def show(msg: Any, width: int = 400) -> str:
    """One line naming a message's type and fields; long bytes and the whole are shortened."""
    if msg is None or not is_message_type(type(msg)):
        return repr(msg)
    parts = []
    for name in message_field_names(type(msg)):
        v = getattr(msg, name)
        if isinstance(v, bytes):
            v = v[:60] + (b"..." if len(v) > 60 else b"")
        parts.append(f"{name}={show(v) if is_message_type(type(v)) else v!s}")
    text = f"{type(msg).__name__}({', '.join(parts)})"
    return text if len(text) <= width else text[: width - 3] + "..."


def iso(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, tz=UTC).isoformat(timespec="microseconds")


# -- what-if -------------------------------------------------------------------------------------------
def whatif_command(args: argparse.Namespace, *, out: TextIO, err: TextIO) -> int:
    from arbor.actors.replay.report import render
    from arbor.actors.replay.whatif import journal_inputs, journal_metadata, journal_ticks, market_inputs, run_whatif
    from arbor.config.errors import ConfigError
    from arbor.config.settings import build_settings
    from arbor.messages.codec import Codec

    if getattr(args, "parity", False) and args.journal is None:
        print("replay whatif: --parity compares with a live session: it needs --journal", file=err)
        return 2
    codec = Codec()
    ticks = False  # recorded timer ticks replayed (a journal at its own tick interval), else generated
    try:
        raw = resolved_config(args)
        settings = build_settings(raw)
        if args.journal is not None:
            ticks = journal_ticks(journal_metadata(args.journal), settings)
            inputs = journal_inputs(args.journal, codec, ticks=ticks)
        else:
            inputs = market_inputs(settings)
    except (ConfigError, UnreadableJournal) as exc:
        return refused("whatif", exc, err)
    bar = Progress(err, "inputs")
    parity = getattr(args, "parity", False) and args.journal is not None
    from arbor.actors.replay.parity import DecisionLog

    log = DecisionLog()
    try:
        result = run_whatif(settings, inputs, limit=args.limit, codec=codec,
                            progress=(lambda n, ts: bar.update(n, ts)) if bar.enabled else None,
                            recorded_ticks=ticks, observers=(log,) if parity else ())
    except UnreadableJournal as exc:
        bar.done()
        return refused("whatif", exc, err)
    except (ValueError, OSError, EOFError) as exc:  # RecordingFormatError, BadGzipFile, a truncated file
        if args.hbt is None:
            raise
        bar.done()
        return refused("whatif", exc, err, recording=args.hbt)
    bar.done()
    print(render(result.report, result.digest, result.inputs), file=out)
    rate = result.inputs / result.elapsed_s if result.elapsed_s else 0.0
    market = result.report["market_seconds"]
    print(f"replayed in {result.elapsed_s:.2f}s: {rate:,.0f} inputs/s"
          + (f", {market / result.elapsed_s:,.1f}x real time" if result.elapsed_s and market else ""), file=out)
    if result.skipped_inputs:
        print(f"note: {result.skipped_inputs} inputs addressed to actors this configuration does not build "
              f"were skipped", file=out)
    if args.json is not None:
        args.json.write_text(json.dumps(result.to_json(), indent=2, sort_keys=True) + "\n")
    if getattr(args, "trades_csv", None) is not None:
        from arbor.actors.replay.report import write_trades_csv

        write_trades_csv(result.report["trade_list"], args.trades_csv)
    if getattr(args, "plots", None) is not None or getattr(args, "html", None) is not None:
        from arbor.actors.replay.html_report import write_whatif_outputs

        for path in write_whatif_outputs(result.report, result.digest, result.inputs, plots_dir=args.plots,
                                         html=args.html, starting_equity=float(settings.risk.starting_equity)):
            print(f"wrote {path}", file=out)
    if parity:
        from arbor.actors.replay.parity import compare, recorded_run

        check = compare(recorded_run(args.journal, settings.risk.starting_equity, codec=codec, ticks=ticks),
                        result.report, log)
        print(check.render(), file=out)
        return 0 if check.ok else 1
    return 0


# -- sweep ---------------------------------------------------------------------------------------------
def sweep_command(args: argparse.Namespace, *, out: TextIO, err: TextIO) -> int:
    """Plan, run and rank a parameter sweep; write the best configuration as TOML."""
    import tomli_w
    from arbor.actors.replay import sweep
    from arbor.config.errors import ConfigError
    from arbor.config.loader import read_toml
    from tqdm import tqdm

    try:
        raw = resolved_config(args)
        declared = sweep.declared_params(raw)
        table = sweep.read_spec_file(args.spec) if args.spec is not None else {}
        params = [sweep.parse_param_text(t) for t in args.param]
        spec = sweep.build_spec(table, params, declared, method=args.method, trials=args.trials, seed=args.seed,
                                objective=args.objective, max_drawdown=args.max_drawdown, split=args.split,
                                oos_top=args.oos_top, jobs=args.jobs, period=args.period)
        if args.limit is not None and args.limit < 1:
            raise ConfigError("--limit", f"must be a positive integer, got {args.limit}")
        plan = sweep.plan_sweep(raw, spec, declared)
        user_config = read_toml(args.config) if args.config is not None else {}
    except (ConfigError, UnreadableJournal) as exc:
        return refused("sweep", exc, err)
    journal = str(args.journal) if args.journal is not None else None
    runs = len(plan.configs) + (min(spec.oos_top, len(plan.configs)) if spec.split is not None else 0)
    workers = args.jobs or spec.jobs or os.cpu_count() or 1
    print(f"sweep: {len(plan.configs)} configurations ({spec.method} over {', '.join(spec.names)}) on "
          f"{min(workers, len(plan.configs))} worker(s)", file=out)
    out.flush()
    bar = tqdm(total=runs, desc="sweep", unit="run", file=err, disable=not _is_tty(err), dynamic_ncols=True)

    def advance() -> None:
        bar.update()

    try:
        result = sweep.execute(plan, journal=journal, limit=args.limit, jobs=workers, progress=advance)
    except UnreadableJournal as exc:
        bar.close()
        return refused("sweep", exc, err)
    except (ValueError, OSError, EOFError) as exc:  # a recording that cannot be read, found by a worker
        if args.hbt is None:
            raise
        bar.close()
        return refused("sweep", exc, err, recording=args.hbt)
    bar.close()
    print(sweep.render(result, top=args.top), file=out)
    best = result.best
    if best is not None:
        doc = sweep.best_config(user_config, plan.raw, best.params, args.set)
        args.best.parent.mkdir(parents=True, exist_ok=True)
        header = (f"# bin/replay sweep: the best of {len(result.ranked)} configurations by {spec.objective}: "
                  f"{', '.join(f'{k}={v}' for k, v in best.params.items())}\n"
                  f"# digest {best.figures['digest']}"
                  + (" (the inputs replayed)" if spec.split is None else " (the in-sample part)") + "\n")
        args.best.write_text(header + tomli_w.dumps(doc))
        source = f"--journal {args.journal}" if journal else "--hbt " + " ".join(args.hbt)
        limit = f" --limit {args.limit}" if args.limit is not None else ""
        print(f"best configuration written to {args.best}: bin/replay whatif {source}{limit} --config {args.best}",
              file=out)
    n = len(result.ranked) + sum(o.out_of_sample is not None for o in result.ranked)
    print(f"ran {n} replays in {result.elapsed_s:.1f}s on {result.jobs} worker(s)", file=out)
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(sweep.to_json(result), indent=2, sort_keys=True) + "\n")
    return 0


def refused(command: str, exc: Exception, err: TextIO, recording: Sequence[str] | None = None) -> int:
    """Exit 2 for a configuration error, an unreadable journal or (``recording`` given) an unreadable
    recording, named on ``err``."""
    if recording is not None:
        print(f"replay {command}: unreadable recording ({', '.join(recording)}): {type(exc).__name__}: {exc}",
              file=err)
        return 2
    kind = "unreadable journal" if isinstance(exc, UnreadableJournal) else "configuration error"
    print(f"replay {command}: {kind}: {exc}", file=err)
    return 2


def _is_tty(stream: TextIO) -> bool:
    return bool(getattr(stream, "isatty", lambda: False)())


def resolved_config(args: argparse.Namespace) -> dict[str, Any]:
    """The raw configuration a what-if (or sweep) of ``--journal`` or ``--hbt`` runs: ``--config``
    and ``--set`` applied, a recording's venue and symbols resolved. Raises ConfigError."""
    from arbor.actors.replay.whatif import hbt_config, journal_config, journal_metadata
    from arbor.config.errors import ConfigError
    from arbor.config.loader import deep_merge, load_raw, read_toml

    if args.journal is not None:
        return journal_config(journal_metadata(args.journal), args.config, args.set)
    missing = [f for f in args.hbt if not Path(f).is_file()]
    if missing:
        raise ConfigError("--hbt", f"file not found: {missing[0]}")
    base = load_raw()
    if args.config is not None:
        base = deep_merge(base, read_toml(args.config))
    return hbt_config(args.hbt, base, args.set)


class Progress:
    """A one-line progress counter on ``stream``, only when it is a terminal."""

    def __init__(self, stream: TextIO, unit: str) -> None:
        self._stream = stream
        self._unit = unit
        self.enabled = bool(getattr(stream, "isatty", lambda: False)())
        self._t0 = time.perf_counter()
        self._shown = False

    def update(self, n: int, ts_ns: int | None = None) -> None:
        rate = n / max(time.perf_counter() - self._t0, 1e-9)
        at = f"  market {iso(ts_ns)[11:23]}" if ts_ns else ""
        self._stream.write(f"\r{n:>12,} {self._unit}  {rate:>10,.0f}/s{at}  ")
        self._stream.flush()
        self._shown = True

    def done(self) -> None:
        if self._shown:
            self._stream.write("\n")
            self._stream.flush()
            self._shown = False


if __name__ == "__main__":
    sys.exit(main())
