"""StateStore: exact round trips, atomic transactions, WAL, and quarantine of untrusted files."""

from __future__ import annotations

import sqlite3
import threading
from decimal import Decimal as D
from pathlib import Path
from typing import Any

import attrs
import pytest
from arbor.actors.executor.orders import TrackedOrder
from arbor.actors.position.snapshot import PositionSnapshot
from arbor.messages import Direction, OrderIntent, OrderStatus, OrderType, PositionState, Side
from arbor.supervision.store import SCHEMA_VERSION, StateStore

NS = 1_700_000_000_000_000_000


def clock(start: int = NS):
    ticks = iter(range(start, start + 10**9))
    return lambda: next(ticks)


def open_store(tmp_path: Path, name: str = "arbor.sqlite", **kw) -> StateStore:
    return StateStore(tmp_path / "state" / name, clock(), **kw)


def order(coid: str = "c1", status: OrderStatus = OrderStatus.NEW, **kw) -> TrackedOrder:
    fields: dict[str, Any] = dict(client_order_id=coid, action_id=f"act-{coid}", intent=OrderIntent.ENTRY, side=Side.BUY, qty=D("0.010"),
                  order_type=OrderType.LIMIT, limit_price=D("50000.10"), reduce_only=False, status=status,
                  sent_ns=NS, awaiting_since_ns=NS)
    fields.update(kw)
    return TrackedOrder(**fields)


def position(qty: str = "0.010") -> PositionSnapshot:
    return PositionSnapshot(state=PositionState.OPEN, direction=Direction.SHORT, qty=D(qty),
                            avg_entry_price=D("50000.10"), realized_pnl=D("-1.2500"), fees=D("0.0200"), action_id="a1")


def test_position_round_trip_is_exact(tmp_path):
    """A saved position loads back equal, Decimal exponents included."""
    with open_store(tmp_path) as store:
        store.save_position("BTCUSDT", position())
        loaded = store.load_position("BTCUSDT")
    assert loaded == position() and str(loaded.fees) == "0.0200"


def test_unknown_symbol_loads_none(tmp_path):
    """Nothing stored for a symbol loads as None."""
    with open_store(tmp_path) as store:
        assert store.load_position("NOPE") is None and store.load_executor("NOPE") is None and store.load_risk() is None


def test_orders_round_trip_in_creation_order(tmp_path):
    """Orders of every status, with fill ids and held cancels, load back equal and oldest first."""
    orders = (
        order("c1", OrderStatus.UNKNOWN, last_query_ns=NS + 5),
        order("c2", OrderStatus.PARTIALLY_FILLED, filled_qty=D("0.004"), fill_ids=("f1", "f2")),
        order("c3", OrderStatus.PENDING_CANCEL, held_cancel_filled_qty=D("0.005"), held_cancel_reason="x"),
        order("c4", OrderStatus.FILLED, filled_qty=D("0.010"), reconciled_qty=D("0.001"), emergency=True),
    )
    with open_store(tmp_path) as store:
        store.save_orders("BTCUSDT", orders)
        store.save_orders("BTCUSDT", [attrs.evolve(orders[0], status=OrderStatus.NEW)])
        loaded = store.load_orders("BTCUSDT")
    assert loaded == (attrs.evolve(orders[0], status=OrderStatus.NEW), *orders[1:])


def test_data_survives_reopen(tmp_path):
    """What one store committed, the next store opened on the file reads."""
    with open_store(tmp_path) as store:
        store.save_position("BTCUSDT", position())
        store.save_orders("BTCUSDT", [order()])
    with open_store(tmp_path) as again:
        assert again.load_position("BTCUSDT") == position() and again.load_orders("BTCUSDT") == (order(),)
        assert not again.degraded


def test_transaction_rolls_back_every_write(tmp_path):
    """An exception inside transaction() leaves neither the position nor the order written."""
    with open_store(tmp_path) as store:
        store.save_position("BTCUSDT", position("0.010"))
        with pytest.raises(RuntimeError), store.transaction():
            store.save_position("BTCUSDT", position("0.020"))
            store.save_orders("BTCUSDT", [order()])
            raise RuntimeError("crash between the two halves of a fill")
        assert store.load_position("BTCUSDT") == position("0.010") and store.load_orders("BTCUSDT") == ()


def test_rolled_back_orders_are_written_on_the_next_save(tmp_path):
    """An order whose write was rolled back is not skipped as unchanged afterwards."""
    with open_store(tmp_path) as store:
        o = order()
        with pytest.raises(RuntimeError), store.transaction():
            store.save_orders("BTCUSDT", [o])
            raise RuntimeError
        assert store.save_orders("BTCUSDT", [o]) == 1 and store.load_orders("BTCUSDT") == (o,)


