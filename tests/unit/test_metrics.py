"""Known-answer tests of every report figure on constructed trade lists and equity curves."""

from __future__ import annotations

import math
from decimal import Decimal

import pytest
from arbor.actors.replay.metrics import (
    DAY_NS,
    TOO_SHORT,
    annualised,
    breakdown,
    daily_equity,
    drawdown,
    exposure,
    full_report,
    market_change,
    per_period,
    trade_stats,
)

D = Decimal
S = 1_000_000_000


def test_trade_figures_of_a_known_set() -> None:
    """Wins 10+6, losses -4-8: win rate 0.5, avg win 8, avg loss -6, PF 16/12, expectancy 1, SQN 2*1/sd."""
    s = trade_stats([D(10), D(-4), D(6), D(-8)], [D("0.5")] * 4)
    assert (s["trades"], s["wins"], s["losses"]) == (4, 2, 2)
    assert s["win_rate"] == 0.5 and s["avg_win"] == D(8) and s["avg_loss"] == D(-6)
    assert s["profit_factor"] == pytest.approx(16 / 12)
    assert s["expectancy"] == D(1) and s["net_pnl"] == D(4) and s["fees"] == D(2)
    sd = math.sqrt((81 + 25 + 25 + 81) / 3)
    assert s["sqn"] == pytest.approx(math.sqrt(4) * 1 / sd)


def test_no_loss_no_profit_factor_and_one_trade_no_sqn() -> None:
    """Profit factor needs a loss and SQN two trades: otherwise None, never infinity."""
    s = trade_stats([D(3)])
    assert s["profit_factor"] is None and s["sqn"] is None and s["win_rate"] == 1.0
    assert trade_stats([])["win_rate"] is None


def test_drawdown_depth_fraction_and_duration() -> None:
    """Peak 110 at t=1 s, trough 88 at t=3 s, back to 110 at t=6 s: 22, 0.2, 5 s, recovered."""
    curve = [(0, 100.0), (1 * S, 110.0), (2 * S, 99.0), (3 * S, 88.0), (5 * S, 100.0), (6 * S, 110.0)]
    dd = drawdown(curve)
    assert dd["max_drawdown"] == pytest.approx(22.0) and dd["max_drawdown_pct"] == pytest.approx(0.2)
    assert dd["max_drawdown_duration_s"] == 5.0 and dd["recovered"]


def test_unrecovered_drawdown_lasts_to_the_end() -> None:
    """A drawdown never recovered lasts from its peak to the last sample."""
    dd = drawdown([(0, 100.0), (2 * S, 90.0), (9 * S, 95.0)])
    assert dd["max_drawdown"] == 10.0 and dd["max_drawdown_duration_s"] == 9.0 and not dd["recovered"]


def test_drawdown_after_a_flat_start_lasts_from_the_last_peak() -> None:
    """Equity flat at 100 for 3 s, then falling and never back: duration from t=2 s to the end, 8 s."""
    dd = drawdown([(0, 100.0), (1 * S, 100.0), (2 * S, 100.0), (3 * S, 95.0), (10 * S, 96.0)])
    assert dd["max_drawdown"] == 5.0 and dd["max_drawdown_duration_s"] == 8.0 and not dd["recovered"]


def test_daily_equity_takes_each_days_last_sample() -> None:
    """End-of-day equity, carried over a day without samples."""
    curve = [(0, 100.0), (DAY_NS - 1, 101.0), (DAY_NS + 5, 102.0), (3 * DAY_NS + 1, 99.0)]
    assert daily_equity(curve) == [101.0, 102.0, 102.0, 99.0]


def test_short_run_says_it_is_too_short_instead_of_annualising() -> None:
    """One day of second-by-second equity gives no Sharpe, Sortino, CAGR or Calmar, and says why."""
    curve = [(i * S, 100.0 + (i % 7) - 3) for i in range(3600)]
    a = annualised(curve, 100.0, 0.06)
    assert a["sharpe"] is None and a["sortino"] is None and a["cagr"] is None and a["calmar"] is None
    assert a["annualised_note"].startswith(TOO_SHORT)
    assert a["total_return"] == pytest.approx(curve[-1][1] / 100 - 1)


