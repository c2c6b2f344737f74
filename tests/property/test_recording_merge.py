"""The block-wise merge of HBT recordings equals a record-at-a-time merge, whatever the block size.

``merge_recordings`` reads each file a decompressed block at a time and merges blocks; the
reference is ``heapq.merge`` over ``read_hbt`` (ties: earlier file first). Small blocks put many
equal receive times on block boundaries, where an off-by-one would reorder ties.
"""

from __future__ import annotations

import gzip
import heapq
from operator import itemgetter
from pathlib import Path

from arbor.adapters.recorded import merge_recordings, read_hbt
from hypothesis import given, settings
from hypothesis import strategies as st

# Few distinct times, so that ties (within a file and across files) are common.
FILE = st.lists(st.integers(min_value=0, max_value=30), max_size=40).map(sorted)


def write(path: Path, times: list[int], tag: str) -> None:
    with gzip.open(path, "wb") as fh:
        for i, ts in enumerate(times):
            fh.write(f'{ts} {{"stream":"{tag}usdt@trade","data":{{"i":{i}}}}}\n'.encode())


@settings(max_examples=60, deadline=None)
@given(files=st.lists(FILE, min_size=1, max_size=4), chunk=st.sampled_from([1, 7, 64, 1 << 22]))
def test_blockwise_merge_equals_heap_merge(tmp_path_factory, files, chunk):
    root = tmp_path_factory.mktemp("rec")
    paths = []
    for k, times in enumerate(files):
        path = root / f"usdm_s{k}usdt_20240808.gz"
        write(path, times, f"s{k}")
        paths.append(path)
    expected = list(heapq.merge(*(read_hbt(p) for p in paths), key=itemgetter(0)))
    assert list(merge_recordings(paths, chunk_bytes=chunk)) == expected
    assert len(expected) == sum(len(t) for t in files)
