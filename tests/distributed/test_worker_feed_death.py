"""Multi-process mode: a Worker whose market source dies for good fails closed (issue 14 item 4).

Its symbols go HALTED at Risk (who="market_source"), the other Workers' symbols trade on, and
``bin/start-cluster --workers`` exits 1 at the end, saying which Worker's market died.
"""

from __future__ import annotations

import signal
from pathlib import Path

from arbor.actors.distributed.placement import assign
from arbor.actors.testing import eventually

from tests.distributed.cluster_helpers import SYMBOLS as SIM_SYMBOLS
from tests.distributed.cluster_helpers import fast_config
from tests.integration.test_feed_death import dying_recording

SYMBOLS = ("BTCUSDT", "ETHUSDT")


def recorded_config(tmp: Path, files: list[Path]):
    def write(port: int) -> Path:
        listed = ", ".join(f'"{f}"' for f in files)
        text = (f'[journal]\nenabled = false\n[run]\nsummary_interval_s = 0.5\n[cluster]\nadmin_port = {port}\n'
                f'[market]\nsource = "recorded"\nrecorded_files = [{listed}]\npaced = false\n')
        for s in SYMBOLS:
            text += f'[[symbols]]\nsymbol = "{s}"\nvenue = "binance_usdm"\nqty_step = "0.001"\n'
        path = tmp / "recorded.toml"
        path.write_text(text)
        return path
    return write


def test_worker_whose_recording_dies_halts_its_symbols_others_trade_exit_1(cluster, shared_data: Path,
                                                                           tmp_path: Path) -> None:
    """BTCUSDT's recording dies after 2,500 lines: BTCUSDT HALTED at Risk by market_source, its
    Worker reports the dead market; ETHUSDT (the other Worker) stays ACTIVE and plays its whole
    recording; at the stop the launcher exits 1 naming the Worker and the cause."""
    slots = assign(SYMBOLS, 2, {})
    btc_slot = next(k for k, v in slots.items() if "BTCUSDT" in v)
    eth_slot = next(k for k, v in slots.items() if "ETHUSDT" in v)
    assert btc_slot != eth_slot
    files = [dying_recording(shared_data, tmp_path), shared_data / "binance_usdm" / "usdm_ethusdt_20240808.gz"]
    c = cluster(workers=2, config=recorded_config(tmp_path, files))
    c.wait_started(workers=2)

    def risk_state(symbol: str) -> str:
        return c.status("coordinator").get("risk", {}).get("symbols", {}).get(symbol, {}).get("effective", "?")

    def btc_halted() -> bool:
        assert c.proc.poll() is None, c.err_path.read_text()
        return risk_state("BTCUSDT") == "HALTED" and bool(c.status(f"worker-{btc_slot}").get("market_failed"))

    eventually(btc_halted, timeout=40, interval=0.1)
    assert "not-a-receive-time" in c.status(f"worker-{btc_slot}")["market_failed"]
    halts = [e for e in c.events("coordinator") if e["ev"] == "state" and e["scope"] == "BTCUSDT" and e["new"] == "HALTED"]
    assert halts and halts[0]["who"] == "market_source", halts

    # The other Worker's symbol trades on: it plays its whole recording and Risk keeps it ACTIVE.
    def eth_done() -> bool:
        assert c.proc.poll() is None, c.err_path.read_text()
        return bool(c.status(f"worker-{eth_slot}").get("market_done"))

    eventually(eth_done, timeout=90, interval=0.2)
    eth = c.status(f"worker-{eth_slot}")
    assert not eth.get("market_failed")
    assert eth["symbols"]["ETHUSDT"]["events"] == 74_655
    assert eth["symbols"]["ETHUSDT"]["decode_failures"] == 0
    assert risk_state("ETHUSDT") == "ACTIVE"
    assert not [e for e in c.events("coordinator") if e["ev"] == "state" and e["scope"] == "ETHUSDT"]

    code, _out, err = c.stop(signal.SIGTERM, timeout=30)
    assert code == 1, err[-2000:]
    assert f"stopped for good: worker-{btc_slot} market source died" in err, err[-2000:]


def test_quarantined_symbol_in_a_worker_makes_exit_1(cluster, tmp_path: Path) -> None:
    """A symbol whose group failed past its restart intensity (stopped until an operator releases
    it) makes the multi-process run exit 1, as it does in one process."""
    def write(port: int) -> Path:
        path = fast_config(tmp_path, port)
        faults = ", ".join(f'{{actor = "BTCUSDT/feature", on_message = {n}}}' for n in (20, 40, 60, 80))
        path.write_text(f"faults = [{faults}]\n" + path.read_text()
                        + "[supervision]\nintensity = 3\nperiod_s = 60.0\nbackoff_base_ms = 0\n")
        return path

    c = cluster(workers=2, config=write)
    c.wait_started(workers=2)
    slot = next(k for k, v in assign(tuple(s[0] for s in SIM_SYMBOLS), 2, {}).items() if "BTCUSDT" in v)

    def quarantined() -> bool:
        assert c.proc.poll() is None, c.err_path.read_text()
        return c.status(f"worker-{slot}").get("symbols", {}).get("BTCUSDT", {}).get("health") == "QUARANTINED"

    eventually(quarantined, timeout=40, interval=0.1)
    code, _out, err = c.stop(signal.SIGTERM, timeout=30)
    assert code == 1, err[-2000:]
    assert f"stopped for good: symbol BTCUSDT quarantined (worker-{slot})" in err, err[-2000:]
