"""Regimes, mandates and arbitrated actions."""

from __future__ import annotations

from decimal import Decimal

from arbor.messages.base import Direction, MandateKind, Regime, message


@message("RegimeChanged")
class RegimeChanged:
    symbol: str
    old: Regime
    new: Regime
    ts_event_ns: int
    reason: str


@message("Mandate")
class Mandate:
    """One strategy request. ``size_hint`` is a fraction 0..1: of the symbol's maximum notional
    for ENTRY, of the open quantity for REDUCE; ignored otherwise."""

    kind: MandateKind
    direction: Direction | None = None
    size_hint: Decimal = Decimal("0")
    reason: str = ""


@message("MandateSet")
class MandateSet:
    """Everything a symbol's strategy asks for in one decision cycle."""

    symbol: str
    cycle: int
    ts_event_ns: int
    regime: Regime
    strategy: str
    mandates: tuple[Mandate, ...]
    mark_price: Decimal
    data_ts_ns: int  # event time of the newest market data behind this decision


@message("Action")
class Action:
    """The one arbitrated action for a symbol in a cycle."""

    action_id: str
    symbol: str
    cycle: int
    kind: MandateKind
    direction: Direction | None
    qty: Decimal
    mark_price: Decimal
    data_ts_ns: int
    ts_event_ns: int
    reason: str
    regime: Regime = Regime.UNKNOWN
    strategy: str = ""


@message("ActionApproved")
class ActionApproved:
    symbol: str
    action: Action
    ts_event_ns: int


@message("ActionDenied")
class ActionDenied:
    """Risk said no. ``reason`` is a short stable code (e.g. ``max_symbol_notional``)."""

    symbol: str
    action: Action
    reason: str
    detail: str
    ts_event_ns: int


@message("ActionNotApplicable")
class ActionNotApplicable:
    """The position could not act on an approved action in its current state (a race, not a bug)."""

    symbol: str
    action_id: str
    kind: MandateKind
    state: str
    ts_event_ns: int
