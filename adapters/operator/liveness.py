"""Liveness for outside monitors: a heartbeat file and a ``run.jsonl`` line per engine cycle.

``LivenessFiles`` writes both atomically (a temp file in the same directory, then
``os.replace``), so a reader never sees half a file. A corrupt file found at start is renamed
``<name>.corrupted.<UTC timestamp>`` and rewritten; corruption is never fatal. ``run.jsonl``
keeps its last ``max_lines`` lines (the previous generation is ``run.jsonl.1``), so rewriting it
every cycle costs a bounded amount.

``EngineCycle`` is the thread that drives one cycle per interval: it counts the errors the
cluster reported since the last cycle (``ErrorCounter``), samples mailbox depths and Risk's
status into the metrics, raises a missed-heartbeat alert when a cycle ran late or a group did not
answer, writes the liveness files and tells the view.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from arbor.actors.cluster.observers import iso
from arbor.messages import ActorFailed, DeadLetter, DecodeFailure, Envelope, PoisonMessageQuarantined, SymbolQuarantined
from arbor.supervision.files import write_atomic
from loguru import logger

HEARTBEAT = "heartbeat.json"
RUN_LOG = "run.jsonl"
_ERRORS = frozenset({ActorFailed, DeadLetter, DecodeFailure, PoisonMessageQuarantined, SymbolQuarantined})


def _stamp() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")


def quarantine(path: Path) -> Path:
    """Set a corrupt file aside as ``<name>.corrupted.<UTC timestamp>``."""
    target = path.with_name(f"{path.name}.corrupted.{_stamp()}")
    os.replace(path, target)
    logger.bind(actor="liveness", event_type="file_quarantined").warning("corrupt {} moved to {}", path, target)
    return target


class LivenessFiles:
    """``heartbeat.json`` and ``run.jsonl`` in ``directory``."""

    def __init__(self, directory: Path, max_lines: int = 3600, fsync: bool = True) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.heartbeat_path = self.directory / HEARTBEAT
        self.run_log_path = self.directory / RUN_LOG
        self.max_lines = max_lines
        self._fsync = fsync
        self.quarantined: list[Path] = []
        self._lines = self._load_run_log()
        self._check_heartbeat()

    def _load_run_log(self) -> list[str]:
        path = self.run_log_path
        if not path.exists():
            return []
        try:
            text = path.read_text(encoding="utf-8")
            lines = text.splitlines()
            for line in lines:
                if not isinstance(json.loads(line), dict):
                    raise ValueError("not a JSON object")
            if text and not text.endswith("\n"):
                raise ValueError("torn last line")
            return lines[-self.max_lines:]
        except (ValueError, UnicodeDecodeError):
            self.quarantined.append(quarantine(path))
            good = []
            for line in path.with_name(self.quarantined[-1].name).read_bytes().decode("utf-8", "replace").splitlines():
                try:
                    if isinstance(json.loads(line), dict):
                        good.append(line)
                except ValueError:
                    break  # keep what came before the damage; the rest is in the quarantined copy
            write_atomic(path, "".join(line + "\n" for line in good[-self.max_lines:]), self._fsync)
            return good[-self.max_lines:]

    def _check_heartbeat(self) -> None:
        path = self.heartbeat_path
        if not path.exists():
            return
        try:
            if not isinstance(json.loads(path.read_text(encoding="utf-8")), dict):
                raise ValueError("not a JSON object")
        except (ValueError, UnicodeDecodeError):
            self.quarantined.append(quarantine(path))

    def beat(self, ts_ns: int, engine_status: str, errors_this_cycle: int, cycle: int,
             detail: dict[str, Any] | None = None) -> dict[str, Any]:
        """Write the heartbeat and append one run-log line; return the line."""
        line = {"ts": iso(ts_ns), "ts_ns": ts_ns, "cycle": cycle, "engine_status": engine_status,
                "errors_this_cycle": errors_this_cycle, "pid": os.getpid(), **(detail or {})}
        text = json.dumps(line, separators=(",", ":"), default=str)
        write_atomic(self.heartbeat_path, text + "\n", self._fsync)
        if len(self._lines) >= self.max_lines:
            os.replace(self.run_log_path, self.run_log_path.with_name(RUN_LOG + ".1"))
            self._lines = []
        self._lines.append(text)
        write_atomic(self.run_log_path, "\n".join(self._lines) + "\n", self._fsync)
        return line


class ErrorCounter:
    """Observer: errors the cluster reported (failures, dead letters, decode failures) since the last ``take``."""

    wants_inputs = False

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._count = 0
        self.total = 0

    def external(self, env: Envelope) -> None:
        pass

    def processed(self, actor_id: str, env: Envelope, now_ns: int = 0) -> None:
        pass

    def emitted(self, env: Envelope, receivers: tuple[str, ...]) -> None:
        if type(env.payload) in _ERRORS:
            with self._lock:
                self._count += 1
                self.total += 1

    def take(self) -> int:
        with self._lock:
            n, self._count = self._count, 0
        return n


class ErrorSource(Protocol):
    """What a liveness cycle reads errors from: an ErrorCounter, or the multi-process events follower."""

    def take(self) -> int:
        """Errors seen since the previous call."""
        ...


class EngineCycle:
    """One liveness cycle every ``interval_s`` on its own thread; ``run_once`` is one cycle, for tests."""

    def __init__(self, files: LivenessFiles, errors: ErrorSource, clock: Any, *, interval_s: float = 1.0,
                 view: Any = None, metrics: Any = None, stream: Any = None,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.files = files
        self.errors = errors
        self.clock = clock
        self.interval_s = interval_s
        self.view = view
        self.metrics = metrics
        self.stream = stream
        self._monotonic = monotonic
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_at: float | None = None
        self.cycles = 0
        self.last_line: dict[str, Any] | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="arbor-liveness", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.run_once()
            except Exception as exc:  # a monitor must outlive its own bugs; the run log shows the gap
                logger.bind(actor="liveness", event_type="cycle_failed").opt(exception=exc).error("liveness cycle failed")

    def run_once(self) -> dict[str, Any]:
        now_mono = self._monotonic()
        # Wall time: a monitor compares the heartbeat with its own clock, also while the actors run
        # on a recording's time (HandlerClock.offset_ns); a clock without wall_ns is used as it is.
        ts = getattr(self.clock, "wall_ns", self.clock.now_ns)()
        errors = self.errors.take()
        problems: list[str] = []
        if self._last_at is not None and now_mono - self._last_at > 2 * self.interval_s:
            problems.append(f"cycle late by {now_mono - self._last_at - self.interval_s:.2f}s")
        self._last_at = now_mono
        if self.view is not None:
            depths, silent = self.view.mailbox_depths()
            if silent:
                problems.append(f"groups not answering: {', '.join(silent)}")
            if self.metrics is not None:
                self.metrics.set_mailbox_depths(depths)
                try:
                    self.metrics.set_risk_status(self.view.risk_status())
                except Exception as exc:
                    problems.append(f"risk status unavailable: {exc!r}")
                try:  # the assumptions' current values (their health changes are observed as they happen)
                    self.metrics.set_assumptions(self.view.assumptions()["symbols"])
                except Exception as exc:
                    logger.bind(actor="liveness", event_type="assumptions_unavailable").warning(
                        "assumption health unavailable: {!r}", exc)
        storage = getattr(self.view, "storage_faults", None)
        if storage is not None:
            problems += [f"{w} cannot write: {e}" for w, e in sorted(storage().items())]
        if self.metrics is not None:
            self.metrics.sample_staleness()
        if problems and self.stream is not None:
            self.stream.alert("missed_heartbeat", ts, "critical", "; ".join(problems), {"problems": problems})
        status = "ok" if not errors and not problems else "degraded"
        self.cycles += 1
        self.last_line = self.files.beat(ts, status, errors, self.cycles, {"problems": problems} if problems else None)
        if self.view is not None:
            self.view.record_engine_cycle(ts)
        return self.last_line
