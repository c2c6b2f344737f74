"""Shared fixtures: where the real recorded data lives, and hypothesis profiles."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

REPO_ROOT = Path(__file__).resolve().parents[1]
# ARBOR_SHARED_DATA points elsewhere (a git worktree does not sit next to ../shared).
SHARED_DATA = Path(os.environ.get("ARBOR_SHARED_DATA") or REPO_ROOT / ".." / "shared" / "data").resolve()

settings.register_profile("fast", max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("ci", max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("ci" if os.environ.get("CI") == "true" else os.environ.get("HYPOTHESIS_PROFILE", "fast"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real recorded exchange data. Absent on a user's machine: skip. Absent under CI: fail."""
    if not SHARED_DATA.is_dir():
        if os.environ.get("CI") == "true":
            pytest.fail(f"recorded data missing at {SHARED_DATA}; it is always present under CI")
        pytest.skip(f"recorded data not present at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture()
def browser(tmp_path: Path) -> Iterator[int]:
    """A headless Chromium of the test's own; yields its DevTools port (skips, or fails under CI, without one)."""
    from tests.browser import headless_chromium

    with headless_chromium(tmp_path) as port:
        yield port
