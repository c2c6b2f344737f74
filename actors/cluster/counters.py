"""The per-symbol counters, defined once for one process and for the multi-process cluster.

One process counts them in its ``SummaryBoard``; across processes each Worker's probe counts its
own symbols and the Coordinator's counts Risk's denials. The summary, ``/api/state``, the
dashboard and ``/metrics`` read them, so "events" means the same thing in both modes:

- ``events``: decoded market events (``RawMarketEvent``; a frame that decodes into several parts
  counts each part). A frame that could not be decoded is a ``decode_failures`` instead;
- ``decisions``: decision cycles (``MandateSet``), with ``last_decision_ns`` the newest one's time;
- ``orders``: orders sent to the venue (``PlaceOrder``);
- ``fills``: fills the venue reported (``OrderFilled`` sent by ``SYMBOL/venue``; the executor's
  forwarded copy is not counted again);
- ``denials``: actions Risk denied (``ActionDenied``);
- ``regime``: the symbol's current regime (``RegimeChanged``).
"""

from __future__ import annotations

from typing import Any

from arbor.messages import (
    ActionDenied,
    DecodeFailure,
    Envelope,
    MandateSet,
    OrderFilled,
    PlaceOrder,
    RawMarketEvent,
    RegimeChanged,
)

COUNTERS = ("events", "decisions", "orders", "fills", "denials", "decode_failures")


def new_row() -> dict[str, Any]:
    return {**dict.fromkeys(COUNTERS, 0), "last_decision_ns": None, "regime": "UNKNOWN"}


class SymbolCounters:
    """``rows[symbol]``: the counters above. ``count(env)`` is called with every emitted envelope;
    it counts only the symbols it was given, or (``any_symbol``) each symbol it sees."""

    def __init__(self, symbols: tuple[str, ...] = (), any_symbol: bool = False) -> None:
        self.rows: dict[str, dict[str, Any]] = {s: new_row() for s in symbols}
        self._any = any_symbol

    def _row(self, symbol: str) -> dict[str, Any] | None:
        row = self.rows.get(symbol)
        if row is None and self._any:
            row = self.rows[symbol] = new_row()
        return row

    def count(self, env: Envelope) -> None:
        m = env.payload
        t = type(m)
        if t is RawMarketEvent:  # first: it is nearly every envelope
            row = self._row(m.symbol)
            if row is not None:
                row["events"] += 1
        elif t is MandateSet:
            row = self._row(m.symbol)
            if row is not None:
                row["decisions"] += 1
                row["last_decision_ns"] = m.ts_event_ns
        elif t is PlaceOrder:
            self._add(m.symbol, "orders")
        elif t is OrderFilled:
            if env.sender.endswith("/venue"):
                self._add(m.symbol, "fills")
        elif t is ActionDenied:
            self._add(m.symbol, "denials")
        elif t is DecodeFailure:
            self._add(m.symbol, "decode_failures")
        elif t is RegimeChanged:
            row = self._row(m.symbol)
            if row is not None:
                row["regime"] = m.new.value

    def _add(self, symbol: str, key: str) -> None:
        row = self._row(symbol)
        if row is not None:
            row[key] += 1
