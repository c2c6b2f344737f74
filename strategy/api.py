"""The public strategy interface, version ``API_VERSION``: a Strategy, its declared parameters and
the Context it decides on (see docs/strategies.md).

A strategy is deterministic: the same context gives the same mandates. It never reads the wall
clock (``ctx.now_ns`` is the runtime's clock), never sizes orders and never checks limits (the
Arbitrator and Risk do); it only says what it wants this cycle.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal
from types import MappingProxyType
from typing import Any, ClassVar

import attrs
from arbor.config.errors import ConfigError
from arbor.messages import Direction, FeatureSnapshot, Mandate, PositionState, Regime, TradingState
from arbor.strategy.assumptions import Assumption
from arbor.strategy.inputs import NO_INPUTS, Bar, Inputs
from arbor.strategy.params import Param, parse_params

__all__ = ["API_VERSION", "FLAT", "Context", "PositionView", "Strategy"]

API_VERSION = 1
_ZERO = Decimal("0")


@attrs.frozen(kw_only=True)
class PositionView:
    """What a strategy knows of the symbol's position (from the latest PositionChanged; after a
    restart, the restored position the Position actor announces).

    ``peak_qty`` is the largest quantity since the position last left FLAT, so a policy can tell
    whether it has already reduced this position.
    """

    state: PositionState = PositionState.FLAT
    direction: Direction | None = None
    qty: Decimal = _ZERO
    avg_entry_price: Decimal | None = None
    peak_qty: Decimal = _ZERO

    @property
    def is_open(self) -> bool:
        """Exposure a policy may manage: OPEN, REDUCING, or a partly filled entry."""
        if self.direction is None or self.qty <= 0:
            return False
        return self.state in (PositionState.OPEN, PositionState.REDUCING, PositionState.ENTERING)

    @property
    def is_flat(self) -> bool:
        return self.state is PositionState.FLAT

    @property
    def is_pending(self) -> bool:
        """An order is in flight and there is nothing to manage yet (unfilled entry) or any more (closing)."""
        return not self.is_flat and not self.is_open


FLAT = PositionView()


@attrs.frozen(kw_only=True)
class Context:
    """Everything a strategy sees in one decision cycle.

    ``features``: the built-in FeatureSnapshot; ``regime``: the classifier's view; ``position``:
    the symbol's position; ``trading_state``: the symbol's state at Risk as last announced
    (ACTIVE until told otherwise); ``now_ns``: the runtime clock (event time in a replay).
    """

    features: FeatureSnapshot
    regime: Regime
    position: PositionView = FLAT
    trading_state: TradingState = TradingState.ACTIVE
    now_ns: int = 0

    @property
    def symbol(self) -> str:
        return self.features.symbol

    def bars(self, interval: str) -> tuple[Bar, ...]:
        """The closed bars of a declared interval, oldest first (fewer than declared until enough time passed)."""
        for name, rows in self.features.bars:
            if name == interval:
                return tuple(Bar(*row) for row in rows)
        return ()

    @property
    def indicators(self) -> Mapping[str, float]:
        """Every declared indicator that is warm, by name (Bollinger: ``name.middle``/``.upper``/``.lower``)."""
        return dict(self.features.indicators)

    def indicator(self, name: str) -> float | None:
        """One indicator's value, None while it is not warm."""
        for key, value in self.features.indicators:
            if key == name:
                return value
        return None


class Strategy:
    """Base class of every strategy. Subclass it, declare ``name`` and ``PARAMS``, write ``decide``.

    ``PARAMS`` maps a parameter name to a :class:`Param`; the configuration's
    ``strategy_params`` are validated against it when the configuration loads, and the validated
    values are ``self.params``. Override ``check_params`` for rules across parameters (raise
    ``ConfigError("strategy_params.<name>", reason)``).
    """

    API_VERSION: ClassVar[int] = API_VERSION
    name: ClassVar[str] = ""
    PARAMS: ClassVar[Mapping[str, Param]] = MappingProxyType({})
    INPUTS: ClassVar[Inputs] = NO_INPUTS
    ASSUMPTIONS: ClassVar[tuple[Assumption, ...]] = ()

    def __init__(self, params: Mapping[str, Any] | None = None) -> None:
        self.params: Mapping[str, Any] = MappingProxyType(parse_params(self.PARAMS, params or {}))
        self.check_params(self.params)
        names = set()
        for a in self.assumptions():
            a.validate(f"assumptions.{a.name}")
            if a.name in names:
                raise ConfigError(f"assumptions.{a.name}", "declared twice")
            names.add(a.name)

    def check_params(self, params: Mapping[str, Any]) -> None:
        """Rules across parameters; the default accepts any combination of valid values."""

    def inputs(self) -> Inputs:
        """The bars and indicators this strategy reads (``INPUTS``; override when they depend on ``params``)."""
        return self.INPUTS

    def assumptions(self) -> tuple[Assumption, ...]:
        """The market assumptions this strategy relies on (``ASSUMPTIONS``; override when they
        depend on ``params``), evaluated by the runtime (docs/assumptions.md)."""
        return self.ASSUMPTIONS

    def decide(self, ctx: Context) -> Sequence[Mandate]:
        """The mandates of one decision cycle (at least one)."""
        raise NotImplementedError(f"{type(self).__name__} must implement decide(ctx)")

    def evaluate(self, features: FeatureSnapshot, regime: Regime, position: PositionView = FLAT,
                 **context: Any) -> tuple[Mandate, ...]:
        """``decide`` on a context built from these values (for tests and notebooks)."""
        return tuple(self.decide(Context(features=features, regime=regime, position=position, **context)))
