"""``bin/start-cluster``: run a paper or shadow trading cluster in this process.

Loads ``config/default.toml``, an optional ``--config`` file, an optional env file and
``ARBOR__*`` environment overrides; starts every configured symbol's actor subtree and the
Risk and Arbitrator singletons on pykka threads; plays the configured market; prints a compact
summary every few seconds; stops cleanly on SIGINT/SIGTERM or after ``--duration`` seconds.
Exit status: 0 after a clean stop, 2 for a configuration error, 1 for any other failure, and 1
when something stopped for good during the run (the market source died, a symbol is quarantined,
a background thread died): each is printed on stderr.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from arbor.config.errors import ConfigError
from loguru import logger


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="start-cluster", description="Start an Arbor trading cluster.")
    p.add_argument("--config", type=Path, help="TOML file merged over config/default.toml")
    p.add_argument("--env-file", type=Path, help="file of ARBOR__SECTION__KEY=value overrides")
    p.add_argument("--duration", type=float, help="stop after this many seconds (default: run until signalled)")
    p.add_argument("--mode", choices=("paper", "shadow"), help="override run.mode")
    p.add_argument("--var-dir", type=Path, help="override run.var_dir")
    p.add_argument("--quiet", action="store_true", help="no live summary on stdout")
    p.add_argument("--operator", action="store_true", help="serve the operator API and dashboard (operator.enabled)")
    p.add_argument("--workers", metavar="N|auto", help="run a Coordinator and N Worker processes (docs/cluster.md)")
    p.add_argument("--join", metavar="HOST:PORT", help="contribute this host's worker capacity to a cluster")
    return p.parse_args(argv)


def worker_count(value: str | int, cpu_count: int | None = None) -> int:
    """``--workers``: ``auto`` is one worker per core, keeping one core for the Coordinator (at least one)."""
    if value == "auto":
        return max(1, (cpu_count or os.cpu_count() or 2) - 1)
    n = int(value)
    if n < 1:
        raise ValueError("--workers must be >= 1 or 'auto'")
    return n


def stop_on_signals() -> tuple[threading.Event, list[int], dict[int, Any]]:
    """SIGINT and SIGTERM set the returned event (each noted in the list); the handlers they
    replaced are returned, for the caller to put back."""
    stop = threading.Event()
    received: list[int] = []

    def on_signal(signum: int, _frame: object) -> None:
        received.append(signum)
        stop.set()

    return stop, received, {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}


def load_settings(args: argparse.Namespace, processes: bool = False):
    """The merged raw configuration and its Settings. ``processes`` (``--workers``, ``--join``):
    the state directory is made absolute (every process of the cluster finds it) and
    ``cluster.workers`` comes from ``--workers`` (a bad count raises ValueError)."""
    from arbor.config.loader import deep_merge, load_raw
    from arbor.config.settings import build_settings

    raw = load_raw(args.config, args.env_file)
    cli: dict = {"run": {}}
    if args.mode:
        cli["run"]["mode"] = args.mode
    if args.var_dir:
        cli["run"]["var_dir"] = str(args.var_dir)
    if args.operator:
        cli["operator"] = {"enabled": True}
    merged = deep_merge(raw, cli)
    if processes:
        merged.setdefault("run", {})["var_dir"] = str(Path(merged["run"].get("var_dir", "var")).resolve())
        if args.workers is not None:
            merged.setdefault("cluster", {})["workers"] = worker_count(args.workers)
    if (merged.get("market") or {}).get("source") == "recorded":
        from arbor.adapters.recorded.source import resolve_recorded

        merged = resolve_recorded(merged, "market.recorded_files")  # the recordings say what market they are
    return merged, build_settings(merged)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.workers is not None or args.join is not None:
        from arbor.actors.cluster.multiprocess import main as cluster_main

        return cluster_main(args)
    try:
        raw_config, settings = load_settings(args)
        from arbor.adapters.venues.wiring import check_venue_settings
        from arbor.config.loader import check_var_dir

        check_venue_settings(settings)  # live mode on a simulated market, say: a config error, before anything starts
        check_var_dir(settings.run.var_dir)  # last: nothing is created for a configuration that fails
    except ConfigError as exc:
        print(f"start-cluster: configuration error: {exc}", file=sys.stderr)
        return 2
    if args.duration is not None and args.duration <= 0:
        print("start-cluster: --duration must be > 0", file=sys.stderr)
        return 2

    from arbor.actors.cluster.build import market_clock
    from arbor.actors.cluster.live import LiveCluster
    from arbor.actors.cluster.logs import configure_logging
    from arbor.actors.cluster.observers import EventLogger, TradeLog
    from arbor.adapters.operator.liveness import EngineCycle, ErrorCounter, LivenessFiles
    from arbor.adapters.operator.server import OperatorConfigError, OperatorSurface, token_from_env

    var_dir = Path(settings.run.var_dir)
    symbols = tuple(s.symbol for s in settings.symbols)
    clock = market_clock(settings, time.time_ns())  # a recorded market runs on the recording's time
    surface = None
    if settings.operator.enabled:
        try:
            surface = OperatorSurface(symbols, clock, var_dir, token_from_env(), host=settings.operator.host,
                                      port=settings.operator.port, webhook_url=settings.operator.webhook_url or None,
                                      cycle_interval_s=settings.operator.cycle_interval_s,
                                      max_connections=settings.operator.max_connections)
        except OperatorConfigError as exc:
            print(f"start-cluster: configuration error: operator: {exc}", file=sys.stderr)
            return 2
    var_dir.mkdir(parents=True, exist_ok=True)
    sink = configure_logging(var_dir / "logs", settings.run.log_level)
    run_id = datetime.now(UTC).strftime("%Y%m%dT%H%M%S") + f"-{os.getpid()}"
    trades = TradeLog(var_dir / "trades.jsonl", settings.run.mode, run_id=run_id)
    if surface is not None:
        surface.facts.restore_entries(trades.open_entry_times())  # /api/positions: the real entry times
    errors = ErrorCounter()
    extra = surface.observers if surface is not None else (errors,)
    def open_journal(built_ns: int, restored: dict):
        from arbor.actors.replay.recorder import open_journal_observer

        metrics = surface.metrics if surface is not None else None
        return open_journal_observer(var_dir, run_id, raw_config, settings.journal.policy, built_ns=built_ns,
                                     restored=restored,
                                     segment_bytes=settings.journal.segment_mb * 1024 * 1024,
                                     on_bytes=metrics.journal_written if metrics is not None else None,
                                     on_fsync=metrics.journal_fsynced if metrics is not None else None)

    cluster = LiveCluster(settings, run_id, observers=(trades, EventLogger(), *extra), clock=clock,
                          journal=open_journal if settings.journal.enabled else None)
    board = cluster.board
    # Liveness for outside monitors runs with or without the operator API.
    cycle = None if surface is not None else EngineCycle(LivenessFiles(var_dir), errors, clock,
                                                         interval_s=settings.operator.cycle_interval_s)

    stop, received, old_handlers = stop_on_signals()
    log = logger.bind(actor="cluster", event_type="lifecycle")
    log.info("starting run {} mode={} symbols={}", run_id, settings.run.mode, ",".join(symbols))
    if not args.quiet:
        print(f"Arbor run {run_id}: mode={settings.run.mode} market={settings.market.source} "
              f"symbols={','.join(symbols)}; logs in {var_dir / 'logs'}; Ctrl-C stops.", flush=True)
    started = time.monotonic()
    status = 0
    try:
        cluster.start()
        if surface is not None:
            url = surface.start(cluster.runtime, board)
            print(f"operator API and dashboard on {url} (bearer token from ARBOR_OPERATOR_TOKEN)", flush=True)
        elif cycle is not None:
            cycle.start()
        log.info("started")
        deadline = started + args.duration if args.duration is not None else None
        while not stop.is_set():
            wait = settings.run.summary_interval_s
            if deadline is not None:
                wait = min(wait, deadline - time.monotonic())
                if wait <= 0:
                    break
            if stop.wait(wait):
                break
            if not args.quiet:
                print(f"\n[{time.monotonic() - started:7.1f}s]\n{board.render()}", flush=True)
    except Exception as exc:
        log.opt(exception=exc).critical("cluster failed: {!r}", exc)
        print(f"start-cluster: failed: {exc!r}", file=sys.stderr)
        if surface is not None and surface.view is not None:
            surface.view.set_error(repr(exc))
        status = 1
    finally:
        t0 = time.monotonic()
        if surface is not None:
            surface.stop()
        if cycle is not None:
            cycle.stop()
        cluster.stop(timeout=4.0)
        trades.close()
        left = [t.name for t in threading.enumerate() if t is not threading.main_thread() and t.is_alive()]
        log.info("stopped in {:.2f}s (signal={}); threads left: {}", time.monotonic() - t0,
                 received[0] if received else None, left)
        if not args.quiet:
            print(f"\nfinal after {time.monotonic() - started:.1f}s:\n{board.render()}", flush=True)
            print(f"stopped cleanly in {time.monotonic() - t0:.2f}s; trade log: {var_dir / 'trades.jsonl'}", flush=True)
            if cluster.journal is not None:
                print(f"journal: {var_dir / 'journal' / run_id} (bin/replay audit {var_dir / 'journal' / run_id})",
                      flush=True)
        for s, h in old_handlers.items():
            signal.signal(s, h)
        stopped = cluster.stopped_for_good()
        for what in stopped:
            log.critical("stopped for good: {}", what)
            print(f"start-cluster: stopped for good: {what}", file=sys.stderr)
        if stopped:
            status = status or 1
        sink.close()
        if left:
            print(f"start-cluster: threads still alive after stop: {left}", file=sys.stderr)
            status = status or 1
    return status


if __name__ == "__main__":
    sys.exit(main())
