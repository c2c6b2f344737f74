"""One writer per journal directory, enforced with an advisory lock on ``<directory>/LOCK``."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from arbor.messages.journal.errors import JournalLocked

LOCK_NAME = "LOCK"


class DirectoryLock:
    """An exclusive, non-blocking ``flock``: released on ``release()`` or when the process dies."""

    def __init__(self, directory: Path) -> None:
        self._path = Path(directory) / LOCK_NAME
        self._fd: int | None = None

    def acquire(self) -> None:
        fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise JournalLocked(f"journal {self._path.parent} is open by another writer") from None
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def __enter__(self) -> DirectoryLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
