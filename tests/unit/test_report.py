"""bin/report: daily figures from the trade log, in Markdown, JSON and a PNG chart."""

from __future__ import annotations

import io
import json
import math
from decimal import Decimal
from pathlib import Path

import pytest
from arbor.actors.cluster.observers import TradeLog
from arbor.actors.cluster.simulate import SimulatedCluster
from arbor.adapters.operator.report import load_trades, main, max_drawdown, stats, write_report
from arbor.config.settings import load_settings

D = Decimal


def trade(net: str, side: str = "LONG", symbol: str = "BTCUSDT", exit_time: str = "2024-08-09T01:00:00.000Z") -> dict:
    return {"symbol": symbol, "side": side, "net_pnl": D(net), "realized_pnl": D(net), "fees": D(0),
            "exit_time": exit_time}


def png_size(data: bytes) -> tuple[int, int]:
    """Width and height of a PNG, after decoding all of it (Pillow ships with matplotlib)."""
    from PIL import Image

    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(io.BytesIO(data)) as im:
        im.load()
        return im.size


def test_figures_of_a_known_set() -> None:
    """Win rate, averages, profit factor, expectancy, SQN and max drawdown match their definitions."""
    s = stats([trade("10"), trade("-4"), trade("6"), trade("-8")])
    assert (s["trades"], s["wins"], s["losses"]) == (4, 2, 2)
    assert s["win_rate"] == 0.5 and s["avg_win"] == D(8) and s["avg_loss"] == D(-6)
    assert s["expectancy"] == D("1") and s["net_pnl"] == D(4)
    mean, sd = 1.0, math.sqrt((81 + 25 + 25 + 81) / 3)
    assert s["sqn"] == pytest.approx(math.sqrt(4) * mean / sd)
    assert s["profit_factor"] == pytest.approx(16 / 12)
    assert s["max_drawdown"] == D(8)  # peak 12 after the third trade, then 4


def test_drawdown_counts_from_zero_and_empty_sets_are_blank() -> None:
    """A run that starts losing draws down from zero; no trades gives no ratios."""
    assert max_drawdown([D(-3), D(1), D(-2)]) == D(4)
    s = stats([])
    assert s["trades"] == 0 and s["win_rate"] is None and s["sqn"] is None


def test_report_agrees_with_the_trade_log_of_a_simulated_run(tmp_path: Path) -> None:
    """For a finished simulated run, the report's figures equal those recomputed from the trade log and
    the flat positions' own PnL."""
    settings = load_settings()
    log = TradeLog(tmp_path / "trades.jsonl", "paper")
    c = SimulatedCluster(settings, observers=(log,))
    c.run_for(900)
    log.close()
    raw = [json.loads(line) for line in (tmp_path / "trades.jsonl").read_text().splitlines()]
    assert len(raw) >= 3, "the simulated run should close a few trades"
    paths = write_report(tmp_path / "trades.jsonl", tmp_path / "reports")
    day = raw[-1]["exit_time"][:10]
    assert paths["json"].name == f"daily-{day}.json"
    summary = json.loads(paths["json"].read_text())
    nets = [D(t["net_pnl"]) for t in sorted(raw, key=lambda t: t["exit_time"]) if t["exit_time"][:10] == day]
    overall = summary["overall"]
    assert overall["trades"] == len(nets)
    assert D(overall["net_pnl"]) == sum(nets, D(0))
    assert overall["wins"] == sum(1 for n in nets if n > 0)
    assert overall["win_rate"] == pytest.approx(sum(1 for n in nets if n > 0) / len(nets))
    assert summary["long"]["trades"] + summary["short"]["trades"] == overall["trades"]
    assert sum(D(s["net_pnl"]) for s in summary["symbols"].values()) == D(overall["net_pnl"])
    assert D(summary["cumulative_net_pnl"][-1]) == D(overall["net_pnl"])
    for sym, s in summary["symbols"].items():
        pos = c.logic(f"{sym}/position").snapshot()
        if pos.state.value == "FLAT":  # every round trip of a flat symbol is in the log
            # each trade's figures are rounded to 8 places for the log (messages.display)
            assert abs(D(s["net_pnl"]) - (pos.realized_pnl - pos.fees)) <= D("1e-8") * s["trades"], sym
    assert png_size(paths["png"].read_bytes()) == (960, 340)
    md = paths["md"].read_text()
    assert f"# Arbor daily summary {day}" in md and f"daily-{day}.png" in md


