"""``BackgroundFsync``: a node's journal fsyncs on a thread of their own, not on the node's thread.

A node of the multi-process cluster has one thread for everything it does. Its journal (the
"interval" policy: an fsync at most every ``journal.interval_ms``) called ``os.fsync`` on that
thread, and on this machine's disk an fsync takes 3-10 ms (p50 / p90; 20 ms when the disk is
busy): a market frame, a decision or an approval that came meanwhile waited for it, so every hop
of tick-to-order had a tail of that size (``bench/scale.py --hops``; docs/cluster.md).

The writer still writes every record to the OS on the node's thread (``flush``) and hands the
fsync here: the descriptor is duplicated (the segment may be closed or rotated meanwhile) and
synced by the thread, which releases the GIL while it waits. What the policy promises changes
by one fsync's time: a power loss can take up to ``interval_ms`` plus the fsync in progress; a
process crash still loses nothing handed to the OS. A failed fsync is raised by the next call,
so the writer fails (and the node fails closed) as it did when the fsync failed in place.
``close`` waits until every fsync asked for is done (a clean stop is durable).
"""

from __future__ import annotations

import os
import threading

from loguru import logger


class BackgroundFsync:
    """A callable ``fsync(fd)`` for ``JournalWriter`` that syncs on a helper thread (see the module)."""

    def __init__(self, name: str = "arbor-fsync") -> None:
        self._cv = threading.Condition()
        self._pending: dict[tuple[int, int], int] = {}  # (st_dev, st_ino) -> a duplicate descriptor
        self._busy = False
        self._closed = False
        self._error: OSError | None = None
        self.synced = 0
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def __call__(self, fd: int) -> None:
        with self._cv:
            if self._error is not None:
                exc, self._error = self._error, None
                raise exc
            if self._closed:
                os.fsync(fd)  # after close (a late segment): in place, as before
                return
            st = os.fstat(fd)
            dup = os.dup(fd)
            old = self._pending.pop((st.st_dev, st.st_ino), None)
            self._pending[(st.st_dev, st.st_ino)] = dup  # one fsync per file covers every earlier request
            self._cv.notify()
        if old is not None:
            os.close(old)

    def wait(self) -> None:
        """Until every fsync asked for so far is done."""
        with self._cv:
            while self._pending or self._busy:
                self._cv.wait()

    def close(self) -> None:
        """Finish what is pending, then stop the thread; later calls sync in place."""
        self.wait()
        with self._cv:
            self._closed = True
            self._cv.notify_all()
        self._thread.join(5.0)

    def _run(self) -> None:
        while True:
            with self._cv:
                while not self._pending and not self._closed:
                    self._cv.wait()
                if not self._pending:
                    return
                batch, self._pending = list(self._pending.values()), {}
                self._busy = True
            try:
                for fd in batch:
                    try:
                        os.fsync(fd)
                        self.synced += 1
                    except OSError as exc:
                        logger.bind(event_type="journal_fsync_failed").error("journal fsync failed: {!r}", exc)
                        with self._cv:
                            self._error = exc
                    finally:
                        os.close(fd)
            finally:
                with self._cv:
                    self._busy = False
                    self._cv.notify_all()
