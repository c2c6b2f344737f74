"""Fault injection through explicit configuration, for tests, drills and chaos runs.

A ``[[faults]]`` entry names an actor id and what to do to it: ``raise`` on its Nth message,
``hang`` (block the handler for ``hang_ms``) on its Nth message, or ``kill`` (end the thread that
runs it) on its Nth message. ``rate`` instead of ``on_message`` makes it random (chaos), drawn
from a seeded generator so a chaos run can be repeated. Counts survive restarts: a fault that
fires on the 100th message fires once, not again on the restarted actor's 100th.
"""

from __future__ import annotations

import errno
import io
import random
import sqlite3
import threading
from collections import Counter
from typing import Any, TextIO

from arbor.actors.base import ActorLogic
from arbor.config.errors import ConfigError
from arbor.messages.journal import JournalWriter
from attrs import frozen

KINDS = ("raise", "hang", "kill")


class InjectedFault(RuntimeError):
    """An exception raised on purpose by a fault plan."""


class ThreadKill(BaseException):
    """Raised on purpose to end the thread running an actor (a BaseException: nothing catches it by accident)."""


@frozen(kw_only=True)
class FaultSpec:
    actor: str
    kind: str = "raise"
    on_message: int = 0  # fire on this message number (1-based); 0 = use rate
    rate: float = 0.0  # probability per message when on_message is 0
    hang_ms: int = 5000
    message_type: str = ""  # only count messages of this class name ("" = all)

    def validate(self, key: str) -> FaultSpec:
        if self.kind not in KINDS:
            raise ConfigError(f"{key}.kind", f"must be one of {', '.join(KINDS)}")
        if self.on_message < 0 or not 0.0 <= self.rate <= 1.0:
            raise ConfigError(f"{key}.on_message", "on_message must be >= 0 and rate within 0..1")
        if self.on_message == 0 and self.rate == 0.0:
            raise ConfigError(f"{key}.on_message", "give on_message (Nth message) or a rate")
        return self


class FaultPlan:
    """The shared, counting state of every configured fault (thread-safe)."""

    def __init__(self, specs: tuple[FaultSpec, ...], seed: int = 0) -> None:
        self.specs = specs
        self._by_actor: dict[str, list[FaultSpec]] = {}
        for s in specs:
            self._by_actor.setdefault(s.actor, []).append(s)
        self._counts: dict[int, int] = {}
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self.release = threading.Event()  # set on shutdown: injected hangs end
        self.injected: dict[str, int] = {k: 0 for k in KINDS}
        self.enabled = True  # chaos runs switch faults off to settle before the final checks

    def targets(self) -> frozenset[str]:
        return frozenset(self._by_actor)

    def check(self, actor_id: str, msg: Any) -> str | None:
        """The fault to inject for this message, if any."""
        specs = self._by_actor.get(actor_id)
        if not specs or not self.enabled:
            return None
        with self._lock:
            for s in specs:
                if s.message_type and type(msg).__name__ != s.message_type:
                    continue
                n = self._counts[id(s)] = self._counts.get(id(s), 0) + 1
                if (s.on_message and n == s.on_message) or (not s.on_message and self._rng.random() < s.rate):
                    self.injected[s.kind] += 1
                    return s.kind
        return None

    def hang_ms(self, actor_id: str) -> int:
        return max((s.hang_ms for s in self._by_actor.get(actor_id, ()) if s.kind == "hang"), default=0)

    def total(self) -> int:
        return sum(self.injected.values())


class FaultyLogic(ActorLogic):
    """Wraps a logic object and injects the planned faults before delegating to it."""

    def __init__(self, inner: ActorLogic, plan: FaultPlan) -> None:
        super().__init__(inner.ctx)
        self.inner = inner
        self.plan = plan
        # Class constants of the wrapped logic, taken over per instance (mypy: assignment to a ClassVar).
        self.ROLE = inner.ROLE  # type: ignore[misc]
        self.WANTS_TICKS = inner.WANTS_TICKS  # type: ignore[misc]

    def handle(self, msg: Any) -> list[Any] | None:
        kind = self.plan.check(self.ctx.actor_id, msg)
        if kind == "raise":
            raise InjectedFault(f"injected fault in {self.ctx.actor_id} on {type(msg).__name__}")
        if kind == "hang":
            self.plan.release.wait(self.plan.hang_ms(self.ctx.actor_id) / 1000)
        elif kind == "kill":
            raise ThreadKill(f"injected thread kill in {self.ctx.actor_id}")
        return self.inner.handle(msg)

    def handles(self, msg_type: type) -> bool:
        return self.inner.handles(msg_type)

    def stats(self) -> dict[str, Any]:
        return self.inner.stats()

    def __getattr__(self, name: str) -> Any:  # snapshot(), stats(), warm, ... of the wrapped logic
        return getattr(self.inner, name)


