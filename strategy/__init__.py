"""Arbor's public strategy API, version ``API_VERSION`` (docs/strategies.md).

Write a strategy by subclassing :class:`Strategy`; configure it with
``strategy = "path/to/file.py:Class"``, ``"package.module:Class"``, an ``arbor.strategies`` entry
point or a built-in name.
"""

from arbor.config.errors import ConfigError
from arbor.messages import Direction, FeatureSnapshot, Mandate, MandateKind, PositionState, Regime, TradingState
from arbor.strategy.api import API_VERSION, FLAT, Context, PositionView, Strategy
from arbor.strategy.assumptions import Assumption
from arbor.strategy.inputs import Bar, Indicator, Inputs
from arbor.strategy.loader import ENTRY_POINT_GROUP, load_strategy, resolve_strategy
from arbor.strategy.params import Param

__all__ = [
    "API_VERSION",
    "Assumption",
    "Bar",
    "Indicator",
    "Inputs",
    "ENTRY_POINT_GROUP",
    "FLAT",
    "ConfigError",
    "Context",
    "Direction",
    "FeatureSnapshot",
    "Mandate",
    "MandateKind",
    "Param",
    "PositionState",
    "PositionView",
    "Regime",
    "Strategy",
    "TradingState",
    "load_strategy",
    "resolve_strategy",
]
