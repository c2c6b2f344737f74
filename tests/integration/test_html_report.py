"""The HTML report in a real headless Chromium: it loads cleanly, its images decode, its tables match report.json."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import os
import re
from argparse import Namespace
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from arbor.actors.replay.cli import whatif_command
from arbor.actors.replay.recorder import record_simulated_run
from arbor.adapters.operator.report import main as report_main
from arbor.config.loader import load_raw

from tests.browser import Page

DOCS_SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "report.png"


@pytest.fixture(scope="module")
def whatif_outputs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """report.json, the plots and report.html of a what-if of a simulated run's journal."""
    out = tmp_path_factory.mktemp("report")
    journal = record_simulated_run(out / "var", load_raw(environ={}), 180, run_id="html")
    args = Namespace(journal=journal, hbt=None, config=None, set=[], limit=None, json=out / "report.json",
                     trades_csv=out / "trades.csv", plots=out / "plots", html=out / "report.html", parity=False)
    assert whatif_command(args, out=io.StringIO(), err=io.StringIO()) == 0
    return out


async def _inspect(port: int, url: str, shot: bool) -> dict[str, Any]:
    async with aiohttp.ClientSession() as session:
        async with session.get(f"http://127.0.0.1:{port}/json/list") as resp:
            target = next(t for t in await resp.json() if t["type"] == "page")
        page = Page(await session.ws_connect(target["webSocketDebuggerUrl"], max_msg_size=64 * 2**20))
        try:
            for domain in ("Page", "Runtime", "Log"):
                await page.send(f"{domain}.enable")
            await page.send("Emulation.setDeviceMetricsOverride", width=1200, height=1800, deviceScaleFactor=1,
                            mobile=False)
            await page.send("Page.navigate", url=url)
            await page.until("document.readyState === 'complete'", 15)
            await page.until("[...document.images].every(i => i.complete)", 15)
            found: dict[str, Any] = await page.js("""(() => ({
                images: [...document.images].map(i => [i.id, i.naturalWidth, i.naturalHeight]),
                overallTrades: document.querySelector('#by-symbol tr[data-key="all"] td[data-field="trades"]')
                    ?.textContent,
                symbolTrades: [...document.querySelectorAll('#by-symbol tbody tr:not(.all) td[data-field="trades"]')]
                    .map(td => Number(td.textContent.replace(/,/g, ''))),
                tradeRows: document.querySelectorAll('#trades tbody tr').length,
                exitReasonTrades: [...document.querySelectorAll('#by-exit-reason td[data-field="trades"]')]
                    .map(td => Number(td.textContent.replace(/,/g, ''))),
                resources: performance.getEntriesByType('resource').map(e => e.name),
                title: document.title,
            }))()""")
            if shot:
                metrics = await page.send("Page.getLayoutMetrics")
                height = int(metrics["cssContentSize"]["height"])
                await page.send("Emulation.setDeviceMetricsOverride", width=1200, height=min(height, 6000),
                                deviceScaleFactor=1, mobile=False)
                found["png"] = base64.b64decode((await page.send("Page.captureScreenshot", format="png"))["data"])
            found["errors"] = list(page.errors)
            return found
        finally:
            await page.close()


def test_whatif_html_report_in_chromium(browser: int, whatif_outputs: Path, tmp_path: Path) -> None:
    """The page loads with no console error, every plot decodes, and the tables show report.json's trade count;
    a screenshot is kept (docs/report.png with ARBOR_UPDATE_DOCS=1)."""
    report = json.loads((whatif_outputs / "report.json").read_text())["report"]
    assert report["trades"] > 0, "the simulated run should close a few trades"
    html = (whatif_outputs / "report.html").read_text()
    assert not re.search(r"""(src|href)=["'](?!data:)""", html), "no external resources"
    assert "<script" not in html
    found = asyncio.run(_inspect(browser, (whatif_outputs / "report.html").as_uri(), shot=True))
    assert found["errors"] == []
    plots = sorted(p.name.removesuffix(".png") for p in (whatif_outputs / "plots").glob("*.png"))
    assert sorted(i[0].removeprefix("plot-") for i in found["images"]) == plots
    assert {"equity", "drawdown"} <= set(plots) and any(p.startswith("price-") for p in plots)
    assert all(w > 0 and h > 0 for _id, w, h in found["images"]), found["images"]
    assert found["overallTrades"] == str(report["trades"])
    assert sum(found["symbolTrades"]) == report["trades"] == found["tradeRows"] == sum(found["exitReasonTrades"])
    assert found["resources"] == []
    shot = DOCS_SCREENSHOT if os.environ.get("ARBOR_UPDATE_DOCS") == "1" else tmp_path / "report.png"
    shot.write_bytes(found["png"])
    assert found["png"][:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000


def test_daily_html_report_in_chromium(browser: int, tmp_path: Path) -> None:
    """bin/report --html on a live trade log: loads cleanly, images decode, the table shows the day's trades."""
    log = tmp_path / "trades.jsonl"
    rows = [("BTCUSDT", "LONG", "60000", "60100", "5.2", "trend long", "trend ended"),
            ("BTCUSDT", "SHORT", "60100", "60150", "-6.4", "trend short", "stop loss"),
            ("ETHUSDT", "LONG", "3000", "3004", "2.1", "stretched below vwap", "back at vwap")]
    with log.open("w") as fh:
        for i, (sym, side, entry, exit_, net, why_in, why_out) in enumerate(rows):
            fh.write(json.dumps({"trade_id": f"t{i}", "symbol": sym, "side": side, "mode": "paper",
                                 "entry_time": f"2026-12-03T09:0{i}:00.000Z", "entry_price": entry,
                                 "exit_time": f"2026-12-03T09:0{i}:30.000Z", "exit_price": exit_, "size": "0.1",
                                 "realized_pnl": net, "fees": "0.5", "net_pnl": net, "entry_mandate": why_in,
                                 "exit_reason": why_out}) + "\n")
    html = tmp_path / "daily.html"
    assert report_main(["--trades", str(log), "--out", str(tmp_path / "r"), "--plots", str(tmp_path / "plots"),
                        "--html", str(html), "--starting-equity", "100000"]) == 0
    summary = json.loads((tmp_path / "r" / "daily-2026-12-03.json").read_text())
    found = asyncio.run(_inspect(browser, html.as_uri(), shot=False))
    assert found["errors"] == []
    assert len(found["images"]) == 4 and all(w > 0 for _id, w, _h in found["images"])
    assert found["overallTrades"] == str(summary["overall"]["trades"]) == "3"
    assert found["tradeRows"] == 3
