"""The seeded market simulator: determinism, wire shape, microstructure, regimes and cascades."""

from __future__ import annotations

import json
import math
from collections import defaultdict
from decimal import Decimal as D
from itertools import pairwise

import pytest
from arbor.adapters.decoding import decoder_for
from arbor.adapters.sim import SimMarket, SimRegime, SimSymbol
from arbor.config.errors import ConfigError

START = 1_723_161_255_000_000_000
S = 1_000_000_000
BTC = SimSymbol(symbol="BTCUSDT", start_price=D("60000"), tick_size=D("0.10"), qty_step=D("0.001"))
ETH = SimSymbol(symbol="ETHUSDT", start_price=D("2680"), tick_size=D("0.01"), qty_step=D("0.001"))

REQUIRED = {
    "bookTicker": {"e", "u", "s", "b", "B", "a", "A", "T", "E"},
    "trade": {"e", "E", "T", "s", "t", "p", "q", "X", "m"},
    "depthUpdate": {"e", "E", "T", "s", "U", "u", "pu", "b", "a"},
    "markPriceUpdate": {"e", "E", "s", "p", "i", "P", "r", "T"},
    "forceOrder": {"e", "E", "o"},
}
STREAM_SUFFIX = {
    "bookTicker": "@bookTicker",
    "trade": "@trade",
    "depthUpdate": "@depth@100ms",
    "markPriceUpdate": "@markPrice@1s",
    "forceOrder": "@forceOrder",
}
FORCE_ORDER_FIELDS = {"s", "S", "o", "f", "q", "p", "ap", "X", "l", "z", "T"}


def frames(symbols=(BTC,), seed=1, seconds=60):
    return list(SimMarket(list(symbols), seed=seed, start_ns=START).frames(until_ns=START + seconds * S))


@pytest.fixture(scope="module")
def hour():
    """One simulated hour of BTCUSDT: (ts_ns, data dict) plus the market that made it."""
    market = SimMarket([BTC], seed=11, start_ns=START)
    out = [(ts, json.loads(p)["data"]) for ts, _sym, p in market.frames(until_ns=START + 3600 * S)]
    return market, out


def on_grid(text: str, step: D) -> bool:
    return D(text) % step == 0


def test_same_seed_gives_identical_bytes():
    """Two runs with the same seed and start produce byte-identical frames."""
    assert frames((BTC, ETH), seed=5) == frames((BTC, ETH), seed=5)


def test_different_seed_gives_different_frames():
    """A different seed changes the frames."""
    assert frames(seed=5) != frames(seed=6)


def test_symbols_are_independent():
    """A symbol's frames are the same whether or not other symbols run beside it."""
    together = [f for f in frames((BTC, ETH), seed=3) if f[1] == "BTCUSDT"]
    alone = frames((BTC,), seed=3)
    assert together == alone


def test_frames_are_in_time_order_across_symbols():
    """Timestamps never decrease across the merged symbols."""
    out = frames((BTC, ETH), seconds=120)
    assert {sym for _, sym, _ in out} == {"BTCUSDT", "ETHUSDT"}
    assert all(a[0] <= b[0] for a, b in pairwise(out))


def test_until_bounds_the_run():
    """No frame is later than ``until_ns``, and the run reaches close to it."""
    out = frames(seconds=30)
    assert out[-1][0] <= START + 30 * S
    assert out[-1][0] > START + 29 * S


def test_every_frame_has_the_binance_usdm_shape():
    """Every frame is a combined-stream envelope whose data carries the event type's fields."""
    market = SimMarket([BTC], seed=11, start_ns=START)
    for _ts, sym, payload in market.frames(until_ns=START + 600 * S):
        frame = json.loads(payload)
        assert set(frame) == {"stream", "data"}
        data = frame["data"]
        kind = data["e"]
        assert set(data) == REQUIRED[kind]
        assert frame["stream"] == sym.lower() + STREAM_SUFFIX[kind]
        if kind == "forceOrder":
            assert set(data["o"]) == FORCE_ORDER_FIELDS and data["o"]["s"] == sym
        else:
            assert data["s"] == sym
        assert b" " not in payload  # compact, as the venue sends it


