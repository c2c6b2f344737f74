"""Builds the actors of a cluster and its market source from validated Settings."""

from __future__ import annotations

import hashlib
import random
from typing import Iterator

from loguru import logger

from actors.arbitrator.logic import ArbitratorLogic
from actors.base import ActorContext, ActorLogic, Clock
from actors.collector.logic import CollectorLogic
from actors.executor.logic import ExecutorLogic
from actors.feature.logic import FeatureLogic
from actors.position.logic import PositionLogic
from actors.regime.logic import RegimeLogic
from actors.risk.logic import RiskLogic
from adapters.decoding import decoder_for
from adapters.recorded.hbt import merge_recordings
from adapters.sim.market import SimMarket, SimSymbol
from adapters.sim.paper import PaperVenueLogic
from adapters.sim.shadow import ShadowVenueLogic
from config.settings import Settings


def stable_seed(seed: int, name: str) -> int:
    """A per-actor seed that does not depend on Python's randomized ``hash()``."""
    digest = hashlib.blake2b(f"{seed}|{name}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def make_context(actor_id: str, symbol: str, clock: Clock, run_id: str, seed: int) -> ActorContext:
    return ActorContext(actor_id=actor_id, symbol=symbol, clock=clock,
                        log=logger.bind(actor=actor_id, symbol=symbol),
                        rng=random.Random(stable_seed(seed, actor_id)), run_id=run_id)


def build_symbol_actors(settings: Settings, symbol: str, clock: Clock, run_id: str) -> dict[str, ActorLogic]:
    """One symbol's subtree, upstream to downstream: collector, feature, regime, position, executor, venue."""
    s = settings.symbol(symbol)
    seed = settings.market.seed

    def ctx(role: str) -> ActorContext:
        return make_context(f"{symbol}/{role}", symbol, clock, run_id, seed)

    venue: ActorLogic
    if settings.run.mode == "shadow":
        venue = ShadowVenueLogic(ctx("venue"))
    else:
        venue = PaperVenueLogic(ctx("venue"), settings.paper, qty_step=s.qty_step)
    return {
        f"{symbol}/collector": CollectorLogic(ctx("collector"), decoder_for(s.venue)),
        f"{symbol}/feature": FeatureLogic(ctx("feature"), settings.feature),
        f"{symbol}/regime": RegimeLogic(ctx("regime"), settings.regime_for(symbol)),
        f"{symbol}/position": PositionLogic(ctx("position"), settings.position.entry_order_type),
        f"{symbol}/executor": ExecutorLogic(ctx("executor"), settings.executor),
        f"{symbol}/venue": venue,
    }


def build_singletons(settings: Settings, clock: Clock, run_id: str) -> dict[str, ActorLogic]:
    seed = settings.market.seed
    symbols = tuple(s.symbol for s in settings.symbols)
    return {
        "risk": RiskLogic(make_context("risk", "", clock, run_id, seed), settings.risk, symbols),
        "arbitrator": ArbitratorLogic(make_context("arbitrator", "", clock, run_id, seed), settings.arbitrator,
                                      {s.symbol: s.qty_step for s in settings.symbols}),
    }


def build_actors(settings: Settings, clock: Clock, run_id: str) -> dict[str, ActorLogic]:
    """Every actor of a single-process cluster, keyed by actor id."""
    actors = build_singletons(settings, clock, run_id)
    for s in settings.symbols:
        actors.update(build_symbol_actors(settings, s.symbol, clock, run_id))
    return actors


def market_venue(settings: Settings) -> str:
    """The venue name the market frames are decoded as."""
    if settings.market.source == "sim":
        return "sim"
    venues = {s.venue for s in settings.symbols}
    if len(venues) != 1:
        raise ValueError("a recorded market feeds one venue; configure symbols of one venue")
    return venues.pop()


def market_frames(settings: Settings, start_ns: int) -> Iterator[tuple[int, str, bytes]]:
    """(ts_ns, SYMBOL, payload) frames of the configured market, in time order."""
    if settings.market.source == "sim":
        sims = [SimSymbol(symbol=s.symbol, start_price=s.start_price, tick_size=s.tick_size, qty_step=s.qty_step,
                          events_per_s=s.events_per_s, base_vol=s.base_vol) for s in settings.symbols]
        return SimMarket(sims, seed=settings.market.seed, start_ns=start_ns).frames()
    wanted = {s.symbol for s in settings.symbols}
    return (f for f in merge_recordings(list(settings.market.recorded_files)) if f[1] in wanted)
