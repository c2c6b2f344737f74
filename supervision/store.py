"""The state store: what restarted actors rebuild themselves from, in one SQLite file.

Supervision snapshots logic state into the store and restores it from there; logic classes never
call it. The file lives under the run's var directory (``<var_dir>/state/arbor.sqlite``), in WAL
mode with ``synchronous=NORMAL``: a commit is durable against a crash of the process, and a power
loss can lose only the last commits, never corrupt the file.

Checkpoints (copying the WAL into the main file, with its fsync) never run inside a commit: SQLite
would run one in whichever commit crosses 1,000 WAL pages, and that commit then took 12-14 ms
instead of 0.1 ms (measured here), sometimes the write-ahead of an order on its way out. A
thread of the store checkpoints from a connection of its own every ``checkpoint_interval_s``
(PASSIVE: it never blocks a writer), and ``close`` checkpoints what is left.

Every value is JSON text with Decimals as strings, so what is read back equals what was written.
``transaction()`` groups writes atomically (one fill updates the position and the orders
together); the single connection is shared by threads under a lock.

A store that cannot be trusted is never used and never fatal: on open, a file that is not a
database, fails ``PRAGMA integrity_check`` or carries an unknown schema version is moved aside to
``<name>.corrupted.<ns>`` (its ``-wal``/``-shm`` to ``<name>.corrupted.<ns>-wal``/``-shm``, so the
quarantined copy still opens with its log), a warning is logged, and a fresh, empty store is
started with ``degraded=True`` and the reason in ``degraded_reason``. If not even a fresh file can
be created, the store runs in memory, degraded.

Whether a store started empty is told apart from a store that was lost: ``fresh`` says this open
created the tables (the file was missing, 0 bytes or just quarantined), ``found_empty`` that a
0-byte file was there, and ``marker_found`` whether the marker the store writes beside itself
(``<name>.created``, once it holds a schema) was already there. The cluster weighs these against
the var dir's other traces of a previous run (``actors.cluster.restart``).
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import attrs
from arbor.actors.arbitrator.logic import ArbitratorSnapshot
from arbor.actors.executor.orders import SETTLED_ORDERS_KEPT, SETTLED_PRUNE_BATCH, ExecutorSnapshot, TrackedOrder
from arbor.actors.position.snapshot import PositionSnapshot
from arbor.actors.risk.book import Reservation
from arbor.actors.risk.controls import ControlsSnapshot, KillSwitchRecord, QuarantineRecord, ScopeRecord
from arbor.actors.risk.limits import LimitsSnapshot
from arbor.actors.risk.logic import AssumptionHold, RiskSnapshot, SymbolBookRecord
from arbor.messages import Direction, PositionState, ReconciliationCompleted, TradingState
from arbor.supervision.snapshots import SnapshotCodec, SnapshotError
from loguru import logger

if TYPE_CHECKING:  # for annotations only: the store does not load the simulator at run time
    from arbor.adapters.sim.paper import PaperOrderState, PaperVenueSnapshot

T = TypeVar("T")

SCHEMA_VERSION = 1
STORE_FILE = Path("state") / "arbor.sqlite"
SQLITE_HEADER = b"SQLite format 3\x00"
SIDECARS = ("-wal", "-shm", "-journal")
MARKER_SUFFIX = ".created"  # written beside the file once it holds a schema: "a store was here"
UNSAVED_SUFFIX = ".unsaved"  # beside the file while state the process holds could not be committed
_PRUNE_BATCH = 32  # settled orders written between two retention prunes of a symbol
# Never fewer settled orders than an executor can hold: pruning one it still holds would only
# have it written again.
DEFAULT_ORDER_RETENTION = SETTLED_ORDERS_KEPT + SETTLED_PRUNE_BATCH

_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE positions (
    symbol TEXT PRIMARY KEY, state TEXT NOT NULL, direction TEXT, qty TEXT NOT NULL,
    avg_entry_price TEXT, realized_pnl TEXT NOT NULL, fees TEXT NOT NULL, action_id TEXT NOT NULL,
    order_qty TEXT, order_filled TEXT NOT NULL, updated_ns INTEGER NOT NULL);
CREATE TABLE executors (symbol TEXT PRIMARY KEY, position_qty TEXT NOT NULL, updated_ns INTEGER NOT NULL);
CREATE TABLE orders (
    symbol TEXT NOT NULL, client_order_id TEXT NOT NULL, action_id TEXT NOT NULL, intent TEXT NOT NULL,
    side TEXT NOT NULL, qty TEXT NOT NULL, status TEXT NOT NULL, filled TEXT NOT NULL,
    sent_ns INTEGER NOT NULL, terminal INTEGER NOT NULL, seq INTEGER NOT NULL, updated_ns INTEGER NOT NULL,
    data TEXT NOT NULL, PRIMARY KEY (symbol, client_order_id)) WITHOUT ROWID;
CREATE INDEX orders_by_age ON orders (symbol, terminal, seq);
CREATE TABLE kill_switch (
    id INTEGER PRIMARY KEY CHECK (id = 1), engaged INTEGER NOT NULL, who TEXT NOT NULL,
    reason TEXT NOT NULL, ts_ns INTEGER NOT NULL);
CREATE TABLE trading_states (
    scope TEXT PRIMARY KEY, state TEXT NOT NULL, who TEXT NOT NULL, reason TEXT NOT NULL,
    ts_ns INTEGER NOT NULL, set_by_supervision INTEGER NOT NULL, restore_state TEXT);
CREATE TABLE quarantines (symbol TEXT PRIMARY KEY, reason TEXT NOT NULL, ts_ns INTEGER NOT NULL);
CREATE TABLE loss_anchors (
    id INTEGER PRIMARY KEY CHECK (id = 1), day INTEGER, day_start_equity TEXT NOT NULL,
    peak_equity TEXT NOT NULL, daily_hit_day INTEGER, drawdown_hit INTEGER NOT NULL);
CREATE TABLE risk_books (symbol TEXT PRIMARY KEY, data TEXT NOT NULL);
CREATE TABLE risk_extra (id INTEGER PRIMARY KEY CHECK (id = 1), data TEXT NOT NULL);
CREATE TABLE arbitrator (id INTEGER PRIMARY KEY CHECK (id = 1), data TEXT NOT NULL);
CREATE TABLE collector_seq (symbol TEXT PRIMARY KEY, seq INTEGER NOT NULL);
CREATE TABLE kv (key TEXT PRIMARY KEY, value TEXT NOT NULL, updated_ns INTEGER NOT NULL);
"""
TABLES = frozenset(
    {"meta", "positions", "executors", "orders", "kill_switch", "trading_states", "quarantines", "loss_anchors",
     "risk_books", "risk_extra", "arbitrator", "collector_seq", "kv"}
)

