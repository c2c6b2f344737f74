"""Backtest and live-run figures traders recognise, from a trade list and an equity curve.

One implementation for the what-if report (``actors/replay/report.py``) and ``bin/report`` on a
live trade log. Pure functions: no clock, no I/O. Definitions (quote currency, risk-free rate 0):

- *net PnL* of a trade = realized PnL - fees; win: net > 0, loss: net < 0.
- *profit factor* = sum of wins / |sum of losses| (None without a loss).
- *expectancy* = mean net PnL per trade; *SQN* = sqrt(n) * mean / sample stdev (n - 1) of net PnL
  (None for fewer than 2 trades or zero dispersion).
- *period returns*: equity is taken at the end of each UTC day (the last sample at or before the
  day's end); r_i = E_i / E_(i-1) - 1, the first base being the starting equity.
- *Sharpe* = mean(r) / sample stdev(r) * sqrt(365); *Sortino* = mean(r) / downside deviation *
  sqrt(365), the downside deviation being sqrt(mean(min(r, 0)^2)); *CAGR* = (E_end / E_0)^(365 /
  days) - 1; *Calmar* = CAGR / max drawdown fraction. All four need at least
  ``MIN_PERIODS_FOR_ANNUALISED`` daily returns: a shorter run says "too short for an annualised
  figure" (value None) instead of annualising seconds into an absurd number. ``per_period`` gives
  Sharpe and Sortino over a stated shorter period (e.g. 60 s) without annualising them.
- *max drawdown* = the largest fall of equity from its running peak (quote and fraction of the
  peak); its *duration* = time from that peak to the recovery of it (or to the end, unrecovered).
- *exposure* = fraction of the run's time with at least one position open.
- *market change* (buy and hold) = last / first price - 1 per symbol, and their mean.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

DAY_NS = 86_400 * 1_000_000_000
PERIODS_PER_YEAR = 365
MIN_PERIODS_FOR_ANNUALISED = 2
TOO_SHORT = "too short for an annualised figure"
ZERO = Decimal(0)


def _mean(xs: Sequence[float]) -> float:
    return sum(xs) / len(xs)


def _sample_sd(xs: Sequence[float]) -> float:
    m = _mean(xs)
    return math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1))


def trade_stats(nets: Sequence[Decimal], fees: Sequence[Decimal] = ()) -> dict[str, Any]:
    """Count, win rate, average win and loss, profit factor, expectancy, SQN, net PnL and fees."""
    n = len(nets)
    wins = [p for p in nets if p > 0]
    losses = [p for p in nets if p < 0]
    gross_win, gross_loss = sum(wins, ZERO), sum(losses, ZERO)
    total = sum(nets, ZERO)
    sqn = None
    if n >= 2:
        sd = _sample_sd([float(p) for p in nets])
        sqn = math.sqrt(n) * float(total) / n / sd if sd > 0 else None
    return {
        "trades": n, "wins": len(wins), "losses": len(losses),
        "win_rate": len(wins) / n if n else None,
        "avg_win": gross_win / len(wins) if wins else None,
        "avg_loss": gross_loss / len(losses) if losses else None,
        "profit_factor": float(gross_win / -gross_loss) if losses else None,
        "expectancy": total / n if n else None,
        "sqn": sqn,
        "net_pnl": total,
        "fees": sum(fees, ZERO),
    }


def drawdown(curve: Sequence[tuple[int, float]]) -> dict[str, Any]:
    """Max drawdown of ``(ts_ns, equity)`` samples: quote, fraction of the peak, duration in seconds."""
    if not curve:
        return {"max_drawdown": 0.0, "max_drawdown_pct": 0.0, "max_drawdown_duration_s": 0.0,
                "recovered": True}
    peak_ts, peak = curve[0]
    worst, worst_pct, worst_peak_ts, worst_peak, trough_ts = 0.0, 0.0, peak_ts, peak, peak_ts
    for ts, e in curve:
        if e >= peak:  # the drawdown starts the last time equity stood at its peak
            peak_ts, peak = ts, e
        if peak - e > worst:
            worst, worst_pct = peak - e, (peak - e) / peak if peak else 0.0
            worst_peak_ts, worst_peak, trough_ts = peak_ts, peak, ts
    end_ts, recovered = curve[-1][0], worst == 0.0
    if worst > 0:
        after = [ts for ts, e in curve if ts > trough_ts and e >= worst_peak]
        if after:
            end_ts, recovered = after[0], True
    return {"max_drawdown": worst, "max_drawdown_pct": worst_pct,
            "max_drawdown_duration_s": (end_ts - worst_peak_ts) / 1e9 if worst > 0 else 0.0,
            "recovered": recovered}


def daily_equity(curve: Sequence[tuple[int, float]]) -> list[float]:
    """Equity at the end of each UTC day the curve spans (the last sample at or before it)."""
    return period_equity(curve, DAY_NS)


def period_equity(curve: Sequence[tuple[int, float]], period_ns: int) -> list[float]:
    """Equity at the end of each period of ``period_ns`` (aligned on the epoch) the curve spans."""
    if not curve:
        return []
    out: list[float] = []
    period = curve[0][0] // period_ns
    last = curve[0][1]
    for ts, e in curve:
        p = ts // period_ns
        while p > period:
            out.append(last)
            period += 1
        last = e
    out.append(last)
    return out


def annualised(curve: Sequence[tuple[int, float]], starting_equity: float, max_dd_pct: float) -> dict[str, Any]:
    """Total return, and CAGR, Sharpe, Sortino and Calmar from daily returns (None when too short)."""
    days = daily_equity(curve)
    final = curve[-1][1] if curve else starting_equity
    out: dict[str, Any] = {"total_return": final / starting_equity - 1 if starting_equity else None,
                           "periods": len(days), "period": "1 UTC day", "periods_per_year": PERIODS_PER_YEAR,
                           "cagr": None, "sharpe": None, "sortino": None, "calmar": None, "annualised_note": None}
    if len(days) < MIN_PERIODS_FOR_ANNUALISED or not starting_equity:
        out["annualised_note"] = (f"{TOO_SHORT}: {len(days)} daily return(s), at least "
                                  f"{MIN_PERIODS_FOR_ANNUALISED} needed")
        return out
    sharpe, sortino = _ratios(_returns(days, starting_equity))
    scale = math.sqrt(PERIODS_PER_YEAR)
    out["sharpe"] = sharpe * scale if sharpe is not None else None
    out["sortino"] = sortino * scale if sortino is not None else None
    growth = final / starting_equity
    out["cagr"] = growth ** (PERIODS_PER_YEAR / len(days)) - 1 if growth > 0 else -1.0
    out["calmar"] = out["cagr"] / max_dd_pct if max_dd_pct > 0 else None
    return out


def _returns(equity: Sequence[float], starting_equity: float) -> list[float]:
    bases = [starting_equity, *equity[:-1]]
    return [e / b - 1 for b, e in zip(bases, equity, strict=True) if b]


def _ratios(r: Sequence[float]) -> tuple[float | None, float | None]:
    """Sharpe (mean / sample stdev) and Sortino (mean / downside deviation) of returns, per period."""
    if len(r) < 2:
        return None, None
    mean = _mean(r)
    sd = _sample_sd(r)
    down = math.sqrt(_mean([min(x, 0.0) ** 2 for x in r]))
    return (mean / sd if sd > 0 else None), (mean / down if down > 0 else None)


def per_period(curve: Sequence[tuple[int, float]], starting_equity: float, period_ns: int) -> dict[str, Any]:
    """Sharpe and Sortino of the returns over periods of ``period_ns``, NOT annualised (the run's
    own scale, for comparing configurations on a run too short for daily returns)."""
    r = _returns(period_equity(curve, period_ns), starting_equity) if starting_equity else []
    sharpe, sortino = _ratios(r)
    return {"periods": len(r), "period_s": period_ns / 1e9, "sharpe": sharpe, "sortino": sortino}


def exposure(spans: Sequence[tuple[int, int]], start_ns: int, end_ns: int) -> float | None:
    """Fraction of ``[start_ns, end_ns]`` covered by the union of the ``(open, close)`` spans."""
    if end_ns <= start_ns:
        return None
    covered, cur_end = 0, start_ns
    for a, b in sorted(spans):
        a, b = max(a, cur_end), min(b, end_ns)
        if b > a:
            covered += b - a
            cur_end = b
    return covered / (end_ns - start_ns)


def market_change(first: Mapping[str, Decimal], last: Mapping[str, Decimal]) -> dict[str, Any]:
    """Buy-and-hold change of each symbol's price over the run, and the equal-weight mean."""
    per = {s: float(last[s] / first[s] - 1) for s in sorted(first) if s in last and first[s]}
    return {"by_symbol": per, "mean": _mean(list(per.values())) if per else None}


