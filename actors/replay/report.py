"""The backtest report of a what-if run: trades, PnL, win rate, drawdown, Sharpe, decisions, denials.

An observer of the deterministic runtime; everything is computed from emitted messages:

- A *trade* is a round trip: a symbol's position leaving FLAT and returning to it. Its net PnL
  is the change in ``realized_pnl - fees`` (both cumulative in PositionChanged) over that span.
  Win rate = trades with net PnL > 0 / closed trades.
- *Equity* = ``risk.starting_equity`` + net realized PnL of all symbols + unrealized PnL of open
  positions at the latest mark price (from MandateSet). It is sampled once per second of
  simulated time (the value at the end of each second that saw traffic).
- *Max drawdown* = the largest fall of sampled equity from its running peak, in quote currency
  and as a fraction of that peak.
- *Sharpe* = mean(r) / stdev(r) * sqrt(31_536_000), where r are the one-second simple returns of
  sampled equity (E_i / E_(i-1) - 1), stdev the population standard deviation, risk-free rate 0,
  annualized over 365 days of seconds; 0 when stdev is 0 or there are fewer than 2 returns.
"""

from __future__ import annotations

import math
from decimal import Decimal
from itertools import pairwise
from typing import Any

from arbor.messages import (
    Action,
    ActionApproved,
    ActionDenied,
    DecodeFailure,
    Envelope,
    MandateSet,
    OrderFilled,
    PlaceOrder,
    PositionChanged,
    PositionState,
    RawMarketEvent,
)
from arbor.messages.display import decimal_text

SECONDS_PER_YEAR = 31_536_000
_NS = 1_000_000_000
_ZERO = Decimal(0)