_UPSERT_POSITION = (
    "INSERT OR REPLACE INTO positions (symbol, state, direction, qty, avg_entry_price, realized_pnl, fees, action_id,"
    " order_qty, order_filled, updated_ns) VALUES (?,?,?,?,?,?,?,?,?,?,?)"
)
def _venue_prefix(symbol: str) -> str:
    return f"venue:{symbol}:order:"


_UPSERT_ORDER = (
    "INSERT INTO orders (symbol, client_order_id, action_id, intent, side, qty, status, filled, sent_ns, terminal,"
    " seq, updated_ns, data) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)"
    " ON CONFLICT (symbol, client_order_id) DO UPDATE SET status = excluded.status, filled = excluded.filled,"
    " terminal = excluded.terminal, updated_ns = excluded.updated_ns, data = excluded.data"
)
_UPSERT_EXECUTOR = "INSERT OR REPLACE INTO executors (symbol, position_qty, updated_ns) VALUES (?,?,?)"


@attrs.frozen(kw_only=True)
class StoreQuarantine:
    """A store file moved aside on open: where it went, with which sidecars, and why."""

    original: Path
    moved_to: Path
    sidecars: tuple[Path, ...]
    reason: str
    ts_ns: int


@attrs.frozen(kw_only=True)
class _RiskExtra:
    reservations: tuple[Reservation, ...]
    approved_at: tuple[int, ...]
    reconciliations: tuple[ReconciliationCompleted, ...]
    assumption_holds: tuple[AssumptionHold, ...] = ()  # absent in a store written before they existed


def _same(a: Any, b: Any) -> bool:
    """Whether two immutable values are equal (identity first: snapshots reuse unchanged parts)."""
    return a is b or (a is not None and b is not None and a == b)


class _Untrusted(Exception):
    """The file on disk cannot be used as a store (the message says why)."""


def _initial_script(now_ns: int) -> str:
    """Tables and schema version of a new store, in one transaction."""
    return (f"BEGIN IMMEDIATE;{_SCHEMA}INSERT INTO meta VALUES ('schema_version', '{SCHEMA_VERSION}'),"
            f" ('created_ns', '{int(now_ns)}');COMMIT;")


