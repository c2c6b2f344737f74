"""``bin/report``: a daily summary of the trade log as Markdown, JSON and a PnL chart (PNG).

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

Usage: bin/report [--trades var/trades.jsonl] [--out var/reports] [--date YYYY-MM-DD]
(default date: the day of the most recent exit in the log).
"""

from __future__ import annotations

import argparse
import json
import struct
import sys
import zlib
from collections.abc import Iterable, Sequence
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


# -- a PNG without a plotting library ----------------------------------------------------------
def line_chart_png(values: Sequence[float], width: int = 640, height: int = 240) -> bytes:
    """A line chart of ``values`` (white background, grey zero line, blue line) as PNG bytes."""
    pad = 12
    px = [[(255, 255, 255)] * width for _ in range(height)]
    lo, hi = min([0.0, *values]), max([0.0, *values])
    if hi == lo:
        hi = lo + 1.0

    def y_of(v: float) -> int:
        return round(height - 1 - pad - (v - lo) * (height - 1 - 2 * pad) / (hi - lo))

    def plot(x: int, y: int, colour: tuple[int, int, int]) -> None:
        for dx in (0, 1):
            for dy in (0, 1):
                if 0 <= x + dx < width and 0 <= y + dy < height:
                    px[y + dy][x + dx] = colour

    for x in range(pad, width - pad):
        px[y_of(0.0)][x] = (170, 170, 170)
    pts = [0.0, *values]
    if len(pts) > 1:
        step = (width - 1 - 2 * pad) / (len(pts) - 1)
        for i in range(len(pts) - 1):
            x0, y0, x1, y1 = round(pad + i * step), y_of(pts[i]), round(pad + (i + 1) * step), y_of(pts[i + 1])
            n = max(abs(x1 - x0), abs(y1 - y0), 1)
            for k in range(n + 1):
                plot(round(x0 + (x1 - x0) * k / n), round(y0 + (y1 - y0) * k / n), (21, 101, 192))
    raw = b"".join(b"\x00" + bytes(c for p in row for c in p) for row in px)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


def write_report(trades_path: Path, out_dir: Path, day: str | None = None) -> dict[str, Path]:
    """Write ``daily-<day>.md``, ``.json`` and ``.png`` into ``out_dir``; return their paths."""
    trades = load_trades(trades_path)
    if day is None:
        if not trades:
            raise ValueError(f"{trades_path} holds no trades; pass --date to write an empty report")
        day = max(t["exit_time"] for t in trades)[:10]
    summary = summarize(trades, day)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {ext: out_dir / f"daily-{day}.{ext}" for ext in ("md", "json", "png")}
    paths["json"].write_text(json.dumps(_plain(summary), indent=2) + "\n", encoding="utf-8")
    paths["png"].write_bytes(line_chart_png([float(c) for c in summary["cumulative_net_pnl"]]))
    paths["md"].write_text(markdown(summary, paths["png"].name), encoding="utf-8")
    return paths


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="report", description="Daily trade summary from the trade log.")
    p.add_argument("--trades", type=Path, default=Path("var/trades.jsonl"))
    p.add_argument("--out", type=Path, default=Path("var/reports"))
    p.add_argument("--date", help="UTC day YYYY-MM-DD (default: the day of the last exit)")
    args = p.parse_args(argv)
    if not args.trades.exists():
        print(f"report: no trade log at {args.trades}", file=sys.stderr)
        return 2
    try:
        paths = write_report(args.trades, args.out, args.date)
    except ValueError as exc:
        print(f"report: {exc}", file=sys.stderr)
        return 2
    for path in paths.values():
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
