"""The assumption registry: declared market assumptions evaluated from features and fills."""

from arbor.actors.assumptions.registry import AssumptionRegistry, Observation, health, nearest_rank, regime_assumptions

__all__ = ["AssumptionRegistry", "Observation", "health", "nearest_rank", "regime_assumptions"]
