"""The journal observer: writes what the runtime sees to a journal, for audit and what-if replay.

Hooks run on whichever thread dispatched the message (group threads, the feed and timer
threads). Each hook encodes on its own thread and appends under one lock, so the journal is one
total order in which a message's EXTERNAL or OUTPUT record always precedes the INPUT records
of the actors that handle it (the runtime shows a message to observers before delivering it).
"""

from __future__ import annotations

import errno
import os
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import attrs
from arbor.actors.base import WriteAheadFailed
from arbor.messages import Envelope, PlaceOrder, RawMarketEvent, TimerTick
from arbor.messages.codec import Codec
from arbor.messages.journal import (
    Durability,
    JournalError,
    JournalWriter,
    RunMetadata,
    encode_derived_input,
    encode_external,
    encode_input,
    encode_output,
    encode_run_started,
    encode_run_stopped,
)
from loguru import logger

JOURNAL_SUBDIR = "journal"
T = TypeVar("T")

# Not journaled: recomputed by a replay from the frame (EXTERNAL) and the collector's INPUT record.
DERIVED: tuple[type, ...] = (RawMarketEvent,)


class JournalObserver:
    """Journals external inputs (EXTERNAL), every actor's inbox in processing order (INPUT, with
    the handler instant) and every emitted message with its receivers (OUTPUT).

    A failed append (disk full, I/O error) does not reach the actors: the observer logs it once,
    stops journaling, counts what it drops and reports ``healthy == False``. The first failure is
    also raised once, as an ``OSError`` from the next ``emitted``/``processed`` call (the failing
    one, unless it was ``external``, which the runtimes call outside the dispatcher): the
    dispatcher hands it to supervision, which fails closed (a storage failure of ``"journal"``
    engages the kill switch: an unjournaled run cannot be audited).

    Orders are the exception (write-ahead): a ``PlaceOrder``'s record is handed to the OS before
    ``emitted`` returns, which is before the venue actor can handle (send) it, so a SIGKILL never
    loses the record of an order that went out; and when that record cannot be written (or the
    journal has already failed), ``emitted`` raises ``WriteAheadFailed`` and the order is not routed.
    Only order records pay for the extra write(2).

    Derived messages (``derived``, by default the collector's ``RawMarketEvent``) get no OUTPUT
    record: an audit recomputes each one byte for byte from the frame's EXTERNAL record and the
    collector's INPUT record, and its receivers' INPUT records become DERIVED_INPUT records naming
    the handler that emitted it (its cause) and its position among that handler's derived
    outputs. That halves the journal's bytes (an event repeats its frame) and saves a record per
    market message. A derived message is still encoded (not written), so one the journal could
    not hold fails its sender as any other would. The run metadata lists the derived tags.
    """

    wants_inputs = True
    NAME = "journal"  # the writer a storage failure names

    def __init__(self, writer: JournalWriter, codec: Codec, clock_ns: Callable[[], int] = time.time_ns,
                 on_bytes: Callable[[int], None] | None = None, derived: tuple[type, ...] = DERIVED) -> None:
        self._writer = writer
        self._derived_types = frozenset(derived)
        self.derived_tags = tuple(t.TAG for t in derived)  # type: ignore[attr-defined]  # registered messages
        # msg_id of a derived message not yet processed by all its receivers -> [cause, position, receivers left]
        self._derived: dict[int, list[int]] = {}
        self._derived_last: dict[str, tuple[int, int]] = {}  # sender -> (cause, position) of its last derived output
        self._on_bytes = on_bytes  # metrics: bytes appended (payload plus the 8-byte record header)
        self._codec = codec
        self._clock_ns = clock_ns
        self._lock = threading.Lock()
        self._failed: BaseException | None = None
        self._unreported: BaseException | None = None  # the failure, until the dispatcher has been told
        self.records = 0
        self.dropped = 0

    @property
    def directory(self) -> Path:
        return self._writer.directory

    @property
    def healthy(self) -> bool:
        return self._failed is None

    # -- run lifecycle ----------------------------------------------------------------------
    def start_run(self, meta: RunMetadata) -> None:
        """Write the run's metadata record (with the derived tags); call once, before the runtime starts."""
        self._append(encode_run_started(attrs.evolve(meta, derived=self.derived_tags)))

    def close(self) -> None:
        """Write the clean-stop record, flush and release the journal; call after the runtime stopped."""
        with self._lock:
            if self._failed is None:
                try:
                    self._writer.append(encode_run_stopped(self._clock_ns()))
                    self.records += 1
                except (JournalError, OSError) as exc:
                    self._fail(exc)
            try:
                self._writer.close()
            except (JournalError, OSError) as exc:
                self._fail(exc)

    # -- Observer ---------------------------------------------------------------------------
    def external(self, env: Envelope) -> None:
        payload = encode_external(self._codec, env)
        if type(env.payload) is TimerTick:
            self._append(payload, sync=True)  # ticks drive the interval policy through quiet spells
        else:
            self._append(payload)

    def emitted(self, env: Envelope, receivers: tuple[str, ...]) -> None:
        t = type(env.payload)
        if t in self._derived_types:
            self._codec.encode(env.payload)  # not written; raises for what the journal could not hold
            sender, cause = env.sender, env.causation_id
            with self._lock:
                last = self._derived_last.get(sender)
                position = last[1] + 1 if last is not None and last[0] == cause else 0
                self._derived_last[sender] = (cause, position)
                if receivers:
                    self._derived[env.msg_id] = [cause, position, len(receivers)]
            self._report()
            return
        if t is PlaceOrder:
            self._append_order(encode_output(self._codec, env, receivers), env)
        else:
            self._append(encode_output(self._codec, env, receivers))
        self._report()

    def processed(self, actor_id: str, env: Envelope, now_ns: int) -> None:
        if type(env.payload) in self._derived_types:
            with self._lock:
                d = self._derived.get(env.msg_id)
                if d is not None:
                    d[2] -= 1
                    if d[2] <= 0:
                        del self._derived[env.msg_id]
            if d is not None:
                self._append(encode_derived_input(actor_id, now_ns, env.msg_id, d[0], d[1]))
                self._report()
                return
        self._append(encode_input(actor_id, now_ns, env.msg_id))
        self._report()

    def _report(self) -> None:
        """Raise the journal's failure once, to the dispatcher that called (see the class docstring)."""
        if self._unreported is not None:
            exc, self._unreported = self._unreported, None
            raise OSError(getattr(exc, "errno", None) or errno.EIO, f"journal failed: {exc!r}") from exc

    # -- internals --------------------------------------------------------------------------
    def _append(self, payload: bytes, sync: bool = False) -> None:
        with self._lock:
            if self._failed is not None:
                self.dropped += 1
                return
            try:
                self._writer.append(payload)
                if self._on_bytes is not None:
                    self._on_bytes(len(payload) + 8)
                if sync:
                    self._writer.sync_if_due()
            except (JournalError, OSError) as exc:
                self._fail(exc)
                self.dropped += 1
                return
            self.records += 1

    def _append_order(self, payload: bytes, env: Envelope) -> None:
        """Append an order's record and hand it to the OS, or raise WriteAheadFailed."""
        with self._lock:
            if self._failed is not None:
                self.dropped += 1
                raise WriteAheadFailed(f"journal unusable ({self._failed!r}): order {env.payload.client_order_id} not sent")
            try:
                self._writer.append(payload)
                self._writer.write_through()
            except (JournalError, OSError) as exc:
                self._fail(exc)
                self.dropped += 1
                raise WriteAheadFailed(f"journal write failed ({exc!r}): order {env.payload.client_order_id} not sent") from exc
            if self._on_bytes is not None:
                self._on_bytes(len(payload) + 8)
            self.records += 1

    def _fail(self, exc: BaseException) -> None:
        if self._failed is None:
            self._failed = self._unreported = exc
            logger.bind(event_type="journal_failed", directory=str(self._writer.directory)).critical(
                "journal {} failed ({!r}); journaling stopped, this run can no longer be audited",
                self._writer.directory, exc)


