"""Hypothesis: the bulk level check accepts only books the per-field reference readers accept."""

from __future__ import annotations

import orjson
from arbor.adapters.binance.usdm import _levels
from arbor.adapters.decoding import DecodeError
from arbor.adapters.fields import check_levels_not_crossed, fast_book_sides
from arbor.messages.market import levels_text
from hypothesis import example, given
from hypothesis import strategies as st

FRACTIONS = st.sampled_from(["", "5", "50", "000", "000000000000000001", "0000000000000000001"])
ODD = st.one_of(st.text("0123456789", min_size=1, max_size=20), st.text("0123456789.-e+ ", max_size=8),
                st.sampled_from(["", ".5", "5.", "01", "1e5", "NaN", "0", "0.000"]))


def plain(integers: list[str]) -> st.SearchStrategy[str]:
    """Plain decimals on these integer parts, now and then something odd."""
    return st.one_of(*[st.builds(lambda i, f: i + ("." + f if f else ""), st.sampled_from(integers), FRACTIONS)] * 20, ODD)


# Bids mostly below asks, sharing 61800 so that books cross and lock, and sizes 0 (deletes) at times.
SIZES = st.one_of(plain(["0", "1", "2", "999999999999999999"]), st.just("0"))
# 2^54 + 3 and 2^54 + 2: integers past 2^53 are no floats, where int-against-float comparisons lie.
BIDS = st.lists(st.tuples(plain(["61799", "61798", "61800", "18014398509481987"]), SIZES).map(list), max_size=4)
ASKS = st.lists(st.tuples(plain(["61801", "61802", "61800", "18014398509481986"]), SIZES).map(list), max_size=4)


def reference(bids: list, asks: list, deletes: bool) -> bool:
    """True when the reference readers accept the two sides."""
    try:
        check_levels_not_crossed(_levels(bids, "b", snapshot=not deletes), _levels(asks, "a", snapshot=not deletes), "book")
    except DecodeError:
        return False
    return True


@given(bids=BIDS, asks=ASKS, deletes=st.booleans())
@example(bids=[["18014398509481987", "1"]], asks=[["18014398509481986.5", "1"]], deletes=True)
def test_bulk_check_accepts_only_what_the_reference_accepts(bids, asks, deletes):
    """Whatever fast_book_sides accepts, the reference accepts, and the text kept is the reference's."""
    bids_text, asks_text = orjson.dumps(bids), orjson.dumps(asks)
    try:
        fast_book_sides(bids_text, asks_text, deletes=deletes)
    except Exception:
        return  # refused: the reference decides, whatever it says
    assert reference(bids, asks, deletes)
    assert (levels_text(bids), levels_text(asks)) == (bids_text, asks_text)
