"""The cascade labeler and wave detector: constructed sequences with known answers, the simulator's own
schedule, and the real recordings (deterministic, stable counts)."""

from __future__ import annotations

import json

import pytest
from arbor.adapters.sim.market import SimMarket
from arbor.analysis.cascades import CascadeParams, label_cascades, render_table, to_jsonl
from arbor.analysis.events import decode_frames
from arbor.analysis.tape import build_tapes
from arbor.messages import Side

from tests.analysis.helpers import MS, SEC, SIM_BTC, T0, Events


def _mid(t_s: float) -> float:
    """100 until 10 s, down to 98.5 at 16.4 s, back up to 100 at 26.4 s, then flat."""
    if t_s <= 10.0:
        return 100.0
    if t_s <= 16.4:
        return 100.0 - 1.5 * (t_s - 10.0) / 6.4
    if t_s <= 26.4:
        return 98.5 + 1.5 * (t_s - 16.4) / 10.0
    return 100.0


def _scenario() -> Events:
    """Quotes every 100 ms on ``_mid``; forced orders and taker trades in between (10 each)."""
    ev = Events()
    liq = [(10_050, Side.SELL), (10_550, Side.SELL), (11_050, Side.SELL), (16_050, Side.SELL), (16_450, Side.SELL),
           (40_050, Side.BUY), (40_550, Side.BUY)]
    trades = [(30_001 + 100 * i, Side.SELL) for i in range(6)] + [(50_051, Side.BUY)]
    items: list[tuple[int, int, Side]] = [(ms, 0, Side.BUY) for ms in range(0, 60_000, 100)] + [(ms, 1, side) for ms, side in liq] + \
        [(ms, 2, side) for ms, side in trades]
    for ms, what, side in sorted(items, key=lambda i: i[0]):
        mid = round(_mid((ms - ms % 100) / 1000), 6)  # the last quote's mid
        if what == 0:
            ev.quote(T0 + ms * MS, mid)
        elif what == 1:
            ev.liquidation(T0 + ms * MS, mid, 10.0, side)
        else:
            ev.trade(T0 + ms * MS, 100.0, 10.0, side)
    return ev


LIQ = CascadeParams(min_notional=0.0, min_count=3, wave_gap_s=2.0, cascade_gap_s=30.0)


def test_known_cascade_with_two_waves():
    """Five forced SELLs in two waves: one down cascade, its count, notional, move, excursion and recovery;
    the two BUYs stay below min_count."""
    labels = label_cascades(build_tapes(_scenario().events), LIQ)
    cascade, w1, w2 = labels
    assert (cascade.kind, cascade.direction, cascade.side, cascade.count, cascade.waves) == ("cascade", "down",
                                                                                             "SELL", 5, 2)
    assert (cascade.start_ns, cascade.end_ns) == (T0 + 10_050 * MS, T0 + 16_450 * MS)
    prices = [_mid(t) for t in (10.0, 10.5, 11.0, 16.0, 16.4)]
    assert cascade.notional == pytest.approx(10.0 * sum(prices))
    assert cascade.price_start == pytest.approx(100.0)
    assert cascade.price_end == pytest.approx(98.5)
    assert cascade.move_bps == pytest.approx(-150.0)
    assert cascade.mae_bps == pytest.approx(150.0)
    assert cascade.extreme_ns == T0 + 16_400 * MS
    assert cascade.recover_s == pytest.approx(5.0, abs=0.15)  # half of 1.5 back at 0.15 per second
    assert (w1.wave, w1.count, w1.start_ns, w1.end_ns) == (1, 3, T0 + 10_050 * MS, T0 + 11_050 * MS)
    assert (w2.wave, w2.count, w2.start_ns, w2.end_ns) == (2, 2, T0 + 16_050 * MS, T0 + 16_450 * MS)
    assert w1.peak_window_notional == pytest.approx(10.0 * sum(prices[:3]))
    assert cascade.peak_window_notional == pytest.approx(10.0 * sum(prices))  # 6.4 s: all in the 10 s window


def test_gaps_and_thresholds_are_parameters():
    """A shorter cascade gap splits the cascade in two; a notional floor drops what is below it;
    min_count 2 admits the BUY pair (an up cascade)."""
    tapes = build_tapes(_scenario().events)
    split = [lb for lb in label_cascades(tapes, CascadeParams(min_notional=0, min_count=2, wave_gap_s=2,
                                                             cascade_gap_s=3)) if lb.wave is None]
    assert [(lb.direction, lb.count) for lb in split] == [("down", 3), ("down", 2), ("up", 2)]
    assert label_cascades(tapes, CascadeParams(min_notional=10_000.0, min_count=1)) == []


