"""OrderBook and BookSync: Binance's local-book procedure, on hand-made diffs and on the real HBT recordings."""

from __future__ import annotations

import bisect
import json
from decimal import Decimal as D
from pathlib import Path
from typing import Any

import pytest
from arbor.adapters.binance.book import BookState, BookSync, Market, OrderBook
from arbor.adapters.recorded import read_hbt


def fut() -> BookSync:
    return BookSync("BTCUSDT", Market.FUTURES)


def spot() -> BookSync:
    return BookSync("NKNUSDT", Market.SPOT)


def test_order_book_best_levels_follow_updates():
    """Best bid/ask track additions, removals (qty 0) and removal of the best level."""
    book = OrderBook()
    book.load([("100.0", "1"), ("99.5", "2")], [("100.5", "3"), ("101", "1")])
    assert book.best_bid() == (D("100.0"), D("1")) and book.best_ask() == (D("100.5"), D("3"))
    book.apply([("100.2", "4"), ("100.0", "0")], [("100.5", "0")])
    assert book.best_bid() == (D("100.2"), D("4")) and book.best_ask() == (D("101"), D("1"))
    book.apply([("100.2", "0"), ("99.5", "0")], [])
    assert book.best_bid() is None


def test_order_book_keys_are_exact_decimals():
    """'100.10' and '100.1' are the same level: Decimal keys compare by value."""
    book = OrderBook()
    book.load([("100.10", "1")], [])
    book.apply([("100.1", "0")], [])
    assert book.bids == {}


def test_futures_sync_buffers_drops_stale_and_bridges():
    """Diffs before the snapshot are buffered; u < lastUpdateId dropped; U <= L <= u bridges; valid after."""
    sync = fut()
    assert sync.on_diff(90, 95, 89, [("10", "1")], []) is None
    assert sync.on_diff(96, 105, 95, [("11", "2")], [("12", "1")]) is None
    assert not sync.valid and sync.resync_needed
    transition = sync.on_snapshot(100, [("10", "1")], [("13", "1")])
    assert transition.state is BookState.SYNCED and sync.valid
    assert sync.counters["diffs_dropped_stale"] == 1 and sync.last_update_id == 105
    assert sync.book.best_bid() == (D("11"), D("2")) and sync.book.best_ask() == (D("12"), D("1"))


def test_futures_pu_break_desyncs_and_a_new_snapshot_resyncs():
    """A diff whose pu is not the previous u is a gap: DESYNCED, resync_needed, counted; a snapshot heals it."""
    sync = fut()
    sync.on_snapshot(100, [("10", "1")], [("12", "1")])
    sync.on_diff(99, 101, 98, [], [])
    sync.on_diff(102, 103, 101, [], [])
    transition = sync.on_diff(110, 112, 108, [("11", "1")], [])
    assert transition.state is BookState.DESYNCED and "pu 108" in transition.reason
    assert not sync.valid and sync.resync_needed and sync.counters["gaps"] == 1
    sync.on_diff(113, 115, 112, [], [])
    assert sync.on_snapshot(111, [("10", "1")], [("12", "1")]).state is BookState.SYNCED
    assert sync.valid and sync.last_update_id == 115


def test_spot_first_diff_must_cover_last_update_id_plus_one():
    """Spot drops u <= L and bridges only with U <= L+1 <= u."""
    sync = spot()
    sync.on_diff(95, 100, None, [], [])
    sync.on_diff(101, 104, None, [("5", "1")], [])
    assert sync.on_snapshot(100, [("4", "1")], [("6", "1")]).state is BookState.SYNCED
    assert sync.counters["diffs_dropped_stale"] == 1 and sync.book.best_bid() == (D("5"), D("1"))


def test_spot_u_jump_desyncs():
    """A spot diff whose U is not the previous u + 1 is a gap."""
    sync = spot()
    sync.on_snapshot(100, [], [])
    sync.on_diff(100, 102, None, [], [])
    assert sync.on_diff(104, 106, None, [], []).state is BookState.DESYNCED
    assert sync.resync_needed and sync.counters["gaps"] == 1


def test_snapshot_older_than_the_buffer_asks_for_another():
    """If the first diff after the snapshot starts beyond it, the snapshot is stale: still DESYNCED."""
    sync = fut()
    sync.on_diff(200, 210, 199, [], [])
    assert sync.on_snapshot(150, [], []).state is BookState.DESYNCED
    assert sync.resync_needed and sync.counters["stale_snapshots"] == 1
    assert sync.on_snapshot(205, [], []).state is BookState.SYNCED


