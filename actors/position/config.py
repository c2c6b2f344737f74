"""Position configuration."""

from __future__ import annotations

from arbor.config.errors import ConfigError
from arbor.messages import OrderType
from attrs import frozen


@frozen(kw_only=True)
class PositionConfig:
    """``entry_order_type``: MARKET takes liquidity at once; LIMIT rests at the decision's mark price."""

    entry_order_type: OrderType = OrderType.MARKET

    def validate(self) -> PositionConfig:
        if not isinstance(self.entry_order_type, OrderType):
            raise ConfigError("position.entry_order_type", "must be MARKET or LIMIT")
        return self