class BacktestReport:
    """Collects the report while a run goes; ``summary()`` gives it as plain data."""

    wants_inputs = False

    def __init__(self, starting_equity: Decimal) -> None:
        self.starting_equity = Decimal(starting_equity)
        self.net: dict[str, Decimal] = {}  # realized - fees, per symbol
        self.open: dict[str, tuple[int, Decimal, Decimal | None, Decimal]] = {}  # sign, qty, avg, net at open
        self.flat_net: dict[str, Decimal] = {}  # net PnL when the symbol was last FLAT
        self.mark: dict[str, Decimal] = {}
        self.trades: list[dict[str, Any]] = []
        self.decisions: dict[str, int] = {}
        self.actions_by_kind: dict[str, int] = {}
        self.denials: dict[str, int] = {}
        self.equity: list[float] = []
        self._second: int | None = None
        self._last_equity = float(self.starting_equity)
        self.first_ns: int | None = None
        self.last_ns: int | None = None
        self.market_frames = 0  # frames that decoded to market events
        self.decode_failures = 0  # frames that did not: a recording of another market shows here

    # -- Observer -------------------------------------------------------------------------------
    def external(self, env: Envelope) -> None:
        ts = env.ts_recv_ns
        if self.first_ns is None:
            self.first_ns = ts
        self.last_ns = ts
        self._sample(ts)

    def processed(self, actor_id: str, env: Envelope, now_ns: int) -> None:
        pass

    def emitted(self, env: Envelope, receivers: tuple[str, ...]) -> None:
        msg = env.payload
        t = type(msg)
        if t is MandateSet:
            self.mark[msg.symbol] = msg.mark_price
            if msg.symbol in self.open:
                self._last_equity = self._equity()
        elif t is PositionChanged:
            self._position(msg)
            self._last_equity = self._equity()
        elif t is Action:
            self._count(t)
            self.actions_by_kind[msg.kind.value] = self.actions_by_kind.get(msg.kind.value, 0) + 1
        elif t is ActionDenied:
            self._count(t)
            self.denials[msg.reason] = self.denials.get(msg.reason, 0) + 1
        elif t is ActionApproved or t is PlaceOrder or t is OrderFilled and env.sender.endswith("/venue"):
            self._count(t)
        elif t is RawMarketEvent:
            if msg.part == 0:
                self.market_frames += 1
        elif t is DecodeFailure:
            self.decode_failures += 1

    def _count(self, t: type) -> None:
        name = t.__name__
        self.decisions[name] = self.decisions.get(name, 0) + 1

    def _position(self, pc: PositionChanged) -> None:
        sym = pc.symbol
        net = pc.realized_pnl - pc.fees
        self.net[sym] = net
        if pc.state is PositionState.FLAT:
            opened = self.open.pop(sym, None)
            if opened is not None:
                self.trades.append({"symbol": sym, "side": "LONG" if opened[0] > 0 else "SHORT",
                                    "net_pnl": net - opened[3], "exit_ns": pc.ts_event_ns})
            self.flat_net[sym] = net
            return
        if pc.direction is None or pc.qty <= 0:
            return
        prev = self.open.get(sym)
        # the trade's PnL counts from the last FLAT, so the opening fill's fee is part of it
        base = prev[3] if prev is not None else self.flat_net.get(sym, _ZERO)
        self.open[sym] = (pc.direction.sign, pc.qty, pc.avg_entry_price, base)

    def _equity(self) -> float:
        total = self.starting_equity + sum(self.net.values(), _ZERO)
        for sym, (sign, qty, avg, _base) in self.open.items():
            mark = self.mark.get(sym)
            if mark is not None and avg is not None:
                total += (mark - avg) * qty * sign
        return float(total)

    def _sample(self, ts: int) -> None:
        second = ts // _NS
        if self._second is None or second > self._second:
            self._second = second
            self.equity.append(self._last_equity)

    # -- results --------------------------------------------------------------------------------
    def summary(self) -> dict[str, Any]:
        equity = self.equity + [self._last_equity]
        wins = sum(1 for t in self.trades if t["net_pnl"] > 0)
        net_realized = sum(self.net.values(), _ZERO)
        unrealized = Decimal(str(self._last_equity)) - self.starting_equity - net_realized
        peak, max_dd, max_dd_pct = equity[0], 0.0, 0.0
        for e in equity:
            peak = max(peak, e)
            if peak - e > max_dd:
                max_dd = peak - e
                max_dd_pct = max_dd / peak if peak else 0.0
        returns = [b / a - 1.0 for a, b in pairwise(equity) if a]
        sharpe = 0.0
        if len(returns) >= 2:
            mean = sum(returns) / len(returns)
            sd = math.sqrt(sum((r - mean) ** 2 for r in returns) / len(returns))
            sharpe = mean / sd * math.sqrt(SECONDS_PER_YEAR) if sd > 0 else 0.0
        span = ((self.last_ns or 0) - (self.first_ns or 0)) / _NS
        return {
            "market_seconds": round(span, 3),
            "market_frames": self.market_frames,
            "decode_failures": self.decode_failures,
            "trades": len(self.trades),
            "wins": wins,
            "win_rate": round(wins / len(self.trades), 4) if self.trades else None,
            "net_realized_pnl": decimal_text(net_realized),
            "unrealized_pnl": str(unrealized.quantize(Decimal("0.01"))),
            "pnl_by_symbol": {s: decimal_text(v) for s, v in sorted(self.net.items())},
            "final_equity": round(self._last_equity, 2),
            "max_drawdown": round(max_dd, 2),
            "max_drawdown_pct": round(max_dd_pct, 6),
            "sharpe": round(sharpe, 4),
            "sharpe_formula": "mean(r)/pstdev(r)*sqrt(31536000), r = 1 s simple returns of marked-to-market equity",
            "decisions": dict(sorted(self.decisions.items())),
            "actions_by_kind": dict(sorted(self.actions_by_kind.items())),
            "denials_by_reason": dict(sorted(self.denials.items(), key=lambda kv: (-kv[1], kv[0]))),
        }


def render(summary: dict[str, Any], digest: str, inputs: int) -> str:
    """The report as text for a terminal."""
    s = summary
    win = f"{s['win_rate'] * 100:.1f}%" if s["win_rate"] is not None else "-"
    lines = [
        f"inputs            {inputs:,} ({s['market_seconds']:.1f} s of market)",
        f"decision digest   {digest}",
        f"market data       {s['market_frames']:,} frames decoded, {s['decode_failures']:,} decode failures"
        + (f" ({s['decode_failures'] / (s['market_frames'] + s['decode_failures']):.1%})" if s["decode_failures"] else ""),
        f"trades            {s['trades']} (wins {s['wins']}, win rate {win})",
        f"net realized PnL  {s['net_realized_pnl']}  unrealized {s['unrealized_pnl']}  final equity {s['final_equity']:,.2f}",
        f"max drawdown      {s['max_drawdown']:,.2f} ({s['max_drawdown_pct'] * 100:.3f}%)",
        f"Sharpe            {s['sharpe']}  [{s['sharpe_formula']}]",
        "decisions         " + (", ".join(f"{k} {v}" for k, v in s["decisions"].items()) or "-"),
        "actions by kind   " + (", ".join(f"{k} {v}" for k, v in s["actions_by_kind"].items()) or "-"),
        "risk denials      " + (", ".join(f"{k} {v}" for k, v in s["denials_by_reason"].items()) or "-"),
    ]
    if s["pnl_by_symbol"]:
        lines.append("net PnL by symbol " + ", ".join(f"{k} {v}" for k, v in s["pnl_by_symbol"].items()))
    return "\n".join(lines)
