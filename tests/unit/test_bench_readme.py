"""README's bench region: well-formed, untouched by hand, and exactly what bench/all's writer renders."""

from __future__ import annotations

import json
import re
from pathlib import Path
from types import ModuleType

import pytest

from tests.bench_helpers import load_bench

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
# A throughput figure: a number followed by a rate unit ("21,170 messages/s", "1.2k msg/s").
THROUGHPUT = re.compile(r"\d[\d,.]*\s*k?\s*(?:msg|messages|events|records|fills|frames|decisions|symbols)/s\b")


@pytest.fixture(scope="module")
def figures() -> ModuleType:
    return load_bench("figures")


def results(figures: ModuleType) -> dict:
    """A results file's content as bench/all writes it: two benches with figures, one skipped."""
    fig = figures.Figure
    return {
        "schema": figures.SCHEMA,
        "run": {"date": "2026-12-03 13:00 UTC", "quick": True, "elapsed_s": 321.4,
                "load_before": [1.5, 1.2, 1.0], "load_after": [2.25, 1.5, 1.0],
                "machine": {"cpu": "Test CPU @ 2.0GHz", "cores": 2, "python": "3.11.7", "system": "Linux 6",
                            "commit": "abc1234"}},
        "benches": {
            "replay": {"run": "2026-12-03 13:00 UTC", "date": "2026-12-03 13:00 UTC", "commit": "abc1234", "command": "python bench/replay.py",
                       "elapsed_s": 60.0, "load_before": [1.5, 1.2, 1.0], "load_after": [1.8, 1.3, 1.0],
                       "notes": ["168,609 market messages."], "skipped": "",
                       "figures": [fig("replay.whatif", "what-if", 12345.0, "msg/s", "JSON floor", 24690.0,
                                       target=">= 150,000 msg/s", met=False).to_json()]},
            "pipeline": {"run": "2026-12-02 08:59 UTC", "date": "2026-12-02 09:00 UTC", "commit": "def5678", "command": "python bench/pipeline.py",
                         "elapsed_s": 20.0, "load_before": [0.5, 0.5, 0.5], "load_after": [0.7, 0.5, 0.5],
                         "notes": [], "skipped": "",
                         "figures": [fig("pipeline.latency_p99", "tick-to-action p99", 1.1, "ms",
                                         "plain chain's time per event", 0.022, higher_is_better=False,
                                         target="< 2 ms", met=True).to_json()]},
            "peer": {"run": "2026-12-03 13:00 UTC", "date": "2026-12-03 13:00 UTC", "commit": "abc1234", "command": "python bench/peer.py",
                     "elapsed_s": 30.0, "load_before": [], "load_after": [], "notes": [],
                     "skipped": "Nautilus side: nautilus_trader is not installed", "figures": []},
        },
    }


def test_readme_has_one_well_formed_bench_region(figures):
    """README holds exactly one bench region, begin before end, its table a header and full rows."""
    text = README.read_text()
    start, stop = figures.find_region(text)
    assert start < stop
    _, body = figures.region_body(text)
    rows = [line for line in body.splitlines() if line.startswith("| ")]
    assert rows[0] == "| bench | figure | value | baseline (same run) | ratio | target |"
    assert len(rows) > 2
    assert all(line.count(" | ") == 5 for line in rows)


def test_readme_bench_region_is_as_bench_all_wrote_it(figures):
    """The region's body matches the digest its begin marker recorded: nobody edited a figure by hand."""
    recorded, body = figures.region_body(README.read_text())
    assert recorded == figures.digest(body)


def test_readme_quotes_no_throughput_figure_outside_the_bench_region(figures):
    """Every speed figure in README comes from the bench table: none is typed into the prose."""
    text = README.read_text()
    start, stop = figures.find_region(text)
    outside = text[:start] + text[stop:]
    assert THROUGHPUT.findall(outside) == []


def test_writer_renders_a_results_file_into_exactly_the_region(figures, tmp_path):
    """rewrite_file replaces the region with render_region(results) and leaves every other byte alone."""
    before, after = "# Title\n\nprose before\n\n", "\n\n## Next\nprose after\n"
    readme = tmp_path / "README.md"
    readme.write_text(before + f"{figures.BEGIN} old -->\nstale table\n{figures.END}" + after)
    data = results(figures)
    results_file = tmp_path / "results.json"
    results_file.write_text(json.dumps(data))
    figures.rewrite_file(readme, results_file)
    text = readme.read_text()
    assert text == before + figures.render_region(data) + after
    recorded, body = figures.region_body(text)
    assert recorded == figures.digest(body)
    assert "| replay | what-if | 12,345 msg/s | JSON floor: 24,690 msg/s | 0.50 | >= 150,000 msg/s: **not met** |" in body
    assert "| pipeline | tick-to-action p99 | 1.1 ms | plain chain's time per event: 0.022 ms | 50.00 | < 2 ms: met |" \
        in body
    assert "| peer | skipped: Nautilus side: nautilus_trader is not installed | | | | |" in body
    assert "commit abc1234: Test CPU @ 2.0GHz, 2 cores" in body
    assert "kept from an earlier run: 2026-12-02 09:00 UTC at commit def5678" in body  # and says so
    assert body.count("kept from an earlier run") == 1


def test_rewriting_twice_gives_the_same_readme(figures, tmp_path):
    """Rendering is deterministic: the same results file writes the same bytes again."""
    data = results(figures)
    once = figures.rewrite(f"a\n{figures.BEGIN} -->\n{figures.END}\nb\n", data)
    assert figures.rewrite(once, data) == once


@pytest.mark.parametrize("text", [
    "no markers at all\n",
    "<!-- bench:begin x -->\nbody\n",
    "<!-- bench:end -->\n<!-- bench:begin x -->\n",
    "<!-- bench:begin x -->\n<!-- bench:begin y -->\n<!-- bench:end -->\n",
])
def test_a_malformed_region_is_refused(figures, text):
    """A missing, repeated or reversed marker is an error, never a README rewritten at a guess."""
    with pytest.raises(figures.RegionError):
        figures.rewrite(text, results(figures))


def test_ratio_is_value_over_the_baseline_of_the_same_run(figures):
    """A figure's ratio is recomputed from value and baseline, whatever its JSON form claims."""
    d = figures.Figure("x", "x", 30.0, "msg/s", "floor", 120.0).to_json()
    d["ratio"] = 99.0
    assert figures.figure_from_json(d).ratio == 0.25
