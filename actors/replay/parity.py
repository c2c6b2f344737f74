"""Live/what-if parity: does the what-if of a live session's journal reproduce that session?

The live figures are read from the journal itself: its OUTPUT records are the messages the live
actors emitted, fed to the same ``BacktestReport`` a what-if uses, so both sides are measured
with one implementation. What is compared, per symbol:

- **decisions**, exactly: every Action (kind, direction, quantity, mark price, data instant,
  reason), each verdict on it (approved, or denied with its reason) and every PlaceOrder (side,
  quantity, type, limit price, reduce-only). Identifiers and emission instants are left out: the
  client order id is derived from the run id, and emission instants are the live handlers'.
- **fills**, per order (the n-th PlaceOrder of a symbol on each side): filled quantity, average
  price and fees. These may differ, for one reason: the live actors handle each message a few
  milliseconds after it arrives (``processing delay``; the journal's INPUT instants), while the
  what-if handles it at its receive instant. The paper venue fills an order on the first market
  event or timer tick at or after ``handled + latency_ms``, so when a quote change falls inside
  that delay the two runs fill at neighbouring quotes.
- **PnL** (final equity - starting equity: net realized plus unrealized at the last mark). The
  tolerance is ``PNL_TOLERANCE_BPS`` of the notional of the orders whose fills differ (no order
  differing: no tolerance at all), and the difference must be *explained by the fills*: equal to
  the sum over orders of the cash and fee differences (``explained``), to within
  ``EXPLAINED_EPS``. Anything else differing (a lost fill, another mark) leaves a residue and
  fails the check.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

import attrs
from arbor.actors.replay.journal_io import open_for_replay
from arbor.actors.replay.report import BacktestReport
from arbor.messages import Action, ActionApproved, ActionDenied, Envelope, OrderFilled, PlaceOrder, TimerTick
from arbor.messages.base import Side
from arbor.messages.codec import Codec
from arbor.messages.journal.records import Output, entry_from_primitive, unpack_record

# of the notional of the orders filled differently; measured: up to 1.3 bps (docs/replay.md, "Parity")
PNL_TOLERANCE_BPS = Decimal("5")
EXPLAINED_EPS = Decimal("0.01")  # quote; the report rounds unrealized PnL to cents
_ZERO = Decimal(0)
_BPS = Decimal(10_000)


def _action_key(a: Action) -> tuple[Any, ...]:
    return (a.kind.value, a.direction.value if a.direction is not None else None, a.qty, a.mark_price,
            a.data_ts_ns, a.reason)


class DecisionLog:
    """An observer keeping each symbol's decisions (comparable across runs) and its orders' fills."""

    wants_inputs = False

    def __init__(self) -> None:
        # per (symbol, stream): each stream is one actor's, in its own order (the arbitrator's
        # Actions, Risk's verdicts, the executor's orders); across actors a live run's order is
        # the threads' interleaving, which no replay reproduces
        self.decisions: dict[tuple[str, str], list[tuple[Any, ...]]] = {}
        self.orders: dict[str, list[str]] = {}  # client order ids per symbol, in PlaceOrder order
        self.sides: dict[str, Side] = {}
        self.fills: dict[str, list[OrderFilled]] = {}  # per client order id, venue fills only

    def external(self, env: Envelope) -> None:
        pass

    def processed(self, actor_id: str, env: Envelope, now_ns: int) -> None:
        pass

    def emitted(self, env: Envelope, receivers: tuple[str, ...]) -> None:
        msg = env.payload
        t = type(msg)
        if t is Action:
            self._add(msg.symbol, "action", _action_key(msg))
        elif t is ActionApproved:
            self._add(msg.symbol, "verdict", ("approved", *_action_key(msg.action)))
        elif t is ActionDenied:
            self._add(msg.symbol, "verdict", ("denied", msg.reason, *_action_key(msg.action)))
        elif t is PlaceOrder:
            self._add(msg.symbol, "order", (msg.side.value, msg.qty, msg.order_type.value, msg.limit_price,
                                            msg.reduce_only))
            self.orders.setdefault(msg.symbol, []).append(msg.client_order_id)
            self.sides[msg.client_order_id] = msg.side
        elif t is OrderFilled and env.sender.endswith("/venue"):
            self.fills.setdefault(msg.client_order_id, []).append(msg)

    def _add(self, symbol: str, stream: str, key: tuple[Any, ...]) -> None:
        self.decisions.setdefault((symbol, stream), []).append(key)

    def order_fills(self, symbol: str) -> list[tuple[Side, Decimal, Decimal, Decimal]]:
        """Each order of ``symbol`` in turn: side, filled quantity, filled notional, fees."""
        out = []
        for coid in self.orders.get(symbol, []):
            fills = self.fills.get(coid, [])
            out.append((self.sides[coid], sum((f.qty for f in fills), _ZERO),
                        sum((f.qty * f.price for f in fills), _ZERO), sum((f.fee for f in fills), _ZERO)))
        return out


@attrs.frozen(kw_only=True)
class RecordedRun:
    """What the live session itself emitted, measured like a what-if."""

    report: dict[str, Any]
    log: DecisionLog
    restored: bool  # the session started from restored state (a what-if starts fresh)


def _records(journal: Path, codec: Codec) -> Iterator[tuple[int, Any]]:
    reader, _ = open_for_replay(journal)
    for _index, payload in reader.records():
        obj = unpack_record(payload)
        if obj[0] in (1, 2, 3):
            yield obj[0], entry_from_primitive(codec, obj)
        elif obj[0] == 5 and obj[5] == 0:  # the first event of a frame reaching a receiver (not journaled)
            yield 5, obj[4]


def recorded_run(journal: Path | str, starting_equity: Decimal, *, codec: Codec | None = None,
                 ticks: bool = True) -> RecordedRun:
    """The live session of ``journal`` as the what-if report and decision log see a run.

    EXTERNAL records are what a what-if receives (timer ticks only with ``ticks``, matching a
    what-if that replays them), OUTPUT records what it emits."""
    codec = codec or Codec()
    report, log = BacktestReport(starting_equity), DecisionLog()
    restored = False
    framed: set[int] = set()  # frames whose events were not journaled (schema 2): counted by their cause
    for kind, entry in _records(Path(journal), codec):
        if kind == 5:
            if entry not in framed:
                framed.add(entry)
                report.market_frames += 1
        elif kind == 1:
            assert isinstance(entry, Output)
            report.emitted(entry.envelope, entry.receivers)
            log.emitted(entry.envelope, entry.receivers)
        elif kind == 2:
            if ticks or type(entry.payload) is not TimerTick:
                report.external(entry)
        else:
            restored = restored or bool(entry.restored)
    return RecordedRun(report=report.summary(), log=log, restored=restored)


@attrs.frozen(kw_only=True)
class Parity:
    """The comparison of a live session and its what-if (see the module docstring)."""

    decisions_equal: bool
    first_difference: str | None  # the first decision that differs, per symbol, in words
    decisions: int
    orders: int
    fills_differ: int  # orders whose fill (quantity, average price or fees) differs
    live_pnl: Decimal
    whatif_pnl: Decimal
    explained: Decimal  # the PnL difference the fill differences account for
    traded_notional: Decimal
    differing_notional: Decimal  # live notional of the orders filled differently
    worst_order_bps: Decimal  # the largest average-price difference of one order, in bps of its price
    restored: bool = False  # the live session began from restored state: not a parity case
    tolerance: Decimal

    @property
    def difference(self) -> Decimal:
        return self.whatif_pnl - self.live_pnl

    @property
    def pnl_within(self) -> bool:
        return abs(self.difference) <= self.tolerance and abs(self.difference - self.explained) <= EXPLAINED_EPS

    @property
    def ok(self) -> bool:
        return self.decisions_equal and self.pnl_within

    def render(self) -> str:
        bps = self.difference / self.traded_notional * _BPS if self.traded_notional else _ZERO
        lines = [
            f"parity with the live session: {'OK' if self.ok else 'DIFFERS'}",
            f"  decisions   {self.decisions:,} ({self.orders} orders): "
            + ("identical" if self.decisions_equal else f"differ: {self.first_difference}"),
            f"  fills       {self.fills_differ} of {self.orders} orders filled at another price or size "
            f"(live processing delay; see docs/replay.md), the largest by {self.worst_order_bps:.2f} bps",
            f"  PnL         live {self.live_pnl:.4f}  what-if {self.whatif_pnl:.4f}  difference "
            f"{self.difference:.4f} ({bps:.2f} bps of {self.traded_notional:,.0f} traded)",
            f"  tolerance   {self.tolerance:.4f} ({PNL_TOLERANCE_BPS} bps of the {self.differing_notional:,.0f} "
            f"filled differently); explained by the fills "
            f"{self.explained:.4f}, residue {self.difference - self.explained:.4f}",
        ]
        if self.restored:
            lines.append("  note        the live session started from restored state; the what-if starts fresh")
        return "\n".join(lines)


def _pnl(report: Mapping[str, Any]) -> Decimal:
    return Decimal(report["net_realized_pnl"]) + Decimal(report["unrealized_pnl"])


def compare(live: RecordedRun, whatif_report: Mapping[str, Any], whatif_log: DecisionLog) -> Parity:
    """Decisions equal, and PnL within the tolerance and explained by the fills."""
    first = None
    for sym, stream in sorted(set(live.log.decisions) | set(whatif_log.decisions)):
        a, b = live.log.decisions.get((sym, stream), []), whatif_log.decisions.get((sym, stream), [])
        for i in range(max(len(a), len(b))):
            x = a[i] if i < len(a) else None
            y = b[i] if i < len(b) else None
            if x != y:
                first = f"{sym} {stream} #{i}: live {x} / what-if {y}"
                break
        if first is not None:
            break
    symbols = sorted(set(live.log.orders) | set(whatif_log.orders))
    explained, notional, differing, worst, differ, orders = _ZERO, _ZERO, _ZERO, _ZERO, 0, 0
    for sym in symbols:
        lf, wf = live.log.order_fills(sym), whatif_log.order_fills(sym)
        for (side, lq, ln, lfee), (_, wq, wn, wfee) in zip(lf, wf, strict=False):
            orders += 1
            sign = 1 if side is Side.SELL else -1  # a sale brings cash in
            notional += ln
            if (lq, ln, lfee) != (wq, wn, wfee):
                differ += 1
                differing += ln
                if lq and wq:
                    worst = max(worst, abs((wn / wq) / (ln / lq) - 1) * _BPS)
            explained += sign * (wn - ln) - (wfee - lfee)
    decisions = sum(len(v) for v in live.log.decisions.values())
    return Parity(decisions_equal=first is None, first_difference=first, decisions=decisions, orders=orders,
                  fills_differ=differ, live_pnl=_pnl(live.report), whatif_pnl=_pnl(whatif_report),
                  explained=explained, traded_notional=notional, differing_notional=differing,
                  worst_order_bps=worst, restored=live.restored,
                  tolerance=differing * PNL_TOLERANCE_BPS / _BPS)
