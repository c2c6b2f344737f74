"""A cap on the operator server's open connections, so idle sockets cannot blind it.

Runs on the server's event loop thread. ``ConnectionCap`` is the protocol factory handed to
``loop.create_server``: each accepted connection is counted; past ``limit`` the oldest connection
with no request in progress (idle keep-alive, or one that never sent a complete request) is
closed to make room, and when every connection is busy the new one is answered 503 and closed.
An operator's request therefore always gets through a flood of idle connections, and the
process's file descriptors (the heartbeat, the store, the journal need theirs) stay bounded.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web


def _busy_answer() -> bytes:
    body = b'{"error": "too many operator connections"}'
    return (b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nConnection: close\r\n"
            b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)


class _Counted(asyncio.Protocol):
    """Passes every transport event to aiohttp's protocol, and tells the cap when the connection ends."""

    def __init__(self, inner: Any, cap: ConnectionCap) -> None:
        self._inner = inner
        self._cap = cap
        self.transport: asyncio.BaseTransport | None = None
        self.shed = False  # shed before its connection_made ran (accepted in the same batch)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self._inner.connection_made(transport)
        if self.shed:
            transport.abort()  # type: ignore[attr-defined]

    def connection_lost(self, exc: Exception | None) -> None:
        self._cap._closed(self)
        self._inner.connection_lost(exc)

    def drop(self) -> None:
        """Close this connection now (or as soon as it is made)."""
        self.shed = True
        if self.transport is not None:
            self.transport.abort()  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received()

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()


class _Refused(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.write(_busy_answer())  # type: ignore[attr-defined]
        transport.close()


class ConnectionCap:
    """Protocol factory for ``loop.create_server`` around aiohttp's ``web.Server`` (see the module docstring)."""

    def __init__(self, limit: int) -> None:
        """``server`` (aiohttp's ``web.Server``, the runner's) is set before the site listens."""
        if limit < 1:
            raise ValueError("the connection limit must be at least 1")
        self.server: web.Server | None = None
        self.limit = limit
        # Every connection accepted and not yet lost, in the order accepted (counted when the
        # protocol is made: one accept batch makes many before any connection_made runs).
        self._open: dict[_Counted, None] = {}
        self._busy: dict[Any, int] = {}  # transport -> requests in progress on it
        self.shed = 0
        self.refused = 0

    @property
    def open(self) -> int:
        return len(self._open)

    def __call__(self) -> asyncio.Protocol:
        if len(self._open) >= self.limit and not self._shed_one():
            self.refused += 1
            return _Refused()
        assert self.server is not None, "ConnectionCap.server is set before listening"
        proto = _Counted(self.server(), self)
        self._open[proto] = None
        return proto

    @web.middleware
    async def middleware(self, request: web.Request,
                         handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
        """Marks the request's connection busy while it is handled (a websocket: for its whole life)."""
        transport = request.transport
        self._busy[transport] = self._busy.get(transport, 0) + 1
        try:
            return await handler(request)
        finally:
            left = self._busy.get(transport, 1) - 1
            if left:
                self._busy[transport] = left
            else:
                self._busy.pop(transport, None)

    def _shed_one(self) -> bool:
        for proto in self._open:
            if proto.transport not in self._busy:
                del self._open[proto]
                self.shed += 1
                proto.drop()
                return True
        return False

    def _closed(self, proto: _Counted) -> None:
        self._open.pop(proto, None)
        self._busy.pop(proto.transport, None)