def parse_durability(value: Durability | str) -> Durability:
    """``"every_record"``, ``"rotation"``, ``"interval"`` or ``"interval:<ms>"`` as a Durability."""
    if isinstance(value, Durability):
        return value
    mode, _, ms = value.partition(":")
    return Durability(mode=mode, interval_ms=int(ms)) if ms else Durability(mode=mode)  # type: ignore[arg-type]  # Durability refuses an unknown mode


def plain_snapshots(restored: Mapping[str, Any]) -> dict[str, Any]:
    """Restored snapshots as plain data for the run metadata (the state store's own encoding)."""
    from arbor.supervision.snapshots import SnapshotCodec

    codec = SnapshotCodec()
    return {aid: codec.to_plain(snap) for aid, snap in restored.items()}


def build_held(build: Callable[[], T], clock: Any) -> tuple[T, int]:
    """``(build(), instant)``: call ``build`` with ``clock`` held still (``begin``/``end``), so every
    clock read in an actor's constructor returns the instant a replay will hold its clock at.

    ``actors, built_ns = build_held(lambda: build_actors(settings, clock, run_id), clock)``
    """
    begin = getattr(clock, "begin", None)
    if begin is None:
        return build(), clock.now_ns()
    instant = begin()
    try:
        return build(), instant
    finally:
        clock.end()


