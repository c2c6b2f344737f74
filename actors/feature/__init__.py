"""Feature(S): numeric descriptions of a symbol's market over bounded windows."""

from actors.feature.config import FeatureConfig
from actors.feature.logic import FeatureLogic

__all__ = ["FeatureConfig", "FeatureLogic"]
