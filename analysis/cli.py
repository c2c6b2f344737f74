"""``bin/analyze``: cascade labels and hypothesis tests on recordings and journals (docs/analysis.md).

Exit status: 0 done; 2 bad arguments or an unreadable source (the message says which);
3 (``validate``) too few samples to report on.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

EXIT_OK = 0
EXIT_USAGE = 2
EXIT_TOO_FEW = 3


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]  # argparse's is NoReturn too
        self.print_usage(sys.stderr)
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE)


def _feature_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--bucket-ms", type=int, default=1000, help="time bucket of the features and burst windows "
                                                                "(feature.bucket_ms; default 1000)")
    p.add_argument("--window", type=int, default=10, help="burst window in buckets (feature.short_window; default 10)")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = _Parser(prog="analyze", description=__doc__.split("\n")[0] if __doc__ else None)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    c = sub.add_parser("cascades", help="label liquidation cascades and their waves")
    c.add_argument("sources", nargs="+", metavar="RECORDING", help="recording files (one market) or a journal directory")
    c.add_argument("--source", choices=("liquidations", "trades"), default="liquidations",
                   help="count liquidations (default) or, as a PROXY, aggressive trade bursts")
    c.add_argument("--min-notional", "--threshold", dest="min_notional", type=float, default=100_000.0,
                   help="a cascade's total notional at least (quote currency; default 100000)")
    c.add_argument("--min-count", type=int, default=3, help="a cascade's events at least (default 3)")
    c.add_argument("--wave-gap-s", type=float, default=2.0, help="a quiet gap longer than this ends a wave (default 2)")
    c.add_argument("--cascade-gap-s", type=float, default=30.0,
                   help="a quiet gap longer than this ends a cascade (default 30)")
    c.add_argument("--burst-notional", type=float, default=1_000_000.0,
                   help="--source trades: a taker trade counts while its side's burst window holds at least this "
                        "notional (default 1000000)")
    c.add_argument("--recover-frac", type=float, default=0.5,
                   help="recovered once the mid retraced this fraction of the excursion (default 0.5)")
    _feature_args(c)
    c.add_argument("--jsonl", metavar="FILE", help="also write the labels as JSON lines here ('-': stdout, no table)")
    c.add_argument("--no-waves", action="store_true", help="table: cascades only")

    v = sub.add_parser("validate", help="test a hypothesis on recordings")
    v.add_argument("hypothesis", metavar="HYPOTHESIS", help="a shipped hypothesis by name, or a TOML file declaring one "
                                                            "('list' names the shipped ones)")
    v.add_argument("sources", nargs="*", metavar="RECORDING",
                   help="recording files; several markets are read one after the other and pooled")
    v.add_argument("--seed", type=int, default=0, help="seed of the bootstrap and permutation resampling (default 0)")
    v.add_argument("--resamples", type=int, default=10_000, help="bootstrap and permutation resamples (default 10000)")
    v.add_argument("--min-samples", type=int, default=None, help="refuse below this many samples "
                                                                  "(default: the hypothesis's own)")
    v.add_argument("--json", metavar="FILE", help="also write the result as JSON here ('-': stdout, no text)")
    _feature_args(v)
    return parser.parse_args(argv)


def _feature_config(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from arbor.actors.feature.config import FeatureConfig

    base = FeatureConfig()
    return FeatureConfig(bucket_ms=args.bucket_ms, short_window=args.window,
                         long_window=max(base.long_window, args.window + 1), min_samples=base.min_samples)


def cascades_command(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from arbor.analysis.cascades import CascadeParams, label_cascades, render_table, to_jsonl
    from arbor.analysis.events import SourceError, read_source
    from arbor.analysis.tape import build_tapes
    from arbor.config.errors import ConfigError

    try:
        params = CascadeParams(source=args.source, min_notional=args.min_notional, min_count=args.min_count,
                               wave_gap_s=args.wave_gap_s, cascade_gap_s=args.cascade_gap_s, bucket_ms=args.bucket_ms,
                               window=args.window, burst_notional=args.burst_notional,
                               recover_frac=args.recover_frac).validate()
        config = _feature_config(args).validate()
        src = read_source(args.sources)
    except (ValueError, ConfigError) as exc:  # SourceError is a ValueError
        kind = "unreadable source" if isinstance(exc, SourceError) else "bad argument"
        print(f"analyze cascades: {kind}: {exc}", file=err)
        return EXIT_USAGE
    tapes = build_tapes(src.events, config)
    labels = label_cascades(tapes, params)
    text = to_jsonl(labels)
    if args.jsonl and args.jsonl != "-":
        Path(args.jsonl).write_text(text)
    if args.jsonl == "-":
        out.write(text)
    else:
        cascades = [lb for lb in labels if lb.wave is None]
        print(render_table(labels, waves=not args.no_waves), file=out)
        counted = {s: len(t.liquidations if params.source == "liquidations" else t.trades) for s, t in tapes.items()}
        print(f"{len(cascades)} cascades, {len(labels) - len(cascades)} waves from "
              + ", ".join(f"{s}: {n} {params.source}" for s, n in counted.items())
              + f" (source {params.source}{', a PROXY for liquidations' if params.source == 'trades' else ''}); "
              f"decode failures {sum(src.failures.values())}", file=out)
    return EXIT_OK


def validate_command(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from arbor.analysis.events import SourceError, read_source
    from arbor.analysis.hypotheses import SHIPPED, TooFewSamples, load_hypothesis, validate
    from arbor.analysis.tape import build_tapes
    from arbor.config.errors import ConfigError

    if args.hypothesis == "list":
        for h in SHIPPED.values():
            print(f"{h.name}: {h.statement}", file=out)
        return EXIT_OK
    try:
        hypothesis = load_hypothesis(args.hypothesis)
        if args.min_samples is not None:
            hypothesis = hypothesis.with_min_samples(args.min_samples)
        if not args.sources:
            raise ValueError("give at least one RECORDING")
        if args.resamples < 100:
            raise ValueError(f"--resamples: at least 100, got {args.resamples}")
        config = _feature_config(args).validate()
        tapes = {}
        for group in _markets(args.sources):
            tapes.update(build_tapes(read_source(group).events, config))
    except (ValueError, ConfigError, OSError) as exc:
        kind = "unreadable source" if isinstance(exc, SourceError) else "bad argument"
        print(f"analyze validate: {kind}: {exc}", file=err)
        return EXIT_USAGE
    import numpy as np

    try:
        result = validate(hypothesis, tapes, rng=np.random.default_rng(args.seed), resamples=args.resamples,
                          bucket_ms=args.bucket_ms, window=args.window)
    except TooFewSamples as exc:
        print(f"analyze validate: {exc}", file=err)
        return EXIT_TOO_FEW
    doc = result.to_json()
    if args.json and args.json != "-":
        Path(args.json).write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
    if args.json == "-":
        print(json.dumps(doc, indent=2, sort_keys=True), file=out)
    else:
        print(result.render(), file=out)
    return EXIT_OK


def _markets(sources: Sequence[str]) -> list[list[str]]:
    """Recordings grouped by market (files of one market are merged; journals stand alone)."""
    from arbor.adapters.recorded.detect import UnsupportedRecording, detect_recording
    from arbor.analysis.events import SourceError

    groups: dict[str, list[str]] = {}
    for s in sources:
        p = Path(s)
        if p.is_dir():
            groups[f"journal:{s}"] = [s]
            continue
        if not p.is_file():
            raise SourceError(f"no such file or directory: {s}")
        try:
            venue = detect_recording(s).venue
        except UnsupportedRecording as exc:
            raise SourceError(str(exc)) from None
        groups.setdefault(venue, []).append(s)
    return list(groups.values())


def main(argv: Sequence[str] | None = None, out: TextIO | None = None, err: TextIO | None = None) -> int:
    args = parse_args(argv)
    out = out or sys.stdout
    err = err or sys.stderr
    if args.command == "cascades":
        return cascades_command(args, out, err)
    return validate_command(args, out, err)


if __name__ == "__main__":
    from loguru import logger

    logger.remove()  # the collectors' decode-failure warnings are counted in the summary, not printed one by one
    sys.exit(main())
