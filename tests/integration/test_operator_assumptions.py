"""Assumption health on the operator surface of a real ThreadedRuntime cluster (simulated venue,
paced feed, 127.0.0.1): /api/assumptions behind the token, the Prometheus gauges, the alert event,
and Risk holding the symbol in REDUCING."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from arbor.actors.cluster.build import build_actors, market_frames, market_venue, supervisor_for
from arbor.actors.cluster.observers import SummaryBoard
from arbor.actors.runtime import HandlerClock, ThreadedRuntime
from arbor.actors.testing import eventually
from arbor.adapters.operator import OperatorSurface
from arbor.config.settings import load_settings
from prometheus_client.parser import text_string_to_metric_families

from tests.http_helpers import call_json, get_ok

TOKEN = "test-operator-token-0123456789"
SETTINGS = {
    "run": {"tick_interval_ms": 20},
    "feature": {"bucket_ms": 200, "min_samples": 5, "short_window": 3, "long_window": 10},
    "regime": {"decision_interval_ms": 200, "confirm_cycles": 2},
    # A feed can never be this fast: BROKEN as soon as the window holds 3 samples, and BTCUSDT held down.
    "assumptions": [
        {"name": "instant_feed", "symbols": ["BTCUSDT"], "observation": "feed_latency_ms", "max": 1e-6,
         "quantile": 0.5, "min_samples": 3, "on_broken": "reduce"},
        {"name": "tight_spread", "observation": "spread_bps", "max": 1000.0, "quantile": 0.95, "min_samples": 3},
    ],
}


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    settings = load_settings(SETTINGS)
    clock = HandlerClock()
    symbols = tuple(s.symbol for s in settings.symbols)
    surface = OperatorSurface(symbols, clock, tmp_path_factory.mktemp("var"), TOKEN, port=0, cycle_interval_s=0.2)
    board = SummaryBoard(symbols)
    runtime = ThreadedRuntime(build_actors(settings, clock, "assume-test"), clock,
                              observers=(board, *surface.observers), tick_interval_s=0.02,
                              supervise=supervisor_for(settings, clock, "assume-test"))
    runtime.start()
    try:
        base = surface.start(runtime, board)
        runtime.feed(market_frames(settings, clock.now_ns()), market_venue(settings), paced=True)
        yield base
    finally:
        surface.stop()
        runtime.stop(timeout=4.0)


def get(url: str, path: str) -> Any:
    return get_ok(url + path, TOKEN, timeout=5)


def row(url: str, symbol: str, name: str) -> dict[str, Any] | None:
    return next((r for r in get(url, "/api/assumptions")["symbols"].get(symbol, []) if r["name"] == name), None)


def test_assumptions_endpoint_needs_the_token(url: str) -> None:
    """/api/assumptions answers 401 without the token or with a wrong one."""
    assert call_json(url + "/api/assumptions", "GET", None, None, timeout=5)[0] == 401
    assert call_json(url + "/api/assumptions", "GET", None, "wrong-token-wrong-token", timeout=5)[0] == 401


def test_broken_assumption_is_shown_with_value_and_since(url: str) -> None:
    """The impossible feed latency is BROKEN with its measured value and since when; the spread one OK."""
    eventually(lambda: (r := row(url, "BTCUSDT", "instant_feed")) is not None and r["status"] == "BROKEN", timeout=30)
    broken = row(url, "BTCUSDT", "instant_feed")
    assert broken is not None and broken["value"] > 1e-6 and broken["since"].endswith("Z")
    assert broken["bound"] == "<= 1e-06" and broken["on_broken"] == "reduce"
    eventually(lambda: (r := row(url, "ETHUSDT", "tight_spread")) is not None and r["status"] == "OK", timeout=30)
    body = get(url, "/api/assumptions")
    assert "instant_feed" not in [r["name"] for r in body["symbols"]["ETHUSDT"]]  # configured for BTCUSDT only
    assert body["counts"]["BROKEN"] >= 1 and body["holds"]["BTCUSDT"]["broken"] == ["instant_feed"]


def test_risk_holds_the_symbol_in_reducing(url: str) -> None:
    """on_broken = "reduce": Risk has BTCUSDT in REDUCING, set by "assumptions"; ETHUSDT stays ACTIVE."""
    eventually(lambda: get(url, "/api/risk/status")["symbols"]["BTCUSDT"]["state"] == "REDUCING", timeout=30)
    assert get(url, "/api/risk/status")["symbols"]["ETHUSDT"]["state"] == "ACTIVE"


def test_metrics_carry_the_assumption_gauges(url: str) -> None:
    """/metrics: arbor_assumption_status is 2 (BROKEN) for BTCUSDT's instant_feed, 0 for an OK one; the
    value gauge and the change counter (labelled by the status entered) follow."""
    def samples() -> dict[tuple[str, str, str], float]:
        text = call_json(url + "/metrics", "GET", None, TOKEN, timeout=5)[1]
        return {(s.name, s.labels.get("symbol", ""), s.labels.get("assumption", "") + s.labels.get("status", "")):
                s.value for f in text_string_to_metric_families(text) for s in f.samples}

    eventually(lambda: samples().get(("arbor_assumption_status", "BTCUSDT", "instant_feed")) == 2.0, timeout=30)
    eventually(lambda: samples().get(("arbor_assumption_status", "ETHUSDT", "tight_spread")) == 0.0, timeout=30)
    got = samples()
    assert got[("arbor_assumption_value", "BTCUSDT", "instant_feed")] > 0
    assert got[("arbor_assumption_changes_total", "BTCUSDT", "instant_feedBROKEN")] >= 1


def test_the_break_is_an_alert_event(url: str) -> None:
    """The change to BROKEN is an "assumption" event marked as an alert (the webhook's path)."""
    def alerts() -> list[dict[str, Any]]:
        return [e for e in get(url, "/api/events/recent")["events"]
                if e["type"] == "assumption" and e["data"]["new"] == "BROKEN" and e["data"]["symbol"] == "BTCUSDT"]

    eventually(lambda: alerts() != [], timeout=30)
    assert alerts()[0]["alert"] is True and alerts()[0]["severity"] == "critical"
