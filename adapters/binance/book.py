"""A local order book kept in step with Binance's depth stream, by Binance's documented procedure.

Futures (https://developers.binance.com/docs/derivatives/usds-margined-futures/websocket-market-streams/How-to-manage-a-local-order-book-correctly):
buffer the diffs, get a REST snapshot, drop diffs with ``u < lastUpdateId``; the first diff
applied must have ``U <= lastUpdateId <= u``; every later diff's ``pu`` must equal the previous
diff's ``u``.

Spot (https://developers.binance.com/docs/binance-spot-api-docs/web-socket-streams#how-to-manage-a-local-order-book-correctly):
the same, but drop ``u <= lastUpdateId``; the first diff applied must have
``U <= lastUpdateId + 1 <= u``; every later diff's ``U`` must be the previous ``u + 1``.

A break in either rule is a gap: the book is DESYNCED, ``resync_needed`` is set and counted,
and the symbol must be treated as degraded (no ENTRY) until a new snapshot bridges the stream
again. ``BookSync`` is pure logic (no I/O, no clock): the stream client fetches the snapshot.
A diff already covered (``u <=`` the last applied ``u``) is a duplicate, e.g. from the overlap
of two connections, and is dropped and counted, not treated as a gap.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from decimal import Decimal
from enum import Enum
from typing import Any

import attrs

LevelIn = tuple[Any, Any]  # (price, qty) as Decimal or decimal string


class Market(str, Enum):
    FUTURES = "futures"  # USD-M (and COIN-M): continuity by pu
    SPOT = "spot"  # continuity by U == previous u + 1


class BookState(str, Enum):
    AWAITING_SNAPSHOT = "AWAITING_SNAPSHOT"  # buffering diffs; no snapshot yet
    AWAITING_BRIDGE = "AWAITING_BRIDGE"  # snapshot loaded; waiting for the diff that spans it
    SYNCED = "SYNCED"  # snapshot plus a gap-free chain of diffs: the book is valid
    INTERRUPTED = "INTERRUPTED"  # the feed dropped; valid again only if the next diff chains on
    DESYNCED = "DESYNCED"  # a gap was seen; buffering again until a new snapshot


@attrs.frozen(kw_only=True)
class BookTransition:
    """The book of ``symbol`` entered ``state``; ``reason`` says why (for logs and the Risk message)."""

    symbol: str
    state: BookState
    reason: str
    last_update_id: int | None


class OrderBook:
    """Price levels with ``Decimal`` keys; the best bid and ask are cached and recomputed lazily."""

    __slots__ = ("bids", "asks", "_best_bid", "_best_ask")

    def __init__(self) -> None:
        self.bids: dict[Decimal, Decimal] = {}
        self.asks: dict[Decimal, Decimal] = {}
        self._best_bid: Decimal | None = None  # None: not known, recompute
        self._best_ask: Decimal | None = None

    def clear(self) -> None:
        self.bids.clear()
        self.asks.clear()
        self._best_bid = self._best_ask = None

    def load(self, bids: Iterable[LevelIn], asks: Iterable[LevelIn]) -> None:
        """Replace the whole book (a snapshot); zero quantities are not levels."""
        self.clear()
        self.apply(bids, asks)

    def apply(self, bids: Iterable[LevelIn], asks: Iterable[LevelIn]) -> None:
        """Set each level's quantity (absolute, not a delta); quantity 0 removes the level."""
        D = Decimal
        book, best = self.bids, self._best_bid
        for p, q in bids:
            p, q = D(p), D(q)
            if q:
                book[p] = q
                if best is not None and p > best:
                    best = p
            elif book.pop(p, None) is not None and p == best:
                best = None
        self._best_bid = best
        book, best = self.asks, self._best_ask
        for p, q in asks:
            p, q = D(p), D(q)
            if q:
                book[p] = q
                if best is not None and p < best:
                    best = p
            elif book.pop(p, None) is not None and p == best:
                best = None
        self._best_ask = best

    def best_bid(self) -> tuple[Decimal, Decimal] | None:
        """(price, qty) of the highest bid, or None for an empty side."""
        if self._best_bid is None:
            if not self.bids:
                return None
            self._best_bid = max(self.bids)
        return self._best_bid, self.bids[self._best_bid]

    def best_ask(self) -> tuple[Decimal, Decimal] | None:
        """(price, qty) of the lowest ask, or None for an empty side."""
        if self._best_ask is None:
            if not self.asks:
                return None
            self._best_ask = min(self.asks)
        return self._best_ask, self.asks[self._best_ask]

    def top(self, n: int) -> tuple[list[tuple[Decimal, Decimal]], list[tuple[Decimal, Decimal]]]:
        """The best ``n`` bids (high to low) and asks (low to high)."""
        bids = sorted(self.bids.items(), key=lambda kv: kv[0], reverse=True)[:n]
        asks = sorted(self.asks.items(), key=lambda kv: kv[0])[:n]
        return bids, asks


