"""Risk singleton: pre-trade checks, trading states and the latched kill switch."""

from arbor.actors.risk.config import RiskConfig
from arbor.actors.risk.logic import RiskLogic

__all__ = ["RiskConfig", "RiskLogic"]
