"""The report's plots as PNG, drawn with matplotlib's Agg backend (no display, no GUI toolkit).

One implementation for ``bin/replay whatif --plots`` and ``bin/report --plots``:

- ``equity.png``: the equity curve (quote), with the starting equity as a grey line;
- ``drawdown.png``: the fall from the running peak, as a fraction of that peak (<= 0);
- ``price-<SYMBOL>.png``: the symbol's price with each trade's entry (triangle: up for a long,
  down for a short) and exit (cross), a line joining the two, green for a winner, red for a loser.

Each function takes plain data (nanosecond timestamps, floats) and returns PNG bytes, so the HTML
report embeds the same images that ``--plots DIR`` writes.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

WIDTH_IN, HEIGHT_IN, DPI = 9.6, 3.4, 100  # 960 x 340 pixels
BLUE, GREEN, RED, GREY = "#1565c0", "#2e7d32", "#c62828", "#9e9e9e"

Curve = Sequence[tuple[int, float]] | Sequence[Sequence[Any]]


def _pyplot() -> Any:
    """pyplot on the Agg backend, imported on first use (matplotlib takes ~0.3 s to import)."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _times(ns: Sequence[int]) -> list[datetime]:
    return [datetime.fromtimestamp(t / 1e9, tz=UTC) for t in ns]


def _figure(title: str, ylabel: str) -> tuple[Any, Any]:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(WIDTH_IN, HEIGHT_IN), dpi=DPI)
    ax.set_title(title, loc="left", fontsize=11)
    ax.set_ylabel(ylabel)
    ax.grid(True, color="#e0e0e0", linewidth=0.6)
    ax.set_xlabel("time (UTC)")
    return fig, ax


def _png(fig: Any) -> bytes:
    import matplotlib.dates as mdates

    for ax in fig.axes:
        ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(ax.xaxis.get_major_locator(), tz=UTC))
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    _pyplot().close(fig)
    return buf.getvalue()


def _nothing(ax: Any, what: str) -> None:
    ax.text(0.5, 0.5, f"no {what} in this run", ha="center", va="center", transform=ax.transAxes, color=GREY)


def equity_png(curve: Curve, starting_equity: float | None = None, *, title: str = "Equity") -> bytes:
    """The equity curve; ``starting_equity`` draws a grey reference line."""
    fig, ax = _figure(title, "equity (quote)")
    if curve:
        ax.plot(_times([int(c[0]) for c in curve]), [float(c[1]) for c in curve], color=BLUE, linewidth=1.2)
        if starting_equity is not None:
            ax.axhline(starting_equity, color=GREY, linewidth=0.8, linestyle="--")
        ax.ticklabel_format(axis="y", useOffset=False, style="plain")
    else:
        _nothing(ax, "equity samples")
    return _png(fig)


def drawdown_series(curve: Curve) -> list[float]:
    """Each sample's fall from the running peak as a fraction of the peak (0 at a new high)."""
    out, peak = [], None
    for c in curve:
        e = float(c[1])
        peak = e if peak is None else max(peak, e)
        out.append((e - peak) / peak if peak else 0.0)
    return out


def drawdown_png(curve: Curve, *, title: str = "Drawdown") -> bytes:
    """The drawdown from the running peak, in percent, filled below zero."""
    fig, ax = _figure(title, "drawdown (%)")
    if curve:
        ts = _times([int(c[0]) for c in curve])
        dd = [100 * d for d in drawdown_series(curve)]
        ax.fill_between(ts, dd, 0, color=RED, alpha=0.25, linewidth=0)
        ax.plot(ts, dd, color=RED, linewidth=1.0)
        ax.set_ylim(top=0)
    else:
        _nothing(ax, "equity samples")
    return _png(fig)


def price_png(symbol: str, prices: Curve, trades: Sequence[Mapping[str, Any]], *,
              price_label: str = "mark price") -> bytes:
    """``symbol``'s price with each trade's entry and exit marked (see the module docstring)."""
    fig, ax = _figure(f"{symbol}: price, entries and exits", "price")
    if prices:
        ax.plot(_times([int(p[0]) for p in prices]), [float(p[1]) for p in prices], color=BLUE, linewidth=1.0,
                label=price_label)
    shown = {"long entry": False, "short entry": False, "exit": False}  # markers drawn (legend entries)
    for t in trades:
        if t.get("entry_ns") is None or t.get("entry_price") is None:
            continue
        long = t.get("side") == "LONG"
        key = "long entry" if long else "short entry"
        colour = GREEN if float(t.get("net_pnl") or 0) > 0 else RED
        entry = (_times([int(t["entry_ns"])])[0], float(t["entry_price"]))
        ax.scatter([entry[0]], [entry[1]], marker="^" if long else "v", s=60, color=colour, zorder=3,
                   edgecolors="black", linewidths=0.5)
        shown[key] = True
        if t.get("exit_ns") is not None and t.get("exit_price") is not None:
            exit_ = (_times([int(t["exit_ns"])])[0], float(t["exit_price"]))
            ax.scatter([exit_[0]], [exit_[1]], marker="X", s=55, color=colour, zorder=3, edgecolors="black",
                       linewidths=0.5)
            shown["exit"] = True
            ax.plot([entry[0], exit_[0]], [entry[1], exit_[1]], color=colour, linewidth=0.8, linestyle=":")
    if not prices and not any(shown.values()):
        _nothing(ax, "prices or trades")
    else:
        ax.ticklabel_format(axis="y", useOffset=False, style="plain")
        ax.legend(handles=_legend(ax, shown), loc="best", fontsize=8, framealpha=0.8)
    return _png(fig)


def _legend(ax: Any, shown: Mapping[str, bool]) -> list[Any]:
    """The price line, then neutral markers for what was drawn, then what the colours mean."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    handles = list(ax.get_legend_handles_labels()[0])
    markers = {"long entry": "^", "short entry": "v", "exit": "X"}
    handles += [Line2D([], [], marker=markers[k], linestyle="none", markerfacecolor="white", markeredgecolor="black",
                       label=k) for k, drawn in shown.items() if drawn]
    if any(shown.values()):
        handles += [Patch(color=GREEN, label="winning trade"), Patch(color=RED, label="losing trade")]
    return handles


def report_plots(curve: Curve, prices: Mapping[str, Curve], trades: Sequence[Mapping[str, Any]],
                 starting_equity: float | None = None, *, price_label: str = "mark price",
                 equity_title: str = "Equity") -> dict[str, bytes]:
    """Every plot of one run, by file name: equity, drawdown and one price plot per symbol."""
    symbols = sorted(set(prices) | {str(t["symbol"]) for t in trades})
    out = {"equity.png": equity_png(curve, starting_equity, title=equity_title),
           "drawdown.png": drawdown_png(curve)}
    for sym in symbols:
        out[f"price-{sym}.png"] = price_png(sym, prices.get(sym, []), [t for t in trades if t["symbol"] == sym],
                                            price_label=price_label)
    return out


def write_plots(plots: Mapping[str, bytes], out_dir: Path) -> list[Path]:
    """Write each plot into ``out_dir`` (created); return the paths written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, data in plots.items():
        path = out_dir / name
        path.write_bytes(data)
        paths.append(path)
    return paths