def test_nested_transaction_joins_the_outer_one(tmp_path):
    """A failure after a nested block also undoes the nested block's writes."""
    with open_store(tmp_path) as store:
        with pytest.raises(RuntimeError), store.transaction():
            with store.transaction():
                store.save_position("BTCUSDT", position())
            raise RuntimeError
        assert store.load_position("BTCUSDT") is None


def test_transaction_commits_position_and_orders_together(tmp_path):
    """Both writes of one transaction are visible to a second connection after it ends."""
    path = tmp_path / "state" / "arbor.sqlite"
    with StateStore(path, clock()) as store:
        with store.transaction():
            store.save_position("BTCUSDT", position())
            store.save_orders("BTCUSDT", [order()])
        other = sqlite3.connect(path)
        counts = [other.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in ("positions", "orders")]
        other.close()
    assert counts == [1, 1]


def test_wal_mode_and_normal_sync(tmp_path):
    """The store runs in WAL mode with synchronous=NORMAL."""
    with open_store(tmp_path) as store:
        sync = store.pragma("synchronous")
        assert store.journal_mode == "wal" and sync == 1


def test_unchanged_orders_are_not_rewritten(tmp_path):
    """Saving the same order objects again writes nothing."""
    with open_store(tmp_path) as store:
        orders = [order("c1"), order("c2")]
        assert store.save_orders("BTCUSDT", orders) == 2
        assert store.save_orders("BTCUSDT", orders) == 0
        assert store.save_orders("BTCUSDT", [orders[0], attrs.evolve(orders[1], status=OrderStatus.FILLED)]) == 1


def test_settled_orders_are_pruned_oldest_first(tmp_path):
    """Past the retention, the oldest settled orders go; live ones always stay."""
    with open_store(tmp_path, order_retention=3) as store:
        store.save_orders("BTCUSDT", [order("live", OrderStatus.UNKNOWN)])
        store.save_orders("BTCUSDT", [order(f"s{i:03}", OrderStatus.FILLED) for i in range(64)])
        kept = [o.client_order_id for o in store.load_orders("BTCUSDT")]
    assert kept == ["live", "s061", "s062", "s063"]


def test_put_get_small_values(tmp_path):
    """Keyed values round-trip; Decimals are strings without a type, exact with one."""
    with open_store(tmp_path) as store:
        store.put("anchor", {"equity": D("100.50")})
        store.put("pos", position())
        assert store.get("anchor") == {"equity": "100.50"}
        assert store.get("pos", PositionSnapshot) == position()
        assert store.get("missing", default=7) == 7


def test_collector_sequence_round_trip(tmp_path):
    """The collector's sequence per symbol is stored and replaced."""
    with open_store(tmp_path) as store:
        store.save_collector_seq("BTCUSDT", 41)
        store.save_collector_seq("BTCUSDT", 42)
        assert store.load_collector_seq("BTCUSDT") == 42 and store.load_collector_seq("ETHUSDT") is None


def test_saves_from_many_threads(tmp_path):
    """Concurrent saves from several threads all land."""
    with open_store(tmp_path) as store:
        def work(i: int) -> None:
            for j in range(50):
                store.save_orders(f"S{i}", [order(f"c{j}")])
        threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert [len(store.load_orders(f"S{i}")) for i in range(4)] == [50] * 4


# -- untrusted files ---------------------------------------------------------------------------


def files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def test_garbage_file_is_quarantined_with_its_sidecars(tmp_path):
    """A non-database file and its -wal/-shm move to <name>.corrupted.<ns>[-wal|-shm]; the store starts empty."""
    state = tmp_path / "state"
    state.mkdir()
    (state / "arbor.sqlite").write_bytes(b"\x00garbage" * 512)
    (state / "arbor.sqlite-wal").write_bytes(b"wal bytes")
    (state / "arbor.sqlite-shm").write_bytes(b"shm bytes")
    store = StateStore(state / "arbor.sqlite", lambda: 123)
    assert store.degraded and "bad header" in store.degraded_reason
    assert store.quarantine.moved_to == state / "arbor.sqlite.corrupted.123"
    assert (state / "arbor.sqlite.corrupted.123").read_bytes() == b"\x00garbage" * 512
    assert (state / "arbor.sqlite.corrupted.123-wal").read_bytes() == b"wal bytes"
    assert (state / "arbor.sqlite.corrupted.123-shm").read_bytes() == b"shm bytes"
    store.save_position("BTCUSDT", position())
    assert store.load_position("BTCUSDT") == position()
    store.close()


