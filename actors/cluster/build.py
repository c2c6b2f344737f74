"""Builds the actors of a cluster and its market source from validated Settings."""

from __future__ import annotations

import hashlib
import random
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from arbor.actors.arbitrator.logic import ArbitratorLogic
from arbor.actors.base import ActorContext, ActorLogic, Clock
from arbor.actors.collector.logic import CollectorLogic
from arbor.actors.executor.logic import ExecutorLogic
from arbor.actors.feature.logic import FeatureLogic
from arbor.actors.position.logic import PositionLogic
from arbor.actors.regime.logic import RegimeLogic
from arbor.actors.risk.logic import RiskLogic
from arbor.actors.runtime.clock import HandlerClock
from arbor.actors.topology import symbol_of
from arbor.adapters.decoding import decoder_for
from arbor.adapters.recorded.source import read_recordings, recordings_of
from arbor.adapters.sim.market import SimMarket, SimSymbol
from arbor.adapters.sim.paper import PaperVenueLogic
from arbor.adapters.sim.shadow import ShadowVenueLogic
from arbor.config.settings import Settings
from arbor.messages.codec import Codec
from arbor.supervision.faults import FaultPlan, FaultyLogic
from arbor.supervision.group import SingletonSupervisor, SupervisionHooks, SymbolSupervisor
from arbor.supervision.persist import StatePersister
from arbor.supervision.spec import ChildSpec, Strategy, SupervisorSpec
from loguru import logger


