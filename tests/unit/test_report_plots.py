"""The report's exit prices and price series, its plots (matplotlib) and its HTML page, on hand-made runs."""

from __future__ import annotations

import io
from decimal import Decimal

from arbor.actors.replay.html_report import whatif_html
from arbor.actors.replay.plots import drawdown_series, price_png, report_plots
from arbor.actors.replay.report import BacktestReport
from arbor.messages import Direction, Envelope, MandateSet, OrderFilled, PositionChanged, PositionState
from arbor.messages.base import Regime, Side
from PIL import Image

D = Decimal
S = 1_000_000_000


def env(payload, sender: str, ts: int) -> Envelope:
    return Envelope(msg_id=ts, sender=sender, receiver="x", ts_event_ns=ts, ts_recv_ns=ts, causation_id=0,
                    payload=payload)


def mandates(ts: int, mark: str) -> Envelope:
    return env(MandateSet(symbol="BTCUSDT", cycle=ts, ts_event_ns=ts, regime=Regime.RANGING, strategy="s",
                          mandates=(), mark_price=D(mark), data_ts_ns=ts), "BTCUSDT/regime", ts)


def fill(side: Side, qty: str, price: str, ts: int) -> Envelope:
    return env(OrderFilled(symbol="BTCUSDT", client_order_id=f"c{ts}", venue_order_id="v", fill_id=f"f{ts}",
                           side=side, qty=D(qty), price=D(price), fee=D(0), is_maker=False, cum_qty=D(qty),
                           leaves_qty=D(0), ts_event_ns=ts), "BTCUSDT/venue", ts)


def position(state: PositionState, qty: str, avg: str | None, realized: str, ts: int) -> Envelope:
    return env(PositionChanged(symbol="BTCUSDT", state=state, direction=None if state is PositionState.FLAT
                               else Direction.LONG, qty=D(qty), avg_entry_price=D(avg) if avg else None,
                               realized_pnl=D(realized), fees=D(0), ts_event_ns=ts, cause="<script>x</script>"),
               "BTCUSDT/position", ts)


def one_trade_run() -> dict:
    """A long of 2 bought at 100, sold 1 at 110 and 1 at 112 (exit price 111), marks each half second."""
    r = BacktestReport(D(1000))
    for i, mark in enumerate(("100", "101", "105", "108", "110", "111")):
        r.external(env(None, "feed", i * S // 2))
        r.emitted(mandates(i * S // 2, mark), ())
    r.emitted(fill(Side.BUY, "2", "100", S), ())
    r.emitted(position(PositionState.OPEN, "2", "100", "0", S), ())
    r.emitted(fill(Side.SELL, "1", "110", 2 * S), ())
    r.emitted(position(PositionState.REDUCING, "1", "100", "10", 2 * S), ())
    r.emitted(fill(Side.SELL, "1", "112", 2 * S + 1), ())
    r.emitted(position(PositionState.FLAT, "0", None, "22", 2 * S + 1), ())
    return r.summary()


def size(png: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(png)) as im:
        im.load()
        return im.size


def test_exit_price_is_the_average_of_the_closing_fills() -> None:
    """Two closing fills of 1 at 110 and 112 give an exit price of 111; the entry price is the fill's."""
    (t,) = one_trade_run()["trade_list"]
    assert (t["side"], t["entry_price"], t["exit_price"], t["net_pnl"]) == ("LONG", "100", "111", "22")


def test_price_curve_keeps_the_first_mark_of_each_second() -> None:
    """Marks every half second are sampled once per second."""
    assert one_trade_run()["price_curve"] == {"BTCUSDT": [[0, 100.0], [S, 105.0], [2 * S, 110.0]]}


def test_drawdown_series_is_the_fall_from_the_running_peak() -> None:
    """0 at each new high, (equity - peak) / peak below it."""
    assert drawdown_series([(0, 100.0), (1, 110.0), (2, 99.0), (3, 121.0)]) == [0.0, 0.0, -0.1, 0.0]


def test_plots_decode_at_their_size_with_and_without_data() -> None:
    """Every plot of a run, and a price plot with nothing to draw, is a whole PNG of 960 x 340."""
    s = one_trade_run()
    plots = report_plots(s["equity_curve"], s["price_curve"], s["trade_list"], 1000.0)
    assert sorted(plots) == ["drawdown.png", "equity.png", "price-BTCUSDT.png"]
    assert {size(p) for p in plots.values()} == {(960, 340)}
    assert size(price_png("ETHUSDT", [], [])) == (960, 340)


def test_html_page_is_self_contained_and_escapes_text() -> None:
    """The page embeds its plots as data URIs, shows the trade count, and escapes a reason's markup."""
    s = one_trade_run()
    plots = report_plots(s["equity_curve"], s["price_curve"], s["trade_list"], 1000.0)
    html = whatif_html(s, "ab" * 32, 12, plots)
    assert html.count('src="data:image/png;base64,') == 3
    assert '<tr data-key="all" class="all"><td class="text">all</td><td data-field="trades" class="">1</td>' in html
    assert "<script" not in html and "&lt;script&gt;" in html
