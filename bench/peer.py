"""bench/peer: Arbor and NautilusTrader end to end on the same recording, in one run.

Both replay the two-symbol Binance USD-M recording (168,609 messages, 345 s of market) from
../shared/data/binance_usdm, with a trend-following strategy deciding once per second of event
time per symbol:

  arbor      ``run_whatif`` from the HBT files (decoding, every actor, the default strategies):
             end to end (files to report), and with its inputs already read into memory (engine)
  nautilus   the same frames parsed with orjson and turned into Nautilus objects (QuoteTick,
             TradeTick, OrderBookDelta for its own L2 book), then a BacktestEngine with one
             EMA-cross strategy on both instruments: end to end (files to the end of the run) and
             the engine's run alone on the objects in memory (engine)
  floor      gzip read plus ``orjson.loads`` of every frame, nothing else (bench/replay's floor)

``--rounds`` rounds interleave floor, Arbor and Nautilus; medians are printed, every figure as a
ratio to the floor timed just before it, all in CPU time of this process (on a shared machine wall
time also counts other processes' turns on the core). NautilusTrader is an optional extra
(``pip install -e '.[peer]'``): without it the Nautilus side is skipped with that reason and the
Arbor side still runs. ``--json OUT`` writes the figures for bench/all. Usage:
  python bench/peer.py [--rounds 3] [--json OUT]
"""

from __future__ import annotations

import argparse
import gzip
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import orjson
from arbor.actors.replay import run_whatif
from arbor.actors.replay.whatif import hbt_config, market_inputs
from arbor.config.loader import load_raw
from arbor.config.settings import build_settings
from figures import Figure, median_ratio, write_bench_json
from loguru import logger
from replay import FILES, json_floor, recording_missing

SYMBOLS = {"BTCUSDT": "btcusdt_perp_binance", "ETHUSDT": "ethusdt_perp_binance"}  # TestInstrumentProvider names
INSTALL_HINT = "pip install -e '.[peer]'"


def nautilus_missing() -> str:
    """Why the Nautilus side cannot run here ('' when it can)."""
    try:
        import nautilus_trader  # noqa: F401
    except ImportError as exc:
        return f"nautilus_trader is not installed ({INSTALL_HINT}): {exc}"
    return ""


def arbor_end_to_end() -> tuple[int, float, str]:
    """Arbor's what-if from the files: (messages, CPU seconds including building the actors, digest)."""
    settings = build_settings(hbt_config(FILES, load_raw(environ={}), []))
    t0 = time.process_time()
    result = run_whatif(settings, market_inputs(settings))
    return result.inputs, time.process_time() - t0, result.digest


def arbor_engine() -> tuple[int, float]:
    """Arbor's what-if on inputs already read into memory (the recorded frames, not yet decoded)."""
    settings = build_settings(hbt_config(FILES, load_raw(environ={}), []))
    inputs = list(market_inputs(settings))
    t0 = time.process_time()
    result = run_whatif(settings, iter(inputs))
    return result.inputs, time.process_time() - t0


