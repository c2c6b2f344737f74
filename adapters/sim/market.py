"""A seeded market simulator that speaks the Binance USD-M combined-stream wire format.

``SimMarket(symbols, seed, start_ns).frames()`` yields ``(ts_ns, SYMBOL, payload)`` exactly as a
websocket client of ``fstream.binance.com/stream`` would receive them: bookTicker, trade,
depthUpdate (``U``/``u``/``pu`` continuous), forceOrder and a markPriceUpdate every second.

Each symbol has two private ``random.Random`` streams seeded from ``sha256(seed, symbol, purpose)``:
one draws the *schedule* (regime spans and liquidation cascades), the other the events. The
schedule is therefore known without generating a single frame (``regime_spans``), and a symbol's
frames never depend on which other symbols run beside it. The same seed gives the same bytes.

The mid price follows a Markov chain of regimes (trending up/down, ranging with mean reversion,
volatile bursts); quotes sit on the tick grid with a 1-3 tick spread; trades print at the bid or
ask with the aggressor's side; a cascade is a burst of forced orders on one side, each pushing the
price further the same way.
"""

from __future__ import annotations

import hashlib
import heapq
import math
import random
from collections.abc import Iterator, Sequence
from decimal import Decimal
from enum import Enum

import attrs
from arbor.config.errors import ConfigError

_NS = 1_000_000_000
_NS_PER_MS = 1_000_000
_FUNDING_INTERVAL_MS = 8 * 3600 * 1000


