"""bench/all's results file: what a run keeps, replaces and marks when benches run, fail or are left out."""

from __future__ import annotations

from types import ModuleType

import pytest

from tests.bench_helpers import BENCH, load_bench


@pytest.fixture(scope="module")
def runall() -> ModuleType:
    return load_bench("runall")


def entry(run: str, **extra: object) -> dict:
    return {"run": run, "date": run, "commit": "c", "figures": [], **extra}


def test_a_bench_that_ran_replaces_its_previous_figures(runall):
    """A successful run's entry is what the results file keeps."""
    merged = runall.merge({"replay": entry("old")}, {"replay": entry("new")}, ["replay"])
    assert merged == {"replay": entry("new")}


def test_a_bench_that_failed_keeps_its_previous_figures_marked(runall):
    """A failed run never wipes the last good figures; the failure is recorded beside them."""
    merged = runall.merge({"scale": entry("old")}, {"scale": entry("new", failed="exit 1")}, ["scale"])
    assert merged == {"scale": entry("old", last_failure="exit 1")}


def test_a_bench_that_failed_with_no_previous_figures_is_left_out(runall):
    """There is nothing to show for a bench that never succeeded."""
    assert runall.merge({}, {"peer": entry("new", failed="timed out after 900 s")}, ["peer"]) == {}


def test_benches_not_run_keep_their_entry_without_an_older_failure_mark(runall):
    """With --only, the other benches keep their figures; a failure mark of an older run is dropped."""
    previous = {"decode": entry("old", last_failure="exit 1"), "replay": entry("old")}
    merged = runall.merge(previous, {"replay": entry("new")}, ["replay", "decode"])
    assert merged == {"replay": entry("new"), "decode": entry("old")}
    assert list(merged) == ["replay", "decode"]


def test_every_bench_has_a_quick_mode_and_a_timeout(runall):
    """bench/all stays bounded: each bench runs shorter under --quick and is killed past its timeout."""
    for bench in runall.BENCHES:
        assert bench.quick, bench.name
        assert 0 < bench.timeout_s <= 1200, bench.name
        assert (BENCH.parent / bench.script).is_file(), bench.script