class FullDisk(io.StringIO):
    """A text writer that takes ``room`` writes and then fails every write as a full disk does
    (``OSError(ENOSPC)``): inject it where a trading path writes (the trade log's ``sink``)."""

    def __init__(self, room: int = 0) -> None:
        super().__init__()
        self.room = room
        self.refused = 0

    def write(self, text: str) -> int:
        if self.room <= 0:
            self.refused += 1
            raise OSError(errno.ENOSPC, "No space left on device (injected)")
        self.room -= 1
        return super().write(text)


class ProcessCrash(BaseException):
    """The process dies here on purpose (``StorageFaults.crash_after_write_ahead``): nothing after
    the crash point runs, nothing queued is committed. A BaseException, so no handler catches it."""


class StorageFaults:
    """Explicit fault hooks on the paths trading writes to, for drills and the schedule explorer
    (handed to the writers through their constructors, never patched in):

    - ``store_full``: every commit of the state store fails as SQLite's on a full disk
      (``StateStore(write_fault=faults.store_commit)``);
    - ``journal_full``: every journal append fails with ``ENOSPC`` (``FaultyJournalWriter``);
    - ``trade_log_full``: every trade-log line fails with ``ENOSPC`` (``GuardedSink``);
    - ``crash_after_write_ahead=N``: the process dies (``ProcessCrash``) right after the Nth order's
      write-ahead commit, before the order is sent (``StatePersister(after_write_ahead=...)``).

    One object can outlive a process: counts go on across restarts, so a crash happens once.
    """

    def __init__(self, crash_after_write_ahead: int = 0) -> None:
        self.store_full = False
        self.journal_full = False
        self.trade_log_full = False
        self.crash_after_write_ahead = crash_after_write_ahead
        self.write_aheads = 0
        self.crashes = 0
        self.refused: Counter[str] = Counter()  # path -> writes refused

    def store_commit(self) -> None:
        if self.store_full:
            self.refused["store"] += 1
            raise sqlite3.OperationalError("database or disk is full (injected)")

    def journal_append(self) -> None:
        if self.journal_full:
            self.refused["journal"] += 1
            raise OSError(errno.ENOSPC, "No space left on device (injected: journal)")

    def trade_log_write(self) -> None:
        if self.trade_log_full:
            self.refused["trade_log"] += 1
            raise OSError(errno.ENOSPC, "No space left on device (injected: trade log)")

    def write_ahead_done(self, actor_id: str) -> None:
        self.write_aheads += 1
        if self.write_aheads == self.crash_after_write_ahead:
            self.crashes += 1
            raise ProcessCrash(f"injected crash after the write-ahead of {actor_id}, before its order is sent")


class GuardedSink(io.StringIO):
    """A text file whose writes first ask ``check`` (which raises to refuse them): a trade log on a
    disk that fills and frees again (``TradeLog(sink=GuardedSink(open(...), faults.trade_log_write))``).
    A ``StringIO`` only to be a text writer as ``FullDisk`` is; every write goes to ``inner``."""

    def __init__(self, inner: TextIO, check: Any) -> None:
        super().__init__()
        self._inner = inner
        self._check = check

    def write(self, text: str) -> int:
        self._check()
        return self._inner.write(text)

    def flush(self) -> None:
        if not self._inner.closed:
            self._inner.flush()

    def close(self) -> None:
        super().close()  # flushes
        self._inner.close()


class FaultyJournalWriter(JournalWriter):
    """A journal writer whose appends first ask ``check`` (which raises to refuse them): a journal
    on a disk that fills and frees again (``check=faults.journal_append``)."""

    def __init__(self, *args: Any, check: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._check = check

    def append(self, payload: bytes) -> int:
        self._check()
        return super().append(payload)
