"""bench/peer without NautilusTrader: the Nautilus side is skipped with a reason that says how to install it."""

from __future__ import annotations

import json
import sys
from types import ModuleType

import pytest

from tests.bench_helpers import load_bench


@pytest.fixture(scope="module")
def peer() -> ModuleType:
    return load_bench("peer")


def test_missing_nautilus_gives_a_reason_with_the_install_hint(peer, monkeypatch):
    """With nautilus_trader not importable, the reason names the package and the `peer` extra."""
    monkeypatch.setitem(sys.modules, "nautilus_trader", None)
    reason = peer.nautilus_missing()
    assert "nautilus_trader is not installed" in reason
    assert "pip install -e '.[peer]'" in reason


def test_a_skip_is_written_to_the_bench_json_and_shown_in_the_table(peer, tmp_path):
    """The skip reason travels through the bench's JSON file into a table row of its own."""
    out = tmp_path / "peer.json"
    fig = peer.Figure("peer.arbor", "Arbor what-if, end to end", 10.0, "msg/s", "floor", 100.0)
    peer.write_bench_json(out, "peer", [fig], skipped="Nautilus side: nautilus_trader is not installed")
    doc = json.loads(out.read_text())
    figures = load_bench("figures")
    run = {"date": "d", "machine": {"cpu": "c", "cores": 2, "python": "3.11", "commit": "x"}}
    table = figures.render_table({"run": run, "benches": {"peer": {**doc, "run": "d"}}})
    assert "| peer | Arbor what-if, end to end | 10 msg/s | floor: 100 msg/s | 0.10 |  |" in table
    assert "| peer | skipped: Nautilus side: nautilus_trader is not installed | | | | |" in table
