"""The report as one self-contained HTML file: figures, tables, trade list and embedded plots.

One implementation for ``bin/replay whatif --html`` and ``bin/report --html``. The page has no
external resources and no script: styles are inline, the PNGs (``actors/replay/plots.py``) are
embedded as base64 ``data:`` URIs, so the file opens anywhere, offline, and can be mailed.

Stable hooks for tools and tests: the tables are ``table#by-symbol``, ``#by-side``,
``#by-entry-reason``, ``#by-exit-reason`` and ``#trades``; a breakdown row carries
``data-key`` (``all`` for the overall row) and each cell ``data-field`` (``trades``, ``net_pnl``...).
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from html import escape
from pathlib import Path
from typing import Any

MAX_TRADE_ROWS = 5000  # the page lists at most this many trades (the CSV and JSON hold them all)

STAT_COLUMNS = (
    ("trades", "trades", "d"), ("win_rate", "win rate", "%"), ("avg_win", "avg win", "4"),
    ("avg_loss", "avg loss", "4"), ("profit_factor", "profit factor", "2"), ("expectancy", "expectancy", "4"),
    ("sqn", "SQN", "2"), ("net_pnl", "net PnL", "4"), ("fees", "fees", "4"),
)
TRADE_COLUMNS = (
    ("symbol", "symbol"), ("side", "side"), ("qty", "qty"), ("entry_ns", "entry (UTC)"),
    ("entry_price", "entry price"), ("entry_reason", "entry reason"), ("exit_ns", "exit (UTC)"),
    ("exit_price", "exit price"), ("exit_reason", "exit reason"), ("net_pnl", "net PnL"), ("fees", "fees"),
)

DEFINITIONS = """<ul class="note">
<li><b>net PnL</b>: realized PnL - fees, in quote; a win has net PnL &gt; 0. A trade is FLAT to FLAT; its exit
price is the average of its closing fills.</li>
<li><b>profit factor</b>: sum of wins / |sum of losses|; <b>expectancy</b>: mean net PnL per trade;
<b>SQN</b>: sqrt(n) x mean / sample stdev of net PnL.</li>
<li><b>equity</b>: starting equity + net realized PnL + unrealized PnL at the mark, sampled each second;
<b>max drawdown</b>: the largest fall from its running peak, its <b>duration</b> from that peak to the recovery.</li>
<li><b>CAGR, Sharpe, Sortino, Calmar</b>: from end-of-UTC-day equity returns, sqrt(365), risk-free 0; a run with
fewer than 2 daily returns is too short for them.</li>
<li><b>exposure</b>: share of the time with a position; <b>market change</b>: last / first mark - 1 (buy and hold).</li>
<li>Every definition: docs/replay.md ("The report") and actors/replay/metrics.py.</li>
</ul>"""

STYLE = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #212121; margin: 0;
       background: #fafafa; }
main { max-width: 1100px; margin: 0 auto; padding: 24px 28px 48px; background: #fff; }
h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 17px; margin: 28px 0 8px; border-bottom: 1px solid #e0e0e0;
     padding-bottom: 4px; }
.sub { color: #616161; margin: 0 0 16px; }
.figures { display: grid; grid-template-columns: repeat(auto-fill, minmax(200px, 1fr)); gap: 8px 16px; }
.figure { border: 1px solid #eeeeee; border-radius: 6px; padding: 8px 10px; }
.figure .label { color: #757575; font-size: 12px; } .figure .value { font-size: 16px; font-weight: 600; }
.note { color: #616161; font-size: 12px; }
table { border-collapse: collapse; width: 100%; font-size: 12.5px; }
th, td { padding: 4px 6px; border-bottom: 1px solid #eeeeee; text-align: right; white-space: nowrap; }
th { background: #f5f5f5; position: sticky; top: 0; } td.text, th.text { text-align: left; }
tr.all td { font-weight: 600; } .pos { color: #2e7d32; } .neg { color: #c62828; }
img { display: block; max-width: 100%; height: auto; margin: 8px 0 16px; border: 1px solid #eeeeee; }
.scroll { max-height: 520px; overflow: auto; border: 1px solid #eeeeee; }
"""


def _f(value: Any, fmt: str) -> str:
    """A figure as text: ``-`` for none; ``d`` integer, ``%`` percent, a digit: that many decimals."""
    if value is None or value == "":
        return "-"
    try:
        x = float(value)
    except (TypeError, ValueError):
        return str(value)
    if fmt == "d":
        return f"{int(x):,}"
    if fmt == "%":
        return f"{x:.1%}"
    return f"{x:,.{int(fmt)}f}"


def _sign(value: Any) -> str:
    try:
        x = float(value)
    except (TypeError, ValueError):
        return ""
    return "pos" if x > 0 else "neg" if x < 0 else ""


