"""Processes and sockets from /proc (Linux): descendants, reaping, listening addresses, RSS.

thespian actor processes ignore SIGTERM and a killed middle process leaves orphans, so the
launcher makes itself a child subreaper (orphans of its tree are re-parented to it), records
every pid, and at the end SIGKILLs and reaps whatever of its tree is still there.
"""

from __future__ import annotations

import ctypes
import errno
import os
import signal
import socket
import struct
import time
from collections.abc import Iterable
from pathlib import Path

PR_SET_CHILD_SUBREAPER = 36


def become_subreaper() -> bool:
    """Make orphans of this process's tree re-parent to it (Linux >= 3.4); False if unavailable."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _stat(pid: int) -> tuple[str, int] | None:
    """(state, ppid) of ``pid``, or None if it is gone."""
    try:
        data = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    rest = data[data.rindex(")") + 2:].split()
    return rest[0], int(rest[1])


def alive(pid: int) -> bool:
    """True if ``pid`` exists and is not a zombie."""
    st = _stat(pid)
    return st is not None and st[0] != "Z"


def descendants(root: int) -> list[int]:
    """Every live (non-zombie) process below ``root``."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        st = _stat(int(entry))
        if st is not None and st[0] != "Z":
            children.setdefault(st[1], []).append(int(entry))
    out: list[int] = []
    todo = [root]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


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
        for line in Path(f"/proc/{pid or 'self'}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _socket_inodes(pid: int) -> set[int]:
    out = set()
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target.startswith("socket:["):
                out.add(int(target[8:-1]))
    except OSError:
        pass
    return out


def listening(pids: Iterable[int] | None = None) -> list[tuple[str, int, int]]:
    """(address, port, inode) of listening TCP sockets (IPv4 and IPv6), optionally only of ``pids``."""
    inodes: set[int] | None = None
    if pids is not None:
        inodes = set()
        for p in pids:
            inodes |= _socket_inodes(p)
    out = []
    for name, v6 in (("/proc/net/tcp", False), ("/proc/net/tcp6", True)):
        try:
            lines = Path(name).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            parts = line.split()
            if parts[3] != "0A":  # LISTEN
                continue
            inode = int(parts[9])
            if inodes is not None and inode not in inodes:
                continue
            hexaddr, hexport = parts[1].split(":")
            raw = bytes.fromhex(hexaddr)
            if v6:
                addr = socket.inet_ntop(socket.AF_INET6, b"".join(struct.pack("<I", w) for w in
                                                                  struct.unpack(">4I", raw)))
            else:
                addr = socket.inet_ntop(socket.AF_INET, struct.pack("<I", int(hexaddr, 16)))
            out.append((addr, int(hexport, 16), inode))
    return out


def is_loopback(addr: str) -> bool:
    return addr.startswith("127.") or addr in ("::1", "::ffff:127.0.0.1")
