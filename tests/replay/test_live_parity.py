"""Parity: the what-if of a live simulated-venue session's journal reproduces its decisions and PnL."""

from __future__ import annotations

import copy
import io
from argparse import Namespace
from decimal import Decimal
from pathlib import Path

import pytest
from arbor.actors.replay.cli import whatif_command
from arbor.actors.replay.parity import PNL_TOLERANCE_BPS, DecisionLog, RecordedRun, compare, recorded_run
from arbor.actors.replay.whatif import journal_config, journal_inputs, journal_metadata, journal_ticks, run_whatif
from arbor.config.loader import deep_merge, load_raw
from arbor.config.settings import build_settings
from arbor.messages.codec import Codec

from tests.replay.test_audit_restart import run_once

SESSION_S = 20.0


def session_config(var_dir: Path) -> dict:
    """The default simulated market, paper venue, ticks and decision cycle, with two changes:

    - the features warm up sooner (250 ms buckets), so a 20 s session trades;
    - trend following's stop and take profit are out of reach (1000 ATRs). Those two exits compare
      the mark with the position's entry price, which is a fill price, and a fill may legitimately
      differ by the live processing delay (docs/replay.md, "Parity"): near the threshold the two runs
      then exit for different reasons. Every other decision depends on the market alone.

    - no cross-symbol cap binds (a position per symbol, the portfolio notional cap at the sum of the
      symbols' caps). Which of two symbols' requests the live Arbitrator hears first is thread
      timing; the what-if's order is the deterministic scheduler's, so with a binding cap a loaded
      machine makes the two runs refuse different symbols (seen under the full suite).

    The one-second decision cycle is far longer than an order's round trip (20 ms latency + a
    100 ms tick + the live processing delay), so no cycle sees an order in flight in one run and
    filled in the other."""
    raw = deep_merge(load_raw(environ={}), {
        "run": {"var_dir": str(var_dir)},
        "feature": {"bucket_ms": 250, "short_window": 4, "long_window": 12, "min_samples": 4},
        "regime": {"confirm_cycles": 1},
    })
    n = len(raw["symbols"])
    raw["arbitrator"] = {**raw["arbitrator"], "max_concurrent_positions": n}
    raw["risk"] = {**raw["risk"], "max_portfolio_notional": str(n * Decimal(raw["risk"]["max_symbol_notional"]))}
    for sym in raw["symbols"]:
        if sym.get("strategy", "trend_following") == "trend_following":
            sym["strategy_params"] = {**sym.get("strategy_params", {}), "stop_atr": 1000.0, "take_profit_atr": 1000.0}
    return raw


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A journal of a start-cluster session (pykka threads, wall clock, simulated venue), fresh var dir."""
    var_dir = tmp_path_factory.mktemp("parity")
    _cluster, journal = run_once(var_dir, "parity", SESSION_S, session_config(var_dir))
    return journal


@pytest.fixture(scope="module")
def replayed(session: Path):
    meta = journal_metadata(session)
    settings = build_settings(journal_config(meta, None, ()))
    assert journal_ticks(meta, settings), "at its own configuration a what-if replays the recorded ticks"
    log = DecisionLog()
    result = run_whatif(settings, journal_inputs(session, Codec(), ticks=True), recorded_ticks=True, observers=(log,))
    live = recorded_run(session, settings.risk.starting_equity)
    return live, result, log


def test_live_session_reached_orders_and_fills(replayed) -> None:
    """The session is worth comparing: it placed several orders and they filled."""
    live, _result, _log = replayed
    assert not live.restored
    assert sum(len(v) for v in live.log.orders.values()) >= 4
    assert len(live.log.fills) >= 4


def test_whatif_reproduces_the_live_decisions(replayed) -> None:
    """Every Action, verdict and PlaceOrder of each symbol is the same, in the same order."""
    live, result, log = replayed
    parity = compare(live, result.report, log)
    assert parity.decisions_equal, parity.first_difference
    assert parity.decisions == sum(len(v) for v in log.decisions.values()) > 0


def test_whatif_pnl_within_the_stated_tolerance_and_explained_by_fills(replayed) -> None:
    """PnL differs by at most 5 bps of the orders filled differently, and the fills account for all of it."""
    live, result, log = replayed
    parity = compare(live, result.report, log)
    assert parity.tolerance == parity.differing_notional * PNL_TOLERANCE_BPS / 10_000
    assert abs(parity.difference) <= parity.tolerance, parity.render()
    assert abs(parity.difference - parity.explained) <= Decimal("0.01"), parity.render()
    assert parity.ok


def test_a_changed_decision_or_a_lost_fill_is_caught(replayed) -> None:
    """An altered decision breaks decision equality; a fill missing from one side leaves a residue."""
    live, result, log = replayed
    altered = copy.deepcopy(log)
    sym = next(iter(altered.orders))
    side, qty, *rest = altered.decisions[(sym, "order")][0]
    altered.decisions[(sym, "order")][0] = (side, qty * 2, *rest)
    assert not compare(live, result.report, altered).decisions_equal

    lost = copy.deepcopy(live.log)
    coid = lost.orders[sym][0]
    lost.fills[coid] = []
    parity = compare(RecordedRun(report=live.report, log=lost, restored=False), result.report, log)
    assert not parity.pnl_within and not parity.ok


def test_whatif_command_parity_option(session: Path) -> None:
    """bin/replay whatif --journal J --parity prints the comparison and exits 0 when it holds."""
    out = io.StringIO()
    args = Namespace(journal=session, hbt=None, config=None, set=[], limit=None, json=None, trades_csv=None,
                     parity=True)
    assert whatif_command(args, out=out, err=io.StringIO()) == 0, out.getvalue()
    assert "parity with the live session: OK" in out.getvalue()
    assert "decisions" in out.getvalue() and "identical" in out.getvalue()
