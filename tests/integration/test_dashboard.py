"""The dashboard in a real headless Chromium, driven over the DevTools protocol, against a live cluster."""

from __future__ import annotations

import asyncio
import base64
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from arbor.actors.cluster.build import build_actors, market_frames, market_venue, supervisor_for
from arbor.actors.cluster.observers import SummaryBoard
from arbor.actors.runtime import HandlerClock, ThreadedRuntime
from arbor.adapters.operator import OperatorSurface
from arbor.config.settings import load_settings

from tests.browser import Page

TOKEN = "dashboard-test-token-0123456789"
DOCS_SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "dashboard.png"
FAST = {
    "run": {"tick_interval_ms": 20},
    "feature": {"bucket_ms": 200, "min_samples": 5, "short_window": 3, "long_window": 10},
    "regime": {"decision_interval_ms": 200, "confirm_cycles": 2},
    "risk": {"max_orders_per_window": 1000},
    "assumptions": [{"name": "tight_spread", "observation": "spread_bps", "max": 1000.0, "quantile": 0.95,
                     "min_samples": 3}],
}
@pytest.fixture()
def live(tmp_path: Path) -> Iterator[tuple[str, tuple[str, ...], list[str]]]:
    settings = load_settings(FAST)
    clock = HandlerClock()
    symbols = tuple(s.symbol for s in settings.symbols)
    surface = OperatorSurface(symbols, clock, tmp_path / "var", TOKEN, port=0, cycle_interval_s=0.2)
    board = SummaryBoard(symbols)
    actors = build_actors(settings, clock, "dash-test")
    runtime = ThreadedRuntime(actors, clock, observers=(board, *surface.observers), tick_interval_s=0.02,
                              supervise=supervisor_for(settings, clock, "dash-test"))
    runtime.start()
    try:
        url = surface.start(runtime, board)
        runtime.feed(market_frames(settings, clock.now_ns()), market_venue(settings), paced=True)
        yield url, symbols, sorted(actors)
    finally:
        surface.stop()
        runtime.stop(timeout=4.0)


def test_dashboard_shows_cluster_and_pauses_a_symbol(browser: int, live: tuple[str, tuple[str, ...], list[str]],
                                                  tmp_path: Path) -> None:
    """The page (token entered once) shows positions, the supervision tree and each symbol's assumption
    health; pause on a symbol, confirmed,
    turns its state to REDUCING; a screenshot is taken (docs/dashboard.png with ARBOR_UPDATE_DOCS=1)."""
    url, symbols, actor_ids = live
    sym = symbols[0]

    async def run() -> dict[str, Any]:
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://127.0.0.1:{browser}/json/list") as resp:
                targets = await resp.json()
            target = next(t for t in targets if t["type"] == "page")
            page = Page(await session.ws_connect(target["webSocketDebuggerUrl"], max_msg_size=64 * 2**20))
            try:
                await page.send("Page.enable")
                await page.send("Emulation.setDeviceMetricsOverride", width=1400, height=1100, deviceScaleFactor=1,
                                mobile=False)
                await page.send("Page.navigate", url=url + "/?refresh=300")
                await page.until("document.readyState === 'complete' && !!document.getElementById('token-form')", 15)
                await page.until("!document.getElementById('token-form').hidden", 5)
                await page.js(f"document.getElementById('token').value = {json.dumps(TOKEN)};"
                              "document.getElementById('token-form').requestSubmit(); true")
                found: dict[str, Any] = {}
                found["stored"] = await page.js(f"sessionStorage.getItem('arborOperatorToken') === {json.dumps(TOKEN)}")
                found["tree"] = await page.until(
                    f"(() => {{ const ids = [...document.querySelectorAll('#tree [data-actor]')].map(e => e.dataset.actor);"
                    f" return {json.dumps(actor_ids)}.every(a => ids.includes(a)) && ids; }})()", 20)
                found["positions"] = await page.until(
                    "(() => { const r = [...document.querySelectorAll('#positions tbody tr')].map(e => e.dataset.symbol);"
                    " return r.length > 0 && r; })()", 40)
                found["assumptions"] = await page.until(
                    "(() => { const r = [...document.querySelectorAll('#assumptions tbody tr')]"
                    ".filter(e => e.dataset.status === 'OK').map(e => e.dataset.symbol);"
                    f" return r.length === {len(symbols)} && r; }})()", 30)
                await page.until(f"!!document.getElementById('pause-{sym}')", 10)
                await page.js(f"document.getElementById('pause-{sym}').click(); true")
                found["state"] = await page.until(
                    f"(() => {{ const c = document.querySelector('#symbols tr[data-symbol=\"{sym}\"] td[data-state]');"
                    f" return c && c.dataset.state === 'REDUCING' && c.dataset.state; }})()", 10)
                await page.until("document.querySelectorAll('#events li').length > 0", 10)
                await page.until("document.getElementById('status').textContent === 'running'"
                                 " || document.getElementById('status').textContent === 'paused'", 5)
                shot = await page.send("Page.captureScreenshot", format="png")
                found["png"] = base64.b64decode(shot["data"])
                found["dialogs"] = list(page.dialogs)
                return found
            finally:
                await page.close()

    found = asyncio.run(run())
    assert found["stored"] is True
    assert set(found["positions"]) <= set(symbols)
    assert found["state"] == "REDUCING"
    assert sorted(found["assumptions"]) == sorted(symbols)  # each symbol's assumption, healthy, in the table
    assert any(sym in d and "Pause" in d for d in found["dialogs"])
    # The test keeps its screenshot in its own temp dir; ARBOR_UPDATE_DOCS=1 refreshes docs/.
    shot = DOCS_SCREENSHOT if os.environ.get("ARBOR_UPDATE_DOCS") == "1" else tmp_path / "dashboard.png"
    shot.parent.mkdir(parents=True, exist_ok=True)
    shot.write_bytes(found["png"])
    assert shot.stat().st_size > 10_000
    assert found["png"][:8] == b"\x89PNG\r\n\x1a\n"
