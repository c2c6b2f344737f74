"""Loading a user's strategy from a file, a module or an entry point, and refusing bad ones clearly."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from arbor.config.errors import ConfigError
from arbor.messages import FeatureSnapshot, MandateKind, Regime, TradingState
from arbor.strategy import Context, Strategy, load_strategy, resolve_strategy
from arbor.strategy.builtin import MeanReversion, TrendFollowing

GOOD = textwrap.dedent('''
    from arbor.strategy import Mandate, MandateKind, Param, Strategy

    class Cautious(Strategy):
        name = "cautious"
        PARAMS = {"threshold": Param(0.5, low=0.0, high=1.0), "window": Param(10, low=1, kind=int)}

        def decide(self, ctx):
            if ctx.trading_state.value != "ACTIVE":
                return (Mandate(kind=MandateKind.BLOCK, reason="not active"),)
            return (Mandate(kind=MandateKind.HOLD, reason=f"t={self.params['threshold']}"),)
''')


def snap() -> FeatureSnapshot:
    return FeatureSnapshot(symbol="BTCUSDT", ts_event_ns=1, ingest_seq=1, mid=100.0, last_price=100.0, spread_bps=1.0,
                           ret_short=0.0, ret_long=0.0, realized_vol=0.0, vol_ratio=1.0, efficiency_ratio=0.0,
                           vwap=100.0, trade_imbalance=0.0, cvd=0.0, atr=1.0, liq_count=0, liq_notional=0.0,
                           samples=30, warm=True)


def write(tmp_path: Path, text: str, name: str = "my_strategy.py") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_builtin_names_still_resolve():
    """The two built-in names give the built-in classes."""
    assert resolve_strategy("trend_following") is TrendFollowing
    assert resolve_strategy("mean_reversion") is MeanReversion


def test_file_strategy_loads_with_validated_params(tmp_path):
    """'file.py:Class' loads the class and validates its declared parameters."""
    path = write(tmp_path, GOOD)
    strategy = load_strategy(f"{path}:Cautious", {"threshold": 0.25, "window": 5})
    assert strategy.params == {"threshold": 0.25, "window": 5}
    [m] = strategy.evaluate(snap(), Regime.RANGING)
    assert m.kind is MandateKind.HOLD and m.reason == "t=0.25"
    # the same file twice is the same class (one module per file)
    assert resolve_strategy(f"{path}:Cautious") is type(strategy)


def test_context_carries_trading_state(tmp_path):
    """The strategy sees the symbol's trading state in its context."""
    strategy = load_strategy(f"{write(tmp_path, GOOD)}:Cautious")
    [m] = strategy.decide(Context(features=snap(), regime=Regime.RANGING, trading_state=TradingState.REDUCING))
    assert m.kind is MandateKind.BLOCK


@pytest.mark.parametrize(("params", "key", "words"), [
    ({"threshold": 2.0}, "strategy_params.threshold", "must be in"),
    ({"threshold": "x"}, "strategy_params.threshold", "must be a number"),
    ({"window": 2.5}, "strategy_params.window", "must be an integer"),
    ({"nope": 1}, "strategy_params.nope", "unknown parameter"),
])
def test_bad_params_name_the_parameter(tmp_path, params, key, words):
    """A parameter outside its declared type or bounds is a ConfigError naming it."""
    with pytest.raises(ConfigError) as err:
        load_strategy(f"{write(tmp_path, GOOD)}:Cautious", params)
    assert err.value.key == key and words in err.value.reason


@pytest.mark.parametrize(("text", "cls", "words"), [
    (GOOD, "Missing", "no such class"),
    ("raise RuntimeError('boom')\n", "X", "RuntimeError: boom"),
    ("class X:\n    pass\n", "X", "not a subclass of arbor.strategy.Strategy"),
    ("from arbor.strategy import Strategy\nclass X(Strategy):\n    pass\n", "X", "does not implement decide"),
    ("from arbor.strategy import Strategy\nclass X(Strategy):\n    API_VERSION = 99\n    def decide(self, ctx):\n"
     "        return ()\n", "X", "strategy API 99"),
    ("def broken(:\n", "X", "SyntaxError"),
])
def test_bad_file_names_file_class_and_reason(tmp_path, text, cls, words):
    """A load or validation failure names the file, the class and the reason."""
    path = write(tmp_path, text, f"bad_{abs(hash((text, cls))) % 10**8}.py")
    with pytest.raises(ConfigError) as err:
        resolve_strategy(f"{path}:{cls}")
    assert err.value.key == "strategy"
    assert str(path) in err.value.reason and repr(cls) in err.value.reason and words in err.value.reason


def test_missing_file_and_unknown_name_are_refused(tmp_path):
    """A missing file and an unknown plain name are refused with the reason."""
    with pytest.raises(ConfigError, match="no such file"):
        resolve_strategy(f"{tmp_path}/absent.py:X")
    with pytest.raises(ConfigError, match="unknown strategy 'nonesuch'"):
        resolve_strategy("nonesuch")


def test_module_and_entry_point_strategies_load(tmp_path, monkeypatch):
    """'package.module:Class' imports a module; an arbor.strategies entry point names an installed one."""
    pkg = tmp_path / "userpkg_s16"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "strat.py").write_text(GOOD)
    dist = tmp_path / "userpkg_s16-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: userpkg-s16\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[arbor.strategies]\ncautious_ep = userpkg_s16.strat:Cautious\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    by_module = resolve_strategy("userpkg_s16.strat:Cautious")
    assert issubclass(by_module, Strategy) and by_module.name == "cautious"
    assert resolve_strategy("cautious_ep") is by_module
    with pytest.raises(ConfigError, match="module userpkg_s16.nothere"):
        resolve_strategy("userpkg_s16.nothere:Cautious")