def stable_seed(seed: int, name: str) -> int:
    """A per-actor seed that does not depend on Python's randomized ``hash()``."""
    digest = hashlib.blake2b(f"{seed}|{name}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def make_context(actor_id: str, symbol: str, clock: Clock, run_id: str, seed: int) -> ActorContext:
    return ActorContext(actor_id=actor_id, symbol=symbol, clock=clock,
                        log=logger.bind(actor=actor_id, symbol=symbol),
                        rng=random.Random(stable_seed(seed, actor_id)), run_id=run_id)


SUPERVISED_ROLES = ("collector", "feature", "regime", "position", "executor")


def make_symbol_actor(settings: Settings, symbol: str, role: str, clock: Clock, run_id: str,
                      codec: Codec | None = None) -> ActorLogic:
    """A fresh logic object for one role of one symbol's subtree (``codec``: the process's, for
    the simulated venue's snapshots)."""
    s = settings.symbol(symbol)
    ctx = make_context(f"{symbol}/{role}", symbol, clock, run_id, settings.market.seed)
    if role == "collector":
        return CollectorLogic(ctx, decoder_for(s.venue, s.symbol))
    if role == "feature":
        from arbor.strategy.loader import load_strategy

        inputs = load_strategy(s.strategy, s.strategy_params).inputs()
        return FeatureLogic(ctx, settings.feature, decision_interval_ms=settings.regime.decision_interval_ms,
                            inputs=inputs)
    if role == "regime":
        return RegimeLogic(ctx, settings.regime_for(symbol), assumptions=settings.assumptions_for(symbol),
                           tick_size=s.tick_size)
    if role == "position":
        return PositionLogic(ctx, settings.position.entry_order_type)
    if role == "executor":
        return ExecutorLogic(ctx, settings.executor)
    if role == "venue":
        if settings.run.mode == "live":
            from arbor.adapters.venues.gateway import VenueGatewayLogic, VenuePort

            return VenueGatewayLogic(ctx, VenuePort(), venue=s.venue)  # the worker connects on start
        if settings.run.mode == "shadow":
            return ShadowVenueLogic(ctx)
        return PaperVenueLogic(ctx, settings.paper, qty_step=s.qty_step, codec=codec)
    raise ValueError(f"unknown symbol role {role!r}")


def make_singleton(settings: Settings, actor_id: str, clock: Clock, run_id: str) -> ActorLogic:
    ctx = make_context(actor_id, "", clock, run_id, settings.market.seed)
    if actor_id == "risk":
        return RiskLogic(ctx, settings.risk, tuple(s.symbol for s in settings.symbols))
    if actor_id == "arbitrator":
        return ArbitratorLogic(ctx, settings.arbitrator, {s.symbol: s.qty_step for s in settings.symbols})
    raise ValueError(f"unknown singleton {actor_id!r}")


def restore_from(new: ActorLogic, previous: ActorLogic | None, persister: StatePersister | None = None) -> ActorLogic:
    """Carry a restarted actor's durable state over (never constructor defaults).

    With a persister, the state is the one committed after the last handler that completed
    (queued writes are flushed first). Without one, the failed instance's snapshot is used;
    Position and Executor snapshots are immutable values replaced only when a handler completes,
    so theirs is the state before the message that crashed it.
    """
    # Unwrapped from a FaultyLogic, the logics are of any role: what they offer is checked below.
    target: Any = getattr(new, "inner", new)
    if previous is None:
        return new
    prev: Any = getattr(previous, "inner", previous)
    if isinstance(target, CollectorLogic):
        target.resume_after(prev.last_seq)
        return new
    if isinstance(target, RegimeLogic) and isinstance(prev, RegimeLogic):
        target.adopt_trading_state(prev)
        return new
    if not hasattr(target, "restore"):
        return new
    snap = persister.load(target.ctx.actor_id) if persister is not None else None
    if snap is None and hasattr(prev, "snapshot"):
        snap = prev.snapshot()
    if snap is not None:
        target.restore(snap)
    return new


def build_symbol_actors(settings: Settings, symbol: str, clock: Clock, run_id: str,
                        faults: FaultPlan | None = None, codec: Codec | None = None) -> dict[str, ActorLogic]:
    """One symbol's subtree, upstream to downstream: collector, feature, regime, position, executor, venue."""
    return {f"{symbol}/{role}": with_faults(make_symbol_actor(settings, symbol, role, clock, run_id, codec), faults)
            for role in (*SUPERVISED_ROLES, "venue")}


def build_singletons(settings: Settings, clock: Clock, run_id: str,
                     faults: FaultPlan | None = None) -> dict[str, ActorLogic]:
    return {aid: with_faults(make_singleton(settings, aid, clock, run_id), faults) for aid in ("risk", "arbitrator")}


def build_actors(settings: Settings, clock: Clock, run_id: str, faults: FaultPlan | None = None) -> dict[str, ActorLogic]:
    """Every actor of a single-process cluster, keyed by actor id."""
    actors = build_singletons(settings, clock, run_id, faults)
    codec = Codec()
    for s in settings.symbols:
        actors.update(build_symbol_actors(settings, s.symbol, clock, run_id, faults, codec))
    return actors


def with_faults(logic: ActorLogic, faults: FaultPlan | None) -> ActorLogic:
    if faults is not None and logic.ctx.actor_id in faults.targets():
        return FaultyLogic(logic, faults)
    return logic


def symbol_spec(settings: Settings, symbol: str, clock: Clock, run_id: str,
                faults: FaultPlan | None = None, persister: StatePersister | None = None) -> SupervisorSpec:
    """rest_for_one over collector -> feature -> regime -> position -> executor."""
    sup = settings.supervision

    def starter(role: str):
        return lambda previous: restore_from(
            with_faults(make_symbol_actor(settings, symbol, role, clock, run_id), faults), previous, persister)

    return SupervisorSpec(strategy=Strategy.REST_FOR_ONE, intensity=sup.intensity, period_s=sup.period_s,
                          backoff_base_s=sup.backoff_base_ms / 1000, backoff_max_s=sup.backoff_max_ms / 1000,
                          children=tuple(ChildSpec(id=role, start=starter(role)) for role in SUPERVISED_ROLES))


def singleton_spec(settings: Settings, clock: Clock, run_id: str, faults: FaultPlan | None = None,
                   persister: StatePersister | None = None) -> SupervisorSpec:
    """one_for_one over Risk and the Arbitrator."""
    sup = settings.supervision

    def starter(actor_id: str):
        return lambda previous: restore_from(with_faults(make_singleton(settings, actor_id, clock, run_id), faults),
                                             previous, persister)

    return SupervisorSpec(strategy=Strategy.ONE_FOR_ONE, intensity=sup.intensity, period_s=sup.period_s,
                          children=tuple(ChildSpec(id=a, start=starter(a)) for a in ("risk", "arbitrator")))


def supervisor_for(settings: Settings, clock: Clock, run_id: str, faults: FaultPlan | None = None,
                   persister: StatePersister | None = None):
    """A ``supervise(dispatcher)`` function: attaches the supervisors of whatever that dispatcher hosts
    (and, with a persister, saves the durable state of its actors after every completed handler)."""

    def supervise(dispatcher: Any) -> SupervisionHooks:
        sups: list[Any] = []
        symbols = {symbol_of(a) for a in dispatcher.actors if symbol_of(a)}
        for s in settings.symbols:
            if s.symbol in symbols:
                rng = random.Random(stable_seed(settings.market.seed, f"{s.symbol}/supervisor"))
                sups.append(SymbolSupervisor(s.symbol, symbol_spec(settings, s.symbol, clock, run_id, faults, persister),
                                             dispatcher, rng))
        if "risk" in dispatcher.actors:
            sups.append(SingletonSupervisor(singleton_spec(settings, clock, run_id, faults, persister), dispatcher))
        if persister is not None:
            dispatcher.attach_persistence(persister.after_handle)
        hooks = SupervisionHooks(sups, persister)
        dispatcher.attach_supervision(hooks)
        return hooks

    return supervise


def market_venue(settings: Settings) -> str:
    """The venue name the market frames are decoded as."""
    if settings.market.source == "sim":
        return "sim"
    if settings.market.source in ("binance_usdm", "binance_spot"):
        return settings.market.source  # streamed live by adapters.venues.feed, decoded as that venue
    venues = {s.venue for s in settings.symbols}
    if len(venues) != 1:
        raise ValueError("a recorded market feeds one venue; configure symbols of one venue")
    return venues.pop()


def run_started_ns(run_id: str) -> int:
    """The wall time a run started at, from its id (``YYYYmmddTHHMMSS-<pid>``, UTC, to the second):
    every node of a multi-process run derives the same instant, restarted ones too."""
    try:
        return int(datetime.strptime(run_id[:15], "%Y%m%dT%H%M%S").replace(tzinfo=UTC).timestamp()) * 1_000_000_000
    except ValueError:
        return time.time_ns()  # not a run id of ours (tests name runs "t")


def market_clock(settings: Settings, wall_ns: int) -> HandlerClock:
    """The clock of a live run started at wall time ``wall_ns``: the wall clock, except on a recorded
    market, whose run is on the recording's time (its first frame at ``wall_ns``): frames recorded
    two years ago are neither played at once by a paced feed nor two years stale to Risk."""
    if settings.market.source != "recorded":
        return HandlerClock()
    wanted = {s.symbol for s in settings.symbols}
    try:
        first = next((f for f in read_recordings(recordings_of(settings.market.recorded_files, wanted)) if f[1] in wanted),
                     None)
    except Exception:  # unreadable from the start: the feed dies on it too and halts the symbols
        return HandlerClock()
    return HandlerClock(offset_ns=wall_ns - first[0] if first is not None else 0)


def market_frames(settings: Settings, start_ns: int) -> Iterator[tuple[int, str, bytes]]:
    """(ts_ns, SYMBOL, payload) frames of the configured market, in time order."""
    if settings.market.source == "sim":
        sims = [SimSymbol(symbol=s.symbol, start_price=s.start_price, tick_size=s.tick_size, qty_step=s.qty_step,
                          events_per_s=s.events_per_s, base_vol=s.base_vol) for s in settings.symbols]
        return SimMarket(sims, seed=settings.market.seed, start_ns=start_ns).frames()
    if settings.market.source in ("binance_usdm", "binance_spot"):
        raise ValueError("a streamed market is not played from frames: adapters.venues.wiring.start_venues streams it")
    wanted = {s.symbol for s in settings.symbols}
    return (f for f in read_recordings(recordings_of(settings.market.recorded_files, wanted)) if f[1] in wanted)
