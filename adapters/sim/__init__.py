"""The simulated venue: a seeded market simulator, a paper matching engine and a shadow venue."""

from arbor.adapters.sim.config import PaperConfig
from arbor.adapters.sim.market import Cascade, RegimeSpan, SimMarket, SimRegime, SimSymbol, stable_seed
from arbor.adapters.sim.paper import PaperVenueLogic, VenueOrder, VenuePosition
from arbor.adapters.sim.shadow import ShadowVenueLogic

__all__ = [
    "Cascade",
    "PaperConfig",
    "PaperVenueLogic",
    "RegimeSpan",
    "ShadowVenueLogic",
    "SimMarket",
    "SimRegime",
    "SimSymbol",
    "VenueOrder",
    "VenuePosition",
    "stable_seed",
]