@attrs.frozen(kw_only=True)
class SimSymbol:
    """One simulated perpetual. ``base_vol`` is the per-second log volatility of the mid.

    ``top_notional`` sets the typical size shown at the best bid/ask (in quote currency) and
    ``trade_notional`` the typical size of one print.
    """

    symbol: str
    start_price: Decimal
    tick_size: Decimal
    qty_step: Decimal
    events_per_s: float = 20.0
    base_vol: float = 0.0004
    top_notional: float = 150_000.0
    trade_notional: float = 3_000.0

    def validate(self) -> None:
        key = f"sim.symbols.{self.symbol or '?'}"
        if not self.symbol or not self.symbol.isalnum() or self.symbol != self.symbol.upper():
            raise ConfigError(f"{key}.symbol", "an upper-case alphanumeric symbol such as BTCUSDT")
        for name in ("start_price", "tick_size", "qty_step"):
            value = getattr(self, name)
            if not isinstance(value, Decimal) or not value.is_finite() or value <= 0:
                raise ConfigError(f"{key}.{name}", "a positive finite Decimal")
        if self.start_price < self.tick_size * 10:
            raise ConfigError(f"{key}.start_price", "must be at least 10 ticks")
        for name in ("events_per_s", "base_vol", "top_notional", "trade_notional"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
                raise ConfigError(f"{key}.{name}", "a positive finite number")


class SimRegime(str, Enum):
    TREND_UP = "TREND_UP"
    TREND_DOWN = "TREND_DOWN"
    RANGING = "RANGING"
    VOLATILE = "VOLATILE"


@attrs.frozen(kw_only=True)
class Cascade:
    """A liquidation cascade: ``orders`` forced orders of ``side`` from ``start_ns`` on."""

    start_ns: int
    side: str  # "SELL": longs liquidated, price falls; "BUY": shorts liquidated, price rises
    orders: int


@attrs.frozen(kw_only=True)
class RegimeSpan:
    """The market's regime over ``[start_ns, end_ns)`` and the cascades that start in it."""

    start_ns: int
    end_ns: int
    regime: SimRegime
    cascades: tuple[Cascade, ...] = ()


@attrs.frozen
class _RegimeParams:
    drift: float  # log drift per second, in units of base_vol
    vol: float  # multiple of base_vol
    kappa: float  # mean reversion per second towards the span's opening mid
    rate: float  # multiple of events_per_s
    spread_cdf: tuple[float, float]  # P(spread <= 1 tick), P(spread <= 2 ticks)
    buy_share: float  # probability a print is buyer-initiated
    mean_s: float  # mean duration
    cascades_per_s: float


_PARAMS: dict[SimRegime, _RegimeParams] = {
    SimRegime.RANGING: _RegimeParams(0.0, 0.6, 0.05, 0.8, (0.75, 0.95), 0.5, 150.0, 1 / 1800),
    SimRegime.TREND_UP: _RegimeParams(0.15, 1.0, 0.0, 1.0, (0.6, 0.9), 0.6, 90.0, 1 / 900),
    SimRegime.TREND_DOWN: _RegimeParams(-0.15, 1.0, 0.0, 1.0, (0.6, 0.9), 0.4, 90.0, 1 / 900),
    SimRegime.VOLATILE: _RegimeParams(0.0, 3.0, 0.0, 2.0, (0.25, 0.65), 0.5, 30.0, 1 / 60),
}

# Markov chain over regimes: from -> ((to, weight), ...)
_TRANSITIONS: dict[SimRegime, tuple[tuple[SimRegime, float], ...]] = {
    SimRegime.RANGING: ((SimRegime.TREND_UP, 0.35), (SimRegime.TREND_DOWN, 0.35), (SimRegime.VOLATILE, 0.30)),
    SimRegime.TREND_UP: ((SimRegime.RANGING, 0.60), (SimRegime.VOLATILE, 0.25), (SimRegime.TREND_DOWN, 0.15)),
    SimRegime.TREND_DOWN: ((SimRegime.RANGING, 0.60), (SimRegime.VOLATILE, 0.25), (SimRegime.TREND_UP, 0.15)),
    SimRegime.VOLATILE: ((SimRegime.RANGING, 0.50), (SimRegime.TREND_UP, 0.25), (SimRegime.TREND_DOWN, 0.25)),
}
_MIN_SPAN_S = 10.0
_MAX_SPAN_S = 600.0


def stable_seed(seed: int, symbol: str, purpose: str) -> int:
    """A 64-bit seed from ``seed``, ``symbol`` and ``purpose`` that is the same in every process."""
    digest = hashlib.sha256(f"{seed}/{symbol}/{purpose}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


def _schedule(spec: SimSymbol, seed: int, start_ns: int) -> Iterator[RegimeSpan]:
    """The endless regime spans of one symbol, drawn from its own schedule stream."""
    rng = random.Random(stable_seed(seed, spec.symbol, "schedule"))
    regime = SimRegime.RANGING
    t = start_ns
    while True:
        p = _PARAMS[regime]
        seconds = min(_MAX_SPAN_S, _MIN_SPAN_S + rng.expovariate(1.0 / p.mean_s))
        end = t + int(seconds * _NS)
        cascades = []
        c = t + int(rng.expovariate(p.cascades_per_s) * _NS)
        while c < end:
            if regime is SimRegime.TREND_UP:
                side = "BUY" if rng.random() < 0.75 else "SELL"
            elif regime is SimRegime.TREND_DOWN:
                side = "SELL" if rng.random() < 0.75 else "BUY"
            else:
                side = "SELL" if rng.random() < 0.5 else "BUY"
            cascades.append(Cascade(start_ns=c, side=side, orders=rng.randint(4, 12)))
            c += int((20.0 + rng.expovariate(p.cascades_per_s)) * _NS)
        yield RegimeSpan(start_ns=t, end_ns=end, regime=regime, cascades=tuple(cascades))
        r = rng.random() * sum(w for _, w in _TRANSITIONS[regime])
        for nxt, w in _TRANSITIONS[regime]:  # the list is taken once: rebinding regime is safe
            regime = nxt
            r -= w
            if r < 0:
                break
        t = end


def _decimals(step: Decimal) -> int:
    exponent = step.normalize().as_tuple().exponent
    return max(0, -int(exponent))


def _formatter(decimals: int):
    """Format an integer count of ``10**-decimals`` as a fixed-point decimal string."""
    if decimals == 0:
        return str
    scale = 10**decimals

    def fmt(units: int) -> str:
        q, r = divmod(units, scale)
        return f"{q}.{r:0{decimals}d}"

    return fmt


def _symbol_frames(spec: SimSymbol, idx: int, seed: int, start_ns: int) -> Iterator[tuple[int, int, int, str, bytes]]:
    """Frames of one symbol as ``(ts_ns, idx, seq, symbol, payload)``, time non-decreasing."""
    rng = random.Random(stable_seed(seed, spec.symbol, "events"))
    rand = rng.random
    gauss = rng.gauss
    expo = rng.expovariate
    sym = spec.symbol
    low = sym.lower()

    # Prices are integer ticks; printed as integer units of 10**-decimals.
    pdec = max(_decimals(spec.tick_size), 2 if spec.tick_size < 1 else 0)
    tick_units = int(spec.tick_size * 10**pdec)
    fmt_p = _formatter(pdec)
    qdec = _decimals(spec.qty_step)
    step_units = int(spec.qty_step * 10**qdec)
    fmt_q = _formatter(qdec)
    zero_q = fmt_q(0)
    tick = float(spec.tick_size)
    start_px = float(spec.start_price)
    top_steps = max(5.0, spec.top_notional / start_px / float(spec.qty_step))
    trade_steps = max(1.0, spec.trade_notional / start_px / float(spec.qty_step))
    sigma = spec.base_vol
    base_rate = spec.events_per_s

    def price(ticks: int) -> str:
        return fmt_p(ticks * tick_units)

    def qty(steps: int) -> str:
        return fmt_q(steps * step_units)

    s_book = f'{{"stream":"{low}@bookTicker","data":{{"e":"bookTicker","u":'.encode()
    s_trade = f'{{"stream":"{low}@trade","data":{{"e":"trade","E":'.encode()
    s_depth = f'{{"stream":"{low}@depth@100ms","data":{{"e":"depthUpdate","E":'.encode()
    s_mark = f'{{"stream":"{low}@markPrice@1s","data":{{"e":"markPriceUpdate","E":'.encode()
    s_force = f'{{"stream":"{low}@forceOrder","data":{{"e":"forceOrder","E":'.encode()

    schedule = _schedule(spec, seed, start_ns)
    span = next(schedule)
    p = _PARAMS[span.regime]
    cascades = list(span.cascades)
    anchor = start_px

    mid = start_px  # float mid in price units
    t = start_ns
    seq = 0
    update_id = 5_000_000_000_000 + int(rand() * 1e11)
    trade_id = 4_000_000_000 + int(rand() * 1e9)
    depth_u = update_id
    next_mark = (start_ns // _NS + 1) * _NS
    funding = 0.0001
    liq_left = 0
    liq_side = 1  # +1: forced buys (price up), -1: forced sells
    next_liq = 0
    bids: dict[int, int] = {}  # levels published by depth updates: tick -> qty steps
    asks: dict[int, int] = {}
    bid_sz = ask_sz = 0
    last_bid = last_ask = -1

    def book(m: float, spread_cdf: tuple[float, float]) -> tuple[int, int]:
        u = rand()
        spread = 1 if u < spread_cdf[0] else (2 if u < spread_cdf[1] else 3)
        b = int(m / tick - spread / 2.0)
        if b < 1:
            b = 1
        return b, b + spread

    bid, ask = book(mid, p.spread_cdf)

    while True:
        # The next thing to happen: an ordinary event, the mark tick, a forced order, a new span.
        rate = base_rate * p.rate * (3.0 if liq_left else 1.0)
        t_evt = t + 1 + int(expo(rate) * _NS)
        kind = 0  # 0 ordinary, 1 mark, 2 liquidation, 3 regime change, 4 cascade start
        t_next = t_evt
        if next_mark <= t_next:
            t_next, kind = next_mark, 1
        if liq_left and next_liq <= t_next:
            t_next, kind = next_liq, 2
        if cascades and cascades[0].start_ns <= t_next:
            t_next, kind = max(t, cascades[0].start_ns), 4
        if span.end_ns <= t_next:
            t_next, kind = max(t, span.end_ns), 3

        # Move the mid over the elapsed time.
        dt = (t_next - t) / _NS
        if dt > 0:
            r = (p.drift * sigma - p.kappa * (mid / anchor - 1.0)) * dt
            mid *= 1.0 + r + p.vol * sigma * math.sqrt(dt) * gauss(0.0, 1.0)
            if mid < tick * 10:
                mid = tick * 10
        t = t_next
        ms = t // _NS_PER_MS

        if kind == 3:
            span = next(schedule)
            p = _PARAMS[span.regime]
            cascades = list(span.cascades)
            anchor = mid
            continue
        if kind == 4:
            c = cascades.pop(0)
            liq_left = c.orders
            liq_side = 1 if c.side == "BUY" else -1
            next_liq = t
            continue

        bid, ask = book(mid, p.spread_cdf)
        if bid != last_bid:
            bid_sz = 1 + int(expo(1.0 / top_steps))
        if ask != last_ask:
            ask_sz = 1 + int(expo(1.0 / top_steps))
        last_bid, last_ask = bid, ask

        if kind == 1:
            next_mark += _NS
            funding += gauss(0.0, 0.000002)
            funding = min(0.003, max(-0.003, funding))
            index = mid * (1.0 - funding * 0.5)
            next_funding = (ms // _FUNDING_INTERVAL_MS + 1) * _FUNDING_INTERVAL_MS
            data = (
                f'{ms},"s":"{sym}","p":"{mid:.8f}","i":"{index:.8f}","P":"{index:.8f}",'
                f'"r":"{funding:.8f}","T":{next_funding}}}}}'
            )
            seq += 1
            yield t, idx, seq, sym, s_mark + data.encode()
            continue

        if kind == 2:
            # A forced order hits the book; the print moves the price its way.
            liq_left -= 1
            next_liq = t + 150 * _NS_PER_MS + int(expo(1.0 / 0.35) * _NS)
            steps = 1 + int(expo(1.0 / (trade_steps * 8.0)))
            if liq_side > 0:
                fill = ask
                limit = int(ask * 1.005) + 1
                side = "BUY"
            else:
                fill = bid
                limit = max(1, int(bid * 0.995))
                side = "SELL"
            q = qty(steps)
            data = (
                f'{ms},"o":{{"s":"{sym}","S":"{side}","o":"LIMIT","f":"IOC","q":"{q}","p":"{price(limit)}",'
                f'"ap":"{price(fill)}","X":"FILLED","l":"{q}","z":"{q}","T":{ms}}}}}}}'
            )
            seq += 1
            yield t, idx, seq, sym, s_force + data.encode()
            trade_id += 1
            data = (
                f'{ms},"T":{ms},"s":"{sym}","t":{trade_id},"p":"{price(fill)}","q":"{q}",'
                f'"X":"MARKET","m":{"false" if liq_side > 0 else "true"}}}}}'
            )
            seq += 1
            yield t, idx, seq, sym, s_trade + data.encode()
            mid *= 1.0 + liq_side * sigma * max(1.0, p.vol) * (1.5 + 2.5 * rand())
            continue

        u = rand()
        if u < 0.62:
            update_id += 1 + int(rand() * 400)
            data = (
                f'{update_id},"s":"{sym}","b":"{price(bid)}","B":"{qty(bid_sz)}","a":"{price(ask)}",'
                f'"A":"{qty(ask_sz)}","T":{ms},"E":{ms}}}}}'
            )
            seq += 1
            yield t, idx, seq, sym, s_book + data.encode()
        elif u < 0.90:
            buy = rand() < p.buy_share + (0.25 * liq_side if liq_left else 0.0)
            steps = 1 + int(expo(1.0 / trade_steps))
            trade_id += 1
            if buy:
                at = ask
                ask_sz = max(1, ask_sz - steps)
            else:
                at = bid
                bid_sz = max(1, bid_sz - steps)
            data = (
                f'{ms},"T":{ms},"s":"{sym}","t":{trade_id},"p":"{price(at)}","q":"{qty(steps)}",'
                f'"X":"MARKET","m":{"false" if buy else "true"}}}}}'
            )
            seq += 1
            yield t, idx, seq, sym, s_trade + data.encode()
        else:
            # Depth: the top levels and a few below; levels crossed or left far behind are zeroed.
            first = depth_u + 1
            update_id += 1 + int(rand() * 2000)
            changes_b: dict[int, int] = {}
            changes_a: dict[int, int] = {}
            for level in list(bids):
                if level > bid or level < bid - 40:
                    del bids[level]
                    changes_b[level] = 0
            for level in list(asks):
                if level < ask or level > ask + 40:
                    del asks[level]
                    changes_a[level] = 0
            bids[bid] = changes_b[bid] = bid_sz
            asks[ask] = changes_a[ask] = ask_sz
            for _ in range(2 + int(rand() * 3)):
                level = bid - 1 - int(rand() * 12)
                if level >= 1:
                    size = 0 if rand() < 0.15 else 1 + int(expo(1.0 / top_steps))
                    changes_b[level] = size
                    if size:
                        bids[level] = size
                    else:
                        bids.pop(level, None)
                level = ask + 1 + int(rand() * 12)
                size = 0 if rand() < 0.15 else 1 + int(expo(1.0 / top_steps))
                changes_a[level] = size
                if size:
                    asks[level] = size
                else:
                    asks.pop(level, None)
            b_json = ",".join(
                f'["{price(k)}","{qty(v) if v else zero_q}"]' for k, v in sorted(changes_b.items(), reverse=True)
            )
            a_json = ",".join(f'["{price(k)}","{qty(v) if v else zero_q}"]' for k, v in sorted(changes_a.items()))
            data = (
                f'{ms + 1},"T":{ms},"s":"{sym}","U":{first},"u":{update_id},"pu":{depth_u},'
                f'"b":[{b_json}],"a":[{a_json}]}}}}'
            )
            depth_u = update_id
            seq += 1
            yield t, idx, seq, sym, s_depth + data.encode()


class SimMarket:
    """Seeded simulated market data for ``symbols`` from ``start_ns`` on.

    Deterministic: the same ``(symbols, seed, start_ns)`` gives byte-identical frames. Symbols are
    independent of each other. Construction draws nothing; every ``frames()`` call starts afresh.
    """

    def __init__(self, symbols: Sequence[SimSymbol], seed: int, start_ns: int) -> None:
        names = [s.symbol for s in symbols]
        if len(set(names)) != len(names):
            raise ConfigError("sim.symbols", f"duplicate symbols in {names}")
        for spec in symbols:
            spec.validate()
        self.symbols: tuple[SimSymbol, ...] = tuple(symbols)
        self.seed = seed
        self.start_ns = start_ns

    def frames(self, until_ns: int | None = None) -> Iterator[tuple[int, str, bytes]]:
        """``(ts_ns, SYMBOL, payload)`` in non-decreasing time; ties by symbol order, then emission.

        Ends after the last frame at or before ``until_ns``; endless when it is ``None``.
        """
        streams = [_symbol_frames(spec, i, self.seed, self.start_ns) for i, spec in enumerate(self.symbols)]
        for ts, _idx, _seq, sym, payload in heapq.merge(*streams):
            if until_ns is not None and ts > until_ns:
                return
            yield ts, sym, payload

    def regime_spans(self, symbol: str, until_ns: int) -> list[RegimeSpan]:
        """The regime spans of ``symbol`` that start at or before ``until_ns`` (ground truth for tests)."""
        spec = next((s for s in self.symbols if s.symbol == symbol), None)
        if spec is None:
            raise KeyError(symbol)
        spans = []
        for span in _schedule(spec, self.seed, self.start_ns):
            if span.start_ns > until_ns:
                break
            spans.append(span)
        return spans
