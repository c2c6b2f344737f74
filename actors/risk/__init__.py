"""Risk singleton: pre-trade checks, trading states and the latched kill switch."""

from actors.risk.config import RiskConfig
from actors.risk.logic import RiskLogic

__all__ = ["RiskConfig", "RiskLogic"]
