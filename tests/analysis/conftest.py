"""The two real USD-M recordings read once per session (about 20 s), as tapes."""

from __future__ import annotations

from pathlib import Path

import pytest
from arbor.analysis.events import read_source
from arbor.analysis.tape import Tape, build_tapes


@pytest.fixture(scope="session")
def usdm_files(shared_data: Path) -> list[str]:
    return [str(shared_data / "binance_usdm" / f"usdm_{s}_20240808.gz") for s in ("btcusdt", "ethusdt")]


@pytest.fixture(scope="session")
def usdm_tapes(usdm_files: list[str]) -> dict[str, Tape]:
    src = read_source(usdm_files)
    assert src.failures == {}
    return build_tapes(src.events)
