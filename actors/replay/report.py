"""The backtest report of a what-if run: trade list, per-symbol and per-reason figures, equity.

An observer of the deterministic runtime; everything is computed from emitted messages, and the
figures themselves come from ``actors/replay/metrics.py`` (shared with ``bin/report``):

- A *trade* is a round trip: a symbol's position leaving FLAT and returning to it. Its net PnL
  is the change in ``realized_pnl - fees`` (both cumulative in PositionChanged) over that span;
  its entry reason is the reason of the approved action that opened it, its exit reason that of
  the last approved action before FLAT (else the PositionChanged cause).
- *Equity* = ``risk.starting_equity`` + net realized PnL of all symbols + unrealized PnL of open
  positions at the latest mark price (from MandateSet). It is sampled once per second of
  simulated time (the value at the end of each second that saw traffic); drawdown and the daily
  returns behind Sharpe, Sortino, CAGR and Calmar are taken from these samples.
- *Fills* are counted once: fills the venue emitted (``OrderFilled`` sent by ``<S>/venue``). A
  trade's exit price is the average price of the fills that closed it.
- *Price* per symbol (``price_curve``, for the plots): the decision's mark price, at most one
  sample per second of simulated time (the first of each second).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from arbor.actors.replay.metrics import full_report
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
from arbor.messages.base import Side
from arbor.messages.display import decimal_text

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
        self.fees_at_flat: dict[str, Decimal] = {}  # cumulative fees then
        self.mark: dict[str, Decimal] = {}
        self.trades: list[dict[str, Any]] = []
        self.decisions: dict[str, int] = {}
        self.actions_by_kind: dict[str, int] = {}
        self.denials: dict[str, int] = {}
        self.equity: list[tuple[int, float]] = []  # (second start ns, equity)
        self.first_price: dict[str, Decimal] = {}
        self.prices: dict[str, list[tuple[int, float]]] = {}  # (ns, mark), one per second
        self.exit_fills: dict[str, tuple[Decimal, Decimal]] = {}  # closing qty, notional of the open trade
        self.last_approved: dict[str, Action] = {}
        self.entry: dict[str, tuple[int, str, Decimal]] = {}  # entry ns, entry reason, fees at open
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
            self.first_price.setdefault(msg.symbol, msg.mark_price)
            series = self.prices.setdefault(msg.symbol, [])
            if not series or msg.ts_event_ns // _NS > series[-1][0] // _NS:
                series.append((msg.ts_event_ns, float(msg.mark_price)))
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
        elif t is ActionApproved:
            self._count(t)
            self.last_approved[msg.symbol] = msg.action
        elif t is PlaceOrder or t is OrderFilled and env.sender.endswith("/venue"):
            self._count(t)
            if t is OrderFilled:
                self._closing(msg)
        elif t is RawMarketEvent:
            if msg.part == 0:
                self.market_frames += 1
        elif t is DecodeFailure:
            self.decode_failures += 1

    def _count(self, t: type) -> None:
        name = t.__name__
        self.decisions[name] = self.decisions.get(name, 0) + 1

    def _closing(self, fill: OrderFilled) -> None:
        """Count a fill against the open trade it reduces (a sale of a long, a purchase of a short)."""
        opened = self.open.get(fill.symbol)
        if opened is None or (fill.side is Side.SELL) != (opened[0] > 0):
            return
        qty, notional = self.exit_fills.get(fill.symbol, (_ZERO, _ZERO))
        self.exit_fills[fill.symbol] = (qty + fill.qty, notional + fill.qty * fill.price)

    def _position(self, pc: PositionChanged) -> None:
        sym = pc.symbol
        net = pc.realized_pnl - pc.fees
        self.net[sym] = net
        if pc.state is PositionState.FLAT:
            opened = self.open.pop(sym, None)
            entry = self.entry.pop(sym, None)
            exit_qty, exit_notional = self.exit_fills.pop(sym, (_ZERO, _ZERO))
            if opened is not None:
                last = self.last_approved.get(sym)
                self.trades.append({
                    "symbol": sym, "side": "LONG" if opened[0] > 0 else "SHORT", "qty": opened[1],
                    "entry_price": opened[2], "entry_ns": entry[0] if entry else None,
                    "entry_reason": entry[1] if entry else "", "exit_ns": pc.ts_event_ns,
                    "exit_price": exit_notional / exit_qty if exit_qty else None,
                    "exit_reason": (last.reason if last is not None else "") or pc.cause,
                    "net_pnl": net - opened[3], "fees": pc.fees - (entry[2] if entry else _ZERO)})
            self.flat_net[sym] = net
            self.fees_at_flat[sym] = pc.fees
            return
        if pc.direction is None or pc.qty <= 0:
            return
        prev = self.open.get(sym)
        # the trade's PnL counts from the last FLAT, so the opening fill's fee is part of it
        base = prev[3] if prev is not None else self.flat_net.get(sym, _ZERO)
        if prev is None:
            opener = self.last_approved.get(sym)
            # fees count from the last FLAT, so the opening fill's fee is part of the trade
            self.entry[sym] = (pc.ts_event_ns, opener.reason if opener is not None else "",
                               self.fees_at_flat.get(sym, _ZERO))
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
            self.equity.append((second * _NS, self._last_equity))

    # -- results --------------------------------------------------------------------------------
    def summary(self) -> dict[str, Any]:
        curve = [*self.equity, ((self.last_ns or 0), self._last_equity)]
        net_realized = sum(self.net.values(), _ZERO)
        unrealized = Decimal(str(self._last_equity)) - self.starting_equity - net_realized
        m = full_report(self.trades, curve, float(self.starting_equity), start_ns=self.first_ns or 0,
                        end_ns=self.last_ns or 0, first_price=self.first_price, last_price=self.mark)
        span = ((self.last_ns or 0) - (self.first_ns or 0)) / _NS
        return {
            "market_seconds": round(span, 3),
            "market_frames": self.market_frames,
            "decode_failures": self.decode_failures,
            "trades": len(self.trades),
            "wins": m["overall"]["wins"],
            "win_rate": m["overall"]["win_rate"],
            "net_realized_pnl": decimal_text(net_realized),
            "unrealized_pnl": str(unrealized.quantize(Decimal("0.01"))),
            "pnl_by_symbol": {s: decimal_text(v) for s, v in sorted(self.net.items())},
            "final_equity": round(self._last_equity, 2),
            "max_drawdown": round(m["max_drawdown"], 2),
            "max_drawdown_pct": round(m["max_drawdown_pct"], 6),
            "sharpe": m["sharpe"],
            "metrics": plain(m),
            "trade_list": [plain(t) for t in self.trades],
            "equity_curve": [[ts, round(e, 6)] for ts, e in curve],
            "price_curve": {sym: [[ts, p] for ts, p in series] for sym, series in sorted(self.prices.items())},
            "decisions": dict(sorted(self.decisions.items())),
            "actions_by_kind": dict(sorted(self.actions_by_kind.items())),
            "denials_by_reason": dict(sorted(self.denials.items(), key=lambda kv: (-kv[1], kv[0]))),
        }


def plain(value: Any) -> Any:
    """``value`` with Decimals as text and floats rounded to 8 places, for JSON."""
    if isinstance(value, Decimal):
        return decimal_text(value)
    if isinstance(value, float):
        return round(value, 8)
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


def _num(value: Any, fmt: str = ".3f") -> str:
    return "-" if value is None else format(float(value), fmt)


def render(summary: dict[str, Any], digest: str, inputs: int) -> str:
    """The report as text for a terminal."""
    s = summary
    m = s["metrics"]
    o = m["overall"]
    win = f"{s['win_rate'] * 100:.1f}%" if s["win_rate"] is not None else "-"
    lines = [
        f"inputs            {inputs:,} ({s['market_seconds']:.1f} s of market)",
        f"decision digest   {digest}",
        f"market data       {s['market_frames']:,} frames decoded, {s['decode_failures']:,} decode failures"
        + (f" ({s['decode_failures'] / (s['market_frames'] + s['decode_failures']):.1%})" if s["decode_failures"] else ""),
        f"trades            {s['trades']} (wins {s['wins']}, win rate {win})",
        f"net realized PnL  {s['net_realized_pnl']}  unrealized {s['unrealized_pnl']}  final equity {s['final_equity']:,.2f}",
        f"max drawdown      {s['max_drawdown']:,.2f} ({s['max_drawdown_pct'] * 100:.3f}%), lasting "
        f"{m['max_drawdown_duration_s']:,.0f} s" + ("" if m["recovered"] else " (not recovered)"),
        f"return            total {_num(m['total_return'], '.4%')}  CAGR {_num(m['cagr'], '.2%')}  "
        f"Sharpe {_num(m['sharpe'])}  Sortino {_num(m['sortino'])}  Calmar {_num(m['calmar'])}"
        + (f"  ({m['annualised_note']})" if m["annualised_note"] else f"  (from {m['periods']} daily returns)"),
        f"trade figures     profit factor {_num(o['profit_factor'])}  expectancy {_num(o['expectancy'], '.4f')}  "
        f"SQN {_num(o['sqn'])}  avg win {_num(o['avg_win'], '.4f')}  avg loss {_num(o['avg_loss'], '.4f')}  "
        f"fees {_num(o['fees'], '.4f')}",
        f"exposure          {_num(m['exposure'], '.1%')} of the time in the market; market change (buy and hold) "
        + (", ".join(f"{k} {v:.3%}" for k, v in m["market_change"]["by_symbol"].items()) or "-"),
        "decisions         " + (", ".join(f"{k} {v}" for k, v in s["decisions"].items()) or "-"),
        "actions by kind   " + (", ".join(f"{k} {v}" for k, v in s["actions_by_kind"].items()) or "-"),
        "risk denials      " + (", ".join(f"{k} {v}" for k, v in s["denials_by_reason"].items()) or "-"),
    ]
    for title, key in (("by symbol", "by_symbol"), ("by entry reason", "by_entry_reason"),
                       ("by exit reason", "by_exit_reason")):
        if m[key]:
            lines.append(f"{title}:")
            lines.append(f"  {'':<40} {'trades':>6} {'win rate':>8} {'net PnL':>12} {'fees':>10} {'PF':>7}")
            for k, st in m[key].items():
                lines.append(f"  {k[:40]:<40} {st['trades']:>6} {_num(st['win_rate'], '.1%'):>8} "
                             f"{_num(st['net_pnl'], ',.4f'):>12} {_num(st['fees'], ',.4f'):>10} "
                             f"{_num(st['profit_factor'], '.2f'):>7}")
    return "\n".join(lines)


TRADE_COLUMNS = ("symbol", "side", "qty", "entry_ns", "entry_price", "entry_reason", "exit_ns", "exit_price",
                 "exit_reason", "net_pnl", "fees")


def write_trades_csv(trades: list[dict[str, Any]], path: Any) -> None:
    """The trade list as CSV, one round trip per row (the columns of ``TRADE_COLUMNS``)."""
    import csv

    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=TRADE_COLUMNS, extrasaction="ignore")
        w.writeheader()
        for t in trades:
            w.writerow(plain(t))
