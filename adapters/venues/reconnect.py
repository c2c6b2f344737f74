"""The reconnect skeleton the market-data websocket clients share (Binance and Hyperliquid).

``Reconnector.connect(open_connection)`` calls ``open_connection`` until it returns a connection
or ``stop()`` is asked: each failure (timeout, socket error, websocket handshake or protocol error)
is counted, logged and followed by an exponential backoff with jitter drawn from the injected rng
and slept with the injected sleep. Every success is counted (``connects``; after the first also
``resubscribes``, and ``reconnects`` unless it is a planned rotation) and reported as a
``StreamStatus`` (``connected`` the first time, ``reconnected`` after). What a connection is
(URL, subscriptions, de-duplication, staleness) stays with each venue's client.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import attrs
import websockets.exceptions
from arbor.actors.backoff import exponential_backoff

T = TypeVar("T")

# What a failed connection attempt raises: retried with backoff. Anything else is a bug and escapes.
CONNECT_ERRORS = (TimeoutError, OSError, websockets.exceptions.WebSocketException)


@attrs.frozen(kw_only=True)
class StreamStatus:
    """Something happened to the feed: ``kind`` is connected, disconnected, reconnected, rotated,
    stale, book_synced, book_desynced, book_interrupted, snapshot_failed or rest_retry."""

    kind: str
    symbol: str | None = None
    detail: str = ""


class Reconnector:
    """Connect-with-backoff, the stop flag, the counters and the status callback of one client.

    ``stats`` is the client's own counter dict; it must hold ``connects``, ``connect_failures``,
    ``reconnects`` and ``resubscribes``.
    """

    def __init__(self, *, backoff_initial_s: float, backoff_max_s: float, backoff_jitter: float,
                 rng: random.Random, sleep: Callable[[float], Awaitable[None]], log: Any,
                 on_status: Callable[[StreamStatus], None] | None, stats: dict[str, int]) -> None:
        self._initial_s = backoff_initial_s
        self._max_s = backoff_max_s
        self._jitter = backoff_jitter
        self._rng = rng
        self._sleep = sleep
        self._log = log
        self._on_status = on_status
        self._stats = stats
        self.stopping = asyncio.Event()
        self.connected_once = False

    def stop(self) -> None:
        self.stopping.set()

    def backoff(self, attempt: int) -> float:
        """The delay before retry number ``attempt`` (0-based), jittered by the injected rng."""
        return exponential_backoff(attempt, self._initial_s, self._max_s, self._jitter, self._rng.random())

    def status(self, kind: str, symbol: str | None = None, detail: str = "") -> None:
        if self._on_status is not None:
            self._on_status(StreamStatus(kind=kind, symbol=symbol, detail=detail))

    async def connect(self, open_connection: Callable[[], Awaitable[T]], *, what: str,
                      rotation: bool = False, detail: str | None = None) -> T | None:
        """A new connection from ``open_connection``, retried until it works; None once stopping.

        ``what`` names the connection in the log; ``detail`` is the status detail (default: the
        kind of connection: connected, reconnected or rotated_connect).
        """
        attempt = 0
        while not self.stopping.is_set():
            try:
                conn = await open_connection()
            except CONNECT_ERRORS as exc:
                self._stats["connect_failures"] += 1
                delay = self.backoff(attempt)
                attempt += 1
                self._log.warning("connect failed ({}: {}); retry in {:.2f}s", type(exc).__name__, exc, delay)
                await self._sleep(delay)
                continue
            self._stats["connects"] += 1
            if self.connected_once:
                self._stats["resubscribes"] += 1  # every new connection subscribes again
                if not rotation:
                    self._stats["reconnects"] += 1
            kind = "rotated_connect" if rotation else ("reconnected" if self.connected_once else "connected")
            self.connected_once = True
            self._log.info("{}: {}", kind, what)
            self.status("connected" if kind == "connected" else "reconnected", detail=kind if detail is None else detail)
            return conn
        return None


__all__ = ["CONNECT_ERRORS", "Reconnector", "StreamStatus"]