def test_short_garbage_file_is_quarantined(tmp_path):
    """A few bytes that are not a SQLite header are quarantined too."""
    path = tmp_path / "arbor.sqlite"
    path.write_bytes(b"SQL")
    store = StateStore(path, lambda: 9)
    assert store.degraded and (tmp_path / "arbor.sqlite.corrupted.9").read_bytes() == b"SQL"
    store.close()


def test_truncated_store_is_quarantined(tmp_path):
    """A real store cut short fails its checks, is moved aside, and a fresh one starts degraded."""
    path = tmp_path / "arbor.sqlite"
    with StateStore(path, clock()) as store:
        for i in range(300):
            store.save_orders("BTCUSDT", [order(f"c{i}", fill_ids=tuple(f"f{i}-{k}" for k in range(20)))])
    size = path.stat().st_size
    with open(path, "r+b") as f:
        f.truncate(size // 2)
    store = StateStore(path, lambda: 77)
    assert store.degraded and store.quarantine.reason.startswith(("not a valid database", "integrity_check failed"))
    assert (tmp_path / "arbor.sqlite.corrupted.77").stat().st_size == size // 2
    assert store.load_orders("BTCUSDT") == () and store.journal_mode == "wal"
    store.close()


def test_wrong_schema_version_is_quarantined(tmp_path):
    """A store of another schema version is not read: it is quarantined and the store starts empty."""
    path = tmp_path / "arbor.sqlite"
    with StateStore(path, clock()) as store:
        store.save_position("BTCUSDT", position())
    conn = sqlite3.connect(path)
    conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION + 1),))
    conn.commit()
    conn.close()
    store = StateStore(path, lambda: 5)
    assert store.degraded and f"unknown schema version '{SCHEMA_VERSION + 1}'" in store.degraded_reason
    assert files(tmp_path) == ["arbor.sqlite", "arbor.sqlite-shm", "arbor.sqlite-wal", "arbor.sqlite.corrupted.5",
                               "arbor.sqlite.created"]
    assert store.load_position("BTCUSDT") is None
    store.close()


def test_new_store_is_fresh_and_leaves_its_marker(tmp_path):
    """A store created where none was says ``fresh`` and writes ``<name>.created``; reopened, it is
    neither fresh nor without its marker."""
    path = tmp_path / "arbor.sqlite"
    with StateStore(path, clock()) as store:
        assert store.fresh and not store.marker_found and not store.found_empty
        store.save_position("BTCUSDT", position())
    assert (tmp_path / "arbor.sqlite.created").exists()
    with StateStore(path, clock()) as store:
        assert not store.fresh and store.marker_found


def test_zero_byte_store_is_told_apart_from_a_missing_one(tmp_path):
    """A 0-byte file starts a fresh store that says it found the file empty (a missing one does not)."""
    path = tmp_path / "arbor.sqlite"
    path.write_bytes(b"")
    with StateStore(path, clock()) as store:
        assert store.fresh and store.found_empty and not store.degraded


def test_database_without_schema_version_is_quarantined(tmp_path):
    """Some other SQLite database at the store's path is quarantined, not adopted."""
    path = tmp_path / "arbor.sqlite"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE something_else (x)")
    conn.commit()
    conn.close()
    store = StateStore(path, lambda: 6)
    assert store.degraded and "no schema version" in store.degraded_reason
    store.close()


def test_empty_file_is_a_new_store(tmp_path):
    """A zero-length file with no log beside it is a store never written: opened, not degraded."""
    path = tmp_path / "arbor.sqlite"
    path.write_bytes(b"")
    with StateStore(path, clock()) as store:
        assert not store.degraded and store.quarantine is None


def test_quarantined_names_never_collide(tmp_path):
    """A second quarantine at the same clock reading takes the next free nanosecond."""
    path = tmp_path / "arbor.sqlite"
    for _ in range(2):
        path.write_bytes(b"not a database at all")
        StateStore(path, lambda: 100).close()
    assert (tmp_path / "arbor.sqlite.corrupted.100").exists() and (tmp_path / "arbor.sqlite.corrupted.101").exists()


def test_unusable_location_runs_degraded_in_memory(tmp_path):
    """When no file can be created at all, the store still works, in memory, degraded."""
    blocker = tmp_path / "var"
    blocker.write_bytes(b"a file where the directory should be")
    store = StateStore.in_var_dir(blocker, clock())
    assert store.degraded and "running from memory" in store.degraded_reason
    store.save_position("BTCUSDT", position())
    assert store.load_position("BTCUSDT") == position()
    store.close()


def test_store_lives_under_the_var_dir(tmp_path):
    """in_var_dir puts the store at <var_dir>/state/arbor.sqlite."""
    with StateStore.in_var_dir(tmp_path, clock()) as store:
        assert store.path == tmp_path / "state" / "arbor.sqlite" and store.path.exists()


