"""The built-in strategies rewritten on the public API decide exactly as before on a real recording."""

from __future__ import annotations

from pathlib import Path

import pytest
from arbor.actors.replay import run_whatif
from arbor.actors.replay.whatif import hbt_config, market_inputs
from arbor.config.loader import load_raw
from arbor.config.settings import build_settings

# what-if digests of the pre-API built-ins (commit ceb4cf8) on the two USD-M recordings
BEFORE = {
    "trend_following": "7da8d7e38beb3db44e9dc0f62e583b1c7eb612fcbbde21a5185735f871b23d6e",
    "mean_reversion": "53f0605357c378575819947e62e49ae777b4e147182799c0fb8f775b28681845",
}


@pytest.mark.parametrize("strategy", sorted(BEFORE))
def test_builtin_digest_unchanged_by_the_api_rewrite(shared_data: Path, strategy: str) -> None:
    """The rewritten built-in gives the pre-rewrite what-if digest (same decisions, orders, fills)."""
    files = [str(shared_data / "binance_usdm" / f) for f in ("usdm_btcusdt_20240808.gz", "usdm_ethusdt_20240808.gz")]
    settings = build_settings(hbt_config(files, load_raw(environ={}), [f"symbols.*.strategy={strategy}"]))
    assert run_whatif(settings, market_inputs(settings)).digest == BEFORE[strategy]
