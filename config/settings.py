"""The validated settings of a cluster, built from the merged configuration tree.

Each section is a frozen attrs class; unknown keys, wrong types and bad values are errors that
name the dotted key (``risk.max_leverage``) and the reason.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from enum import Enum
from typing import Any

import attrs
import cattrs
from arbor.config.errors import ConfigError
from attrs import field, frozen

MODES = ("paper", "shadow", "live")
MARKET_SOURCES = ("sim", "recorded")
VENUES = ("sim", "binance_usdm", "binance_spot", "hyperliquid")
_SYMBOL_RE = re.compile(r"^[A-Z0-9]{2,20}$")


@frozen(kw_only=True)
class RunSettings:
    mode: str = "paper"
    live_enabled: bool = False
    var_dir: str = "var"
    tick_interval_ms: int = 100
    summary_interval_s: float = 5.0
    switch_interval_ms: float = 0.5
    log_level: str = "INFO"
    venue_rest_url: str = ""  # live order entry: REST base (default: Binance USD-M, testnet per market.testnet)
    venue_ws_url: str = ""  # live order entry: user-data websocket base
    venue_timeout_s: float = 10.0  # one order-entry request; past it the order's fate is unknown until queried

    def validate(self) -> None:
        if self.mode not in MODES:
            raise ConfigError("run.mode", f"must be one of {', '.join(MODES)}, got {self.mode!r}")
        if self.mode == "live" and not self.live_enabled:
            raise ConfigError("run.live_enabled", "live mode sends real orders and must be enabled explicitly")
        if self.mode == "live":
            from arbor.adapters.credentials import MissingCredential, binance_credentials_from_env

            try:
                binance_credentials_from_env()  # only checks presence; the value is never kept or shown here
            except MissingCredential as exc:
                raise ConfigError("run.mode", f"live trading: {exc}") from None
        for key in ("venue_rest_url", "venue_ws_url"):
            url = getattr(self, key)
            if url and not url.startswith(("http://", "https://", "ws://", "wss://")):
                raise ConfigError(f"run.{key}", f"must be an http(s):// or ws(s):// URL, got {url!r}")
        if self.venue_timeout_s <= 0:
            raise ConfigError("run.venue_timeout_s", "must be > 0")
        if self.tick_interval_ms <= 0:
            raise ConfigError("run.tick_interval_ms", "must be > 0")
        if self.summary_interval_s <= 0:
            raise ConfigError("run.summary_interval_s", "must be > 0")
        if self.switch_interval_ms <= 0:
            raise ConfigError("run.switch_interval_ms", "must be > 0")
        if self.log_level.upper() not in ("TRACE", "DEBUG", "INFO", "SUCCESS", "WARNING", "ERROR", "CRITICAL"):
            raise ConfigError("run.log_level", f"unknown level {self.log_level!r}")


@frozen(kw_only=True)
class MarketSettings:
    source: str = "sim"
    seed: int = 42
    recorded_files: tuple[str, ...] = ()
    paced: bool = True
    ws_url: str = ""  # streamed sources: websocket base override (default: the venue's, per testnet)
    rest_url: str = ""  # streamed sources: REST base for depth snapshots
    testnet: bool = False  # streamed sources and live order entry: the venue's testnet endpoints
    streams: tuple[str, ...] = ("trade", "bookTicker", "depth@100ms")
    stale_after_s: float = 10.0  # no frame for this long: the feed is stale (symbols to REDUCING)

    def validate(self) -> None:
        sources = (*MARKET_SOURCES, "binance_usdm", "binance_spot", "hyperliquid")
        if self.source not in sources:
            raise ConfigError("market.source", f"must be one of {', '.join(sources)}, got {self.source!r}")
        if self.source == "recorded" and not self.recorded_files:
            raise ConfigError("market.recorded_files", "a recorded market needs at least one file")
        if self.ws_url and not self.ws_url.startswith(("ws://", "wss://")):
            raise ConfigError("market.ws_url", f"must be a ws:// or wss:// URL, got {self.ws_url!r}")
        if self.rest_url and not self.rest_url.startswith(("http://", "https://")):
            raise ConfigError("market.rest_url", f"must be an http:// or https:// URL, got {self.rest_url!r}")
        if not self.streams or not all(isinstance(x, str) and x for x in self.streams):
            raise ConfigError("market.streams", "name at least one stream (trade, bookTicker, depth@100ms, ...)")
        if self.stale_after_s <= 0:
            raise ConfigError("market.stale_after_s", "must be > 0")


@frozen(kw_only=True)
class SymbolSettings:
    symbol: str
    venue: str = "sim"
    strategy: str = "trend_following"
    strategy_params: dict[str, Any] = field(factory=dict)
    qty_step: Decimal = Decimal("0.001")
    tick_size: Decimal = Decimal("0.1")
    start_price: Decimal = Decimal("100")
    events_per_s: float = 20.0
    base_vol: float = 0.0004

    def validate(self, key: str) -> None:
        if not _SYMBOL_RE.match(self.symbol):
            raise ConfigError(f"{key}.symbol", f"{self.symbol!r} is not an upper-case venue symbol")
        if self.venue not in VENUES:
            raise ConfigError(f"{key}.venue", f"must be one of {', '.join(VENUES)}, got {self.venue!r}")
        for name in ("qty_step", "tick_size", "start_price"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{key}.{name}", "must be > 0")
        if self.events_per_s <= 0:
            raise ConfigError(f"{key}.events_per_s", "must be > 0")
        if self.base_vol <= 0:
            raise ConfigError(f"{key}.base_vol", "must be > 0")


def _converter() -> cattrs.Converter:
    conv = cattrs.Converter(forbid_extra_keys=True)

    def to_decimal(value: Any, _t: Any) -> Decimal:
        if isinstance(value, bool):
            raise ValueError("expected a number")
        if isinstance(value, float):
            value = repr(value)
        try:
            dec = Decimal(str(value))
        except InvalidOperation:
            raise ValueError(f"{value!r} is not a number") from None
        if not dec.is_finite():
            raise ValueError("must be finite")
        if abs(dec) > MAX_NUMBER:
            raise ValueError(f"out of range: {value} (at most {MAX_NUMBER:.0e} in magnitude)")
        return dec

    def to_int(value: Any, _t: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"expected an integer, got {value!r}")
        return value

    def to_float(value: Any, _t: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"expected a number, got {value!r}")
        return float(value)

    def to_bool(value: Any, _t: Any) -> bool:
        if not isinstance(value, bool):
            raise ValueError(f"expected true or false, got {value!r}")
        return value

    def to_enum(value: Any, t: type[Enum]) -> Any:
        try:
            return t(value)
        except ValueError:
            raise ValueError(f"must be one of {', '.join(str(m.value) for m in t)}, got {value!r}") from None

    def to_str(value: Any, t: Any) -> str:
        if isinstance(t, type) and issubclass(t, Enum):  # str-based enums dispatch here too
            return to_enum(value, t)
        if not isinstance(value, str):
            raise ValueError(f"expected a string, got {value!r}")
        return value

    conv.register_structure_hook_func(lambda t: isinstance(t, type) and issubclass(t, Enum), to_enum)
    conv.register_structure_hook(Decimal, to_decimal)
    conv.register_structure_hook(int, to_int)
    conv.register_structure_hook(float, to_float)
    conv.register_structure_hook(bool, to_bool)
    conv.register_structure_hook(str, to_str)
    return conv


_PATH_RE = re.compile(r"^(?P<reason>.*?) @ \$(?P<path>.*)$")


def structure_section(conv: cattrs.Converter, data: Any, cls: type, key: str) -> Any:
    """Structure one section, turning cattrs' errors into a ConfigError naming the first bad key."""
    if not isinstance(data, Mapping):
        raise ConfigError(key, f"must be a table, got {type(data).__name__}")
    try:
        return conv.structure(dict(data), cls)
    except Exception as exc:  # cattrs raises ExceptionGroups; transform_error flattens them
        messages = cattrs.transform_error(exc) if isinstance(exc, cattrs.BaseValidationError) else [str(exc)]
        first = messages[0] if messages else str(exc)
        m = _PATH_RE.match(first)
        if m is None:
            raise ConfigError(key, first) from None
        path = m.group("path")
        reason = m.group("reason")
        extra = re.match(r"extra fields found \((.*)\)", reason)
        if extra:
            return_key = f"{key}{path}.{extra.group(1).split(',')[0].strip()}"
            raise ConfigError(return_key, "unknown key") from None
        dotted = re.sub(r"\[(\d+)\]", r"[\1]", path)
        raise ConfigError(f"{key}{dotted}", reason) from None


