"""``Waker``: wakes a thread that waits in a selector at a precise time, through a pipe."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable


class Waker:
    """Wakes a node's thread at a precise time: a pipe that thespian watches (``ThespianWatch``),
    written by a timer thread when the time comes, or at once by ``now()``.

    thespian's own ``wakeupAfter`` is not used for this, for three reasons seen in its loop
    (``TCPTransport._runWithExpiry``): a wake-up already due when the loop looks is delivered
    without reading or writing any socket (a Worker with market data always due would never
    send a batch, see an ack or hear an exit request); select rounds timeouts up to 1 ms; and a
    wake-up less than 0.5 us away becomes a zero ``timedelta``, which the loop filters out as
    "no timeout", leaving the process in ``epoll_wait`` until some message arrives (the stalled
    timer chains of docs/cluster.md, Known issue). A readable pipe wakes select at once, and
    thespian handles every ready socket in the same pass.
    """

    def __init__(self, on_ring: Callable[[], None] | None = None) -> None:
        """``on_ring`` is called each time the pipe is written (on the ringing thread), to observe it."""
        self._on_ring = on_ring
        self.fd, self._w = os.pipe()
        os.set_blocking(self.fd, False)
        os.set_blocking(self._w, False)
        self._due: float | None = None
        self._cv = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="arbor-waker", daemon=True)
        self._thread.start()

    def at(self, due: float) -> None:
        """Wake at ``due`` (``time.monotonic()``), replacing any earlier request."""
        with self._cv:
            earlier = self._due is None or due < self._due
            self._due = due
            if earlier:
                self._cv.notify()

    def now(self) -> None:
        with self._cv:
            self._due = None
        self._ring()

    @property
    def running(self) -> bool:
        """Whether the timer thread still runs (``close`` ends it)."""
        return self._thread.is_alive()

    def drain(self) -> None:
        try:
            while os.read(self.fd, 4096):
                pass
        except BlockingIOError:
            pass

    def close(self, timeout: float = 2.0) -> None:
        """Stop the timer thread (waiting up to ``timeout`` s for it to end); ``fd`` stays open,
        since the node's selector may still hold it (``close_pipe`` closes it)."""
        with self._cv:
            self._closed = True
            self._cv.notify()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def close_pipe(self) -> None:
        """Close both ends of the pipe, after ``close`` and once nothing selects on ``fd``."""
        os.close(self.fd)
        os.close(self._w)

    def _ring(self) -> None:
        if self._on_ring is not None:
            self._on_ring()
        try:  # noqa: SIM105 -- on every wake: contextlib.suppress would add two calls to it
            os.write(self._w, b"!")
        except BlockingIOError:
            pass  # the pipe is full of rings not yet read: the node wakes anyway

    def _run(self) -> None:
        with self._cv:
            while not self._closed:
                if self._due is None:
                    self._cv.wait()
                    continue
                left = self._due - time.monotonic()
                if left > 0:
                    self._cv.wait(left)
                    continue
                self._due = None
                self._ring()
