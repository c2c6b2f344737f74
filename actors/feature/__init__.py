"""Feature(S): numeric descriptions of a symbol's market over bounded windows."""

from arbor.actors.feature.config import FeatureConfig
from arbor.actors.feature.logic import FeatureLogic

__all__ = ["FeatureConfig", "FeatureLogic"]