def breakdown(trades: Sequence[Mapping[str, Any]], key: str) -> dict[str, dict[str, Any]]:
    """Trade figures grouped by ``trade[key]`` (an entry or exit reason, a symbol, a side)."""
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for t in trades:
        groups.setdefault(str(t.get(key) or "-"), []).append(t)
    return {k: trade_stats([t["net_pnl"] for t in g], [t.get("fees", ZERO) for t in g])
            for k, g in sorted(groups.items())}


def full_report(trades: Sequence[Mapping[str, Any]], curve: Sequence[tuple[int, float]], starting_equity: float,
                *, start_ns: int | None = None, end_ns: int | None = None,
                first_price: Mapping[str, Decimal] | None = None,
                last_price: Mapping[str, Decimal] | None = None) -> dict[str, Any]:
    """Every figure of the module docstring for one run."""
    dd = drawdown(curve)
    start = start_ns if start_ns is not None else (curve[0][0] if curve else 0)
    end = end_ns if end_ns is not None else (curve[-1][0] if curve else 0)
    spans = [(t["entry_ns"], t["exit_ns"]) for t in trades if t.get("entry_ns") is not None]
    return {
        "overall": trade_stats([t["net_pnl"] for t in trades], [t.get("fees", ZERO) for t in trades]),
        "by_symbol": breakdown(trades, "symbol"),
        "by_side": breakdown(trades, "side"),
        "by_entry_reason": breakdown(trades, "entry_reason"),
        "by_exit_reason": breakdown(trades, "exit_reason"),
        **dd,
        **annualised(curve, starting_equity, dd["max_drawdown_pct"]),
        "exposure": exposure(spans, start, end),
        "market_change": market_change(first_price or {}, last_price or {}),
    }