def test_trade_proxy_counts_aggressive_trades_while_the_burst_window_is_above_threshold():
    """--source trades: six taker SELLs of 1,000 each; with a 2,500 burst threshold the 3rd to 6th count."""
    tapes = build_tapes(_scenario().events)
    params = CascadeParams(source="trades", burst_notional=2_500.0, min_notional=0.0, min_count=3)
    [cascade, wave] = label_cascades(tapes, params)
    assert (cascade.source, cascade.direction, cascade.count, cascade.notional) == ("trades", "down", 4, 4000.0)
    assert cascade.start_ns == T0 + 30_200 * MS + MS
    assert cascade.peak_window_notional == 6000.0
    assert wave.count == 4


def test_labels_are_deterministic_json_lines_and_a_table():
    """The same tapes and parameters give byte-identical JSON lines; every line parses; the table has a row each."""
    a = to_jsonl(label_cascades(build_tapes(_scenario().events), LIQ))
    b = to_jsonl(label_cascades(build_tapes(_scenario().events), LIQ))
    assert a == b
    rows = [json.loads(line) for line in a.splitlines()]
    assert [r["kind"] for r in rows] == ["cascade", "wave", "wave"]
    assert rows[0]["start"] == "2023-11-14T22:13:30.050Z" and rows[0]["duration_s"] == 6.4
    table = render_table(label_cascades(build_tapes(_scenario().events), LIQ))
    assert len(table.splitlines()) == 4 and "down" in table


@pytest.mark.parametrize(("bad", "message"), [
    ({"source": "bids"}, "source"), ({"min_count": 0}, "min_count"), ({"wave_gap_s": float("nan")}, "wave_gap_s"),
    ({"cascade_gap_s": 1.0, "wave_gap_s": 2.0}, "cascade_gap_s"), ({"recover_frac": 0.0}, "recover_frac"),
])
def test_bad_thresholds_are_named(bad, message):
    with pytest.raises(ValueError, match=message):
        CascadeParams(**bad).validate()


def test_simulated_cascades_are_found_as_scheduled():
    """The simulator's schedule is the ground truth: every cascade it scheduled is labeled, with its side
    and its number of forced orders, and nothing else is."""
    until = T0 + 1800 * SEC
    market = SimMarket([SIM_BTC], seed=11, start_ns=T0)
    frames = ((ts, "sim", sym, payload) for ts, sym, payload in market.frames(until_ns=until))
    events, _ = decode_frames(frames)
    labels = label_cascades(build_tapes(events), CascadeParams(min_notional=0.0, min_count=1, wave_gap_s=3.0,
                                                               cascade_gap_s=10.0))
    found = [(lb.side, lb.count, lb.start_ns // SEC) for lb in labels if lb.wave is None]
    scheduled = [(c.side, c.orders, c.start_ns // SEC) for span in market.regime_spans("BTCUSDT", until)
                 for c in span.cascades if c.start_ns < until - 30 * SEC]
    assert len(scheduled) >= 4
    assert found[:len(scheduled)] == scheduled
    assert all(lb.direction == ("down" if lb.side == "SELL" else "up") for lb in labels)
    assert all(lb.mae_bps is not None and lb.mae_bps >= 0 for lb in labels)


def test_recordings_hold_no_liquidations(usdm_tapes):
    """The HBT recordings carry bookTicker, trade and depth only: zero liquidations, so zero cascades."""
    assert {s: len(t.liquidations) for s, t in usdm_tapes.items()} == {"BTCUSDT": 0, "ETHUSDT": 0}
    assert {s: len(t.trades) for s, t in usdm_tapes.items()} == {"BTCUSDT": 21313, "ETHUSDT": 14076}
    assert label_cascades(usdm_tapes, CascadeParams()) == []


def test_trade_proxy_on_the_recordings_is_stable(usdm_tapes):
    """The proxy finds the same labels on every run (counts pinned; the docs quote them)."""
    params = CascadeParams(source="trades", burst_notional=5_000_000.0, min_notional=10_000_000.0)
    labels = label_cascades(usdm_tapes, params)
    assert to_jsonl(labels) == to_jsonl(label_cascades(usdm_tapes, params))
    summary = [(lb.symbol, lb.direction, lb.count, lb.waves) for lb in labels if lb.wave is None]
    assert summary == EXPECTED_PROXY


EXPECTED_PROXY = [("BTCUSDT", "down", 2712, 3), ("BTCUSDT", "up", 3115, 5)]  # ETHUSDT never reaches 5M