def test_duplicate_diffs_are_dropped_not_gaps():
    """A diff already applied (the overlap of two connections) is counted as a duplicate and ignored."""
    sync = fut()
    sync.on_snapshot(100, [], [])
    sync.on_diff(99, 101, 98, [], [])
    sync.on_diff(102, 103, 101, [("1", "1")], [])
    assert sync.on_diff(102, 103, 101, [("1", "9")], []) is None
    assert sync.valid and sync.counters["duplicates"] == 1 and sync.book.best_bid() == (D("1"), D("1"))


def test_interrupted_book_is_invalid_until_the_chain_resumes():
    """After a disconnect the book is not valid; a chaining diff makes it valid, a gap desyncs it."""
    sync = fut()
    sync.on_snapshot(100, [], [])
    sync.on_diff(99, 101, 98, [], [])
    assert sync.interrupt("disconnected").state is BookState.INTERRUPTED and not sync.valid
    assert sync.on_diff(102, 103, 101, [], []).state is BookState.SYNCED
    sync.interrupt("disconnected again")
    assert sync.on_diff(110, 111, 105, [], []).state is BookState.DESYNCED


def test_buffer_is_bounded():
    """Buffered diffs beyond max_buffer push out the oldest and are counted."""
    sync = BookSync("X", Market.FUTURES, max_buffer=3)
    for i in range(5):
        sync.on_diff(i * 10, i * 10 + 5, i * 10 - 5, [], [])
    assert sync.counters["buffer_overflows"] == 2


# -- real data ----------------------------------------------------------------------------------------

HBT_FILES = ("binance_usdm/usdm_btcusdt_20240808.gz", "binance_usdm/usdm_ethusdt_20240808.gz")


def replay_book(path: Path) -> dict:
    """Rebuild the book from the recording and compare it with every comparable bookTicker.

    Futures update ids are shared across symbols and a diff batches many of its symbol's updates
    (U..u); a bookTicker reports the top after one update. So the book's state at a ticker's id
    u_t is known exactly when u_t lies between a diff's u (inclusive) and the next diff's U: then
    no update of this symbol happened in between. Tickers inside a batch (U <= u_t < u) name a
    state the diff stream never shows; they are counted, not compared.
    """
    sync = BookSync("X", Market.FUTURES)
    firsts, lasts, tops, tickers = [], [], [], []
    for _, _, raw in read_hbt(path):
        obj = json.loads(raw)
        d = obj.get("data", obj)
        if "lastUpdateId" in d:
            pending = {last: first for first, last in sync.buffered()}
            sync.on_snapshot(d["lastUpdateId"], d["bids"], d["asks"])
            if sync.valid and sync.last_update_id is not None:
                firsts.append(pending[sync.last_update_id])
        elif d["e"] == "depthUpdate":
            before = sync.last_update_id
            sync.on_diff(d["U"], d["u"], d["pu"], d["b"], d["a"])
            if not sync.valid or sync.last_update_id == before:
                continue
            firsts.append(d["U"])
        else:
            if d["e"] == "bookTicker":
                tickers.append((d["u"], (D(d["b"]), D(d["B"]), D(d["a"]), D(d["A"]))))
            continue
        best_bid, best_ask = sync.book.best_bid(), sync.book.best_ask()
        assert best_bid is not None and best_ask is not None, "a synced book of the recording has both sides"
        (bid, bid_qty), (ask, ask_qty) = best_bid, best_ask
        lasts.append(sync.last_update_id)
        tops.append((bid, bid_qty, ask, ask_qty))
    out: dict[str, Any] = {"match": 0, "mismatch": [], "inside_batch": 0, "before_sync": 0, "after_end": 0, "stats": sync.stats()}
    for u, top in tickers:
        k = bisect.bisect_right(lasts, u) - 1
        if k < 0:
            out["before_sync"] += 1
        elif k + 1 >= len(lasts):
            out["after_end"] += 1
        elif firsts[k + 1] <= u:
            out["inside_batch"] += 1
        elif tops[k] == top:
            out["match"] += 1
        else:
            out["mismatch"].append((u, top, tops[k]))
    return out


@pytest.mark.parametrize("name", HBT_FILES)
def test_rebuilt_book_equals_every_comparable_book_ticker(shared_data, name):
    """Snapshot + diffs of the real recording give exactly the bookTicker's top (prices and sizes) every time."""
    out = replay_book(shared_data / name)
    assert out["stats"]["gaps"] == 0 and out["stats"]["valid"]
    assert out["mismatch"] == []
    assert out["match"] >= 500  # 629 (BTCUSDT) and 551 (ETHUSDT) tickers fall on a diff boundary