def test_cli_writes_files_and_fails_cleanly(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """bin/report prints the files it wrote; a missing or damaged log exits 2 with a message."""
    log = tmp_path / "trades.jsonl"
    assert main(["--trades", str(log), "--out", str(tmp_path)]) == 2
    log.write_text(json.dumps({"symbol": "BTCUSDT", "side": "SHORT", "net_pnl": "1.5", "realized_pnl": "2",
                               "fees": "0.5", "exit_time": "2024-08-09T03:00:00Z"}) + "\n")
    assert main(["--trades", str(log), "--out", str(tmp_path / "r")]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 3
    assert main(["--trades", str(log), "--out", str(tmp_path / "r"), "--plots", str(tmp_path / "p"),
                 "--html", str(tmp_path / "day.html"), "--starting-equity", "1000"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 3 + 3 + 1  # md/json/png, equity/drawdown/price, html
    assert {p.name for p in (tmp_path / "p").iterdir()} == {"equity.png", "drawdown.png", "price-BTCUSDT.png"}
    assert load_trades(log)[0]["net_pnl"] == D("1.5")
    log.write_text("{not json\n")
    assert main(["--trades", str(log), "--out", str(tmp_path / "r")]) == 2
    assert "trades.jsonl:1" in capsys.readouterr().err


def test_trade_log_numbers_carry_no_decimal_residue(tmp_path: Path) -> None:
    """A trade whose accounting ends in Decimal residue is written rounded: no 28-digit tails."""
    from arbor.messages import Direction, Envelope, PositionChanged, PositionState

    log = TradeLog(tmp_path / "trades.jsonl", "paper")

    def changed(state: PositionState, qty: str, avg: str | None, realized: str, fees: str, ts: int) -> Envelope:
        pc = PositionChanged(symbol="ETHUSDT", state=state, direction=None if state is PositionState.FLAT
                             else Direction.LONG, qty=D(qty), avg_entry_price=D(avg) if avg else None,
                             realized_pnl=D(realized), fees=D(fees), ts_event_ns=ts)
        return Envelope(msg_id=ts, sender="ETHUSDT/position", receiver="risk", ts_event_ns=ts, ts_recv_ns=ts,
                        causation_id=0, payload=pc)

    log.emitted(changed(PositionState.OPEN, "1.001", "526.000000000000000000000000", "0", "0.21", 1), ())
    log.emitted(changed(PositionState.FLAT, "0", None, "-26.16000000000000000000000051",
                        "0.4200000000000000000000001", 2), ())
    log.close()
    (trade,) = [json.loads(line) for line in (tmp_path / "trades.jsonl").read_text().splitlines()]
    assert trade["entry_price"] == "526"
    assert trade["realized_pnl"] == "-26.16"
    assert trade["fees"] == "0.42"
    assert trade["net_pnl"] == "-26.58"
    assert len(trade["exit_price"].partition(".")[2]) <= 8


def test_api_documents_carry_no_decimal_residue() -> None:
    """The operator API's JSON rounds Decimals to the stated precision (8 places), trailing zeros dropped."""
    from arbor.adapters.operator.view import jsonable

    doc = jsonable({"pnl": D("-26.16000000000000000000000051"), "pct": [D(1) / D(3)], "price": D("526.000000")})
    assert doc == {"pnl": "-26.16", "pct": ["0.33333333"], "price": "526"}
