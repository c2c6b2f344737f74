"""Process helpers (psutil): descendants, liveness, RSS, listening sockets."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

from arbor.supervision.procs import alive, descendants, kill_all, listening, rss_kb, wait_gone


def test_descendants_include_grandchildren_and_leave_with_them() -> None:
    """A child and the grandchild it started are both below this process; killed and reaped, neither is alive."""
    child = subprocess.Popen([sys.executable, "-c",
                              "import subprocess, sys; p = subprocess.Popen([sys.executable, '-c', "
                              "'import time; time.sleep(60)']); print(p.pid, flush=True); p.wait()"],
                             stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    try:
        grandchild = int(child.stdout.readline())
        below = descendants(os.getpid())
        assert child.pid in below and grandchild in below
        assert alive(grandchild)
    finally:
        kill_all([grandchild, child.pid])
        child.wait(5)
    assert wait_gone([child.pid], 5.0) == []
    assert child.pid not in descendants(os.getpid())


def test_rss_of_this_process_is_reported_in_kb() -> None:
    """rss_kb is this process's resident set, in KiB (a Python process holds more than 5 MiB)."""
    assert rss_kb() > 5 * 1024
    assert rss_kb(2 ** 22 + 12345) == 0  # no such process


def test_listening_names_this_processs_bound_socket() -> None:
    """A socket listening on 127.0.0.1 shows up among this process's listeners with its port."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        assert ("127.0.0.1", port) in {(a, p) for a, p, _ in listening([os.getpid()])}
