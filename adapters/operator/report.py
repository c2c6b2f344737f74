"""``bin/report``: a daily summary of the trade log as Markdown, JSON, PNG plots and an HTML page.

Reads ``var/trades.jsonl`` (one closed round trip per line, written by
``actors.cluster.observers.TradeLog``), keeps the trades that closed on the chosen UTC day and
computes, overall, for longs, for shorts, per symbol, per entry mandate and per exit reason:
trades, win rate, average win and loss, profit factor, expectancy, SQN, fees and the maximum
drawdown of cumulative net PnL. The trade figures are those of the what-if report
(``arbor.actors.replay.metrics.trade_stats``, where they are defined), so a live run and its
replay are read with one set of definitions; in short:

- win: net PnL > 0; loss: net PnL < 0; win rate = wins / trades
- expectancy = mean net PnL per trade; SQN = sqrt(n) x mean / sample stdev of net PnL
  (null for fewer than two trades or zero dispersion); profit factor = wins / |losses|
- max drawdown = max over trades of (running peak - cumulative net PnL), the peak starting at 0,
  trades taken in exit-time order

Usage: bin/report [--trades var/trades.jsonl] [--out var/reports] [--date YYYY-MM-DD] [--plots DIR]
[--html FILE] [--starting-equity X] (default date: the day of the most recent exit in the log). The
plots and the page are those of the what-if report (``actors/replay/plots.py``, ``html_report.py``).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Sequence
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from arbor.actors.replay.metrics import trade_stats
from arbor.messages.display import decimal_text

ZERO = Decimal(0)


def load_trades(path: Path) -> list[dict[str, Any]]:
    """Every trade in the log, in file order; a damaged line is an error naming its line number.

    A trade whose outcome was not observed (its position was gone at a restart: null PnL) has no
    figures to count and is left out."""
    trades = []
    with open(path, encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                t = json.loads(line)
                if t.get("net_pnl", "") is None and t.get("realized_pnl", "") is None:
                    continue
                t["net_pnl"] = Decimal(t["net_pnl"])
                t["realized_pnl"] = Decimal(t["realized_pnl"])
                t["fees"] = Decimal(t["fees"])
            except (ValueError, KeyError, TypeError, ArithmeticError) as exc:
                raise ValueError(f"{path}:{n}: not a trade record ({exc})") from None
            trades.append(t)
    return trades


def trades_on(trades: Iterable[dict[str, Any]], day: str) -> list[dict[str, Any]]:
    """Trades that closed on UTC ``day`` (``YYYY-MM-DD``), in exit-time order."""
    return sorted((t for t in trades if t["exit_time"][:10] == day), key=lambda t: t["exit_time"])


def stats(trades: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The figures of one set of trades (see the module docstring for the definitions)."""
    pnl = [t["net_pnl"] for t in trades]
    return {**trade_stats(pnl, [t["fees"] for t in trades]),
            "realized_pnl": sum((t["realized_pnl"] for t in trades), ZERO), "max_drawdown": max_drawdown(pnl)}


def cumulative(pnl: Iterable[Decimal]) -> list[Decimal]:
    out, acc = [], ZERO
    for p in pnl:
        acc += p
        out.append(acc)
    return out


def max_drawdown(pnl: Iterable[Decimal]) -> Decimal:
    peak, worst = ZERO, ZERO
    for c in cumulative(pnl):
        peak = max(peak, c)
        worst = max(worst, peak - c)
    return worst


