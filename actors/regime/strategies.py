"""The names the runtime used before the public strategy API (arbor.strategy), kept for callers."""

from __future__ import annotations

from arbor.strategy.api import FLAT, PositionView
from arbor.strategy.api import Strategy as StrategyPolicy
from arbor.strategy.builtin import BUILTIN as STRATEGIES
from arbor.strategy.builtin import MeanReversion, TrendFollowing
from arbor.strategy.loader import make_strategy

__all__ = ["FLAT", "STRATEGIES", "MeanReversion", "PositionView", "StrategyPolicy", "TrendFollowing", "make_strategy"]
