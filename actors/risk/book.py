"""What Risk knows of the portfolio: positions, marks, reserved entries, equity and exposure."""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal

import attrs
from arbor.messages import RESTORED, Action, Direction, PositionChanged, PositionState

ZERO = Decimal("0")


@attrs.define
class SymbolBook:
    qty: Decimal = ZERO  # unsigned; direction gives the sign
    direction: Direction | None = None
    state: PositionState = PositionState.FLAT
    avg_entry_price: Decimal | None = None
    realized_pnl: Decimal = ZERO  # cumulative, as reported by the position
    fees: Decimal = ZERO
    mark_price: Decimal | None = None
    data_ts_ns: int | None = None
    last_cycle: int = 0

    @property
    def price(self) -> Decimal:
        """The mark when one is known, else the entry price: exposure is never valued at zero."""
        if self.mark_price is not None:
            return self.mark_price
        return self.avg_entry_price if self.avg_entry_price is not None else ZERO

    @property
    def notional(self) -> Decimal:
        return self.qty * self.price

    @property
    def unrealized_pnl(self) -> Decimal:
        if not self.qty or self.direction is None or self.avg_entry_price is None:
            return ZERO
        return (self.price - self.avg_entry_price) * self.qty * self.direction.sign


@attrs.frozen
class Reservation:
    """The notional of an approved ENTRY that no PositionChanged shows yet."""

    action_id: str
    symbol: str
    direction: Direction | None
    notional: Decimal


class PortfolioBook:
    def __init__(self, symbols: tuple[str, ...]) -> None:
        self.symbols: dict[str, SymbolBook] = {s: SymbolBook() for s in symbols}
        self._reserved: dict[str, Reservation] = {}
        self.changed: set[str] = set(self.symbols)  # symbols whose book changed since the last snapshot
        self._version = 0  # bumped by every change of a book: the cached equity is of one version
        self._equity: tuple[int, Decimal, Decimal] | None = None  # (version, starting equity, equity)

    def get(self, symbol: str) -> SymbolBook:
        book = self.symbols.get(symbol)
        if book is None:
            book = self.symbols[symbol] = SymbolBook()
            self.changed.add(symbol)
            self._version += 1
        return book

    def invalidate(self) -> None:
        """Books were changed from outside (a restore): nothing cached about them holds."""
        self.changed.update(self.symbols)
        self._version += 1

    def mark(self, action: Action) -> None:
        self.changed.add(action.symbol)
        book = self.get(action.symbol)
        if book.qty:  # the mark moves equity only through an open position's unrealized PnL
            self._version += 1
        book.mark_price = action.mark_price
        book.data_ts_ns = action.data_ts_ns
        book.last_cycle = action.cycle

    def apply(self, msg: PositionChanged) -> None:
        self.changed.add(msg.symbol)
        self._version += 1
        book = self.get(msg.symbol)
        left_entering = book.state is PositionState.ENTERING and msg.state is not PositionState.ENTERING
        book.state, book.qty, book.direction = msg.state, msg.qty, msg.direction
        book.avg_entry_price = msg.avg_entry_price
        book.realized_pnl, book.fees = msg.realized_pnl, msg.fees
        if msg.cause == RESTORED:
            self._settle_restored(msg)
            return
        if msg.state is PositionState.ENTERING:
            return
        # Once the position is past ENTERING its own quantity carries the exposure.
        for res in list(self._reserved.values()):
            if res.symbol == msg.symbol and (left_entering or res.action_id == msg.action_id):
                del self._reserved[res.action_id]

    def _settle_restored(self, msg: PositionChanged) -> None:
        """A position re-announced by its restarted process is the whole truth about its symbol:
        approvals it never acted on (lost with the process that was to place them) hold nothing;
        an ENTERING position keeps its own entry's reservation."""
        keep = msg.action_id if msg.state is PositionState.ENTERING else None
        for res in list(self._reserved.values()):
            if res.symbol == msg.symbol and res.action_id != keep:
                del self._reserved[res.action_id]

    def reserve(self, action: Action) -> None:
        self._reserved[action.action_id] = Reservation(
            action.action_id, action.symbol, action.direction, action.qty * action.mark_price)

    def release(self, action_id: str) -> None:
        self._reserved.pop(action_id, None)

    def stale_reservations(self, symbol: str) -> tuple[Reservation, ...]:
        """``symbol``'s reservations when its position is not ENTERING: no order can fill them."""
        if self.get(symbol).state is PositionState.ENTERING:
            return ()
        return tuple(r for r in self._reserved.values() if r.symbol == symbol)

    def reservations(self) -> tuple[Reservation, ...]:
        """The open reservations, oldest first (for snapshots)."""
        return tuple(self._reserved.values())

    def restore_reservations(self, reservations: Iterable[Reservation]) -> None:
        """Replace the open reservations with ``reservations`` (a restored snapshot's)."""
        self._reserved = {r.action_id: r for r in reservations}

    def reserved(self, symbol: str | None = None) -> Decimal:
        return sum((r.notional for r in self._reserved.values() if symbol in (None, r.symbol)), ZERO)

    def symbol_notional(self, symbol: str) -> Decimal:
        return self.get(symbol).notional + self.reserved(symbol)

    def gross(self) -> Decimal:
        return sum((b.notional for b in self.symbols.values()), ZERO) + self.reserved()

    def net(self) -> Decimal:
        held = sum((b.notional * b.direction.sign for b in self.symbols.values() if b.direction), ZERO)
        pending = sum((r.notional * r.direction.sign for r in self._reserved.values() if r.direction), ZERO)
        return held + pending

    def equity(self, starting_equity: Decimal) -> Decimal:
        """Starting equity plus every symbol's PnL net of fees (summed once per change of the books)."""
        cached = self._equity
        if cached is not None and cached[0] == self._version and cached[1] == starting_equity:
            return cached[2]
        value = starting_equity + sum(
            (b.realized_pnl - b.fees + b.unrealized_pnl for b in self.symbols.values()), ZERO)
        self._equity = (self._version, starting_equity, value)
        return value

    def open_symbols(self) -> list[str]:
        return [s for s, b in self.symbols.items() if b.qty > 0]
