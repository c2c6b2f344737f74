"""Fixtures of the multi-process tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.distributed.cluster_helpers import Cluster


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Callable[..., Cluster]]:
    """A maker of launched clusters under ``tmp_path``; each one is stopped after the test and must
    leave no process behind."""
    made: list[Cluster] = []

    def make(**kw: Any) -> Cluster:
        c = Cluster(tmp_path, **kw)
        made.append(c)
        return c

    yield make
    for c in made:
        c.cleanup()
        assert not c.survivors(), f"processes left behind: {c.survivors()}"