def test_annualised_figures_from_daily_returns() -> None:
    """Daily returns +10%, -5%, +2% from 100: hand-computed Sharpe, Sortino, CAGR, Calmar."""
    days = [110.0, 104.5, 106.59]
    curve = [(i * DAY_NS + DAY_NS // 2, e) for i, e in enumerate(days)]
    a = annualised(curve, 100.0, 0.05)
    r = [0.10, -0.05, 0.02]
    mean = sum(r) / 3
    sd = math.sqrt(sum((x - mean) ** 2 for x in r) / 2)
    down = math.sqrt(0.05**2 / 3)
    assert a["periods"] == 3
    assert a["sharpe"] == pytest.approx(mean / sd * math.sqrt(365))
    assert a["sortino"] == pytest.approx(mean / down * math.sqrt(365))
    assert a["cagr"] == pytest.approx(1.0659 ** (365 / 3) - 1)
    assert a["calmar"] == pytest.approx(a["cagr"] / 0.05)
    assert a["total_return"] == pytest.approx(0.0659)


def test_per_period_ratios_are_not_annualised() -> None:
    """Minute returns +10%, -5%, +2% from 100: Sharpe and Sortino per minute, without sqrt(365)."""
    minute = 60 * S
    curve = [(i * minute + minute // 2, e) for i, e in enumerate([110.0, 104.5, 106.59])]
    p = per_period(curve, 100.0, minute)
    r = [0.10, -0.05, 0.02]
    mean = sum(r) / 3
    sd = math.sqrt(sum((x - mean) ** 2 for x in r) / 2)
    assert p["periods"] == 3 and p["period_s"] == 60.0
    assert p["sharpe"] == pytest.approx(mean / sd)
    assert p["sortino"] == pytest.approx(mean / math.sqrt(0.05**2 / 3))
    assert per_period(curve[:1], 100.0, minute)["sharpe"] is None  # one return: no dispersion to divide by


def test_exposure_is_the_union_of_open_spans() -> None:
    """Spans 0-2 s and 1-4 s overlap: 4 s of 10 s in the market."""
    assert exposure([(0, 2 * S), (1 * S, 4 * S)], 0, 10 * S) == pytest.approx(0.4)
    assert exposure([], 0, 0) is None


def test_market_change_is_buy_and_hold() -> None:
    """100 -> 110 and 50 -> 45: +10% and -10%, mean 0."""
    m = market_change({"A": D(100), "B": D(50)}, {"A": D(110), "B": D(45)})
    assert m["by_symbol"] == {"A": pytest.approx(0.1), "B": pytest.approx(-0.1)}
    assert m["mean"] == pytest.approx(0.0)


def test_breakdown_by_exit_reason() -> None:
    """Trades grouped by exit reason carry their own figures."""
    trades = [{"net_pnl": D(5), "exit_reason": "take_profit"}, {"net_pnl": D(-2), "exit_reason": "stop"},
              {"net_pnl": D(3), "exit_reason": "take_profit"}]
    b = breakdown(trades, "exit_reason")
    assert set(b) == {"take_profit", "stop"}
    assert b["take_profit"]["trades"] == 2 and b["take_profit"]["net_pnl"] == D(8)
    assert b["stop"]["win_rate"] == 0.0


def test_full_report_of_a_constructed_run() -> None:
    """The whole report of two trades agrees with its parts."""
    trades = [{"symbol": "A", "side": "LONG", "net_pnl": D(4), "fees": D(1), "entry_ns": 0, "exit_ns": 2 * S,
               "entry_reason": "trend", "exit_reason": "tp"},
              {"symbol": "B", "side": "SHORT", "net_pnl": D(-1), "fees": D(1), "entry_ns": 5 * S,
               "exit_ns": 6 * S, "entry_reason": "range", "exit_reason": "stop"}]
    curve = [(0, 100.0), (2 * S, 104.0), (6 * S, 103.0), (10 * S, 103.0)]
    r = full_report(trades, curve, 100.0, first_price={"A": D(10)}, last_price={"A": D(12)})
    assert r["overall"]["net_pnl"] == D(3) and r["overall"]["fees"] == D(2)
    assert set(r["by_symbol"]) == {"A", "B"} and set(r["by_entry_reason"]) == {"trend", "range"}
    assert r["exposure"] == pytest.approx(0.3) and r["max_drawdown"] == 1.0
    assert r["market_change"]["by_symbol"]["A"] == pytest.approx(0.2)
    assert r["sharpe"] is None and r["total_return"] == pytest.approx(0.03)