class NautilusSide:
    """The Nautilus half: frames to Nautilus data objects, and a BacktestEngine over them.

    Imported lazily so the bench (and bench/all) run without the optional package.
    """

    def __init__(self) -> None:
        from nautilus_trader.test_kit.providers import TestInstrumentProvider

        self.instruments = {sym: getattr(TestInstrumentProvider, name)() for sym, name in SYMBOLS.items()}

    def convert(self) -> tuple[list[list[Any]], int]:
        """Every frame of the recording as Nautilus data, one list per instrument and kind (the engine
        tells book data from the type of a list's first item), and the number of frames read.

        Depth updates before a symbol's REST snapshot, or already contained in it, are left out
        (as Binance's book procedure says and as Arbor's collector does); they are still counted
        as frames read.
        """
        from nautilus_trader.model.data import BookOrder, OrderBookDelta, QuoteTick, TradeTick
        from nautilus_trader.model.enums import AggressorSide, BookAction, OrderSide, RecordFlag
        from nautilus_trader.model.identifiers import TradeId
        from nautilus_trader.model.objects import Price, Quantity

        loads = orjson.loads
        groups: list[list[Any]] = []
        frames = 0
        last = RecordFlag.F_LAST
        for name, inst in zip(FILES, self.instruments.values(), strict=True):
            iid, pp, sp = inst.id, inst.price_precision, inst.size_precision
            snapshot_id: int | None = None
            book: list[Any] = []
            quotes: list[Any] = []
            trades: list[Any] = []
            groups += [book, quotes, trades]
            with gzip.open(name, "rb") as fh:
                lines = fh.read().splitlines()
            for line in lines:
                frames += 1
                cut = line.index(b" ")
                ts_init = int(line[:cut])
                obj = loads(line[cut + 1:])
                d = obj.get("data", obj)
                kind = d.get("e")
                if kind == "bookTicker":
                    quotes.append(QuoteTick(iid, Price(float(d["b"]), pp), Price(float(d["a"]), pp),
                                         Quantity(float(d["B"]), sp), Quantity(float(d["A"]), sp),
                                         d["E"] * 1_000_000, ts_init))
                elif kind == "trade":
                    side = AggressorSide.SELLER if d["m"] else AggressorSide.BUYER
                    trades.append(TradeTick(iid, Price(float(d["p"]), pp), Quantity(float(d["q"]), sp), side,
                                         TradeId(str(d["t"])), d["T"] * 1_000_000, ts_init))
                elif kind == "depthUpdate":
                    if snapshot_id is None or d["u"] <= snapshot_id:
                        continue
                    ts = d["E"] * 1_000_000
                    deltas = [OrderBookDelta(iid, BookAction.DELETE if float(q) == 0 else BookAction.UPDATE,
                                             BookOrder(book_side, Price(float(p), pp), Quantity(float(q), sp), 0),
                                             0, d["u"], ts, ts_init)
                              for levels, book_side in ((d["b"], OrderSide.BUY), (d["a"], OrderSide.SELL))
                              for p, q in levels]
                    if deltas:
                        tail = deltas[-1]
                        deltas[-1] = OrderBookDelta(iid, tail.action, tail.order, last, tail.sequence, ts, ts_init)
                        book += deltas
                elif "lastUpdateId" in d:
                    snapshot_id = d["lastUpdateId"]
                    deltas = [OrderBookDelta.clear(iid, snapshot_id, ts_init, ts_init)]
                    deltas += [OrderBookDelta(iid, BookAction.ADD,
                                              BookOrder(book_side, Price(float(p), pp), Quantity(float(q), sp), 0),
                                              0, snapshot_id, ts_init, ts_init)
                               for levels, book_side in ((d["bids"], OrderSide.BUY), (d["asks"], OrderSide.SELL))
                               for p, q in levels if float(q) > 0]
                    tail = deltas[-1]
                    deltas[-1] = OrderBookDelta(iid, tail.action, tail.order, last, tail.sequence, ts_init, ts_init)
                    book += deltas
        return [g for g in groups if g], frames

    def engine(self, data: list[list[Any]]) -> Any:
        """A BacktestEngine with a Binance venue (L2 book), both instruments, the data and the strategy."""
        from nautilus_trader.backtest.engine import BacktestEngine
        from nautilus_trader.config import BacktestEngineConfig, LoggingConfig
        from nautilus_trader.model.currencies import USDT
        from nautilus_trader.model.enums import AccountType, BookType, OmsType
        from nautilus_trader.model.identifiers import TraderId, Venue
        from nautilus_trader.model.objects import Money

        engine = BacktestEngine(BacktestEngineConfig(trader_id=TraderId("BENCH-001"),
                                                     logging=LoggingConfig(log_level="ERROR")))
        engine.add_venue(venue=Venue("BINANCE"), oms_type=OmsType.NETTING, account_type=AccountType.MARGIN,
                         base_currency=None, starting_balances=[Money(1_000_000, USDT)], book_type=BookType.L2_MBP)
        for inst in self.instruments.values():
            engine.add_instrument(inst)
        for k, group in enumerate(data):  # one sort by ts_init at the end (sort_data() cannot compare deltas)
            engine.add_data(group, sort=k == len(data) - 1)
        engine.add_strategy(ema_cross_strategy([str(i.id) for i in self.instruments.values()]))
        return engine

    def run(self) -> tuple[int, float, float, int]:
        """(frames, end-to-end CPU seconds, engine-run CPU seconds, orders the strategy submitted)."""
        t0 = time.process_time()
        data, frames = self.convert()
        engine = self.engine(data)
        t1 = time.process_time()
        engine.run()
        t2 = time.process_time()
        orders = len(engine.cache.orders())
        engine.dispose()
        return frames, t2 - t0, t2 - t1, orders


