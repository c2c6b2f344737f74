"""``bin/start-cluster --workers N|auto`` and ``--join HOST:PORT``: the multi-process cluster.

The launcher process owns the thespian ActorSystem (``multiprocTCPBase``; its admin process is
the launcher's child), creates the ClusterSupervisor, prints the summary, and on SIGINT/SIGTERM
stops everything in reverse order within ``cluster.stop_timeout_s``: Workers, Coordinator,
supervisor, the ActorSystem; then it SIGKILLs and reaps whatever of its process tree is still
alive (thespian actor processes ignore SIGTERM and a killed middle process leaves orphans; the
launcher is a child subreaper, so orphans come back to it). One cluster per state directory:
``<var_dir>/cluster.lock`` (flock) makes a second start refuse. With ``[operator] enabled`` the
launcher also serves the operator API (``adapters.operator.cluster_view``), started once the
cluster has started and stopped first, so it stays up while the Coordinator is restarted.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import os
import signal
import socket
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from arbor.actors.distributed.placement import assign
from loguru import logger

LOCK_FILE = "cluster.lock"


class AlreadyRunning(RuntimeError):
    pass



def operator_token() -> str:
    """ARBOR_OPERATOR_TOKEN if it is set and usable, else "": without one, the cluster refuses every
    operator command that reaches its supervisor (bin/ctl kill/reset, the API)."""
    from arbor.adapters.operator.server import OperatorConfigError, token_from_env

    try:
        return token_from_env()
    except OperatorConfigError:
        return ""

def parse_join(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ValueError(f"--join wants HOST:PORT, got {text!r}")
    return host, int(port)


def acquire_lock(var_dir: Path) -> Any:
    """Hold ``<var_dir>/cluster.lock`` for the life of this process, or raise AlreadyRunning."""
    var_dir.mkdir(parents=True, exist_ok=True)
    path = var_dir / LOCK_FILE
    fh = open(path, "a+")  # noqa: SIM115 -- the lock lives as long as the open file
    try:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        fh.seek(0)
        holder = fh.read().strip() or "?"
        fh.close()
        raise AlreadyRunning(f"another cluster is running with state directory {var_dir} (lock {path}, pid {holder}); "
                             "stop it first or use another --var-dir") from None
    fh.seek(0)
    fh.truncate()
    fh.write(str(os.getpid()))
    fh.flush()
    return fh


def restrict_thespian_bind(host: str) -> None:
    """Make every thespian socket of this process (and of the processes it forks) bind ``host``.

    thespian binds every interface (``''``) for its externally reachable addresses. This wraps
    ``IPActorAddress.__init__`` so those binds use ``host`` and sets ``THESPIAN_BASE_IPADDR`` so
    the addresses handed out are ``host`` too. Called explicitly by the launcher before the
    ActorSystem starts (never at import); forked actor processes inherit it.
    """
    from thespian.system.transport import IPBase

    os.environ["THESPIAN_BASE_IPADDR"] = host
    cls = IPBase.IPActorAddress
    orig = cls.__dict__.get("_arbor_orig_init") or cls.__init__

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        orig(self, *args, **kwargs)
        if self.bindname and self.bindname[0] in ("", "0.0.0.0"):
            self.bindname = (host,) + tuple(self.bindname[1:])

    cls._arbor_orig_init = orig
    cls.__init__ = __init__
    IPBase.thisSystem.add_local_addr(host)


def port_free(host: str, port: int) -> bool:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((host, port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def thespian_log_defs(var_dir: Path) -> dict:
    return {"version": 1, "disable_existing_loggers": False,
            "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(process)d %(message)s"}},
            "handlers": {"file": {"class": "logging.FileHandler", "filename": str(var_dir / "logs" / "thespian.log"),
                                  "formatter": "plain", "level": "WARNING"}},
            "root": {"handlers": ["file"], "level": "WARNING"}}


def start_actor_system(host: str, port: int, var_dir: Path, leader: tuple[str, int] | None = None,
                       worker_host: bool = False) -> Any:
    from arbor.actors.distributed.system import WORKER_HOST_CAPABILITY
    from thespian.actors import ActorSystem

    caps: dict[str, Any] = {"Admin Port": port, "Process Startup Method": "fork"}
    if leader is not None:
        caps["Convention Address.IPv4"] = leader
    if worker_host:
        caps[WORKER_HOST_CAPABILITY] = True
    (var_dir / "logs").mkdir(parents=True, exist_ok=True)
    return ActorSystem("multiprocTCPBase", capabilities=caps, logDefs=thespian_log_defs(var_dir),
                       transientUnique=True)


def main(args: argparse.Namespace) -> int:
    """Run the multi-process cluster (``--workers``) or contribute a host to one (``--join``)."""
    from arbor.actors.cluster.main import load_settings
    from arbor.config.errors import ConfigError

    try:
        raw, settings = load_settings(args, processes=True)
        leader = parse_join(args.join) if args.join else None
    except ConfigError as exc:
        print(f"start-cluster: configuration error: {exc}", file=sys.stderr)
        return 2
    except ValueError as exc:
        print(f"start-cluster: {exc}", file=sys.stderr)
        return 2
    if settings.operator.enabled and leader is None:
        from arbor.adapters.operator.server import OperatorConfigError, token_from_env

        try:
            token_from_env()  # as in single-process mode: never start a cluster whose API would run open
        except OperatorConfigError as exc:
            print(f"start-cluster: configuration error: operator: {exc}", file=sys.stderr)
            return 2
    from arbor.config.loader import check_var_dir

    try:
        var_dir = check_var_dir(settings.run.var_dir)
    except ConfigError as exc:
        print(f"start-cluster: configuration error: {exc}", file=sys.stderr)
        return 2
    try:
        lock = acquire_lock(var_dir)
    except AlreadyRunning as exc:
        print(f"start-cluster: {exc}", file=sys.stderr)
        return 1
    try:
        return _run(args, raw, settings, var_dir, leader)
    finally:
        lock.close()


def _run(args: argparse.Namespace, raw: dict, settings: Any, var_dir: Path, leader: tuple[str, int] | None) -> int:
    from arbor.actors.cluster.build import market_venue
    from arbor.actors.cluster.logs import setup_node_logging
    from arbor.actors.cluster.main import stop_on_signals
    from arbor.actors.cluster.summary import render_summary, stopped_for_good
    from arbor.actors.distributed.supervisor import SUPERVISOR_NAME, ClusterSupervisor
    from arbor.actors.distributed.wire import (
        ClusterPlan,
        ClusterStarted,
        ClusterStatus,
        Poke,
        StatusQuery,
        StopCluster,
        token_digest,
    )
    from arbor.supervision.procs import alive, become_subreaper, descendants, kill_all, reap_children, wait_gone

    c = settings.cluster
    sink = setup_node_logging(var_dir, "launcher", settings.run.log_level)
    log = logger.bind(actor="launcher", event_type="lifecycle")
    subreaper = become_subreaper()
    if not port_free(c.bind_host, c.admin_port):
        print(f"start-cluster: admin port {c.bind_host}:{c.admin_port} is in use (another actor system?); "
              "set cluster.admin_port", file=sys.stderr)
        return 1
    restrict_thespian_bind(c.bind_host)
    stop, received, old = stop_on_signals()
    symbols = tuple(s.symbol for s in settings.symbols)
    n = c.workers
    assignment = assign(symbols, n, c.placement) if n else {}
    remote = tuple(range(n - c.remote_workers, n)) if leader is None and c.remote_workers else ()
    run_id = datetime.now(UTC).strftime("%Y%m%dT%H%M%S") + f"-{os.getpid()}"
    started = time.monotonic()
    status = 0
    asys = None
    sup = None
    sup_pid = 0
    surface = None
    escalated = ""
    try:
        if settings.operator.enabled and leader is None:
            from arbor.adapters.operator.cluster_view import DistributedOperator
            from arbor.adapters.operator.server import token_from_env

            o = settings.operator
            # Built before the cluster starts: it marks where this run's event lines begin.
            surface = DistributedOperator(var_dir, assignment, token_from_env(), host=o.host, port=o.port,
                                          webhook_url=o.webhook_url or None, cycle_interval_s=o.cycle_interval_s,
                                          max_connections=o.max_connections, venue=market_venue(settings))
        asys = start_actor_system(c.bind_host, c.admin_port, var_dir, leader=leader, worker_host=leader is not None)
        if leader is not None:
            log.info("joined the cluster led by {}:{} as a worker host", *leader)
            if not args.quiet:
                print(f"Arbor worker host: joined {leader[0]}:{leader[1]} (admin {c.bind_host}:{c.admin_port}); "
                      "Ctrl-C leaves.", flush=True)
            deadline = started + args.duration if args.duration is not None else None
            while not stop.wait(0.2):
                reap_children()
                if deadline is not None and time.monotonic() >= deadline:
                    break
            return 0
        plan = ClusterPlan(raw_config=raw, run_id=run_id, var_dir=str(var_dir),
                           assignment={k: tuple(v) for k, v in assignment.items()}, launcher_pid=os.getpid(),
                           remote_slots=remote, operator_token_sha256=token_digest(operator_token()))
        sup = asys.createActor(ClusterSupervisor, globalName=SUPERVISOR_NAME)
        reply = asys.ask(sup, plan, timeout=c.start_timeout_s)
        if not isinstance(reply, ClusterStarted):
            raise RuntimeError(f"cluster did not start within {c.start_timeout_s}s")
        sup_pid = reply.supervisor_pid
        log.info("started run {}: {} workers, pids {}", run_id, n, reply.pids)
        if not args.quiet:
            where = ", ".join(f"worker-{k}: {','.join(v) or '-'}" for k, v in sorted(assignment.items()))
            print(f"Arbor run {run_id}: mode={settings.run.mode} market={settings.market.source} workers={n} "
                  f"({where}); admin {c.bind_host}:{c.admin_port}; logs in {var_dir / 'logs'}; Ctrl-C stops.",
                  flush=True)
        if surface is not None:
            # Served by this process, which outlives Coordinator restarts: the API stays up through them.
            url = surface.start(asys, sup)
            print(f"operator API and dashboard on {url} (bearer token from ARBOR_OPERATOR_TOKEN)", flush=True)
        deadline = started + args.duration if args.duration is not None else None
        next_summary = time.monotonic() + settings.run.summary_interval_s
        while not stop.wait(0.25):
            reap_children()
            asys.tell(sup, Poke())
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                break
            if not alive(sup_pid):
                log.critical("cluster supervisor {} died: stopping the cluster", sup_pid)
                print("start-cluster: the cluster supervisor died; stopping everything", file=sys.stderr)
                status = 1
                break
            if now >= next_summary:
                next_summary = now + settings.run.summary_interval_s
                st = asys.ask(sup, StatusQuery(), timeout=2.0)
                if isinstance(st, ClusterStatus) and st.escalated and st.escalated != escalated:
                    escalated = st.escalated
                    log.critical("escalated: {}", st.escalated)
                    print(f"start-cluster: {st.escalated}", file=sys.stderr)
                    if st.stop:  # the spec's escalation stopped the cluster (the Coordinator's)
                        status = st.exit_status or 1
                        break
                if not args.quiet:
                    print(f"\n[{now - started:7.1f}s]\n{render_summary(var_dir, assignment)}", flush=True)
    except Exception as exc:
        log.opt(exception=exc).critical("cluster failed: {!r}", exc)
        print(f"start-cluster: failed: {exc!r}", file=sys.stderr)
        status = 1
    finally:
        t0 = time.monotonic()
        stop_by = t0 + c.stop_timeout_s
        if surface is not None:
            try:
                surface.stop()  # first, within the stop deadline (about 3 s at most)
            except Exception as exc:
                log.warning("operator surface stop failed: {!r}", exc)
        if asys is not None:
            if leader is None and sup is not None and sup_pid and alive(sup_pid):
                with contextlib.suppress(Exception):  # the last word on escalations, before the stop
                    st = asys.ask(sup, StatusQuery(), timeout=1.0)
                    if isinstance(st, ClusterStatus) and st.escalated:
                        escalated = st.escalated
                try:
                    asys.ask(sup, StopCluster(), timeout=max(0.5, stop_by - time.monotonic() - 3.0))
                except Exception as exc:
                    log.warning("orderly stop failed: {!r}", exc)
            done = threading.Event()

            def shutdown() -> None:
                with contextlib.suppress(Exception):
                    asys.shutdown()
                done.set()

            threading.Thread(target=shutdown, name="arbor-asys-shutdown", daemon=True).start()
            done.wait(max(0.2, stop_by - time.monotonic() - 1.0))
        # Whatever of this process tree is still there (thespian ignores SIGTERM; orphans of a
        # killed middle process were re-parented here): SIGKILL and reap.
        left = descendants(os.getpid())
        kill_all(left)
        still = wait_gone(left, max(0.2, stop_by - time.monotonic()))
        reap_children()
        log.info("stopped in {:.2f}s (signal={}); killed {} stragglers; left: {}; subreaper={}",
                 time.monotonic() - t0, received[0] if received else None, len(left), still, subreaper)
        if not args.quiet and leader is None:
            print(f"\nfinal after {time.monotonic() - started:.1f}s:\n{render_summary(var_dir, assignment)}", flush=True)
            print(f"stopped cleanly in {time.monotonic() - t0:.2f}s", flush=True)
        if still:
            print(f"start-cluster: processes still alive after stop: {still}", file=sys.stderr)
            status = status or 1
        if leader is None:
            # As in one process: a market source that died, a quarantined symbol or a Worker past
            # its restart intensity means this run did not do its job, so the exit status says so.
            for what in stopped_for_good(var_dir, assignment, run_id, escalated):
                log.critical("stopped for good: {}", what)
                print(f"start-cluster: stopped for good: {what}", file=sys.stderr)
                status = status or 1
        for s, h in old.items():
            signal.signal(s, h)
        sink.close()
    return status