def test_commits_never_checkpoint_the_store_thread_does_and_close_truncates(tmp_path):
    """SQLite's automatic checkpoint (an fsync inside whichever commit crosses 1,000 WAL pages) is
    off: the store's own thread copies the WAL into the file beside the writers, and close()
    leaves an empty WAL."""
    from arbor.actors.testing import eventually

    store = open_store(tmp_path, checkpoint_interval_s=0.05)
    path = tmp_path / "state" / "arbor.sqlite"
    assert store.pragma("wal_autocheckpoint") == 0
    size_before = path.stat().st_size
    for i in range(300):
        with store.transaction():
            store.put(f"k{i}", {"blob": "x" * 4000})
    eventually(lambda: path.stat().st_size > size_before + 300 * 4000, timeout=5.0, interval=0.01)
    store.close()
    wal = tmp_path / "state" / "arbor.sqlite-wal"
    assert not wal.exists() or wal.stat().st_size == 0
    again = open_store(tmp_path)
    try:
        assert again.get("k299", dict) == {"blob": "x" * 4000}
    finally:
        again.close()


# -- the simulated venue's records ------------------------------------------------------------
def venue_records(n: int, forgotten: int = 0):
    """A paper venue with ``n`` filled orders, the first ``forgotten`` of them out of its history."""
    from arbor.actors.testing import ManualClock, make_ctx
    from arbor.adapters.sim import PaperConfig, PaperVenueLogic
    from arbor.messages import MarketEventKind, PlaceOrder, RawMarketEvent, TimerTick

    clock = ManualClock()
    v = PaperVenueLogic(make_ctx("BTCUSDT/venue", "BTCUSDT", clock),
                        PaperConfig(latency_ms=0, order_history=max(1, n - forgotten)))
    v.handle(RawMarketEvent(symbol="BTCUSDT", venue="sim", ingest_seq=1, ts_event_ns=0, ts_recv_ns=0, raw=b"",
                            kind=MarketEventKind.QUOTE, bid_price=D("99"), bid_qty=D("1000"), ask_price=D("100"),
                            ask_qty=D("1000")))
    for i in range(n + 1):  # the last arrival trims the history
        v.handle(PlaceOrder(symbol="BTCUSDT", client_order_id=f"c{i}", side=Side.BUY, qty=D("0.01"),
                            order_type=OrderType.MARKET, limit_price=None, reduce_only=False, ts_event_ns=0))
        v.handle(TimerTick(ts_event_ns=0))
    return v


def test_venue_records_round_trip_and_only_changes_are_written(tmp_path):
    """Each order under its own key: saving again writes the header only; forgotten orders are deleted."""
    from arbor.actors.testing import ManualClock, make_ctx
    from arbor.adapters.sim import PaperConfig, PaperVenueLogic
    from arbor.adapters.sim.paper import PaperOrderState, PaperVenueSnapshot
    from arbor.messages import PlaceOrder

    v = venue_records(4)
    snap = v.snapshot()
    with open_store(tmp_path) as store:
        store.save_venue("BTCUSDT", snap)
        before = store.changes
        store.save_venue("BTCUSDT", v.snapshot())
        assert store.changes - before == 1  # the header; no order changed
        assert store.load_venue("BTCUSDT", PaperVenueSnapshot, PaperOrderState) == snap

        trimmed = venue_records(4, forgotten=2).snapshot()
        store.save_venue("BTCUSDT", trimmed)
        assert store.load_venue("BTCUSDT", PaperVenueSnapshot, PaperOrderState) == trimmed
        assert store.load_venue("ETHUSDT", PaperVenueSnapshot, PaperOrderState) is None

    with open_store(tmp_path) as store:  # reopened: new orders go after the stored ones
        loaded = store.load_venue("BTCUSDT", PaperVenueSnapshot, PaperOrderState)
        v2 = PaperVenueLogic(make_ctx("BTCUSDT/venue", "BTCUSDT", ManualClock()), PaperConfig(latency_ms=0))
        v2.restore(loaded)
        v2.handle(PlaceOrder(symbol="BTCUSDT", client_order_id="new", side=Side.BUY, qty=D("0.01"),
                             order_type=OrderType.MARKET, limit_price=None, reduce_only=False, ts_event_ns=0))
        before = store.changes
        store.save_venue("BTCUSDT", v2.snapshot())
        assert store.changes - before == 2  # the header and the new order
        again = store.load_venue("BTCUSDT", PaperVenueSnapshot, PaperOrderState)
        assert [st.place.client_order_id for st in again.orders] == \
            [st.place.client_order_id for st in trimmed.orders] + ["new"]
