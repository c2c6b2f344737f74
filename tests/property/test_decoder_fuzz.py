"""Hypothesis over real frames of every decoder entry point, mutated: nothing absurd gets through.

Each example takes a real frame (adapters/testing/decoder_frames.py), applies one mutation
(truncation, byte flips, dropped and renamed keys, swapped types, huge, tiny, NaN, Infinity,
negative, non-ASCII digits, invalid UTF-8, UTF-16, deep nesting) and judges what the entry point
and the collector make of it (adapters/testing/decoder_fuzz.py). Seeded counts over many more
frames: ``python bench/decode_fuzz.py``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
from arbor.adapters.testing.decoder_frames import entry_points
from arbor.adapters.testing.decoder_fuzz import judge, mutate
from arbor.messages.codec import Codec
from hypothesis import given
from hypothesis import strategies as st

from tests.conftest import SHARED_DATA

EPS = entry_points(SHARED_DATA) if SHARED_DATA.is_dir() else []
CODEC = Codec()


class DrawPick:
    """A mutation's choices drawn by hypothesis, so failures shrink."""

    def __init__(self, data: st.DataObject) -> None:
        self._data = data

    def choice(self, options: Sequence[Any]) -> Any:
        return self._data.draw(st.sampled_from(list(options)))

    def integer(self, low: int, high: int) -> int:
        return self._data.draw(st.integers(low, high))


@pytest.fixture(autouse=True)
def _needs_data(shared_data):
    """Every test here is built from the real recordings."""


@pytest.mark.parametrize("ep", EPS, ids=lambda ep: ep.name)
@given(data=st.data())
def test_mutated_real_frame_is_refused_or_decodes_to_sane_values(ep, data):
    """Any mutation of a real frame: no exception escapes, no absurd value passes, raw bytes are kept,
    and the fast path decides as the reference path does."""
    mutation, payload = mutate(ep.frame, DrawPick(data))
    assert judge(ep, mutation, payload, CODEC).problems == []

