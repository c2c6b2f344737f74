"""A node's journal fsyncs off its thread (``actors.cluster.fsync.BackgroundFsync``): the node's call
returns while the fsync is still running, a failure reaches the writer on its next call, and a
clean stop waits for every fsync asked for."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest
from arbor.actors.cluster import fsync as mod
from arbor.actors.cluster.fsync import BackgroundFsync


class SlowDisk:
    """``os.fsync`` as the module sees it: records the thread and file of each call, and blocks
    until ``release`` is set."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.started = threading.Event()
        self.calls: list[tuple[int, int]] = []  # (thread ident, inode)
        self.fail: OSError | None = None

    def __call__(self, fd: int) -> None:
        self.calls.append((threading.get_ident(), os.fstat(fd).st_ino))
        self.started.set()
        assert self.release.wait(10)
        if self.fail is not None:
            raise self.fail


@pytest.fixture
def disk(monkeypatch: pytest.MonkeyPatch) -> SlowDisk:
    d = SlowDisk()
    monkeypatch.setattr(mod.os, "fsync", d)
    return d


def test_the_call_returns_while_the_fsync_runs_on_the_helper_thread(disk: SlowDisk, tmp_path: Path) -> None:
    f = (tmp_path / "seg").open("wb")
    syncer = BackgroundFsync()
    syncer(f.fileno())  # returns although the disk has not answered
    assert disk.started.wait(10)
    assert not disk.release.is_set()
    f.close()  # the segment may be closed meanwhile: the helper syncs its own duplicate
    disk.release.set()
    syncer.close()
    assert [ino for _, ino in disk.calls] == [os.stat(tmp_path / "seg").st_ino]
    assert disk.calls[0][0] != threading.get_ident()


def test_requests_for_one_file_while_the_disk_is_busy_make_one_fsync(disk: SlowDisk, tmp_path: Path) -> None:
    a, b = (tmp_path / "a").open("wb"), (tmp_path / "b").open("wb")
    syncer = BackgroundFsync()
    syncer(a.fileno())
    assert disk.started.wait(10)  # busy with a
    for _ in range(5):
        syncer(b.fileno())
    disk.release.set()
    syncer.close()
    inodes = [ino for _, ino in disk.calls]
    assert inodes == [os.fstat(a.fileno()).st_ino, os.fstat(b.fileno()).st_ino]
    a.close()
    b.close()


def test_a_failed_fsync_is_raised_by_the_next_call(disk: SlowDisk, tmp_path: Path) -> None:
    f = (tmp_path / "seg").open("wb")
    disk.fail = OSError(5, "I/O error")
    disk.release.set()
    syncer = BackgroundFsync()
    syncer(f.fileno())
    syncer.wait()
    with pytest.raises(OSError, match="I/O error"):
        syncer(f.fileno())
    syncer.close()
    f.close()


def test_after_close_an_fsync_runs_in_place(disk: SlowDisk, tmp_path: Path) -> None:
    f = (tmp_path / "seg").open("wb")
    disk.release.set()
    syncer = BackgroundFsync()
    syncer.close()
    syncer(f.fileno())
    assert disk.calls[0][0] == threading.get_ident()
    f.close()
