"""supervision.files.write_atomic: a reader sees the old file or the new one, and a failed write changes nothing."""

from __future__ import annotations

import pytest
from arbor.supervision.files import write_atomic


def test_replaces_the_whole_file(tmp_path):
    """The new text replaces the old in full."""
    path = tmp_path / "heartbeat.json"
    path.write_text("old old old old")
    write_atomic(path, "new")
    assert path.read_text() == "new"


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    """A write that fails (text that cannot be encoded) leaves the old file and no temporary behind."""
    path = tmp_path / "latch.json"
    path.write_text("old")
    with pytest.raises(UnicodeEncodeError):
        write_atomic(path, "\udcff")
    assert path.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["latch.json"]