def _section_classes() -> dict[str, type]:
    # Imported here, not at module top, so that importing config never imports every actor.
    from arbor.actors.arbitrator.config import ArbitratorConfig
    from arbor.actors.distributed.config import ClusterConfig
    from arbor.actors.executor.config import ExecutorConfig
    from arbor.actors.feature.config import FeatureConfig
    from arbor.actors.position.config import PositionConfig
    from arbor.actors.regime.config import RegimeConfig
    from arbor.actors.risk.config import RiskConfig
    from arbor.adapters.operator.config import OperatorConfig
    from arbor.adapters.sim.config import PaperConfig
    from arbor.messages.journal.config import JournalConfig
    from arbor.supervision.config import SupervisionConfig

    return {
        "risk": RiskConfig,
        "arbitrator": ArbitratorConfig,
        "executor": ExecutorConfig,
        "position": PositionConfig,
        "feature": FeatureConfig,
        "regime": RegimeConfig,
        "paper": PaperConfig,
        "supervision": SupervisionConfig,
        "operator": OperatorConfig,
        "journal": JournalConfig,
        "cluster": ClusterConfig,
    }


@frozen(kw_only=True)
class Settings:
    run: RunSettings
    market: MarketSettings
    symbols: tuple[SymbolSettings, ...]
    risk: Any
    arbitrator: Any
    executor: Any
    position: Any
    feature: Any
    regime: Any
    paper: Any
    supervision: Any
    operator: Any
    journal: Any
    faults: tuple[Any, ...] = ()
    cluster: Any = None
    assumptions: tuple[Any, ...] = ()  # AssumptionSettings: the configured (risk limits') assumptions

    def assumptions_for(self, name: str) -> tuple[Any, ...]:
        """The configured assumptions that apply to one symbol, as plain ``Assumption`` values."""
        from arbor.strategy.assumptions import Assumption

        fields = [f.name for f in attrs.fields(Assumption)]
        return tuple(Assumption(**{f: getattr(a, f) for f in fields}) for a in self.assumptions
                     if "*" in a.symbols or name in a.symbols)

    def symbol(self, name: str) -> SymbolSettings:
        for s in self.symbols:
            if s.symbol == name:
                return s
        raise KeyError(name)

    def regime_for(self, name: str) -> Any:
        """The regime config of one symbol: the shared one with that symbol's strategy."""
        s = self.symbol(name)
        return attrs.evolve(self.regime, strategy=s.strategy, strategy_params=dict(s.strategy_params))


