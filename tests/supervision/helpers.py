"""Shared set-up for supervision tests: a simulated cluster with faults, and timeline queries."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from arbor.actors.cluster.simulate import SimulatedCluster
from arbor.config.settings import load_settings
from arbor.messages import (
    ActorFailed,
    ActorRestarted,
    OrderIntent,
    PlaceOrder,
    SubmitOrder,
    SymbolRecovered,
    TradingStateChanged,
)


def cluster_with(faults: list[dict[str, Any]], **sections: Any) -> SimulatedCluster:
    return SimulatedCluster(load_settings({"faults": faults, **sections}))


def timeline(c: SimulatedCluster) -> list[Any]:
    return [e.payload for e, _ in c.recorder.emitted_log]


def index_of(events: list[Any], pred) -> int:
    for i, m in enumerate(events):
        if pred(m):
            return i
    raise AssertionError("event not found")


def failure_window(events: list[Any], symbol: str) -> tuple[int, int]:
    """Indexes of the first ActorFailed for ``symbol`` and of the SymbolRecovered after it."""
    start = index_of(events, lambda m: isinstance(m, ActorFailed) and m.symbol == symbol)
    end = start + index_of(events[start:], lambda m: isinstance(m, SymbolRecovered) and m.symbol == symbol)
    return start, end


def restarted(events: list[Any], symbol: str) -> list[str]:
    return [m.actor_id.split("/")[1] for m in events if isinstance(m, ActorRestarted) and m.symbol == symbol]


def states(events: list[Any], symbol: str) -> list[str]:
    return [m.new.value for m in events if isinstance(m, TradingStateChanged) and m.scope == symbol]


def entries_sent(events: list[Any], symbol: str) -> list[Any]:
    return [m for m in events if (isinstance(m, SubmitOrder) and m.intent is OrderIntent.ENTRY and m.symbol == symbol)
            or (isinstance(m, PlaceOrder) and not m.reduce_only and m.symbol == symbol)]


def position_matches_venue(c: SimulatedCluster, symbol: str) -> bool:
    snap = c.logic(f"{symbol}/position").snapshot()
    ours = snap.qty * (snap.direction.sign if snap.direction else 0)
    return ours == c.logic(f"{symbol}/venue").venue_position().qty or ours == Decimal(0) == c.logic(f"{symbol}/venue").venue_position().qty
