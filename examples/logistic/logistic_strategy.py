"""LogisticStrategy: trade on a logistic model's probability that the mid rises (docs/strategies.md).

Parameters: ``model`` (the model file, fitted by examples/logistic/fit.py), ``enter`` (go long
above this probability, short below 1 - enter) and ``size_hint``. An open position exits once
the probability crosses back over 0.5. Loading refuses a model whose checksum does not match its
metadata or that needs a feature this runtime does not produce.
"""

from decimal import Decimal
from pathlib import Path

from arbor.strategy import ConfigError, Direction, Indicator, Inputs, Mandate, MandateKind, Param, Regime, Strategy
from arbor.strategy.model import BUILTIN_FEATURES, LogisticModel

INDICATORS = {"rsi_5s": Indicator(kind="rsi", interval="5s", period=14),
              "z_5s": Indicator(kind="zscore", interval="5s", period=20)}


class LogisticStrategy(Strategy):
    name = "logistic"
    PARAMS = {
        "model": Param("", kind=str),
        "enter": Param(0.6, low=0.5, high=1.0),
        "size_hint": Param(0.3, low=0.0, high=1.0),
    }
    INPUTS = Inputs(indicators=INDICATORS)

    def __init__(self, params=None):
        super().__init__(params)
        if not self.params["model"]:
            raise ConfigError("strategy_params.model", "name the model file (examples/logistic/fit.py writes one)")
        self.model = LogisticModel.from_file(Path(self.params["model"]), (*BUILTIN_FEATURES, *INDICATORS))
        self._size = Decimal(repr(self.params["size_hint"]))

    def decide(self, ctx):
        if ctx.regime is Regime.UNKNOWN:
            return (Mandate(kind=MandateKind.BLOCK, reason="regime unknown"),)
        values = self.model.inputs_from(ctx.features)
        if values is None:
            return (Mandate(kind=MandateKind.HOLD, reason="indicators warming up"),)
        p = self.model.probability(values)
        pos = ctx.position
        if pos.is_open:
            against = p < 0.5 if pos.direction is Direction.LONG else p > 0.5
            if against:
                return (Mandate(kind=MandateKind.EXIT, direction=pos.direction, reason=f"p={p:.2f} turned"),)
            return (Mandate(kind=MandateKind.HOLD, reason=f"p={p:.2f}"),)
        if pos.is_flat and p >= self.params["enter"]:
            return (Mandate(kind=MandateKind.ENTRY, direction=Direction.LONG, size_hint=self._size, reason=f"p={p:.2f}"),)
        if pos.is_flat and p <= 1.0 - self.params["enter"]:
            return (Mandate(kind=MandateKind.ENTRY, direction=Direction.SHORT, size_hint=self._size,
                            reason=f"p={p:.2f}"),)
        return (Mandate(kind=MandateKind.HOLD, reason=f"p={p:.2f}"),)