def ema_cross_strategy(instrument_ids: list[str]) -> Any:
    """A Nautilus strategy comparable to Arbor's trend following: EMAs of trade prices, a decision
    per second of event time per instrument, a market order when the fast EMA crosses the slow one.
    It subscribes to quotes, trades and the L2 book, so every frame reaches it."""
    from nautilus_trader.config import StrategyConfig
    from nautilus_trader.model.enums import BookType, OrderSide
    from nautilus_trader.model.identifiers import InstrumentId
    from nautilus_trader.model.objects import Quantity
    from nautilus_trader.trading.strategy import Strategy

    # without the optional extra installed, mypy sees StrategyConfig as Any and object takes no frozen=
    class EmaCrossConfig(StrategyConfig, frozen=True):  # type: ignore[call-arg, unused-ignore]
        instrument_ids: tuple[str, ...] = ()
        fast: float = 2 / (20 + 1)
        slow: float = 2 / (80 + 1)

    class EmaCross(Strategy):
        def __init__(self, config: EmaCrossConfig) -> None:
            super().__init__(config)
            self.ids = [InstrumentId.from_str(i) for i in config.instrument_ids]
            self.fast: dict[InstrumentId, float] = {}
            self.slow: dict[InstrumentId, float] = {}
            self.next_ns: dict[InstrumentId, int] = {}
            self.side: dict[InstrumentId, int] = {}
            self.a_fast, self.a_slow = config.fast, config.slow

        def on_start(self) -> None:
            for iid in self.ids:
                self.subscribe_quote_ticks(iid)
                self.subscribe_trade_ticks(iid)
                self.subscribe_order_book_deltas(iid, book_type=BookType.L2_MBP)

        def on_trade_tick(self, tick: Any) -> None:
            iid, px = tick.instrument_id, float(tick.price)
            f = self.fast.get(iid, px)
            s = self.slow.get(iid, px)
            self.fast[iid] = f + self.a_fast * (px - f)
            self.slow[iid] = s + self.a_slow * (px - s)

        def on_quote_tick(self, tick: Any) -> None:
            iid = tick.instrument_id
            if tick.ts_event < self.next_ns.get(iid, 0) or iid not in self.fast:
                return
            self.next_ns[iid] = tick.ts_event + 1_000_000_000
            want = 1 if self.fast[iid] > self.slow[iid] else -1
            have = self.side.get(iid, 0)
            if want != have:
                qty = Quantity.from_str("0.010") if have == 0 else Quantity.from_str("0.020")
                side = OrderSide.BUY if want > 0 else OrderSide.SELL
                self.submit_order(self.order_factory.market(iid, side, qty))
                self.side[iid] = want

        def on_order_book_deltas(self, deltas: Any) -> None:
            pass

    return EmaCross(EmaCrossConfig(instrument_ids=tuple(instrument_ids)))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds of floor, Arbor and Nautilus")
    p.add_argument("--json", type=Path, metavar="OUT", help="write the figures to this file (for bench/all)")
    args = p.parse_args(argv)
    if recording_missing():
        print(recording_missing(), file=sys.stderr)
        return 2
    logger.remove()
    missing = nautilus_missing()
    if missing:
        print(f"nautilus: skipped: {missing}")
    side = None if missing else NautilusSide()
    rounds: dict[str, list[float]] = {k: [] for k in ("arbor", "arbor_engine", "nautilus", "nautilus_engine")}
    floor_of: dict[str, list[float]] = {k: [] for k in rounds}  # the floor timed just before each run
    digests = set()
    orders = 0
    for i in range(args.rounds):
        floor_of["arbor"].append(json_floor(FILES))
        n, dt, digest = arbor_end_to_end()
        digests.add(digest)
        rounds["arbor"].append(n / dt)
        floor_of["arbor_engine"].append(json_floor(FILES))
        n_mem, dm = arbor_engine()
        rounds["arbor_engine"].append(n_mem / dm)
        line = (f"round {i + 1}/{args.rounds}: floor {floor_of['arbor'][-1]:,.0f} msg/s; arbor end to end "
                f"{n / dt:,.0f}, engine {n_mem / dm:,.0f}")
        if side is not None:
            floor_of["nautilus"].append(json_floor(FILES))
            frames, de, dr, orders = side.run()
            floor_of["nautilus_engine"].append(floor_of["nautilus"][-1])  # the engine run is part of that run
            rounds["nautilus"].append(frames / de)
            rounds["nautilus_engine"].append(frames / dr)
            line += f"; nautilus end to end {frames / de:,.0f}, engine {frames / dr:,.0f} ({orders} orders)"
        print(line, flush=True)
    floor_med = statistics.median(f for v in floor_of.values() for f in v)
    med = {k: statistics.median(v) for k, v in rounds.items() if v}
    floor_label = "JSON floor (gzip + orjson.loads, CPU time)"
    figs: list[Figure] = []

    def add(name: str, label: str, key: str) -> None:
        r = median_ratio(rounds[key], floor_of[key])
        figs.append(Figure(name, label, med[key], "msg/s", floor_label, med[key] / r))
        print(f"  {label:<44} {med[key]:>9,.0f} msg/s  ratio to the floor {r:.3f}")

    print(f"medians of {args.rounds} interleaved rounds (floor {floor_med:,.0f} msg/s):")
    add("peer.arbor", "Arbor what-if, end to end", "arbor")
    add("peer.arbor_engine", "Arbor what-if, inputs in memory", "arbor_engine")
    if side is not None:
        add("peer.nautilus", "NautilusTrader, end to end (JSON to objects)", "nautilus")
        add("peer.nautilus_engine", "NautilusTrader, engine run alone", "nautilus_engine")
        ahead = median_ratio(rounds["arbor"], rounds["nautilus"])
        figs.append(Figure("peer.arbor_vs_nautilus", "Arbor end to end against Nautilus end to end", med["arbor"],
                           "msg/s", "Nautilus end to end", med["arbor"] / ahead, target="ratio > 1 (Arbor ahead)",
                           met=ahead > 1))
        print(f"  Arbor / Nautilus end to end: {ahead:.2f} [target > 1: {'met' if ahead > 1 else 'NOT met'}]")
    import importlib.metadata as md

    version = "" if missing else f"nautilus_trader {md.version('nautilus_trader')}; "
    write_bench_json(args.json, "peer", figs, skipped=f"Nautilus side: {missing}" if missing else "", notes=[
        f"{version}two-symbol USD-M recording, CPU time, medians of {args.rounds} interleaved rounds, each figure over "
        "the floor timed just before it; Arbor's engine figure still decodes every frame, Nautilus's runs on objects "
        f"built beforehand{f' ({orders} orders in the last round)' if side else ''}."])
    if len(digests) != 1:
        print(f"Arbor's digests differ between rounds: {sorted(digests)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