@attrs.frozen
class _Diff:
    first: int
    last: int
    prev: int | None
    bids: tuple
    asks: tuple


class BookSync:
    """One symbol's book kept valid by Binance's snapshot-plus-diffs procedure.

    Feed it every depth diff (``on_diff``) and every REST snapshot (``on_snapshot``) in the order
    they arrive. Each returns the ``BookTransition`` it caused, or ``None``. ``valid`` is True
    only in SYNCED; ``resync_needed`` is True whenever a (new) snapshot is wanted. Runs on the
    caller's thread; not thread-safe.
    """

    def __init__(self, symbol: str, market: Market | str, max_buffer: int = 10_000) -> None:
        self.symbol = symbol
        self.market = Market(market)
        self.book = OrderBook()
        self.state = BookState.AWAITING_SNAPSHOT
        self.last_update_id: int | None = None
        self._buffer: deque[_Diff] = deque(maxlen=max_buffer)
        self.counters = {
            "diffs_applied": 0, "diffs_buffered": 0, "diffs_dropped_stale": 0, "duplicates": 0,
            "snapshots": 0, "stale_snapshots": 0, "gaps": 0, "resyncs": 0, "buffer_overflows": 0,
        }

    @property
    def valid(self) -> bool:
        return self.state is BookState.SYNCED

    @property
    def resync_needed(self) -> bool:
        return self.state in (BookState.AWAITING_SNAPSHOT, BookState.DESYNCED)

    def reset(self, reason: str) -> BookTransition:
        """Forget everything (a new connection): wait for diffs and a new snapshot."""
        was_valid = self.valid
        self.book.clear()
        self._buffer.clear()
        self.last_update_id = None
        self.state = BookState.AWAITING_SNAPSHOT
        if was_valid:
            self.counters["resyncs"] += 1
        return self._transition(reason)

    def interrupt(self, reason: str) -> BookTransition | None:
        """The feed was cut (a reconnect): not valid until the next diff proves the chain unbroken.

        Cheaper than a new snapshot when nothing was lost; a lost diff shows up as a gap.
        """
        if self.state is not BookState.SYNCED:
            return None
        self.state = BookState.INTERRUPTED
        return self._transition(reason)

    def on_diff(self, first_update_id: int, last_update_id: int, prev_update_id: int | None,
                bids: Iterable[LevelIn], asks: Iterable[LevelIn]) -> BookTransition | None:
        """Apply, buffer or reject one diff ``U..u`` (``pu`` for futures); a gap desynchronises."""
        diff = _Diff(first_update_id, last_update_id, prev_update_id, tuple(bids), tuple(asks))
        if self.state in (BookState.AWAITING_SNAPSHOT, BookState.DESYNCED):
            self._buffer_diff(diff)
            return None
        if self.state is BookState.AWAITING_BRIDGE:
            return self._bridge(diff)
        if self.state is BookState.INTERRUPTED:
            if diff.last <= (self.last_update_id or 0):
                self.counters["duplicates"] += 1
                return None
            transition = self._apply_next(diff)
            if transition is not None:
                return transition
            self.state = BookState.SYNCED
            return self._transition(f"chain resumed at diff {diff.first}..{diff.last}")
        return self._apply_next(diff)

    def on_snapshot(self, last_update_id: int, bids: Iterable[LevelIn], asks: Iterable[LevelIn]) -> BookTransition | None:
        """Load a REST snapshot and replay the buffered diffs over it."""
        self.counters["snapshots"] += 1
        self.book.load(bids, asks)
        self.last_update_id = last_update_id
        self.state = BookState.AWAITING_BRIDGE
        buffered, self._buffer = list(self._buffer), deque(maxlen=self._buffer.maxlen)
        transition = None
        for diff in buffered:
            if self.state is BookState.AWAITING_BRIDGE:
                transition = self._bridge(diff) or transition
            elif self.state is BookState.SYNCED:
                transition = self._apply_next(diff) or transition
            else:
                self._buffer_diff(diff)  # desynced again: keep the rest for the next snapshot
        return transition

    # -- procedure --------------------------------------------------------------------------------

    def buffered(self) -> tuple[tuple[int, int], ...]:
        """``(first, last)`` update ids of the diffs held for the next snapshot, oldest first."""
        return tuple((d.first, d.last) for d in self._buffer)

    def _buffer_diff(self, diff: _Diff) -> None:
        if len(self._buffer) == self._buffer.maxlen:
            self.counters["buffer_overflows"] += 1  # the oldest goes; a later snapshot still bridges
        self._buffer.append(diff)
        self.counters["diffs_buffered"] += 1

    def _bridge(self, diff: _Diff) -> BookTransition | None:
        snap = self.last_update_id
        assert snap is not None
        futures = self.market is Market.FUTURES
        if diff.last < snap or (not futures and diff.last == snap):
            self.counters["diffs_dropped_stale"] += 1  # already in the snapshot
            return None
        target = snap if futures else snap + 1
        if diff.first <= target <= diff.last:
            self._apply(diff)
            self.state = BookState.SYNCED
            return self._transition(f"snapshot {snap} bridged by diff {diff.first}..{diff.last}")
        # The first diff after the snapshot starts beyond it: updates in between are lost to us.
        self.counters["stale_snapshots"] += 1
        return self._desync(diff, f"snapshot {snap} older than the first diff {diff.first}..{diff.last}")

    def _apply_next(self, diff: _Diff) -> BookTransition | None:
        last = self.last_update_id
        assert last is not None
        if diff.last <= last:
            self.counters["duplicates"] += 1
            return None
        if self.market is Market.FUTURES:
            ok, rule = diff.prev == last, f"pu {diff.prev} != previous u {last}"
        else:
            ok, rule = diff.first == last + 1, f"U {diff.first} != previous u {last} + 1"
        if not ok:
            return self._desync(diff, f"gap: {rule}")
        self._apply(diff)
        return None

    def _apply(self, diff: _Diff) -> None:
        self.book.apply(diff.bids, diff.asks)
        self.last_update_id = diff.last
        self.counters["diffs_applied"] += 1

    def _desync(self, diff: _Diff, reason: str) -> BookTransition:
        self.counters["gaps"] += 1
        self.counters["resyncs"] += 1
        self.state = BookState.DESYNCED
        self._buffer.clear()
        self._buffer_diff(diff)  # the next snapshot may be bridged by this very diff
        return self._transition(reason)

    def _transition(self, reason: str) -> BookTransition:
        return BookTransition(symbol=self.symbol, state=self.state, reason=reason, last_update_id=self.last_update_id)

    def stats(self) -> dict[str, Any]:
        return {**self.counters, "state": self.state.value, "valid": self.valid, "last_update_id": self.last_update_id}
