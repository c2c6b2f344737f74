"""Risk limits: frozen, validated on load, money as Decimal."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

import attrs
from arbor.config.errors import ConfigError
from arbor.messages import TradingState

SECTION = "risk"
MAX_LEVERAGE = Decimal(125)  # the highest leverage any supported venue offers


def to_decimal(value: Any) -> Any:
    """Decimal from TOML ints, floats and strings; floats go through ``str`` so 0.005 stays 0.005.

    A value that is not a number is left as it is, so ``validate()`` can name the key.
    """
    if isinstance(value, (Decimal, bool)):
        return value
    try:
        return Decimal(str(value))
    except (InvalidOperation, ValueError):
        return value


def _to_trading_state(value: Any) -> Any:
    try:
        return TradingState(value)
    except ValueError:
        return value


def build(cls: type, section: str, values: Mapping[str, Any]) -> Any:
    """``cls(**values)`` validated, with an unknown key reported as a ConfigError that names it."""
    known = {f.name for f in attrs.fields(cls)}
    for key in values:
        if key not in known:
            raise ConfigError(f"{section}.{key}", "unknown key")
    cfg = cls(**values)
    cfg.validate()
    return cfg


def _dec(default: str) -> Any:
    return attrs.field(default=Decimal(default), converter=to_decimal)


@attrs.frozen(kw_only=True)
class RiskConfig:
    starting_equity: Decimal = _dec("100000")
    max_leverage: Decimal = _dec("5")
    target_leverage: Decimal = _dec("2")
    maintenance_margin_rate: Decimal = _dec("0.005")
    min_liq_distance_pct: Decimal = _dec("0.2")  # safe distance to liquidation for a new entry
    critical_liq_distance_pct: Decimal = _dec("0.1")  # an open position this close is reported
    max_symbol_notional: Decimal = _dec("20000")
    max_portfolio_notional: Decimal = _dec("60000")
    max_daily_loss_pct: Decimal = _dec("0.03")
    max_drawdown_pct: Decimal = _dec("0.05")
    max_orders_per_window: int = 30
    order_window_s: int = 60
    stale_data_ms: int = 5000
    on_symbol_failure: TradingState = attrs.field(default=TradingState.HALTED, converter=_to_trading_state)
    kill_switch_flatten: bool = False
    kill_on_stale_data: bool = False  # stale data of an open position is reported; engaging is opt-in

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> RiskConfig:
        return build(cls, SECTION, values)

    def validate(self) -> RiskConfig:
        """Raise ConfigError naming the first bad key; return self when every value is sound."""
        money = ("starting_equity", "max_leverage", "target_leverage", "max_symbol_notional", "max_portfolio_notional")
        fractions = ("maintenance_margin_rate", "min_liq_distance_pct", "critical_liq_distance_pct",
                     "max_daily_loss_pct", "max_drawdown_pct")
        for name in money:
            value = getattr(self, name)
            if not isinstance(value, Decimal) or not value.is_finite() or value <= 0:
                raise ConfigError(f"{SECTION}.{name}", f"must be a positive number, got {value!r}")
        for name in fractions:
            value = getattr(self, name)
            if not isinstance(value, Decimal) or not value.is_finite() or not 0 < value < 1:
                raise ConfigError(f"{SECTION}.{name}", f"must be a fraction in (0, 1), got {value!r}")
        for name in ("max_orders_per_window", "order_window_s", "stale_data_ms"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ConfigError(f"{SECTION}.{name}", f"must be a positive integer, got {value!r}")
        for name in ("kill_switch_flatten", "kill_on_stale_data"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"{SECTION}.{name}", "must be true or false")
        if self.max_leverage > MAX_LEVERAGE:
            raise ConfigError(f"{SECTION}.max_leverage", f"at most {MAX_LEVERAGE} (the highest any venue offers), "
                                                         f"got {self.max_leverage}")
        if self.target_leverage > self.max_leverage:
            raise ConfigError(f"{SECTION}.target_leverage",
                              f"{self.target_leverage} exceeds max_leverage {self.max_leverage}")
        if self.critical_liq_distance_pct >= self.min_liq_distance_pct:
            raise ConfigError(f"{SECTION}.critical_liq_distance_pct",
                              f"must be below min_liq_distance_pct {self.min_liq_distance_pct}")
        if self.on_symbol_failure not in (TradingState.REDUCING, TradingState.HALTED):
            raise ConfigError(f"{SECTION}.on_symbol_failure",
                              f"must be REDUCING or HALTED (fail closed), got {self.on_symbol_failure!r}")
        return self