MAX_INT = 2**53  # integers beyond this are not exact as JSON numbers or floats, and no setting needs them
MAX_NUMBER = Decimal(10) ** 15  # no price, amount or limit is this large; 1e30 is a typo or an attack


def check_numbers(value: Any, key: str = "") -> None:
    """Every number anywhere in the raw tree is finite and of sane size, else a ConfigError naming it.

    One generic check (not a rule per key): TOML accepts ``nan``, ``inf`` and integers of any size,
    and a NaN compares false against every limit, so it would pass each ``<= 0`` check after it.
    """
    if isinstance(value, Mapping):
        for k, v in value.items():
            check_numbers(v, f"{key}.{k}" if key else str(k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            check_numbers(v, f"{key}[{i}]")
    elif isinstance(value, bool):
        return
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise ConfigError(key, f"must be a finite number, got {value!r}")
        if abs(value) > MAX_NUMBER:
            raise ConfigError(key, f"out of range: {value!r} (at most {MAX_NUMBER:.0e} in magnitude)")
    elif isinstance(value, int) and abs(value) > MAX_INT:
        raise ConfigError(key, f"out of range: {value} (at most 2^53 in magnitude)")


def build_settings(raw: Mapping[str, Any]) -> Settings:
    """Validate the merged configuration tree into Settings, or raise ConfigError."""
    check_numbers(raw)
    conv = _converter()
    known = {"run", "market", "symbols", "faults", "assumptions", *_section_classes()}
    for key in raw:
        if key not in known:
            raise ConfigError(key, f"unknown section (known: {', '.join(sorted(known))})")
    run = structure_section(conv, raw.get("run", {}), RunSettings, "run")
    run.validate()
    market = structure_section(conv, raw.get("market", {}), MarketSettings, "market")
    market.validate()
    raw_symbols = raw.get("symbols", [])
    if not isinstance(raw_symbols, list) or not raw_symbols:
        raise ConfigError("symbols", "configure at least one [[symbols]] entry")
    symbols = []
    seen: set[str] = set()
    for i, entry in enumerate(raw_symbols):
        key = f"symbols[{i}]"
        s = structure_section(conv, entry, SymbolSettings, key)
        s.validate(key)
        if s.symbol in seen:
            raise ConfigError(f"{key}.symbol", f"{s.symbol} is configured twice")
        if market.source == "sim" and s.venue != "sim":
            raise ConfigError(f"{key}.venue", "the simulated market only serves venue 'sim'")
        seen.add(s.symbol)
        symbols.append(s)
    sections: dict[str, Any] = {}
    for key, cls in _section_classes().items():
        section = structure_section(conv, raw.get(key, {}), cls, key)
        validate = getattr(section, "validate", None)
        if validate is not None:
            validate()
        sections[key] = section
    from arbor.supervision.faults import FaultSpec

    raw_faults = raw.get("faults", [])
    if not isinstance(raw_faults, list):
        raise ConfigError("faults", "must be an array of [[faults]] tables")
    faults = tuple(structure_section(conv, f, FaultSpec, f"faults[{i}]").validate(f"faults[{i}]")
                   for i, f in enumerate(raw_faults))
    assumptions = _assumptions(conv, raw.get("assumptions", []), seen)
    settings = Settings(run=run, market=market, symbols=tuple(symbols), faults=faults, assumptions=assumptions,
                        **sections)
    # Each symbol's strategy and its parameters are checked now, not at the first decision.
    from arbor.strategy.loader import load_strategy

    for i, s in enumerate(settings.symbols):
        try:
            load_strategy(s.strategy, s.strategy_params)
        except ConfigError as exc:
            raise ConfigError(f"symbols[{i}].{exc.key}", exc.reason) from None
    return settings


def _assumptions(conv: cattrs.Converter, raw: Any, symbols: set[str]) -> tuple[Any, ...]:
    """The ``[[assumptions]]`` tables, validated: fields, the symbols they name, one name per symbol."""
    from arbor.strategy.assumptions import AssumptionSettings

    if not isinstance(raw, list):
        raise ConfigError("assumptions", "must be an array of [[assumptions]] tables")
    out = []
    taken: set[tuple[str, str]] = set()
    for i, entry in enumerate(raw):
        key = f"assumptions[{i}]"
        a = structure_section(conv, entry, AssumptionSettings, key)
        a.validate(key)
        if not a.symbols:
            raise ConfigError(f"{key}.symbols", 'name the symbols it applies to ("*": all)')
        for sym in a.symbols:
            if sym != "*" and sym not in symbols:
                raise ConfigError(f"{key}.symbols", f"{sym} is not a configured symbol")
        for sym in (symbols if "*" in a.symbols else a.symbols):
            if (sym, a.name) in taken:
                raise ConfigError(f"{key}.name", f"{a.name!r} is configured twice for {sym}")
            taken.add((sym, a.name))
        out.append(a)
    return tuple(out)


def load_settings(overrides: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    """Defaults merged with ``overrides`` (a nested dict, as if from a TOML file), validated."""
    from arbor.config.loader import deep_merge, load_raw

    raw = load_raw(environ={} if environ is None else environ)
    return build_settings(deep_merge(raw, dict(overrides or {})))
