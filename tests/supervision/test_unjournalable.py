"""A message that cannot be journaled is a failure supervision and Risk see, never a silent stop (issue 14)."""

from __future__ import annotations

from typing import Any

from arbor.actors.cluster.simulate import SimulatedCluster
from arbor.actors.replay.recorder import open_journal_observer
from arbor.config.settings import load_settings
from arbor.messages import ActorFailed, RawMarketEvent, SymbolRecovered
from arbor.messages.base import MarketEventKind

from tests.supervision.helpers import states, timeline

TRADE_ID_2_64 = 2**64  # msgpack refuses it: the journal cannot encode the event


def poison_nth_trade(c: SimulatedCluster, symbol: str, n: int) -> None:
    """Make the collector's decoder hand on a trade id of 2^64 for its n-th trade (past any validation)."""
    c.logic(f"{symbol}/collector").wrap_decoder(lambda decode: poisoned(decode, n))


def poisoned(decode: Any, n: int) -> Any:
    """``decode``, except that its n-th trade carries a trade id of 2^64."""
    seen = [0]

    def decoder(payload: bytes) -> list[dict[str, Any]]:
        out = decode(payload)
        for fields in out:
            if fields.get("kind") is MarketEventKind.TRADE:
                seen[0] += 1
                if seen[0] == n:
                    fields["trade_id"] = TRADE_ID_2_64
        return out

    return decoder


class Inputs:
    """Every message an actor handled (an observer that wants inputs)."""

    wants_inputs = True

    def __init__(self) -> None:
        self.handled: list[Any] = []

    def external(self, env: Any) -> None:
        pass

    def emitted(self, env: Any, receivers: tuple[str, ...]) -> None:
        pass

    def processed(self, actor_id: str, env: Any, now_ns: int) -> None:
        self.handled.append(env.payload)


def test_unjournalable_trade_id_fails_the_collector_and_the_symbol_recovers(tmp_path):
    """A 2^64 trade id fails its collector (Risk takes the symbol off ACTIVE), and the symbol's frames keep flowing."""
    journal = open_journal_observer(tmp_path, "t", {}, "rotation")
    inputs = Inputs()
    c = SimulatedCluster(load_settings({}), observers=(journal, inputs))
    poison_nth_trade(c, "BTCUSDT", 50)
    c.run_for(120)
    journal.close()
    events = timeline(c)
    failed = [m for m in events if isinstance(m, ActorFailed) and m.actor_id == "BTCUSDT/collector"]
    assert failed and "OverflowError" in failed[0].error
    assert states(events, "BTCUSDT")[:1] in (["REDUCING"], ["HALTED"])
    assert [m for m in events if isinstance(m, SymbolRecovered) and m.symbol == "BTCUSDT"]
    assert journal.healthy
    after = events.index(failed[0])
    assert sum(1 for m in events[after:] if isinstance(m, RawMarketEvent) and m.symbol == "BTCUSDT") > 1000
    assert not any(isinstance(m, RawMarketEvent) and m.trade_id == TRADE_ID_2_64 for m in inputs.handled)


def test_unjournalable_frame_under_the_threaded_runtime_is_seen_and_survived(tmp_path):
    """Under start-cluster's runtime a 2^64 trade id fails the collector, Risk sees it, and the symbol's frames flow on."""
    from arbor.actors.cluster.live import LiveCluster
    from arbor.actors.testing import eventually
    from arbor.messages import TradingState

    raw = {"run": {"var_dir": str(tmp_path / "var")}, "market": {"paced": False}}
    cluster = LiveCluster(load_settings(raw), "t", persist=False,
                          journal=lambda built_ns, restored: open_journal_observer(tmp_path, "t", {}, "rotation", built_ns=built_ns,
                                                                              restored=restored))
    cluster.runtime.actor("BTCUSDT/collector").wrap_decoder(lambda decode: poisoned(decode, 50))
    cluster.start()
    try:
        risk = cluster.runtime.dispatcher("coordinator").actors["risk"]
        hooks = cluster.runtime.dispatcher("BTCUSDT").supervision

        def failed_then_flowing() -> bool:
            return hooks.supervisors[0].restarts["collector"] >= 1 and \
                cluster.runtime.dispatcher("BTCUSDT").actors["BTCUSDT/collector"].stats()["frames"] > 2000

        eventually(failed_then_flowing, timeout=60)
        eventually(lambda: risk.controls.state("BTCUSDT") is TradingState.ACTIVE, timeout=30)  # recovered
    finally:
        cluster.stop()
    assert "OverflowError" in hooks.supervisors[0].last_failure["collector"]  # what ActorFailed told Risk
    assert cluster.journal is not None and cluster.journal.healthy
    assert cluster.stopped_for_good() == []
