"""The node shim's own checks, without a running actor system."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from arbor.actors.distributed import system
from arbor.actors.distributed.system import supervisor_alive


def test_a_parent_supervisor_is_alive_without_reading_proc(monkeypatch: pytest.MonkeyPatch) -> None:
    """While the supervisor is the node's parent it is alive: no /proc read on the node's thread."""

    def no_proc(pid: int) -> bool:
        raise AssertionError("read /proc for the parent")

    monkeypatch.setattr(system, "alive", no_proc)
    assert supervisor_alive(os.getppid())


def test_a_supervisor_that_is_not_the_parent_is_checked_in_proc() -> None:
    """Otherwise /proc decides: a live process is alive, an exited (reaped) one is not."""
    assert supervisor_alive(os.getpid())
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    assert not supervisor_alive(gone.pid)