def _dec(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def _undec(text: str | None) -> Decimal | None:
    return None if text is None else Decimal(text)


class StateStore:
    """Transactional, thread-safe persistence of positions, orders, Risk and Arbitrator state.

    ``order_retention``: settled orders kept per symbol (between it and it + 32); live and UNKNOWN
    orders are always kept. Every public method may be called from any thread.
    """

    def __init__(
        self, path: Path | str, clock_ns: Callable[[], int] = time.time_ns, *, order_retention: int = DEFAULT_ORDER_RETENTION,
        checkpoint_interval_s: float = 1.0, write_fault: Callable[[], None] | None = None,
    ) -> None:
        """``write_fault``: called before every commit; what it raises fails the transaction as a
        commit error would (a fault hook: ``faults.StorageFaults.store_commit``)."""
        self.path = Path(path)
        self._write_fault = write_fault
        self._clock_ns = clock_ns
        self.order_retention = order_retention
        self._codec = SnapshotCodec()
        self._lock = threading.RLock()
        self._depth = 0
        self._log = logger.bind(component="state_store", path=str(self.path))
        # Orders as last written, by symbol and client order id: an unchanged (identical) object
        # is not written again, so saving a whole executor snapshot costs only what changed.
        self._written: dict[str, dict[str, TrackedOrder]] = {}
        self._written_qty: dict[str, Decimal] = {}
        # The simulated venue's order records as last written: symbol -> client order id ->
        # [record object, kv key]; a record identical to the one written is not written again.
        self._venue_written: dict[str, dict[str, list[Any]]] = {}
        self._venue_no: dict[str, int] = {}
        # Risk's and the Arbitrator's parts as last written (see save_risk); None: write all.
        self._risk_written: dict[str, Any] | None = None
        self._arbitrator_written: ArbitratorSnapshot | None = None
        self._settled_writes: Counter[str] = Counter()
        self._seq = 0
        self.degraded = False
        self.degraded_reason = ""
        self.quarantine: StoreQuarantine | None = None
        self.fresh = False  # this open created the tables
        self.found_empty = False  # a 0-byte file was found where the store should be
        self.marker = self.path.with_name(self.path.name + MARKER_SUFFIX)
        self.marker_found = self.marker.exists()
        self.unsaved = self.path.with_name(self.path.name + UNSAVED_SUFFIX)
        self.unsaved_found = self._read_unsaved()  # why the previous process could not save, or ""
        self._unsaved_marked = bool(self.unsaved_found)
        self._in_memory = False  # the last-resort fallback: nothing to checkpoint
        self._conn = self._open()
        if not self._in_memory and not self.marker_found:
            self._write_marker()
        self._seq = self._conn.execute("SELECT COALESCE(MAX(seq), 0) FROM orders").fetchone()[0]
        self._checkpoint_stop = threading.Event()
        self._checkpointer: threading.Thread | None = None
        if not self._in_memory:
            self._conn.execute("PRAGMA wal_autocheckpoint=0")
            self._checkpointer = threading.Thread(target=self._checkpoints, args=(checkpoint_interval_s,),
                                                  name="arbor-store-checkpoint", daemon=True)
            self._checkpointer.start()

    @classmethod
    def in_var_dir(cls, var_dir: Path | str, clock_ns: Callable[[], int] = time.time_ns,
                   write_fault: Callable[[], None] | None = None) -> StateStore:
        """The run's store: ``<var_dir>/state/arbor.sqlite``."""
        return cls(Path(var_dir) / STORE_FILE, clock_ns, write_fault=write_fault)

    # -- opening --------------------------------------------------------------------------------
    def _open(self) -> sqlite3.Connection:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            try:
                return self._open_trusted()
            except _Untrusted as exc:
                self._quarantine(str(exc))
            return self._open_trusted()
        except (OSError, sqlite3.Error, _Untrusted) as exc:
            self._degrade(f"store unusable at {self.path} ({exc}); running from memory, nothing survives a restart")
            self._in_memory = True
            conn = sqlite3.connect(":memory:", check_same_thread=False, isolation_level=None)
            conn.executescript(_initial_script(self._clock_ns()))
            return conn

    def _open_trusted(self) -> sqlite3.Connection:
        """A connection to a file that passed every check, initialized if it was empty."""
        self._check_header()
        conn = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None, timeout=10.0)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            tables = self._check_contents(conn)
            if not tables:
                self.fresh = True
                conn.executescript(_initial_script(self._clock_ns()))
                # The header page reaches the main file now, so an empty main file always means "new".
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            return conn
        except sqlite3.OperationalError:
            # Locked, busy, unreadable: the file may be fine; never quarantine it for that.
            conn.close()
            raise
        except sqlite3.DatabaseError as exc:
            conn.close()
            raise _Untrusted(f"not a valid database: {exc}") from exc
        except BaseException:
            conn.close()
            raise

    def _check_header(self) -> None:
        if self.path.exists() and self.path.stat().st_size == 0:
            self.found_empty = True
        if not self.path.exists() or self.path.stat().st_size == 0:
            return  # new (an empty main file with a WAL beside it is recovered from the WAL)
        with open(self.path, "rb") as f:
            header = f.read(len(SQLITE_HEADER))
        if header != SQLITE_HEADER:
            raise _Untrusted("not a SQLite database (bad header)")

    def _check_contents(self, conn: sqlite3.Connection) -> set[str]:
        """The tables of a sound store of this schema version (empty for a new file); else raise."""
        rows = conn.execute("PRAGMA integrity_check").fetchall()
        if rows != [("ok",)]:
            raise _Untrusted("integrity_check failed: " + "; ".join(str(r[0]) for r in rows[:3]))
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if not tables:
            return tables
        if "meta" not in tables:
            raise _Untrusted("no schema version (meta table missing)")
        row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        if row is None or row[0] != str(SCHEMA_VERSION):
            raise _Untrusted(f"unknown schema version {None if row is None else row[0]!r} (this build reads {SCHEMA_VERSION})")
        missing = TABLES - tables
        if missing:
            raise _Untrusted(f"schema version {SCHEMA_VERSION} without tables {', '.join(sorted(missing))}")
        return tables

    def _quarantine(self, reason: str) -> None:
        """Move the file and its sidecars to ``<name>.corrupted.<ns>[-wal|-shm]``."""
        ts = self._clock_ns()
        while any(self.path.with_name(f"{self.path.name}.corrupted.{ts}{s}").exists() for s in ("", *SIDECARS)):
            ts += 1
        target = self.path.with_name(f"{self.path.name}.corrupted.{ts}")
        os.replace(self.path, target)
        moved = []
        for suffix in SIDECARS:
            side = self.path.with_name(self.path.name + suffix)
            if side.exists():
                dest = target.with_name(target.name + suffix)
                os.replace(side, dest)
                moved.append(dest)
        self.quarantine = StoreQuarantine(original=self.path, moved_to=target, sidecars=tuple(moved), reason=reason, ts_ns=ts)
        self._degrade(f"store quarantined to {target.name}: {reason}; started empty")

    def _degrade(self, reason: str) -> None:
        self.degraded = True
        self.degraded_reason = reason if not self.degraded_reason else f"{self.degraded_reason}; {reason}"
        self._log.warning("state store degraded: {}", reason)

    @property
    def in_memory(self) -> bool:
        """Whether the store fell back to memory (nothing it holds survives the process)."""
        return self._in_memory

    def _read_unsaved(self) -> str:
        try:
            return self.unsaved.read_text(encoding="utf-8").strip() or "unknown"
        except FileNotFoundError:
            return ""
        except (OSError, ValueError) as exc:
            return f"unreadable marker: {exc!r}"

    def mark_unsaved(self, reason: str) -> None:
        """Leave a trace that state this process holds is not committed (a write failed): a process
        that starts on this store while it is there did not get the newest state (the latch
        included) and must fail closed. Best effort (an empty-ish file: often still possible on
        a full disk); once per outage."""
        if self._unsaved_marked:
            return
        self._unsaved_marked = True
        try:
            self.unsaved.write_text(reason + "\n", encoding="utf-8")
        except OSError as exc:
            self._log.error("could not leave the unsaved-state marker {}: {!r}", self.unsaved, exc)

    def clear_unsaved(self) -> None:
        """Everything held is committed again: the trace goes."""
        if not self._unsaved_marked:
            return
        self._unsaved_marked = False
        try:
            self.unsaved.unlink(missing_ok=True)
        except OSError as exc:
            self._log.error("could not remove the unsaved-state marker {}: {!r}", self.unsaved, exc)

    def _write_marker(self) -> None:
        try:
            self.marker.write_text(f"arbor state store created at {self._clock_ns()} ns\n", encoding="utf-8")
        except OSError as exc:  # the store still works; only a later loss of it is harder to tell
            self._log.warning("could not write the store marker {}: {!r}", self.marker, exc)

    @property
    def journal_mode(self) -> str:
        with self._lock:
            mode: str = self._conn.execute("PRAGMA journal_mode").fetchone()[0]
        return mode

    @property
    def changes(self) -> int:
        """Rows the store has written since it was opened (sqlite's ``total_changes``): what a test
        of "nothing unchanged is written again" counts."""
        return self._conn.total_changes

    def pragma(self, name: str) -> object:
        """The value of sqlite ``PRAGMA name`` on the store's connection (durability settings)."""
        if not name.replace("_", "").isalpha():
            raise ValueError(f"not a pragma name: {name!r}")
        return self._conn.execute(f"PRAGMA {name}").fetchone()[0]

    def close(self) -> None:
        self._checkpoint_stop.set()
        if self._checkpointer is not None:
            self._checkpointer.join(5.0)
        with self._lock:
            if self._checkpointer is not None:
                try:
                    self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                except sqlite3.Error as exc:  # the WAL stays beside the file and is replayed on open
                    self._log.warning("final checkpoint failed: {!r}", exc)
            self._conn.close()

    def _checkpoints(self, interval_s: float) -> None:
        """Copy the WAL into the main file every ``interval_s``, beside the writers, never in their commits."""
        try:
            conn = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None, timeout=10.0)
        except sqlite3.Error as exc:
            self._log.warning("no checkpoint connection ({!r}): the WAL grows until close", exc)
            return
        try:
            while not self._checkpoint_stop.wait(interval_s):
                try:
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
                except sqlite3.Error as exc:  # busy or gone: the next round tries again
                    self._log.warning("checkpoint failed: {!r}", exc)
        finally:
            conn.close()

    def __enter__(self) -> StateStore:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- transactions ---------------------------------------------------------------------------
    @contextmanager
    def transaction(self) -> Iterator[StateStore]:
        """All writes inside commit together or not at all; a nested block joins the outer one."""
        with self._lock:
            if self._depth:
                self._depth += 1
                try:
                    yield self
                finally:
                    self._depth -= 1
                return
            self._conn.execute("BEGIN IMMEDIATE")
            self._depth = 1
            try:
                yield self
                if self._write_fault is not None:
                    self._write_fault()
                self._conn.execute("COMMIT")
            except BaseException:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                # What was "already written" may not be on disk: write everything next time.
                self._written.clear()
                for records in self._venue_written.values():
                    for entry in records.values():
                        entry[0] = None  # rewritten next time, under the key it already has
                self._written_qty.clear()
                self._risk_written = None
                self._arbitrator_written = None
                raise
            finally:
                self._depth = 0

    # -- positions ------------------------------------------------------------------------------
    def save_position(self, symbol: str, snapshot: PositionSnapshot) -> None:
        s = snapshot
        row = (symbol, s.state.value, s.direction.value if s.direction else None, str(s.qty), _dec(s.avg_entry_price),
               str(s.realized_pnl), str(s.fees), s.action_id, _dec(s.order_qty), str(s.order_filled), self._clock_ns())
        with self.transaction():
            self._conn.execute(_UPSERT_POSITION, row)

    def load_position(self, symbol: str) -> PositionSnapshot | None:
        with self._lock:
            row = self._conn.execute(
                "SELECT state, direction, qty, avg_entry_price, realized_pnl, fees, action_id, order_qty, order_filled"
                " FROM positions WHERE symbol = ?", (symbol,)).fetchone()
        if row is None:
            return None
        state, direction, qty, avg, pnl, fees, action_id, order_qty, order_filled = row
        try:
            return PositionSnapshot(
                state=PositionState(state), direction=Direction(direction) if direction else None, qty=Decimal(qty),
                avg_entry_price=_undec(avg), realized_pnl=Decimal(pnl), fees=Decimal(fees), action_id=action_id,
                order_qty=_undec(order_qty), order_filled=Decimal(order_filled))
        except (ValueError, ArithmeticError) as exc:
            raise SnapshotError(f"stored position of {symbol} is invalid: {exc}") from exc

    # -- orders and the executor ----------------------------------------------------------------
    def save_orders(self, symbol: str, orders: Iterable[TrackedOrder]) -> int:
        """Insert or update ``orders`` of ``symbol`` (other stored orders stay); the number written.

        An order object identical to the one last written or loaded is skipped. Settled orders
        past ``order_retention`` are pruned, oldest first.
        """
        now = self._clock_ns()
        with self.transaction():
            written = self._written.setdefault(symbol, {})
            rows = []
            settled = 0
            for o in orders:
                coid = o.client_order_id
                if written.get(coid) is o:
                    continue
                written[coid] = o
                terminal = not o.is_live
                settled += terminal
                self._seq += 1
                rows.append((symbol, coid, o.action_id, o.intent.value, o.side.value, str(o.qty), o.status.value,
                             str(o.filled_qty), o.sent_ns, int(terminal), self._seq, now, self._codec.encode(o)))
            if rows:
                self._conn.executemany(_UPSERT_ORDER, rows)
            if settled:
                self._settled_writes[symbol] += settled
                if self._settled_writes[symbol] >= _PRUNE_BATCH:
                    self._prune_orders(symbol)
        return len(rows)

    def _prune_orders(self, symbol: str) -> None:
        self._settled_writes[symbol] = 0
        old = self._conn.execute(
            "SELECT client_order_id FROM orders WHERE symbol = ? AND terminal = 1 ORDER BY seq DESC LIMIT -1 OFFSET ?",
            (symbol, self.order_retention)).fetchall()
        if old:
            self._conn.executemany("DELETE FROM orders WHERE symbol = ? AND client_order_id = ?", [(symbol, c) for (c,) in old])
            written = self._written.get(symbol, {})
            for (coid,) in old:
                written.pop(coid, None)

    def load_orders(self, symbol: str) -> tuple[TrackedOrder, ...]:
        """Every stored order of ``symbol`` (live and retained settled ones), oldest first."""
        with self._lock:
            rows = self._conn.execute("SELECT data FROM orders WHERE symbol = ? ORDER BY seq", (symbol,)).fetchall()
            orders = tuple(self._codec.decode(text, TrackedOrder) for (text,) in rows)
            self._written[symbol] = {o.client_order_id: o for o in orders}
        return orders

    def save_executor(self, symbol: str, snapshot: ExecutorSnapshot) -> None:
        """The executor's orders and forwarded position, atomically (only changed orders are written)."""
        with self.transaction():
            self.save_orders(symbol, snapshot.orders)
            if self._written_qty.get(symbol) != snapshot.position_qty:
                self._conn.execute(_UPSERT_EXECUTOR, (symbol, str(snapshot.position_qty), self._clock_ns()))
                self._written_qty[symbol] = snapshot.position_qty

    def load_executor(self, symbol: str) -> ExecutorSnapshot | None:
        with self._lock:
            row = self._conn.execute("SELECT position_qty FROM executors WHERE symbol = ?", (symbol,)).fetchone()
            orders = self.load_orders(symbol)
            if row is None and not orders:
                return None
            qty = Decimal(row[0]) if row else Decimal("0")
            if row is not None:
                self._written_qty[symbol] = qty
        return ExecutorSnapshot(symbol=symbol, position_qty=qty, orders=orders)

    # -- risk -----------------------------------------------------------------------------------
    def save_risk(self, snapshot: RiskSnapshot) -> None:
        """Make the stored Risk state equal ``snapshot``, in one transaction, writing only the
        parts that differ from what this store last wrote: Risk changes after nearly every
        decision, but mostly in one book and its order-rate window, and rewriting every table
        (every symbol's book encoded again) took ~1 ms of the Coordinator's thread per flush."""
        c, lim, k = snapshot.controls, snapshot.limits, snapshot.controls.kill
        kill = (int(k.engaged), k.who, k.reason, k.ts_event_ns)
        anchors = (lim.day, str(lim.day_start_equity), str(lim.peak_equity), lim.daily_hit_day, int(lim.drawdown_hit))
        extra = (snapshot.reservations, snapshot.approved_at, snapshot.reconciliations, snapshot.assumption_holds)
        with self.transaction():
            last = self._risk_written  # read under the store's lock, as it is written
            x = self._conn.execute
            if last is None or last["kill"] != kill:
                x("INSERT OR REPLACE INTO kill_switch VALUES (1, ?, ?, ?, ?)", kill)
            if last is None or not _same(last["scopes"], c.scopes):
                x("DELETE FROM trading_states")
                self._conn.executemany(
                    "INSERT INTO trading_states VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [(s.scope, s.state.value, s.who, s.reason, s.ts_event_ns, int(s.set_by_supervision),
                      s.restore_on_recovery.value if s.restore_on_recovery else None) for s in c.scopes])
            if last is None or not _same(last["quarantines"], c.quarantines):
                x("DELETE FROM quarantines")
                self._conn.executemany("INSERT INTO quarantines VALUES (?, ?, ?)",
                                       [(q.symbol, q.reason, q.ts_event_ns) for q in c.quarantines])
            if last is None or last["anchors"] != anchors:
                x("INSERT OR REPLACE INTO loss_anchors VALUES (1, ?, ?, ?, ?, ?)", anchors)
            books = {b.symbol: b for b in snapshot.books}
            if last is None:
                x("DELETE FROM risk_books")
                changed = list(books.values())
            else:
                written = last["books"]
                changed = [b for s, b in books.items() if not _same(written.get(s), b)]
                gone = [(s,) for s in written if s not in books]
                if gone:
                    self._conn.executemany("DELETE FROM risk_books WHERE symbol = ?", gone)
            if changed:
                enc = self._codec.encode
                # An upsert keeps a row's rowid: books load back in the order they were first written.
                self._conn.executemany("INSERT INTO risk_books VALUES (?, ?)"
                                       " ON CONFLICT (symbol) DO UPDATE SET data = excluded.data",
                                       [(b.symbol, enc(b)) for b in changed])
            if last is None or not all(_same(a, b) for a, b in zip(last["extra"], extra, strict=True)):
                x("INSERT OR REPLACE INTO risk_extra VALUES (1, ?)", (self._codec.encode(_RiskExtra(
                    reservations=snapshot.reservations, approved_at=snapshot.approved_at,
                    reconciliations=snapshot.reconciliations, assumption_holds=snapshot.assumption_holds)),))
            # Cleared if the transaction this joins rolls back (then everything is written next time).
            self._risk_written = {"kill": kill, "scopes": c.scopes, "quarantines": c.quarantines, "anchors": anchors,
                                  "books": books, "extra": extra}

    def load_risk(self) -> RiskSnapshot | None:
        """The stored Risk state, or None if Risk was never saved."""
        with self._lock:
            q = self._conn.execute
            kill = q("SELECT engaged, who, reason, ts_ns FROM kill_switch WHERE id = 1").fetchone()
            if kill is None:
                return None
            scopes = q("SELECT scope, state, who, reason, ts_ns, set_by_supervision, restore_state FROM trading_states"
                       " ORDER BY rowid").fetchall()
            quarantines = q("SELECT symbol, reason, ts_ns FROM quarantines ORDER BY rowid").fetchall()
            anchors = q("SELECT day, day_start_equity, peak_equity, daily_hit_day, drawdown_hit FROM loss_anchors").fetchone()
            books = q("SELECT data FROM risk_books ORDER BY rowid").fetchall()
            extra_row = q("SELECT data FROM risk_extra WHERE id = 1").fetchone()
        try:
            controls = ControlsSnapshot(
                kill=KillSwitchRecord(engaged=bool(kill[0]), who=kill[1], reason=kill[2], ts_event_ns=kill[3]),
                scopes=tuple(ScopeRecord(scope=s, state=TradingState(st), who=w, reason=r, ts_event_ns=ts,
                                         set_by_supervision=bool(sup), restore_on_recovery=TradingState(rs) if rs else None)
                             for s, st, w, r, ts, sup, rs in scopes),
                quarantines=tuple(QuarantineRecord(symbol=s, reason=r, ts_event_ns=ts) for s, r, ts in quarantines))
            if anchors is None:
                raise SnapshotError("stored Risk state has no loss anchors")
            limits = LimitsSnapshot(day=anchors[0], day_start_equity=Decimal(anchors[1]), peak_equity=Decimal(anchors[2]),
                                    daily_hit_day=anchors[3], drawdown_hit=bool(anchors[4]))
            extra = (self._codec.decode(extra_row[0], _RiskExtra) if extra_row
                     else _RiskExtra(reservations=(), approved_at=(), reconciliations=()))
        except (ValueError, ArithmeticError) as exc:
            raise SnapshotError(f"stored Risk state is invalid: {exc}") from exc
        return RiskSnapshot(
            controls=controls, limits=limits,
            books=tuple(self._codec.decode(text, SymbolBookRecord) for (text,) in books),
            reservations=extra.reservations, approved_at=extra.approved_at, reconciliations=extra.reconciliations,
            assumption_holds=extra.assumption_holds)

    # -- arbitrator -----------------------------------------------------------------------------
    def save_arbitrator(self, snapshot: ArbitratorSnapshot) -> None:
        """Written only when it differs from the snapshot this store last wrote."""
        with self._lock:
            if _same(self._arbitrator_written, snapshot):
                return
        with self.transaction():
            self._conn.execute("INSERT OR REPLACE INTO arbitrator VALUES (1, ?)", (self._codec.encode(snapshot),))
            self._arbitrator_written = snapshot

    def load_arbitrator(self) -> ArbitratorSnapshot | None:
        with self._lock:
            row = self._conn.execute("SELECT data FROM arbitrator WHERE id = 1").fetchone()
        return None if row is None else self._codec.decode(row[0], ArbitratorSnapshot)

    # -- collector sequence and small keyed values ----------------------------------------------
    def save_collector_seq(self, symbol: str, seq: int) -> None:
        with self.transaction():
            self._conn.execute("INSERT OR REPLACE INTO collector_seq VALUES (?, ?)", (symbol, seq))

    def load_collector_seq(self, symbol: str) -> int | None:
        with self._lock:
            row = self._conn.execute("SELECT seq FROM collector_seq WHERE symbol = ?", (symbol,)).fetchone()
        return None if row is None else row[0]

    def put(self, key: str, value: Any) -> None:
        """Store a small value (attrs values, dicts, lists, Decimals as strings) under ``key``."""
        text = self._codec.encode(value)
        with self.transaction():
            self._conn.execute("INSERT OR REPLACE INTO kv VALUES (?, ?, ?)", (key, text, self._clock_ns()))

    def get(self, key: str, cls: type[T] | None = None, default: Any = None) -> Any:
        """The value under ``key`` decoded as ``cls`` (plain JSON, Decimals as strings, without one)."""
        with self._lock:
            row = self._conn.execute("SELECT value FROM kv WHERE key = ?", (key,)).fetchone()
        if row is None:
            return default
        return self._codec.decode(row[0], cls) if cls is not None else self._codec.decode(row[0], Any)

    def delete(self, key: str) -> None:
        with self.transaction():
            self._conn.execute("DELETE FROM kv WHERE key = ?", (key,))

    # -- the simulated venue's records ----------------------------------------------------------
    def save_venue(self, symbol: str, snapshot: PaperVenueSnapshot) -> None:
        """The paper venue's records (a ``PaperVenueSnapshot``): its position, counters and
        requests in flight under ``venue:SYMBOL``, and each order under a key of its own, written
        only when its record changed (a settled order's record never does); orders the venue
        no longer keeps are deleted. A fill costs what changed, not the whole order history."""
        now = self._clock_ns()
        enc = self._codec.encode
        with self.transaction():  # the bookkeeping too is under the store's lock
            written = self._venue_written.setdefault(symbol, {})
            rows = []
            kept = set()
            for st in snapshot.orders:
                coid = st.place.client_order_id
                kept.add(coid)
                entry = written.get(coid)
                if entry is not None and entry[0] is st:
                    continue
                if entry is None:
                    entry = written[coid] = [None, f"{_venue_prefix(symbol)}{self._next_venue_no(symbol):012d}"]
                entry[0] = st
                rows.append((entry[1], enc(st), now))
            gone = [c for c in written if c not in kept]
            self._conn.execute("INSERT OR REPLACE INTO kv VALUES (?, ?, ?)",
                               (f"venue:{symbol}", enc(attrs.evolve(snapshot, orders=())), now))
            if rows:
                self._conn.executemany("INSERT OR REPLACE INTO kv VALUES (?, ?, ?)", rows)
            if gone:
                self._conn.executemany("DELETE FROM kv WHERE key = ?", [(written[c][1],) for c in gone])
            for c in gone:
                del written[c]

    def load_venue(
        self, symbol: str, snapshot_cls: type[PaperVenueSnapshot], order_cls: type[PaperOrderState]
    ) -> PaperVenueSnapshot | None:
        """The paper venue's records as ``save_venue`` wrote them, orders in the order they came."""
        prefix = _venue_prefix(symbol)
        with self._lock:
            head = self._conn.execute("SELECT value FROM kv WHERE key = ?", (f"venue:{symbol}",)).fetchone()
            rows = self._conn.execute("SELECT key, value FROM kv WHERE key > ? AND key < ? ORDER BY key",
                                      (prefix, prefix + "~")).fetchall()
        if head is None:
            return None
        snap = self._codec.decode(head[0], snapshot_cls)
        written = self._venue_written[symbol] = {}
        orders = []
        for key, value in rows:
            st = self._codec.decode(value, order_cls)
            written[st.place.client_order_id] = [st, key]
            orders.append(st)
        if rows:
            self._venue_no[symbol] = int(rows[-1][0][len(prefix):]) + 1
        # A header with its orders inside comes from an older version of this store: keep them.
        return attrs.evolve(snap, orders=tuple(snap.orders) + tuple(orders))

    def _next_venue_no(self, symbol: str) -> int:
        no = self._venue_no.get(symbol)
        if no is None:
            prefix = _venue_prefix(symbol)
            with self._lock:
                row = self._conn.execute("SELECT MAX(key) FROM kv WHERE key > ? AND key < ?",
                                         (prefix, prefix + "~")).fetchone()
            no = int(row[0][len(prefix):]) + 1 if row and row[0] else 1
        self._venue_no[symbol] = no + 1
        return no