def test_frames_decode_with_the_usdm_decoder():
    """The runtime's decoder for venue "sim" reads every frame without error."""
    decode = decoder_for("sim")
    for _ts, _sym, payload in frames((BTC, ETH), seconds=300):
        assert len(decode(payload)) == 1


def test_event_times_match_the_frame_time(hour):
    """The venue times E/T in ms agree with the yielded timestamp."""
    _, out = hour
    for ts, data in out:
        ms = ts // 1_000_000
        assert data["E"] in (ms, ms + 1)
        if data["e"] in ("bookTicker", "trade", "depthUpdate"):
            assert data["T"] == ms


def test_depth_update_ids_are_continuous(hour):
    """Each depthUpdate's pu is the previous update's u, and U..u is a non-empty range after it."""
    _, out = hour
    depth = [d for _, d in out if d["e"] == "depthUpdate"]
    assert len(depth) > 1000
    for prev, cur in pairwise(depth):
        assert cur["pu"] == prev["u"]
        assert cur["pu"] < cur["U"] <= cur["u"]


def test_depth_rebuilds_an_uncrossed_book(hour):
    """Applying the depth updates in order never leaves the best bid at or above the best ask."""
    _, out = hour
    bids: dict[D, D] = {}
    asks: dict[D, D] = {}
    for _, d in out:
        if d["e"] != "depthUpdate":
            continue
        for side, levels in ((bids, d["b"]), (asks, d["a"])):
            for p, q in levels:
                if D(q) == 0:
                    side.pop(D(p), None)
                else:
                    side[D(p)] = D(q)
        assert max(bids) < min(asks)


def test_trade_and_update_ids_increase(hour):
    """Trade ids are gap-free and bookTicker update ids strictly increase."""
    _, out = hour
    trades = [d["t"] for _, d in out if d["e"] == "trade"]
    assert trades == list(range(trades[0], trades[0] + len(trades)))
    book = [d["u"] for _, d in out if d["e"] == "bookTicker"]
    assert all(a < b for a, b in pairwise(book))


def test_prices_and_sizes_are_on_the_grid(hour):
    """Every price is on the tick grid and every quantity on the qty step."""
    _, out = hour
    tick, step = BTC.tick_size, BTC.qty_step
    for _, d in out:
        e = d["e"]
        if e == "bookTicker":
            prices, qtys = [d["b"], d["a"]], [d["B"], d["A"]]
        elif e == "trade":
            prices, qtys = [d["p"]], [d["q"]]
        elif e == "depthUpdate":
            prices = [p for p, _ in d["b"] + d["a"]]
            qtys = [q for _, q in d["b"] + d["a"]]
        elif e == "forceOrder":
            o = d["o"]
            prices, qtys = [o["p"], o["ap"]], [o["q"], o["l"], o["z"]]
        else:
            continue
        assert all(on_grid(p, tick) and D(p) > 0 for p in prices)
        assert all(on_grid(q, step) for q in qtys)
        assert all(len(p.split(".")[1]) == 2 for p in prices)  # printed like the venue: "61800.20"


def test_spread_is_one_to_three_ticks(hour):
    """Best ask minus best bid is 1, 2 or 3 ticks, and every width occurs."""
    _, out = hour
    widths = {(D(d["a"]) - D(d["b"])) / BTC.tick_size for _, d in out if d["e"] == "bookTicker"}
    assert widths == {1, 2, 3}


def test_trades_carry_both_aggressor_sides(hour):
    """Prints are buyer- and seller-initiated in comparable shares, each of at least one step."""
    _, out = hour
    trades = [d for _, d in out if d["e"] == "trade"]
    share = sum(d["m"] for d in trades) / len(trades)
    assert 0.3 < share < 0.7
    assert all(D(d["q"]) >= BTC.qty_step for d in trades)