def summarize(trades: Sequence[dict[str, Any]], day: str) -> dict[str, Any]:
    ordered = trades_on(trades, day)
    symbols = sorted({t["symbol"] for t in ordered})
    return {
        "date": day,
        "overall": stats(ordered),
        "long": stats([t for t in ordered if t["side"] == "LONG"]),
        "short": stats([t for t in ordered if t["side"] == "SHORT"]),
        "symbols": {s: stats([t for t in ordered if t["symbol"] == s]) for s in symbols},
        "entry_reasons": _by(ordered, "entry_mandate"),
        "exit_reasons": _by(ordered, "exit_reason"),
        "cumulative_net_pnl": cumulative(t["net_pnl"] for t in ordered),
        "definitions": {
            "net_pnl": "realized_pnl - fees per closed trade, quote currency",
            "win_rate": "trades with net_pnl > 0 / trades",
            "expectancy": "mean net_pnl per trade",
            "profit_factor": "sum of winning net_pnl / |sum of losing net_pnl|",
            "sqn": "sqrt(trades) * mean(net_pnl) / stdev(net_pnl, n-1)",
            "max_drawdown": "max(running peak - cumulative net_pnl), peak starting at 0, in exit-time order",
        },
    }


def _by(trades: Sequence[dict[str, Any]], key: str) -> dict[str, dict[str, Any]]:
    keys = sorted({str(t.get(key) or "-") for t in trades})
    return {k: stats([t for t in trades if str(t.get(key) or "-") == k]) for k in keys}


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return decimal_text(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _fmt(value: Any, pct: bool = False) -> str:
    if value is None:
        return "-"
    if pct:
        return f"{value:.1%}"
    if isinstance(value, float):
        return f"{value:.3f}"
    if isinstance(value, Decimal):
        return f"{value:,.2f}"
    return str(value)


def markdown(summary: dict[str, Any], chart_name: str) -> str:
    cols = ("trades", "win_rate", "avg_win", "avg_loss", "profit_factor", "expectancy", "sqn", "net_pnl", "fees",
            "max_drawdown")
    head = "| set | " + " | ".join(cols) + " |\n|" + "---|" * (len(cols) + 1) + "\n"
    rows = [("overall", summary["overall"]), ("long", summary["long"]), ("short", summary["short"])]
    rows += [(s, v) for s, v in summary["symbols"].items()]
    rows += [(f"entry: {k}", v) for k, v in summary["entry_reasons"].items()]
    rows += [(f"exit: {k}", v) for k, v in summary["exit_reasons"].items()]
    body = "".join("| " + name + " | " + " | ".join(_fmt(st[c], pct=c == "win_rate") for c in cols) + " |\n"
                   for name, st in rows)
    defs = "".join(f"- **{k}**: {v}\n" for k, v in summary["definitions"].items())
    return (f"# Arbor daily summary {summary['date']}\n\n{head}{body}\n"
            f"![cumulative net PnL]({chart_name})\n\nCumulative net PnL per closed trade (exit-time order); "
            f"the grey line is zero.\n\n## Definitions\n\n{defs}")


# -- plots and the HTML page (actors/replay/plots.py and html_report.py, shared with the what-if) --
def _ns(iso_time: str) -> int:
    return int(datetime.fromisoformat(iso_time.replace("Z", "+00:00")).timestamp() * 1e9)


def trade_list(trades: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Trade-log records in the what-if's trade-list shape (entry/exit instants in ns)."""
    return [{"symbol": t["symbol"], "side": t.get("side"), "qty": t.get("size"),
             "entry_ns": _ns(t["entry_time"]) if t.get("entry_time") else None, "entry_price": t.get("entry_price"),
             "entry_reason": t.get("entry_mandate"), "exit_ns": _ns(t["exit_time"]), "exit_price": t.get("exit_price"),
             "exit_reason": t.get("exit_reason"), "net_pnl": t["net_pnl"], "fees": t["fees"]} for t in trades]


def equity_curve(trades: Sequence[dict[str, Any]], starting_equity: float) -> list[tuple[int, float]]:
    """Starting equity plus cumulative net PnL, at the first entry and then at each exit."""
    if not trades:
        return []
    start = min((t["entry_ns"] for t in trades if t["entry_ns"] is not None), default=trades[0]["exit_ns"])
    out, acc = [(start, starting_equity)], starting_equity
    for t in trades:
        acc += float(t["net_pnl"])
        out.append((t["exit_ns"], acc))
    return out


def day_plots(trades: Sequence[dict[str, Any]], starting_equity: float) -> dict[str, bytes]:
    """Equity (from closed trades), drawdown, and each symbol's trades at their own prices."""
    from arbor.actors.replay.plots import report_plots

    prices: dict[str, list[tuple[int, float]]] = {}
    for t in trades:
        pts = prices.setdefault(t["symbol"], [])
        if t["entry_ns"] is not None and t["entry_price"] is not None:
            pts.append((t["entry_ns"], float(t["entry_price"])))
        if t["exit_price"] is not None:
            pts.append((t["exit_ns"], float(t["exit_price"])))
    prices = {s: sorted(p) for s, p in prices.items()}
    return report_plots(equity_curve(trades, starting_equity), prices, trades, starting_equity,
                        price_label="trade prices", equity_title="Equity from closed trades")


def write_report(trades_path: Path, out_dir: Path, day: str | None = None, *, plots_dir: Path | None = None,
                 html: Path | None = None, starting_equity: float = 100_000.0) -> dict[str, Path]:
    """Write ``daily-<day>.md``, ``.json`` and ``.png`` into ``out_dir`` (and the plots into
    ``plots_dir``, the HTML page to ``html``); return their paths."""
    trades = load_trades(trades_path)
    if day is None:
        if not trades:
            raise ValueError(f"{trades_path} holds no trades; pass --date to write an empty report")
        day = max(t["exit_time"] for t in trades)[:10]
    summary = summarize(trades, day)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {ext: out_dir / f"daily-{day}.{ext}" for ext in ("md", "json", "png")}
    paths["json"].write_text(json.dumps(_plain(summary), indent=2) + "\n", encoding="utf-8")
    day_trades = trade_list(trades_on(trades, day))
    plots = day_plots(day_trades, starting_equity)
    paths["png"].write_bytes(plots["equity.png"])
    paths["md"].write_text(markdown(summary, paths["png"].name), encoding="utf-8")
    if plots_dir is not None:
        from arbor.actors.replay.plots import write_plots

        for p in write_plots(plots, plots_dir):
            paths[f"plot:{p.name}"] = p
    if html is not None:
        from arbor.actors.replay.html_report import daily_html

        html.parent.mkdir(parents=True, exist_ok=True)
        html.write_text(daily_html(summary, day_trades, plots), encoding="utf-8")
        paths["html"] = html
    return paths


def _configured_equity() -> float:
    from arbor.config.loader import load_raw
    from arbor.config.settings import build_settings

    return float(build_settings(load_raw()).risk.starting_equity)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="report", description="Daily trade summary from the trade log.")
    p.add_argument("--trades", type=Path, default=Path("var/trades.jsonl"))
    p.add_argument("--out", type=Path, default=Path("var/reports"))
    p.add_argument("--date", help="UTC day YYYY-MM-DD (default: the day of the last exit)")
    p.add_argument("--plots", type=Path, metavar="DIR", help="also write the plots (equity, drawdown, trades "
                   "per symbol) as PNG here")
    p.add_argument("--html", type=Path, metavar="FILE", help="also write the report as one self-contained HTML file")
    p.add_argument("--starting-equity", type=float, default=None,
                   help="equity before the day's trades (default: the configuration's risk.starting_equity)")
    args = p.parse_args(argv)
    if not args.trades.exists():
        print(f"report: no trade log at {args.trades}", file=sys.stderr)
        return 2
    try:
        equity = args.starting_equity if args.starting_equity is not None else _configured_equity()
        paths = write_report(args.trades, args.out, args.date, plots_dir=args.plots, html=args.html,
                             starting_equity=equity)
    except ValueError as exc:
        print(f"report: {exc}", file=sys.stderr)
        return 2
    for path in paths.values():
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
