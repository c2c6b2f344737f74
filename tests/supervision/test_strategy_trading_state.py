"""The strategy's context carries the symbol's trading state at Risk (the stricter of the
symbol's, the global one and the kill switch), in a running cluster and after a restart from the
store (deterministic runtime, real store)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from arbor.actors.cluster.live import LiveCluster
from arbor.actors.cluster.simulate import SimulatedCluster
from arbor.actors.testing import eventually
from arbor.config.settings import load_settings
from arbor.messages import ALL_SYMBOLS, EngageKillSwitch, ResetKillSwitch, SetTradingState, TradingState

T0 = 1_723_161_600_000_000_000
RECORDER = '''
from arbor.strategy import Mandate, MandateKind, Strategy


class StateRecorder(Strategy):
    """Holds every cycle and remembers the trading state each cycle saw."""

    name = "state_recorder"

    def __init__(self, params=None):
        super().__init__(params)
        self.seen = []

    def decide(self, ctx):
        self.seen.append(ctx.trading_state)
        return (Mandate(kind=MandateKind.HOLD, reason="recording"),)
'''


def settings(tmp_path: Path, **sections: Any) -> Any:
    path = tmp_path / "recorder.py"
    path.write_text(RECORDER)
    return load_settings({
        "feature": {"bucket_ms": 250, "short_window": 3, "long_window": 12, "min_samples": 4},
        "regime": {"decision_interval_ms": 250, "confirm_cycles": 1},
        "symbols": [{"symbol": s, "strategy": f"{path}:StateRecorder"} for s in ("BTCUSDT", "ETHUSDT")],
        **sections,
    })


def seen(c: SimulatedCluster, symbol: str) -> list[TradingState]:
    return c.logic(f"{symbol}/regime").strategy.seen


def last_seen(c: SimulatedCluster, symbol: str) -> TradingState:
    before = len(seen(c, symbol))
    c.run_for(2)
    assert len(seen(c, symbol)) > before, "no decision cycle ran"
    return seen(c, symbol)[-1]


def op(state: TradingState, scope: str = "BTCUSDT") -> SetTradingState:
    return SetTradingState(scope=scope, state=state, who="op", reason="test")


def test_strategy_sees_symbol_global_and_kill_switch_states(tmp_path: Path) -> None:
    """A pause of the symbol, of everything, and the kill switch each reach the strategy's context,
    and a resume brings ACTIVE back; the other symbol sees only what applies to it."""
    c = SimulatedCluster(settings(tmp_path), start_ns=T0)
    c.run_for(5)
    assert last_seen(c, "BTCUSDT") is TradingState.ACTIVE
    c.runtime.send_now("risk", op(TradingState.REDUCING))
    assert last_seen(c, "BTCUSDT") is TradingState.REDUCING
    assert last_seen(c, "ETHUSDT") is TradingState.ACTIVE
    c.runtime.send_now("risk", op(TradingState.HALTED, ALL_SYMBOLS))
    assert last_seen(c, "BTCUSDT") is TradingState.HALTED
    assert last_seen(c, "ETHUSDT") is TradingState.HALTED
    c.runtime.send_now("risk", op(TradingState.ACTIVE, ALL_SYMBOLS))
    assert last_seen(c, "BTCUSDT") is TradingState.REDUCING  # its own pause still holds
    assert last_seen(c, "ETHUSDT") is TradingState.ACTIVE
    c.runtime.send_now("risk", op(TradingState.ACTIVE))
    assert last_seen(c, "BTCUSDT") is TradingState.ACTIVE
    c.runtime.send_now("risk", EngageKillSwitch(who="op", reason="drill"))
    assert last_seen(c, "ETHUSDT") is TradingState.REDUCING
    c.runtime.send_now("risk", ResetKillSwitch(who="op", reason="drill over"))
    assert last_seen(c, "ETHUSDT") is TradingState.ACTIVE


def test_strategy_sees_the_restored_state_from_its_first_cycle(tmp_path: Path) -> None:
    """A symbol paused before a restart from the store is REDUCING in the restarted strategy's
    very first decision cycle (and the other symbol ACTIVE)."""
    var = tmp_path / "var"
    first = SimulatedCluster(settings(tmp_path), start_ns=T0, var_dir=var)
    first.run_for(3)
    first.runtime.send_now("risk", op(TradingState.REDUCING))
    first.run_for(1)
    end = first.clock.now_ns()
    first.close()
    second = SimulatedCluster(settings(tmp_path), start_ns=end + 5_000_000_000, var_dir=var, run_id="run2")
    second.run_for(5)
    assert seen(second, "BTCUSDT") and set(seen(second, "BTCUSDT")) == {TradingState.REDUCING}
    assert set(seen(second, "ETHUSDT")) == {TradingState.ACTIVE}
    second.close()


def test_restarted_regime_keeps_the_state_it_was_told(tmp_path: Path) -> None:
    """A Regime restarted by its supervisor (a crash) still sees the operator's pause, even though
    the failure did not change the symbol's state at Risk (REDUCING already, failure -> REDUCING)."""
    c = SimulatedCluster(settings(tmp_path, risk={"on_symbol_failure": "REDUCING"}), start_ns=T0)
    c.run_for(5)
    c.runtime.send_now("risk", op(TradingState.REDUCING))
    c.run_for(1)
    old = c.logic("BTCUSDT/regime")
    sup = c.runtime.supervision.supervisor_of("BTCUSDT/regime")  # type: ignore[union-attr]
    sup.failed("BTCUSDT/regime", None, RuntimeError("injected"))
    c.run_for(5)
    assert c.logic("BTCUSDT/regime") is not old
    assert seen(c, "BTCUSDT") and set(seen(c, "BTCUSDT")) == {TradingState.REDUCING}


def test_pykka_runtime_strategy_sees_the_pause(tmp_path: Path) -> None:
    """On the pykka runtime too, an operator's pause and resume reach the strategy's context."""
    s = settings(tmp_path, run={"tick_interval_ms": 50, "var_dir": str(tmp_path / "var")})
    c = LiveCluster(s, "live-test")
    c.start()
    try:
        def latest() -> TradingState | None:
            regime: Any = c.runtime.ask("BTCUSDT", lambda d: d.actors["BTCUSDT/regime"])
            got = c.runtime.ask("BTCUSDT", lambda d: list(regime.strategy.seen[-1:]))
            return got[0] if got else None

        eventually(lambda: latest() is TradingState.ACTIVE, timeout=30)
        c.send("risk", op(TradingState.REDUCING))
        eventually(lambda: latest() is TradingState.REDUCING, timeout=10)
        c.send("risk", op(TradingState.ACTIVE))
        eventually(lambda: latest() is TradingState.ACTIVE, timeout=10)
    finally:
        c.stop()