def test_mark_price_once_a_second(hour):
    """A markPriceUpdate arrives at every whole second, and only then."""
    _, out = hour
    marks = [ts for ts, d in out if d["e"] == "markPriceUpdate"]
    assert marks == [START + k * S for k in range(1, 3601)]


def test_volatile_regime_moves_more_than_ranging(hour):
    """One-second mid returns are far more volatile in VOLATILE spans than in RANGING ones."""
    market, out = hour
    spans = market.regime_spans("BTCUSDT", START + 3600 * S)
    mid_at: dict[int, float] = {}
    for ts, d in out:
        if d["e"] == "bookTicker":
            mid_at[ts // S] = (float(d["b"]) + float(d["a"])) / 2
    returns = defaultdict(list)
    for sec in sorted(mid_at):
        if sec - 1 in mid_at:
            t = sec * S
            span = next(s for s in spans if s.start_ns <= t < s.end_ns)
            if t - span.start_ns > 5 * S and not any(c.start_ns - S <= t <= c.start_ns + 20 * S for c in span.cascades):
                returns[span.regime].append(math.log(mid_at[sec] / mid_at[sec - 1]))

    def stdev(xs):
        mu = sum(xs) / len(xs)
        return math.sqrt(sum((x - mu) ** 2 for x in xs) / len(xs))

    assert len(returns[SimRegime.VOLATILE]) > 50 and len(returns[SimRegime.RANGING]) > 300
    assert stdev(returns[SimRegime.VOLATILE]) > 2.5 * stdev(returns[SimRegime.RANGING])


def test_regime_spans_last_tens_of_seconds_to_minutes(hour):
    """Every regime occurs in an hour, each span lasting 10 s to 10 min, spans back to back."""
    market, _ = hour
    spans = market.regime_spans("BTCUSDT", START + 3600 * S)
    assert {s.regime for s in spans} == set(SimRegime)
    assert all(10 * S <= s.end_ns - s.start_ns <= 600 * S for s in spans)
    assert all(a.end_ns == b.start_ns for a, b in pairwise(spans))


def test_liquidation_cascades_are_one_sided_bursts_that_move_price(hour):
    """A cascade is several forced orders of one side within seconds, moving the price their way."""
    market, out = hour
    cascades = [c for s in market.regime_spans("BTCUSDT", START + 3600 * S) for c in s.cascades]
    assert cascades
    forced = [(ts, d["o"]) for ts, d in out if d["e"] == "forceOrder"]
    assert len(forced) >= 4 * len([c for c in cascades if c.start_ns < START + 3590 * S])
    for c in cascades[:-1]:
        burst = [o for ts, o in forced if c.start_ns <= ts <= c.start_ns + 15 * S]
        assert len(burst) >= c.orders
        assert {o["S"] for o in burst[: c.orders]} == {c.side}
        first, last = D(burst[0]["ap"]), D(burst[c.orders - 1]["ap"])
        assert (last > first) if c.side == "BUY" else (last < first)


def test_duplicate_symbols_are_a_config_error():
    """Two specs of one symbol are refused with a key naming the list."""
    with pytest.raises(ConfigError) as err:
        SimMarket([BTC, BTC], seed=1, start_ns=START)
    assert err.value.key == "sim.symbols"


def test_bad_symbol_spec_names_the_field():
    """A non-positive tick size is a ConfigError naming the symbol and field."""
    bad = SimSymbol(symbol="BTCUSDT", start_price=D("60000"), tick_size=D("0"), qty_step=D("0.001"))
    with pytest.raises(ConfigError) as err:
        SimMarket([bad], seed=1, start_ns=START)
    assert err.value.key == "sim.symbols.BTCUSDT.tick_size"
