"""Constructed event sequences and synthetic tapes with known answers."""

from __future__ import annotations

from decimal import Decimal as D
from typing import Any

import numpy as np
from arbor.adapters.sim.market import SimSymbol
from arbor.analysis.tape import FEATURE_COLUMNS, Tape
from arbor.messages import MarketEventKind, RawMarketEvent, Side

T0 = 1_700_000_000_000_000_000  # a bucket boundary
SEC = 1_000_000_000
MS = 1_000_000
SIM_BTC = SimSymbol(symbol="BTCUSDT", start_price=D("60000"), tick_size=D("0.1"), qty_step=D("0.001"))


class Events:
    """A time-ordered list of RawMarketEvents of one symbol, built by hand."""

    def __init__(self, symbol: str = "TEST") -> None:
        self.symbol = symbol
        self.events: list[RawMarketEvent] = []

    def _add(self, ts: int, kind: MarketEventKind, **fields: Any) -> None:
        self.events.append(RawMarketEvent(symbol=self.symbol, venue="sim", ingest_seq=len(self.events) + 1,
                                          ts_event_ns=ts, ts_recv_ns=ts, kind=kind, raw=b"{}", **fields))

    def quote(self, ts: int, mid: float, half_spread: float = 0.01) -> None:
        self._add(ts, MarketEventKind.QUOTE, bid_price=D(repr(round(mid - half_spread, 6))), bid_qty=D("1"),
                  ask_price=D(repr(round(mid + half_spread, 6))), ask_qty=D("1"))

    def trade(self, ts: int, price: float, qty: float, side: Side) -> None:
        self._add(ts, MarketEventKind.TRADE, price=D(repr(price)), qty=D(repr(qty)), side=side)

    def liquidation(self, ts: int, price: float, qty: float, side: Side) -> None:
        self._add(ts, MarketEventKind.LIQUIDATION, price=D(repr(price)), qty=D(repr(qty)), side=side)


def synthetic_tape(symbol: str, ts_ns: np.ndarray, mid: np.ndarray, **columns: np.ndarray) -> Tape:
    """A tape from arrays (columns not given are zeros)."""
    cols = {c: np.zeros(len(ts_ns)) for c in FEATURE_COLUMNS}
    cols["mid"] = mid.astype(np.float64)
    cols.update({k: v.astype(np.float64) for k, v in columns.items()})
    return Tape(symbol=symbol, ts_ns=ts_ns.astype(np.int64), columns=cols, trades=[], liquidations=[],
                events=len(ts_ns))
