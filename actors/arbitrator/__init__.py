"""Arbitrator singleton: one Action per symbol per cycle, by authority, within cross-symbol limits."""

from arbor.actors.arbitrator.config import ArbitratorConfig
from arbor.actors.arbitrator.logic import ArbitratorLogic

__all__ = ["ArbitratorConfig", "ArbitratorLogic"]
