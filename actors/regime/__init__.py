"""Regime(S): regime classification with hysteresis and the symbol's strategy policy."""

from arbor.actors.regime.config import RegimeConfig
from arbor.actors.regime.logic import RegimeLogic, classify, mark_price
from arbor.actors.regime.strategies import (
    STRATEGIES,
    MeanReversion,
    PositionView,
    StrategyPolicy,
    TrendFollowing,
    make_strategy,
)

__all__ = [
    "STRATEGIES",
    "MeanReversion",
    "PositionView",
    "RegimeConfig",
    "RegimeLogic",
    "StrategyPolicy",
    "TrendFollowing",
    "classify",
    "make_strategy",
    "mark_price",
]