def iso(ns: Any) -> str:
    if ns is None:
        return "-"
    return datetime.fromtimestamp(int(ns) / 1e9, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")


def figures_html(figures: Sequence[tuple[str, str]]) -> str:
    cells = "".join(f'<div class="figure"><div class="label">{escape(k)}</div>'
                    f'<div class="value">{escape(v)}</div></div>' for k, v in figures)
    return f'<div class="figures">{cells}</div>'


def stats_table(table_id: str, key_title: str, rows: Mapping[str, Mapping[str, Any]],
                overall: Mapping[str, Any] | None = None) -> str:
    """A breakdown (trade figures per symbol, side or reason), with the overall row last when given."""
    head = f'<th class="text">{escape(key_title)}</th>' + "".join(f"<th>{escape(t)}</th>" for _, t, _ in STAT_COLUMNS)

    def row(key: str, st: Mapping[str, Any], cls: str = "") -> str:
        cells = "".join(f'<td data-field="{k}" class="{_sign(st.get(k)) if k in ("net_pnl", "expectancy") else ""}">'
                        f"{escape(_f(st.get(k), fmt))}</td>" for k, _, fmt in STAT_COLUMNS)
        return f'<tr data-key="{escape(key)}" class="{cls}"><td class="text">{escape(key)}</td>{cells}</tr>'

    body = "".join(row(k, st) for k, st in rows.items())
    if overall is not None:
        body += row("all", overall, "all")
    if not rows and overall is None:
        body = f'<tr><td class="text" colspan="{len(STAT_COLUMNS) + 1}">no trades</td></tr>'
    return f'<table id="{table_id}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def trades_table(trades: Sequence[Mapping[str, Any]]) -> str:
    head = "".join(f'<th class="{"text" if k in ("symbol", "side", "entry_reason", "exit_reason") else ""}">'
                   f"{escape(t)}</th>" for k, t in TRADE_COLUMNS)
    rows = []
    for t in trades[:MAX_TRADE_ROWS]:
        cells = []
        for k, _ in TRADE_COLUMNS:
            v = t.get(k)
            if k in ("entry_ns", "exit_ns"):
                cells.append(f'<td data-field="{k}">{escape(iso(v))}</td>')
            elif k in ("net_pnl", "fees"):
                cells.append(f'<td data-field="{k}" class="{_sign(v) if k == "net_pnl" else ""}">'
                             f"{escape(_f(v, '4'))}</td>")
            elif k in ("symbol", "side", "entry_reason", "exit_reason"):
                cells.append(f'<td data-field="{k}" class="text">{escape(str(v or "-"))}</td>')
            else:
                cells.append(f'<td data-field="{k}">{escape("-" if v is None else str(v))}</td>')
        rows.append(f"<tr>{''.join(cells)}</tr>")
    more = (f'<p class="note">{len(trades) - MAX_TRADE_ROWS:,} more trades are in the CSV/JSON trade list.</p>'
            if len(trades) > MAX_TRADE_ROWS else "")
    body = "".join(rows) or f'<tr><td class="text" colspan="{len(TRADE_COLUMNS)}">no trades</td></tr>'
    return (f'<div class="scroll"><table id="trades"><thead><tr>{head}</tr></thead><tbody>{body}</tbody>'
            f"</table></div>{more}")


def image_html(name: str, png: bytes, alt: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return f'<img id="plot-{escape(name.removesuffix(".png"))}" alt="{escape(alt)}" src="data:image/png;base64,{data}">'


def page(title: str, subtitle: str, sections: Sequence[tuple[str, str]]) -> str:
    """The whole document: ``sections`` are ``(heading, inner HTML)``."""
    body = "".join(f"<section><h2>{escape(h)}</h2>{inner}</section>" for h, inner in sections)
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{escape(title)}</title><style>{STYLE}</style></head><body><main>"
            f"<h1>{escape(title)}</h1><p class=\"sub\">{escape(subtitle)}</p>{body}</main></body></html>\n")


def plots_section(plots: Mapping[str, bytes]) -> str:
    return "".join(image_html(name, png, name.removesuffix(".png").replace("-", " ")) for name, png in plots.items())


def whatif_html(summary: Mapping[str, Any], digest: str, inputs: int, plots: Mapping[str, bytes],
                title: str = "Arbor what-if report") -> str:
    """The what-if report (``BacktestReport.summary()``, as in report.json) as one HTML page."""
    s, m = summary, summary["metrics"]
    o = m["overall"]
    note = m.get("annualised_note")
    figures = [
        ("trades", _f(s["trades"], "d")), ("win rate", _f(s["win_rate"], "%")),
        ("net realized PnL", _f(s["net_realized_pnl"], "4")), ("unrealized PnL", _f(s["unrealized_pnl"], "2")),
        ("final equity", _f(s["final_equity"], "2")),
        ("total return", "-" if m["total_return"] is None else f"{m['total_return']:.4%}"),
        ("CAGR", "-" if m["cagr"] is None else f"{m['cagr']:.2%}"), ("Sharpe", _f(m["sharpe"], "3")),
        ("Sortino", _f(m["sortino"], "3")), ("Calmar", _f(m["calmar"], "3")),
        ("max drawdown", f"{_f(m['max_drawdown'], '2')} ({m['max_drawdown_pct']:.3%})"),
        ("drawdown duration", f"{m['max_drawdown_duration_s']:,.0f} s" + ("" if m["recovered"] else ", not recovered")),
        ("exposure", _f(m["exposure"], "%")), ("profit factor", _f(o["profit_factor"], "3")),
        ("expectancy", _f(o["expectancy"], "4")), ("SQN", _f(o["sqn"], "3")),
        ("avg win / loss", f"{_f(o['avg_win'], '4')} / {_f(o['avg_loss'], '4')}"), ("fees", _f(o["fees"], "4")),
    ]
    for sym, change in m["market_change"]["by_symbol"].items():
        figures.append((f"market change {sym} (buy and hold)", f"{change:.3%}"))
    counts = [("decisions", s["decisions"]), ("actions by kind", s["actions_by_kind"]),
              ("risk denials by reason", s["denials_by_reason"])]
    counts_html = "".join(f"<p><b>{escape(k)}</b>: {escape(', '.join(f'{a} {b}' for a, b in v.items()) or '-')}</p>"
                          for k, v in counts)
    sub = (f"{inputs:,} inputs, {s['market_seconds']:,.1f} s of market, {s['market_frames']:,} frames "
           f"({s['decode_failures']:,} decode failures); decision digest {digest}")
    annualised = (f'<p class="note">{escape(note)}.</p>' if note else
                  f'<p class="note">Annualised from {m["periods"]} daily returns (sqrt(365), risk-free 0).</p>')
    sections = [
        ("Figures", figures_html(figures) + annualised),
        ("Plots", plots_section(plots)),
        ("By symbol", stats_table("by-symbol", "symbol", m["by_symbol"], o)),
        ("By side", stats_table("by-side", "side", m["by_side"])),
        ("By entry reason", stats_table("by-entry-reason", "entry reason", m["by_entry_reason"])),
        ("By exit reason", stats_table("by-exit-reason", "exit reason", m["by_exit_reason"])),
        (f"Trade list ({len(s['trade_list']):,})", trades_table(s["trade_list"])),
        ("Decisions", counts_html),
        ("Definitions", DEFINITIONS),
    ]
    return page(title, sub, sections)


def write_whatif_outputs(summary: Mapping[str, Any], digest: str, inputs: int, *, plots_dir: Path | None = None,
                         html: Path | None = None, starting_equity: float | None = None) -> list[Path]:
    """``--plots DIR`` (the PNGs) and ``--html FILE`` (the page embedding them) of a what-if; the paths written."""
    from arbor.actors.replay.plots import report_plots, write_plots

    plots = report_plots(summary["equity_curve"], summary.get("price_curve", {}), summary["trade_list"],
                         starting_equity)
    written = write_plots(plots, plots_dir) if plots_dir is not None else []
    if html is not None:
        html.parent.mkdir(parents=True, exist_ok=True)
        html.write_text(whatif_html(summary, digest, inputs, plots), encoding="utf-8")
        written.append(html)
    return written


def daily_html(summary: Mapping[str, Any], trades: Sequence[Mapping[str, Any]], plots: Mapping[str, bytes]) -> str:
    """``bin/report``'s daily summary of the live trade log (``summarize()``) as one HTML page;
    ``trades`` are that day's trades in the trade-list shape of the what-if (``TRADE_COLUMNS``)."""
    o = summary["overall"]
    figures = [
        ("trades", _f(o["trades"], "d")), ("win rate", _f(o["win_rate"], "%")), ("net PnL", _f(o["net_pnl"], "4")),
        ("realized PnL", _f(o["realized_pnl"], "4")), ("fees", _f(o["fees"], "4")),
        ("profit factor", _f(o["profit_factor"], "3")), ("expectancy", _f(o["expectancy"], "4")),
        ("SQN", _f(o["sqn"], "3")), ("avg win / loss", f"{_f(o['avg_win'], '4')} / {_f(o['avg_loss'], '4')}"),
        ("max drawdown (closed trades)", _f(o["max_drawdown"], "4")),
    ]
    sections = [
        ("Figures", figures_html(figures) + '<p class="note">From the closed trades of the day in the trade log; '
         "equity is the starting equity plus cumulative net PnL at each exit, and the price plots show the "
         "trades' own prices (the trade log holds no market prices).</p>"),
        ("Plots", plots_section(plots)),
        ("By symbol", stats_table("by-symbol", "symbol", summary["symbols"], o)),
        ("By side", stats_table("by-side", "side", {"LONG": summary["long"], "SHORT": summary["short"]})),
        ("By entry reason", stats_table("by-entry-reason", "entry reason", summary["entry_reasons"])),
        ("By exit reason", stats_table("by-exit-reason", "exit reason", summary["exit_reasons"])),
        (f"Trade list ({len(trades):,})", trades_table(trades)),
        ("Definitions", "<ul>" + "".join(f"<li><b>{escape(k)}</b>: {escape(v)}</li>"
                                         for k, v in summary["definitions"].items()) + "</ul>"),
    ]
    return page(f"Arbor daily summary {summary['date']}", "live trade log (bin/report)", sections)