def open_journal_observer(var_dir: Path | str, run_id: str, raw_config: Mapping[str, Any],
                          durability: Durability | str = "interval", *, built_ns: int = 0, codec: Codec | None = None,
                          clock_ns: Callable[[], int] = time.time_ns, segment_bytes: int = 64 * 1024 * 1024,
                          on_bytes: Callable[[int], None] | None = None,
                          on_fsync: Callable[[float], None] | None = None,
                          restored: Mapping[str, Any] | None = None, node: str | None = None,
                          fsync: Callable[[int], None] = os.fsync) -> JournalObserver:
    """A JournalObserver on ``<var_dir>/journal/<run_id>`` (``.../<run_id>/<node>`` for one process
    of a multi-process run) that has written the run's metadata.

    ``raw_config`` is the merged raw configuration tree the cluster's Settings were built from;
    ``built_ns`` the instant the actors were built at (see ``build_held``). ``on_bytes`` and
    ``on_fsync`` (seconds per fsync) feed the metrics. ``restored`` maps each actor restored from
    the state store to its snapshot (what ``snapshot()`` returned right after the restore): it is
    recorded in the metadata so an audit replay starts each actor from that state. ``fsync`` syncs a
    descriptor (a cluster node passes one that does it off its thread: ``actors.cluster.fsync``).
    """
    directory = Path(var_dir) / JOURNAL_SUBDIR / run_id
    if node is not None:
        directory = directory / node

    def timed_fsync(fd: int) -> None:
        t0 = time.perf_counter()
        fsync(fd)
        if on_fsync is not None:
            on_fsync(time.perf_counter() - t0)

    writer = JournalWriter(directory, run_id=run_id, durability=parse_durability(durability), clock_ns=clock_ns,
                           segment_bytes=segment_bytes, fsync=timed_fsync)
    observer = JournalObserver(writer, codec or Codec(), clock_ns, on_bytes=on_bytes)
    try:
        observer.start_run(RunMetadata(run_id=run_id, config=dict(raw_config), started_ns=clock_ns(),
                                         built_ns=built_ns, restored=plain_snapshots(restored or {})))
    except BaseException:
        writer.close()
        raise
    if not observer.healthy:
        raise JournalError(f"could not write the run metadata to {directory}")
    return observer


def record_simulated_run(var_dir: Path | str, raw_config: Mapping[str, Any], seconds: float, *,
                         run_id: str = "sim", durability: Durability | str = "rotation",
                         segment_bytes: int = 64 * 1024 * 1024) -> Path:
    """Run the cluster of ``raw_config`` on the deterministic scheduler for ``seconds`` of simulated
    time with a journal, and return the journal's directory (for trying replay without a live run)."""
    from arbor.actors.cluster.simulate import SimulatedCluster
    from arbor.config.settings import build_settings

    settings = build_settings(raw_config)
    start_ns = 1_723_161_600_000_000_000
    observer = open_journal_observer(var_dir, run_id, raw_config, durability, built_ns=start_ns,
                                     clock_ns=_Counter(start_ns), segment_bytes=segment_bytes)
    try:
        cluster = SimulatedCluster(settings, start_ns=start_ns, run_id=run_id, observers=(observer,))
        cluster.run_for(seconds)
    finally:
        observer.close()
    return observer.directory


class _Counter:
    """A journal-writer clock for simulated runs: deterministic, one nanosecond per call."""

    def __init__(self, start_ns: int) -> None:
        self._now = start_ns

    def __call__(self) -> int:
        self._now += 1
        return self._now
