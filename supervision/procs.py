"""Processes and sockets (psutil): descendants, reaping, listening addresses, RSS.

thespian actor processes ignore SIGTERM and a killed middle process leaves orphans, so the
launcher makes itself a child subreaper (orphans of its tree are re-parented to it), records
every pid, and at the end SIGKILLs and reaps whatever of its tree is still there.
"""

from __future__ import annotations

import ctypes
import errno
import os
import signal
import time
from collections.abc import Iterable

import psutil

PR_SET_CHILD_SUBREAPER = 36


def become_subreaper() -> bool:
    """Make orphans of this process's tree re-parent to it (Linux >= 3.4); False if unavailable."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return bool(libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0)
    except (OSError, AttributeError):
        return False


def alive(pid: int) -> bool:
    """True if ``pid`` exists and is not a zombie."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except (psutil.NoSuchProcess, psutil.AccessDenied, ValueError):
        return False


def descendants(root: int) -> list[int]:
    """Every live (non-zombie) process below ``root``."""
    try:
        children = psutil.Process(root).children(recursive=True)
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return []
    return [c.pid for c in children if alive(c.pid)]


def reap_children() -> list[int]:
    """waitpid every exited child of this process (no blocking)."""
    reaped: list[int] = []
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return reaped
        if pid == 0:
            return reaped
        reaped.append(pid)


def kill_all(pids: Iterable[int], sig: int = signal.SIGKILL) -> None:
    for pid in pids:
        if pid and pid != os.getpid():
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
            except OSError as exc:
                if exc.errno != errno.ESRCH:
                    raise


def wait_gone(pids: Iterable[int], timeout: float) -> list[int]:
    """Reap children and wait until none of ``pids`` is alive; returns those still alive."""
    pids = [p for p in pids if p]
    deadline = time.monotonic() + timeout
    while True:
        reap_children()
        left = [p for p in pids if alive(p)]
        if not left or time.monotonic() >= deadline:
            return left
        time.sleep(0.01)


def rss_kb(pid: int | None = None) -> int:
    try:
        return int(psutil.Process(pid).memory_info().rss // 1024)
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return 0


def listening(pids: Iterable[int] | None = None) -> list[tuple[str, int, int]]:
    """(address, port, fd) of listening TCP sockets (IPv4 and IPv6), optionally only of ``pids``."""
    wanted = None if pids is None else set(pids)
    out = []
    for c in psutil.net_connections(kind="tcp"):
        if c.status != psutil.CONN_LISTEN or not c.laddr or (wanted is not None and c.pid not in wanted):
            continue
        ip, port = c.laddr
        out.append((ip, port, c.fd))
    return out
